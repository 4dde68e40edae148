/**
 * Reading the volume password. Passwords come from a file (never argv): `--password-file F` or
 * DVFS_PASSWORD_FILE. One trailing newline is dropped, as `encfs --stdinpass` does.
 */
import { readFile, stat } from 'node:fs/promises';
import { DvfsError, isNodeError } from '../daemon/errors.js';
import { optionString, type OptionSpec, type ParsedArgs } from './args.js';

export const PASSWORD_OPTION: OptionSpec = {
  name: 'password-file',
  type: 'string',
  value: 'FILE',
  env: 'DVFS_PASSWORD_FILE',
  description: 'file holding the volume password (one trailing newline is ignored)',
};

export async function readPasswordFile(path: string, warn: (m: string) => void): Promise<Buffer> {
  let data: Buffer;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new DvfsError('E_USAGE', 'password file is not a regular file', { path });
    if ((st.mode & 0o077) !== 0) warn(`warning: password file ${path} is readable by others (chmod 600 ${path})`);
    data = await readFile(path);
  } catch (e) {
    if (e instanceof DvfsError) throw e;
    if (isNodeError(e) && e.code === 'ENOENT') {
      throw new DvfsError('E_NOTFOUND', 'password file does not exist', { path, hint: 'check --password-file / DVFS_PASSWORD_FILE' });
    }
    throw new DvfsError('E_IO', `cannot read password file: ${(e as Error).message}`, { path });
  }
  let end = data.length;
  if (end > 0 && data[end - 1] === 0x0a) end--;
  const password = data.subarray(0, end);
  if (password.length === 0) throw new DvfsError('E_PASSWORD', 'password file is empty', { path });
  return password;
}

export async function requirePassword(args: ParsedArgs, warn: (m: string) => void): Promise<Buffer> {
  const file = optionString(args, PASSWORD_OPTION.name);
  if (file === undefined) {
    throw new DvfsError('E_USAGE', 'no password given', { hint: 'use --password-file FILE or set DVFS_PASSWORD_FILE' });
  }
  return readPasswordFile(file, warn);
}
