/**
 * Bringing the repository index back in line with HEAD before a commit uses it.
 *
 * A commit writes, in this order: objects, trees, the snapshot manifest, the index naming the snapshot, HEAD,
 * and last marks the session journal. A crash can stop it anywhere, leaving one of:
 *  - an index still describing HEAD (crash before the index was touched): nothing to do;
 *  - an index update cut short (`!incomplete`): rebuilt from HEAD's trees;
 *  - an index naming the new snapshot X while HEAD is still its parent: HEAD is rolled forward to X (every
 *    manifest X needs was written before the index named it).
 * Objects and manifests a crashed commit left unreferenced are gc's business.
 */
import { lstat } from 'node:fs/promises';
import type { IndexEntry, IndexOp, RepoIndex } from '../index/repo-index.js';
import type { ObjectId } from '../store/content-hash.js';
import { readHead, writeHead } from '../store/refs.js';
import type { Logger } from '../log.js';
import type { Versioning } from './context.js';
import { SnapshotReader } from './snapshot-walk.js';

const BATCH = 10_000;

export async function bringIndexToHead(v: Versioning, index: RepoIndex, log?: Logger): Promise<ObjectId | null> {
  const head = await readHead(v.repo.root);
  const named = index.snapshot();
  if (named === head && !index.state.incomplete) return head;
  if (named !== null && named !== head) {
    try {
      const snap = await v.manifests.getSnapshot(named as ObjectId);
      if ((snap.parents[0] ?? null) === head) {
        await writeHead(v.repo.root, named as ObjectId);
        log?.info({ snapshot: named }, 'an interrupted commit was completed (HEAD rolled forward)');
        return named as ObjectId;
      }
    } catch {
      // not a usable snapshot: rebuild below
    }
  }
  log?.warn({ head }, 'the repository index does not match HEAD: rebuilding it');
  await rebuildIndex(v, index, head);
  return head;
}

/** Refills the index from snapshot `head` (empty when null); raw stats come from the working tree. */
export async function rebuildIndex(v: Versioning, index: RepoIndex, head: ObjectId | null): Promise<void> {
  await index.clear();
  if (head === null) return;
  const snap = await v.manifests.getSnapshot(head);
  const reader = new SnapshotReader(v.manifests);
  let ops: IndexOp[] = [{ type: 'put', path: '/', entry: { kind: 'dir', tree: snap.tree } }];
  for await (const { path, entry } of reader.walk(snap.tree)) {
    const opaque = v.paths.encodePath(path);
    let e: IndexEntry;
    if (entry.type === 'dir') {
      e = { kind: 'dir', tree: entry.tree, mode: entry.mode, mtimeMs: entry.mtimeMs };
    } else if (entry.type === 'symlink') {
      e = { kind: 'symlink', object: v.tree.encodeLinkTarget(entry.target), size: Buffer.byteLength(entry.target), mtimeMs: entry.mtimeMs };
    } else {
      let raw = { ino: 0, size: -1, mtimeMs: 0 }; // no such working file: a rescan must look at it
      try {
        const st = await lstat((await v.tree.locate(path)).rawPath);
        if (st.isFile()) raw = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
      } catch {
        // missing
      }
      e = { kind: 'file', object: entry.object, size: entry.size, mode: entry.mode, mtimeMs: entry.mtimeMs, raw };
    }
    ops.push({ type: 'put', path: opaque, entry: e });
    if (ops.length >= BATCH) {
      await index.batch(ops);
      ops = [];
    }
  }
  await index.batch(ops, { snapshot: head });
}
