/**
 * The repository lock, `REPO/.dvfs/lock`: whoever created it (exclusively, which also works on NFSv3+ and
 * Lustre) may change snapshots, objects, manifests and HEAD. It is made whole: written and synced beside its
 * place, then hard-linked there (link(2) is as exclusive as O_CREAT|O_EXCL). It holds one line of JSON
 *
 *   { "pid": 1234, "host": "node17", "startedAt": "<ISO>", "purpose": "snapshot", "token": "<random hex>",
 *     "bootId": "<kernel boot id>", "pidStart": "<process start time, clock ticks since boot>" }
 *
 * (bootId / pidStart on Linux only). The random token makes every lock file's contents unique, so "is this
 * still the lock I saw / I took?" is a comparison of contents (inode numbers get reused at once).
 *
 * A lock left by a process that is gone is broken: same host, and either a different boot, a pid that is not
 * alive, or a pid now belonging to another process (start time differs). A lock from another host cannot be
 * checked and is never broken automatically. A lock file that is not JSON (damaged, or made by an older dvfs,
 * which created it empty and wrote it after) is left for a few seconds, then broken as a crash leftover.
 *
 * Breaking is serialised by a second exclusive file, `lock.break`: its holder re-reads the lock, and removes it
 * only if it is still exactly the stale one it judged. Nobody else removes a lock they did not create, so no
 * waiter can ever delete a live lock that replaced the stale one. `lock.break` is held for one read and one
 * unlink; one older than BREAKER_STALE_MS is a crash leftover and is removed.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DvfsError, isNodeError } from '../errors.js';
import { META_DIR } from '../repo/layout.js';

export const LOCK_FILE = 'lock';
const BREAKER_SUFFIX = '.break';
/** A lock being written beside its place: `lock.new-HOST-PID-RANDOM` (see writeBeside). */
const NEW_INFIX = '.new-';
/** How long a lock file may stay unparseable before it counts as a crash leftover. */
const UNREADABLE_GRACE_MS = 5_000;
/** A `lock.break` older than this was left by a crash (it is normally held for a millisecond). */
const BREAKER_STALE_MS = 10_000;
const FIRST_DELAY_MS = 5;
const MAX_DELAY_MS = 100;

export interface LockInfo {
  pid: number;
  host: string;
  startedAt: string;
  purpose: string;
  token?: string;
  bootId?: string;
  pidStart?: string;
}

export interface LockOptions {
  /** What the lock is for, shown to whoever waits for it ("snapshot", "gc"...). */
  purpose: string;
  /** How long to wait for a live holder (default 0: fail at once). */
  waitMs?: number;
}

export interface RepoLock {
  readonly path: string;
  readonly info: LockInfo;
  /** Set when a stale lock was broken on the way: whose it was and why it counted as stale. */
  readonly brokeStale?: string;
  /** Removes the lock (idempotent; leaves a lock file that is no longer ours alone). */
  release(): Promise<void>;
}

export function lockPath(repoRoot: string): string {
  return join(repoRoot, META_DIR, LOCK_FILE);
}

function readProc(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function bootId(): string | undefined {
  return readProc('/proc/sys/kernel/random/boot_id')?.trim();
}

/** Start time of a process (field 22 of /proc/PID/stat), undefined when unknown. */
function processStart(pid: number): string | undefined {
  const text = readProc(`/proc/${pid}/stat`);
  if (text === undefined) return undefined;
  // The command name (field 2) is in parentheses and may contain anything; fields resume after the last ")".
  return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return isNodeError(e) && e.code === 'EPERM';
  }
}

function ourInfo(purpose: string): LockInfo {
  const info: LockInfo = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date().toISOString(),
    purpose,
    token: randomBytes(16).toString('hex'),
  };
  const boot = bootId();
  const start = processStart(process.pid);
  if (boot !== undefined) info.bootId = boot;
  if (start !== undefined) info.pidStart = start;
  return info;
}

function parseInfo(text: string): LockInfo | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const { pid, host, startedAt, purpose, token, bootId: boot, pidStart } = v as { [k: string]: unknown };
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return null;
  if (typeof host !== 'string' || typeof startedAt !== 'string' || typeof purpose !== 'string') return null;
  const info: LockInfo = { pid, host, startedAt, purpose };
  if (typeof token === 'string') info.token = token;
  if (typeof boot === 'string') info.bootId = boot;
  if (typeof pidStart === 'string') info.pidStart = pidStart;
  return info;
}

function describe(info: LockInfo): string {
  return `pid ${info.pid} on ${info.host} (purpose: ${info.purpose}, since ${info.startedAt})`;
}

/** Why the holder is gone, or null when it may be alive. */
function staleReason(info: LockInfo): string | null {
  if (info.host !== hostname()) return null;
  const boot = bootId();
  if (info.bootId !== undefined && boot !== undefined && info.bootId !== boot) return 'the host has rebooted since';
  if (!processAlive(info.pid)) return 'that process is gone';
  if (info.pidStart !== undefined) {
    const start = processStart(info.pid);
    if (start !== undefined && start !== info.pidStart) return 'its pid now belongs to another process';
  }
  return null;
}

/** Contents and mtime of a file, or null when it does not exist. */
async function peek(path: string): Promise<{ text: string; mtimeMs: number } | null> {
  try {
    const st = await stat(path);
    return { text: await readFile(path, 'utf8'), mtimeMs: st.mtimeMs };
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return null;
    throw e;
  }
}

type Holder = { state: 'gone' } | { state: 'live'; info: LockInfo | null } | { state: 'stale'; text: string; note: string };

async function inspect(path: string): Promise<Holder> {
  const seen = await peek(path);
  if (seen === null) return { state: 'gone' };
  const info = parseInfo(seen.text);
  if (info === null) {
    // Being written right now, or left half-written by a crash.
    if (Date.now() - seen.mtimeMs < UNREADABLE_GRACE_MS) return { state: 'live', info: null };
    return { state: 'stale', text: seen.text, note: `broke an unreadable lock file left over from a crash (${path})` };
  }
  const why = staleReason(info);
  if (why === null) return { state: 'live', info };
  return { state: 'stale', text: seen.text, note: `broke the stale repository lock of ${describe(info)}: ${why}` };
}

/** Removes a crashed breaker's `lock.break` if it is still the file we looked at. */
async function removeOldBreaker(breaker: string, text: string): Promise<void> {
  const aside = `${breaker}.${process.pid}-${randomBytes(6).toString('hex')}`;
  try {
    await rename(breaker, aside);
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return;
    throw e;
  }
  try {
    // Someone took a fresh one after we looked: give it back (unless yet another appeared meanwhile).
    if ((await readFile(aside, 'utf8')) !== text) await link(aside, breaker).catch(() => undefined);
  } finally {
    await unlink(aside);
  }
}

/** Removes the lock if it still holds exactly `staleText`; false when it could not (yet). */
async function breakStale(path: string, staleText: string): Promise<boolean> {
  const breaker = path + BREAKER_SUFFIX;
  let fh: FileHandle;
  try {
    fh = await open(breaker, 'wx', 0o644);
  } catch (e) {
    if (!(isNodeError(e) && e.code === 'EEXIST')) throw e;
    const other = await peek(breaker);
    if (other !== null && Date.now() - other.mtimeMs > BREAKER_STALE_MS) await removeOldBreaker(breaker, other.text);
    return false;
  }
  try {
    await fh.writeFile(JSON.stringify(ourInfo('breaking a stale lock')) + '\n');
    await fh.close();
    const now = await peek(path);
    if (now === null || now.text !== staleText) return false;
    await unlink(path);
    return true;
  } finally {
    await unlink(breaker).catch(() => undefined);
  }
}

function lockedError(repoRoot: string, path: string, holder: LockInfo | null, waitedMs: number): DvfsError {
  const who = holder === null ? 'another process (its lock file is being written)' : describe(holder);
  const waited = waitedMs > 0 ? ` after waiting ${Math.round(waitedMs)} ms` : '';
  const remote = holder !== null && holder.host !== hostname();
  return new DvfsError('E_EXISTS', `repository ${repoRoot} is locked by ${who}${waited}`, {
    path,
    hint: remote
      ? `wait for it to finish; if no dvfs process is running on ${holder.host} any more, remove ${path}`
      : 'wait for it to finish (or wait longer); if that process is stuck, stop it: a lock of a dead process is broken automatically',
  });
}

/** Takes the repository lock, waiting up to `waitMs` for a live holder; breaks locks of dead processes. */
export async function acquireRepoLock(repoRoot: string, options: LockOptions): Promise<RepoLock> {
  const path = lockPath(repoRoot);
  const waitMs = options.waitMs ?? 0;
  const start = Date.now();
  let delay = FIRST_DELAY_MS;
  const notes: string[] = [];
  const info = ourInfo(options.purpose);
  const text = JSON.stringify(info) + '\n';
  let whole: string;
  try {
    whole = await writeBeside(path, text);
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') {
      throw new DvfsError('E_NOTFOUND', `not a dvfs repository (no ${META_DIR} directory): ${repoRoot}`, { path: repoRoot });
    }
    throw e;
  }
  try {
    for (;;) {
      if (await linkInPlace(whole, path, text)) {
        await removeLeftovers(path);
        return makeLock(path, info, text, notes);
      }
      const holder = await inspect(path);
      if (holder.state === 'gone') continue;
      if (holder.state === 'stale') {
        if (await breakStale(path, holder.text)) notes.push(holder.note);
        else await sleep(FIRST_DELAY_MS); // another waiter is breaking it
        continue;
      }
      const waited = Date.now() - start;
      if (waited >= waitMs) throw lockedError(repoRoot, path, holder.info, waited);
      // Jittered so that waiters woken together do not retry in lockstep.
      await sleep(Math.min(delay * (0.5 + Math.random()), waitMs - waited));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    }
  } finally {
    await unlink(whole).catch(() => undefined);
  }
}

/**
 * Writes the lock's text, synced, to a new file beside it (`lock.new-HOST-PID-RANDOM`): the lock itself is then
 * made with {@link linkInPlace}, so it never exists empty or half-written — a reader would take such a
 * file, once a few seconds old, for a crash leftover and break a live lock (a stalled writer on a loaded node).
 */
async function writeBeside(path: string, text: string): Promise<string> {
  const whole = `${path}${NEW_INFIX}${hostname()}-${process.pid}-${randomBytes(6).toString('hex')}`;
  await createSynced(whole, text);
  return whole;
}

/** Creates `path` exclusively (EEXIST when it exists) holding `text`, synced; removed again if writing fails. */
async function createSynced(path: string, text: string): Promise<void> {
  const fh = await open(path, 'wx', 0o644);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await unlink(path).catch(() => undefined);
    throw e;
  }
  await fh.close();
}

/**
 * Removes the `lock.new-…` files of processes of this host that are gone (one killed while it waited for the
 * lock leaves its written lock behind); called holding the lock.
 */
async function removeLeftovers(path: string): Promise<void> {
  const prefix = `${basename(path)}${NEW_INFIX}${hostname()}-`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-[0-9a-f]{12}$/.exec(name.slice(prefix.length))?.[1]);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid)) await unlink(join(dirname(path), name)).catch(() => undefined);
  }
}

/** Filesystems that cannot hard-link answer link(2) with one of these. */
const NO_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

/**
 * Hard-links the written lock into place (atomic, and exclusive like O_EXCL, on NFS too); false if it exists.
 * Where the filesystem has no hard links, the lock is created with O_EXCL and written after (the older way).
 */
async function linkInPlace(whole: string, path: string, text: string): Promise<boolean> {
  try {
    await link(whole, path);
    return true;
  } catch (e) {
    if (isNodeError(e) && e.code === 'EEXIST') return false;
    if (!(isNodeError(e) && e.code !== undefined && NO_LINKS.has(e.code))) throw e;
  }
  try {
    await createSynced(path, text);
    return true;
  } catch (e) {
    if (isNodeError(e) && e.code === 'EEXIST') return false;
    throw e;
  }
}

function makeLock(path: string, info: LockInfo, text: string, notes: string[]): RepoLock {
  let released = false;
  return {
    path,
    info,
    ...(notes.length > 0 ? { brokeStale: notes.join('; ') } : {}),
    async release(): Promise<void> {
      if (released) return;
      released = true;
      const now = await peek(path);
      if (now === null || now.text !== text) return; // not ours any more
      await unlink(path).catch((e: unknown) => {
        if (!(isNodeError(e) && e.code === 'ENOENT')) throw e;
      });
    },
  };
}

/** Runs `fn` holding the repository lock; releases it however `fn` ends. */
export async function withRepoLock<T>(repoRoot: string, options: LockOptions, fn: (lock: RepoLock) => Promise<T>): Promise<T> {
  const lock = await acquireRepoLock(repoRoot, options);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}

/** Who holds the lock now (null when nobody, or while its file is being written), for status displays. */
export async function readLockInfo(repoRoot: string): Promise<LockInfo | null> {
  const seen = await peek(lockPath(repoRoot));
  return seen === null ? null : parseInfo(seen.text);
}

/** Who holds the repository lock, without taking or breaking it (dvfs doctor): free, live, or stale and why. */
export async function repoLockState(repoRoot: string): Promise<{ state: 'free' } | { state: 'live'; info: LockInfo | null } | { state: 'stale'; note: string }> {
  const holder = await inspect(lockPath(repoRoot));
  if (holder.state === 'gone') return { state: 'free' };
  if (holder.state === 'live') return holder;
  return { state: 'stale', note: holder.note };
}
