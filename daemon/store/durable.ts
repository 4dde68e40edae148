/**
 * Crash-safe file primitives shared by the store: a write lands in a temporary file, is fsynced, renamed over
 * its final name and the directory is fsynced, so after a crash the name holds the old or the new contents,
 * never a torn mix, and a completed call survives power loss.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isNodeError } from '../errors.js';

/** Temporary file names: "<pid>-<16 hex>.tmp" (the pid says whose leftover it is). */
export function tempName(prefix = ''): string {
  return `${prefix}${process.pid}-${randomBytes(8).toString('hex')}.tmp`;
}

/** fsync of a directory, making renames, links and unlinks in it durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (e) {
    // Some filesystems (and some FUSE ones) refuse fsync on directories; the rename is still atomic there.
    if (!(isNodeError(e) && (e.code === 'EINVAL' || e.code === 'ENOTSUP' || e.code === 'EBADF'))) throw e;
  } finally {
    await fh.close();
  }
}

/** fsync of a file's data. Works on read-only files too. */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface AtomicWriteOptions {
  /** Directory for the temporary file (same filesystem as `target`); default: target's directory. */
  tmpDir?: string;
  /** Mode of the new file; default 0o600. */
  mode?: number;
  /** fsync the file and its directory (default true); without it the write is atomic but not durable. */
  sync?: boolean;
}

/** Writes `data` to `target` atomically and durably (temp + fsync + rename + fsync of the directory). */
export async function writeFileAtomic(target: string, data: Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const tmp = join(options.tmpDir ?? dirname(target), tempName(options.tmpDir === undefined ? `.${basename(target)}.` : ''));
  // Created writable and chmod-ed afterwards: some network filesystems refuse writes to a file created 0444.
  const fh = await open(tmp, 'wx', 0o600);
  let renamed = false;
  try {
    try {
      await fh.writeFile(data);
      if (options.mode !== undefined && options.mode !== 0o600) await fh.chmod(options.mode);
      if (options.sync !== false) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
    renamed = true;
    if (options.sync !== false) await fsyncDir(dirname(target));
  } finally {
    if (!renamed) await rm(tmp, { force: true });
  }
}

/** A file's text, or null when it does not exist (other errors throw). */
export async function readTextIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return null;
    throw e;
  }
}
