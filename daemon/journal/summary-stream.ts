/**
 * A journal summary too big to hold in memory, streamed in path order from a scratch LevelDB.
 *
 * `SessionJournal.summary()` replays the records over an in-memory tree and returns every entry at once:
 * right for status and for ordinary commits, but a session that wrote a million files would hold a million
 * entries (and the tree behind them) through the whole commit. Most such sessions only add: their records
 * are writes, mkdirs, symlinks and metadata changes, never a rename or a removal. For those the net effect
 * on a path depends only on the path's own records and on whether a directory above it was made in the
 * session, so the summary can be computed by sorting: every record goes to a scratch LevelDB under
 * `path \0 seq` (LevelDB sorts it), then a scan in key order merges each path's records into its entry.
 * Memory: the set of directories made in the session, nothing per file.
 *
 * A journal holding a rename or a removal is summarized in memory as before (`summarizeForCommit` falls
 * back); the entries are the same either way (test/journal/summary-stream.test.ts compares them).
 */
import { rm } from 'node:fs/promises';
import { Level } from 'level';
import { DvfsError } from '../errors.js';
import type { JournalRecord, JournalSummary, ReplayEntry, SessionJournal, SummaryEntry } from './journal.js';

/** A summary whose entries can be read (once or more) in path order. */
export interface SummarySource {
  /** Entries per status; exact before the first entry is read. */
  counts: JournalSummary['counts'];
  /** Distinct entries. */
  size: number;
  fromSeq: number;
  toSeq: number;
  /** True when the summary holds no renames or removals (every entry is a put). */
  putsOnly: boolean;
  /** Every entry, sorted by path. */
  entries(): AsyncIterable<SummaryEntry>;
  /** The whole summary in memory (the in-memory kind only; null for a streamed one). */
  inMemory: JournalSummary | null;
  /** Releases the scratch database (idempotent). */
  close(): Promise<void>;
}

export interface StreamOptions {
  /** Summaries of more records than this are streamed from `scratchDir` (when the records allow it). */
  streamAbove: number;
  /** A directory the streamed summary may create (removed first and at close). */
  scratchDir: string;
}

/** An in-memory summary as a SummarySource. */
export function memorySource(summary: JournalSummary): SummarySource {
  return {
    counts: summary.counts,
    size: summary.entries.length,
    fromSeq: summary.fromSeq,
    toSeq: summary.toSeq,
    putsOnly: summary.entries.every((e) => e.status !== 'removed' && e.status !== 'renamed' && !e.replaced),
    inMemory: summary,
    // eslint-disable-next-line @typescript-eslint/require-await
    entries: async function* () {
      yield* summary.entries;
    },
    close: () => Promise.resolve(),
  };
}

/**
 * The summary of `journal`'s uncommitted records: streamed from a scratch LevelDB when there are more than
 * `streamAbove` of them and none is a rename or a removal, in memory otherwise.
 */
export async function summarizeForCommit(journal: SessionJournal, options: StreamOptions): Promise<SummarySource> {
  const from = journal.committedSeq;
  if (journal.lastSeq - from <= options.streamAbove) return memorySource(await journal.summary());
  await rm(options.scratchDir, { recursive: true, force: true });
  const db = new Level<string, string>(options.scratchDir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  try {
    await db.open({ createIfMissing: true, errorIfExists: true });
  } catch (e) {
    throw new DvfsError('E_IO', `cannot create the commit's scratch database: ${e instanceof Error ? e.message : String(e)}`, { path: options.scratchDir, cause: e });
  }
  const close = async (): Promise<void> => {
    await db.close().catch(() => undefined);
    await rm(options.scratchDir, { recursive: true, force: true });
  };
  try {
    const newDirs = new Set<string>();
    let batch: { type: 'put'; key: string; value: string }[] = [];
    let last = from;
    let structural = false;
    for await (const r of journal.records(from)) {
      last = r.seq;
      if (r.op === 'rename' || r.op === 'remove') {
        structural = true;
        break;
      }
      if (r.op === 'mkdir') newDirs.add(r.path);
      batch.push({ type: 'put', key: `${r.path}\0${String(r.seq).padStart(16, '0')}`, value: JSON.stringify(compact(r)) });
      if (batch.length >= 4096) {
        await db.batch(batch);
        batch = [];
      }
    }
    if (structural) {
      await close();
      return memorySource(await journal.summary());
    }
    if (batch.length > 0) await db.batch(batch);
    batch = [];
    const entries = (): AsyncIterable<SummaryEntry> => merged(db, newDirs);
    const counts = { added: 0, changed: 0, renamed: 0, removed: 0, dirty: 0 };
    let size = 0;
    for await (const e of entries()) {
      if (e.replaced) {
        // Rare (a create over a file this session changed without removing it): the in-memory replay has it.
        await close();
        return memorySource(await journal.summary());
      }
      counts[e.status]++;
      if (e.dirty) counts.dirty++;
      size++;
    }
    return { counts, size, fromSeq: from, toSeq: last, putsOnly: true, inMemory: null, entries, close };
  } catch (e) {
    await close();
    throw e;
  }
}

/** What the merge needs of a record: [op, seq, hash, size, created]. */
type Compact = [JournalRecord['op'], number, string | null, number | null, boolean];

function compact(r: JournalRecord): Compact {
  if (r.op === 'write') return ['write', r.seq, r.hash, r.size, r.created === true];
  return [r.op, r.seq, null, null, false];
}

interface State extends ReplayEntry {
  /** Something the start tree had at this path was replaced (a create over an entry with an origin). */
  replaced: boolean;
}

const parentOf = (p: string): string => {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
};

/** Whether a directory above `path` was made in the session (then nothing there existed before). */
function underNewDir(path: string, newDirs: ReadonlySet<string>): boolean {
  if (newDirs.size === 0) return false;
  for (let p = parentOf(path); p !== '/'; p = parentOf(p)) if (newDirs.has(p)) return true;
  return false;
}

/** Entries in key order: one per path, its records merged as the in-memory replay would. */
async function* merged(db: Level<string, string>, newDirs: ReadonlySet<string>): AsyncGenerator<SummaryEntry> {
  let path: string | null = null;
  let st: State | null = null;
  const emit = (p: string, s: State | null): SummaryEntry | null => {
    if (s === null) return null;
    let status: SummaryEntry['status'] | null;
    if (s.origin === null) status = s.replaced ? 'changed' : 'added';
    else if (s.content || s.meta) status = 'changed';
    else status = null;
    if (status === null) return null;
    return { path: p, status, origin: s.origin, kind: s.kind, content: s.content, meta: s.meta, hash: s.hash, size: s.size, dirty: s.kind === 'file' && s.content && s.hash === null, replaced: s.replaced, seq: s.seq };
  };
  for await (const [key, value] of db.iterator()) {
    const p = key.slice(0, key.lastIndexOf('\0'));
    if (p !== path) {
      if (path !== null) {
        const e = emit(path, st);
        if (e) yield e;
      }
      path = p;
      st = null;
    }
    const [op, seq, hash, size, created] = JSON.parse(value) as Compact;
    // What is at `p` before this record: its own state, or (none yet) what the start tree has there —
    // nothing when a directory above it is new in this session.
    const fresh: boolean = st === null && underNewDir(p, newDirs);
    const cur: State | null = st ?? (fresh ? null : { origin: p, kind: 'unknown', content: false, meta: false, hash: null, size: null, seq: 0, replaced: false });
    // A new thing over an entry of this session that holds start-tree content: that content is gone.
    const replaces: boolean = st !== null && st.origin !== null;
    if (op === 'write') {
      const kept: State | null = created ? null : cur; // what the write changes in place (null: a new file)
      st = { origin: kept?.origin ?? null, kind: 'file', content: true, meta: kept?.meta ?? false, hash, size, seq, replaced: (kept === null && replaces) || (cur?.replaced ?? false) };
    } else if (op === 'mkdir' || op === 'symlink') {
      st = { origin: null, kind: op === 'mkdir' ? 'dir' : 'symlink', content: true, meta: false, hash: null, size: null, seq, replaced: replaces || (cur?.replaced ?? false) };
    } else if (op === 'meta') {
      if (cur !== null) st = { ...cur, meta: true, seq };
    }
  }
  if (path !== null) {
    const e = emit(path, st);
    if (e) yield e;
  }
}
