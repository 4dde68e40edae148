/**
 * Checks a copy of a stage's payload (a restored clone) against the payload itself, regenerated from its
 * seed (payload.ts): every file present, byte-identical, and nothing else below the stage directory but
 * done.json. Throws naming the first file that differs.
 */
import { open, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { DONE_FILE, payloadChunks, payloadPath, type StageSpec } from './payload.js';

export class PayloadMismatch extends Error {
  override name = 'PayloadMismatch';
}

async function sameBytes(path: string, spec: StageSpec, rank: number, file: number): Promise<string | null> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    return `cannot open: ${(e as Error).message}`;
  }
  try {
    const size = (await fh.stat()).size;
    if (size !== spec.fileSize) return `size ${size}, expected ${spec.fileSize}`;
    let pos = 0;
    for (const want of payloadChunks(spec, rank, file)) {
      const got = Buffer.alloc(want.length);
      const { bytesRead } = await fh.read(got, 0, want.length, pos);
      if (bytesRead !== want.length || !got.equals(want)) return `content differs in bytes ${pos}..${pos + want.length}`;
      pos += want.length;
    }
    return null;
  } finally {
    await fh.close();
  }
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => !e.isDirectory()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

/** Compares `dir` (one stage's directory) with the payload `spec` describes; returns the bytes checked. */
export async function checkStagePayload(dir: string, spec: StageSpec): Promise<number> {
  const expected = new Set<string>([DONE_FILE]);
  for (let rank = 0; rank < spec.ranks; rank++) {
    for (let f = 0; f < spec.filesPerRank; f++) {
      const rel = payloadPath(rank, f);
      expected.add(rel);
      const problem = await sameBytes(join(dir, rel), spec, rank, f);
      if (problem !== null) throw new PayloadMismatch(`${join(dir, rel)}: ${problem}`);
    }
  }
  const present = await listFiles(dir);
  const extra = present.filter((p) => !expected.has(p));
  if (extra.length > 0) throw new PayloadMismatch(`${dir}: unexpected file(s) ${extra.slice(0, 3).join(', ')}${extra.length > 3 ? ` and ${extra.length - 3} more` : ''}`);
  if (!present.includes(DONE_FILE)) throw new PayloadMismatch(`${join(dir, DONE_FILE)}: missing`);
  return spec.ranks * spec.filesPerRank * spec.fileSize;
}
