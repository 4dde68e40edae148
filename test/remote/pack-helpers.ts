// Shared setup for the pack/remote-repository tests: repository keys from a fixed secret, a throwaway file://
// remote, and random blobs whose sizes are drawn from a seeded PRNG (contents from the system RNG: fast).
import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBackend } from '../../daemon/remote/file-backend.js';
import { hashBuffer, type ObjectId } from '../../daemon/store/content-hash.js';
import { deriveRepoKeys, wipeRepoKeys, type RepoKeys } from '../../daemon/store/keys.js';
import { rng, type Rng } from '../helpers/rng.js';
import { errorOf } from '../helpers/errors.js';
export { errorOf };

export const SECRET = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
export const OTHER_SECRET = Buffer.from(Array.from({ length: 32 }, (_, i) => 255 - i));

export function repoKeys(t: Test, secret: Buffer = SECRET): RepoKeys {
  const keys = deriveRepoKeys(secret);
  t.teardown(() => wipeRepoKeys(keys));
  return keys;
}

export async function tempDir(t: Test, prefix = 'dvfs-pack-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function tempRemote(t: Test): Promise<FileBackend> {
  // No fsync: these remotes are thrown away (and a benchmark may be running).
  return new FileBackend(join(await tempDir(t), 'remote'), { fsync: false });
}

export interface TestBlob {
  id: ObjectId;
  data: Buffer;
}

/** A blob of `size` random bytes, named by its keyed hash (as a stored object would be). */
export function blobOf(keys: RepoKeys, size: number): TestBlob {
  const data = randomBytes(size);
  return { id: hashBuffer(keys.contentHash, data), data };
}

/** `n` random blobs with sizes in 0..max, most of them small (like a tree of files). */
export function randomBlobs(keys: RepoKeys, r: Rng, n: number, max: number): TestBlob[] {
  const out: TestBlob[] = [];
  for (let i = 0; i < n; i++) {
    const kind = r.int(10);
    const size = kind < 6 ? r.int(4096) : kind < 9 ? r.int(256 * 1024) : r.int(max + 1);
    out.push(blobOf(keys, i === 0 ? 0 : i === 1 ? max : size));
  }
  return out;
}

export function seeded(t: Test, fallback: number): Rng {
  const seed = Number(process.env.DVFS_TEST_SEED ?? fallback);
  t.comment(`seed ${seed} (DVFS_TEST_SEED reproduces)`);
  return rng(seed);
}


export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
