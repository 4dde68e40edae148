/** Opens the ciphertext tree of a repository (or plain EncFS / native volume) as a CryptoTree. */
import { EncfsTree } from '../encfs/tree.js';
import type { Logger } from '../log.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import type { OpenOptions } from '../encfs/volume.js';
import { openNativeVolume } from '../native/tree.js';
import { openVolume, type Repository } from './repository.js';

export async function openTree(repo: Repository, password: Buffer, logger: Logger, options: OpenOptions = {}): Promise<CryptoTree> {
  if (repo.format === 'native') return openNativeVolume(repo.tree, password);
  const volume = await openVolume(repo, password, options);
  return new EncfsTree(volume, (rawPath, reason) => logger.error({ rawPath, err: reason }, 'rename: entry could not be re-encoded'));
}
