/**
 * Helpers shared by the fault tests:
 *
 * - {@link runDvfs}: the real CLI as a child process, asynchronously (the test process may be serving the S3
 *   endpoint the command talks to), bounded by a test-side timeout: a command still running then is killed
 *   and reported as hung.
 * - {@link cleanFailure}: why a failed command's stderr is not the one clear line dvfs promises (or null).
 * - {@link faultSeeds}: the seeds to run (DVFS_FAULT_SEEDS = how many, DVFS_FAULT_SEED = the first).
 * - {@link sameTree}: compares a plain directory with the files it should hold.
 */
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { CLI_PATH, REPO_ROOT } from '../helpers/cli.js';

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Killed by the test-side timeout. */
  hung: boolean;
  ms: number;
}

export function runDvfs(args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; onSpawn?: (pid: number) => void } = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, DVFS_NO_PROGRESS: '1', ...options.env };
  delete env['DVFS_DEBUG'];
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], { env, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, options.timeoutMs ?? 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), hung, ms: performance.now() - started });
    });
  });
}

/**
 * null when `r` failed the way dvfs promises: exit status not 0, no signal, and stderr one `dvfs: ` line with
 * no stack trace and no "internal error", naming one of `mustName` (the remote, a path) when given.
 * Otherwise a description of what is wrong.
 */
export function cleanFailure(r: RunResult, mustName: readonly (string | RegExp)[] = []): string | null {
  if (r.hung) return 'hung (killed by the test-side timeout)';
  if (r.signal !== null) return `killed by ${r.signal}`;
  if (r.status === 0) return 'exit status 0';
  const lines = r.stderr.trim().split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== 1) return `${lines.length} lines on stderr, not 1: ${r.stderr.slice(0, 600)}`;
  const line = lines[0] as string;
  if (!line.startsWith('dvfs: ')) return `stderr does not start with "dvfs: ": ${line}`;
  if (/internal error/.test(line)) return `an internal error: ${line}`;
  if (/^\s+at /m.test(r.stderr)) return `a stack trace: ${line}`;
  if (mustName.length > 0 && !mustName.some((n) => (typeof n === 'string' ? line.includes(n) : n.test(line)))) return `names none of ${mustName.join(', ')}: ${line}`;
  return null;
}

export function faultSeeds(fallbackCount: number): number[] {
  const rawCount = process.env['DVFS_FAULT_SEEDS'];
  const count = rawCount === undefined ? fallbackCount : Number(rawCount);
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`DVFS_FAULT_SEEDS must be a positive integer, not ${JSON.stringify(rawCount)}`);
  const rawFirst = process.env['DVFS_FAULT_SEED'];
  const first = rawFirst === undefined ? 1 + Math.floor(Math.random() * 1_000_000) : Number(rawFirst);
  if (!Number.isSafeInteger(first)) throw new Error(`DVFS_FAULT_SEED must be an integer, not ${JSON.stringify(rawFirst)}`);
  return Array.from({ length: count }, (_, i) => first + i);
}

/** Every regular file below `dir`, relative path -> bytes. */
export async function readTree(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out.set(relative(dir, p), await readFile(p));
  }
  return out;
}

/** null when `dir` holds exactly `expected` (relative path -> bytes), else the first difference. */
export async function sameTree(dir: string, expected: ReadonlyMap<string, Buffer>): Promise<string | null> {
  const got = await readTree(dir);
  for (const [p, data] of expected) {
    const g = got.get(p);
    if (g === undefined) return `${p} is missing`;
    if (!g.equals(data)) return `${p} differs (${g.length} bytes, expected ${data.length})`;
  }
  for (const p of got.keys()) if (!expected.has(p)) return `${p} should not be there`;
  return null;
}
