/** Stat'ing many files without one round trip after another or thousands in flight at once. */
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import { isNodeError } from '../errors.js';

/** Stats in flight at once. */
const STAT_BATCH = 64;

function isNotFound(e: unknown): boolean {
  return isNodeError(e) && e.code === 'ENOENT';
}

/** stat() of every path, in order, STAT_BATCH at a time; null for a path that does not exist (other errors throw). */
export async function statAll(paths: readonly string[]): Promise<Array<Stats | null>> {
  const out = new Array<Stats | null>(paths.length);
  for (let i = 0; i < paths.length; i += STAT_BATCH) {
    const batch = paths.slice(i, i + STAT_BATCH);
    const stats = await Promise.all(batch.map((p) => stat(p).catch((e: unknown) => (isNotFound(e) ? null : Promise.reject(e)))));
    for (let j = 0; j < stats.length; j++) out[i + j] = stats[j] ?? null;
  }
  return out;
}
