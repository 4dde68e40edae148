/**
 * Command line of the iterative-sim benchmark, and the shapes it runs: the published benchmark's three
 * file-size classes, as files per rank (large 1, medium 10^3, small 10^4), each rank writing an equal share of
 * the stage's aggregate size.
 */
import { cpus, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseByteSize } from '../../daemon/util/size.js';

export type ShapeId = 'large' | 'medium' | 'small';
export const ALL_SHAPES: ShapeId[] = ['large', 'medium', 'small'];
export type VariantId = 'plain' | 'encfs' | 'dvfs';
export const ALL_VARIANTS: VariantId[] = ['plain', 'encfs', 'dvfs'];
export type Engine = 'host' | 'podman';

/** Files per rank of the published benchmark. */
export const PUBLISHED_FILES_PER_RANK: Record<ShapeId, number> = { large: 1, medium: 1000, small: 10_000 };

export interface Shape {
  id: ShapeId;
  filesPerRank: number;
  /** Bytes of each file: the stage's size / ranks / files per rank (rounded down). */
  fileSize: number;
}

export interface Options {
  shapes: ShapeId[];
  variants: VariantId[];
  /** Aggregate bytes each stage writes (all ranks together). */
  size: number;
  ranks: number;
  runs: number;
  stages: number;
  filesPerRank: Record<ShapeId, number>;
  engine: Engine;
  /** Base of the work directory. */
  dir: string;
  /** Where the JSON, Markdown and SVG go. */
  results: string;
  seed: string;
  json: boolean;
}

export const DEFAULT_RESULTS = fileURLToPath(new URL('../../../bench/results/iterative-sim/', import.meta.url));

export const USAGE = `usage: node dist/bench/iterative-sim/main.js [options]     (npm run bench:iterative-sim -- [options])

The ETH/CSCS iterative_sim benchmark on one machine: a linear pipeline of simulation stages, each a SLURM
job writing its payload through a dvfs mount, committed by its finalize job and pushed to a local Swift;
the same pipeline on a plain directory and on stock EncFS, each with git-annex (add, commit, copy to an S3
special remote on the same Swift). Every dvfs snapshot is verified and the pushed history cloned back and
compared with the payload byte for byte; a failed check prints FAILED and no figures.

options:
  --shapes LIST         large,medium,small (files per rank: 1, 1000, 10000)     default all
  --variants LIST       plain,encfs,dvfs                                        default all
  --size SIZE           aggregate bytes per stage, e.g. 256MiB                  default 1GiB
  --ranks N             ranks writing in parallel per stage                     default ${cpus().length} (cores)
  --runs N              runs per shape (figures are medians)                    default 3
  --stages N            stages of the pipeline                                  default 7
  --files-per-rank L    override files per rank, e.g. medium=100,small=1000
  --engine E            host | podman: where the dvfs stage's writer runs        default host
  --dir DIR             base of the work directory                              default ${tmpdir()}
  --results DIR         where <date>-<host>.json/.md/.svg go                    default bench/results/iterative-sim
  --seed S              payload seed                                            default iterative-sim
  --json                print the JSON result instead of the Markdown table
  -h, --help            this help
`;

function list<T extends string>(name: string, v: string, all: readonly T[]): T[] {
  const xs = v.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = xs.filter((x) => !(all as readonly string[]).includes(x));
  if (bad.length > 0) throw new Error(`--${name}: unknown ${bad.join(', ')} (one of ${all.join(', ')})`);
  if (xs.length === 0) throw new Error(`--${name}: empty list`);
  return xs as T[];
}

function int(name: string, v: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min} (got ${v})`);
  return n;
}

function filesPerRank(v: string | undefined): Record<ShapeId, number> {
  const out = { ...PUBLISHED_FILES_PER_RANK };
  if (v === undefined) return out;
  for (const part of v.split(',').filter(Boolean)) {
    const [k, n] = part.split('=');
    const id = list('files-per-rank', k ?? '', ALL_SHAPES)[0] as ShapeId;
    out[id] = int(`files-per-rank ${id}`, n ?? '', 1);
  }
  return out;
}

/** Parses argv; prints the usage and exits on --help; throws with the option named on a mistake. */
export function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      shapes: { type: 'string', default: ALL_SHAPES.join(',') },
      variants: { type: 'string', default: ALL_VARIANTS.join(',') },
      size: { type: 'string', default: '1GiB' },
      ranks: { type: 'string', default: String(cpus().length) },
      runs: { type: 'string', default: '3' },
      stages: { type: 'string', default: '7' },
      'files-per-rank': { type: 'string' },
      engine: { type: 'string', default: 'host' },
      dir: { type: 'string', default: tmpdir() },
      results: { type: 'string', default: DEFAULT_RESULTS },
      seed: { type: 'string', default: 'iterative-sim' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const size = parseByteSize(values.size);
  if (size === null || size < 1) throw new Error(`--size: cannot read ${values.size} (e.g. 8MiB, 256MiB, 1GiB)`);
  const engine = list('engine', values.engine, ['host', 'podman'] as const)[0] as Engine;
  return {
    shapes: list('shapes', values.shapes, ALL_SHAPES),
    variants: list('variants', values.variants, ALL_VARIANTS),
    size,
    ranks: int('ranks', values.ranks, 1),
    runs: int('runs', values.runs, 1),
    stages: int('stages', values.stages, 1),
    filesPerRank: filesPerRank(values['files-per-rank']),
    engine,
    dir: values.dir,
    results: values.results,
    seed: values.seed,
    json: values.json,
  };
}

/** The shape as this run writes it: at least one byte per file. */
export function shapeOf(id: ShapeId, o: Pick<Options, 'size' | 'ranks' | 'filesPerRank'>): Shape {
  const filesPerRank = o.filesPerRank[id];
  const fileSize = Math.floor(o.size / o.ranks / filesPerRank);
  if (fileSize < 1) throw new Error(`--size ${o.size} is too small for ${id}: ${o.ranks} ranks × ${filesPerRank} files leaves no byte per file`);
  return { id, filesPerRank, fileSize };
}
