/**
 * What differs between two snapshot trees, file by file. Subtrees with equal tree ids are skipped without
 * being read, so the cost is what changed (as git compares trees).
 */
import type { ObjectId } from '../store/content-hash.js';
import type { TreeEntry } from '../store/manifest-schema.js';
import { SnapshotReader } from './snapshot-walk.js';

export interface DiffEntry {
  status: 'added' | 'changed' | 'removed';
  path: string;
  kind: TreeEntry['type'];
  /** For changed files: what changed. */
  what?: ('content' | 'mode' | 'target' | 'type')[];
}

export async function diffTrees(reader: SnapshotReader, a: ObjectId | null, b: ObjectId | null, base = ''): Promise<DiffEntry[]> {
  const out: DiffEntry[] = [];
  await diffInto(reader, a, b, base, out);
  return out;
}

async function diffInto(reader: SnapshotReader, a: ObjectId | null, b: ObjectId | null, base: string, out: DiffEntry[]): Promise<void> {
  if (a === b) return;
  const left = a === null ? [] : (await reader.tree(a)).entries;
  const right = b === null ? [] : (await reader.tree(b)).entries;
  const byName = new Map(right.map((e) => [e.name, e]));
  for (const l of left) {
    const path = `${base}/${l.name}`;
    const r = byName.get(l.name);
    byName.delete(l.name);
    if (!r) {
      await side(reader, l, path, 'removed', out);
    } else if (l.type !== r.type) {
      await side(reader, l, path, 'removed', out);
      await side(reader, r, path, 'added', out);
    } else if (l.type === 'dir' && r.type === 'dir') {
      await diffInto(reader, l.tree, r.tree, path, out);
    } else {
      const what: NonNullable<DiffEntry['what']> = [];
      if (l.type === 'file' && r.type === 'file' && l.object !== r.object) what.push('content');
      if (l.type === 'symlink' && r.type === 'symlink' && l.target !== r.target) what.push('target');
      if (l.mode !== r.mode) what.push('mode');
      if (what.length > 0) out.push({ status: 'changed', path, kind: l.type, what });
    }
  }
  for (const r of byName.values()) await side(reader, r, `${base}/${r.name}`, 'added', out);
}

/** Everything at and below an entry present on one side only. */
async function side(reader: SnapshotReader, e: TreeEntry, path: string, status: 'added' | 'removed', out: DiffEntry[]): Promise<void> {
  out.push({ status, path, kind: e.type });
  if (e.type !== 'dir') return;
  for await (const { path: p, entry } of reader.walk(e.tree, path)) out.push({ status, path: p, kind: entry.type });
}
