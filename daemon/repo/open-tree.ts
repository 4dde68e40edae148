/**
 * Opens the ciphertext tree of a repository (or plain EncFS / native volume) as a CryptoTree, with the
 * password or with a personal identity's key slots (daemon/keys/unlock.ts).
 */
import type { ErrorLog } from '../quiet-log.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import type { OpenOptions } from '../encfs/volume.js';
import { unlockTree, type Credential } from '../keys/unlock.js';
import type { Repository } from './repository.js';

export type { Credential } from '../keys/unlock.js';

export async function openTree(repo: Repository, credential: Buffer | Credential, logger: ErrorLog, options: OpenOptions = {}): Promise<CryptoTree> {
  return unlockTree(repo, Buffer.isBuffer(credential) ? { kind: 'password', password: credential } : credential, logger, options);
}
