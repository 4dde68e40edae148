/**
 * Where things are in a dvfs repository, what its metadata says, and reading it — no format code here, so
 * it is cheap to import from anywhere (a commit that only talks to a running daemon must start fast).
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';

export const META_DIR = '.dvfs';
export const META_FILE = 'repo.json';
export const TREE_DIR = 'tree';
export const REPO_FORMAT = 1;

export type RepoMode = 'encfs' | 'native';

export interface RepoMeta {
  format: number;
  id: string;
  mode: RepoMode;
  /** The ciphertext working tree, relative to the repository root. */
  tree: string;
  createdAt: string;
}

export interface Repository {
  kind: 'dvfs' | 'encfs-volume' | 'native-volume';
  root: string;
  format: RepoMode;
  /** The ciphertext working tree. */
  tree: string;
  /** The EncFS volume directory (holds `.encfs6.xml`); null in native mode. */
  encfsRoot: string | null;
  meta: RepoMeta | null;
}

/**
 * The dvfs repository at `path` from its `.dvfs/repo.json`; null when there is none (the caller may then
 * look for a bare volume). Unreadable or unsupported metadata is an error naming the file.
 */
export async function readDvfsRepository(path: string): Promise<Repository | null> {
  const root = resolve(path);
  const metaPath = join(root, META_DIR, META_FILE);
  let text: string;
  try {
    text = await readFile(metaPath, 'utf8');
  } catch (e) {
    if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return null;
    throw new DvfsError('E_CONFIG', `unreadable repository metadata: ${(e as Error).message}`, { path: metaPath });
  }
  let meta: RepoMeta;
  try {
    meta = JSON.parse(text) as RepoMeta;
  } catch (e) {
    throw new DvfsError('E_CONFIG', `unreadable repository metadata: ${(e as Error).message}`, { path: metaPath });
  }
  if (meta.format !== REPO_FORMAT || typeof meta.tree !== 'string' || (meta.mode !== 'encfs' && meta.mode !== 'native')) {
    throw new DvfsError('E_UNSUPPORTED', `repository format ${String(meta.format)} / mode ${String(meta.mode)} is not supported by this dvfs`, {
      path: metaPath,
      hint: 'upgrade dvfs',
    });
  }
  const tree = join(root, meta.tree);
  return { kind: 'dvfs', root, format: meta.mode, tree, encfsRoot: meta.mode === 'encfs' ? tree : null, meta };
}
