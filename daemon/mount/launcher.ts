/**
 * `dvfs mount` without --foreground: starts a detached daemon, hands it the password or identity over a pipe, and
 * returns once the mount answers (or reports why it failed). Also finds and cleans stale mounts left by a
 * killed daemon, and stops a running one for `dvfs umount`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { DvfsError, type DvfsErrorCode } from '../errors.js';
import { ctlRequest } from '../ctl/client.js';
import { detachMount, mountState, processAlive } from './mountinfo.js';
import { findRecord, removeRecord, type MountRecord } from './records.js';
import type { Credential } from '../keys/unlock.js';
// type only: tree-keys.js pulls in the unlock stack, which `finish` and `umount` (stopDaemon) never need
import type { TreeKeys, TreeKeysWire } from '../keys/tree-keys.js';
import type { SessionSpec } from './session.js';

const DAEMON = fileURLToPath(new URL('./daemon-main.js', import.meta.url));
const START_TIMEOUT_MS = 120_000;

/**
 * How the key reaches the daemon: on its stdin pipe, never argv or the environment — the password, an
 * identity's seed, or the keys of a tree the launching process already opened (no second unlock).
 */
export type KeyHandoff = { kind: 'password'; password: string } | { kind: 'identity'; seed: string; name: string } | TreeKeysWire;

export async function keyHandoff(credential: Credential | TreeKeys): Promise<KeyHandoff> {
  if (credential.kind === 'keys') return (await import('../keys/tree-keys.js')).encodeTreeKeys(credential);
  if (credential.kind === 'password') return { kind: 'password', password: credential.password.toString('base64') };
  const seed = credential.identity.exportSeed();
  try {
    return { kind: 'identity', seed: seed.toString('base64'), name: credential.name };
  } finally {
    seed.fill(0);
  }
}

/**
 * V8 flags of the daemon. A mount that writes or commits a million files allocates gigabytes of short-lived
 * objects around a live heap of 100-200 MiB; V8's default lets the heap grow to up to 4x the live size
 * between full collections, which is most of the daemon's resident memory then. A fixed growing factor of
 * 1.3 (and a smaller young generation) keeps the heap near what is live, for a few more collections.
 * DVFS_DAEMON_NODE_FLAGS replaces them (space-separated `--flags`; empty: V8's defaults) to measure others.
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--heap-growing-percent=30', '--max-semi-space-size=8'];

export function daemonNodeFlags(env: NodeJS.ProcessEnv = process.env): string[] {
  const v = env['DVFS_DAEMON_NODE_FLAGS'];
  if (v === undefined) return [...DAEMON_NODE_FLAGS];
  const flags = v.split(/\s+/).filter((f) => f !== '');
  const bad = flags.find((f) => !/^--[a-z0-9-]+(=[A-Za-z0-9._-]+)?$/.test(f));
  if (bad !== undefined) throw new DvfsError('E_USAGE', `DVFS_DAEMON_NODE_FLAGS: '${bad}' is not a --flag or --flag=value`, { hint: 'unset DVFS_DAEMON_NODE_FLAGS for the defaults' });
  return flags;
}

function spawnDaemon(): ChildProcessWithoutNullStreams {
  // No core dumps of a process holding keys and plaintext: RLIMIT_CORE 0 (soft and hard) before exec'ing the
  // daemon (Node cannot set rlimits itself); exec keeps the pid, so the record names the daemon.
  // At most 2 malloc arenas (unless MALLOC_ARENA_MAX is set): the FUSE threads otherwise get up to 8 per
  // core, each keeping freed memory of its own (measured: 7-11 % of the daemon's peak at 150 000 files).
  const env = { ...process.env, MALLOC_ARENA_MAX: process.env['MALLOC_ARENA_MAX'] ?? '2' };
  return spawn('/bin/sh', ['-c', 'ulimit -c 0 && exec "$0" "$@"', process.execPath, ...daemonNodeFlags(), DAEMON], { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env });
}

let prespawned: ChildProcessWithoutNullStreams | null = null;

/**
 * Starts a mount daemon process now, before its request is known, so that its start-up (Node and its
 * modules, a few hundred milliseconds) overlaps the caller's own work; the next {@link launchDaemon} of this
 * process hands it the request. A daemon never given one reads end-of-file on stdin when this process
 * exits, and exits too. For one-shot callers that will mount (the SLURM stage job).
 */
export function prespawnDaemon(): void {
  if (prespawned !== null) return;
  prespawned = spawnDaemon();
  holdsProcess(prespawned, false); // an unused one must not keep this process alive
}

/** Whether the child and its pipes keep this process's event loop alive. */
function holdsProcess(child: ChildProcessWithoutNullStreams, hold: boolean): void {
  if (hold) child.ref();
  else child.unref();
  for (const pipe of [child.stdin, child.stdout, child.stderr]) {
    if (pipe instanceof Socket) {
      if (hold) pipe.ref();
      else pipe.unref();
    }
  }
}

/** The prespawned daemon if it is still waiting for its request, else a new one. */
function takeDaemon(): ChildProcessWithoutNullStreams {
  const child = prespawned;
  prespawned = null;
  if (child !== null && child.exitCode === null && child.signalCode === null) {
    holdsProcess(child, true);
    return child;
  }
  return spawnDaemon();
}

export async function launchDaemon(spec: SessionSpec, credential: Credential | TreeKeys): Promise<MountRecord> {
  const key = await keyHandoff(credential);
  const child = takeDaemon();
  child.stdin.on('error', () => undefined); // a daemon that died at start-up: reported by 'exit' below
  child.stdin.end(JSON.stringify({ ...spec, key }) + '\n');
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  return new Promise<MountRecord>((resolve, reject) => {
    const timer = setTimeout(() => fail(new DvfsError('E_IO', `the mount daemon did not come up within ${START_TIMEOUT_MS / 1000} s`, { path: spec.mountpoint })), START_TIMEOUT_MS);
    const detach = (): void => {
      clearTimeout(timer);
      child.stdout.destroy();
      child.stderr.destroy();
      child.unref();
    };
    const fail = (e: Error): void => {
      detach();
      reject(e);
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      const line = out.slice(0, nl);
      if (line.startsWith('READY ')) {
        detach();
        resolve(JSON.parse(line.slice(6)) as MountRecord);
      } else if (line.startsWith('FAILED ')) {
        const f = JSON.parse(line.slice(7)) as { code: DvfsErrorCode; message: string; path?: string; hint?: string };
        fail(new DvfsError(f.code, f.message, { ...(f.path ? { path: f.path } : {}), ...(f.hint ? { hint: f.hint } : {}) }));
      } else {
        fail(new DvfsError('E_IO', `unexpected output from the mount daemon: ${line.slice(0, 200)}`));
      }
    });
    child.on('exit', (code, signal) => {
      if (out.includes('\n')) return;
      fail(new DvfsError('E_IO', `the mount daemon exited (${signal ?? `code ${code}`}) before mounting${err ? `: ${err.trim().split('\n').pop()}` : ''}`, { path: spec.mountpoint }));
    });
  });
}

export type StaleCleanup = { cleaned: false } | { cleaned: true; message: string };

/**
 * Cleans what a killed daemon left at `mountpoint`: a dead FUSE mount (ENOTCONN) and/or a record whose
 * daemon is gone. A live mount is left alone.
 */
export function cleanStale(mountpoint: string): StaleCleanup {
  const record = findRecord(mountpoint);
  const state = mountState(mountpoint);
  const daemonAlive = record !== null && processAlive(record.pid);
  if (state === 'alive' && (record === null || daemonAlive)) return { cleaned: false };
  if (state === 'not-mounted' && (record === null || daemonAlive)) return { cleaned: false };
  const parts: string[] = [];
  if (state !== 'not-mounted') {
    if (!detachMount(mountpoint)) throw new DvfsError('E_IO', 'cannot detach the stale mount', { path: mountpoint, hint: `try: fusermount -uz ${mountpoint}` });
    parts.push('detached a stale mount');
  }
  if (record) {
    removeRecord(record);
    parts.push(`removed the record of daemon pid ${record.pid}, which is not running`);
  }
  return { cleaned: true, message: `${mountpoint}: ${parts.join('; ')}` };
}

/**
 * Asks a mount's daemon to unmount and waits until it has exited. Refused (E_BUSY) while files are open
 * through the mount, unless `force`.
 */
export async function stopDaemon(record: MountRecord, options: { force?: boolean; timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  await ctlRequest(record.socket, 'unmount', 30_000, { force: options.force ?? false });
  const deadline = Date.now() + timeoutMs;
  while (processAlive(record.pid)) {
    if (Date.now() > deadline) throw new DvfsError('E_IO', `daemon pid ${record.pid} did not exit within ${timeoutMs / 1000} s`, { path: record.mountpoint });
    await new Promise((r) => setTimeout(r, 10));
  }
}
