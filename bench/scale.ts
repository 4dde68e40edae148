/**
 * Scale benchmark: a tree of many small files through one dvfs mount (encfs mode) — write, commit, no-change
 * commit, `ls -R`, push to a local file:// remote — with the time of each step and the peak memory of the
 * process that does its work.
 *
 *   node dist/bench/scale.js [--files N] [--per-dir N] [--writers N] [--dir BASE] [--dvfs PATH/cli/dvfs.js]
 *                            [--json] [--out FILE] [--md FILE] [--no-save] [--note TEXT] [--keep] [--skip STEPS]
 *   npm run bench:scale -- [OPTIONS]
 *
 * The tree: --files files (default 1 000 000), --per-dir per directory (default 1 000); a quarter of the files
 * are empty, the others hold 32 B .. 4 KiB (bench/lib/scale-tree.ts). They are written through the mount by
 * --writers child processes at once (bench/lib/scale-writer.ts; each owns every WRITERS-th directory).
 *
 * Steps (each timed spawn to exit, wall seconds):
 *   write            the writer pool, then `sync`
 *   commit           `dvfs commit REPO --json` while mounted
 *   commit-nochange  the same again, nothing changed
 *   ls-R             `ls -R MNT`, its output counted (every file must be listed)
 *   push             `dvfs push REPO origin --json` to file://BASE/remote
 * --skip ls-R,push leaves out the steps named (any but write and commit; `ls -R` of 10^6 files takes ~35 min).
 * Memory: the mount daemon's peak (VmHWM of /proc/<pid>/status, reset through /proc/<pid>/clear_refs before
 * each step, so each step reports its own peak) and the peak of the CLI process of the step (sampled every
 * 20 ms). A commit on a mounted repository runs in the daemon (the CLI only asks over the control socket), a
 * push runs in the CLI process: each step's `rssMiB` is the peak of the process that does the work, named in
 * `worker`. The load average is recorded before and after every step (other work on the machine skews times).
 *
 * Targets (issue 9): every peak RSS < 500 MiB; the no-change commit < 2 s — at 1 000 000 files.
 * Results go to bench/results/scale-<YYYY-MM-DD>.{json,md} (scale-<date>-files<N> for other sizes) unless
 * --out/--md/--no-save say otherwise. Everything is unmounted and removed at the end, on error and on Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { addTempDir, checkInterrupted, cleanup, finishVolume, handleSignals, runMain, trackVolume } from './lib/interrupt.js';
import { makeLog } from './lib/log.js';
import { removeTree } from './lib/peers.js';
import { CommandError, memInfo, run, startChild } from './lib/proc.js';
import { hostInfo, type HostInfo } from './lib/report.js';
import { scaleTreeBytes } from './lib/scale-tree.js';
import { DvfsVolume, type VolumeContext } from './lib/volumes.js';

const log = makeLog('scale');
const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const WRITER = fileURLToPath(new URL('./lib/scale-writer.js', import.meta.url));
const RSS_LIMIT_MIB = 500;
const NOCHANGE_LIMIT_S = 2;
const TARGET_FILES = 1_000_000;

const USAGE =
  'usage: node dist/bench/scale.js [--files N] [--per-dir N] [--writers N] [--dir BASE] [--dvfs PATH/cli/dvfs.js]\n' +
  '                                [--json] [--out FILE] [--md FILE] [--no-save] [--note TEXT] [--keep] [--skip STEPS]\n' +
  '  --files N     files in the tree (default 1000000)      --per-dir N   files per directory (default 1000)\n' +
  '  --writers N   parallel writer processes (default 8)     --dir BASE    work directory (default /var/tmp/dvfs-bench-scale)\n' +
  '  --keep        leave the work directory (repository, remote) in place for inspection\n' +
  '  --skip STEPS  comma-separated steps to leave out: commit-nochange, ls-R, push\n';

interface Options {
  files: number;
  perDir: number;
  writers: number;
  dir: string;
  dvfsCli: string;
  json: boolean;
  out: string | null;
  md: string | null;
  note: string | null;
  keep: boolean;
  skip: ReadonlySet<string>;
}

const SKIPPABLE = ['commit-nochange', 'ls-R', 'push'];

function fail(msg: string): never {
  process.stderr.write(`scale bench: ${msg}\n${USAGE}`);
  process.exit(2);
}

function options(): Options {
  let values;
  try {
    values = parseArgs({
      options: {
        files: { type: 'string', default: String(TARGET_FILES) },
        'per-dir': { type: 'string', default: '1000' },
        writers: { type: 'string', default: '8' },
        dir: { type: 'string' },
        dvfs: { type: 'string' },
        json: { type: 'boolean', default: false },
        out: { type: 'string' },
        md: { type: 'string' },
        'no-save': { type: 'boolean', default: false },
        note: { type: 'string' },
        keep: { type: 'boolean', default: false },
        skip: { type: 'string', default: '' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, not '${v ?? ''}'`);
    return n;
  };
  const files = int('files', values.files, 1);
  const tag = `scale-${new Date().toISOString().slice(0, 10)}${files === TARGET_FILES ? '' : `-files${files}`}`;
  const save = !values['no-save'];
  return {
    files,
    perDir: int('per-dir', values['per-dir'], 1),
    writers: int('writers', values.writers, 1),
    dir: resolve(values.dir ?? process.env['DVFS_BENCH_SCALE_DIR'] ?? '/var/tmp/dvfs-bench-scale'),
    dvfsCli: resolve(values.dvfs ?? fileURLToPath(new URL('../../cli/dvfs.js', import.meta.url))),
    json: values.json,
    out: values.out ?? (save ? join(RESULTS_DIR, `${tag}.json`) : null),
    md: values.md ?? (save ? join(RESULTS_DIR, `${tag}.md`) : null),
    note: values.note ?? null,
    keep: values.keep,
    skip: skipped(values.skip ?? ''),
  };
}

function skipped(list: string): Set<string> {
  const steps = new Set(list.split(',').filter((x) => x !== ''));
  for (const st of steps) if (!SKIPPABLE.includes(st)) fail(`--skip: '${st}' is not one of ${SKIPPABLE.join(', ')}`);
  return steps;
}

// ---------------------------------------------------------------------------------------------------------
// Memory of processes

const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;

/** Resets a process's VmHWM to its current RSS (Linux clear_refs 5), so the next reading is this step's peak. */
function resetPeak(pid: number): void {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5\n');
  } catch (e) {
    throw new Error(`cannot reset the peak RSS of pid ${pid} (/proc/${pid}/clear_refs): ${(e as Error).message}`);
  }
}

function peakMiB(pid: number): number {
  const m = memInfo(pid);
  if (m === null || !Number.isFinite(m.hwmKiB)) throw new Error(`cannot read VmHWM of pid ${pid}`);
  return mib(m.hwmKiB);
}

interface Sampled {
  seconds: number;
  stdout: string;
  peakMiB: number;
}

/**
 * Runs a command, sampling its VmHWM every 20 ms (the last reading before it exits is its peak, give or take
 * the final 20 ms). `onLine` sees stdout line by line instead of collecting it.
 */
function runSampled(cmd: string, args: string[], env: NodeJS.ProcessEnv, onLine?: (line: string) => void): Promise<Sampled> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let peak = 0;
    let stdout = '';
    let stderr = '';
    const sample = (): void => {
      const m = child.pid === undefined ? null : memInfo(child.pid);
      if (m !== null && Number.isFinite(m.hwmKiB)) peak = Math.max(peak, m.hwmKiB);
    };
    const timer = setInterval(sample, 20);
    if (onLine) createInterface({ input: child.stdout }).on('line', onLine);
    else child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    child.on('error', (e) => {
      clearInterval(timer);
      reject(new CommandError(`${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearInterval(timer);
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) reject(new CommandError(`${[cmd, ...args].join(' ')}: ${signal ?? `exit code ${code}`}: ${stderr.trim().slice(-600)}`));
      else resolvePromise({ seconds, stdout, peakMiB: mib(peak) });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------
// Steps

interface Step {
  name: string;
  seconds: number;
  /** Peak RSS of the process that does the step's work (`worker`). */
  rssMiB: number;
  worker: 'daemon' | 'cli';
  daemonPeakMiB: number;
  /** Peak RSS of the step's CLI process (none for write and ls -R). */
  cliPeakMiB: number | null;
  loadBefore: number[];
  loadAfter: number[];
  detail: Record<string, unknown>;
  /** The daemon's own memory figures after the step (dvfs status: rss, V8 heapTotal/heapUsed, external). */
  daemonMemoryAfter?: unknown;
}

class ScaleVolume extends DvfsVolume {
  protected override unmountTimeoutMs = 1_800_000;
  protected override initArgs(): string[] {
    return ['--kdf-iterations', '1000'];
  }
  cliPath(): string {
    return this.ctx.dvfsCli;
  }
  env(): NodeJS.ProcessEnv {
    return { ...this.ctx.dvfsEnv, DVFS_PASSWORD_FILE: this.pwFile };
  }
}

const load = (): number[] => loadavg().map((x) => Math.round(x * 100) / 100);

async function timedStep(vol: ScaleVolume, name: string, worker: Step['worker'], body: () => Promise<{ seconds: number; cliPeakMiB: number | null; detail: Record<string, unknown> }>): Promise<Step> {
  checkInterrupted();
  const pid = vol.daemonPid();
  if (pid === null) throw new Error('the mount daemon has no known pid');
  resetPeak(pid);
  const loadBefore = load();
  log(`${name}: start (load ${loadBefore.join(' ')})`);
  const r = await body();
  const daemonPeakMiB = peakMiB(pid);
  const rssMiB = worker === 'daemon' ? daemonPeakMiB : (r.cliPeakMiB ?? 0);
  const memory = (await vol.status().catch((): Record<string, unknown> => ({})))['memory'];
  const step: Step = { name, seconds: Math.round(r.seconds * 1000) / 1000, rssMiB, worker, daemonPeakMiB, cliPeakMiB: r.cliPeakMiB, loadBefore, loadAfter: load(), detail: r.detail, ...(memory === undefined ? {} : { daemonMemoryAfter: memory }) };
  log(`${name}: ${step.seconds.toFixed(2)} s, daemon peak ${daemonPeakMiB} MiB${r.cliPeakMiB === null ? '' : `, cli peak ${r.cliPeakMiB} MiB`}`);
  return step;
}

async function writeTree(o: Options, mnt: string): Promise<{ seconds: number; cliPeakMiB: null; detail: Record<string, unknown> }> {
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: o.writers }, (_, w) =>
      new Promise<string>((resolvePromise, reject) => {
        const child = startChild(process.execPath, [WRITER, mnt, String(o.files), String(o.perDir), String(w), String(o.writers)]);
        let out = '';
        let err = '';
        child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
        child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
        child.on('close', (code) => (code === 0 ? resolvePromise(out) : reject(new Error(`writer ${w} failed (${code}): ${err.trim().slice(-500)}`))));
      }),
    ),
  );
  await run('sync', [], { timeoutMs: 1_800_000 });
  let files = 0;
  let bytes = 0;
  for (const line of results) {
    const m = /files (\d+) bytes (\d+)/.exec(line);
    files += Number(m?.[1] ?? 0);
    bytes += Number(m?.[2] ?? 0);
  }
  if (files !== o.files) throw new Error(`the writers wrote ${files} files, not ${o.files}`);
  return { seconds: (performance.now() - t0) / 1000, cliPeakMiB: null, detail: { writers: o.writers, files, bytes } };
}

async function commit(vol: ScaleVolume, message: string): Promise<{ seconds: number; cliPeakMiB: number; detail: Record<string, unknown> }> {
  const r = await runSampled(process.execPath, [vol.cliPath(), 'commit', vol.repo, '--json', '-m', message], vol.env());
  const report = JSON.parse(r.stdout) as Record<string, unknown>;
  const pick = ['snapshot', 'nothingToCommit', 'added', 'changed', 'removed', 'files', 'bytes', 'filesHashed', 'objectsAdded', 'trees', 'seconds', 'phases'];
  return { seconds: r.seconds, cliPeakMiB: r.peakMiB, detail: Object.fromEntries(pick.filter((k) => k in report).map((k) => [k, report[k]])) };
}

async function listTree(o: Options, mnt: string): Promise<{ seconds: number; cliPeakMiB: null; detail: Record<string, unknown> }> {
  let listed = 0;
  const r = await runSampled('ls', ['-R', mnt], process.env, (line) => {
    if (/^f\d+$/.test(line)) listed++;
  });
  if (listed !== o.files) throw new Error(`ls -R listed ${listed} files, not ${o.files}`);
  return { seconds: r.seconds, cliPeakMiB: null, detail: { listed } };
}

async function push(vol: ScaleVolume, remoteDir: string): Promise<{ seconds: number; cliPeakMiB: number; detail: Record<string, unknown> }> {
  await run(process.execPath, [vol.cliPath(), 'remote', 'add', vol.repo, 'origin', `file://${remoteDir}`], { timeoutMs: 60_000, env: vol.env() });
  const r = await runSampled(process.execPath, [vol.cliPath(), 'push', vol.repo, 'origin', '--json'], vol.env());
  return { seconds: r.seconds, cliPeakMiB: r.peakMiB, detail: JSON.parse(r.stdout) as Record<string, unknown> };
}

// ---------------------------------------------------------------------------------------------------------
// Report

interface Target {
  check: string;
  value: number;
  limit: number;
  unit: string;
  pass: boolean;
}

interface Report {
  benchmark: 'scale';
  date: string;
  command: string;
  host: HostInfo;
  files: number;
  perDir: number;
  bytes: number;
  writers: number;
  steps: Step[];
  targets: Target[];
  /** Whether the run had the issue's size (the targets are stated for 1 000 000 files). */
  atTargetSize: boolean;
  /** False while steps are still to come (the files are rewritten after every step, so a stopped run keeps what it measured). */
  complete: boolean;
  note?: string;
}

function targets(steps: Step[]): Target[] {
  const by = (n: string): Step | undefined => steps.find((s) => s.name === n);
  const out: Target[] = [];
  const daemonPeak = Math.max(...steps.map((s) => s.daemonPeakMiB));
  out.push({ check: 'mount daemon peak RSS (all steps)', value: daemonPeak, limit: RSS_LIMIT_MIB, unit: 'MiB', pass: daemonPeak < RSS_LIMIT_MIB });
  const c = by('commit');
  if (c) out.push({ check: `commit peak RSS (${c.worker})`, value: c.rssMiB, limit: RSS_LIMIT_MIB, unit: 'MiB', pass: c.rssMiB < RSS_LIMIT_MIB });
  const p = by('push');
  if (p) out.push({ check: `push peak RSS (${p.worker})`, value: p.rssMiB, limit: RSS_LIMIT_MIB, unit: 'MiB', pass: p.rssMiB < RSS_LIMIT_MIB });
  const n = by('commit-nochange');
  if (n) out.push({ check: 'no-change commit', value: n.seconds, limit: NOCHANGE_LIMIT_S, unit: 's', pass: n.seconds < NOCHANGE_LIMIT_S });
  return out;
}

function markdown(r: Report): string {
  const lines = [
    `# Scale benchmark, ${r.date}`,
    '',
    `Command: \`${r.command}\`  `,
    `Host: ${r.host.cpus} x ${r.host.cpuModel}, ${r.host.memGiB} GiB RAM, kernel ${r.host.kernel}, Node ${r.host.node}  `,
    `Tree: ${r.files} files (${r.perDir} per directory, a quarter empty, the rest 32 B..4 KiB; ${(r.bytes / 2 ** 20).toFixed(1)} MiB), written by ${r.writers} parallel writers through one dvfs mount (encfs mode, standard preset)` +
      (r.atTargetSize ? '' : `  \n**Not the target size** (the targets are for ${TARGET_FILES} files)`) +
      (r.complete ? '' : '  \n**Incomplete run**: the steps below are all it measured before it stopped'),
    ...(r.note ? ['', `Note: ${r.note}`] : []),
    '',
    '| step | seconds | peak RSS MiB (worker) | daemon peak MiB | CLI peak MiB | load before | load after | detail |',
    '| --- | ---: | ---: | ---: | ---: | --- | --- | --- |',
    ...r.steps.map((s) => `| ${s.name} | ${s.seconds.toFixed(2)} | ${s.rssMiB} (${s.worker}) | ${s.daemonPeakMiB} | ${s.cliPeakMiB ?? '-'} | ${s.loadBefore.join(' ')} | ${s.loadAfter.join(' ')} | ${JSON.stringify(s.detail).replace(/\|/g, '\\|')} |`),
    '',
    '| target | value | limit | result |',
    '| --- | ---: | ---: | --- |',
    ...r.targets.map((t) => `| ${t.check} | ${t.value} ${t.unit} | < ${t.limit} ${t.unit} | **${t.pass ? 'PASS' : 'FAIL'}** |`),
    '',
    'Peak RSS: VmHWM of /proc/PID/status; the daemon\'s is reset (clear_refs 5) before each step, a CLI process is sampled every 20 ms. ' +
      'A commit of a mounted repository runs in the mount daemon (the CLI asks over the control socket); a push runs in the CLI process. ' +
      'Load: the 1/5/15-minute load average (2 cores shared with other work).',
    '',
  ];
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const o = options();
  handleSignals();
  mkdirSync(o.dir, { recursive: true });
  const base = mkdtempSync(join(o.dir, 'run-'));
  if (!o.keep) addTempDir(base);
  const ctx: VolumeContext = {
    dvfsCli: o.dvfsCli,
    dvfsEnv: { ...process.env, DVFS_STATE_DIR: join(base, 'state'), XDG_RUNTIME_DIR: join(base, 'state') },
    password: 'scale-bench-password',
    mountTimeoutMs: 120_000,
    log,
  };
  log(`${o.files} files, ${o.perDir} per directory, ${o.writers} writers, in ${base}`);
  const vol = new ScaleVolume('dvfs', join(base, 'vol'), ctx);
  trackVolume(vol);
  await vol.create();
  log(`mounted ${vol.mnt}, daemon pid ${vol.daemonPid() ?? '?'}`);

  const steps: Step[] = [];
  const report = (complete: boolean): Report => ({
    benchmark: 'scale',
    date: new Date().toISOString(),
    command: ['node', 'dist/bench/scale.js', ...process.argv.slice(2)].join(' '),
    host: hostInfo(),
    files: o.files,
    perDir: o.perDir,
    bytes: scaleTreeBytes(o.files),
    writers: o.writers,
    steps,
    targets: targets(steps),
    atTargetSize: o.files >= TARGET_FILES,
    complete,
    ...(o.note !== null ? { note: o.note } : {}),
  });
  const save = (r: Report): void => {
    if (o.out) writeFileSync(o.out, `${JSON.stringify(r, null, 2)}\n`);
    if (o.md) writeFileSync(o.md, markdown(r));
  };
  const step = async (name: string, worker: Step['worker'], body: Parameters<typeof timedStep>[3]): Promise<void> => {
    steps.push(await timedStep(vol, name, worker, body));
    save(report(false));
  };
  await step('write', 'daemon', () => writeTree(o, vol.mnt));
  await step('commit', 'daemon', () => commit(vol, 'scale: first'));
  if (!o.skip.has('commit-nochange')) await step('commit-nochange', 'daemon', () => commit(vol, 'scale: nothing changed'));
  if (!o.skip.has('ls-R')) await step('ls-R', 'daemon', () => listTree(o, vol.mnt));
  const remoteDir = join(base, 'remote');
  if (!o.skip.has('push')) await step('push', 'cli', () => push(vol, remoteDir));
  const t0 = performance.now();
  if (o.keep) await vol.unmount();
  else await finishVolume(vol);
  log(`unmounted in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const final = report(true);
  save(final);
  if (o.keep) log(`kept ${base}`);
  else await cleanup();
  process.stdout.write(o.json ? `${JSON.stringify(final, null, 2)}\n` : markdown(final));
  if (o.out) log(`wrote ${o.out}${o.md ? ` and ${o.md}` : ''}`);
}

runMain({ name: 'scale bench', log, stopping: 'unmounting and removing the work directory', removeDir: removeTree }, main);
