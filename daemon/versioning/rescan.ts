/**
 * Finding changes made behind dvfs's back (stock encfs, a copy straight into the ciphertext tree): a walk of
 * the working tree compared with the index by the ciphertext file's (inode, size, mtime). An unchanged file
 * costs one lstat; only files whose stat differs are hashed (by commit, which sees them as dirty).
 * Directory listings are compared both ways, so vanished entries are found too.
 */
import { lstat, readdir } from 'node:fs/promises';
import type { JournalSummary, SummaryEntry } from '../journal/journal.js';
import type { IndexEntry, RepoIndex } from '../index/repo-index.js';
import type { Location } from '../vfs/crypto-tree.js';
import type { Versioning } from './context.js';
import { sameRaw } from './apply-changes.js';

function entry(path: string, status: SummaryEntry['status'], kind: SummaryEntry['kind']): SummaryEntry {
  return { path, status, origin: status === 'removed' ? path : null, kind, content: status !== 'removed', meta: false, hash: null, size: null, dirty: kind === 'file', replaced: false, seq: 0 };
}

export async function rescanChanges(v: Versioning, index: RepoIndex): Promise<Pick<JournalSummary, 'entries' | 'counts'>> {
  const entries: SummaryEntry[] = [];
  const walk = async (dirLoc: Location, opaqueDir: string): Promise<void> => {
    await v.tree.prepareDir?.(dirLoc);
    const known = new Map<string, IndexEntry>();
    for await (const { name, entry: e } of index.iterateDir(opaqueDir)) known.set(name, e);
    const prefix = opaqueDir === '/' ? '/' : opaqueDir + '/';
    for (const cipherName of await readdir(dirLoc.rawPath)) {
      let name: string | null;
      try {
        name = v.tree.decodeEntry(dirLoc, cipherName);
      } catch {
        continue; // not a name of this volume: not part of the tree
      }
      if (name === null) continue;
      const opaqueName = v.paths.encodeName(name);
      const path = prefix + opaqueName;
      const loc = await v.tree.child(dirLoc, name);
      const st = await lstat(loc.rawPath);
      const old = known.get(opaqueName);
      known.delete(opaqueName);
      if (st.isDirectory()) {
        if (old?.kind !== 'dir') entries.push(entry(path, old ? 'changed' : 'added', 'dir'));
        await walk(loc, path);
      } else if (st.isFile()) {
        if (old?.kind !== 'file' || !sameRaw(old, st)) entries.push(entry(path, old ? 'changed' : 'added', 'file'));
      } else if (st.isSymbolicLink()) {
        if (old?.kind !== 'symlink' || old.mtimeMs !== st.mtimeMs) entries.push(entry(path, old ? 'changed' : 'added', 'symlink'));
      }
    }
    for (const name of known.keys()) entries.push(entry(prefix + name, 'removed', 'unknown'));
  };
  await walk(await v.tree.locate(''), '/');
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const counts = { added: 0, changed: 0, renamed: 0, removed: 0, dirty: 0 };
  for (const e of entries) {
    counts[e.status]++;
    if (e.dirty) counts.dirty++;
  }
  return { entries, counts };
}
