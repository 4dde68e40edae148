/**
 * Process and kernel helpers for the mount benchmark: running a command with a time limit (and killing it
 * when the benchmark is interrupted), finding mounts under a directory, daemon pids, RSS and CPU time from
 * /proc, and dropping the page cache.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join, resolve, sep } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface RunOptions {
  /** Hard limit: the command is killed (SIGKILL) and the call fails once it is exceeded. */
  timeoutMs: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** 'ignore' discards stdout (for commands whose output would cost the parent time, like ls -lR). */
  stdout?: 'pipe' | 'ignore';
  /** Exit codes taken as success (default [0]). */
  okCodes?: number[];
  /** Cleanup commands still run after an interrupt; everything else is refused then. */
  duringAbort?: boolean;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  seconds: number;
  /**
   * user + system CPU seconds of the command and the descendants it waited for (the growth of this process's
   * children times while it ran: exact when no other child of this process ended meanwhile).
   */
  cpuSeconds: number;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly result?: RunResult,
  ) {
    super(message);
  }
}

/** Children that are running now; killed when the benchmark is interrupted. */
const active = new Set<ChildProcess>();
let aborting = false;

export function killActiveChildren(): void {
  aborting = true;
  for (const c of active) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

const describe = (cmd: string, args: string[]): string => [cmd, ...args].join(' ');
const tail = (s: string): string => s.trim().split('\n').slice(-3).join(' | ').slice(0, 400);

/**
 * Runs a command without a shell. Resolves on exit (not on stdio close: daemonising programs such as encfs
 * may leave a grandchild holding the pipes). Rejects on a non-OK exit code, a signal, or the time limit.
 */
export function run(cmd: string, args: string[], opts: RunOptions): Promise<RunResult> {
  if (aborting && !opts.duringAbort) return Promise.reject(new CommandError('interrupted'));
  return new Promise<RunResult>((resolvePromise, reject) => {
    const started = performance.now();
    const cpuBefore = childrenCpuSeconds();
    const child = spawn(cmd, args, {
      stdio: ['pipe', opts.stdout === 'ignore' ? 'ignore' : 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    active.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1 << 20) stdout += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 1 << 20) stderr += d;
    });
    child.stdin?.on('error', () => {
      /* the command did not read its input */
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      active.delete(child);
      reject(new CommandError(`${describe(cmd, args)}: ${e.message}`));
    });
    child.on('exit', (code, signal) => {
      const seconds = (performance.now() - started) / 1000;
      clearTimeout(timer);
      active.delete(child);
      // Give the pipes a moment to drain, then let go of them whoever still holds them.
      setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        const result: RunResult = { code, signal, stdout, stderr, seconds, cpuSeconds: childrenCpuSeconds() - cpuBefore };
        if (timedOut) reject(new CommandError(`${describe(cmd, args)}: timed out after ${opts.timeoutMs / 1000} s`, result));
        else if (aborting && !opts.duringAbort) reject(new CommandError('interrupted', result));
        else if (signal !== null) reject(new CommandError(`${describe(cmd, args)}: killed by ${signal}`, result));
        else if (!(opts.okCodes ?? [0]).includes(code ?? -1)) {
          reject(new CommandError(`${describe(cmd, args)}: exit code ${code}${stderr ? `: ${tail(stderr)}` : ''}`, result));
        } else resolvePromise(result);
      }, 20);
    });
  });
}

/** Starts a long-running helper child (tracked so an interrupt kills it). */
export function startChild(cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  if (aborting) throw new CommandError('interrupted');
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
  active.add(child);
  child.on('exit', () => active.delete(child));
  child.on('error', () => active.delete(child));
  return child;
}

/** The absolute path of an executable found in PATH, or null. */
export function which(name: string): string | null {
  if (name.includes('/')) {
    try {
      accessSync(name, constants.X_OK);
      return resolve(name);
    } catch {
      return null;
    }
  }
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

export { isMounted, listMounts, mountsUnder, processAlive } from '../../daemon/mount/mountinfo.js';

export async function waitFor(cond: () => boolean, timeoutMs: number, stepMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (cond()) return true;
    if (Date.now() > deadline) return false;
    await sleep(stepMs);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function cmdline(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((s) => s.length > 0);
  } catch {
    return null;
  }
}

/** `path` is `dir` or lies below it (both absolute). */
const isUnder = (path: string, dir: string): boolean => path === dir || path.startsWith(dir + sep);

/** Pids of the other processes in /proc for which `match` says yes (processes that vanish meanwhile are skipped by `match`). */
function pidsWhere(match: (pid: number) => boolean): number[] {
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid !== process.pid && match(pid)) out.push(pid);
  }
  return out;
}

/**
 * Pids of processes whose command line names `path` (or a path below it) as one of its arguments, and
 * (when given) whose program's base name is `program`. Finds the encfs and gocryptfs daemons of a mount.
 */
export function pidsNaming(path: string, program?: string): number[] {
  const p = resolve(path);
  return pidsWhere((pid) => {
    const argv = cmdline(pid);
    if (!argv || argv.length === 0) return false;
    if (program !== undefined && (argv[0] ?? '').split('/').pop() !== program) return false;
    return argv.slice(1).some((a) => isUnder(a, p));
  });
}

/** Pids of processes whose working directory is `dir` or below it (e.g. helpers left behind by a killed child). */
export function pidsWorkingIn(dir: string): number[] {
  return pidsWhere((pid) => {
    try {
      return isUnder(readlinkSync(`/proc/${pid}/cwd`), dir);
    } catch {
      return false; // gone, or not ours to read
    }
  });
}

/** SIGKILL, ignoring a process that is already gone. */
export function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* gone */
  }
}

export interface MemInfo {
  rssKiB: number;
  hwmKiB: number;
  threads: number;
}

export function memInfo(pid: number): MemInfo | null {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? Number.NaN);
    return { rssKiB: field('VmRSS'), hwmKiB: field('VmHWM'), threads: field('Threads') };
  } catch {
    return null;
  }
}

/** Number of open file descriptors of a process (null when it cannot be read). */
export function fdCount(pid: number): number | null {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/** user + system CPU seconds a process (all its threads) has used, assuming the usual 100 Hz USER_HZ. */
export function cpuSeconds(pid: number, ticksPerSecond = 100): number | null {
  const rest = statFields(pid);
  const utime = Number(rest?.[11]);
  const stime = Number(rest?.[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return null;
  return (utime + stime) / ticksPerSecond;
}

/** user + system CPU seconds of this process's children that have ended and been waited for (cutime + cstime). */
export function childrenCpuSeconds(ticksPerSecond = 100): number {
  const rest = statFields('self');
  const cutime = Number(rest?.[13]);
  const cstime = Number(rest?.[14]);
  return Number.isFinite(cutime) && Number.isFinite(cstime) ? (cutime + cstime) / ticksPerSecond : 0;
}

/** The fields of /proc/PID/stat after the command name (field 3 on), or null when it cannot be read. */
function statFields(pid: number | 'self'): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may contain spaces: fields count from after the last ')'.
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** `sync`, then drops the page cache, dentries and inodes. Returns false when the kernel refused. */
export async function dropCaches(timeoutMs: number): Promise<boolean> {
  await run('sync', [], { timeoutMs });
  if (aborting) throw new CommandError('interrupted');
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

/** Whether the benchmark is being interrupted (no new work may start). */
export function isAborting(): boolean {
  return aborting;
}
