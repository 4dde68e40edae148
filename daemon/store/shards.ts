/**
 * The sharded directory layout shared by objects and manifests: the file for id `abcd…` (64 hex) lives at
 * `<base>/ab/cd…` (2 + 62 characters), so no directory grows past 256 entries at the top level. `<base>/tmp`
 * holds in-flight writes, which are never valid ids.
 */
import { readdir, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import { isObjectId, type ObjectId } from './content-hash.js';

export const TMP_DIR = 'tmp';
const SHARD_RE = /^[0-9a-f]{2}$/;

export function shardDir(base: string, id: ObjectId): string {
  return join(base, id.slice(0, 2));
}

/** The file of `id` under `base`; refuses anything that is not an object id (no path tricks). */
export function shardPath(base: string, id: ObjectId): string {
  if (!isObjectId(id)) throw new DvfsError('E_USAGE', `not an object id: ${JSON.stringify(String(id).slice(0, 80))}`);
  return join(base, id.slice(0, 2), id.slice(2));
}

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return [];
    throw e;
  }
}

/** Every id stored under `base` (in no particular order); anything else found there is skipped. */
export async function* listShardIds(base: string): AsyncGenerator<ObjectId> {
  for (const shard of (await entries(base)).sort()) {
    if (!SHARD_RE.test(shard)) continue;
    for (const rest of (await entries(join(base, shard))).sort()) {
      const id = shard + rest;
      if (isObjectId(id)) yield id;
    }
  }
}

/** Deletes one stored file; false when it was not there. */
export async function removeIfPresent(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return false;
    throw e;
  }
}

/** Leftovers of interrupted writes in a store's temp directory (absolute paths, sorted). */
export async function listTemp(tmpDir: string): Promise<string[]> {
  try {
    return (await readdir(tmpDir)).sort().map((name) => join(tmpDir, name));
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return [];
    throw e;
  }
}

/** Removes the leftovers of interrupted writes; returns how many. Run it under the repository lock. */
export async function cleanTempDir(tmpDir: string): Promise<number> {
  const files = await listTemp(tmpDir);
  for (const f of files) await rm(f, { force: true, recursive: true });
  return files.length;
}
