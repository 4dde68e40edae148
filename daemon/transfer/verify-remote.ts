/**
 * `dvfs verify REPO --remote NAME`: every manifest and object of the local HEAD's history must be on the
 * remote and open under its seal (the AEAD binds each entry to its pack, type and id, so a flipped byte, a
 * swapped pack or an entry filed under another id is caught). Problems are collected, not thrown, so one run
 * reports all of them. Nothing local is changed.
 *
 * A blob that fails its check is read again (up to READ_ATTEMPTS in all) before it is reported corrupt: a
 * damaged copy fails every time, while a response mangled on the way (a proxy or server that cut or mixed up a
 * body) does not — so a flaky endpoint is never reported as a damaged remote. A read that cannot be made at
 * all (the endpoint keeps failing after the backend's retries) fails the command instead of counting as a
 * problem of the blob.
 */
import { DvfsError } from '../errors.js';
import { isTransient } from '../remote/backend.js';
import { openBackend } from '../remote/open-backend.js';
import type { BlobType } from '../remote/layout.js';
import { RemoteRepository } from '../remote/repository.js';
import type { ObjectId } from '../store/object-id.js';
import { reachableFrom } from '../store/gc.js';
import { readHead } from '../store/refs.js';
import type { Versioning } from '../versioning/context.js';

export interface RemoteProblem {
  kind: 'missing' | 'corrupt';
  type: BlobType;
  id: ObjectId;
  message: string;
}

export interface RemoteVerifyReport {
  remote: string;
  snapshot: ObjectId;
  remoteHead: ObjectId | null;
  checked: { manifests: number; objects: number; bytes: number };
  problems: RemoteProblem[];
}

export async function verifyRemote(v: Versioning, url: string, onProgress?: (done: number, total: number) => void): Promise<RemoteVerifyReport> {
  const head = await readHead(v.repo.root);
  if (head === null) throw new DvfsError('E_NOTFOUND', 'no snapshot yet: nothing to verify on the remote', { path: v.repo.root });
  const reach = await reachableFrom(v.manifests, [head]);
  const backend = await openBackend(url);
  try {
    const remote = await RemoteRepository.open(backend, v.keys);
    try {
      const report: RemoteVerifyReport = { remote: remote.location, snapshot: head, remoteHead: (await remote.readRef())?.snapshot ?? null, checked: { manifests: 0, objects: 0, bytes: 0 }, problems: [] };
      const wanted: { type: BlobType; id: ObjectId }[] = [
        ...[...reach.snapshots, ...reach.trees].map((id) => ({ type: 'manifest' as const, id })),
        ...[...reach.objects].map((id) => ({ type: 'object' as const, id })),
      ];
      let done = 0;
      for (const w of wanted) {
        onProgress?.(++done, wanted.length);
        if (!remote.has(w.type, w.id)) {
          report.problems.push({ kind: 'missing', ...w, message: 'not on the remote (push it again)' });
          continue;
        }
        const problem = await checkBlob(remote, w.type, w.id, report);
        if (problem !== null) report.problems.push({ ...problem, ...w });
      }
      return report;
    } finally {
      remote.close();
    }
  } finally {
    await backend.close();
  }
}

const READ_ATTEMPTS = 3;

/** Reads one blob through its seal; null when it opens, else the problem (after READ_ATTEMPTS reads). */
async function checkBlob(remote: RemoteRepository, type: BlobType, id: ObjectId, report: RemoteVerifyReport): Promise<Omit<RemoteProblem, 'type' | 'id'> | null> {
  let last: Omit<RemoteProblem, 'type' | 'id'> | null = null;
  for (let attempt = 1; attempt <= READ_ATTEMPTS; attempt++) {
    let bytes = 0;
    try {
      for await (const chunk of remote.read(type, id)) bytes += chunk.length;
      report.checked.bytes += bytes;
      if (type === 'manifest') report.checked.manifests++;
      else report.checked.objects++;
      return null;
    } catch (e) {
      if (isTransient(e)) throw e;
      // A pack or blob file the index names but the storage lacks is reported as missing, not altered.
      const missing = (e instanceof DvfsError && e.code === 'E_NOTFOUND') || (e instanceof Error && /\bis missing\b/.test(e.message));
      last = { kind: missing ? 'missing' : 'corrupt', message: e instanceof DvfsError ? e.oneLine() : e instanceof Error ? e.message : String(e) };
      if (missing) return last;
    }
  }
  return last;
}
