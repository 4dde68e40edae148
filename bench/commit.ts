/**
 * Versioning benchmark: how long recording a version takes with dvfs (`dvfs commit` on a mounted encfs-mode
 * repository) and with git-annex, DataLad and restic on the same files in a plain directory, plus
 * `sha256sum` of every file as the re-hash-everything floor. A scaled-down version of the ETH/CSCS
 * async-encfs-dvc table (large, medium and small files), run on one machine in one script.
 *
 *   node dist/bench/commit.js [--shapes large,medium,small] [--runs N] [--scale S] [--dir BASE]
 *                             [--only dvfs,git-annex,datalad,restic,sha256sum] [--no-install] [--no-pin]
 *                             [--dvfs PATH/cli/dvfs.js] [--kdf-iterations N] [--json]
 *                             [--out FILE] [--md FILE] [--no-save] [--note TEXT]
 *   node dist/bench/commit.js --render REPORT.json [--md FILE]      (tables of a saved report; runs nothing)
 *   npm run bench:commit -- [OPTIONS]    (builds the checkout first, then runs the above)
 *
 * Shapes (at --scale 1): large 1 x 1 GiB, medium 1 000 x 1 MiB, small 10 000 x 100 KiB (1 000 files per
 * directory). --scale (or DVFS_BENCH_SCALE) multiplies both the file counts and the file sizes (0.1: small
 * is 1 000 x 10 KiB). File contents are deterministic pseudo-random bytes (AES-256-CTR of zeros under a key
 * derived from the shape, one stream per file and version), so every tool sees the same bytes.
 *
 * dvfs runs from a copy of the checkout's build taken at start (dist/, the launcher, the native codec), so a
 * rebuild of the checkout during the benchmark neither breaks nor mixes the runs; --no-pin runs it in place.
 * Peers missing from PATH are installed with apt-get (as root; --no-install to forbid), or reported MISSING.
 *
 * Per shape, the files are generated once into a source directory; then per run and tool (tools in a
 * rotating order, every run in fresh repositories and directories):
 *   dvfs     `dvfs init --mode encfs --kdf-iterations N`, `dvfs mount`; write: `cp -r SRC/. MNT/` + `sync`;
 *            then `node cli/dvfs.js commit REPO --json -m MSG` while mounted (whole process timed)
 *   peers    write (reference, plain directory): `cp -r SRC/. TREE/` + `sync`; untimed repository set-up;
 *            then the peer's recording command (whole processes timed)
 *   steps    first (everything new), changed (1 % of the files rewritten with new content, at least one),
 *            nochange (nothing touched since); sha256sum only does first and changed (it keeps no state,
 *            every step is the same full hash)
 * Before each timed step `sync` runs untimed. Page caches are NOT dropped: every tool reads warm data.
 * The median of --runs runs is reported. Seconds are spawn-to-exit wall time of the processes.
 *
 * Targets (the issue's): small-shape first commit >= 5x faster than restic's first backup and >= 50x faster
 * than git annex add + commit; dvfs first commit <= 10 % of dvfs's own write time on every shape; the 1 %
 * commit <= 0.3 s; the no-change commit <= 0.2 s (whole process).
 *
 * Results go to bench/results/commit-<YYYY-MM-DD>.{json,md} (commit-<date>-scale<S> when scaled) unless
 * --out/--md/--no-save say otherwise. Everything is unmounted and the work directory is removed at the end,
 * on error and on Ctrl-C.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statfsSync, symlinkSync, writeFileSync } from 'node:fs';
import { lstat, mkdir, open, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { addTempDir, checkInterrupted, cleanup, finishVolume, handleSignals, removeAtEndIfEmpty, runMain, trackVolume } from './lib/interrupt.js';
import { loud, makeLog } from './lib/log.js';
import { COMMIT_PEERS, ensurePeers, newPeerWorkspace, peerEnvironment, removeTree, type CommitPeer, type CommitStep, type PeerStepResult } from './lib/peers.js';
import { CommandError, cpuSeconds, isAborting, mountsUnder, run, which, type RunResult } from './lib/proc.js';
import { fsTypeName, hostInfo, median, TMPFS_MAGIC, type HostInfo } from './lib/report.js';
import { DvfsVolume, fuseUnmount, type VolumeContext } from './lib/volumes.js';

// ---------------------------------------------------------------------------------------------------------
// Options

type ShapeId = 'large' | 'medium' | 'small';
const ALL_SHAPES: ShapeId[] = ['large', 'medium', 'small'];
const BASE_SHAPES: Record<ShapeId, { files: number; fileBytes: number }> = {
  large: { files: 1, fileBytes: 1 << 30 },
  medium: { files: 1000, fileBytes: 1 << 20 },
  small: { files: 10_000, fileBytes: 100 * 1024 },
};
type ToolName = 'dvfs' | CommitPeer;
const ALL_TOOLS: ToolName[] = ['dvfs', ...COMMIT_PEERS];
type StepId = 'write' | CommitStep;
const STEPS: StepId[] = ['write', 'first', 'changed', 'nochange'];
const COMMIT_STEPS: CommitStep[] = ['first', 'changed', 'nochange'];
const MESSAGES: Record<CommitStep, string> = { first: 'first', changed: 'change 1%', nochange: 'no change' };
const PER_DIR = 1000;
const DVFS_REPORT_FIELDS = ['snapshot', 'nothingToCommit', 'added', 'changed', 'removed', 'files', 'bytes', 'filesHashed', 'bytesHashed', 'objectsAdded', 'bytesStored', 'seconds'] as const;

interface Options {
  runs: number;
  scale: number;
  shapes: ShapeId[];
  only: ToolName[];
  dir: string;
  dvfsCli: string;
  kdfIterations: number;
  install: boolean;
  /** Run dvfs from a private copy of the build, so a rebuild of the checkout during the run cannot break it. */
  pin: boolean;
  json: boolean;
  out: string | null;
  md: string | null;
  render: string | null;
  /** Free text stored with the report (conditions of the run). */
  note: string | null;
}

const USAGE =
  'usage: node dist/bench/commit.js [--shapes large,medium,small] [--runs N] [--scale S] [--dir BASE]\n' +
  '                                 [--only dvfs,git-annex,datalad,restic,sha256sum] [--no-install] [--no-pin]\n' +
  '                                 [--dvfs PATH/cli/dvfs.js] [--kdf-iterations N] [--json]\n' +
  '                                 [--out FILE] [--md FILE] [--no-save] [--note TEXT]\n' +
  '       node dist/bench/commit.js --render REPORT.json [--md FILE] [--out FILE] [--json] [--note TEXT]   (re-print a saved report)\n' +
  'env: DVFS_BENCH_SCALE (default for --scale), DVFS_BENCH_COMMIT_DIR (default for --dir, else /tmp/dvfs-bench-commit),\n' +
  '     DVFS_BENCH_MOUNT_ARGS (extra dvfs mount flags), DVFS_BENCH_COMMIT_ARGS (extra dvfs commit flags)\n';

const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

function fail(msg: string): never {
  process.stderr.write(`commit bench: ${msg}\n${USAGE}`);
  process.exit(2);
}

function options(): Options {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        runs: { type: 'string', default: '3' },
        scale: { type: 'string' },
        shapes: { type: 'string', default: ALL_SHAPES.join(',') },
        only: { type: 'string', default: ALL_TOOLS.join(',') },
        dir: { type: 'string' },
        dvfs: { type: 'string' },
        'kdf-iterations': { type: 'string', default: '1000' },
        'no-install': { type: 'boolean', default: false },
        'no-pin': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        out: { type: 'string' },
        md: { type: 'string' },
        'no-save': { type: 'boolean', default: false },
        render: { type: 'string' },
        note: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}`);
    return n;
  };
  const scaleArg = values.scale ?? process.env['DVFS_BENCH_SCALE'] ?? '1';
  const scale = Number(scaleArg);
  if (!Number.isFinite(scale) || scale <= 0 || scale > 1) fail(`--scale / DVFS_BENCH_SCALE must be a number in (0, 1], not '${scaleArg}'`);
  const list = <T extends string>(flag: string, v: string | undefined, known: readonly T[]): T[] => {
    const out: T[] = [];
    for (const s of (v ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
      if (!(known as readonly string[]).includes(s)) fail(`--${flag}: unknown '${s}' (known: ${known.join(', ')})`);
      if (!out.includes(s as T)) out.push(s as T);
    }
    if (out.length === 0) fail(`--${flag} names nothing`);
    return out;
  };
  const shapes = list('shapes', values.shapes, ALL_SHAPES);
  const tag = `commit-${new Date().toISOString().slice(0, 10)}${scale === 1 ? '' : `-scale${scale}`}`;
  const save = !values['no-save'];
  return {
    runs: int('runs', values.runs, 1),
    scale,
    shapes: ALL_SHAPES.filter((s) => shapes.includes(s)),
    only: ALL_TOOLS.filter((t) => list('only', values.only, ALL_TOOLS).includes(t)),
    dir: resolve(values.dir ?? process.env['DVFS_BENCH_COMMIT_DIR'] ?? '/tmp/dvfs-bench-commit'),
    dvfsCli: resolve(values.dvfs ?? fileURLToPath(new URL('../../cli/dvfs.js', import.meta.url))),
    kdfIterations: int('kdf-iterations', values['kdf-iterations'], 1),
    install: !values['no-install'],
    pin: !values['no-pin'],
    json: values.json,
    out: values.out ?? (save && !values.render ? join(RESULTS_DIR, `${tag}.json`) : null),
    md: values.md ?? (save && !values.render ? join(RESULTS_DIR, `${tag}.md`) : null),
    render: values.render ?? null,
    note: values.note ?? null,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Shapes and file contents

interface Shape {
  id: ShapeId;
  files: number;
  fileBytes: number;
  totalBytes: number;
  /** Indices of the files the "changed" step rewrites (1 % of the files, at least one, evenly spread). */
  changed: number[];
  changedBytes: number;
}

function makeShape(id: ShapeId, scale: number): Shape {
  const b = BASE_SHAPES[id];
  const files = Math.max(1, Math.round(b.files * scale));
  const fileBytes = Math.max(1024, Math.round(b.fileBytes * scale));
  const n = Math.max(1, Math.round(files / 100));
  const changed = Array.from({ length: n }, (_, k) => Math.floor((k * files) / n));
  return { id, files, fileBytes, totalBytes: files * fileBytes, changed, changedBytes: n * fileBytes };
}

/** Relative path of file `i` (like bench/lib/make-files.ts: d000/f00000, PER_DIR files per directory). */
function relPath(shape: Shape, i: number): string {
  const dirs = Math.max(1, Math.ceil(shape.files / PER_DIR));
  const dWidth = Math.max(3, String(dirs - 1).length);
  const fWidth = Math.max(5, String(Math.max(0, shape.files - 1)).length);
  return join(`d${String(Math.floor(i / PER_DIR)).padStart(dWidth, '0')}`, `f${String(i).padStart(fWidth, '0')}`);
}

const CHUNK = 1 << 20;
const ZEROS = Buffer.alloc(CHUNK);

/**
 * Writes version `version` of file `index` of `shape` at `path`: AES-256-CTR keystream under a key derived
 * from the shape, the IV carrying (index, version) in its high bytes so no two files or versions share a
 * block. Truncates an existing file; replaces a symlink (git-annex's locked files) by a regular file.
 */
async function writeContent(path: string, shape: Shape, index: number, version: number): Promise<void> {
  try {
    if ((await lstat(path)).isSymbolicLink()) await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const key = createHash('sha256').update(`dvfs-bench-commit:${shape.id}`).digest();
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(index, 0);
  iv.writeUInt32BE(version, 4);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const fh = await open(path, 'w', 0o644);
  try {
    let left = shape.fileBytes;
    while (left > 0) {
      const n = Math.min(left, CHUNK);
      const buf = cipher.update(ZEROS.subarray(0, n));
      let off = 0;
      while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
      left -= n;
    }
  } finally {
    await fh.close();
  }
}

async function writeSourceTree(dir: string, shape: Shape): Promise<void> {
  for (let i = 0; i < shape.files; i++) {
    checkInterrupted();
    const p = join(dir, relPath(shape, i));
    if (i % PER_DIR === 0) await mkdir(join(p, '..'), { recursive: true });
    await writeContent(p, shape, i, 0);
  }
}

/** Rewrites the shape's 1 % with version 1 of their content; returns the wall seconds it took. */
async function rewriteChanged(tree: string, shape: Shape): Promise<number> {
  const t = performance.now();
  for (const i of shape.changed) {
    checkInterrupted();
    await writeContent(join(tree, relPath(shape, i)), shape, i, 1);
  }
  return (performance.now() - t) / 1000;
}

// ---------------------------------------------------------------------------------------------------------
// dvfs

interface DvfsCommitResult {
  seconds: number;
  report: Record<string, unknown>;
  raw: string;
}

/** A dvfs repository (encfs mode, given PBKDF2 iterations) mounted through the CLI, plus `dvfs commit`. */
class DvfsCommitVolume extends DvfsVolume {
  protected override unmountTimeoutMs = 600_000;
  constructor(
    dir: string,
    ctx: VolumeContext,
    private readonly kdfIterations: number,
  ) {
    super('dvfs', dir, ctx);
  }
  protected override initArgs(): string[] {
    return ['--kdf-iterations', String(this.kdfIterations)];
  }
  protected override async doUnmountForCleanup(): Promise<void> {
    try {
      await this.cli(['umount', this.mnt], 60_000, true);
    } catch (e) {
      if (mountsUnder(this.dir).length > 0) await fuseUnmount(this.mnt, true);
      else throw e;
    }
  }
  protected override async findPid(): Promise<number | null> {
    const pid = (await this.status())['pid'];
    return typeof pid === 'number' ? pid : null;
  }
  /** `dvfs commit REPO --json -m MESSAGE`, timed spawn to exit (Node start-up included). */
  async commit(message: string, timeoutMs: number): Promise<DvfsCommitResult> {
    const extra = (process.env['DVFS_BENCH_COMMIT_ARGS'] ?? '').split(' ').filter((a) => a.length > 0);
    let r: RunResult;
    try {
      r = await this.cli(['commit', this.repo, '--json', '-m', message, ...extra], timeoutMs);
    } catch (e) {
      const out = e instanceof CommandError && e.result ? e.result.stdout + e.result.stderr : '';
      if (/unknown command 'commit'/.test(out + (e as Error).message)) throw new Error("dvfs has no 'commit' command yet (dvfs: unknown command 'commit')");
      throw e;
    }
    return { seconds: r.seconds, report: parseJsonReport(r.stdout), raw: r.stdout.trim().slice(0, 4000) };
  }
}

function parseJsonReport(stdout: string): Record<string, unknown> {
  const text = stdout.trim();
  const candidates = [text, ...text.split('\n').reverse().filter((l) => l.trim().startsWith('{'))];
  for (const c of candidates) {
    try {
      const v = JSON.parse(c) as unknown;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      /* next */
    }
  }
  throw new Error(`dvfs commit --json printed no JSON object: ${text.slice(0, 300)}`);
}

// ---------------------------------------------------------------------------------------------------------
// State, logging, cleanup

interface ToolState {
  tool: ToolName;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  /** The step under way (set before its untimed preparation), and the one that failed. */
  step: StepId;
  failedStep?: StepId;
  samples: Record<StepId, number[]>;
  /** Untimed: seconds to rewrite the 1 % (through the mount for dvfs). */
  rewrite: number[];
  /** dvfs: the --json reports; peers: what the recording did. One per run. */
  reports: Record<CommitStep, Array<Record<string, unknown>>>;
  /** dvfs: daemon user+system CPU seconds during the commit. */
  daemonCpu: Record<CommitStep, number[]>;
}

interface Problem {
  shape: ShapeId;
  tool: ToolName;
  run: number;
  step?: StepId;
  message: string;
}

const log = makeLog('commit-bench');

// ---------------------------------------------------------------------------------------------------------
// The benchmark

interface Env {
  o: Options;
  base: string;
  ctx: VolumeContext;
  peerEnv: NodeJS.ProcessEnv;
  problems: Problem[];
  warnings: Problem[];
}

const sync = async (): Promise<number> => (await run('sync', [], { timeoutMs: 1_800_000 })).seconds;

/** A generous limit for one step on a shape (annex at 10 000 files takes minutes on slow disks). */
const stepTimeoutMs = (s: Shape): number => 600_000 + s.files * 300 + Math.ceil(s.totalBytes / (1 << 20)) * 1_000;

/** `cp -r SRC/. DST/` then `sync`: the write step, for dvfs through the mount, for the peers into a plain directory. */
async function timedCopy(src: string, dst: string, shape: Shape): Promise<number> {
  await sync();
  const cp = await run('cp', ['-r', `${src}/.`, `${dst}/`], { timeoutMs: stepTimeoutMs(shape) });
  return cp.seconds + (await sync());
}

function newState(tool: ToolName): ToolState {
  return {
    tool,
    status: 'ok',
    step: 'write',
    samples: { write: [], first: [], changed: [], nochange: [] },
    rewrite: [],
    reports: { first: [], changed: [], nochange: [] },
    daemonCpu: { first: [], changed: [], nochange: [] },
  };
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function warn(env: Env, p: Problem): void {
  env.warnings.push(p);
  loud(`WARNING ${p.shape} run ${p.run} ${p.tool}${p.step ? ` ${p.step}` : ''}: ${p.message}`);
}

/** What the dvfs report should say about each step; a mismatch is a warning (the timing is still kept). */
function checkDvfsReport(env: Env, shape: Shape, run: number, step: CommitStep, r: Record<string, unknown>): void {
  const w = (message: string): void => warn(env, { shape: shape.id, tool: 'dvfs', run, step, message });
  const missing = DVFS_REPORT_FIELDS.filter((f) => !(f in r));
  if (missing.length > 0) w(`the --json report lacks ${missing.join(', ')}`);
  const expect = (field: string, ...want: Array<number | boolean>): void => {
    if (field in r && !want.includes(r[field] as number | boolean)) w(`report says ${field}=${JSON.stringify(r[field])}, expected ${want.map(String).join(' or ')}`);
  };
  if (step === 'first') {
    expect('nothingToCommit', false);
    // Whether directories count as added entries is the command's choice: either is right.
    expect('added', shape.files, shape.files + Math.ceil(shape.files / PER_DIR));
    expect('files', shape.files);
    expect('bytes', shape.totalBytes);
  } else if (step === 'changed') {
    expect('nothingToCommit', false);
    expect('changed', shape.changed.length);
    expect('added', 0);
    expect('removed', 0);
  } else {
    expect('nothingToCommit', true);
    expect('filesHashed', 0);
  }
}

function checkPeerSummary(env: Env, shape: Shape, tool: CommitPeer, run: number, step: CommitStep, s: PeerStepResult['summary']): void {
  const w = (message: string): void => warn(env, { shape: shape.id, tool, run, step, message });
  const want = step === 'first' ? shape.files : step === 'changed' ? shape.changed.length : 0;
  if (tool === 'git-annex' || tool === 'datalad') {
    if (s['commitCreated'] !== (step !== 'nochange')) w(`commit created: ${String(s['commitCreated'])}, expected ${String(step !== 'nochange')}`);
    if (s['pathsInCommit'] !== want) w(`the commit holds ${String(s['pathsInCommit'])} paths, expected ${want}`);
  } else if (tool === 'restic') {
    const touched = (num(s['files_new']) ?? 0) + (num(s['files_changed']) ?? 0);
    if (!('files_new' in s)) w('restic printed no summary');
    else if (touched !== want) w(`restic saw ${touched} new or changed files, expected ${want}`);
  }
}

async function benchDvfs(env: Env, shape: Shape, src: string, st: ToolState, runNo: number): Promise<void> {
  const dir = join(env.base, shape.id, `dvfs-run${runNo}`);
  const vol = new DvfsCommitVolume(dir, env.ctx, env.o.kdfIterations);
  trackVolume(vol);
  try {
    st.step = 'write';
    await vol.create();
    const w = await timedCopy(src, vol.mnt, shape);
    st.samples.write.push(w);
    log(`  ${shape.id} run ${runNo} dvfs: write ${w.toFixed(3)} s (cp -r + sync through the mount, ${mbps(shape.totalBytes, w)})`);
    for (const step of COMMIT_STEPS) {
      checkInterrupted();
      st.step = step;
      if (step === 'changed') {
        const rw = await rewriteChanged(vol.mnt, shape);
        st.rewrite.push(rw);
        log(`  ${shape.id} run ${runNo} dvfs: rewrote ${shape.changed.length} file(s) through the mount in ${rw.toFixed(3)} s (untimed)`);
      }
      await sync();
      const pid = vol.daemonPid();
      const c0 = pid === null ? null : cpuSeconds(pid);
      const res = await vol.commit(MESSAGES[step], stepTimeoutMs(shape));
      const c1 = pid === null ? null : cpuSeconds(pid);
      st.samples[step].push(res.seconds);
      st.reports[step].push(res.report);
      if (c0 !== null && c1 !== null) st.daemonCpu[step].push(c1 - c0);
      checkDvfsReport(env, shape, runNo, step, res.report);
      const r = res.report;
      log(
        `  ${shape.id} run ${runNo} dvfs: commit ${step} ${res.seconds.toFixed(3)} s (reported ${fmt(num(r['seconds']), 3)} s; ` +
          `filesHashed ${String(r['filesHashed'] ?? '?')}, bytesHashed ${String(r['bytesHashed'] ?? '?')}, objectsAdded ${String(r['objectsAdded'] ?? '?')}` +
          `${c0 !== null && c1 !== null ? `; daemon cpu ${(c1 - c0).toFixed(2)} s` : ''})`,
      );
    }
    await vol.unmount();
  } finally {
    await finishVolume(vol);
  }
}

async function benchPeer(env: Env, shape: Shape, src: string, st: ToolState, tool: CommitPeer, runNo: number): Promise<void> {
  const dir = join(env.base, shape.id, `${tool}-run${runNo}`);
  const ws = newPeerWorkspace(tool, dir, { env: env.peerEnv, timeoutMs: stepTimeoutMs(shape) });
  try {
    st.step = 'write';
    mkdirSync(ws.tree, { recursive: true });
    const w = await timedCopy(src, ws.tree, shape);
    st.samples.write.push(w);
    log(`  ${shape.id} run ${runNo} ${tool}: write ${w.toFixed(3)} s (cp -r + sync into a plain directory, ${mbps(shape.totalBytes, w)})`);
    st.step = 'first';
    await ws.prepare();
    for (const step of COMMIT_STEPS) {
      checkInterrupted();
      if (step === 'nochange' && tool === 'sha256sum') continue;
      st.step = step;
      if (step === 'changed') st.rewrite.push(await rewriteChanged(ws.tree, shape));
      await sync();
      const res = await ws.record(step, MESSAGES[step]);
      st.samples[step].push(res.seconds);
      st.reports[step].push(res.summary);
      checkPeerSummary(env, shape, tool, runNo, step, res.summary);
      const info = Object.entries(res.summary)
        .filter(([k]) => k !== 'snapshot_id')
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(', ');
      log(`  ${shape.id} run ${runNo} ${tool}: ${step} ${res.seconds.toFixed(3)} s${info ? ` (${info})` : ''}`);
    }
  } finally {
    if (!isAborting()) await removeTree(dir);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Results

interface ResultRow {
  shape: ShapeId;
  tool: ToolName;
  status: ToolState['status'];
  reason?: string;
  /** The step that failed (earlier steps' samples are kept; later steps were not run). */
  failedStep?: StepId;
  runs: number;
  /** Median seconds per step (null: not run, or failed). */
  seconds: Record<StepId, number | null>;
  samples: Record<StepId, number[]>;
  /** This tool's first-step median over dvfs's (how many times slower than dvfs). */
  firstVsDvfs: number | null;
  rewriteSeconds: number | null;
}

interface DvfsStepRow {
  shape: ShapeId;
  step: CommitStep;
  seconds: number | null;
  reportedSeconds: number | null;
  daemonCpuSeconds: number | null;
  /** The report of the first run (the counts do not depend on the run). */
  report: Record<string, unknown> | null;
}

interface Check {
  id: string;
  description: string;
  value: number | null;
  unit: 's' | 'x' | '%';
  target: string;
  status: 'PASS' | 'FAIL' | 'N/A';
  note?: string;
}

interface ShapeInfo {
  id: ShapeId;
  files: number;
  fileBytes: number;
  totalBytes: number;
  changedFiles: number;
  changedBytes: number;
}

interface PeerInfo {
  name: ToolName;
  ok: boolean;
  version?: string;
  reason?: string;
  installed?: string[];
}

interface Report {
  benchmark: 'commit';
  date: string;
  command: string;
  host: HostInfo;
  workdir: { path: string; fstype: string };
  cachesDropped: false;
  options: { runs: number; scale: number; shapes: ShapeId[]; only: ToolName[]; kdfIterations: number; perDir: number; pinnedBuild?: boolean };
  shapes: ShapeInfo[];
  tools: PeerInfo[];
  results: ResultRow[];
  dvfs: DvfsStepRow[];
  checks: Check[];
  warnings: Problem[];
  errors: Problem[];
  note?: string;
}


function computeRows(shape: Shape, states: ToolState[]): { rows: ResultRow[]; dvfs: DvfsStepRow[] } {
  const rows: ResultRow[] = [];
  const dvfsState = states.find((s) => s.tool === 'dvfs');
  const dvfsFirst = dvfsState ? median(dvfsState.samples.first) : null;
  for (const st of states) {
    if (st.status === 'skipped') continue;
    const seconds = {} as Record<StepId, number | null>;
    // Only completed steps have samples: a failed tool keeps what it measured before the failure.
    for (const step of STEPS) seconds[step] = median(st.samples[step]);
    rows.push({
      shape: shape.id,
      tool: st.tool,
      status: st.status,
      ...(st.reason ? { reason: st.reason } : {}),
      ...(st.failedStep ? { failedStep: st.failedStep } : {}),
      runs: st.samples.write.length,
      seconds,
      samples: st.samples,
      firstVsDvfs: st.tool !== 'dvfs' && seconds.first !== null && dvfsFirst !== null && dvfsFirst > 0 ? seconds.first / dvfsFirst : null,
      rewriteSeconds: median(st.rewrite),
    });
  }
  const dvfs: DvfsStepRow[] = [];
  if (dvfsState && dvfsState.status !== 'skipped') {
    for (const step of COMMIT_STEPS) {
      const reps = dvfsState.reports[step];
      dvfs.push({
        shape: shape.id,
        step,
        seconds: median(dvfsState.samples[step]),
        reportedSeconds: median(reps.map((r) => num(r['seconds'])).filter((v): v is number => v !== null)),
        daemonCpuSeconds: median(dvfsState.daemonCpu[step]),
        report: reps[0] ?? null,
      });
    }
  }
  return { rows, dvfs };
}

function computeChecks(o: Options, shapes: Shape[], rows: ResultRow[], tools: PeerInfo[]): Check[] {
  const checks: Check[] = [];
  const scaled = o.scale !== 1 ? `scaled run (--scale ${o.scale}), not the issue's sizes` : undefined;
  const row = (shape: ShapeId, tool: ToolName): ResultRow | undefined => rows.find((r) => r.shape === shape && r.tool === tool);
  const dvfsTool = tools.find((t) => t.name === 'dvfs');
  const short = (m: string | undefined): string => ((m ?? '').length > 240 ? `${(m ?? '').slice(0, 240)}...` : (m ?? ''));
  /**
   * dvfs's median seconds of `steps` on `shape`, or the check to report instead: N/A when dvfs was not run,
   * FAIL when it failed at or before a step the check needs.
   */
  const dvfsSeconds = (c: Omit<Check, 'status' | 'value'>, shape: ShapeId, steps: StepId[]): number[] | Check => {
    if (!dvfsTool || !dvfsTool.ok) return { ...c, value: null, status: 'N/A', note: `dvfs not run${dvfsTool?.reason ? `: ${short(dvfsTool.reason)}` : ''}` };
    const r = row(shape, 'dvfs');
    if (!r) return { ...c, value: null, status: 'N/A', note: 'dvfs not run' };
    const out: number[] = [];
    for (const step of steps) {
      const v = r.seconds[step];
      if (v === null) {
        const why = r.status === 'failed' ? `dvfs failed at step ${r.failedStep ?? '?'}: ${short(r.reason)}` : 'no data';
        return { ...c, value: null, status: r.status === 'failed' ? 'FAIL' : 'N/A', note: why };
      }
      out.push(v);
    }
    return out;
  };
  const push = (c: Check): void => {
    if (scaled && c.status !== 'N/A') c.note = c.note ? `${c.note}; ${scaled}` : scaled;
    checks.push(c);
  };
  const has = (s: ShapeId): boolean => shapes.some((x) => x.id === s);

  if (has('small')) {
    for (const [peer, min] of [
      ['restic', 5],
      ['git-annex', 50],
    ] as Array<[CommitPeer, number]>) {
      const base = {
        id: `small-first-vs-${peer}`,
        description: `small: dvfs first commit vs ${peer === 'restic' ? "restic's first backup" : 'git annex add + commit'}`,
        unit: 'x' as const,
        target: `>= ${min}x faster`,
      };
      const d = dvfsSeconds(base, 'small', ['first']);
      if (!Array.isArray(d)) {
        push(d);
        continue;
      }
      const pr = row('small', peer);
      const pt = tools.find((t) => t.name === peer);
      if (!pt || !pt.ok || !pr) push({ ...base, value: null, status: 'N/A', note: `${peer} not measured${pt?.reason ? `: ${short(pt.reason)}` : ''}` });
      else if (pr.firstVsDvfs === null) push({ ...base, value: null, status: 'N/A', note: `${peer}: ${short(pr.reason) || 'no data'}` });
      else push({ ...base, value: pr.firstVsDvfs, status: pr.firstVsDvfs >= min ? 'PASS' : 'FAIL' });
    }
  }
  for (const s of shapes) {
    const first = { id: `${s.id}-first-vs-write`, description: `${s.id}: dvfs first commit / dvfs write time`, unit: '%' as const, target: '<= 10 %' };
    const d1 = dvfsSeconds(first, s.id, ['write', 'first']);
    if (!Array.isArray(d1)) push(d1);
    else {
      const [w, f] = d1 as [number, number];
      const v = w > 0 ? (100 * f) / w : null;
      push({ ...first, value: v, status: v === null ? 'N/A' : v <= 10 ? 'PASS' : 'FAIL' });
    }

    const changed = { id: `${s.id}-changed`, description: `${s.id}: dvfs commit after changing 1 % of the files`, unit: 's' as const, target: '<= 0.3 s' };
    const share = s.changedBytes / s.totalBytes;
    const d2 = dvfsSeconds(changed, s.id, ['changed']);
    if (!Array.isArray(d2)) push(d2);
    else if (share > 0.02) {
      // 1 % of a one-file shape rounds up to the whole file: the target is about small changes, not this.
      push({ ...changed, value: d2[0] ?? null, status: 'N/A', note: `the change is ${s.changed.length} of ${s.files} file(s) = ${(100 * share).toFixed(0)} % of the bytes (1 % rounds up to a whole file)` });
    } else {
      const v = d2[0] ?? null;
      push({ ...changed, value: v, status: v === null ? 'N/A' : v <= 0.3 ? 'PASS' : 'FAIL' });
    }

    const nochange = { id: `${s.id}-nochange`, description: `${s.id}: dvfs commit with no change`, unit: 's' as const, target: '<= 0.2 s' };
    const d3 = dvfsSeconds(nochange, s.id, ['nochange']);
    if (!Array.isArray(d3)) push(d3);
    else {
      const v = d3[0] ?? null;
      push({ ...nochange, value: v, status: v === null ? 'N/A' : v <= 0.2 ? 'PASS' : 'FAIL' });
    }
  }
  return checks;
}

// ---------------------------------------------------------------------------------------------------------
// Output

const fmt = (v: number | null | undefined, digits: number): string => (v === null || v === undefined ? '-' : v.toFixed(digits));
function bytesText(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(n % 2 ** 30 === 0 ? 0 : 2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(n % 2 ** 20 === 0 ? 0 : 1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(n % 1024 === 0 ? 0 : 1)} KiB`;
  return `${n} B`;
}
const mbps = (bytes: number, s: number): string => (s > 0 ? `${(bytes / 1e6 / s).toFixed(1)} MB/s` : '-');
const shapeTitle = (s: ShapeInfo): string =>
  `${s.id}: ${s.files} x ${bytesText(s.fileBytes)} (${bytesText(s.totalBytes)}); 1 % = ${s.changedFiles} file(s), ${bytesText(s.changedBytes)}`;
const spread = (xs: number[]): string => (xs.length < 2 ? '-' : `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)}`);
const checkValue = (c: Check): string => (c.value === null ? '-' : c.unit === 's' ? `${c.value.toFixed(3)} s` : c.unit === '%' ? `${c.value.toFixed(1)} %` : `${c.value.toFixed(1)}x`);
const cell = (r: ResultRow, step: StepId): string => {
  const v = r.seconds[step];
  if (v !== null) return v.toFixed(3);
  if (r.tool === 'sha256sum' && step === 'nochange') return '(= first)';
  if (r.failedStep === step) return 'FAILED';
  return r.status === 'failed' ? '(not run)' : '-';
};

function table(header: string[], body: string[][], leftCols = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < leftCols ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

const RESULT_HEADER = ['tool', 'write s', 'first s', '1% changed s', 'no change s', 'first / dvfs first', 'runs min-max (first)'];
const resultCells = (r: ResultRow): string[] => [
  r.tool,
  cell(r, 'write'),
  cell(r, 'first'),
  cell(r, 'changed'),
  cell(r, 'nochange'),
  r.firstVsDvfs === null ? '-' : `${r.firstVsDvfs.toFixed(r.firstVsDvfs < 1 ? 2 : 1)}x`,
  spread(r.samples.first),
];
const DVFS_HEADER = ['step', 'process s', 'reported s', 'daemon CPU s', 'nothing?', 'added', 'changed', 'removed', 'files', 'bytes', 'filesHashed', 'bytesHashed', 'filesRehashed', 'objectsAdded', 'bytesStored'];
const dvfsCells = (d: DvfsStepRow): string[] => {
  const r = d.report ?? {};
  const v = (k: string): string => (k in r ? String(r[k]) : '-');
  return [d.step, fmt(d.seconds, 3), fmt(d.reportedSeconds, 3), fmt(d.daemonCpuSeconds, 2), v('nothingToCommit'), v('added'), v('changed'), v('removed'), v('files'), v('bytes'), v('filesHashed'), v('bytesHashed'), v('filesRehashed'), v('objectsAdded'), v('bytesStored')];
};

function textReport(rep: Report): string {
  const out: string[] = [];
  out.push(
    `Commit benchmark: median of ${rep.options.runs} run(s), seconds of the whole processes (spawn to exit); scale ${rep.options.scale}`,
    'write = cp -r + sync (dvfs: through the mount; peers: into a plain directory). Warm page caches (not dropped).',
    ...(rep.note ? [`Note: ${rep.note}`] : []),
    '',
  );
  for (const s of rep.shapes) {
    out.push(shapeTitle(s));
    out.push(table(RESULT_HEADER, rep.results.filter((r) => r.shape === s.id).map(resultCells)));
    const d = rep.dvfs.filter((x) => x.shape === s.id);
    if (d.some((x) => x.report !== null)) {
      out.push('', `dvfs commit --json reports (${s.id}, first run's counts):`);
      out.push(table(DVFS_HEADER, d.map(dvfsCells)));
    }
    out.push('');
  }
  out.push('Targets (dvfs):');
  for (const c of rep.checks) {
    out.push(`${c.status.padEnd(4)}  ${c.description.padEnd(56)} ${checkValue(c).padStart(10)}  (target ${c.target})${c.note ? `  [${c.note}]` : ''}`);
  }
  for (const t of rep.tools) if (!t.ok) out.push('', `*** ${t.name} MISSING: ${t.reason ?? ''}`);
  for (const r of rep.results) if (r.status === 'failed') out.push('', `*** ${r.shape}: ${r.tool} FAILED at step ${r.failedStep ?? '?'}: ${r.reason ?? ''}`);
  if (rep.warnings.length > 0) out.push('', `${rep.warnings.length} warning(s) about what the tools reported (see the JSON/Markdown)`);
  return out.join('\n') + '\n';
}

function markdown(rep: Report): string {
  const L: string[] = [];
  const h = rep.host;
  L.push(`# Commit (versioning) benchmark, ${rep.date}`, '');
  L.push(
    `Command: \`${rep.command}\`  `,
    `Host: ${h.cpus} x ${h.cpuModel}, ${h.memGiB} GiB RAM, kernel ${h.kernel}, Node ${h.node}  `,
    `Work directory: ${rep.workdir.fstype} (${rep.workdir.path}); page caches NOT dropped between steps (every tool reads warm data)  `,
    `Median of ${rep.options.runs} run(s); scale ${rep.options.scale}${rep.options.scale === 1 ? '' : ' (**scaled down: not the issue sizes**)'}; seconds are wall time of the whole processes, spawn to exit (dvfs: Node start-up of the CLI included).`,
    '',
  );
  if (rep.note) L.push(`Note: ${rep.note}`, '');
  L.push('| tool | version | status |', '| --- | --- | --- |');
  for (const t of rep.tools) L.push(`| ${t.name} | ${t.version ?? '-'} | ${t.ok ? 'ok' : `**MISSING**: ${t.reason ?? ''}`}${t.installed ? ` (installed by this run: ${t.installed.join(' ')})` : ''} |`);
  for (const s of rep.shapes) {
    L.push('', `## ${shapeTitle(s)}`, '');
    L.push(`| ${RESULT_HEADER.join(' | ')} |`, `| --- | ${RESULT_HEADER.slice(1).map(() => '---:').join(' | ')} |`);
    for (const r of rep.results.filter((x) => x.shape === s.id)) {
      const c = resultCells(r);
      if (r.tool === 'dvfs') c[0] = '**dvfs**';
      if (r.status === 'failed') c[0] = `${c[0]} (failed)`;
      L.push(`| ${c.join(' | ')} |`);
    }
    const d = rep.dvfs.filter((x) => x.shape === s.id);
    if (d.some((x) => x.report !== null)) {
      L.push('', `dvfs \`commit --json\` reports (counts from the first run; seconds are medians):`, '');
      L.push(`| ${DVFS_HEADER.join(' | ')} |`, `| --- | ${DVFS_HEADER.slice(1).map(() => '---:').join(' | ')} |`);
      for (const x of d) L.push(`| ${dvfsCells(x).join(' | ')} |`);
    }
  }
  L.push('', '## Targets', '', '| check | value | target | result |', '| --- | ---: | --- | --- |');
  for (const c of rep.checks) L.push(`| ${c.description} | ${checkValue(c)} | ${c.target} | **${c.status}**${c.note ? ` (${c.note})` : ''} |`);
  const failed = rep.results.filter((r) => r.status === 'failed');
  if (failed.length > 0 || rep.errors.length > 0) {
    L.push('', '## Errors', '');
    for (const e of rep.errors) L.push(`- ${e.shape} run ${e.run} ${e.tool}${e.step ? ` at step ${e.step}` : ''}: ${e.message}`);
  }
  if (rep.warnings.length > 0) {
    L.push('', '## Warnings (reports that did not say what was expected)', '');
    for (const w of rep.warnings) L.push(`- ${w.shape} run ${w.run} ${w.tool}${w.step ? ` ${w.step}` : ''}: ${w.message}`);
  }
  L.push(
    '',
    '## Method',
    '',
    '- Shapes (scale 1): large 1 x 1 GiB, medium 1 000 x 1 MiB, small 10 000 x 100 KiB, 1 000 files per directory; `--scale` multiplies counts and sizes.',
    '- Contents: deterministic pseudo-random bytes (AES-256-CTR keystream per shape, file and version), generated once per shape into a source directory; every tool gets the same bytes.',
    '- Every run uses fresh repositories and directories; tools run in a rotating order. `sync` runs (untimed) before every timed step.',
    '- write: `cp -r SRC/. DST/` + `sync`. dvfs: through the mount of a fresh `dvfs init --mode encfs --preset standard --kdf-iterations ' +
      `${rep.options.kdfIterations}\` repository; peers: into a plain directory on the same disk (the reference, not a peer's cost).`,
    `- dvfs ran ${rep.options.pinnedBuild ? 'from a copy of the checkout\'s build taken at start (a rebuild during the run cannot change or break it)' : 'from the checkout as it was (not pinned)'}.`,
    '- dvfs steps: `node cli/dvfs.js commit REPO --json -m MSG` while mounted (the CLI asks the daemon over its control socket); whole process timed; "daemon CPU s" is the mount daemon\'s user+system CPU during the commit.',
    '- git-annex: fresh `git init` + `git annex init` (untimed), then `git annex add . --quiet && git commit -q -m MSG` (default backend SHA256E, every file annexed); `git commit` exiting 1 with "nothing to commit" counts as success on the no-change step.',
    '- datalad: fresh `datalad create --force` around the files (untimed), then `datalad save -m MSG` (DataLad\'s default MD5E annex backend, every file annexed).',
    '- restic: fresh local repository (`restic init`, RESTIC_PASSWORD_FILE, untimed), then `restic backup -q --json DIR` (its cache under the private HOME).',
    '- sha256sum: `find . -type f -exec sha256sum {} +` (like `find | xargs sha256sum`): the floor of re-hashing everything; a no-change step would be the same full hash, so it is not run.',
    '- changed: 1 % of the files (at least one, evenly spread) rewritten with new content of the same size (open with truncation; for git-annex/DataLad the locked symlink is replaced by a regular file), untimed.',
    '- Peers run with a private HOME (git identity from `git config --global` there).',
    '- Page caches are not dropped: all tools see warm data, as right after a job wrote its outputs.',
  );
  return L.join('\n') + '\n';
}

function output(o: Options, rep: Report): void {
  const json = `${JSON.stringify(rep, null, 2)}\n`;
  if (o.out) {
    mkdirSync(join(o.out, '..'), { recursive: true });
    writeFileSync(o.out, json);
  }
  if (o.md) {
    mkdirSync(join(o.md, '..'), { recursive: true });
    writeFileSync(o.md, markdown(rep));
  }
  if (o.json) process.stdout.write(json);
  else {
    process.stdout.write(`\n${textReport(rep)}`);
    if (o.out) process.stdout.write(`\nJSON written to ${o.out}\n`);
    if (o.md) process.stdout.write(`Markdown written to ${o.md}\n`);
  }
}

function render(o: Options, file: string): void {
  const rep = JSON.parse(readFileSync(file, 'utf8')) as Report;
  if (rep.benchmark !== 'commit') throw new Error(`${file} is not a commit benchmark report`);
  output(o, o.note !== null ? { ...rep, note: o.note } : rep);
}

// ---------------------------------------------------------------------------------------------------------

/**
 * Copies the checkout's build (dist/, cli/dvfs.js, package.json, the native codec; node_modules linked) into
 * the work directory and returns the copy's launcher: every run then measures the same build, however often
 * the checkout is rebuilt meanwhile. Returns null (and says why) when the checkout has no build to copy.
 */
async function pinDvfsBuild(cli: string, base: string): Promise<string | null> {
  const root = resolve(cli, '..', '..');
  if (!existsSync(join(root, 'dist', 'cli', 'main.js')) || !existsSync(join(root, 'package.json'))) {
    log(`dvfs: ${root} has no dist/cli/main.js: running ${cli} as it is (not pinned)`);
    return null;
  }
  const dst = join(base, 'dvfs-build');
  mkdirSync(join(dst, 'cli'), { recursive: true });
  await run('cp', ['-a', join(root, 'dist'), join(dst, 'dist')], { timeoutMs: 120_000 });
  copyFileSync(cli, join(dst, 'cli', basename(cli)));
  copyFileSync(join(root, 'package.json'), join(dst, 'package.json'));
  const addon = join('native', 'build', 'Release', 'dvfs_native.node');
  if (existsSync(join(root, addon))) {
    mkdirSync(join(dst, addon, '..'), { recursive: true });
    copyFileSync(join(root, addon), join(dst, addon));
  }
  if (existsSync(join(root, 'node_modules'))) symlinkSync(join(root, 'node_modules'), join(dst, 'node_modules'));
  return join(dst, 'cli', basename(cli));
}

async function dvfsAvailability(o: Options): Promise<PeerInfo> {
  if (!existsSync(o.dvfsCli)) return { name: 'dvfs', ok: false, reason: `${o.dvfsCli} not found` };
  try {
    await run(process.execPath, [o.dvfsCli, '--help'], { timeoutMs: 60_000 });
  } catch (e) {
    return { name: 'dvfs', ok: false, reason: `${o.dvfsCli} --help fails (build first: npm run build): ${(e as Error).message.slice(0, 300)}` };
  }
  if (!existsSync('/dev/fuse')) return { name: 'dvfs', ok: false, reason: '/dev/fuse is missing: cannot mount' };
  let version = 'dvfs';
  try {
    const pkg = JSON.parse(readFileSync(join(o.dvfsCli, '..', '..', 'package.json'), 'utf8')) as { version?: string };
    version = `dvfs ${pkg.version ?? '?'}`;
    const g = await run('git', ['-C', join(o.dvfsCli, '..', '..'), 'describe', '--always', '--dirty'], { timeoutMs: 10_000 });
    version += ` (${g.stdout.trim()})`;
  } catch {
    /* not a checkout, or no git */
  }
  return { name: 'dvfs', ok: true, version };
}

async function main(): Promise<void> {
  const o = options();
  if (o.render !== null) return render(o, o.render);
  handleSignals();
  for (const b of ['cp', 'sync', 'rm', 'chmod']) if (which(b) === null) throw new Error(`required tool '${b}' not found in PATH`);

  if (!existsSync(o.dir)) {
    mkdirSync(o.dir, { recursive: true });
    removeAtEndIfEmpty(o.dir);
  }
  const workFs = statfsSync(o.dir);
  if (workFs.type === TMPFS_MAGIC) loud(`${o.dir} is tmpfs: the benchmark is meant for a real disk (use --dir)`);
  const base = mkdtempSync(join(o.dir, 'run-'));
  addTempDir(base);
  const shapes = o.shapes.map((id) => makeShape(id, o.scale));
  const need = Math.max(...shapes.map((s) => s.totalBytes)) * 4;
  const free = workFs.bavail * workFs.bsize;
  log(`work directory ${base} (${fsTypeName(workFs.type)}, ${bytesText(free)} free; needs about ${bytesText(need)} at once)`);
  if (free < need) loud(`${o.dir} has only ${bytesText(free)} free; the largest shape needs about ${bytesText(need)} at once`);
  if (o.scale !== 1) loud(`SCALED RUN (scale ${o.scale}): ${shapes.map((s) => `${s.id} ${s.files} x ${bytesText(s.fileBytes)}`).join(', ')}`);

  // Tools: dvfs needs a build and /dev/fuse; peers are installed if missing, and skipped LOUDLY if they cannot be.
  const tools: PeerInfo[] = [];
  let dvfsCli = o.dvfsCli;
  if (o.only.includes('dvfs')) {
    const info = await dvfsAvailability(o);
    if (info.ok && o.pin) {
      const pinned = await pinDvfsBuild(o.dvfsCli, base);
      if (pinned !== null) {
        // The copy must work on its own (a copy taken in the middle of a rebuild would not).
        const check = await dvfsAvailability({ ...o, dvfsCli: pinned });
        if (!check.ok) throw new Error(`the pinned copy of the dvfs build does not run (was the checkout being rebuilt? try again, or --no-pin): ${check.reason ?? ''}`);
        dvfsCli = pinned;
        info.version = `${info.version ?? 'dvfs'}, build copied at start`;
        log(`dvfs: running a copy of the build: ${pinned}`);
      }
    }
    tools.push(info);
  }
  const peerNames = o.only.filter((t): t is CommitPeer => t !== 'dvfs');
  for (const a of await ensurePeers(peerNames, { install: o.install, log })) {
    tools.push({ name: a.peer, ok: a.ok, ...(a.version ? { version: a.version } : {}), ...(a.reason ? { reason: a.reason } : {}), ...(a.installed ? { installed: a.installed } : {}) });
  }
  for (const t of tools) {
    if (!t.ok) loud(`${t.name} IS MISSING and will NOT be measured: ${t.reason ?? ''}`);
    else log(`${t.name}: ${t.version ?? ''}`);
  }

  const env: Env = {
    o,
    base,
    ctx: {
      dvfsCli,
      dvfsEnv: { ...process.env, DVFS_STATE_DIR: join(base, 'dvfs-state') },
      password: 'commit-bench-password',
      mountTimeoutMs: 120_000,
      log,
    },
    peerEnv: await peerEnvironment(join(base, 'home')),
    problems: [],
    warnings: [],
  };

  const results: ResultRow[] = [];
  const dvfsRows: DvfsStepRow[] = [];
  for (const shape of shapes) {
    checkInterrupted();
    const shapeDir = join(base, shape.id);
    const src = join(shapeDir, 'src');
    mkdirSync(src, { recursive: true });
    log(`${shape.id}: generating ${shape.files} x ${bytesText(shape.fileBytes)} into ${src}`);
    const g0 = performance.now();
    await writeSourceTree(src, shape);
    await sync();
    log(`${shape.id}: source ready in ${((performance.now() - g0) / 1000).toFixed(1)} s; 1 % = ${shape.changed.length} file(s)`);

    const states = tools.map((t) => {
      const st = newState(t.name);
      if (!t.ok) {
        st.status = 'skipped';
        st.reason = t.reason ?? 'missing';
      }
      return st;
    });
    for (let r = 1; r <= o.runs; r++) {
      const list = states.filter((s) => s.status === 'ok');
      const k = list.length === 0 ? 0 : (r - 1) % list.length;
      const order = [...list.slice(k), ...list.slice(0, k)];
      log(`${shape.id} run ${r}/${o.runs}: ${order.map((s) => s.tool).join(', ')}`);
      for (const st of order) {
        checkInterrupted();
        const s0 = performance.now();
        try {
          if (st.tool === 'dvfs') await benchDvfs(env, shape, src, st, r);
          else await benchPeer(env, shape, src, st, st.tool, r);
          log(`  ${shape.id} run ${r} ${st.tool}: done in ${((performance.now() - s0) / 1000).toFixed(1)} s`);
        } catch (e) {
          checkInterrupted();
          const msg = (e as Error).message;
          st.status = 'failed';
          st.failedStep = st.step;
          st.reason = msg;
          env.problems.push({ shape: shape.id, tool: st.tool, run: r, step: st.step, message: msg });
          loud(`${shape.id}: ${st.tool} FAILED in run ${r} at step ${st.step}: ${msg} (no further runs of it on this shape)`);
        }
      }
    }
    const c = computeRows(shape, states);
    results.push(...c.rows);
    dvfsRows.push(...c.dvfs);
    await removeTree(shapeDir);
  }

  const report: Report = {
    benchmark: 'commit',
    date: new Date().toISOString(),
    command: ['node', 'dist/bench/commit.js', ...process.argv.slice(2)].join(' ') + (process.env['DVFS_BENCH_SCALE'] && !process.argv.includes('--scale') ? ` (DVFS_BENCH_SCALE=${process.env['DVFS_BENCH_SCALE']})` : ''),
    host: hostInfo(),
    workdir: { path: o.dir, fstype: fsTypeName(workFs.type) },
    cachesDropped: false,
    options: { runs: o.runs, scale: o.scale, shapes: o.shapes, only: o.only, kdfIterations: o.kdfIterations, perDir: PER_DIR, pinnedBuild: dvfsCli !== o.dvfsCli },
    shapes: shapes.map((s) => ({ id: s.id, files: s.files, fileBytes: s.fileBytes, totalBytes: s.totalBytes, changedFiles: s.changed.length, changedBytes: s.changedBytes })),
    tools,
    results,
    dvfs: dvfsRows,
    checks: computeChecks(o, shapes, results, tools),
    warnings: env.warnings,
    errors: env.problems,
    ...(o.note !== null ? { note: o.note } : {}),
  };
  await cleanup();
  output(o, report);
}

runMain(
  {
    name: 'commit bench',
    log,
    stopping: 'unmounting everything and removing the work directory',
    removeDir: removeTree,
  },
  main,
);
