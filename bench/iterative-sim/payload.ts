/**
 * The payload of one simulation stage: RANKS ranks in parallel (worker threads), each writing FILES files of
 * FILE_SIZE bytes below OUT/rank-<r>/, then OUT/done.json. This replaces the published benchmark's
 * `dd if=/dev/urandom` (slow on a VM: the kernel's CSPRNG runs at ~200 MB/s per core) with a seeded keystream:
 * AES-128-CTR over zeros, key from the seed, IV from (stage, rank, file). It runs at several GB/s with AES-NI,
 * is incompressible like dd's output, and any file can be regenerated afterwards to check a copy of it byte
 * for byte (payload-check.ts) without keeping a digest of what was written.
 *
 *   node dist/bench/iterative-sim/payload.js --out DIR --stage N --ranks R --files F --file-size BYTES
 *                                            --seed S [--after DIR]
 *
 * --after names the previous stage's output: the stage refuses to start unless its done.json is there (the
 * pipeline's data dependency, and a check that SLURM ran the stages in order). Prints one JSON line:
 * {"stage", "ranks", "files", "bytes", "writeSeconds"}; any error exits non-zero with the message on stderr.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

/** What one stage writes; enough to regenerate every byte of it. */
export interface StageSpec {
  stage: number;
  ranks: number;
  filesPerRank: number;
  fileSize: number;
  seed: string;
}

const CHUNK = 1 << 20;
const ZEROS = Buffer.alloc(CHUNK);

/** The stage's path of one file, relative to the stage directory. */
export function payloadPath(rank: number, file: number): string {
  return join(`rank-${rank}`, `f${String(file).padStart(5, '0')}`);
}

export const DONE_FILE = 'done.json';

/** The keystream of one file, in chunks of at most 1 MiB (the last chunk shorter). */
export function* payloadChunks(spec: StageSpec, rank: number, file: number): Generator<Buffer> {
  const key = createHash('sha256').update(`dvfs-iterative-sim:${spec.seed}`).digest().subarray(0, 16);
  const iv = createHash('sha256').update(`${spec.stage}/${rank}/${file}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  for (let left = spec.fileSize; left > 0; left -= CHUNK) {
    yield cipher.update(left >= CHUNK ? ZEROS : ZEROS.subarray(0, left));
  }
}

function writeRank(dir: string, spec: StageSpec, rank: number): void {
  const rankDir = join(dir, `rank-${rank}`);
  mkdirSync(rankDir, { recursive: true });
  for (let f = 0; f < spec.filesPerRank; f++) {
    const fd = openSync(join(dir, payloadPath(rank, f)), 'wx', 0o644);
    try {
      for (const chunk of payloadChunks(spec, rank, f)) {
        for (let done = 0; done < chunk.length; ) done += writeSync(fd, chunk, done, chunk.length - done);
      }
    } finally {
      closeSync(fd);
    }
  }
}

interface WorkerTask {
  dir: string;
  spec: StageSpec;
  rank: number;
}

function runWorker(task: WorkerTask): Promise<void> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url), { workerData: task });
    w.once('error', reject);
    w.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`rank ${task.rank} exited with code ${code}`))));
  });
}

/** Writes the whole stage (every rank in its own thread) and its done.json; returns the write seconds. */
export async function writeStage(dir: string, spec: StageSpec): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: spec.ranks }, (_, rank) => runWorker({ dir, spec, rank })));
  writeFileSync(join(dir, DONE_FILE), JSON.stringify(spec) + '\n');
  return (performance.now() - t0) / 1000;
}

function positiveInt(name: string, v: string | undefined, min = 1): number {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min} (got ${v ?? 'nothing'})`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      stage: { type: 'string' },
      ranks: { type: 'string' },
      files: { type: 'string' },
      'file-size': { type: 'string' },
      seed: { type: 'string' },
      after: { type: 'string' },
    },
  });
  if (values.out === undefined || values.seed === undefined) throw new Error('usage: payload.js --out DIR --stage N --ranks R --files F --file-size BYTES --seed S [--after DIR]');
  const spec: StageSpec = {
    stage: positiveInt('stage', values.stage),
    ranks: positiveInt('ranks', values.ranks),
    filesPerRank: positiveInt('files', values.files),
    fileSize: positiveInt('file-size', values['file-size'], 0),
    seed: values.seed,
  };
  if (values.after !== undefined && !existsSync(join(values.after, DONE_FILE))) {
    throw new Error(`stage ${spec.stage}: the previous stage's output ${join(values.after, DONE_FILE)} is missing (stages ran out of order?)`);
  }
  const writeSeconds = await writeStage(values.out, spec);
  const bytes = spec.ranks * spec.filesPerRank * spec.fileSize;
  process.stdout.write(JSON.stringify({ stage: spec.stage, ranks: spec.ranks, files: spec.ranks * spec.filesPerRank, bytes, writeSeconds }) + '\n');
}

if (!isMainThread) {
  const task = workerData as WorkerTask;
  writeRank(task.dir, task.spec, task.rank);
  parentPort?.close();
} else if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`payload: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
