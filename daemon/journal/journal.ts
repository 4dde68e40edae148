/**
 * The change journal of one mount session: an ordered log of what happened to plaintext paths (written,
 * removed, renamed, created as directory or symlink, metadata changed), kept in a LevelDB so that
 * `dvfs status` and `dvfs commit` cost what changed rather than what exists.
 *
 * Recording is built for the FUSE write path: an operation appends a record to memory and returns its
 * sequence number at once; records reach LevelDB in batches, on a short timer (or when many are pending) and
 * on `flush()`, which writes with `sync: true` — the durability point the daemon uses before an fsync returns
 * and before commit takes the journal over. A LevelDB batch is atomic and the timer's batches are written to
 * the OS before they resolve, so after a kill -9 the journal holds a prefix of the records: everything flushed
 * (usually more), never half a batch.
 *
 * Layout: `r<16-digit seq>` → the run of records written by one batch, ending with record `seq` (a JSON
 * array; each record carries its seq), `m:meta` → SessionMeta, `m:state` → JournalStateRecord, `m:sync` →
 * the last seq (a key to write when a sync must happen with nothing pending). Keys are zero-padded so
 * LevelDB's byte order is numeric order. One value per batch rather than one per record: LevelDB's per-entry
 * cost on the JavaScript thread (~4 µs) would otherwise dominate what recording costs the FUSE thread.
 *
 * Paths are plaintext paths as FUSE gives them: absolute within the mount (`/dir/file`), `/` the root.
 */
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
// `level` loads when a database is opened: processes that only list sessions or read records skip it
import type { Level } from 'level';
import { DvfsError, IntegrityError, isNodeError } from '../errors.js';
import { pathKey } from './path-key.js';

export type JournalState = 'open' | 'finished' | 'committed';

export interface SessionMeta {
  sessionId: string;
  repoId: string;
  mountpoint: string;
  startedAt: string;
  /** The snapshot the working tree was at when the session started (null: nothing committed yet). */
  baseSnapshot: string | null;
  host: string;
  pid: number;
}

export interface JournalStateRecord {
  state: JournalState;
  /** Records up to this seq are in snapshot `snapshotId` (0: none). */
  committedSeq: number;
  snapshotId: string | null;
  /** Records up to this seq were deleted by clearUpTo (0: none). */
  clearedSeq: number;
  finishedAt: string | null;
  committedAt: string | null;
}

export interface WriteInfo {
  /** The content hash, or null when it must be computed at commit (written out of order, or still open). */
  hash: string | null;
  /** Plaintext size. */
  size: number;
  /** The file did not exist before this record (FUSE create, mknod, link). */
  created?: boolean;
}

export type JournalOp =
  | { op: 'write'; path: string; hash: string | null; size: number; created?: true }
  | { op: 'remove'; path: string }
  | { op: 'rename'; from: string; to: string; replaced?: boolean }
  | { op: 'mkdir'; path: string }
  | { op: 'symlink'; path: string }
  | { op: 'meta'; path: string };

export type JournalRecord = JournalOp & {
  seq: number;
  /** Date.now() when the record was appended. */
  time: number;
};

export type EntryKind = 'file' | 'dir' | 'symlink' | 'unknown';

/**
 * The net effect of the records on one path, relative to the tree when the replayed records began (the
 * session's base, or the snapshot the last markCommitted named).
 *
 * - added:   `path` is new (`origin` null).
 * - changed: `path` existed there before and its content (`content`) and/or metadata (`meta`) changed; with
 *            `replaced`, what was there before is gone and this is a different thing (`rm f; create f`,
 *            an editor saving through a temporary file renamed over `f`).
 * - renamed: `path` holds what `origin` held before — for a directory, its whole subtree, except descendants
 *            listed separately; `content`/`meta` say whether it was also changed; `replaced` as above.
 * - removed: `path` (a path of the *start* tree) and its subtree exist nowhere any more.
 *
 * Entries below a renamed directory carry their own `origin` (e.g. `/new/f` from `/old/f`) and are
 * `changed`, not `renamed`, when they only moved along with it.
 */
export interface SummaryEntry {
  path: string;
  status: 'added' | 'changed' | 'renamed' | 'removed';
  /** Path in the start tree whose content this is (null: new). For `removed`, equal to `path`. */
  origin: string | null;
  kind: EntryKind;
  /** Content written in the replayed records (files, symlinks, new directories). */
  content: boolean;
  /** Mode, owner or times changed (chmod, chown, utimens, xattrs). */
  meta: boolean;
  /** The content hash when known; null when commit must hash the file (see `dirty`) or nothing was written. */
  hash: string | null;
  size: number | null;
  /** Content written without a hash: commit must read and hash it. */
  dirty: boolean;
  replaced: boolean;
  /** The last record that touched this path. */
  seq: number;
}

export interface JournalSummary {
  /** Sorted by path (a directory before what is below it); removed entries name start-tree paths. */
  entries: SummaryEntry[];
  counts: { added: number; changed: number; renamed: number; removed: number; dirty: number };
  /** Records replayed: (fromSeq, toSeq]. */
  fromSeq: number;
  toSeq: number;
}

export interface JournalOptions {
  /** Pending records go to LevelDB this long after the first of them was appended (default 50 ms). */
  flushIntervalMs?: number;
  /** ... or at once when this many are pending (default 4096). */
  maxPending?: number;
  /** Called when a background batch fails (the records stay pending; the next flush() retries and throws). */
  onError?: (e: unknown) => void;
}

type Db = Level<string, string>;
type BatchOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

const META_KEY = 'm:meta';
const STATE_KEY = 'm:state';
const SYNC_KEY = 'm:sync';
const REC_LO = 'r';
const REC_HI = 's';
const FORMAT = 1;

const seqKey = (seq: number): string => 'r' + String(seq).padStart(16, '0');

function seqOf(key: string): number {
  const n = Number(key.slice(1));
  if (key.length !== 17 || !Number.isSafeInteger(n)) throw new IntegrityError(`bad journal key ${JSON.stringify(key)}`);
  return n;
}

function initialState(): JournalStateRecord {
  return { state: 'open', committedSeq: 0, snapshotId: null, clearedSeq: 0, finishedAt: null, committedAt: null };
}

function ioError(e: unknown, what: string, dir: string): DvfsError {
  if (e instanceof DvfsError) return e;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const msg = cause?.message ?? (e instanceof Error ? e.message : String(e));
  if (cause?.code === 'LEVEL_LOCKED') {
    return new DvfsError('E_IO', `${what}: the journal is in use by another process`, { path: dir, hint: 'is the mount of this session still running?', cause: e });
  }
  if (/does not exist/.test(msg)) return new DvfsError('E_NOTFOUND', `${what}: no journal here`, { path: dir, cause: e });
  if (/exists \(error_if_exists/.test(msg)) return new DvfsError('E_EXISTS', `${what}: a journal already exists here`, { path: dir, cause: e });
  return new DvfsError('E_IO', `${what}: ${msg}`, { path: dir, cause: e });
}

export class SessionJournal {
  /** Records not yet handed to LevelDB. */
  private pending: JournalRecord[] = [];
  private seqNow: number;
  private timer: NodeJS.Timeout | null = null;
  /** Every LevelDB write goes through this chain, so batches land in the order they were made. */
  private chain: Promise<void> = Promise.resolve();
  /** A sync flush queued but not started: later flush() calls share it. */
  private queuedSync: Promise<void> | null = null;
  /** Batches written without sync since the last synced one. */
  private unsynced = false;
  private closing: Promise<void> | null = null;
  private st: JournalStateRecord;
  /**
   * While a commit runs beside the mount (trackWrites): pathKey(path) → seq of the last write record
   * appended since tracking began, for the paths with that key (see lastWriteSeq). Null otherwise: a mount
   * writing a million files keeps nothing per file here between commits.
   */
  private tracked: Map<number, number> | null = null;
  private trackers = 0;
  private readonly flushIntervalMs: number;
  private readonly maxPending: number;

  private constructor(
    private readonly db: Db,
    readonly dir: string,
    /** Who made this journal: the session's identity, written once at create. */
    readonly info: Readonly<SessionMeta>,
    state: JournalStateRecord,
    lastSeq: number,
    private readonly options: JournalOptions,
  ) {
    this.st = state;
    this.seqNow = lastSeq;
    this.flushIntervalMs = options.flushIntervalMs ?? 50;
    this.maxPending = options.maxPending ?? 4096;
  }

  /** Makes a new journal in `dir` (created 0700; must not hold one already). */
  static async create(dir: string, meta: SessionMeta, options: JournalOptions = {}): Promise<SessionJournal> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const db: Db = new (await import('level')).Level<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    try {
      await db.open({ createIfMissing: true, errorIfExists: true });
    } catch (e) {
      throw ioError(e, 'cannot create the session journal', dir);
    }
    const state = initialState();
    const clean: SessionMeta = {
      sessionId: meta.sessionId,
      repoId: meta.repoId,
      mountpoint: meta.mountpoint,
      startedAt: meta.startedAt,
      baseSnapshot: meta.baseSnapshot,
      host: meta.host,
      pid: meta.pid,
    };
    try {
      const ops: BatchOp[] = [
        { type: 'put', key: META_KEY, value: JSON.stringify({ format: FORMAT, ...clean }) },
        { type: 'put', key: STATE_KEY, value: JSON.stringify(state) },
      ];
      await db.batch(ops, { sync: true });
    } catch (e) {
      await db.close().catch(() => undefined);
      throw ioError(e, 'cannot create the session journal', dir);
    }
    return new SessionJournal(db, dir, clean, state, 0, options);
  }

  /** Opens an existing journal (after a crash: everything flushed is there). */
  static async open(dir: string, options: JournalOptions = {}): Promise<SessionJournal> {
    try {
      await stat(join(dir, 'CURRENT'));
    } catch (e) {
      if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) throw new DvfsError('E_NOTFOUND', 'cannot open the session journal: no journal here', { path: dir });
      throw ioError(e, 'cannot open the session journal', dir);
    }
    const db: Db = new (await import('level')).Level<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    try {
      await db.open({ createIfMissing: false });
    } catch (e) {
      throw ioError(e, 'cannot open the session journal', dir);
    }
    try {
      const metaText = await db.get(META_KEY);
      const meta = metaText === undefined ? undefined : (JSON.parse(metaText) as SessionMeta & { format?: number });
      if (meta === undefined) throw new DvfsError('E_CONFIG', 'not a dvfs session journal (no metadata)', { path: dir });
      if (meta.format !== FORMAT) {
        throw new DvfsError('E_UNSUPPORTED', `session journal format ${String(meta.format)} is not supported by this dvfs`, { path: dir, hint: 'upgrade dvfs' });
      }
      const stateText = await db.get(STATE_KEY);
      const state: JournalStateRecord = { ...initialState(), ...(stateText === undefined ? {} : (JSON.parse(stateText) as Partial<JournalStateRecord>)) };
      let last = Math.max(state.clearedSeq, state.committedSeq);
      for await (const key of db.keys({ gt: REC_LO, lt: REC_HI, reverse: true, limit: 1 })) last = Math.max(last, seqOf(key));
      const { format: _format, ...rest } = meta;
      return new SessionJournal(db, dir, rest, state, last, options);
    } catch (e) {
      await db.close().catch(() => undefined);
      throw ioError(e, 'cannot open the session journal', dir);
    }
  }

  get state(): JournalState {
    return this.st.state;
  }

  /** The state record (updated in memory when a change of it starts being written). */
  get stateRecord(): Readonly<JournalStateRecord> {
    return this.st;
  }

  /** The seq of the last record appended (0: none yet). */
  get lastSeq(): number {
    return this.seqNow;
  }

  get committedSeq(): number {
    return this.st.committedSeq;
  }

  /** Records appended but not yet handed to LevelDB. */
  get pendingCount(): number {
    return this.pending.length;
  }

  // --- recording (synchronous: memory only) -------------------------------------------------------------

  write(path: string, info: WriteInfo): number {
    const seq = info.created
      ? this.append({ op: 'write', path, hash: info.hash, size: info.size, created: true })
      : this.append({ op: 'write', path, hash: info.hash, size: info.size });
    this.tracked?.set(pathKey(path), seq);
    return seq;
  }

  /**
   * Starts remembering the seq of each `write` appended from now on, per path, until the returned function
   * is called (calls nest: tracking ends with the last of them). A commit running beside the mount starts it
   * before it reads the records it commits, so every write after those records is known to lastWriteSeq.
   */
  trackWrites(): () => void {
    if (this.trackers++ === 0) this.tracked = new Map();
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      if (--this.trackers === 0) this.tracked = null;
    };
  }

  /**
   * The seq of the last `write` record appended for `path` while writes were tracked (0: none, or not
   * tracking). A commit running beside the mount uses it to see that a file changed after the summary it is
   * committing was taken: it calls trackWrites() before taking the summary, so any write past the summary
   * is tracked. When two paths share a pathKey this is the later of their seqs: never below the truth, so a
   * collision can only leave a file for the next commit, never commit a stale one.
   */
  lastWriteSeq(path: string): number {
    return this.tracked?.get(pathKey(path)) ?? 0;
  }

  /** A file, symlink or directory (with everything below it) is gone. */
  remove(path: string): number {
    return this.append({ op: 'remove', path });
  }

  /**
   * `from` (a file, symlink, or a directory with everything below it) is now at `to`. `replaced`: whether
   * something was at `to` before (rename(2) replaced it). Left out, the journal assumes it may have been:
   * commit stays right, but status may show `to` as replaced (or, if it moves on, removed) when it was new.
   * `false` when something *was* there is wrong: if the renamed thing later moves away, the summary no longer
   * knows that the start tree's `to` is gone.
   */
  rename(from: string, to: string, opts: { replaced?: boolean } = {}): number {
    return opts.replaced === undefined ? this.append({ op: 'rename', from, to }) : this.append({ op: 'rename', from, to, replaced: opts.replaced });
  }

  mkdir(path: string): number {
    return this.append({ op: 'mkdir', path });
  }

  symlink(path: string): number {
    return this.append({ op: 'symlink', path });
  }

  /** Only metadata changed (mode, owner, times, xattrs). */
  meta(path: string): number {
    return this.append({ op: 'meta', path });
  }

  private append(op: JournalOp): number {
    if (this.st.state !== 'open' || this.closing !== null) {
      throw new DvfsError('E_USAGE', `cannot record into a ${this.closing ? 'closed' : this.st.state} session journal`, { path: this.dir });
    }
    const seq = ++this.seqNow;
    const rec = op as JournalRecord;
    rec.seq = seq;
    rec.time = Date.now();
    this.pending.push(rec);
    if (this.pending.length >= this.maxPending) {
      this.background();
    } else if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.background();
      }, this.flushIntervalMs);
      this.timer.unref();
    }
    return seq;
  }

  private background(): void {
    this.drain(false).catch((e: unknown) => this.options.onError?.(e));
  }

  // --- durability -----------------------------------------------------------------------------------------

  /**
   * Writes whatever is pending, then resolves once every record appended before the call is on disk
   * (synced). Concurrent calls share one synced batch.
   */
  flush(): Promise<void> {
    if (this.queuedSync !== null) return this.queuedSync;
    const p = this.drain(true, () => {
      if (this.queuedSync === p) this.queuedSync = null;
    });
    this.queuedSync = p;
    p.catch(() => undefined).finally(() => {
      if (this.queuedSync === p) this.queuedSync = null;
    });
    return p;
  }

  /** Queues one write of everything pending at the time it runs (plus `extra` operations). */
  private drain(sync: boolean, onStart?: () => void, extra?: () => BatchOp[]): Promise<void> {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const step = async (): Promise<void> => {
      onStart?.();
      const recs = this.pending;
      this.pending = [];
      const ops: BatchOp[] = [];
      const lastRec = recs[recs.length - 1];
      if (lastRec !== undefined) ops.push({ type: 'put', key: seqKey(lastRec.seq), value: JSON.stringify(recs) });
      if (extra) ops.push(...extra());
      if (ops.length === 0) {
        if (!sync || !this.unsynced) return;
        ops.push({ type: 'put', key: SYNC_KEY, value: String(this.seqNow) });
      }
      try {
        await this.db.batch(ops, { sync });
      } catch (e) {
        // Keep the records (not the extra operations: their caller gets the error) for the next attempt.
        this.pending = recs.concat(this.pending);
        throw ioError(e, 'cannot write the session journal', this.dir);
      }
      this.unsynced = !sync;
    };
    const p = this.chain.then(step);
    this.chain = p.catch(() => undefined);
    return p;
  }

  // --- reading --------------------------------------------------------------------------------------------

  /**
   * The records after `afterSeq` (and after any cleared ones), in order: everything appended before the
   * call, flushed or not.
   */
  async *records(afterSeq = 0): AsyncGenerator<JournalRecord> {
    await this.drain(false);
    const upto = this.seqNow;
    const from = Math.max(afterSeq, this.st.clearedSeq);
    let expect = -1;
    // A run's key is its last seq, so the first run holding a seq > from is the first key > from.
    for await (const [key, value] of this.db.iterator({ gt: seqKey(from), lt: REC_HI })) {
      const last = seqOf(key);
      let run: JournalRecord[];
      try {
        run = JSON.parse(value) as JournalRecord[];
      } catch {
        run = [];
      }
      if (!Array.isArray(run) || run.length === 0 || run[run.length - 1]?.seq !== last) {
        throw new IntegrityError(`journal records up to ${last} are malformed`, { path: this.dir });
      }
      for (const r of run) {
        if (r.seq <= from) continue;
        if (r.seq > upto) return;
        if ((expect !== -1 && r.seq !== expect) || typeof r.op !== 'string') {
          throw new IntegrityError(`journal record ${r.seq} is malformed or out of sequence`, { path: this.dir });
        }
        expect = r.seq + 1;
        yield r;
      }
    }
  }

  /** The net effect of the records after `afterSeq` (default: everything not committed yet). */
  async summary(afterSeq = this.st.committedSeq): Promise<JournalSummary> {
    const replay = new Replay();
    let last = afterSeq;
    for await (const r of this.records(afterSeq)) {
      replay.apply(r);
      last = r.seq;
    }
    return replay.result(afterSeq, last);
  }

  // --- lifecycle ------------------------------------------------------------------------------------------

  /** The mount ended: no more records; the state becomes `finished` (durably, with every record). */
  async finish(): Promise<void> {
    if (this.st.state !== 'open') return;
    // Nothing left to commit (no records, or a commit while mounted took them all): committed at once.
    const state = this.st.committedSeq === this.seqNow ? 'committed' : 'finished';
    this.st = { ...this.st, state, finishedAt: new Date().toISOString() };
    await this.writeState();
  }

  /**
   * Records up to `uptoSeq` are in snapshot `snapshotId`. A finished journal with everything committed
   * becomes `committed`; an open one stays open (a commit while mounted).
   */
  async markCommitted(uptoSeq: number, snapshotId: string): Promise<void> {
    if (!Number.isSafeInteger(uptoSeq) || uptoSeq < this.st.committedSeq || uptoSeq > this.seqNow) {
      throw new DvfsError('E_USAGE', `cannot mark records up to ${uptoSeq} committed (committed up to ${this.st.committedSeq}, last ${this.seqNow})`, { path: this.dir });
    }
    if (this.tracked !== null) for (const [key, seq] of this.tracked) if (seq <= uptoSeq) this.tracked.delete(key);
    const all = uptoSeq === this.seqNow && this.st.state !== 'open';
    this.st = { ...this.st, committedSeq: uptoSeq, snapshotId, committedAt: new Date().toISOString(), state: all ? 'committed' : this.st.state };
    await this.writeState();
  }

  /** Deletes records up to `seq` (only committed ones). Sequence numbers are never reused. */
  async clearUpTo(seq: number): Promise<void> {
    if (seq > this.st.committedSeq) {
      throw new DvfsError('E_USAGE', `cannot clear records up to ${seq}: only up to ${this.st.committedSeq} are committed`, { path: this.dir });
    }
    if (seq <= this.st.clearedSeq) return;
    this.st = { ...this.st, clearedSeq: seq };
    await this.writeState();
    // Runs ending at or before `seq` go; a run straddling it stays, and reads skip its cleared records.
    const p = this.chain.then(() => this.db.clear({ gt: REC_LO, lte: seqKey(seq) }));
    this.chain = p.catch(() => undefined);
    try {
      await p;
    } catch (e) {
      throw ioError(e, 'cannot clear the session journal', this.dir);
    }
  }

  private writeState(): Promise<void> {
    const snapshot = JSON.stringify(this.st);
    return this.drain(true, undefined, () => [{ type: 'put', key: STATE_KEY, value: snapshot }]);
  }

  /** Flushes (synced) and closes the database. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        await this.drain(true);
      } finally {
        await this.db.close();
      }
    })();
    return this.closing;
  }
}

// --- replay ---------------------------------------------------------------------------------------------

const REMOVED = 0;

/** What the replay knows of one path (summary-stream.ts keeps the same per path, sorted on disk). */
export interface ReplayEntry {
  /** Start-tree path whose content this is; null: new. */
  origin: string | null;
  kind: EntryKind;
  content: boolean;
  meta: boolean;
  hash: string | null;
  size: number | null;
  seq: number;
}

/** A path's node in the replay tree: an override of what the start tree has there, or a pass-through. */
interface TNode {
  state: ReplayEntry | typeof REMOVED | undefined;
  children: Map<string, TNode> | undefined;
}

const newNode = (): TNode => ({ state: undefined, children: undefined });

function split(path: string): string[] {
  return path.split('/').filter((c) => c !== '' && c !== '.');
}

function below(base: string, rest: readonly string[]): string {
  if (rest.length === 0) return base;
  return (base === '/' ? '' : base) + '/' + rest.join('/');
}

const pathOf = (comps: readonly string[]): string => '/' + comps.join('/');

/**
 * Replays records over a tree of overrides. A path with no override resolves through its nearest ancestor
 * that has one: none → the start tree's same path; a renamed directory → the matching path below its origin;
 * a new directory, a file, or a removed path → nothing. Renames move override subtrees, so a directory
 * rename costs O(depth), however much is below it.
 */
class Replay {
  private readonly root: TNode = newNode();
  /** Start-tree paths whose content may be gone (checked at the end). */
  private readonly candidates = new Set<string>();

  /** What is at `comps` now: an entry (explicit, or made up for an implicit path), or null (nothing). */
  private resolve(comps: readonly string[]): ReplayEntry | null {
    let node: TNode | undefined = this.root;
    let best: ReplayEntry | typeof REMOVED | undefined = node.state;
    let depth = 0;
    for (let i = 0; i < comps.length && node; i++) {
      node = node.children?.get(comps[i] as string);
      if (node && node.state !== undefined) {
        best = node.state;
        depth = i + 1;
      }
    }
    if (best === REMOVED) return null;
    if (best === undefined) return implicit(pathOf(comps));
    if (depth === comps.length) return best;
    if (best.origin === null || best.kind === 'file' || best.kind === 'symlink') return null;
    return implicit(below(best.origin, comps.slice(depth)));
  }

  private nodeAt(comps: readonly string[], create: true): TNode;
  private nodeAt(comps: readonly string[], create: false): TNode | undefined;
  private nodeAt(comps: readonly string[], create: boolean): TNode | undefined {
    let node = this.root;
    for (const c of comps) {
      let next = node.children?.get(c);
      if (!next) {
        if (!create) return undefined;
        next = newNode();
        (node.children ??= new Map()).set(c, next);
      }
      node = next;
    }
    return node;
  }

  /** Replaces the node at `comps` (and its subtree) with `node`. */
  private attach(comps: readonly string[], node: TNode): void {
    if (comps.length === 0) {
      this.root.state = node.state;
      this.root.children = node.children;
      return;
    }
    const parent = this.nodeAt(comps.slice(0, -1), true);
    (parent.children ??= new Map()).set(comps[comps.length - 1] as string, node);
  }

  private detach(comps: readonly string[]): TNode | undefined {
    if (comps.length === 0) return undefined;
    const parent = this.nodeAt(comps.slice(0, -1), false);
    const name = comps[comps.length - 1] as string;
    const node = parent?.children?.get(name);
    if (node) parent?.children?.delete(name);
    return node;
  }

  /** Sets the state at `comps`, dropping everything recorded below it. */
  private set(comps: readonly string[], state: ReplayEntry | typeof REMOVED): void {
    this.attach(comps, { state, children: undefined });
    this.track(state);
  }

  /**
   * Every start-tree path an explicit entry holds may end up gone (the entry can be destroyed with a
   * subtree later, which never resolves it again), so it is a candidate for the final liveness check.
   */
  private track(state: ReplayEntry | typeof REMOVED | undefined): void {
    if (state !== undefined && state !== REMOVED && state.origin !== null) this.candidates.add(state.origin);
  }

  apply(r: JournalRecord): void {
    switch (r.op) {
      case 'write': {
        const comps = split(r.path);
        const cur = this.resolve(comps);
        const fresh = r.created === true || cur === null;
        if (fresh && cur !== null && cur.origin !== null && !isImplicit(cur)) this.candidates.add(cur.origin);
        this.set(comps, {
          origin: fresh ? null : (cur as ReplayEntry).origin,
          kind: 'file',
          content: true,
          meta: fresh ? false : (cur as ReplayEntry).meta,
          hash: r.hash,
          size: r.size,
          seq: r.seq,
        });
        return;
      }
      case 'mkdir':
      case 'symlink': {
        const comps = split(r.path);
        const cur = this.resolve(comps);
        if (cur !== null && cur.origin !== null && !isImplicit(cur)) this.candidates.add(cur.origin);
        this.set(comps, { origin: null, kind: r.op === 'mkdir' ? 'dir' : 'symlink', content: true, meta: false, hash: null, size: null, seq: r.seq });
        return;
      }
      case 'meta': {
        const comps = split(r.path);
        const cur = this.resolve(comps);
        if (cur === null) return;
        const node = this.nodeAt(comps, true);
        node.state = { ...cur, meta: true, seq: r.seq };
        this.track(node.state);
        return;
      }
      case 'remove': {
        const comps = split(r.path);
        const cur = this.resolve(comps);
        if (cur !== null && cur.origin !== null) this.candidates.add(cur.origin);
        if (comps.length === 0) return; // the root cannot go
        this.set(comps, REMOVED);
        return;
      }
      case 'rename': {
        const from = split(r.from);
        const to = split(r.to);
        if (from.length === 0 || to.length === 0 || pathOf(from) === pathOf(to)) return;
        if (to.length > from.length && to.slice(0, from.length).join('/') === from.join('/')) return; // into itself: impossible
        const src = this.resolve(from) ?? implicit(pathOf(from));
        const dst = this.resolve(to);
        // What was at `to` is gone (if anything was): known for an explicit entry, told by the record for a
        // path the records never named, assumed when the record does not say.
        if (dst !== null && dst.origin !== null && (r.replaced !== false || !isImplicit(dst))) this.candidates.add(dst.origin);
        const moved = this.detach(from) ?? newNode();
        moved.state = { ...src, seq: r.seq };
        this.track(moved.state);
        this.attach(to, moved);
        this.set(from, REMOVED);
        return;
      }
    }
  }

  result(fromSeq: number, toSeq: number): JournalSummary {
    // Start-tree paths gone everywhere: a candidate is alive if some path now resolves to it.
    const byOrigin = new Map<string, string[]>();
    const walk = (node: TNode, comps: string[]): void => {
      if (node.state !== undefined && node.state !== REMOVED && node.state.origin !== null) {
        const list = byOrigin.get(node.state.origin);
        if (list) list.push(pathOf(comps));
        else byOrigin.set(node.state.origin, [pathOf(comps)]);
      }
      if (node.children) for (const [name, child] of node.children) walk(child, [...comps, name]);
    };
    walk(this.root, []);
    const alive = (origin: string): boolean => {
      const oc = split(origin);
      if (this.resolve(oc)?.origin === origin) return true;
      for (let d = oc.length; d >= 0; d--) {
        const at = byOrigin.get(pathOf(oc.slice(0, d)));
        if (!at) continue;
        for (const p of at) {
          const there = below(p, oc.slice(d));
          if (this.resolve(split(there))?.origin === origin) return true;
        }
      }
      return false;
    };
    const removed = new Set<string>();
    for (const c of this.candidates) if (!alive(c)) removed.add(c);

    const entries: SummaryEntry[] = [];
    const replacedPaths = new Set<string>();
    const visit = (node: TNode, comps: string[], parentEff: string | null): void => {
      const implicitOrigin = comps.length === 0 ? '/' : parentEff === null ? null : below(parentEff, comps.slice(-1));
      const st = node.state;
      if (st === REMOVED) return;
      let eff: string | null;
      if (st === undefined) {
        eff = implicitOrigin;
      } else {
        eff = st.kind === 'file' || st.kind === 'symlink' ? null : st.origin;
        const path = pathOf(comps);
        const replaced = removed.has(path);
        let status: SummaryEntry['status'] | null;
        if (st.origin === null) status = replaced ? 'changed' : 'added';
        else if (st.origin !== implicitOrigin) status = 'renamed';
        else if (st.content || st.meta || replaced) status = 'changed';
        else status = null;
        if (status !== null) {
          if (replaced) replacedPaths.add(path);
          entries.push({
            path,
            status,
            origin: st.origin,
            kind: st.kind,
            content: st.content,
            meta: st.meta,
            hash: st.hash,
            size: st.size,
            dirty: st.kind === 'file' && st.content && st.hash === null,
            replaced,
            seq: st.seq,
          });
        }
      }
      if (node.children) for (const [name, child] of node.children) visit(child, [...comps, name], eff);
    };
    visit(this.root, [], '/');

    // Removed start-tree paths, minus those replaced in place and those below another removed one — unless
    // a directory between the two moved elsewhere (then removing the upper one does not reach this one).
    const movedOrigins = new Set<string>();
    for (const e of entries) if (e.status === 'renamed' && e.origin !== null) movedOrigins.add(e.origin);
    for (const p of removed) {
      if (replacedPaths.has(p)) continue;
      const pc = split(p);
      let covered = false;
      for (let d = pc.length - 1; d >= 1; d--) {
        const a = pathOf(pc.slice(0, d));
        if (movedOrigins.has(a)) break;
        if (removed.has(a)) {
          covered = true;
          break;
        }
      }
      if (covered) continue;
      entries.push({ path: p, status: 'removed', origin: p, kind: 'unknown', content: false, meta: false, hash: null, size: null, dirty: false, replaced: false, seq: 0 });
    }
    entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.status === 'removed' ? -1 : 1));
    const counts = { added: 0, changed: 0, renamed: 0, removed: 0, dirty: 0 };
    for (const e of entries) {
      counts[e.status]++;
      if (e.dirty) counts.dirty++;
    }
    return { entries, counts, fromSeq, toSeq };
  }
}

const implicitEntries = new WeakSet<ReplayEntry>();

/** An entry for a path the records never named: it holds what the start tree has at `origin`. */
function implicit(origin: string): ReplayEntry {
  const e: ReplayEntry = { origin, kind: 'unknown', content: false, meta: false, hash: null, size: null, seq: 0 };
  implicitEntries.add(e);
  return e;
}

function isImplicit(e: ReplayEntry): boolean {
  return implicitEntries.has(e);
}
