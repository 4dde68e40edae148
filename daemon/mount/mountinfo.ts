/**
 * What the kernel says is mounted (/proc/self/mountinfo), whether a FUSE mount is alive or stale (its
 * daemon died: every access answers ENOTCONN), and detaching a mount.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

export interface MountEntry {
  mountpoint: string;
  fstype: string;
  source: string;
}

/** Undoes the octal escapes (\040 for space...) mountinfo uses in paths. */
const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));

export function listMounts(): MountEntry[] {
  let text: string;
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const parts = line.split(' ');
    const dash = parts.indexOf('-');
    if (dash < 0 || parts.length < dash + 3) continue;
    out.push({ mountpoint: unescape(parts[4] as string), fstype: parts[dash + 1] as string, source: unescape(parts[dash + 2] as string) });
  }
  return out;
}

/**
 * A path as the mount table spells it: absolute, with its parent's symlinks resolved. The last component is
 * left alone (a dead FUSE mountpoint cannot be resolved).
 */
export function canonicalMountPath(path: string): string {
  const abs = resolve(path);
  try {
    return join(realpathSync(dirname(abs)), basename(abs));
  } catch {
    return abs;
  }
}

export function mountAt(path: string): MountEntry | undefined {
  const p = canonicalMountPath(path);
  // The last matching line is the one on top.
  return listMounts()
    .filter((m) => m.mountpoint === p)
    .pop();
}

export function isMounted(path: string): boolean {
  return mountAt(path) !== undefined;
}

/** Mountpoints at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const d = canonicalMountPath(dir);
  const prefix = d.endsWith('/') ? d : `${d}/`;
  return listMounts()
    .map((m) => m.mountpoint)
    .filter((m) => m === d || m.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

export type MountState = 'not-mounted' | 'alive' | 'stale';

/** Whether something is mounted at `path`, and if so whether it still answers. */
export function mountState(path: string): MountState {
  if (!mountAt(path)) return 'not-mounted';
  try {
    statSync(path);
    return 'alive';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOTCONN' || code === 'ECONNABORTED' ? 'stale' : 'alive';
  }
}

/** Detaches a (possibly dead) FUSE mount: fusermount -uz, fusermount3 -uz, then umount -l. */
export function detachMount(path: string): boolean {
  for (const [cmd, args] of [
    ['fusermount', ['-uz', path]],
    ['fusermount3', ['-uz', path]],
    ['umount', ['-l', path]],
  ] as const) {
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 15_000 });
    if (!r.error && r.status === 0) return true;
    if (!mountAt(path)) return true;
  }
  return !mountAt(path);
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie is not alive for our purposes.
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
