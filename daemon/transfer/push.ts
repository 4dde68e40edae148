/**
 * `dvfs push`: what the remote lacks of HEAD's history — snapshot and tree manifests (already sealed, sent
 * as they are stored) and file objects (working-format ciphertext) — goes up packed and sealed
 * (daemon/remote), then the volume config (password-wrapped key, with a MAC) and the remote's HEAD ref.
 * The remote's index says what it has, so a second push of the same history uploads nothing, and a push
 * interrupted half-way sends only the rest next time: every few seconds (and every four packs' worth of
 * uploads) the index records of finished uploads are written as a checkpoint, so a resumed push skips them.
 * Packs uploaded after the last checkpoint are sent again; the unindexed copies are garbage on the remote.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DvfsError } from '../errors.js';
import { deriveRemoteKeys, wipeRemoteKeys } from '../remote/keys.js';
import { pushKeyring } from '../keys/remote-epochs.js';
import { openBackend } from '../remote/open-backend.js';
import { RemoteRepository } from '../remote/repository.js';
import { putVolumeConfig } from '../remote/volume.js';
import type { ObjectId } from '../store/object-id.js';
import { walkReachable } from '../store/gc.js';
import { IdTable } from '../store/id-table.js';
import { readHead } from '../store/refs.js';
import type { Versioning } from '../versioning/context.js';
import { failpoint } from '../versioning/failpoint.js';
import { statAll } from '../util/stat-all.js';
import { ReadAhead } from './read-ahead.js';

/** The volume's own config file at the root of the working tree (what a clone needs to unlock). */
export const VOLUME_CONFIG_FILES = ['.encfs6.xml', '.dvfs-native.json'] as const;

export interface PushReport {
  remote: string;
  snapshot: ObjectId;
  manifests: number;
  objects: number;
  /** Blobs (manifests + objects) the remote already had. */
  skipped: number;
  packs: number;
  largeBlobs: number;
  /** Bytes uploaded (packs, large blobs; not index files or config). */
  bytesSent: number;
  /** Local bytes of the blobs sent. */
  bytesRead: number;
  /** Index checkpoints written during the push (an interrupted push resumes after the last one). */
  checkpoints: number;
  seconds: number;
}

export interface PushProgress {
  blobs: number;
  totalBlobs: number;
  bytes: number;
  totalBytes: number;
}

export interface PushOptions {
  connections?: number;
  /** Pack size of a remote created by this push (an existing remote keeps its own). */
  packSize?: number;
  /** Index checkpoint interval (default 5 s, or every 4 packs' worth of uploads, whichever comes first). */
  checkpointMs?: number;
  onProgress?: (p: PushProgress) => void;
}

const CHECKPOINT_MS = 5000;
/** Sizes of the local files of blobs to push (every one must exist: it is reachable from HEAD). */
async function sizesOf(count: number, pathOf: (i: number) => string): Promise<Float64Array> {
  const sizes = new Float64Array(count);
  // Stat'ed in slices: a million Stats objects at once would cost more memory than the whole push.
  for (let start = 0; start < count; start += SIZE_SLICE) {
    const paths = Array.from({ length: Math.min(SIZE_SLICE, count - start) }, (_, j) => pathOf(start + j));
    const stats = await statAll(paths);
    for (const [j, st] of stats.entries()) {
      if (st === null) throw new DvfsError('E_INTEGRITY', 'a stored object or manifest that HEAD needs is missing', { path: paths[j], hint: 'dvfs verify REPO names what is damaged; dvfs fetch REPO gets objects a clone has not fetched yet' });
      sizes[start + j] = st.size;
    }
  }
  return sizes;
}

const SIZE_SLICE = 4096;

export async function push(v: Versioning, url: string, options: PushOptions = {}): Promise<PushReport> {
  const started = performance.now();
  const head = await readHead(v.repo.root);
  if (head === null) throw new DvfsError('E_NOTFOUND', 'nothing to push: no snapshot yet', { path: v.repo.root, hint: 'dvfs commit REPO first' });
  const backend = await openBackend(url);
  // The key slots and the remote's config and index are independent reads: one round trip for both.
  const [slots, opened] = await Promise.allSettled([
    pushKeyring(backend, v.repo.root),
    RemoteRepository.openOrInit(
      backend,
      v.keys,
      options.packSize === undefined ? {} : { packSize: options.packSize },
      options.connections === undefined ? {} : { connections: options.connections },
    ),
  ]);
  if (opened.status === 'rejected') {
    await backend.close();
    throw slots.status === 'rejected' ? slots.reason : opened.reason;
  }
  if (slots.status === 'rejected') {
    opened.value.close();
    await backend.close();
    throw slots.reason;
  }
  const remote = opened.value;
  const lock = await remote.lock({ purpose: 'push' });
  lock.keepFresh();
  const keys = deriveRemoteKeys(v.keys);
  // Beside the uploads: the volume config (what a clone unlocks with) goes up and the remote's ref is read.
  // Both are awaited before the ref is written, and before the lock is released whatever happens.
  const beside = Promise.all([
    Promise.all(
      VOLUME_CONFIG_FILES.map(async (fileName) => {
        const data = await readFile(join(v.tree.root, fileName)).catch(() => null);
        if (data) await putVolumeConfig(backend, keys, { fileName, data });
      }),
    ),
    remote.readRef(),
  ]);
  beside.catch(() => undefined);
  try {
    // What the remote lacks, in upload order: manifests (small) first, then objects. Objects are kept as
    // IdTable rows (~50 bytes each), not id strings in Sets and arrays (~300): a push of 10^6 files holds
    // every object it will send from the start. No local path per blob either (made when needed).
    const objectTable = new IdTable(0);
    const OBJECT = 1;
    const { snapshots, trees } = await walkReachable(v.manifests, [head], (id) => objectTable.add(OBJECT, id));
    const manifestIds: ObjectId[] = [];
    let skipped = 0;
    for (const id of [...snapshots, ...trees]) {
      if (remote.has('manifest', id)) skipped++;
      else manifestIds.push(id);
    }
    const objectRows = new Uint32Array(objectTable.size);
    let objectCount = 0;
    for (let row = 0; row < objectTable.size; row++) {
      if (remote.has('object', objectTable.id(row))) skipped++;
      else objectRows[objectCount++] = row;
    }
    const total = manifestIds.length + objectCount;
    const wanted = (i: number): { type: 'manifest' | 'object'; id: ObjectId } =>
      i < manifestIds.length ? { type: 'manifest', id: manifestIds[i] as ObjectId } : { type: 'object', id: objectTable.id(objectRows[i - manifestIds.length] as number) };
    const pathOf = (i: number): string => {
      const w = wanted(i);
      return w.type === 'manifest' ? v.manifests.path(w.id) : v.objects.path(w.id);
    };
    const sizes = await sizesOf(total, pathOf);
    const progress: PushProgress = { blobs: 0, totalBlobs: total, bytes: 0, totalBytes: sizes.reduce((a, b) => a + b, 0) };
    options.onProgress?.(progress);
    const checkpointMs = options.checkpointMs ?? CHECKPOINT_MS;
    const checkpointBytes = 4 * remote.config.packSize;
    let lastCheckpoint = { at: performance.now(), bytes: 0 };
    let checkpoints = 0;
    let manifests = 0;
    let objects = 0;
    const ahead = new ReadAhead((i) => ((sizes[i] as number) <= remote.config.largeThreshold ? pathOf(i) : null), sizes);
    for (let i = 0; i < total; i++) {
      const w = wanted(i);
      const data = await ahead.take(i);
      if (await (data === null ? remote.putFile(w.type, w.id, pathOf(i)) : remote.put(w.type, w.id, data))) {
        if (w.type === 'manifest') manifests++;
        else objects++;
      } else skipped++;
      progress.blobs++;
      progress.bytes += sizes[i] as number;
      options.onProgress?.(progress);
      const now = performance.now();
      if (remote.unindexed > 0 && (now - lastCheckpoint.at >= checkpointMs || remote.bytesUploaded - lastCheckpoint.bytes >= checkpointBytes)) {
        await remote.checkpoint();
        lastCheckpoint = { at: now, bytes: remote.bytesUploaded };
        failpoint(`push:checkpoint-${++checkpoints}`);
      }
    }
    const flushed = await remote.flush();
    const [, previous] = await beside;
    if (previous?.snapshot !== head) await remote.writeRef(head);
    return {
      remote: remote.location,
      snapshot: head,
      manifests,
      objects,
      skipped,
      packs: flushed.packs,
      largeBlobs: flushed.blobs,
      bytesSent: flushed.bytes,
      bytesRead: progress.bytes,
      checkpoints,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await beside.catch(() => undefined);
    wipeRemoteKeys(keys);
    await lock.release().catch(() => undefined);
    remote.close();
    await backend.close();
  }
}
