/**
 * HEAD: the id of the newest snapshot, in `REPO/.dvfs/HEAD` as 64 hex characters and a newline. No HEAD file
 * means no snapshot yet. It is replaced atomically (temp file + fsync + rename + fsync of `.dvfs`), so a crash
 * leaves the old or the new HEAD, never a torn one; a leftover `.HEAD.<pid>-<hex>.tmp` is ignored.
 *
 * HEAD names a snapshot but is not authenticated by itself: whoever can write `.dvfs` can point it at another
 * (older) snapshot of the same repository. Reading the snapshot it names is authenticated.
 */
import { join } from 'node:path';
import { IntegrityError } from '../errors.js';
import { META_DIR } from '../repo/layout.js';
import { isObjectId, type ObjectId } from './object-id.js';
import { readTextIfExists, writeFileAtomic } from './durable.js';
import type { ManifestStore, Snapshot } from './manifests.js';

export const HEAD_FILE = 'HEAD';

export function headPath(repoRoot: string): string {
  return join(repoRoot, META_DIR, HEAD_FILE);
}

/** The newest snapshot's id, or null when there is none yet. */
export async function readHead(repoRoot: string): Promise<ObjectId | null> {
  const path = headPath(repoRoot);
  const text = await readTextIfExists(path);
  if (text === null) return null;
  const id = text.endsWith('\n') ? text.slice(0, -1) : text;
  if (!isObjectId(id)) {
    throw new IntegrityError(`HEAD of repository ${repoRoot} does not hold a snapshot id`, {
      path,
      hint: `write the id of the newest good snapshot into it (64 hex characters), or remove it to start over`,
    });
  }
  return id;
}

/** Points HEAD at `id` (the caller holds the repository lock and has stored the snapshot). */
export async function writeHead(repoRoot: string, id: ObjectId): Promise<void> {
  if (!isObjectId(id)) throw new TypeError('writeHead: not an object id');
  await writeFileAtomic(headPath(repoRoot), Buffer.from(`${id}\n`, 'ascii'), { mode: 0o644 });
}

export interface HistoryEntry {
  id: ObjectId;
  snapshot: Snapshot;
}

/**
 * Snapshots from `from` back along first parents, newest first. Reading each is authenticated; a missing or
 * damaged one ends the walk with its error. `limit` caps how many are yielded.
 */
export async function* history(store: ManifestStore, from: ObjectId | null, options: { limit?: number } = {}): AsyncGenerator<HistoryEntry> {
  const limit = options.limit ?? Infinity;
  const seen = new Set<ObjectId>();
  let next: ObjectId | undefined = from ?? undefined;
  let count = 0;
  while (next !== undefined && count < limit) {
    if (seen.has(next)) throw new IntegrityError(`history of repository ${store.repoRoot} loops at snapshot ${next}`, { path: store.path(next) });
    seen.add(next);
    const snapshot = await store.getSnapshot(next);
    yield { id: next, snapshot };
    count++;
    next = snapshot.parents[0];
  }
}
