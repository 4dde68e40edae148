/**
 * Mounted-filesystem benchmark: dvfs (encfs mode, standard preset) side by side with stock EncFS
 * (`encfs --standard`), gocryptfs and a plain directory (the ceiling), all in one fresh temp directory on
 * the same disk, run in the same script.
 *
 *   node dist/bench/mount.js [--runs N] [--size-mib M] [--files N] [--file-kib K] [--per-dir N]
 *                            [--only dvfs,encfs,gocryptfs,plain] [--rss-files N] [--dir DIR]
 *                            [--json] [--out FILE] [--md FILE]
 *   node dist/bench/mount.js --render REPORT.json [--md FILE]      (tables of a saved report; runs nothing)
 *   npm run bench:mount -- [OPTIONS]    (builds the checkout first, then runs the above)
 *
 * Per run and peer (peers in a rotating order; every run uses a freshly created volume):
 *   seq-write  dd if=SRC of=MNT/seq.bin bs=1M conv=fsync, then sync     (SRC: random, on tmpfs, pre-generated)
 *   seq-read   unmount + remount, sync + drop caches, dd if=MNT/seq.bin of=/dev/null bs=1M
 *   create     N files of K KiB (one open/write/close each, 1000 per directory) from a child process, then sync
 *   ls         unmount + remount, sync + drop caches, ls -lR MNT/tree >/dev/null
 *   rm         rm -r MNT/tree
 * The median of --runs runs is reported. MB/s are 10^6 bytes per second. Ratios ("x EncFS", "x gocryptfs")
 * are the reference's median seconds over the peer's: above 1 means faster than the reference.
 * Memory: each FUSE daemon's VmRSS while a child process holds --rss-files files of the mount open.
 * Targets (dvfs): >= 2x EncFS on seq-write and create, >= 0.8x gocryptfs on both, >= 1.0x EncFS on
 * seq-read, RSS with 1000 open files < 300 MiB.
 *
 * Everything is unmounted and the temp directories are removed at the end, on error and on Ctrl-C.
 */
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { addTempDir, checkInterrupted, cleanup, finishVolume, handleSignals, runMain, trackVolume } from './lib/interrupt.js';
import { loud, makeLog } from './lib/log.js';
import { cpuSeconds, dropCaches, fdCount, memInfo, run, sleep, startChild, waitFor, which } from './lib/proc.js';
import { fsTypeName, hostInfo, median, TMPFS_MAGIC } from './lib/report.js';
import { ALL_PEERS, isDvfsVolume, newVolume, type PeerName, type Volume, type VolumeContext } from './lib/volumes.js';

// ---------------------------------------------------------------------------------------------------------
// Options

interface Options {
  runs: number;
  sizeMiB: number;
  files: number;
  fileKiB: number;
  perDir: number;
  rssFiles: number;
  only: PeerName[];
  dir: string;
  dvfsCli: string;
  json: boolean;
  out: string | null;
  md: string | null;
  render: string | null;
}

const USAGE =
  'usage: node dist/bench/mount.js [--runs N] [--size-mib M] [--files N] [--file-kib K] [--per-dir N]\n' +
  '                                [--only dvfs,encfs,gocryptfs,plain] [--rss-files N] [--dir DIR]\n' +
  '                                [--dvfs PATH/cli/dvfs.js] [--json] [--out FILE] [--md FILE]\n' +
  '       node dist/bench/mount.js --render REPORT.json [--md FILE] [--out FILE] [--json]   (re-print a saved report)\n';

function options(): Options {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        runs: { type: 'string', default: '3' },
        'size-mib': { type: 'string', default: '1024' },
        files: { type: 'string', default: '10000' },
        'file-kib': { type: 'string', default: '100' },
        'per-dir': { type: 'string', default: '1000' },
        'rss-files': { type: 'string', default: '1000' },
        only: { type: 'string', default: ALL_PEERS.join(',') },
        dir: { type: 'string', default: '/var/tmp' },
        dvfs: { type: 'string' },
        json: { type: 'boolean', default: false },
        out: { type: 'string' },
        md: { type: 'string' },
        render: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    process.stderr.write(`mount bench: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
      process.stderr.write(`mount bench: --${name} must be an integer >= ${min}\n`);
      process.exit(2);
    }
    return n;
  };
  const only: PeerName[] = [];
  for (const p of (values.only ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(ALL_PEERS as string[]).includes(p)) {
      process.stderr.write(`mount bench: --only: unknown peer '${p}' (known: ${ALL_PEERS.join(', ')})\n`);
      process.exit(2);
    }
    if (!only.includes(p as PeerName)) only.push(p as PeerName);
  }
  if (only.length === 0) {
    process.stderr.write('mount bench: --only names no peer\n');
    process.exit(2);
  }
  return {
    runs: int('runs', values.runs, 1),
    sizeMiB: int('size-mib', values['size-mib'], 1),
    files: int('files', values.files, 1),
    fileKiB: int('file-kib', values['file-kib'], 0),
    perDir: int('per-dir', values['per-dir'], 1),
    rssFiles: int('rss-files', values['rss-files'], 0),
    only,
    dir: resolve(values.dir ?? '/var/tmp'),
    dvfsCli: resolve(values.dvfs ?? fileURLToPath(new URL('../../cli/dvfs.js', import.meta.url))),
    json: values.json,
    out: values.out ?? null,
    md: values.md ?? null,
    render: values.render ?? null,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Workloads and results

type WorkloadId = 'seq-write' | 'seq-read' | 'create' | 'ls' | 'rm';
const WORKLOADS: WorkloadId[] = ['seq-write', 'seq-read', 'create', 'ls', 'rm'];

interface Sample {
  seconds: number;
  /** user+system CPU seconds of the FUSE daemon during the step (null for the plain directory). */
  daemonCpu: number | null;
}

interface PeerState {
  name: PeerName;
  status: 'ok' | 'skipped' | 'failed';
  reason?: string;
  version?: string;
  samples: Record<WorkloadId, Sample[]>;
  mountSeconds: number[];
}

interface ResultRow {
  peer: PeerName;
  workload: WorkloadId;
  runs: number;
  seconds: number | null;
  samples: number[];
  mbPerSec: number | null;
  filesPerSec: number | null;
  daemonCpuSeconds: number | null;
  vsEncfs: number | null;
  vsGocryptfs: number | null;
}

interface RssRow {
  peer: PeerName;
  pid: number | null;
  openFilesHeld: number;
  idleRssMiB: number | null;
  heldRssMiB: number | null;
  peakRssMiB: number | null;
  daemonFds: number | null;
  threads: number | null;
  daemonReportedOpenFiles: number | null;
  error?: string;
}

/** A row with nothing measured yet. */
const emptyRssRow = (peer: PeerName): RssRow => ({
  peer,
  pid: null,
  openFilesHeld: 0,
  idleRssMiB: null,
  heldRssMiB: null,
  peakRssMiB: null,
  daemonFds: null,
  threads: null,
  daemonReportedOpenFiles: null,
});

interface Check {
  id: string;
  description: string;
  value: number | null;
  target: string;
  status: 'PASS' | 'FAIL' | 'N/A';
  note?: string;
}

// ---------------------------------------------------------------------------------------------------------
// Logging

const log = makeLog('mount-bench');

/** Removes a volume's or temp directory (nothing below it is mounted any more). */
async function removeDir(dir: string, duringAbort: boolean): Promise<void> {
  await run('rm', ['-rf', '--one-file-system', dir], { timeoutMs: 600_000, duringAbort });
}

// ---------------------------------------------------------------------------------------------------------
// The benchmark

interface Env {
  o: Options;
  base: string;
  srcFile: string;
  srcOnTmpfs: boolean;
  ctx: VolumeContext;
  cachesDropped: boolean;
  timeouts: { mount: number; seq: number; files: number; sync: number };
  errors: Array<{ peer: PeerName; run: number | 'rss'; message: string }>;
  makeFiles: string;
  holdOpen: string;
}

async function generateSource(path: string, mib: number): Promise<void> {
  const fh = await open(path, 'wx', 0o600);
  try {
    const chunk = Buffer.allocUnsafe(1 << 20);
    for (let i = 0; i < mib; i++) {
      checkInterrupted();
      randomFillSync(chunk);
      await fh.write(chunk, 0, chunk.length);
    }
  } finally {
    await fh.close();
  }
}

async function dropAll(env: Env): Promise<void> {
  const ok = await dropCaches(env.timeouts.sync);
  if (!ok && env.cachesDropped) {
    loud('cannot write /proc/sys/vm/drop_caches (not root?): reads are NOT cold; results will say so');
    env.cachesDropped = false;
  }
}

function daemonCpu(v: Volume): number | null {
  const pid = v.daemonPid();
  return pid === null ? null : cpuSeconds(pid);
}

/** Runs `step` and records its wall time and the daemon's CPU time. */
async function measure(v: Volume, step: () => Promise<void>): Promise<Sample> {
  checkInterrupted();
  const c0 = daemonCpu(v);
  const s0 = performance.now();
  await step();
  const seconds = (performance.now() - s0) / 1000;
  const c1 = daemonCpu(v);
  return { seconds, daemonCpu: c0 === null || c1 === null ? null : c1 - c0 };
}

async function countFiles(dir: string, timeoutMs: number): Promise<number> {
  const r = await run('find', [dir, '-type', 'f'], { timeoutMs });
  return r.stdout.split('\n').filter((l) => l.length > 0).length;
}

async function benchPeer(env: Env, peer: PeerState, runIndex: number): Promise<void> {
  const { o, timeouts } = env;
  const vol = newVolume(peer.name, join(env.base, `${peer.name}-run${runIndex + 1}`), env.ctx);
  trackVolume(vol);
  try {
    await vol.create();
    const data = vol.data;
    const seqFile = join(data, 'seq.bin');
    const tree = join(data, 'tree');
    const record = (w: WorkloadId, s: Sample, extra = ''): void => {
      peer.samples[w].push(s);
      const cpu = s.daemonCpu === null ? '' : `, daemon cpu ${s.daemonCpu.toFixed(2)} s`;
      log(`  ${peer.name} run ${runIndex + 1}: ${w} ${s.seconds.toFixed(3)} s${cpu}${extra}`);
    };

    // 1. Sequential write from the pre-generated random source (on tmpfs, so reading it costs no disk).
    if (!env.srcOnTmpfs) await run('cat', [env.srcFile], { timeoutMs: timeouts.seq, stdout: 'ignore' });
    await run('sync', [], { timeoutMs: timeouts.sync });
    const w = await measure(vol, async () => {
      await run('dd', [`if=${env.srcFile}`, `of=${seqFile}`, 'bs=1M', 'conv=fsync'], { timeoutMs: timeouts.seq });
      await run('sync', [], { timeoutMs: timeouts.sync });
    });
    record('seq-write', w, ` (${((o.sizeMiB * 1048576) / 1e6 / w.seconds).toFixed(1)} MB/s)`);

    // 2. Cold sequential read: remount (FUSE and daemon caches gone), drop the kernel caches.
    checkInterrupted();
    peer.mountSeconds.push(await vol.remount());
    await dropAll(env);
    const r = await measure(vol, async () => {
      await run('dd', [`if=${seqFile}`, 'of=/dev/null', 'bs=1M'], { timeoutMs: timeouts.seq });
    });
    record('seq-read', r, ` (${((o.sizeMiB * 1048576) / 1e6 / r.seconds).toFixed(1)} MB/s)`);
    // Not timed: what was read back is what was written.
    await run('cmp', [env.srcFile, seqFile], { timeoutMs: timeouts.seq });
    await run('rm', ['-f', seqFile], { timeoutMs: timeouts.files });
    await run('sync', [], { timeoutMs: timeouts.sync });

    // 3. Small files: create + write from a child process, then sync.
    const c = await measure(vol, async () => {
      await run(process.execPath, [env.makeFiles, tree, String(o.files), String(o.fileKiB), String(o.perDir)], { timeoutMs: timeouts.files });
      await run('sync', [], { timeoutMs: timeouts.sync });
    });
    record('create', c, ` (${(o.files / c.seconds).toFixed(0)} files/s)`);

    // 4. ls -lR of the tree, cold.
    checkInterrupted();
    peer.mountSeconds.push(await vol.remount());
    await dropAll(env);
    const l = await measure(vol, async () => {
      await run('ls', ['-lR', tree], { timeoutMs: timeouts.files, stdout: 'ignore' });
    });
    record('ls', l, ` (${(o.files / l.seconds).toFixed(0)} files/s)`);
    const n = await countFiles(tree, timeouts.files);
    if (n !== o.files) throw new Error(`${peer.name}: the tree holds ${n} files, expected ${o.files}`);

    // 5. rm -r of the tree (its dentries are warm from ls -lR and find).
    const d = await measure(vol, async () => {
      await run('rm', ['-r', tree], { timeoutMs: timeouts.files });
    });
    record('rm', d, ` (${(o.files / d.seconds).toFixed(0)} files/s)`);

    await vol.unmount();
  } finally {
    await finishVolume(vol);
  }
}

async function measureRss(env: Env, peer: PeerState): Promise<RssRow> {
  const { o, timeouts } = env;
  const row = emptyRssRow(peer.name);
  const vol = newVolume(peer.name, join(env.base, `${peer.name}-rss`), env.ctx);
  trackVolume(vol);
  try {
    await vol.create();
    const tree = join(vol.data, 'held');
    await run(process.execPath, [env.makeFiles, tree, String(o.rssFiles), String(o.fileKiB), String(o.perDir)], { timeoutMs: timeouts.files });
    await run('sync', [], { timeoutMs: timeouts.sync });
    await vol.remount();
    const pid = vol.daemonPid();
    if (pid === null) throw new Error(`${peer.name}: no daemon pid`);
    row.pid = pid;
    const mib = (kib: number | undefined): number | null => (kib === undefined || !Number.isFinite(kib) ? null : kib / 1024);
    row.idleRssMiB = mib(memInfo(pid)?.rssKiB);

    const holder = startChild(process.execPath, [env.holdOpen, tree, String(o.rssFiles)]);
    let out = '';
    let err = '';
    holder.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
    holder.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
    let exited = false;
    holder.on('exit', () => (exited = true));
    try {
      const ready = await waitFor(() => out.includes('\n') || exited, timeouts.files);
      if (!ready || !out.startsWith('READY ')) {
        throw new Error(`${peer.name}: the open-files holder did not get ready${err ? `: ${err.trim().split('\n').pop()}` : ''}`);
      }
      row.openFilesHeld = Number(out.slice(6).trim());
      await sleep(500);
      const m = memInfo(pid);
      row.heldRssMiB = mib(m?.rssKiB);
      row.peakRssMiB = mib(m?.hwmKiB);
      row.threads = m?.threads ?? null;
      row.daemonFds = fdCount(pid);
      if (isDvfsVolume(vol)) {
        const s = await vol.status();
        row.daemonReportedOpenFiles = typeof s['openFiles'] === 'number' ? s['openFiles'] : null;
      }
    } finally {
      holder.stdin?.end();
      if (!(await waitFor(() => exited, 10_000))) holder.kill('SIGKILL');
      await waitFor(() => exited, 5_000);
    }
    await vol.unmount();
  } finally {
    await finishVolume(vol);
  }
  return row;
}

async function versionOf(name: PeerName, o: Options): Promise<string> {
  try {
    switch (name) {
      case 'dvfs': {
        const pkg = JSON.parse(readFileSync(join(o.dvfsCli, '..', '..', 'package.json'), 'utf8')) as { version?: string };
        let rev = '';
        try {
          const g = await run('git', ['-C', join(o.dvfsCli, '..', '..'), 'describe', '--always', '--dirty'], { timeoutMs: 10_000 });
          rev = ` (${g.stdout.trim()})`;
        } catch {
          /* not a checkout */
        }
        return `dvfs ${pkg.version ?? '?'}${rev}`;
      }
      case 'encfs': {
        const r = await run('encfs', ['--version'], { timeoutMs: 10_000 });
        return (r.stdout + r.stderr).trim().split('\n')[0] ?? 'encfs';
      }
      case 'gocryptfs': {
        const r = await run('gocryptfs', ['-version'], { timeoutMs: 10_000 });
        return r.stdout.trim().split('\n')[0] ?? 'gocryptfs';
      }
      case 'plain':
        return 'plain directory';
    }
  } catch (e) {
    return `unknown (${(e as Error).message})`;
  }
}

function requiredBinaries(name: PeerName, o: Options): string[] {
  switch (name) {
    case 'dvfs':
      return [o.dvfsCli];
    case 'encfs':
      return ['encfs'];
    case 'gocryptfs':
      return ['gocryptfs'];
    case 'plain':
      return [];
  }
}

// ---------------------------------------------------------------------------------------------------------
// Report

function computeResults(env: Env, peers: PeerState[]): ResultRow[] {
  const { o } = env;
  const rows: ResultRow[] = [];
  const medSeconds = (p: PeerName, w: WorkloadId): number | null => {
    const ps = peers.find((x) => x.name === p);
    return ps && ps.status === 'ok' ? median(ps.samples[w].map((s) => s.seconds)) : null;
  };
  for (const w of WORKLOADS) {
    for (const p of peers) {
      if (p.status === 'skipped') continue;
      const samples = p.samples[w].map((s) => s.seconds);
      const sec = p.status === 'ok' ? median(samples) : null;
      const cpus = p.samples[w].map((s) => s.daemonCpu).filter((c): c is number => c !== null);
      const bytes = w === 'seq-write' || w === 'seq-read' ? o.sizeMiB * 1048576 : w === 'create' ? o.files * o.fileKiB * 1024 : null;
      const files = w === 'create' || w === 'ls' || w === 'rm' ? o.files : null;
      const enc = medSeconds('encfs', w);
      const gcf = medSeconds('gocryptfs', w);
      rows.push({
        peer: p.name,
        workload: w,
        runs: samples.length,
        seconds: sec,
        samples,
        mbPerSec: sec !== null && bytes !== null ? bytes / 1e6 / sec : null,
        filesPerSec: sec !== null && files !== null ? files / sec : null,
        daemonCpuSeconds: p.status === 'ok' ? median(cpus) : null,
        vsEncfs: sec !== null && enc !== null ? enc / sec : null,
        vsGocryptfs: sec !== null && gcf !== null ? gcf / sec : null,
      });
    }
  }
  return rows;
}

function computeChecks(peers: PeerState[], rows: ResultRow[], rss: RssRow[]): Check[] {
  const dvfs = peers.find((p) => p.name === 'dvfs');
  const get = (w: WorkloadId): ResultRow | undefined => rows.find((r) => r.peer === 'dvfs' && r.workload === w);
  const peerOk = (n: PeerName): boolean => peers.find((p) => p.name === n)?.status === 'ok';
  const checks: Check[] = [];
  const ratioCheck = (id: string, description: string, w: WorkloadId, ref: 'encfs' | 'gocryptfs', min: number): void => {
    const target = `>= ${min.toFixed(1)}x ${ref === 'encfs' ? 'EncFS' : 'gocryptfs'}`;
    if (!dvfs || dvfs.status === 'skipped') return void checks.push({ id, description, value: null, target, status: 'N/A', note: 'dvfs not run' });
    if (dvfs.status === 'failed') return void checks.push({ id, description, value: null, target, status: 'FAIL', note: `dvfs failed: ${dvfs.reason ?? ''}` });
    if (!peerOk(ref)) return void checks.push({ id, description, value: null, target, status: 'N/A', note: `${ref} not measured` });
    const v = ref === 'encfs' ? get(w)?.vsEncfs : get(w)?.vsGocryptfs;
    if (v === null || v === undefined) return void checks.push({ id, description, value: null, target, status: 'N/A', note: 'no data' });
    checks.push({ id, description, value: v, target, status: v >= min ? 'PASS' : 'FAIL' });
  };
  ratioCheck('seq-write-vs-encfs', 'sequential write vs EncFS', 'seq-write', 'encfs', 2);
  ratioCheck('create-vs-encfs', 'small-file create vs EncFS', 'create', 'encfs', 2);
  ratioCheck('seq-write-vs-gocryptfs', 'sequential write vs gocryptfs', 'seq-write', 'gocryptfs', 0.8);
  ratioCheck('create-vs-gocryptfs', 'small-file create vs gocryptfs', 'create', 'gocryptfs', 0.8);
  ratioCheck('seq-read-vs-encfs', 'sequential read (cold) vs EncFS', 'seq-read', 'encfs', 1);
  const r = rss.find((x) => x.peer === 'dvfs');
  const target = '< 300 MiB';
  const description = 'dvfs daemon RSS holding open files';
  if (!r) checks.push({ id: 'rss-open-files', description, value: null, target, status: dvfs?.status === 'failed' ? 'FAIL' : 'N/A', note: 'not measured' });
  else if (r.heldRssMiB === null) checks.push({ id: 'rss-open-files', description, value: null, target, status: 'FAIL', note: r.error ?? 'no reading' });
  else {
    checks.push({
      id: 'rss-open-files',
      description: `${description} (${r.openFilesHeld})`,
      value: r.heldRssMiB,
      target,
      status: r.heldRssMiB < 300 ? 'PASS' : 'FAIL',
      ...(r.openFilesHeld < 1000 ? { note: `only ${r.openFilesHeld} files held (--rss-files)` } : {}),
    });
  }
  return checks;
}

const WORKLOAD_TITLES = (o: Options): Record<WorkloadId, string> => ({
  'seq-write': `seq write ${o.sizeMiB} MiB`,
  'seq-read': `seq read ${o.sizeMiB} MiB (cold)`,
  create: `create ${o.files} x ${o.fileKiB} KiB`,
  ls: `ls -lR ${o.files} files (cold)`,
  rm: `rm -r ${o.files} files`,
});

const fmt = (v: number | null, digits: number): string => (v === null ? '-' : v.toFixed(digits));
const rate = (r: ResultRow): string => {
  if (r.seconds === null) return '-';
  if (r.workload === 'seq-write' || r.workload === 'seq-read') return `${fmt(r.mbPerSec, 1)} MB/s`;
  if (r.workload === 'create') return `${fmt(r.filesPerSec, 0)} files/s (${fmt(r.mbPerSec, 1)} MB/s)`;
  return `${fmt(r.filesPerSec, 0)} files/s`;
};
const ratio = (v: number | null): string => (v === null ? '-' : `${v.toFixed(2)}x`);
/** min-max of the runs' seconds, to show how noisy a median is. */
const spread = (r: ResultRow): string =>
  r.samples.length < 2 ? '-' : `${Math.min(...r.samples).toFixed(2)}-${Math.max(...r.samples).toFixed(2)}`;

function textTable(o: Options, rows: ResultRow[]): string {
  const titles = WORKLOAD_TITLES(o);
  const header = ['workload', 'peer', 'seconds', 'runs min-max', 'rate', 'x EncFS', 'x gocryptfs', 'daemon CPU s'];
  const body = rows.map((r) => [
    titles[r.workload],
    r.peer,
    r.seconds === null ? 'FAILED' : r.seconds.toFixed(3),
    spread(r),
    rate(r),
    ratio(r.vsEncfs),
    ratio(r.vsGocryptfs),
    fmt(r.daemonCpuSeconds, 2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  let last = '';
  for (const [i, b] of body.entries()) {
    const w = rows[i]?.workload ?? '';
    if (last && w !== last) out.push('');
    last = w;
    out.push(line(b));
  }
  return out.join('\n');
}

function rssText(rss: RssRow[]): string {
  if (rss.length === 0) return '(not measured)';
  return rss
    .map(
      (r) =>
        `${r.peer.padEnd(10)} ${r.error ? `ERROR: ${r.error}` : `idle ${fmt(r.idleRssMiB, 1)} MiB, holding ${r.openFilesHeld} open files ${fmt(r.heldRssMiB, 1)} MiB (peak ${fmt(r.peakRssMiB, 1)} MiB), ${r.daemonFds ?? '?'} fds, ${r.threads ?? '?'} threads${r.daemonReportedOpenFiles !== null ? `, status openFiles ${r.daemonReportedOpenFiles}` : ''}`}`,
    )
    .join('\n');
}

function checksText(checks: Check[]): string {
  return checks
    .map((c) => {
      const v = c.value === null ? '-' : c.id.startsWith('rss') ? `${c.value.toFixed(1)} MiB` : `${c.value.toFixed(2)}x`;
      return `${c.status.padEnd(4)}  ${c.description.padEnd(44)} ${v.padStart(10)}  (target ${c.target})${c.note ? `  [${c.note}]` : ''}`;
    })
    .join('\n');
}

function markdown(o: Options, report: Record<string, unknown>, rows: ResultRow[], rss: RssRow[], checks: Check[]): string {
  const titles = WORKLOAD_TITLES(o);
  const lines: string[] = [];
  const host = report['host'] as Record<string, unknown>;
  lines.push(`# Mount benchmark, ${String(report['date'])}`, '');
  lines.push(
    `Command: \`${String(report['command'])}\`  `,
    `Host: ${String(host['cpus'])} x ${String(host['cpuModel'])}, ${String(host['memGiB'])} GiB RAM, kernel ${String(host['kernel'])}, Node ${String(host['node'])}  `,
    `Work directory: ${String((report['workdir'] as Record<string, unknown>)['fstype'])} (${String((report['workdir'] as Record<string, unknown>)['path'])}); source data on ${report['sourceOnTmpfs'] ? 'tmpfs' : 'the work directory'}; caches dropped before cold steps: ${report['cachesDropped'] ? 'yes' : 'NO'}  `,
    `Median of ${o.runs} run(s); MB/s = 10^6 bytes/s; "x EncFS" / "x gocryptfs" = reference seconds / peer seconds (> 1 is faster).`,
    '',
  );
  if (typeof report['note'] === 'string') lines.push(`Note: ${report['note']}`, '');
  lines.push('| peer | version | status |', '| --- | --- | --- |');
  for (const p of report['peers'] as Array<Record<string, unknown>>) {
    lines.push(`| ${String(p['name'])} | ${String(p['version'] ?? '-')} | ${String(p['status'])}${p['reason'] ? `: ${String(p['reason'])}` : ''} |`);
  }
  lines.push('', '| workload | peer | seconds (median) | runs min-max | rate | x EncFS | x gocryptfs | daemon CPU s |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const peer = r.peer === 'dvfs' ? '**dvfs**' : r.peer;
    lines.push(
      `| ${titles[r.workload]} | ${peer} | ${r.seconds === null ? 'FAILED' : r.seconds.toFixed(3)} | ${spread(r)} | ${rate(r)} | ${ratio(r.vsEncfs)} | ${ratio(r.vsGocryptfs)} | ${fmt(r.daemonCpuSeconds, 2)} |`,
    );
  }
  lines.push('', `## Daemon memory holding ${o.rssFiles} open files`, '', '| peer | idle RSS MiB | RSS holding files MiB | peak RSS MiB | files held | daemon fds | threads |', '| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rss) {
    if (r.error) lines.push(`| ${r.peer} | error: ${r.error} | | | | | |`);
    else lines.push(`| ${r.peer} | ${fmt(r.idleRssMiB, 1)} | ${fmt(r.heldRssMiB, 1)} | ${fmt(r.peakRssMiB, 1)} | ${r.openFilesHeld} | ${r.daemonFds ?? '-'} | ${r.threads ?? '-'} |`);
  }
  lines.push('', '## Targets', '', '| check | value | target | result |', '| --- | ---: | --- | --- |');
  for (const c of checks) {
    const v = c.value === null ? '-' : c.id.startsWith('rss') ? `${c.value.toFixed(1)} MiB` : `${c.value.toFixed(2)}x`;
    lines.push(`| ${c.description} | ${v} | ${c.target} | **${c.status}**${c.note ? ` (${c.note})` : ''} |`);
  }
  const errors = report['errors'] as Array<Record<string, unknown>>;
  if (errors.length > 0) {
    lines.push('', '## Errors', '');
    for (const e of errors) lines.push(`- ${String(e['peer'])} (run ${String(e['run'])}): ${String(e['message'])}`);
  }
  lines.push(
    '',
    '## Method',
    '',
    '- Every peer gets a fresh volume per run in one temp directory on the same disk; peers run in a rotating order.',
    '- seq write: `dd if=SRC of=MNT/seq.bin bs=1M conv=fsync` then `sync` (SRC: random data pre-generated on tmpfs).',
    '- seq read: unmount + remount, `sync; echo 3 > /proc/sys/vm/drop_caches`, `dd if=MNT/seq.bin of=/dev/null bs=1M`; then (untimed) `cmp` against SRC.',
    `- create: a Node child process writes ${o.files} files of ${o.fileKiB} KiB (open, one write, close; ${o.perDir} per directory), then \`sync\`.`,
    '- ls: unmount + remount, drop caches, `ls -lR MNT/tree >/dev/null`; then (untimed) `find` checks the file count.',
    '- rm: `rm -r MNT/tree` (dentries warm from ls and find).',
    '- daemon CPU s: user+system CPU time the FUSE daemon used during the step (/proc/PID/stat).',
    '- memory: a child process opens the files read-write, reads 4 KiB of each and keeps them open; VmRSS/VmHWM of the daemon from /proc/PID/status.',
  );
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = options();
  if (o.render !== null) return render(o, o.render);
  handleSignals();

  const here = fileURLToPath(new URL('.', import.meta.url));
  const makeFiles = join(here, 'lib', 'make-files.js');
  const holdOpen = join(here, 'lib', 'hold-open.js');
  for (const f of [makeFiles, holdOpen]) if (!existsSync(f)) throw new Error(`missing ${f}: build first (npm run build)`);

  const workFs = statfsSync(o.dir);
  if (workFs.type === TMPFS_MAGIC) loud(`${o.dir} is tmpfs: the benchmark is meant for a real disk (use --dir)`);
  const base = mkdtempSync(join(o.dir, 'dvfs-bench-'));
  addTempDir(base);
  log(`work directory ${base} (${fsTypeName(workFs.type)})`);

  // The random source lives on tmpfs when there is room, so writing it through a filesystem reads no disk
  // and dropping the caches does not evict it.
  let srcDir = join(base, 'src');
  let srcOnTmpfs = false;
  try {
    const shm = statfsSync('/dev/shm');
    if (shm.type === TMPFS_MAGIC && shm.bavail * shm.bsize > o.sizeMiB * 1048576 * 1.5 + 256 * 1048576) {
      srcDir = mkdtempSync('/dev/shm/dvfs-bench-src-');
      addTempDir(srcDir);
      srcOnTmpfs = true;
    }
  } catch {
    /* no /dev/shm */
  }
  if (!srcOnTmpfs) mkdirSync(srcDir);
  const srcFile = join(srcDir, 'seq-source.bin');

  const env: Env = {
    o,
    base,
    srcFile,
    srcOnTmpfs,
    ctx: {
      dvfsCli: o.dvfsCli,
      dvfsEnv: { ...process.env, DVFS_STATE_DIR: join(base, 'dvfs-state') },
      password: 'mount-bench-password',
      mountTimeoutMs: 120_000,
      log,
    },
    cachesDropped: true,
    timeouts: {
      mount: 120_000,
      seq: 120_000 + o.sizeMiB * 1_000,
      files: 120_000 + Math.ceil(o.files * Math.max(1, o.fileKiB / 100) * 100),
      sync: 600_000,
    },
    errors: [],
    makeFiles,
    holdOpen,
  };

  // Peers: skip loudly what is not installed.
  const peers: PeerState[] = [];
  for (const name of o.only) {
    const p: PeerState = {
      name,
      status: 'ok',
      samples: { 'seq-write': [], 'seq-read': [], create: [], ls: [], rm: [] },
      mountSeconds: [],
    };
    const missing = requiredBinaries(name, o).filter((b) => which(b) === null && !existsSync(b));
    if (missing.length > 0) {
      p.status = 'skipped';
      p.reason = `not found: ${missing.join(', ')}`;
      loud(`SKIPPING ${name}: ${p.reason}${name === 'dvfs' ? ' (build it: npm run build)' : ' (install it, or leave it out with --only)'}`);
    } else {
      p.version = await versionOf(name, o);
    }
    peers.push(p);
  }
  for (const b of ['dd', 'sync', 'cmp', 'ls', 'rm', 'find']) if (which(b) === null) throw new Error(`required tool '${b}' not found in PATH`);
  const anyFuse = peers.some((p) => p.status === 'ok' && p.name !== 'plain');
  if (anyFuse && !existsSync('/dev/fuse')) throw new Error('/dev/fuse is missing: FUSE peers cannot run');

  log(`generating ${o.sizeMiB} MiB of random source data on ${srcOnTmpfs ? 'tmpfs' : 'the work directory'}`);
  await generateSource(srcFile, o.sizeMiB);

  const active = (): PeerState[] => peers.filter((p) => p.status === 'ok');
  for (let run = 0; run < o.runs; run++) {
    const list = active();
    const k = list.length === 0 ? 0 : run % list.length;
    const order = [...list.slice(k), ...list.slice(0, k)];
    log(`run ${run + 1}/${o.runs}: ${order.map((p) => p.name).join(', ')}`);
    for (const p of order) {
      checkInterrupted();
      try {
        await benchPeer(env, p, run);
      } catch (e) {
        checkInterrupted();
        const msg = (e as Error).message;
        p.status = 'failed';
        p.reason = msg;
        env.errors.push({ peer: p.name, run: run + 1, message: msg });
        loud(`${p.name} FAILED in run ${run + 1}: ${msg} (no further runs for it)`);
      }
    }
  }

  const rss: RssRow[] = [];
  if (o.rssFiles > 0) {
    for (const p of active()) {
      if (p.name === 'plain') continue;
      checkInterrupted();
      log(`memory: ${p.name} daemon holding ${o.rssFiles} open files`);
      try {
        const row = await measureRss(env, p);
        rss.push(row);
        log(`  ${rssText([row])}`);
      } catch (e) {
        checkInterrupted();
        const msg = (e as Error).message;
        env.errors.push({ peer: p.name, run: 'rss', message: msg });
        rss.push({ ...emptyRssRow(p.name), error: msg });
        loud(`${p.name}: memory measurement FAILED: ${msg}`);
      }
    }
  }

  const rows = computeResults(env, peers);
  const checks = computeChecks(peers, rows, rss);
  const report: Record<string, unknown> = {
    benchmark: 'mount',
    date: new Date().toISOString(),
    command: ['node', 'dist/bench/mount.js', ...process.argv.slice(2)].join(' '),
    host: hostInfo(),
    workdir: { path: o.dir, fstype: fsTypeName(workFs.type) },
    sourceOnTmpfs: srcOnTmpfs,
    cachesDropped: env.cachesDropped,
    options: { runs: o.runs, sizeMiB: o.sizeMiB, files: o.files, fileKiB: o.fileKiB, perDir: o.perDir, rssFiles: o.rssFiles, only: o.only },
    units: { mbPerSec: '10^6 bytes per second', vsEncfs: 'EncFS median seconds / peer median seconds', vsGocryptfs: 'gocryptfs median seconds / peer median seconds' },
    peers: peers.map((p) => ({
      name: p.name,
      status: p.status,
      ...(p.version ? { version: p.version } : {}),
      ...(p.reason ? { reason: p.reason } : {}),
      mountSeconds: median(p.mountSeconds),
    })),
    workloads: WORKLOADS.map((w) => ({ id: w, title: WORKLOAD_TITLES(o)[w] })),
    results: rows,
    rss,
    checks,
    errors: env.errors,
  };

  await cleanup();
  output(o, report);
}

/** Writes --out/--md and prints the table (or the JSON) for a report. */
function output(o: Options, report: Record<string, unknown>): void {
  const rows = report['results'] as ResultRow[];
  const rss = report['rss'] as RssRow[];
  const checks = report['checks'] as Check[];
  const peers = report['peers'] as Array<{ name: string; status: string; reason?: string }>;
  const json = `${JSON.stringify(report, null, 2)}\n`;
  if (o.out) writeFileSync(o.out, json);
  if (o.md) writeFileSync(o.md, markdown(o, report, rows, rss, checks));
  if (o.json) process.stdout.write(json);
  else {
    process.stdout.write(
      `\nMount benchmark: median of ${o.runs} run(s); MB/s = 10^6 B/s; "x EncFS"/"x gocryptfs" = reference seconds / peer seconds (>1 = faster)\n` +
        `${report['cachesDropped'] ? '' : 'WARNING: caches could not be dropped: cold steps were NOT cold\n'}\n`,
    );
    process.stdout.write(`${textTable(o, rows)}\n\n`);
    process.stdout.write(`Daemon memory (holding ${o.rssFiles} open files):\n${rssText(rss)}\n\n`);
    process.stdout.write(`Targets (dvfs):\n${checksText(checks)}\n`);
    for (const p of peers) if (p.status !== 'ok') process.stdout.write(`\nNOTE: ${p.name} ${p.status}: ${p.reason ?? ''}\n`);
    if (o.out) process.stdout.write(`\nJSON written to ${o.out}\n`);
    if (o.md) process.stdout.write(`Markdown written to ${o.md}\n`);
  }
}

/** --render FILE: prints (and with --md/--out writes) the tables of a saved JSON report; runs nothing. */
function render(o: Options, file: string): void {
  const report = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  if (report['benchmark'] !== 'mount') throw new Error(`${file} is not a mount benchmark report`);
  const saved = report['options'] as Partial<Options>;
  const opts: Options = { ...o, ...saved, out: o.out, md: o.md, json: o.json };
  output(opts, report);
}

runMain(
  {
    name: 'mount bench',
    log,
    stopping: 'unmounting everything and removing the temp directories',
    removeDir,
  },
  main,
);
