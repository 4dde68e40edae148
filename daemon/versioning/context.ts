/**
 * Everything versioning needs about one repository, opened once: the working tree (a CryptoTree), the keys
 * derived from its volume key, the opaque-path cipher, and the object and manifest stores. The daemon opens
 * one for its mount; CLI commands open one with the password.
 */
import { join } from 'node:path';
import { DvfsError } from '../errors.js';
import { META_DIR, type Repository } from '../repo/repository.js';
import { epochKeysOf } from '../keys/epoch-keys.js';
import { deriveRepoKeys, wipeRepoKeys, type RepoKeys } from '../store/keys.js';
import { ManifestStore } from '../store/manifests.js';
import { ObjectStore } from '../store/objects.js';
import { PathCipher } from '../store/path-cipher.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';

export const INDEX_DIR = 'index';

export interface Versioning {
  repo: Repository;
  tree: CryptoTree;
  keys: RepoKeys;
  paths: PathCipher;
  objects: ObjectStore;
  manifests: ManifestStore;
  /** `REPO/.dvfs`. */
  metaDir: string;
  /** `REPO/.dvfs/index` (the repository index LevelDB). */
  indexDir: string;
  /** Wipes the keys (not the tree: whoever opened it disposes it). */
  close(): void;
}

/** Refuses what cannot hold history: a bare EncFS or native volume has no `.dvfs` of its own. */
export function requireVersionedRepo(repo: Repository): void {
  if (repo.kind !== 'dvfs') {
    throw new DvfsError('E_UNSUPPORTED', 'this is a bare volume, not a dvfs repository: it cannot hold snapshots', {
      path: repo.root,
      hint: 'create a repository with dvfs init and copy the data into it through dvfs mount',
    });
  }
}

export function openVersioning(repo: Repository, tree: CryptoTree, options: { fsync?: boolean } = {}): Versioning {
  requireVersionedRepo(repo);
  // A tree opened through key slots (daemon/keys) carries the keys of its epochs; otherwise the volume's own.
  const epochs = epochKeysOf(tree);
  let keys: RepoKeys;
  const older: RepoKeys[] = epochs?.olderRepoKeys() ?? [];
  if (epochs) keys = epochs.repoKeys();
  else {
    const secret = tree.snapshotSecret();
    try {
      keys = deriveRepoKeys(secret);
    } finally {
      secret.fill(0);
    }
  }
  const paths = new PathCipher(keys.paths);
  // Commit makes the store durable with one syncfs before HEAD moves (commit.ts), not an fsync per object
  // and manifest: until HEAD names them, nothing depends on them.
  const manifests = new ManifestStore(repo.root, keys.manifest, options.fsync ?? false, older.map((k) => k.manifest));
  for (const k of older) wipeRepoKeys(k);
  const objects = new ObjectStore(repo.root, { fsync: options.fsync ?? false });
  const metaDir = join(repo.root, META_DIR);
  return {
    repo,
    tree,
    keys,
    paths,
    objects,
    manifests,
    metaDir,
    indexDir: join(metaDir, INDEX_DIR),
    close() {
      paths.dispose();
      manifests.dispose();
      wipeRepoKeys(keys);
    },
  };
}
