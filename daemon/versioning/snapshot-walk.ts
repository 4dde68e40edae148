/**
 * Reading snapshots by path: the entry at a plaintext path, and a depth-first walk of a whole tree. Trees
 * are read through a small cache, since lookups of neighbouring paths share their parents.
 */
import type { ObjectId } from '../store/content-hash.js';
import type { ManifestStore } from '../store/manifests.js';
import type { Snapshot, Tree, TreeEntry } from '../store/manifest-schema.js';
import { DvfsError } from '../errors.js';

/** A snapshot's root as an entry (for uniform handling of '/'). */
export type RootEntry = { type: 'dir'; name: ''; mode: number; mtimeMs: number; tree: ObjectId };
export type AnyEntry = TreeEntry | RootEntry;

export class SnapshotReader {
  private readonly trees = new Map<string, Tree>();

  constructor(readonly manifests: ManifestStore) {}

  async tree(id: ObjectId): Promise<Tree> {
    const hit = this.trees.get(id);
    if (hit) return hit;
    const t = await this.manifests.getTree(id);
    if (this.trees.size > 4096) this.trees.clear();
    this.trees.set(id, t);
    return t;
  }

  /** The entry at `plainPath` ('/' is the root) in the tree `root`, or undefined. */
  async lookup(root: ObjectId, plainPath: string): Promise<AnyEntry | undefined> {
    let entry: AnyEntry = { type: 'dir', name: '', mode: 0o755, mtimeMs: 0, tree: root };
    for (const name of plainPath.split('/')) {
      if (name === '') continue;
      if (entry.type !== 'dir') return undefined;
      const found: TreeEntry | undefined = (await this.tree(entry.tree)).entries.find((e) => e.name === name);
      if (!found) return undefined;
      entry = found;
    }
    return entry;
  }

  /** Every entry below `root` (depth first, parents before children), with its plaintext path. */
  async *walk(root: ObjectId, base = ''): AsyncGenerator<{ path: string; entry: TreeEntry }> {
    for (const entry of (await this.tree(root)).entries) {
      const path = `${base}/${entry.name}`;
      yield { path, entry };
      if (entry.type === 'dir') yield* this.walk(entry.tree, path);
    }
  }
}

/** Resolves a snapshot reference: a full id, a unique prefix of at least 4 hex digits, HEAD, or HEAD~N. */
export async function resolveSnapshot(manifests: ManifestStore, head: ObjectId | null, ref: string): Promise<{ id: ObjectId; snapshot: Snapshot }> {
  const m = /^HEAD(?:~(\d+))?$/.exec(ref);
  if (m) {
    if (head === null) throw new DvfsError('E_NOTFOUND', 'no snapshot yet (HEAD is empty)', { hint: 'make one with: dvfs commit REPO' });
    let id = head;
    let snap = await manifests.getSnapshot(id);
    for (let n = Number(m[1] ?? 0); n > 0; n--) {
      const parent = snap.parents[0];
      if (parent === undefined) throw new DvfsError('E_NOTFOUND', `${ref}: history is shorter than that`);
      id = parent;
      snap = await manifests.getSnapshot(id);
    }
    return { id, snapshot: snap };
  }
  if (!/^[0-9a-f]{4,64}$/.test(ref)) {
    throw new DvfsError('E_USAGE', `not a snapshot id: ${JSON.stringify(ref)}`, { hint: 'use an id (or a prefix of 4+ hex digits) from dvfs log, HEAD or HEAD~N' });
  }
  const matches: ObjectId[] = [];
  if (ref.length === 64) {
    matches.push(ref as ObjectId);
  } else {
    for await (const id of manifests.ids()) if (id.startsWith(ref)) matches.push(id);
  }
  const snaps: { id: ObjectId; snapshot: Snapshot }[] = [];
  for (const id of matches) {
    try {
      const manifest = await manifests.get(id);
      if (manifest.kind === 'snapshot') snaps.push({ id, snapshot: manifest.snapshot });
    } catch (e) {
      if (ref.length === 64) throw e;
    }
  }
  const [only, ...more] = snaps;
  if (!only) throw new DvfsError('E_NOTFOUND', `no snapshot ${ref}`, { hint: 'see dvfs log REPO' });
  if (more.length > 0) throw new DvfsError('E_USAGE', `snapshot prefix ${ref} is ambiguous (${snaps.length} match)`, { hint: 'give more digits' });
  return only;
}
