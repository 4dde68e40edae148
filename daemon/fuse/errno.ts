/** Turning errors into the negative errno values FUSE expects. */
import { constants } from 'node:os';
import { DvfsError, isNodeError } from '../errors.js';

const E = constants.errno;

const BY_DVFS_CODE: Record<string, number> = {
  E_NOTFOUND: E.ENOENT,
  E_EXISTS: E.EEXIST,
  E_NOTDIR: E.ENOTDIR,
  E_ISDIR: E.EISDIR,
  E_INTEGRITY: E.EIO,
  E_IO: E.EIO,
  E_USAGE: E.EINVAL,
  E_UNSUPPORTED: E.ENOTSUP,
  E_NAMETOOLONG: E.ENAMETOOLONG,
  E_NAME: E.EIO,
};

/** An errno-carrying error raised by the frontend itself (EPERM for links, EROFS, EBADF...). */
export class FsError extends Error {
  constructor(
    readonly errno: keyof typeof E,
    message: string = errno,
  ) {
    super(message);
    this.name = 'FsError';
  }
}

/** The positive errno for an error; EIO when nothing more precise is known. */
export function errnoOf(e: unknown): number {
  if (e instanceof FsError) return E[e.errno];
  if (e instanceof DvfsError) {
    return BY_DVFS_CODE[e.code] ?? E.EIO;
  }
  if (isNodeError(e) && e.code !== undefined) {
    const n = (E as Record<string, number>)[e.code];
    if (typeof n === 'number') return n;
  }
  return E.EIO;
}

export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(E)) if (value === errno) return name;
  return `errno ${errno}`;
}

export const ERRNO = E;
