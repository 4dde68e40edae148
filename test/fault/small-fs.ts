/**
 * A small tmpfs for disk-full tests (we are root): mounted at a directory, resizable, unmounted by the test
 * before its workspace is removed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, openSync, closeSync, writeSync } from 'node:fs';

export interface SmallFs {
  dir: string;
  /** Changes the size limit (mount -o remount). */
  resize(bytes: number): void;
  /** Writes `file` until the filesystem is full; returns the bytes written. */
  fill(file: string): number;
  unmount(): void;
}

function run(cmd: string, args: string[]): string | null {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000 });
  if (r.error) return r.error.message;
  return r.status === 0 ? null : `${cmd} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.status}`}`;
}

/** Why a tmpfs cannot be mounted here (for a loud skip), or null. */
export function smallFsUnavailable(): string | null {
  if (process.platform !== 'linux') return `tmpfs needs Linux (platform is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  return null;
}

export function mountSmallFs(dir: string, bytes: number): SmallFs {
  mkdirSync(dir, { recursive: true });
  const err = run('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'dvfs-fault-tmpfs', dir]);
  if (err !== null) throw new Error(`cannot mount a tmpfs at ${dir}: ${err}`);
  let mounted = true;
  return {
    dir,
    resize(n) {
      const e = run('mount', ['-o', `remount,size=${n}`, dir]);
      if (e !== null) throw new Error(`cannot resize the tmpfs at ${dir}: ${e}`);
    },
    fill(file) {
      const fd = openSync(file, 'a');
      const chunk = Buffer.alloc(64 * 1024, 0x5a);
      let n = 0;
      try {
        for (;;) {
          try {
            n += writeSync(fd, chunk);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return n;
            throw e;
          }
        }
      } finally {
        closeSync(fd);
      }
    },
    unmount() {
      if (!mounted) return;
      const e = run('umount', [dir]) === null ? null : run('umount', ['-l', dir]);
      if (e !== null) throw new Error(`cannot unmount the tmpfs at ${dir}: ${e}`);
      mounted = false;
    },
  };
}
