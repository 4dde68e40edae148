/**
 * `dvfs push`: what the remote lacks of HEAD's history — snapshot and tree manifests (already sealed, sent
 * as they are stored) and file objects (working-format ciphertext) — goes up packed and sealed
 * (daemon/remote), then the volume config (password-wrapped key, with a MAC) and the remote's HEAD ref.
 * The remote's index says what it has, so a second push of the same history uploads nothing, and a push
 * interrupted half-way sends only the rest next time (packs flushed before the interruption are indexed).
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
import { reachableFrom } from '../store/gc.js';
import { readHead } from '../store/refs.js';
import type { Versioning } from '../versioning/context.js';

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
  bytesSent: number;
  seconds: number;
}

export async function push(v: Versioning, url: string, options: { connections?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<PushReport> {
  const started = performance.now();
  const head = await readHead(v.repo.root);
  if (head === null) throw new DvfsError('E_NOTFOUND', 'nothing to push: no snapshot yet', { path: v.repo.root, hint: 'dvfs commit REPO first' });
  const reach = await reachableFrom(v.manifests, [head]);
  const backend = await openBackend(url);
  await pushKeyring(backend, v.repo.root).catch(async (e: unknown) => {
    await backend.close();
    throw e;
  });
  const remote = await RemoteRepository.openOrInit(backend, v.keys, {}, options.connections === undefined ? {} : { connections: options.connections });
  const lock = await remote.lock({ purpose: 'push' });
  lock.keepFresh();
  const keys = deriveRemoteKeys(v.keys);
  try {
    const manifests = [...reach.snapshots, ...reach.trees];
    const total = manifests.length + reach.objects.size;
    let done = 0;
    let sent = 0;
    let skipped = 0;
    for (const id of manifests) {
      if (await remote.putFile('manifest', id, v.manifests.path(id))) sent++;
      else skipped++;
      options.onProgress?.(++done, total);
    }
    const sentManifests = sent;
    for (const id of reach.objects) {
      if (await remote.putFile('object', id, v.objects.path(id))) sent++;
      else skipped++;
      options.onProgress?.(++done, total);
    }
    const flushed = await remote.flush();
    for (const fileName of VOLUME_CONFIG_FILES) {
      const data = await readFile(join(v.tree.root, fileName)).catch(() => null);
      if (data) await putVolumeConfig(backend, keys, { fileName, data });
    }
    const previous = await remote.readRef();
    if (previous?.snapshot !== head) await remote.writeRef(head);
    return {
      remote: remote.location,
      snapshot: head,
      manifests: sentManifests,
      objects: sent - sentManifests,
      skipped,
      packs: flushed.packs,
      largeBlobs: flushed.blobs,
      bytesSent: flushed.bytes,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    wipeRemoteKeys(keys);
    await lock.release().catch(() => undefined);
    remote.close();
    await backend.close();
  }
}
