/**
 * `dvfs pull`: the remote's newer snapshots come down (manifests of the new history, objects of the new
 * HEAD), HEAD moves forward, and the working tree is made to match it. Only a fast-forward: when the local
 * history has snapshots the remote lacks, pull refuses (push them, or clone afresh) rather than merge.
 */
import { DvfsError } from '../errors.js';
import { openBackend } from '../remote/open-backend.js';
import { RemoteRepository } from '../remote/repository.js';
import type { ObjectId } from '../store/object-id.js';
import { readHead, writeHead } from '../store/refs.js';
import type { Versioning } from '../versioning/context.js';
import { restoreToTree } from '../versioning/restore.js';
import { explainNoSpace } from '../util/no-space.js';
import { fetchHistory } from './clone.js';
import type { FetchProgress } from './fetch.js';

export interface PullReport {
  remote: string;
  from: ObjectId | null;
  to: ObjectId;
  upToDate: boolean;
  manifests: number;
  objects: number;
  files: number;
  removed: number;
  seconds: number;
}

export async function pull(v: Versioning, url: string, onProgress?: (p: FetchProgress) => void): Promise<PullReport> {
  const started = performance.now();
  const backend = await openBackend(url);
  try {
    const remote = await RemoteRepository.open(backend, v.keys);
    try {
      const ref = await remote.readRef();
      if (!ref) throw new DvfsError('E_NOTFOUND', `the remote ${backend.location} has no snapshot yet`);
      const local = await readHead(v.repo.root);
      if (local === ref.snapshot) {
        return { remote: remote.location, from: local, to: local, upToDate: true, manifests: 0, objects: 0, files: 0, removed: 0, seconds: (performance.now() - started) / 1000 };
      }
      const counts = await fetchHistory(v, remote, ref.snapshot, onProgress).catch((e: unknown) => {
        throw explainNoSpace(e, v.repo.root, 'pull');
      });
      if (local !== null && !(await descendsFrom(v, ref.snapshot, local))) {
        throw new DvfsError('E_CONFLICT', `local snapshot ${local.slice(0, 12)} is not in the remote's history: the histories diverged`, {
          hint: 'push your snapshots first if they should win, or clone the remote afresh',
        });
      }
      const placed = await restoreToTree(v, v.tree, ref.snapshot, []).catch((e: unknown) => {
        throw explainNoSpace(e, v.repo.root, 'pull');
      });
      await writeHead(v.repo.root, ref.snapshot);
      return { remote: remote.location, from: local, to: ref.snapshot, upToDate: false, ...counts, files: placed.files, removed: placed.removed, seconds: (performance.now() - started) / 1000 };
    } finally {
      remote.close();
    }
  } finally {
    await backend.close();
  }
}

async function descendsFrom(v: Versioning, head: ObjectId, ancestor: ObjectId): Promise<boolean> {
  const seen = new Set<ObjectId>();
  const queue: ObjectId[] = [head];
  for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
    if (id === ancestor) return true;
    if (seen.has(id)) continue;
    seen.add(id);
    queue.push(...(await v.manifests.getSnapshot(id)).parents);
  }
  return false;
}
