/**
 * `dvfs key rotate --reencrypt`: a new key epoch whose working tree and object store are encrypted under a
 * new volume key, so that nothing in the repository stays readable with the old one (FORMAT.md, "What
 * rotation protects"). Needs the password: the new key is wrapped under it in a new `.encfs6.xml` (or
 * `.dvfs-native.json`), which stock encfs reads as before.
 *
 * Staged in `REPO/.dvfs/reencrypt/`, resumable (run the command again after an interruption):
 *
 *   1. `tree/` — a new volume with the same parameters and a new key (created once, then reopened);
 *   2. `objects/` — every stored object decrypted with the old key and encrypted with the new one, each
 *      written atomically (existing ones are skipped on a rerun);
 *   3. the working tree copied through both plaintext views into `tree/` (modes, times, symlinks; redone
 *      whole on a rerun);
 *   4. the new epoch is sealed with the new tree key (`rotated` in `state.json`);
 *   5. the new tree and objects replace the old ones (renames), the old ones, `.dvfs/frozen` and the
 *      index are removed.
 *
 * Object ids do not change (they name plaintext), so every snapshot stays valid.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, lutimes, mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DvfsError } from '../errors.js';
import { CONFIG_FILE_NAME } from '../encfs/config.js';
import { EncfsTree } from '../encfs/tree.js';
import { EncfsVolume } from '../encfs/volume.js';
import type { Logger } from '../log.js';
import { NATIVE_CONFIG_FILE } from '../native/config.js';
import { NativeTree, createNativeVolume } from '../native/tree.js';
import { DIRIV_FILE } from '../native/names.js';
import { META_DIR, type Repository } from '../repo/layout.js';
import { OBJECTS_DIR, ObjectStore } from '../store/objects.js';
import { shardPath } from '../store/shards.js';
import type { ObjectId } from '../store/object-id.js';
import type { CryptoTree, FileContent } from '../vfs/crypto-tree.js';
import { PlainView } from '../vfs/plain-view.js';
import { failpoint } from '../versioning/failpoint.js';
import { FROZEN_DIR, openObject } from '../versioning/working-files.js';
import { rotateEpoch, type KeyAdmin } from './admin.js';
import { treeKeyOf, unlockTree } from './unlock.js';

export const REENCRYPT_DIR = 'reencrypt';
const CHUNK = 1 << 20;

export type ReencryptProgress = (phase: 'objects' | 'tree', done: number, total: number) => void;

export interface ReencryptReport {
  epoch: number;
  objects: number;
  /** Objects already re-encrypted by an interrupted run. */
  resumedObjects: number;
  files: number;
}

const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

/** A new, empty volume at `dir` with the parameters of `like` and a new key, wrapped under `password`. */
async function createLike(like: CryptoTree, dir: string, password: Buffer): Promise<CryptoTree> {
  if (like instanceof EncfsTree) {
    const { encodedKeyData: _k, saltData: _s, kdfIterations, creator, subVersion: _v, ...params } = like.volume.config;
    const volume = await EncfsVolume.create(dir, password, { overrides: params, kdfIterations, creator });
    return new EncfsTree(volume, () => undefined);
  }
  if (like instanceof NativeTree) {
    const c = like.config;
    return createNativeVolume(dir, password, { chunkSize: c.chunkSize, opslimit: c.kdf.opslimit, memlimit: c.kdf.memlimit });
  }
  throw new DvfsError('E_UNSUPPORTED', 'this kind of tree cannot be re-encrypted');
}

async function copyContent(from: FileContent, to: FileContent): Promise<void> {
  try {
    const size = await from.size();
    for (let off = 0; off < size; off += CHUNK) {
      const chunk = await from.read(off, Math.min(CHUNK, size - off));
      if (chunk.length === 0) break;
      await to.write(off, chunk);
    }
  } finally {
    await from.close();
    await to.close();
  }
}

/** Re-encrypts one stored object into `target` (atomically). */
async function reencryptObject(oldTree: CryptoTree, objects: ObjectStore, newTree: CryptoTree, id: ObjectId, target: string): Promise<void> {
  await mkdir(join(target, '..'), { recursive: true, mode: 0o700 });
  const tmp = `${target}.tmp-${randomBytes(6).toString('hex')}`;
  const root = await newTree.locate('');
  try {
    // The stored form is position-independent: written at the root's context (external IV 0), as openObject reads it.
    await copyContent(await openObject({ tree: oldTree, objects }, id), await newTree.openContent({ plainPath: '', rawPath: tmp, ctx: root.ctx }, { create: true, mode: 0o444 }));
    await chmod(tmp, 0o444);
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Copies the plaintext of every entry of `from` into `to` (an empty tree), keeping modes and times. */
async function copyTree(from: PlainView, to: PlainView, toTree: CryptoTree, onFile: () => void, dir = ''): Promise<number> {
  const { entries, undecodable } = await from.list(dir);
  if (undecodable.length > 0) {
    throw new DvfsError('E_NAME', `${undecodable.length} entries of /${dir} cannot be decoded: refusing to re-encrypt a tree that would lose them`, { hint: 'remove or restore them first' });
  }
  let files = 0;
  for (const e of entries) {
    const p = dir === '' ? e.name : `${dir}/${e.name}`;
    if (e.type === 'dir') {
      await to.mkdir(p, e.mode & 0o7777);
      files += await copyTree(from, to, toTree, onFile, p);
    } else if (e.type === 'symlink') {
      await to.symlink(await from.readlink(p), p);
      await lutimes((await toTree.locate(p)).rawPath, e.mtimeMs / 1000, e.mtimeMs / 1000);
      continue;
    } else if (e.type === 'file') {
      await copyContent(await from.openFile(p, { readOnly: true }), await to.openFile(p, { create: true }));
      files++;
      onFile();
    } else continue;
    const raw = (await toTree.locate(p)).rawPath;
    await chmod(raw, e.mode & 0o7777);
    await utimes(raw, e.mtimeMs / 1000, e.mtimeMs / 1000);
  }
  return files;
}

/** Empties a staged tree but for the volume's own files (a rerun copies the working tree again). */
async function clearStagedTree(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name === CONFIG_FILE_NAME || name === NATIVE_CONFIG_FILE || name === DIRIV_FILE) continue;
    await rm(join(dir, name), { recursive: true, force: true });
  }
}

interface State {
  rotated?: number;
}

export async function reencryptRepository(admin: KeyAdmin, password: Buffer, logger: Logger, onProgress?: ReencryptProgress): Promise<ReencryptReport> {
  const repo: Repository = admin.repo;
  if (admin.credential.kind !== 'password') {
    throw new DvfsError('E_USAGE', '--reencrypt needs the repository password', { hint: 'the new volume key is wrapped under it for stock encfs; give --password-file' });
  }
  const meta = join(repo.root, META_DIR);
  const staging = join(meta, REENCRYPT_DIR);
  const stagedTree = join(staging, 'tree');
  const stagedObjects = join(staging, OBJECTS_DIR);
  const statePath = join(staging, 'state.json');
  await mkdir(staging, { recursive: true, mode: 0o700 });
  const state = JSON.parse(await readFile(statePath, 'utf8').catch(() => '{}')) as State;
  const stagedRepo: Repository = { ...repo, tree: stagedTree, encfsRoot: repo.format === 'encfs' ? stagedTree : null };
  const volumeFile = repo.format === 'encfs' ? CONFIG_FILE_NAME : NATIVE_CONFIG_FILE;
  let objects = 0;
  let resumedObjects = 0;
  let files = 0;
  let epoch = state.rotated;

  if (epoch === undefined) {
    const newTree = (await exists(join(stagedTree, volumeFile))) ? await unlockTree(stagedRepo, { kind: 'password', password }, logger) : await createLike(admin.tree, stagedTree, password);
    try {
      const store = new ObjectStore(repo.root);
      const ids: ObjectId[] = [];
      for await (const id of store.ids()) ids.push(id);
      for (const id of ids) {
        const target = shardPath(stagedObjects, id);
        if (await exists(target)) resumedObjects++;
        else await reencryptObject(admin.tree, store, newTree, id, target);
        onProgress?.('objects', ++objects, ids.length);
        if (objects === 2) failpoint('reencrypt-objects');
      }
      await clearStagedTree(stagedTree);
      files = await copyTree(new PlainView(admin.tree), new PlainView(newTree), newTree, () => onProgress?.('tree', files + 1, 0));
      const newKey = treeKeyOf(newTree);
      try {
        epoch = (await rotateEpoch(admin, { newTreeKey: newKey })).epoch;
      } finally {
        newKey.fill(0);
      }
      await writeFile(statePath, JSON.stringify({ rotated: epoch } satisfies State));
      failpoint('reencrypt-rotated');
    } finally {
      newTree.dispose?.();
    }
  }

  // Swap (each step skipped when an interrupted run already did it), then remove what the old key opens.
  const oldTree = join(staging, 'old-tree');
  const oldObjects = join(staging, 'old-objects');
  if (await exists(stagedTree)) {
    if (!(await exists(oldTree))) await rename(repo.tree, oldTree);
    await rename(stagedTree, repo.tree);
  }
  if (await exists(stagedObjects)) {
    if (!(await exists(oldObjects))) await rename(join(meta, OBJECTS_DIR), oldObjects).catch(() => undefined);
    await rename(stagedObjects, join(meta, OBJECTS_DIR));
  }
  await rm(join(meta, FROZEN_DIR), { recursive: true, force: true });
  await rm(staging, { recursive: true, force: true });
  if (!(await lstat(repo.tree).then((s) => s.isDirectory(), () => false))) throw new DvfsError('E_IO', 'the re-encrypted tree is missing after the swap', { path: repo.tree });
  return { epoch, objects, resumedObjects, files };
}
