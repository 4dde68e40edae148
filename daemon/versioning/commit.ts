/**
 * `dvfs commit`: a snapshot from what changed.
 *
 * The changes come from a session journal (what the mount saw, with content hashes taken while files were
 * written) or from a rescan (a stat comparison of the working tree against the index). Under the repository
 * lock, a commit: brings the index to HEAD (index-recovery.ts), refuses changes that collide with what other
 * sessions committed since this session's base, applies the changes to the index and the object store
 * (apply-changes.ts), re-encodes the trees above them (tree-builder.ts), writes the snapshot manifest, makes
 * everything durable (one syncfs), names the snapshot in the index, moves HEAD, and marks the journal.
 * A crash anywhere leaves HEAD at the previous or the new snapshot; the next commit finishes or redoes it.
 */
import { execFile } from 'node:child_process';
import { hostname, userInfo } from 'node:os';
import { promisify } from 'node:util';
import { DvfsError } from '../errors.js';
import { join } from 'node:path';
import type { SessionJournal, SummaryEntry } from '../journal/journal.js';
import { memorySource, summarizeForCommit, type SummarySource } from '../journal/summary-stream.js';
import { RepoIndex } from '../index/repo-index.js';
import type { Logger } from '../log.js';
import type { ObjectId } from '../store/content-hash.js';
import { withRepoLock } from '../store/lock.js';
import { makeTree, type Provenance, type SessionMark, type Snapshot, type SnapshotStats } from '../store/manifest-schema.js';
import { readHead, writeHead } from '../store/refs.js';
import { applyChanges, type Progress } from './apply-changes.js';
import type { Versioning } from './context.js';
import { bringIndexToHead } from './index-recovery.js';
import { rescanChanges } from './rescan.js';
import { SnapshotReader } from './snapshot-walk.js';
import { buildTrees } from './tree-builder.js';
import { explainNoSpace } from '../util/no-space.js';
import { failpoint } from './failpoint.js';

export interface CommitRequest {
  message?: string;
  author?: string;
  provenance?: Provenance;
  /** Keep this session's version of paths another session changed since the common base. */
  force?: boolean;
  /** Wait this long for the repository lock held by another commit (default 60 s). */
  lockWaitMs?: number;
  onProgress?: Progress;
  log?: Logger;
  /** Make a snapshot even when nothing changed (a stage run or reuse is history worth recording). */
  allowEmpty?: boolean;
  /**
   * A session with more uncommitted records than this has its summary streamed in path order from a
   * scratch LevelDB instead of held in memory (only sessions without renames and removals; default 20 000,
   * or DVFS_COMMIT_STREAM_ABOVE).
   */
  streamAbove?: number;
  /** Changed entries looked up in the index and applied per batch (default 1 000, or DVFS_COMMIT_CHUNK). */
  chunk?: number;
}

/** A positive integer from the environment (tests and benchmarks tune commit's batching with it). */
function envCount(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new DvfsError('E_USAGE', `${name} must be a whole number >= 0, not '${v}'`);
  return n;
}

/** What a running mount tells commit (absent after unmount). */
export interface LiveMount {
  /** Plaintext paths ('/a/b') of files open for writing right now: left for the next commit. */
  openForWrite(): Set<string>;
  /** Called once working files were linked into the store: every open file must re-check before writing. */
  filesLinked(): void;
}

export interface CommitReport {
  snapshot: string | null;
  parent: string | null;
  session: string | null;
  nothingToCommit: boolean;
  /** Entries (files, directories, symlinks) added, changed, renamed and removed. */
  added: number;
  changed: number;
  renamed: number;
  removed: number;
  /** Files and plaintext bytes in the new snapshot (0 when nothing was committed). */
  files: number;
  bytes: number;
  /** Files whose new content entered the snapshot, and their bytes (hashed while written, or at commit). */
  filesHashed: number;
  bytesHashed: number;
  /** Of those, read back from disk and hashed by this commit (written out of order, or behind dvfs's back). */
  filesRehashed: number;
  bytesRehashed: number;
  objectsAdded: number;
  objectsLinked: number;
  bytesStored: number;
  trees: number;
  leftOpen: number;
  skipped: number;
  seconds: number;
  /** Where the time went, in seconds: summary (reading journals, index recovery), apply (index and store), trees, snapshot (manifest, sync, HEAD). */
  phases?: { summary: number; apply: number; trees: number; snapshot: number };
}

/** One set of changes to commit. */
interface ChangeSource {
  summary: SummarySource;
  session: string | null;
  seq?: number;
  /** The session's lifetime (null end: still running). Absent for a rescan, which has no lifetime. */
  lifetime?: { startedAt: string; finishedAt: string | null };
  /** The snapshot the changes were made on (conflicts are checked against what was committed since). */
  base: ObjectId | null;
  /** The journal the changes come from (a running mount's: writes after `seq` mean a file changed since). */
  journal?: SessionJournal;
}

const pexecFile = promisify(execFile);

/** Commits the uncommitted records of a session journal (the daemon's own, or an ended one). */
export async function commitJournal(v: Versioning, journal: SessionJournal, request: CommitRequest, live?: LiveMount): Promise<CommitReport> {
  return commitJournals(v, [journal], request, live);
}

/**
 * Commits several session journals (oldest first) as one snapshot. Paths changed by two of them, or by one
 * of them and by a commit since its base, are a conflict (see refuseConflicts).
 */
export async function commitJournals(v: Versioning, journals: readonly SessionJournal[], request: CommitRequest, live?: LiveMount): Promise<CommitReport> {
  const started = performance.now();
  for (const j of journals) await j.flush();
  const label = journals.map((j) => j.info.sessionId).join(',') || null;
  // Nothing recorded since the last commit: answer without the lock or the index (the common no-op).
  if (journals.every((j) => j.lastSeq === j.committedSeq) && request.allowEmpty !== true) return emptyReport(await readHead(v.repo.root), label, started);
  const streamAbove = request.streamAbove ?? envCount('DVFS_COMMIT_STREAM_ABOVE') ?? 20_000;
  // Writes from here on are remembered per path (a running mount's, during this commit only): any write
  // past the summary taken below is one of them, and such a file is left for the next commit.
  const untrack = journals.map((j) => j.trackWrites());
  try {
    return await locked(v, request, async (index, head) => {
      const sources: ChangeSource[] = [];
      const marks: { journal: SessionJournal; seq: number }[] = [];
      const opened: SummarySource[] = [];
      try {
        for (const [i, journal] of journals.entries()) {
          await catchUpJournal(v, journal, head);
          const summary = await summarizeForCommit(journal, { streamAbove, scratchDir: join(v.metaDir, `commit-scratch-${i}`) });
          opened.push(summary);
          if (summary.toSeq > journal.committedSeq) marks.push({ journal, seq: summary.toSeq });
          if (summary.size === 0) continue;
          sources.push({
            summary,
            session: journal.info.sessionId,
            seq: summary.toSeq,
            lifetime: { startedAt: journal.info.startedAt, finishedAt: journal.stateRecord.finishedAt },
            base: journal.info.baseSnapshot as ObjectId | null,
            journal,
          });
        }
        const report =
          sources.length > 0
            ? await commitChanges(v, index, head, sources, request, live, started)
            : request.allowEmpty === true
              ? await recordUnchanged(v, index, head, request, label, started)
              : emptyReport(head, label, started);
        // Records that changed nothing (or only cancelled out) are done too, once a snapshot exists to name.
        const snapshot = report.snapshot ?? head;
        if (snapshot !== null) {
          for (const [i, m] of marks.entries()) {
            if (i > 0) failpoint('commit:between-journal-marks');
            await m.journal.markCommitted(m.seq, snapshot);
          }
        }
        return report;
      } finally {
        for (const s of opened) await s.close();
      }
    });
  } finally {
    for (const stop of untrack) stop();
  }
}

/**
 * A snapshot of HEAD's tree with `request`'s message and provenance (a stage whose outputs were reused, or
 * that ran and changed nothing): the history records that it happened.
 */
export async function commitUnchanged(v: Versioning, request: CommitRequest): Promise<CommitReport> {
  const started = performance.now();
  return locked(v, request, (index, head) => recordUnchanged(v, index, head, request, null, started));
}

async function recordUnchanged(v: Versioning, index: RepoIndex, head: ObjectId | null, request: CommitRequest, label: string | null, started: number): Promise<CommitReport> {
  const parentSnap = head === null ? null : await v.manifests.getSnapshot(head);
  const tree = parentSnap?.tree ?? (await v.manifests.putTree(makeTree([])));
  const stats: SnapshotStats = { files: parentSnap?.stats.files ?? 0, bytes: parentSnap?.stats.bytes ?? 0, added: 0, changed: 0, removed: 0, bytesHashed: 0 };
  const id = await v.manifests.putSnapshot(newSnapshot(tree, head, request, stats));
  await syncfs(v.repo.root);
  await index.setSnapshot(id);
  await writeHead(v.repo.root, id);
  return { ...emptyReport(id, label, started), parent: head, nothingToCommit: false, files: stats.files, bytes: stats.bytes };
}

/** Commits what a stat comparison of the whole working tree against the index finds. */
export async function commitRescan(v: Versioning, request: CommitRequest): Promise<CommitReport> {
  const started = performance.now();
  return locked(v, request, async (index, head) => {
    const summary = await rescanChanges(v, index);
    if (summary.entries.length === 0 && head !== null) return emptyReport(head, null, started);
    const source = memorySource({ entries: summary.entries, counts: summary.counts, fromSeq: 0, toSeq: 0 });
    return commitChanges(v, index, head, [{ summary: source, session: null, base: head }], request, undefined, started);
  });
}

async function locked(v: Versioning, request: CommitRequest, body: (index: RepoIndex, head: ObjectId | null) => Promise<CommitReport>): Promise<CommitReport> {
  return withRepoLock(v.repo.root, { purpose: 'commit', waitMs: request.lockWaitMs ?? 60_000 }, async () => {
    const index = await RepoIndex.open(v.indexDir);
    try {
      const head = await bringIndexToHead(v, index, request.log);
      return await body(index, head);
    } catch (e) {
      throw explainNoSpace(e, v.repo.root, 'commit');
    } finally {
      await index.close();
    }
  });
}

/**
 * A crash after HEAD moved but before the journal was marked leaves records that are already in a snapshot:
 * find the newest snapshot holding this session (walking back no further than the session's base) and mark
 * the journal up to it.
 */
async function catchUpJournal(v: Versioning, journal: SessionJournal, head: ObjectId | null): Promise<void> {
  let id = head;
  for (let steps = 0; id !== null && id !== journal.info.baseSnapshot && steps < 10_000; steps++) {
    const snap = await v.manifests.getSnapshot(id);
    const mark = snap.sessions?.find((m) => m.id === journal.info.sessionId);
    if (mark) {
      if (mark.seq > journal.committedSeq && mark.seq <= journal.lastSeq) await journal.markCommitted(mark.seq, id);
      return;
    }
    id = snap.parents[0] ?? null;
  }
}

async function commitChanges(
  v: Versioning,
  index: RepoIndex,
  head: ObjectId | null,
  sources: readonly ChangeSource[],
  request: CommitRequest,
  live: LiveMount | undefined,
  started: number,
): Promise<CommitReport> {
  const label = sources.map((s) => s.session).filter((s) => s !== null).join(',') || null;
  const t0 = performance.now();
  if (!request.force) {
    for (let i = 0; i < sources.length; i++) await refuseConflicts(v, sources[i] as ChangeSource, head, sources.slice(0, i));
  }
  const parentSnap = head === null ? null : await v.manifests.getSnapshot(head);
  const dirty = new Set<string>();
  const sum = { filesHashed: 0, bytesHashed: 0, filesRehashed: 0, bytesRehashed: 0, objectsAdded: 0, objectsLinked: 0, bytesStored: 0, leftOpen: 0, skipped: 0, filesDelta: 0, bytesDelta: 0 };
  const counts = { added: 0, changed: 0, renamed: 0, removed: 0 };
  for (const source of sources) {
    const journal = source.journal;
    const seq = source.seq ?? 0;
    const changedNow = live
      ? (opaque: string, plain: string): boolean => live.openForWrite().has(plain) || (journal !== undefined && journal.lastWriteSeq(opaque) > seq)
      : undefined;
    const chunk = request.chunk ?? envCount('DVFS_COMMIT_CHUNK') ?? 1000;
    const applied = await applyChanges(v, index, source.summary, { chunk, ...(changedNow ? { changedNow } : {}), ...(request.onProgress ? { onProgress: request.onProgress } : {}) });
    // A file left open must reach the next commit even if nothing more is written to it: its changes may all be
    // in records this commit marks as committed, and a replaced file's old entry is already gone from the
    // index. One more record for it, after this commit's summary, makes the next commit hash it from disk.
    if (journal !== undefined) for (const p of applied.leftOpenPaths) journal.write(p, { hash: null, size: 0 });
    for (const d of applied.dirty) dirty.add(d);
    for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += applied[k];
    for (const k of Object.keys(counts) as (keyof typeof counts)[]) counts[k] += source.summary.counts[k];
  }
  // Linked working files are in the store now: open files must copy-on-write before their next change.
  live?.filesLinked();
  const t1 = performance.now();
  failpoint('commit:after-apply');
  const { root, trees } = await buildTrees(v, index, dirty);
  const t2 = performance.now();
  const hashed = { filesHashed: sum.filesHashed, bytesHashed: sum.bytesHashed, filesRehashed: sum.filesRehashed, bytesRehashed: sum.bytesRehashed, leftOpen: sum.leftOpen };
  if (parentSnap !== null && root === parentSnap.tree && request.allowEmpty !== true) {
    // Changes that cancel out (a file written back to what it was): no new snapshot.
    await index.setSnapshot(head as ObjectId);
    return { ...emptyReport(head, label, started), ...hashed };
  }
  const stats: SnapshotStats = {
    files: (parentSnap?.stats.files ?? 0) + sum.filesDelta,
    bytes: (parentSnap?.stats.bytes ?? 0) + sum.bytesDelta,
    added: counts.added,
    changed: counts.changed + counts.renamed,
    removed: counts.removed,
    bytesHashed: sum.bytesHashed,
  };
  const snapshot = newSnapshot(root, head, request, stats);
  const marks = sources.flatMap((s): SessionMark[] =>
    s.session !== null && s.seq !== undefined && s.lifetime
      ? [{ id: s.session, seq: s.seq, startedAt: s.lifetime.startedAt, ...(s.lifetime.finishedAt ? { finishedAt: s.lifetime.finishedAt } : {}) }]
      : [],
  );
  if (marks.length > 0) snapshot.sessions = marks;
  const id = await v.manifests.putSnapshot(snapshot);
  failpoint('commit:after-snapshot');
  await syncfs(v.repo.root);
  await index.setSnapshot(id);
  failpoint('commit:after-index');
  await writeHead(v.repo.root, id);
  failpoint('commit:after-head');
  return {
    snapshot: id,
    parent: head,
    session: label,
    nothingToCommit: false,
    ...counts,
    files: stats.files,
    bytes: stats.bytes,
    ...hashed,
    objectsAdded: sum.objectsAdded,
    objectsLinked: sum.objectsLinked,
    bytesStored: sum.bytesStored,
    trees,
    skipped: sum.skipped,
    seconds: (performance.now() - started) / 1000,
    phases: { summary: (t0 - started) / 1000, apply: (t1 - t0) / 1000, trees: (t2 - t1) / 1000, snapshot: (performance.now() - t2) / 1000 },
  };
}

/**
 * Several sessions share one working tree. A session conflicts with another whose lifetime overlapped its
 * own (neither saw the other's result) when both changed the same path: committing the later one would
 * silently undo the earlier. Sessions that ran one after the other never conflict — the later one saw the
 * earlier one's files. Checked against the snapshots committed since this session's base (those holding an
 * overlapping session) and against the sessions merged into this commit before it.
 */
async function refuseConflicts(v: Versioning, source: ChangeSource, head: ObjectId | null, mergedBefore: readonly ChangeSource[]): Promise<void> {
  const life = source.lifetime;
  if (!life) return; // a rescan takes the working tree as it is
  const overlaps = (other: { startedAt: string; finishedAt?: string | null | undefined }): boolean =>
    (other.finishedAt === undefined || other.finishedAt === null || other.finishedAt > life.startedAt) && (life.finishedAt === null || other.startedAt < life.finishedAt);
  const conflicts = new Set<string>();
  // Sessions merged into this same commit.
  for (const other of mergedBefore) {
    if (!other.lifetime || !overlaps(other.lifetime)) continue;
    const theirs = new Set<string>();
    for await (const e of other.summary.entries()) {
      if (dirKept(e)) continue;
      theirs.add(e.path);
      if (e.origin !== null) theirs.add(e.origin);
    }
    for await (const e of source.summary.entries()) {
      if (dirKept(e)) continue;
      for (const p of [e.path, e.origin]) if (p !== null && theirs.has(p)) conflicts.add(v.paths.decodePath(p));
    }
  }
  // Snapshots committed since this session's base by overlapping sessions.
  const reader = new SnapshotReader(v.manifests);
  for (let id = head, steps = 0; id !== null && id !== source.base && steps < 10_000 && conflicts.size < 20; steps++) {
    const snap = await v.manifests.getSnapshot(id);
    const parent = snap.parents[0] ?? null;
    if (snap.sessions?.some((m) => m.id !== source.session && overlaps(m))) {
      const parentTree = parent === null ? null : (await v.manifests.getSnapshot(parent)).tree;
      for await (const e of source.summary.entries()) {
        for (const opaque of [e.path, e.origin]) {
          if (opaque === null) continue;
          const plain = v.paths.decodePath(opaque);
          const before = parentTree === null ? undefined : await reader.lookup(parentTree, plain);
          const after = await reader.lookup(snap.tree, plain);
          const clash = dirKept(e) && opaque === e.path ? after !== undefined && after.type !== 'dir' && before?.type !== after.type : !sameEntry(before, after);
          if (clash) conflicts.add(plain);
        }
        if (conflicts.size >= 20) break;
      }
    }
    id = parent;
  }
  if (conflicts.size === 0) return;
  const list = [...conflicts];
  throw new DvfsError('E_CONFLICT', `session ${source.session ?? ''} changed ${list.length >= 20 ? '20 or more paths' : list.length === 1 ? 'a path' : `${list.length} paths`} that a session running at the same time also changed: ${list.slice(0, 5).join(', ')}${list.length > 5 ? ', ...' : ''}`, {
    hint: "keep this session's version with dvfs commit --force, or bring back the committed one with dvfs restore REPO HEAD PATH and commit again",
  });
}

/** A directory made or touched by both sides (mkdir -p results) is no conflict: only what is in it can be. */
function dirKept(e: SummaryEntry): boolean {
  return e.kind === 'dir' && (e.status === 'added' || e.status === 'changed');
}

function sameEntry(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  const strip = (e: object): string => JSON.stringify({ ...e, mtimeMs: undefined });
  return strip(a as object) === strip(b as object);
}

function emptyReport(head: ObjectId | null, session: string | null, started: number): CommitReport {
  return {
    snapshot: head,
    parent: head,
    session,
    nothingToCommit: true,
    added: 0,
    changed: 0,
    renamed: 0,
    removed: 0,
    files: 0,
    bytes: 0,
    filesHashed: 0,
    bytesHashed: 0,
    filesRehashed: 0,
    bytesRehashed: 0,
    objectsAdded: 0,
    objectsLinked: 0,
    bytesStored: 0,
    trees: 0,
    leftOpen: 0,
    skipped: 0,
    seconds: (performance.now() - started) / 1000,
  };
}

/** A snapshot of `tree` following `head`, with the request's message, author and provenance. */
function newSnapshot(tree: ObjectId, head: ObjectId | null, request: CommitRequest, stats: SnapshotStats): Snapshot {
  return {
    tree,
    parents: head === null ? [] : [head],
    message: request.message ?? '',
    time: new Date().toISOString(),
    author: request.author ?? defaultAuthor(),
    provenance: request.provenance ?? {},
    stats,
  };
}

function defaultAuthor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers)
  }
  return `${user}@${hostname()}`;
}

/** Makes everything written so far durable with one syncfs(2) of the repository's filesystem. */
async function syncfs(path: string): Promise<void> {
  try {
    await pexecFile('sync', ['-f', path], { timeout: 600_000 });
  } catch (e) {
    throw new DvfsError('E_IO', `cannot sync the repository's filesystem: ${e instanceof Error ? e.message : String(e)}`, { path });
  }
}

