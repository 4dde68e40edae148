/**
 * Checking a snapshot: every manifest it reaches is read (authenticated, re-hashed, validated) and every file
 * object must be present. With `full`, each object is also handed to a format-specific decoder supplied by the
 * caller (decrypt it and re-hash the plaintext against its id), since the store itself never decrypts files.
 *
 * Problems are collected, not thrown, so one run reports all of them. Each names the id and, where known, the
 * path inside the snapshot that references it ("/dir/file"; the store path is in the message).
 */
import { DvfsError, IntegrityError } from '../errors.js';
import type { ObjectId } from './content-hash.js';
import type { ManifestStore, Snapshot, Tree } from './manifests.js';
import type { ObjectStore } from './objects.js';

export type ProblemKind = 'missing-manifest' | 'corrupt-manifest' | 'missing-object' | 'corrupt-object';

export interface VerifyProblem {
  kind: ProblemKind;
  id: ObjectId;
  /** Path inside the snapshot that references `id` (absent for snapshots themselves). */
  path?: string;
  message: string;
}

export interface VerifyReport {
  snapshot: ObjectId;
  checked: { snapshots: number; trees: number; objects: number; decoded: number };
  problems: VerifyProblem[];
}

/** Decodes the stored object at `path` and checks it against `id`; throws (ideally IntegrityError) if it is bad. */
export type ObjectDecoder = (id: ObjectId, path: string) => Promise<void>;

export interface VerifyOptions {
  /** Also decode every object with `decodeObject`. */
  full: boolean;
  decodeObject?: ObjectDecoder;
  /** Also check every ancestor snapshot (all parents, recursively). */
  history?: boolean;
  /** Objects decoded at once (default 4). */
  concurrency?: number;
}

function describe(e: unknown): string {
  if (e instanceof DvfsError) return e.oneLine();
  return e instanceof Error ? e.message : String(e);
}

function manifestProblem(id: ObjectId, path: string | undefined, e: unknown): VerifyProblem {
  const missing = e instanceof DvfsError && e.code === 'E_NOTFOUND';
  const kind: ProblemKind = missing ? 'missing-manifest' : 'corrupt-manifest';
  const message = e instanceof IntegrityError || missing ? describe(e) : `unreadable: ${describe(e)}`;
  return { kind, id, ...(path === undefined ? {} : { path }), message };
}

const childPath = (dir: string, name: string): string => (dir === '/' ? `/${name}` : `${dir}/${name}`);

export async function verifySnapshot(
  manifests: ManifestStore,
  objects: ObjectStore,
  id: ObjectId,
  options: VerifyOptions,
): Promise<VerifyReport> {
  const decode = options.decodeObject;
  if (options.full && decode === undefined) throw new DvfsError('E_USAGE', 'a full verification needs an object decoder for the repository format');
  const report: VerifyReport = { snapshot: id, checked: { snapshots: 0, trees: 0, objects: 0, decoded: 0 }, problems: [] };
  const problems = report.problems;

  // Manifests: snapshots, then their trees depth first.
  const snapshotQueue: ObjectId[] = [id];
  const seenSnapshots = new Set<ObjectId>();
  const treeStack: { id: ObjectId; path: string }[] = [];
  for (let s = snapshotQueue.shift(); s !== undefined; s = snapshotQueue.shift()) {
    if (seenSnapshots.has(s)) continue;
    seenSnapshots.add(s);
    report.checked.snapshots++;
    let snapshot: Snapshot;
    try {
      snapshot = await manifests.getSnapshot(s);
    } catch (e) {
      problems.push(manifestProblem(s, undefined, e));
      continue;
    }
    treeStack.push({ id: snapshot.tree, path: '/' });
    if (options.history === true) snapshotQueue.push(...snapshot.parents);
  }
  const seenTrees = new Set<ObjectId>();
  /** Each object once, with the first path that references it. */
  const objectPaths = new Map<ObjectId, string>();
  for (let t = treeStack.pop(); t !== undefined; t = treeStack.pop()) {
    if (seenTrees.has(t.id)) continue;
    seenTrees.add(t.id);
    report.checked.trees++;
    let tree: Tree;
    try {
      tree = await manifests.getTree(t.id);
    } catch (e) {
      problems.push(manifestProblem(t.id, t.path, e));
      continue;
    }
    // Reversed so that the stack pops entries in name order.
    for (const e of [...tree.entries].reverse()) {
      if (e.type === 'dir') treeStack.push({ id: e.tree, path: childPath(t.path, e.name) });
    }
    for (const e of tree.entries) {
      if (e.type === 'file' && !objectPaths.has(e.object)) objectPaths.set(e.object, childPath(t.path, e.name));
    }
  }

  // Objects: present, and with `full` decodable.
  const work = [...objectPaths];
  const worker = async (): Promise<void> => {
    for (let item = work.shift(); item !== undefined; item = work.shift()) {
      const [oid, path] = item;
      report.checked.objects++;
      const stored = objects.path(oid);
      if (!(await objects.has(oid))) {
        problems.push({ kind: 'missing-object', id: oid, path, message: `object ${oid} is missing (${stored})` });
        continue;
      }
      if (!options.full || decode === undefined) continue;
      try {
        await decode(oid, stored);
        report.checked.decoded++;
      } catch (e) {
        problems.push({ kind: 'corrupt-object', id: oid, path, message: `object ${oid} (${stored}): ${describe(e)}` });
      }
    }
  };
  const n = Math.max(1, Math.min(options.concurrency ?? 4, 64));
  await Promise.all(Array.from({ length: n }, worker));

  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  problems.sort((a, b) => cmp(a.path ?? '', b.path ?? '') || cmp(a.kind, b.kind) || cmp(a.id, b.id));
  return report;
}
