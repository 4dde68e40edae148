/**
 * The key epochs an unlocked caller holds (one Grant per epoch, see grant.ts), and which of them is the
 * repository's current one. A tree opened through daemon/keys carries its EpochKeys (attachEpochKeys), so
 * whoever builds versioning on that tree (CLI commands, the mount daemon, clone) uses the epoch keys without
 * new parameters; a tree without them is a repository without key epochs (keys from the volume, as before).
 */
import { DvfsError } from '../errors.js';
import { deriveEpochRepoKeys, type RepoKeys } from '../store/keys.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import { wipeGrant, type Grant } from './grant.js';

export class EpochKeys {
  constructor(
    readonly grants: ReadonlyMap<number, Grant>,
    /** The repository's current epoch (the caller holds it: unlocking refuses otherwise). */
    readonly current: number,
  ) {
    if (!grants.has(current)) throw new DvfsError('E_USAGE', `EpochKeys: no grant for the current epoch ${current}`);
  }

  grant(epoch: number): Grant {
    const g = this.grants.get(epoch);
    if (!g) throw new DvfsError('E_PASSWORD', `no key for epoch ${epoch}`);
    return g;
  }

  get held(): number[] {
    return [...this.grants.keys()].sort((a, b) => a - b);
  }

  /** Store keys of the current epoch (new snapshots, paths, the remote namespace). */
  repoKeys(): RepoKeys {
    const g = this.grant(this.current);
    return deriveEpochRepoKeys(this.current, g.secret, g.content);
  }

  /** Store keys of the other held epochs, newest first (reading older manifests); the caller wipes them. */
  olderRepoKeys(): RepoKeys[] {
    return this.held
      .filter((e) => e !== this.current)
      .reverse()
      .map((e) => {
        const g = this.grant(e);
        return deriveEpochRepoKeys(e, g.secret, g.content);
      });
  }

  wipe(): void {
    for (const g of this.grants.values()) wipeGrant(g);
  }
}

const attached = new WeakMap<CryptoTree, EpochKeys>();

export function attachEpochKeys(tree: CryptoTree, keys: EpochKeys): void {
  attached.set(tree, keys);
}

/** The epoch keys a tree was opened with, or undefined for a repository without key epochs. */
export function epochKeysOf(tree: CryptoTree): EpochKeys | undefined {
  return attached.get(tree);
}
