// Helpers for the journal and index tests: a StreamingHash over node:crypto and temporary directories.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import type { SessionMeta } from '../../daemon/journal/journal.js';
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

/** Session metadata for journals made by tests. */
export const TEST_META: SessionMeta = {
  sessionId: 's1',
  repoId: 'repo-1',
  mountpoint: '/mnt/x',
  startedAt: '2025-01-01T00:00:00.000Z',
  baseSnapshot: null,
  host: 'h',
  pid: 1,
};
