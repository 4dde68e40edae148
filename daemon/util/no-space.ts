/**
 * A full disk (ENOSPC) or an exhausted quota (EDQUOT) deep inside a commit, clone or pull surfaces as a bare
 * "ENOSPC: no space left on device, write" with no file named. {@link explainNoSpace} turns it into a DvfsError
 * naming the directory whose filesystem is full and what to do; any other error is returned unchanged.
 */
import { DvfsError, isNodeError } from '../errors.js';

export function explainNoSpace(e: unknown, dir: string, what: string): unknown {
  if (!isNodeError(e) || (e.code !== 'ENOSPC' && e.code !== 'EDQUOT')) return e;
  const why = e.code === 'ENOSPC' ? 'no space left on the device' : 'the disk quota is exhausted';
  return new DvfsError('E_IO', `${what} failed: ${why} (${e.code})`, { path: dir, hint: `free space on the filesystem holding it (df -h ${dir}) and run the command again`, cause: e });
}
