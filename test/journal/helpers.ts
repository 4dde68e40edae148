// Helpers for the journal and index tests: a StreamingHash over node:crypto and temporary directories.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { StreamingHash } from '../../daemon/journal/write-hasher.js';

/** sha256 in the StreamingHash shape (the daemon uses keyed BLAKE2b-256; any streaming hash will do here). */
export function sha256Stream(): StreamingHash {
  const h = createHash('sha256');
  return { update: (b) => void h.update(b), digest: () => h.digest('hex') };
}

export const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A fresh temporary directory, removed when the test ends. */
export async function tempDir(t: Test, name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `dvfs-${name}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
