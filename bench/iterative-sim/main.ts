/**
 * The published HPC benchmark (ETH/CSCS async-encfs-dvc `iterative_sim`), end to end on one machine: see
 * options.ts (USAGE) for what it runs and variant.ts for what each figure measures.
 *
 *   npm run bench:iterative-sim -- --size 256MiB --runs 3
 *
 * For each shape and run, each variant gets a fresh repository and a fresh bucket on the one local Swift; the
 * variants' order rotates from run to run. The dvfs variant checks itself after every run (dvfs-pipeline.ts
 * check()); any failure prints FAILED, writes no figures and exits 1. Exit 2: SLURM, Swift or a tool is
 * missing (the message names the Debian packages).
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { addTempDir, checkInterrupted, handleSignals, runMain } from '../lib/interrupt.js';
import { loud, makeLog } from '../lib/log.js';
import { hostInfo } from '../lib/report.js';
import { AnnexPipeline } from './annex-pipeline.js';
import { DvfsPipeline } from './dvfs-pipeline.js';
import { parseOptions, shapeOf, type Options, type Shape, type VariantId } from './options.js';
import type { StageSpec } from './payload.js';
import { podmanImage, type PodmanStageImage } from './podman-image.js';
import { writeResult, type Result, type Written } from './report.js';
import { createBucket, startServices, whyUnavailable, type Services } from './services.js';
import { summarize, targets } from './summary.js';
import type { Pipeline, VariantRun } from './variant.js';

const log = makeLog('iterative-sim');
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
const PASSWORD = 'iterative-sim benchmark password';
const PAYLOAD_SOURCE = 'AES-128-CTR keystream (seeded, per stage/rank/file), written by worker threads, one per rank';

interface RunContext {
  o: Options;
  work: string;
  services: Services;
  passwordFile: string;
  podman: PodmanStageImage | null;
}

function specsOf(shape: Shape, o: Options, run: number): StageSpec[] {
  return Array.from({ length: o.stages }, (_, i) => ({ stage: i + 1, ranks: o.ranks, filesPerRank: shape.filesPerRank, fileSize: shape.fileSize, seed: `${o.seed}-${shape.id}-${run}` }));
}

function newPipeline(ctx: RunContext, variant: VariantId, dir: string, bucket: string): Pipeline {
  const { slurm, swift } = ctx.services;
  if (variant === 'dvfs') return new DvfsPipeline({ dir, slurm, swift, bucket, passwordFile: ctx.passwordFile, podman: ctx.podman, log });
  return new AnnexPipeline({ kind: variant, dir, swift, bucket, password: PASSWORD, jobs: 4 });
}

async function oneRun(ctx: RunContext, shape: Shape, run: number, variant: VariantId, checks: string[]): Promise<VariantRun> {
  const specs = specsOf(shape, ctx.o, run);
  const dir = join(ctx.work, `${shape.id}-${run}-${variant}`);
  const bucket = `itersim-${variant}-${shape.id}-${run}`;
  const p = newPipeline(ctx, variant, dir, bucket);
  try {
    if (variant === 'dvfs') await createBucket(ctx.services.swift, bucket);
    await p.prepare();
    const stages = await p.runStages(specs);
    const push = await p.push();
    const bytes = specs.reduce((sum, s) => sum + s.ranks * s.filesPerRank * s.fileSize, 0);
    const files = specs.reduce((sum, s) => sum + s.ranks * s.filesPerRank, 0);
    if (p instanceof DvfsPipeline) {
      log(`${shape.id} run ${run + 1}: checking dvfs (verify --full, verify --remote, clone + restore + compare)`);
      const checked = await p.check(specs);
      checks.push(`${shape.id} run ${run + 1}: ${specs.length} snapshots verified; clone restored ${checked} bytes identical to the payload`);
    }
    const sum = (k: 'stage' | 'commit'): string => stages.reduce((a, s) => a + s[k], 0).toFixed(2);
    log(`${shape.id} run ${run + 1}/${ctx.o.runs} ${variant}: stage ${sum('stage')} s, commit ${sum('commit')} s, push ${push.toFixed(2)} s`);
    return { variant, shape: shape.id, run, bytes, files, stages, push, notes: p.notes() };
  } finally {
    await p.dispose();
  }
}

async function main(): Promise<void> {
  handleSignals();
  const o = parseOptions(process.argv.slice(2));
  const why = whyUnavailable(o.variants);
  if (why !== null) {
    loud(`iterative-sim cannot run here: ${why}`);
    process.exit(2);
  }
  const shapes = o.shapes.map((id) => shapeOf(id, o));
  const loadStart = loadavg();
  const work = mkdtempSync(join(o.dir, 'dvfs-bench-itersim-'));
  chmodSync(work, 0o755);
  addTempDir(work);
  const passwordFile = join(work, 'password');
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const services = await startServices(log);
  const runs: VariantRun[] = [];
  const checks: string[] = [];
  const done: Shape[] = [];
  // The figures are written after every shape (marked partial until the last), so a long run stopped
  // midway keeps what it measured; a failed check stops before anything more is written.
  const save = (): Written => {
    const summary = summarize(
      runs,
      done.map((s) => ({ id: s.id, fileSize: s.fileSize })),
    );
    const result: Result = {
      benchmark: 'iterative-sim',
      date: new Date().toISOString().slice(0, 10),
      host: hostInfo(),
      complete: done.length === shapes.length,
      loadAverage: { start: loadStart, end: loadavg() },
      options: { shapes: o.shapes, variants: o.variants, size: o.size, ranks: o.ranks, runs: o.runs, stages: o.stages, filesPerRank: o.filesPerRank, engine: o.engine, seed: o.seed },
      payloadSource: PAYLOAD_SOURCE,
      shapes: done,
      runs,
      summary,
      targets: targets(summary),
      selfCheck: { passed: true, checks },
    };
    return writeResult(result, o.results);
  };
  let written: Written | null = null;
  try {
    const podman = o.engine === 'podman' ? await podmanImage(join(work, 'image'), log) : null;
    const ctx: RunContext = { o, work, services, passwordFile, podman };
    for (const shape of shapes) {
      log(`${shape.id}: ${o.stages} stages × ${o.ranks} ranks × ${shape.filesPerRank} files of ${shape.fileSize} bytes`);
      for (let run = 0; run < o.runs; run++) {
        // Rotate the order so no variant always goes first (or last) on a warm or cold machine.
        const order = o.variants.map((_, i) => o.variants[(i + run) % o.variants.length] as VariantId);
        for (const variant of order) {
          checkInterrupted();
          runs.push(await oneRun(ctx, shape, run, variant, checks));
        }
      }
      done.push(shape);
      written = save();
      log(`results so far (${done.length}/${shapes.length} shapes): ${written.md}`);
    }
  } catch (e) {
    loud(`FAILED: ${(e as Error).message}`);
    throw e;
  } finally {
    await services.stop();
    await rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
  const final = written ?? save();
  log(`results: ${final.json}, ${final.md}, ${final.svg}`);
  process.stdout.write(readFileSync(o.json ? final.json : final.md, 'utf8'));
}

runMain({ name: 'iterative-sim benchmark', log, stopping: 'removing the work directory (SLURM and Swift stop with this process: their watchdogs)', removeDir: (dir) => rm(dir, { recursive: true, force: true }) }, main);
