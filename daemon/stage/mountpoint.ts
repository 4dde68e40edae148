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
 */
import { spawnSync } from 'node:child_process';
import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';

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

export async function guardedMountpoint(runDir: string, runId: string): Promise<GuardedMountpoint> {
  const dir = join(runDir, 'stages', runId);
  const path = join(dir, 'mnt');
  await mkdir(path, { recursive: true, mode: 0o700 });
  const problem = chattr('+i', path);
  return {
    path,
    guarded: problem === null,
    problem,
    async release() {
      if (problem === null) chattr('-i', path);
      // rmdir, never a recursive remove: should a mount still be attached, its plaintext must not be touched.
      await rmdir(path).catch(() => undefined);
      await rmdir(dir).catch(() => undefined);
    },
  };
}
