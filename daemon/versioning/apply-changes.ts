/**
 * Carrying a set of changes (a journal summary, or what a rescan found) into the repository index and the
 * object store: subtree moves and removals first (journal/apply-plan.ts), then each new or changed entry is
 * looked at on disk once — a file's hash comes from the journal when it was computed while the file was
 * written, and is computed here only for files written out of order or changed behind dvfs's back — and its
 * ciphertext is filed under that hash (deduplicated: an id already stored adds nothing).
 */
import { lstat, readlink } from 'node:fs/promises';
import { lstatSync, type Stats } from 'node:fs';
import { isNodeError } from '../errors.js';
import { applyPlan, STAGE_DIR, type ApplyStep } from '../journal/apply-plan.js';
import type { SummaryEntry } from '../journal/journal.js';
import type { SummarySource } from '../journal/summary-stream.js';
import type { IndexEntry, IndexOp, RepoIndex } from '../index/repo-index.js';
import { isObjectId, type ObjectId } from '../store/content-hash.js';
import type { Versioning } from './context.js';
import { markAncestors } from './tree-builder.js';
import { hashWorkingFile, storeWorkingFile } from './working-files.js';

export interface ApplyCounters {
  /** Files whose content entered this snapshot (hashed while written, or here). */
  filesHashed: number;
  bytesHashed: number;
  /** Of those, files read back and hashed at commit time. */
  filesRehashed: number;
  bytesRehashed: number;
  objectsAdded: number;
  bytesStored: number;
  objectsLinked: number;
  /** Changes to files still open for writing (or written during the commit), left for the next commit. */
  leftOpen: number;
  /** Special files (fifos, sockets, devices): not versioned. */
  skipped: number;
  /** Change of the snapshot's file count and plaintext bytes. */
  filesDelta: number;
  bytesDelta: number;
}

export interface ApplyResult extends ApplyCounters {
  /** Opaque paths of directories whose trees must be re-encoded. */
  dirty: Set<string>;
  /** Opaque paths of the files left open (see `leftOpen`): the caller must carry them to the next commit. */
  leftOpenPaths: string[];
}

export type Progress = (done: number, total: number) => void;

export async function applyChanges(
  v: Versioning,
  index: RepoIndex,
  summary: SummarySource,
  options: {
    /** A running mount: is the file at (opaque, plain) path being written, or written since the summary? */
    changedNow?: (opaquePath: string, plainPath: string) => boolean;
    onProgress?: Progress;
    /** Entries looked up in the index together and applied per batch (default 1 000). */
    chunk?: number;
  } = {},
): Promise<ApplyResult> {
  const r: ApplyResult = {
    dirty: new Set(['/']),
    leftOpenPaths: [],
    filesHashed: 0,
    bytesHashed: 0,
    filesRehashed: 0,
    bytesRehashed: 0,
    objectsAdded: 0,
    bytesStored: 0,
    objectsLinked: 0,
    leftOpen: 0,
    skipped: 0,
    filesDelta: 0,
    bytesDelta: 0,
  };
  const changedNow = options.changedNow ?? ((): boolean => false);
  const chunk = Math.max(1, options.chunk ?? 1000);
  // A summary in memory follows its plan (moves and removals first); a streamed one holds only puts, applied
  // as they are read, so no step or entry outlives its batch.
  const planned = summary.inMemory === null ? null : applyPlan(summary.inMemory);
  const steps: Iterable<ApplyStep> | AsyncIterable<ApplyStep> = planned ?? putSteps(summary);
  const dirtyPath = (p: string): void => {
    if (!p.startsWith(STAGE_DIR)) markAncestors(r.dirty, p);
  };
  let ops: IndexOp[] = [];
  const flushOps = async (): Promise<void> => {
    if (ops.length > 0) await index.batch(ops);
    ops = [];
  };
  const puts = planned === null ? summary.size : planned.filter((s) => s.op === 'put').length;
  let done = 0;
  // Consecutive puts are looked up in the index together (one getMany per batch, not one get per entry).
  let pending: SummaryEntry[] = [];
  const putPending = async (): Promise<void> => {
    const batch = pending.filter((e) => !e.path.startsWith(STAGE_DIR) && e.path !== '/');
    pending = [];
    if (batch.length === 0) return;
    const olds = await index.getMany(batch.map((e) => e.path));
    for (const [i, e] of batch.entries()) {
      // Synchronous lstat/link inside: measured faster than overlapping them on the thread pool.
      const op = await entryOp(v, index, e, olds[i], r, changedNow);
      if (op === LEFT_OPEN) {
        r.leftOpenPaths.push(e.path);
        continue;
      }
      if (op) ops.push(op);
      dirtyPath(e.path);
      if (e.kind === 'dir' || (op?.type === 'put' && op.entry.kind === 'dir')) r.dirty.add(e.path);
      options.onProgress?.(++done, puts);
    }
    if (ops.length >= 2 * chunk) await flushOps();
  };
  for await (const step of steps) {
    if (step.op === 'put') {
      pending.push(step.entry);
      if (pending.length >= chunk) await putPending();
      continue;
    }
    await putPending();
    await flushOps();
    if (step.op === 'move') {
      try {
        await index.rename(step.from, step.to);
      } catch (e) {
        if (!(e instanceof Error && 'code' in e && (e as { code: string }).code === 'E_NOTFOUND')) throw e;
      }
      dirtyPath(step.from);
      dirtyPath(step.to);
    } else {
      await subtractSubtree(index, step.path, r);
      await index.remove(step.path);
      dirtyPath(step.path);
    }
  }
  await putPending();
  await flushOps();
  // Every directory above a change must be in the index to be listed by its parent: one made without a
  // record (mkdir -p by dvfs put, or behind dvfs's back) is added now; one that is gone is no longer dirty.
  const missing: IndexOp[] = [];
  for (const d of [...r.dirty]) {
    if (d === '/' || (await index.get(d)) !== undefined) continue;
    const st = await lstat((await v.tree.locate(v.paths.decodePath(d))).rawPath).catch(() => null);
    if (st?.isDirectory()) missing.push({ type: 'put', path: d, entry: { kind: 'dir', tree: null, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs } });
    else r.dirty.delete(d);
  }
  if (missing.length > 0) await index.batch(missing);
  return r;
}

async function* putSteps(summary: SummarySource): AsyncGenerator<ApplyStep> {
  for await (const entry of summary.entries()) yield { op: 'put', entry };
}

/** The index operation that records entry `e` as it is on disk now (null: leave the index alone). */
/** entryOp's answer for a file open for writing: left for the next commit. */
const LEFT_OPEN = Symbol('left open');

async function entryOp(
  v: Versioning,
  index: RepoIndex,
  e: SummaryEntry,
  old: IndexEntry | undefined,
  r: ApplyCounters,
  changedNow: (opaquePath: string, plainPath: string) => boolean,
): Promise<IndexOp | null | typeof LEFT_OPEN> {
  const plain = v.paths.decodePath(e.path);
  const loc = await v.tree.locate(plain);
  let st: Stats;
  try {
    st = lstatSync(loc.rawPath);
  } catch (err) {
    if (isNodeError(err) && (err.code === 'ENOENT' || err.code === 'ENOTDIR')) {
      // Gone since (a later session removed it): drop it from the index.
      await subtractSubtree(index, e.path, r);
      await index.remove(e.path);
      return null;
    }
    throw err;
  }
  if (old?.kind === 'file') {
    r.filesDelta--;
    r.bytesDelta -= old.size;
  }
  if (st.isDirectory()) {
    if (old && old.kind !== 'dir') await index.remove(e.path);
    return { type: 'put', path: e.path, entry: { kind: 'dir', tree: null, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs } };
  }
  if (st.isSymbolicLink()) {
    const stored = await readlink(loc.rawPath);
    const size = Buffer.byteLength(v.tree.decodeLinkTarget(stored));
    if (old?.kind === 'dir') await subtractAndRemoveBelow(index, e.path, r);
    return { type: 'put', path: e.path, entry: { kind: 'symlink', object: stored, size, mtimeMs: st.mtimeMs } };
  }
  if (!st.isFile()) {
    r.skipped++;
    if (old) await index.remove(e.path);
    return null;
  }
  if (old?.kind === 'dir') await subtractAndRemoveBelow(index, e.path, r);
  const size = v.tree.plainSize(st, loc);
  let id: ObjectId;
  if (e.hash !== null && !e.dirty && isObjectId(e.hash) && e.size === size) {
    id = e.hash;
  } else if (old?.kind === 'file' && sameRaw(old, st) && old.size === size && !e.content) {
    id = old.object as ObjectId; // metadata-only change of an unchanged file
  } else {
    const h = await hashWorkingFile(v, loc);
    id = h.id;
    r.filesRehashed++;
    r.bytesRehashed += h.bytes;
  }
  // A running mount's writers are checked here, in the same synchronous stretch as the hard link
  // (storeWorkingFile links before its first await): a file opened for writing after this check sees the
  // new link (nlink > 1) and is copied before it changes; one open now, or changed since the summary was
  // taken (its content may no longer be what `id` names), is left for the next commit.
  if (changedNow(e.path, plain)) {
    r.leftOpen++;
    // The index keeps the committed version: it stays in the snapshot's counts (subtracted above).
    if (old?.kind === 'file') {
      r.filesDelta++;
      r.bytesDelta += old.size;
    }
    return LEFT_OPEN;
  }
  r.filesHashed++;
  r.bytesHashed += size;
  const added = await storeWorkingFile(v, loc, id, st.size);
  if (added.added) {
    r.objectsAdded++;
    r.bytesStored += added.bytes;
    if (added.linked) r.objectsLinked++;
  }
  // Linking changes ctime only: the stat a rescan compares (ino, size, mtime) is the one taken above.
  r.filesDelta++;
  r.bytesDelta += size;
  const entry: IndexEntry = { kind: 'file', object: id, size, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, raw: { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs } };
  return { type: 'put', path: e.path, entry };
}

export function sameRaw(entry: { raw: { ino: number; size: number; mtimeMs: number } }, st: Stats): boolean {
  return entry.raw.ino === st.ino && entry.raw.size === st.size && entry.raw.mtimeMs === st.mtimeMs;
}

async function subtractSubtree(index: RepoIndex, path: string, r: ApplyCounters): Promise<void> {
  const self = await index.get(path);
  if (self?.kind === 'file') {
    r.filesDelta--;
    r.bytesDelta -= self.size;
  }
  if (self === undefined || self.kind === 'dir') await subtractBelow(index, path, r);
}

async function subtractBelow(index: RepoIndex, path: string, r: ApplyCounters): Promise<void> {
  for await (const { entry } of index.iterateBelow(path)) {
    if (entry.kind === 'file') {
      r.filesDelta--;
      r.bytesDelta -= entry.size;
    }
  }
}

async function subtractAndRemoveBelow(index: RepoIndex, path: string, r: ApplyCounters): Promise<void> {
  await subtractBelow(index, path, r);
  await index.remove(path);
}
