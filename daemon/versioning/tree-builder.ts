/**
 * Turning the index into tree manifests after a change: only the directories on the way from a changed path
 * to the root are re-encoded (deepest first, so a parent sees its children's new tree ids); every other
 * subtree keeps the tree id recorded in the index, as git reuses unchanged trees.
 */
import { lstat } from 'node:fs/promises';
import { IntegrityError } from '../errors.js';
import type { DirEntry, IndexOp, RepoIndex } from '../index/repo-index.js';
import type { ObjectId } from '../store/content-hash.js';
import { makeTree, type TreeEntry } from '../store/manifest-schema.js';
import type { Versioning } from './context.js';

const depth = (p: string): number => (p === '/' ? 0 : p.split('/').length - 1);
const parentOf = (p: string): string => {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
};

/** Adds `path`'s parent and every directory above it (opaque paths) to `dirty`. */
export function markAncestors(dirty: Set<string>, path: string): void {
  let p = path;
  while (p !== '/') {
    p = parentOf(p);
    if (dirty.has(p)) return;
    dirty.add(p);
  }
}

/** Re-encodes the `dirty` directories; returns the root tree id and how many trees were written. */
export async function buildTrees(v: Versioning, index: RepoIndex, dirty: ReadonlySet<string>): Promise<{ root: ObjectId; trees: number }> {
  const built = new Map<string, DirEntry>();
  const order = [...dirty].sort((a, b) => depth(b) - depth(a));
  for (const dir of order) {
    const entries: TreeEntry[] = [];
    for await (const { name, path, entry } of index.iterateDir(dir)) {
      const plainName = v.paths.decodeName(name);
      if (entry.kind === 'file') {
        entries.push({ type: 'file', name: plainName, mode: entry.mode, size: entry.size, mtimeMs: entry.mtimeMs, object: entry.object as ObjectId });
      } else if (entry.kind === 'symlink') {
        entries.push({ type: 'symlink', name: plainName, mode: 0o777, mtimeMs: entry.mtimeMs ?? 0, target: v.tree.decodeLinkTarget(entry.object) });
      } else {
        const d = built.get(path) ?? entry;
        if (d.tree === null) throw new IntegrityError('index directory without a tree and not rebuilt', { path: v.paths.decodePath(path) });
        entries.push({ type: 'dir', name: plainName, mode: d.mode ?? 0o755, mtimeMs: d.mtimeMs ?? 0, tree: d.tree as ObjectId });
      }
    }
    const id = await v.manifests.putTree(makeTree(entries));
    let mode = 0o755;
    let mtimeMs = 0;
    try {
      const st = await lstat((await v.tree.locate(v.paths.decodePath(dir))).rawPath);
      mode = st.mode & 0o7777;
      mtimeMs = Math.floor(st.mtimeMs);
    } catch {
      // removed meanwhile: keep defaults
    }
    built.set(dir, { kind: 'dir', tree: id, mode, mtimeMs });
  }
  const root = built.get('/');
  if (!root || root.tree === null) throw new IntegrityError('no root tree was built');
  const ops: IndexOp[] = [...built].map(([path, entry]) => ({ type: 'put', path, entry }));
  await index.batch(ops);
  return { root: root.tree as ObjectId, trees: built.size };
}
