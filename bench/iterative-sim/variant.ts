/**
 * What every variant of the pipeline (plain + git-annex, stock EncFS + git-annex, dvfs) does and reports:
 * run all stages of one shape (each stage written, then committed), push everything, and say what each step
 * took. Seconds are wall time of whole processes or jobs:
 *   stage   the stage from start to end, mount and unmount included (dvfs: the SLURM stage job's own record)
 *   write   the payload writer's own time inside the stage (the ranks writing, nothing else)
 *   commit  recording the stage (git annex add + git commit; dvfs: the finalize job's `dvfs slurm finish`)
 *   push    sending the whole history to Swift once, after the last stage
 */
import type { ShapeId, VariantId } from './options.js';
import type { StageSpec } from './payload.js';

export interface StageTimes {
  stage: number;
  write: number;
  commit: number;
}

export interface VariantRun {
  variant: VariantId;
  shape: ShapeId;
  run: number;
  /** Payload bytes and files of all stages together. */
  bytes: number;
  files: number;
  stages: StageTimes[];
  push: number;
  /** Extra facts worth keeping (dvfs: pipeline wall time, snapshot ids, push summary). */
  notes: Record<string, number | string | boolean>;
}

export interface Pipeline {
  readonly variant: VariantId;
  /** Untimed: repositories, volumes, remotes. */
  prepare(): Promise<void>;
  /** Runs every stage (written and committed) and returns their times, in stage order. */
  runStages(specs: StageSpec[]): Promise<StageTimes[]>;
  /** Timed: sends everything committed to Swift. */
  push(): Promise<number>;
  /** Untimed facts for the report. */
  notes(): Record<string, number | string | boolean>;
  /** Removes what it made (unmounting first); never throws. */
  dispose(): Promise<void>;
}

/** The stage directory, relative to the data root, in every variant. */
export const stageDir = (stage: number): string => `sim/stage-${stage}`;

/** The writer's JSON line (payload.ts). */
export interface WriterReport {
  stage: number;
  files: number;
  bytes: number;
  writeSeconds: number;
}

export function parseWriterReport(text: string, where: string): WriterReport {
  for (const line of text.split('\n').reverse()) {
    if (!line.startsWith('{')) continue;
    const j = JSON.parse(line) as Partial<WriterReport>;
    if (typeof j.writeSeconds === 'number' && typeof j.bytes === 'number' && typeof j.files === 'number' && typeof j.stage === 'number') return j as WriterReport;
  }
  throw new Error(`${where}: the payload writer printed no report: ${text.trim().slice(-300)}`);
}

/** The payload writer's arguments for one stage, writing into `out` (after `after`, the previous stage). */
export function writerArgs(spec: StageSpec, out: string, after: string | null): string[] {
  return [
    '--out',
    out,
    '--stage',
    String(spec.stage),
    '--ranks',
    String(spec.ranks),
    '--files',
    String(spec.filesPerRank),
    '--file-size',
    String(spec.fileSize),
    '--seed',
    spec.seed,
    ...(after === null ? [] : ['--after', after]),
  ];
}
