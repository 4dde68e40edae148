/**
 * Fetching objects from a remote into the local store, only those a snapshot needs below the paths asked for:
 * what `dvfs fetch` prefetches and what `restore` / `mount --snapshot` fetch by themselves when an object is
 * not stored locally (a clone brings only HEAD's objects; older snapshots' objects stay on the remote until
 * something needs them). Packed objects come down batched (one range request covers many neighbours in a
 * pack, daemon/remote/repository.ts getMany); large ones stream to disk. Each lands through a temporary file
 * renamed into place, so an interrupted fetch leaves no partial object, and a fetched object is exactly the
 * ciphertext that was pushed (its seal on the remote binds it to its id).
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DvfsError } from '../errors.js';
import { openBackend } from '../remote/open-backend.js';
import { RemoteRepository } from '../remote/repository.js';
import type { ObjectId } from '../store/object-id.js';
import type { Versioning } from '../versioning/context.js';
import { SnapshotReader } from '../versioning/snapshot-walk.js';
import { statAll } from '../util/stat-all.js';

export interface FetchProgress {
  objects: number;
  totalObjects: number;
  bytes: number;
}

export interface FetchReport {
  /** The remote fetched from ('' when nothing was missing). */
  remote: string;
  snapshot: ObjectId;
  /** Objects the snapshot needs below the paths. */
  needed: number;
  /** Of those, already stored locally. */
  present: number;
  fetched: number;
  bytes: number;
  seconds: number;
}

function normalize(path: string): string {
  const parts = path.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new DvfsError('E_USAGE', `path '${path}' must not contain '..'`);
  return '/' + parts.join('/');
}

/** The objects a snapshot's files below `paths` (default: all of it) name. */
export async function objectsUnder(v: Versioning, snapshotId: ObjectId, paths: readonly string[] = []): Promise<Set<ObjectId>> {
  const snap = await v.manifests.getSnapshot(snapshotId);
  const reader = new SnapshotReader(v.manifests);
  const out = new Set<ObjectId>();
  for (const p of paths.length === 0 ? ['/'] : paths.map(normalize)) {
    const e = await reader.lookup(snap.tree, p);
    if (e === undefined) throw new DvfsError('E_NOTFOUND', `${p} is not in snapshot ${snapshotId.slice(0, 12)}`);
    if (e.type === 'file') out.add(e.object);
    else if (e.type === 'dir') for await (const { entry } of reader.walk(e.tree)) if (entry.type === 'file') out.add(entry.object);
  }
  return out;
}

/** Those of `ids` that are not in the local object store. */
export async function missingLocally(v: Versioning, ids: Iterable<ObjectId>): Promise<ObjectId[]> {
  const all = [...ids];
  const stats = await statAll(all.map((id) => v.objects.path(id)));
  return all.filter((_, i) => stats[i] === null);
}

/** Downloads `ids` (all on the remote) into the local object store. */
export async function downloadObjects(
  v: Versioning,
  remote: RemoteRepository,
  ids: readonly ObjectId[],
  onProgress?: (p: FetchProgress) => void,
): Promise<{ objects: number; bytes: number }> {
  await mkdir(v.objects.tmpDir, { recursive: true, mode: 0o700 });
  const shards = new Set<string>();
  const progress: FetchProgress = { objects: 0, totalObjects: ids.length, bytes: 0 };
  const tmpPath = (): string => join(v.objects.tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}.tmp`);
  const land = async (id: ObjectId, write: (tmp: string) => Promise<void>): Promise<void> => {
    const path = v.objects.path(id);
    const shard = dirname(path);
    if (!shards.has(shard)) {
      await mkdir(shard, { recursive: true, mode: 0o700 });
      shards.add(shard);
    }
    const tmp = tmpPath();
    try {
      await write(tmp);
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    progress.objects++;
    onProgress?.(progress);
  };
  const packed: ObjectId[] = [];
  for (const id of ids) {
    if (!remote.isLarge('object', id)) {
      packed.push(id);
      continue;
    }
    await land(id, async (tmp) => {
      const counted = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
        for await (const chunk of source) {
          progress.bytes += chunk.length;
          yield chunk;
        }
      };
      await pipeline(Readable.from(counted(remote.read('object', id))), createWriteStream(tmp, { mode: 0o444 }));
    });
  }
  for await (const blob of remote.getMany(packed.map((id) => ({ type: 'object' as const, id })))) {
    progress.bytes += blob.data.length;
    await land(blob.id, (tmp) => writeFile(tmp, blob.data, { mode: 0o444 }));
  }
  return { objects: progress.objects, bytes: progress.bytes };
}

/**
 * Makes sure every object `snapshotId` needs below `paths` is stored locally, fetching the missing ones from
 * the remote whose URL `remoteUrl` gives (asked only when something is missing: without missing objects no
 * remote is needed or contacted).
 */
export async function fetchSnapshotObjects(
  v: Versioning,
  remoteUrl: (missing: number) => Promise<string>,
  snapshotId: ObjectId,
  paths: readonly string[],
  onProgress?: (p: FetchProgress) => void,
): Promise<FetchReport> {
  const started = performance.now();
  const needed = await objectsUnder(v, snapshotId, paths);
  const missing = await missingLocally(v, needed);
  const report = (remote: string, fetched: number, bytes: number): FetchReport => ({
    remote,
    snapshot: snapshotId,
    needed: needed.size,
    present: needed.size - missing.length,
    fetched,
    bytes,
    seconds: (performance.now() - started) / 1000,
  });
  if (missing.length === 0) return report('', 0, 0);
  const backend = await openBackend(await remoteUrl(missing.length));
  try {
    const remote = await RemoteRepository.open(backend, v.keys);
    try {
      const absent = missing.filter((id) => !remote.has('object', id));
      if (absent.length > 0) {
        throw new DvfsError('E_NOTFOUND', `${absent.length} object(s) of snapshot ${snapshotId.slice(0, 12)} are neither stored locally nor on remote ${remote.location}`, {
          hint: 'push them from a repository that has them, or restore another snapshot',
        });
      }
      const got = await downloadObjects(v, remote, missing, onProgress);
      return report(remote.location, got.objects, got.bytes);
    } finally {
      remote.close();
    }
  } finally {
    await backend.close();
  }
}
