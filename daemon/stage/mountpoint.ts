/**
 * The mountpoint of a stage, guarded against plaintext leaks (CONTAINERS.md §6.6).
 *
 * A stage's writes must reach the FUSE daemon or fail. Two things could send them to the disk instead: a
 * process that starts before the mount is there, and one that keeps writing by path after the daemon died
 * and the dead mount was detached (the directory beneath is exposed again). So:
 * - the mountpoint is a fresh directory under the repository's run directory, made immutable (chattr +i)
 *   before anything is mounted on it: while nothing is mounted there, creating anything in it fails (EPERM);
 * - the stage starts only after the daemon reported the mount ready and /proc/self/mountinfo shows it;
 * - while the daemon is dead but its mount is still attached, every access gets ENOTCONN.
 * Each stage directory names its owner (`owner`: the pid and host of the dvfs run that made it); the next
 * dvfs run on that host removes the directories of owners that are gone (a killed dvfs run leaves an
 * immutable one behind, which would otherwise stop `rm -r` of the repository). A stage directory appears
 * complete, owner included: it is made under a staging name and renamed into place, so a cleaner in another
 * job never finds one without its owner and takes it for abandoned (that removed the mountpoint of a stage
 * job being set up when 20 jobs started at once). Directories of other hosts (a repository on a shared
 * filesystem) are never touched: their owner cannot be checked from here.
 *
 * Releasing never makes the mountpoint writable at its path: clearing the flag first and then removing the
 * directory left a window in which a writer that outlived the stage (by path, after the daemon died) created
 * a file, the rmdir failed, and the writable directory took the rest of its plaintext (seen under load in
 * CI). So the stage directory is renamed away first, with the immutable mountpoint inside it: a writer using
 * the old path gets ENOENT from then on. Only then is the flag cleared and the moved directory removed.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { isNodeError } from '../errors.js';
import { cleanStale } from '../mount/launcher.js';
import { isMounted, processAlive } from '../mount/mountinfo.js';

const OWNER_FILE = 'owner';
const RELEASED_PREFIX = '.released-';
/** A stage directory being made: `.new-PID-RUN`, renamed to `RUN` once its owner file is written. */
const STAGING_PREFIX = '.new-';

/** `PID HOST` of an owner file; a file with a pid alone (written by older versions) is of this host. */
function parseOwner(text: string): { pid: number; host: string } | null {
  const [pid, host] = text.trim().split(/\s+/);
  const n = Number(pid);
  if (!Number.isSafeInteger(n) || n <= 0) return null;
  return { pid: n, host: host ?? hostname() };
}

export interface GuardedMountpoint {
  /** The mountpoint (immutable while nothing is mounted on it). */
  path: string;
  /** Whether the immutable flag could be set (false: the filesystem does not support it). */
  guarded: boolean;
  /** Why not, when not. */
  problem: string | null;
  /** Clears the flag and removes the directories (only once nothing is mounted there). */
  release(): Promise<void>;
}

function chattr(flag: '+i' | '-i', path: string): string | null {
  const r = spawnSync('chattr', [flag, path], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return `chattr unavailable (${r.error.message})`;
  return r.status === 0 ? null : (r.stderr.trim() || `chattr exited with ${r.status}`);
}

/**
 * Removes a stage directory and its guarded mountpoint (see the header): renamed away first, then unflagged
 * and removed. Nothing is removed while a mount is attached there (its files would be the plaintext view);
 * false when the directory had to be left.
 */
export async function removeStageDir(dir: string): Promise<boolean> {
  if (isMounted(join(dir, 'mnt'))) return false;
  const moved = join(dirname(dir), `${RELEASED_PREFIX}${basename(dir).replace(/^\.released-/, '')}-${randomBytes(4).toString('hex')}`);
  try {
    await rename(dir, moved);
  } catch (e) {
    return isNodeError(e) && e.code === 'ENOENT';
  }
  if (isMounted(join(moved, 'mnt'))) return false; // a mount cannot move, but never rm -r through one
  chattr('-i', join(moved, 'mnt'));
  await rm(moved, { recursive: true, force: true });
  return true;
}

/** Removes the stage directories under `runDir` whose dvfs run is gone (detaching a dead mount first). */
export async function removeAbandonedStageDirs(runDir: string): Promise<string[]> {
  const stages = join(runDir, 'stages');
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(stages);
  } catch {
    return removed;
  }
  for (const name of names) {
    const dir = join(stages, name);
    const owner = parseOwner(await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => ''));
    if (name.startsWith(STAGING_PREFIX)) {
      // never mounted nor immutable: removed once its owner is known to be gone (else left, harmlessly)
      if (owner !== null && owner.host === hostname() && !processAlive(owner.pid)) {
        await rm(dir, { recursive: true, force: true });
        removed.push(dir);
      }
      continue;
    }
    if (owner !== null && (owner.host !== hostname() || processAlive(owner.pid))) continue;
    try {
      cleanStale(join(dir, 'mnt'));
    } catch {
      continue;
    }
    if (await removeStageDir(dir)) removed.push(dir);
  }
  return removed;
}

export async function guardedMountpoint(runDir: string, runId: string): Promise<GuardedMountpoint> {
  const dir = join(runDir, 'stages', runId);
  const path = join(dir, 'mnt');
  const staging = join(runDir, 'stages', `${STAGING_PREFIX}${process.pid}-${runId}`);
  await mkdir(join(staging, 'mnt'), { recursive: true, mode: 0o700 });
  await writeFile(join(staging, OWNER_FILE), `${process.pid} ${hostname()}\n`, { mode: 0o600 });
  await rename(staging, dir);
  const problem = chattr('+i', path);
  return {
    path,
    guarded: problem === null,
    problem,
    release: async () => {
      await removeStageDir(dir);
    },
  };
}
