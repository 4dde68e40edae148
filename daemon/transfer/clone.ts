/**
 * `dvfs clone`: a working repository from a remote. The volume config (password-wrapped key) comes down
 * first, so the password can be checked and the remote's MAC over the config verified; then every manifest
 * of the remote HEAD's history (authenticated again by the manifest store as it is read) and every object
 * the HEAD snapshot needs, then the working tree is placed from the store (hard links, as after a commit).
 * It is assembled in a staging directory next to DIR and renamed into place only when complete.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import type { Logger } from '../log.js';
import { DIRIV_BYTES, DIRIV_FILE } from '../native/names.js';
import { deriveRemoteKeys, wipeRemoteKeys } from '../remote/keys.js';
import { openBackend } from '../remote/open-backend.js';
import { RemoteRepository } from '../remote/repository.js';
import { RemoteIntegrityError } from '../remote/layout.js';
import { getVolumeConfig, verifyVolumeConfig } from '../remote/volume.js';
import { META_DIR, META_FILE, readDvfsRepository, REPO_FORMAT, TREE_DIR, type RepoMeta } from '../repo/layout.js';
import { openTree, type Credential } from '../repo/open-tree.js';
import { pullKeyring } from '../keys/remote-epochs.js';
import { writeFileAtomic } from '../store/durable.js';
import { explainNoSpace } from '../util/no-space.js';
import type { ObjectId } from '../store/object-id.js';
import { writeHead } from '../store/refs.js';
import { openVersioning, type Versioning } from '../versioning/context.js';
import { restoreToTree } from '../versioning/restore.js';
import { addRemote, DEFAULT_REMOTE } from './remotes.js';
import { downloadObjects, missingLocally, type FetchProgress } from './fetch.js';
import { VOLUME_CONFIG_FILES } from './push.js';

export interface CloneReport {
  repo: string;
  remote: string;
  snapshot: ObjectId;
  manifests: number;
  objects: number;
  files: number;
  bytes: number;
  seconds: number;
}

export async function clone(url: string, dir: string, password: Buffer | Credential, logger: Logger, onProgress?: (p: FetchProgress) => void): Promise<CloneReport> {
  const started = performance.now();
  const root = resolve(dir);
  try {
    if ((await readdir(root)).length > 0) throw new DvfsError('E_EXISTS', 'already exists and is not empty', { path: root, hint: 'clone into a new directory' });
  } catch (e) {
    if (!(isNodeError(e) && e.code === 'ENOENT')) throw e;
  }
  const backend = await openBackend(url);
  const staging = `${root}.dvfs-clone-${process.pid}`;
  let v: Versioning | null = null;
  try {
    const volume = await getVolumeConfig(backend, VOLUME_CONFIG_FILES);
    if (!volume) throw new DvfsError('E_NOTFOUND', `no dvfs repository at ${backend.location} (no volume config)`, { hint: 'push to it first' });
    const mode = volume.fileName === '.encfs6.xml' ? 'encfs' : 'native';
    const tree = join(staging, TREE_DIR);
    await mkdir(join(staging, META_DIR), { recursive: true, mode: 0o700 });
    await pullKeyring(backend, staging); // key slots and epochs come first: an identity unlocks with them
    await mkdir(tree, { recursive: true });
    await writeFile(join(tree, volume.fileName), volume.data, { mode: 0o600 });
    // A native tree's root directory IV is its own (names below are sealed under it); the objects are not.
    if (mode === 'native') await writeFile(join(tree, DIRIV_FILE), randomBytes(DIRIV_BYTES), { mode: 0o444 });
    const meta: RepoMeta = { format: REPO_FORMAT, id: randomUUID(), mode, tree: TREE_DIR, createdAt: new Date().toISOString() };
    await writeFile(join(staging, META_DIR, META_FILE), JSON.stringify(meta, null, 2) + '\n', { mode: 0o644 });
    const repo = await readDvfsRepository(staging);
    if (!repo) throw new DvfsError('E_IO', 'the staged repository metadata vanished', { path: staging });
    const opened = await openTree(repo, password, logger).catch((e: unknown) => {
      // The config came from the remote: a damaged copy (or a response mangled on the way) names the remote.
      if (e instanceof DvfsError && e.code === 'E_CONFIG') throw new RemoteIntegrityError(backend.location, `keys/${volume.fileName.replace(/^\./, '')}`, `the volume config does not parse (${e.message})`);
      throw e;
    });
    v = openVersioning(repo, opened);
    const keys = deriveRemoteKeys(v.keys);
    try {
      await verifyVolumeConfig(backend, keys, volume);
    } finally {
      wipeRemoteKeys(keys);
    }
    const remote = await RemoteRepository.open(backend, v.keys);
    try {
      const ref = await remote.readRef();
      if (!ref) throw new DvfsError('E_NOTFOUND', `the remote ${backend.location} has no snapshot yet`, { hint: 'push to it first' });
      const counts = await fetchHistory(v, remote, ref.snapshot, onProgress);
      await writeHead(staging, ref.snapshot);
      const placed = await restoreToTree(v, v.tree, ref.snapshot, []);
      v.close();
      opened.dispose?.();
      v = null;
      await rename(staging, root);
      await addRemote(root, DEFAULT_REMOTE, url);
      return { repo: root, remote: backend.location, snapshot: ref.snapshot, ...counts, files: placed.files, bytes: placed.bytes, seconds: (performance.now() - started) / 1000 };
    } finally {
      remote.close();
    }
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw explainNoSpace(e, root, 'clone');
  } finally {
    v?.close();
    await backend.close();
  }
}

/**
 * Downloads the manifests of `head`'s history and the objects `head`'s tree names (those not stored yet) into
 * the local stores. Older snapshots' objects stay on the remote until a restore or mount needs them
 * (fetch.ts).
 */
export async function fetchHistory(v: Versioning, remote: RemoteRepository, head: ObjectId, onProgress?: (p: FetchProgress) => void): Promise<{ manifests: number; objects: number }> {
  let manifests = 0;
  const getManifest = async (id: ObjectId): Promise<void> => {
    const path = v.manifests.path(id);
    if (await stat(path).then(() => true, () => false)) return;
    await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
    await mkdir(v.manifests.tmpDir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, await remote.get('manifest', id), { tmpDir: v.manifests.tmpDir, mode: 0o444, sync: false });
    manifests++;
  };
  const objects = new Set<ObjectId>();
  const snapshots: ObjectId[] = [head];
  const seenSnapshots = new Set<ObjectId>();
  for (let id = snapshots.pop(); id !== undefined; id = snapshots.pop()) {
    if (seenSnapshots.has(id)) continue;
    seenSnapshots.add(id);
    await getManifest(id);
    const snap = await v.manifests.getSnapshot(id); // authenticated here
    snapshots.push(...snap.parents);
    if (id !== head) continue;
    const trees: ObjectId[] = [snap.tree];
    const seenTrees = new Set<ObjectId>(); // a tree shared by many directories is walked once (no exponential DAG)
    for (let t = trees.pop(); t !== undefined; t = trees.pop()) {
      if (seenTrees.has(t)) continue;
      seenTrees.add(t);
      await getManifest(t);
      for (const e of (await v.manifests.getTree(t)).entries) {
        if (e.type === 'dir') trees.push(e.tree);
        else if (e.type === 'file') objects.add(e.object);
      }
    }
  }
  // Older snapshots' trees come along so that log/show/diff work offline; their objects stay remote.
  for (const id of seenSnapshots) {
    if (id === head) continue;
    const trees: ObjectId[] = [(await v.manifests.getSnapshot(id)).tree];
    for (let t = trees.pop(); t !== undefined; t = trees.pop()) {
      if (await stat(v.manifests.path(t)).then(() => true, () => false)) continue;
      await getManifest(t);
      for (const e of (await v.manifests.getTree(t)).entries) if (e.type === 'dir') trees.push(e.tree);
    }
  }
  await downloadObjects(v, remote, await missingLocally(v, objects), onProgress);
  return { manifests, objects: objects.size };
}
