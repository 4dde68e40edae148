/**
 * Opens the ciphertext tree of a repository (or plain EncFS / native volume) as a CryptoTree, with the
 * password or with a personal identity's key slots (daemon/keys/unlock.ts), or with the keys of a tree the
 * caller already opened (daemon/keys/tree-keys.ts: what a mount daemon launched by the stage runner gets).
 */
import type { ErrorLog } from '../quiet-log.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import type { OpenOptions } from '../encfs/volume.js';
import { unlockTree, type Credential } from '../keys/unlock.js';
import { openWithKeys, type TreeKeys } from '../keys/tree-keys.js';
import type { Repository } from './repository.js';

export type { Credential } from '../keys/unlock.js';

export async function openTree(repo: Repository, credential: Buffer | Credential | TreeKeys, logger: ErrorLog, options: OpenOptions = {}): Promise<CryptoTree> {
  if (!Buffer.isBuffer(credential) && credential.kind === 'keys') return openWithKeys(repo, credential, logger, options);
  return unlockTree(repo, Buffer.isBuffer(credential) ? { kind: 'password', password: credential } : credential, logger, options);
}
