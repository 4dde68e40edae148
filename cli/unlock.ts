/**
 * The one place that turns what the user gave — `--password-file` / DVFS_PASSWORD_FILE, or `--identity` /
 * DVFS_IDENTITY (default ~/.config/dvfs/identity) with its optional passphrase file — into the credential
 * that unlocks a repository. A password, when given, wins; otherwise the identity is used (so a SLURM job
 * needs no password file, only its 0600 identity).
 */
import { stat } from 'node:fs/promises';
import { DvfsError } from '../daemon/errors.js';
import type { Credential } from '../daemon/keys/unlock.js';
import { optionString, type OptionSpec, type ParsedArgs } from './args.js';
import { PASSWORD_OPTION, readPasswordFile } from './password.js';

export const IDENTITY_OPTION: OptionSpec = {
  name: 'identity',
  type: 'string',
  value: 'FILE',
  env: 'DVFS_IDENTITY',
  description: 'personal identity file (dvfs key gen) instead of a password; default ~/.config/dvfs/identity when no password is given',
};

export const IDENTITY_PASSPHRASE_OPTION: OptionSpec = {
  name: 'identity-passphrase-file',
  type: 'string',
  value: 'FILE',
  env: 'DVFS_IDENTITY_PASSPHRASE_FILE',
  description: 'file holding the passphrase of a protected identity',
};

export const UNLOCK_OPTIONS: OptionSpec[] = [PASSWORD_OPTION, IDENTITY_OPTION, IDENTITY_PASSPHRASE_OPTION];

/** Which identity file applies: --identity / DVFS_IDENTITY, else the default path when it exists. */
export async function identityPath(args: ParsedArgs): Promise<string | null> {
  const given = optionString(args, IDENTITY_OPTION.name);
  if (given !== undefined) return given;
  const { defaultIdentityPath } = await import('../daemon/keys/identity-file.js');
  const path = defaultIdentityPath();
  return (await stat(path).then((s) => s.isFile(), () => false)) ? path : null;
}

/** Loads the identity named by the options (E_NOTFOUND when there is none). */
export async function requireIdentity(args: ParsedArgs, warn: (m: string) => void): Promise<Credential & { kind: 'identity' }> {
  const path = await identityPath(args);
  if (path === null) throw new DvfsError('E_USAGE', 'no identity given', { hint: 'create one with dvfs key gen, or give --identity FILE / DVFS_IDENTITY' });
  const { loadIdentity } = await import('../daemon/keys/identity-file.js');
  const passFile = optionString(args, IDENTITY_PASSPHRASE_OPTION.name);
  const { identity, name } = await loadIdentity(path, async () => (passFile === undefined ? null : readPasswordFile(passFile, warn)));
  return { kind: 'identity', identity, name };
}

/** The password when one is given, else the identity; E_USAGE naming both ways when neither is. */
export async function requireCredential(args: ParsedArgs, warn: (m: string) => void): Promise<Credential> {
  const passwordFile = optionString(args, PASSWORD_OPTION.name);
  if (passwordFile !== undefined) return { kind: 'password', password: await readPasswordFile(passwordFile, warn) };
  if ((await identityPath(args)) === null) {
    throw new DvfsError('E_USAGE', 'no password given, and no identity', {
      hint: 'use --password-file FILE (DVFS_PASSWORD_FILE) or --identity FILE (DVFS_IDENTITY; default ~/.config/dvfs/identity)',
    });
  }
  return requireIdentity(args, warn);
}

/** Zeroes what a credential holds in memory. */
export function wipeCredential(c: Credential): void {
  if (c.kind === 'password') c.password.fill(0);
  else c.identity.destroy();
}
