/**
 * Where a repository lives and what kind it is. A dvfs repository is a directory holding `.dvfs/repo.json`
 * and a working tree of ciphertext at `tree/`: an EncFS volume in encfs mode, a dvfs-native volume in native
 * mode. dvfs also accepts a plain stock EncFS volume directory (one holding `.encfs6.xml`), or a bare native
 * volume, wherever it takes a repository.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import { CONFIG_FILE_NAME, type Preset } from '../encfs/config.js';
import { EncfsVolume, type OpenOptions } from '../encfs/volume.js';
import { NATIVE_CONFIG_FILE, type NativeParams } from '../native/config.js';
import { createNativeVolume } from '../native/tree.js';

import { META_DIR, META_FILE, TREE_DIR, REPO_FORMAT, readDvfsRepository, type RepoMeta, type RepoMode, type Repository } from './layout.js';

export { META_DIR, META_FILE, TREE_DIR, REPO_FORMAT } from './layout.js';

export type { RepoMode, RepoMeta, Repository } from './layout.js';

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return false;
    throw e;
  }
}

export async function locateRepository(path: string): Promise<Repository> {
  const root = resolve(path);
  const dvfs = await readDvfsRepository(root);
  if (dvfs) return dvfs;
  if (await exists(join(root, CONFIG_FILE_NAME))) {
    return { kind: 'encfs-volume', root, format: 'encfs', tree: root, encfsRoot: root, meta: null };
  }
  if (await exists(join(root, NATIVE_CONFIG_FILE))) {
    return { kind: 'native-volume', root, format: 'native', tree: root, encfsRoot: null, meta: null };
  }
  if (!(await exists(root))) {
    throw new DvfsError('E_NOTFOUND', 'no such repository', { path: root, hint: 'create one with: dvfs init REPO --mode encfs' });
  }
  throw new DvfsError('E_NOTFOUND', `not a dvfs repository or EncFS volume (no ${META_DIR}/${META_FILE}, ${CONFIG_FILE_NAME} or ${NATIVE_CONFIG_FILE})`, {
    path: root,
    hint: 'create one with: dvfs init REPO --mode encfs',
  });
}

export interface InitOptions {
  mode: RepoMode;
  /** EncFS preset (encfs mode). */
  preset: Preset;
  /** PBKDF2 iterations (encfs mode). */
  kdfIterations?: number;
  /** Argon2id cost and chunk size (native mode). */
  native?: NativeParams;
}

/**
 * Creates a repository. It is assembled in a hidden staging directory next to `path` and renamed into place
 * only when complete, so a failure leaves nothing behind. `path` must not exist or must be empty.
 */
export async function initRepository(path: string, password: Buffer, options: InitOptions): Promise<Repository> {
  const root = resolve(path);
  if (await exists(root)) {
    const st = await stat(root);
    if (!st.isDirectory() || (await readdir(root)).length > 0) {
      throw new DvfsError('E_EXISTS', 'already exists and is not an empty directory', { path: root, hint: 'choose a new path' });
    }
  }
  const staging = `${root}.dvfs-init-${process.pid}`;
  try {
    await mkdir(join(staging, META_DIR), { recursive: true, mode: 0o700 });
    const meta: RepoMeta = { format: REPO_FORMAT, id: randomUUID(), mode: options.mode, tree: TREE_DIR, createdAt: new Date().toISOString() };
    if (options.mode === 'native') {
      (await createNativeVolume(join(staging, TREE_DIR), password, options.native ?? {})).dispose();
    } else {
      await EncfsVolume.create(join(staging, TREE_DIR), password, {
        preset: options.preset,
        ...(options.kdfIterations === undefined ? {} : { kdfIterations: options.kdfIterations }),
        creator: 'EncFS 1.9.5',
      });
    }
    await writeFile(join(staging, META_DIR, META_FILE), JSON.stringify(meta, null, 2) + '\n', { mode: 0o644 });
    await rm(root, { recursive: true, force: true }); // only ever an empty directory here
    await rename(staging, root);
    const tree = join(root, TREE_DIR);
    return { kind: 'dvfs', root, format: options.mode, tree, encfsRoot: options.mode === 'encfs' ? tree : null, meta };
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}

/** Opens the EncFS volume of an encfs-mode repository (E_UNSUPPORTED for native mode). */
export function openVolume(repo: Repository, password: Buffer, options: OpenOptions = {}): Promise<EncfsVolume> {
  if (repo.encfsRoot === null) {
    throw new DvfsError('E_UNSUPPORTED', 'this repository is in native mode, not an EncFS volume', { path: repo.root });
  }
  return EncfsVolume.open(repo.encfsRoot, password, options);
}
