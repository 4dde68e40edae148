/**
 * From the runs to the figures: per shape and variant the median over runs of each step's seconds (summed
 * over the stages of a run), MB/s (10^6 bytes, as the published table), dvfs's time over each peer's, and
 * the targets with pass/fail.
 */
import { median } from '../lib/report.js';
import type { ShapeId, VariantId } from './options.js';
import type { VariantRun } from './variant.js';

export type Step = 'stage' | 'write' | 'commit' | 'push';
export const STEPS: Step[] = ['stage', 'write', 'commit', 'push'];

export interface StepFigure {
  seconds: number;
  mbPerSecond: number;
}

export interface ShapeSummary {
  shape: ShapeId;
  fileSize: number;
  /** Files and bytes of all stages of one run. */
  files: number;
  bytes: number;
  /** Median per step; absent when the variant did not run. */
  figures: Partial<Record<VariantId, Record<Step, StepFigure>>>;
  /** dvfs seconds / peer seconds per step (below 1: dvfs is faster). */
  dvfsOver: Partial<Record<'plain' | 'encfs', Record<Step, number>>>;
}

export interface Target {
  name: string;
  /** The measured value, as text with its unit. */
  measured: string;
  pass: boolean | null;
}

function stepSeconds(r: VariantRun, step: Step): number {
  if (step === 'push') return r.push;
  return r.stages.reduce((sum, s) => sum + s[step], 0);
}

export function summarize(runs: VariantRun[], shapes: Array<{ id: ShapeId; fileSize: number }>): ShapeSummary[] {
  return shapes.map(({ id, fileSize }) => {
    const ofShape = runs.filter((r) => r.shape === id);
    const first = ofShape[0];
    const out: ShapeSummary = { shape: id, fileSize, files: first?.files ?? 0, bytes: first?.bytes ?? 0, figures: {}, dvfsOver: {} };
    for (const variant of ['plain', 'encfs', 'dvfs'] as const) {
      const mine = ofShape.filter((r) => r.variant === variant);
      if (mine.length === 0) continue;
      const fig = {} as Record<Step, StepFigure>;
      for (const step of STEPS) {
        const seconds = median(mine.map((r) => stepSeconds(r, step))) as number;
        fig[step] = { seconds, mbPerSecond: seconds > 0 ? out.bytes / 1e6 / seconds : Infinity };
      }
      out.figures[variant] = fig;
    }
    const dvfs = out.figures.dvfs;
    for (const peer of ['plain', 'encfs'] as const) {
      const p = out.figures[peer];
      if (dvfs === undefined || p === undefined) continue;
      out.dvfsOver[peer] = Object.fromEntries(STEPS.map((s) => [s, dvfs[s].seconds / p[s].seconds])) as Record<Step, number>;
    }
    return out;
  });
}

const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;

/** The three targets; pass is null when this run lacks what a target compares. */
export function targets(summaries: ShapeSummary[]): Target[] {
  const out: Target[] = [];
  for (const s of summaries) {
    const d = s.figures.dvfs;
    if (d === undefined) continue;
    const share = d.commit.seconds / d.stage.seconds;
    out.push({ name: `dvfs commit ≤ 10 % of its stage time (${s.shape})`, measured: pct(share), pass: share <= 0.1 });
  }
  const large = summaries.find((s) => s.shape === 'large')?.figures.dvfs;
  const small = summaries.find((s) => s.shape === 'small')?.figures.dvfs;
  if (large !== undefined && small !== undefined) {
    const r = small.push.mbPerSecond / large.push.mbPerSecond;
    out.push({ name: 'dvfs push of small ≥ 50 % of the large-shape bandwidth', measured: `${pct(r)} (${small.push.mbPerSecond.toFixed(1)} vs ${large.push.mbPerSecond.toFixed(1)} MB/s)`, pass: r >= 0.5 });
  } else out.push({ name: 'dvfs push of small ≥ 50 % of the large-shape bandwidth', measured: 'needs shapes large and small', pass: null });
  const overPlain = summaries.find((s) => s.shape === 'large')?.dvfsOver.plain;
  if (overPlain !== undefined) out.push({ name: 'dvfs stage time ≤ 1.2× the unencrypted stage (large)', measured: `${overPlain.stage.toFixed(2)}×`, pass: overPlain.stage <= 1.2 });
  else out.push({ name: 'dvfs stage time ≤ 1.2× the unencrypted stage (large)', measured: 'needs shape large and variants dvfs and plain', pass: null });
  return out;
}

export function humanSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}
