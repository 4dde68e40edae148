// Shared setup for the snapshot-store tests: throwaway repositories (just REPO/.dvfs and REPO/tree), store
// keys from a fixed secret, and a tiny "snapshot these files" helper. The store never decrypts, so the raw
// files here are plain bytes standing in for ciphertext.
import type { Test } from 'tap';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { hashBuffer, type ObjectId } from '../../daemon/store/content-hash.js';
import { deriveRepoKeys, type RepoKeys } from '../../daemon/store/keys.js';
import { makeTree, ManifestStore, type Snapshot, type TreeEntry } from '../../daemon/store/manifests.js';
import { ObjectStore } from '../../daemon/store/objects.js';
import { errorOf } from '../helpers/errors.js';
export { errorOf };

export const SECRET = Buffer.from(Array.from({ length: 32 }, (_, i) => i));

export async function tempDir(t: Test, prefix = 'dvfs-store-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface TestRepo {
  root: string;
  keys: RepoKeys;
  manifests: ManifestStore;
  objects: ObjectStore;
}

export async function tempRepo(t: Test): Promise<TestRepo> {
  const root = join(await tempDir(t), 'repo');
  await mkdir(join(root, '.dvfs'), { recursive: true });
  await mkdir(join(root, 'tree'), { recursive: true });
  const keys = deriveRepoKeys(SECRET);
  const manifests = new ManifestStore(root, keys.manifest);
  t.teardown(() => manifests.dispose());
  return { root, keys, manifests, objects: new ObjectStore(root) };
}

export function snapshotOf(tree: ObjectId, parents: ObjectId[], message: string, extra: Partial<Snapshot> = {}): Snapshot {
  return {
    tree,
    parents,
    message,
    time: '2024-05-01T12:00:00.000Z',
    author: 'tester@example',
    provenance: {},
    stats: { files: 0, bytes: 0, added: 0, changed: 0, removed: 0, bytesHashed: 0 },
    ...extra,
  };
}

export interface Committed {
  snapshot: ObjectId;
  tree: ObjectId;
  /** Object id of every file, by its path ("dir/file"). */
  files: Map<string, ObjectId>;
}

/**
 * Stores `files` (path -> contents; "a/b" makes directory a) as raw files under REPO/tree, their objects by
 * copy, the trees bottom-up and a snapshot on top.
 */
export async function commit(repo: TestRepo, files: Record<string, string>, parents: ObjectId[] = [], message = 'test'): Promise<Committed> {
  const ids = new Map<string, ObjectId>();
  interface Dir {
    files: Map<string, { object: ObjectId; size: number }>;
    dirs: Map<string, Dir>;
  }
  const top: Dir = { files: new Map(), dirs: new Map() };
  for (const [path, contents] of Object.entries(files)) {
    const raw = join(repo.root, 'tree', path);
    await mkdir(dirname(raw), { recursive: true });
    await writeFile(raw, contents);
    const id = hashBuffer(repo.keys.contentHash, Buffer.from(contents));
    await repo.objects.addByCopy(id, raw);
    ids.set(path, id);
    const parts = path.split('/');
    let d = top;
    for (const p of parts.slice(0, -1)) {
      let sub = d.dirs.get(p);
      if (sub === undefined) d.dirs.set(p, (sub = { files: new Map(), dirs: new Map() }));
      d = sub;
    }
    d.files.set(parts[parts.length - 1] as string, { object: id, size: Buffer.byteLength(contents) });
  }
  const put = async (d: Dir): Promise<ObjectId> => {
    const entries: TreeEntry[] = [];
    for (const [name, f] of d.files) entries.push({ type: 'file', name, mode: 0o644, size: f.size, mtimeMs: 1714564800000, object: f.object });
    for (const [name, sub] of d.dirs) entries.push({ type: 'dir', name, mode: 0o755, mtimeMs: 1714564800000, tree: await put(sub) });
    return repo.manifests.putTree(makeTree(entries));
  };
  const tree = await put(top);
  const snapshot = await repo.manifests.putSnapshot(snapshotOf(tree, parents, message));
  return { snapshot, tree, files: ids };
}

