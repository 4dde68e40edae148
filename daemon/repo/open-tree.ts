/** Opens the ciphertext tree of a repository (or plain EncFS volume) as a CryptoTree for the frontend. */
import { EncfsTree } from '../encfs/tree.js';
import type { Logger } from '../log.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import { openVolume, type Repository } from './repository.js';

export async function openTree(repo: Repository, password: Buffer, logger: Logger): Promise<CryptoTree> {
  const volume = await openVolume(repo, password);
  return new EncfsTree(volume, (rawPath, reason) => logger.error({ rawPath, err: reason }, 'rename: entry could not be re-encoded'));
}
