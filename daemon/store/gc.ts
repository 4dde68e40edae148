/**
 * Garbage collection: manifests and objects that no kept snapshot can reach.
 *
 * Reachability starts at the given snapshot ids plus HEAD (so HEAD can never be collected by mistake) and
 * follows snapshots → all parents and their tree → subtrees and file objects. Every manifest on the way is
 * read and authenticated; a missing or damaged one aborts with its error, because what it references is then
 * unknown and deleting anything could destroy reachable data.
 *
 * Run under the repository lock (lock.ts): a snapshot being written stores its objects before the manifests
 * that reference them, and those objects look unreferenced until it finishes.
 */
import { DvfsError } from '../errors.js';
import type { ObjectId } from './content-hash.js';
import type { ManifestStore } from './manifests.js';
import type { ObjectStore } from './objects.js';
import { readHead } from './refs.js';

export interface Reachable {
  snapshots: Set<ObjectId>;
  trees: Set<ObjectId>;
  objects: Set<ObjectId>;
}

/** Everything reachable from the snapshots `roots` (throws on a missing or damaged manifest). */
export async function reachableFrom(manifests: ManifestStore, roots: readonly ObjectId[]): Promise<Reachable> {
  const objects = new Set<ObjectId>();
  const { snapshots, trees } = await walkReachable(manifests, roots, (id) => objects.add(id));
  return { snapshots, trees, objects };
}

/**
 * The snapshots and trees reachable from `roots`; every file object they reference is handed to `onObject`
 * (once per reference: an object in several files comes several times). For callers that keep objects in
 * a form more compact than a Set of strings (push, at 10^6 objects).
 */
export async function walkReachable(manifests: ManifestStore, roots: readonly ObjectId[], onObject: (id: ObjectId) => void): Promise<Omit<Reachable, 'objects'>> {
  const r = { snapshots: new Set<ObjectId>(), trees: new Set<ObjectId>() };
  const snapshots = [...roots];
  const trees: ObjectId[] = [];
  for (let id = snapshots.pop(); id !== undefined; id = snapshots.pop()) {
    if (r.snapshots.has(id)) continue;
    r.snapshots.add(id);
    const s = await manifests.getSnapshot(id);
    trees.push(s.tree);
    snapshots.push(...s.parents);
  }
  for (let id = trees.pop(); id !== undefined; id = trees.pop()) {
    if (r.trees.has(id)) continue;
    r.trees.add(id);
    for (const e of (await manifests.getTree(id)).entries) {
      if (e.type === 'dir') trees.push(e.tree);
      else if (e.type === 'file') onObject(e.object);
    }
  }
  return r;
}

export interface Unreferenced {
  /** The roots actually used (the given ones plus HEAD, without duplicates). */
  roots: ObjectId[];
  reachable: { snapshots: number; trees: number; objects: number };
  /** Stored manifests (snapshots and trees) nothing reaches. */
  manifests: ObjectId[];
  /** Stored objects nothing reaches. */
  objects: ObjectId[];
}

async function collectIds(ids: AsyncIterable<ObjectId>, keep: (id: ObjectId) => boolean): Promise<ObjectId[]> {
  const out: ObjectId[] = [];
  for await (const id of ids) if (!keep(id)) out.push(id);
  return out.sort();
}

/** What is stored but not reachable from `roots` and HEAD. Removes nothing. */
export async function findUnreferenced(
  repoRoot: string,
  manifests: ManifestStore,
  objects: ObjectStore,
  roots: readonly ObjectId[],
): Promise<Unreferenced> {
  const head = await readHead(repoRoot);
  const all = [...new Set(head === null ? roots : [...roots, head])];
  const r = await reachableFrom(manifests, all);
  return {
    roots: all,
    reachable: { snapshots: r.snapshots.size, trees: r.trees.size, objects: r.objects.size },
    manifests: await collectIds(manifests.ids(), (id) => r.snapshots.has(id) || r.trees.has(id)),
    objects: await collectIds(objects.ids(), (id) => r.objects.has(id)),
  };
}

export interface CollectOptions {
  /** Report what would go, remove nothing. */
  dryRun: boolean;
  /** Called after each unreferenced manifest or object is handled (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface CollectReport {
  dryRun: boolean;
  unreferenced: Unreferenced;
  manifests: { count: number; bytes: number };
  /** `bytesFreed` leaves out objects still hard-linked from the working tree (removing them frees nothing). */
  objects: { count: number; bytes: number; bytesFreed: number };
  /** Leftovers of interrupted writes in objects/tmp and manifests/tmp (removed unless dryRun). */
  tempFiles: number;
}

const gone = (e: unknown): boolean => e instanceof DvfsError && e.code === 'E_NOTFOUND';

/** Removes (or with dryRun only counts) everything findUnreferenced reports, and the temp leftovers. */
export async function collect(
  repoRoot: string,
  manifests: ManifestStore,
  objects: ObjectStore,
  roots: readonly ObjectId[],
  options: CollectOptions,
): Promise<CollectReport> {
  const unreferenced = await findUnreferenced(repoRoot, manifests, objects, roots);
  const report: CollectReport = {
    dryRun: options.dryRun,
    unreferenced,
    manifests: { count: 0, bytes: 0 },
    objects: { count: 0, bytes: 0, bytesFreed: 0 },
    tempFiles: 0,
  };
  const total = unreferenced.manifests.length + unreferenced.objects.length;
  let done = 0;
  const step = (): void => options.onProgress?.(++done, total);
  for (const id of unreferenced.manifests) {
    step();
    let size: number;
    try {
      size = await manifests.size(id);
    } catch (e) {
      if (gone(e)) continue;
      throw e;
    }
    if (!options.dryRun && !(await manifests.remove(id))) continue;
    report.manifests.count++;
    report.manifests.bytes += size;
  }
  for (const id of unreferenced.objects) {
    step();
    let info: { size: number; nlink: number };
    try {
      info = await objects.info(id);
    } catch (e) {
      if (gone(e)) continue;
      throw e;
    }
    if (!options.dryRun && !(await objects.remove(id))) continue;
    report.objects.count++;
    report.objects.bytes += info.size;
    if (info.nlink === 1) report.objects.bytesFreed += info.size;
  }
  if (options.dryRun) {
    report.tempFiles = (await objects.tempFiles()).length + (await manifests.tempFiles()).length;
  } else {
    report.tempFiles = (await objects.cleanTemp()) + (await manifests.cleanTemp());
  }
  return report;
}
