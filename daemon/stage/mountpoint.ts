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
 * Each stage directory names its owner (`owner`: the pid of the dvfs run that made it); the next dvfs run
 * removes the directories of owners that are gone (a killed dvfs run leaves an immutable one behind, which
 * would otherwise stop `rm -r` of the repository).
 */
import { spawnSync } from 'node:child_process';
import { mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cleanStale } from '../mount/launcher.js';
import { isMounted, processAlive } from '../mount/mountinfo.js';

const OWNER_FILE = 'owner';

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

/** Clears the flag and removes a stage directory; rmdir only: an attached mount's plaintext is never touched. */
async function removeStageDir(dir: string): Promise<void> {
  const path = join(dir, 'mnt');
  chattr('-i', path);
  await rmdir(path).catch(() => undefined);
  await rm(join(dir, OWNER_FILE), { force: true });
  await rmdir(dir).catch(() => undefined);
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
    const owner = Number((await readFile(join(dir, OWNER_FILE), 'utf8').catch(() => '')).trim());
    if (Number.isSafeInteger(owner) && owner > 0 && processAlive(owner)) continue;
    try {
      cleanStale(join(dir, 'mnt'));
    } catch {
      continue;
    }
    if (isMounted(join(dir, 'mnt'))) continue;
    await removeStageDir(dir);
    removed.push(dir);
  }
  return removed;
}

export async function guardedMountpoint(runDir: string, runId: string): Promise<GuardedMountpoint> {
  const dir = join(runDir, 'stages', runId);
  const path = join(dir, 'mnt');
  await mkdir(path, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, OWNER_FILE), `${process.pid}\n`, { mode: 0o600 });
  const problem = chattr('+i', path);
  return {
    path,
    guarded: problem === null,
    problem,
    release: () => removeStageDir(dir),
  };
}
