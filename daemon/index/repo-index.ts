/**
 * The repository index: for the last committed snapshot, every path's entry — a file's content object, size,
 * mode and mtime plus the stat of its ciphertext file (so a rescan can tell an untouched file by a stat
 * alone), a directory's tree object, a symlink's target object — in a LevelDB at `REPO/.dvfs/index`.
 * With the session journal it makes `dvfs commit` cost what changed: commit looks up the changed paths and
 * the directories above them, never the whole tree.
 *
 * Keys: a path is stored as `parent + "\0" + name` (`/a/b` → `/a\0b`, the root `/` → `\0`), so the
 * children of a directory are one contiguous key range (`/a\0` … `/a\x01`) that a path merely sharing a
 * prefix (`/a b`, `/ab`) never falls into, and a subtree is two ranges (its children, and `/a/` … `/a0`
 * for everything deeper). Metadata keys start with `!`, below every path key but the root's.
 *
 * Consistency: `!snapshot` names the snapshot the entries describe. It is written in the same LevelDB batch
 * as the last entries of an update. An update too big for one batch (and every update that does not name
 * a snapshot) writes an `!incomplete` marker in its first batch; naming a snapshot clears it. While the
 * marker is there, `snapshot()` answers null — so after a crash the index never claims a snapshot whose
 * entries are not all written; the caller rebuilds it from the snapshot instead.
 *
 * Paths are plaintext paths as the FUSE frontend sees them (`/dir/file`). One process at a time (LevelDB
 * holds a lock); writes within the process are serialized.
 */
import { mkdir } from 'node:fs/promises';
// `level` loads when a database is opened: processes that only list sessions or read records skip it
import type { Level } from 'level';
import { DvfsError, IntegrityError } from '../errors.js';

/** The ciphertext file's stat when the entry was made: a rescan compares these before hashing. */
export interface RawStat {
  ino: number;
  size: number;
  mtimeMs: number;
}

export interface FileEntry {
  kind: 'file';
  /** Content object (keyed BLAKE2b-256 of the plaintext, hex). */
  object: string;
  size: number;
  mode: number;
  mtimeMs: number;
  raw: RawStat;
}

export interface DirEntry {
  kind: 'dir';
  /** The directory's tree object; null while not computed (a directory whose listing changed). */
  tree: string | null;
  mode?: number;
  mtimeMs?: number;
}

export interface SymlinkEntry {
  kind: 'symlink';
  /** Object holding the link target. */
  object: string;
  /** Target length in bytes. */
  size: number;
  mtimeMs?: number;
  raw?: RawStat;
}

export type IndexEntry = FileEntry | DirEntry | SymlinkEntry;

export type IndexOp = { type: 'put'; path: string; entry: IndexEntry } | { type: 'del'; path: string };

export interface IndexWriteOptions {
  /**
   * The snapshot the index describes once this write is done: stored atomically with the write's last
   * entries, and clears an earlier `!incomplete`. Without it the write leaves the index incomplete
   * (`snapshot()` null) until a later write or setSnapshot names one.
   */
  snapshot?: string;
}

export interface IndexOptions {
  /** Entries per LevelDB batch for large updates (default 10 000). */
  chunk?: number;
}

export interface IndexState {
  /** The snapshot the entries describe; null if none, or if an update was interrupted (see `incomplete`). */
  snapshot: string | null;
  /** The last snapshot named, even when incomplete. */
  lastSnapshot: string | null;
  incomplete: boolean;
}

type Db = Level<string, string>;

const SNAPSHOT_KEY = '!snapshot';
const INCOMPLETE_KEY = '!incomplete';
const ROOT_KEY = '\0';

/** `/a//b/` → `/a/b`; the root is `/`. */
export function normalizePath(path: string): string {
  if (path.includes('\0')) throw new DvfsError('E_NAME', 'a path cannot contain NUL', { path });
  if (path.startsWith('/') && !path.includes('//') && !path.endsWith('/') && !/(^|\/)\.\.?(\/|$)/.test(path)) return path;
  if (path === '/') return path;
  const parts: string[] = [];
  for (const c of path.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw new DvfsError('E_NAME', 'a path cannot contain ..', { path });
    parts.push(c);
  }
  return '/' + parts.join('/');
}

/** The LevelDB key of a (normalized) path. */
export function keyOf(path: string): string {
  if (path === '/') return ROOT_KEY;
  const i = path.lastIndexOf('/');
  return (i === 0 ? '/' : path.slice(0, i)) + '\0' + path.slice(i + 1);
}

/** The path of an entry key. */
export function pathOfKey(key: string): string {
  if (key === ROOT_KEY) return '/';
  const i = key.indexOf('\0');
  const parent = key.slice(0, i);
  return (parent === '/' ? '' : parent) + '/' + key.slice(i + 1);
}

/** Key ranges holding everything below `dir` (not `dir` itself). */
function belowRanges(dir: string): { gte: string; lt: string }[] {
  if (dir === '/') return [{ gte: '/', lt: '0' }];
  return [
    { gte: dir + '\0', lt: dir + '\x01' },
    { gte: dir + '/', lt: dir + '0' },
  ];
}

function decode(key: string, value: string): IndexEntry {
  try {
    const e = JSON.parse(value) as IndexEntry;
    if (e.kind !== 'file' && e.kind !== 'dir' && e.kind !== 'symlink') throw new Error(`kind ${String((e as { kind?: unknown }).kind)}`);
    return e;
  } catch (err) {
    throw new IntegrityError(`index entry is malformed (${(err as Error).message})`, { path: pathOfKey(key) });
  }
}

function ioError(e: unknown, what: string, dir: string): DvfsError {
  if (e instanceof DvfsError) return e;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const msg = cause?.message ?? (e instanceof Error ? e.message : String(e));
  if (cause?.code === 'LEVEL_LOCKED') {
    return new DvfsError('E_IO', `${what}: the index is in use by another process`, { path: dir, hint: 'is a commit or a mount of this repository running?', cause: e });
  }
  return new DvfsError('E_IO', `${what}: ${msg}`, { path: dir, cause: e });
}

export class RepoIndex {
  private snapshotId: string | null;
  private incompleteFlag: boolean;
  /** Writes run one at a time (a multi-batch rename must not interleave with another write). */
  private chain: Promise<unknown> = Promise.resolve();
  private readonly chunk: number;

  private constructor(
    private readonly db: Db,
    readonly dir: string,
    state: { snapshot: string | null; incomplete: boolean },
    options: IndexOptions,
  ) {
    this.snapshotId = state.snapshot;
    this.incompleteFlag = state.incomplete;
    this.chunk = Math.max(2, options.chunk ?? 10_000);
  }

  /** Opens the index at `dir` (e.g. `REPO/.dvfs/index`), creating an empty one (no snapshot) if missing. */
  static async open(dir: string, options: IndexOptions = {}): Promise<RepoIndex> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const db: Db = new (await import('level')).Level<string, string>(dir, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
    try {
      await db.open({ createIfMissing: true });
      const snap = await db.get(SNAPSHOT_KEY);
      const incomplete = (await db.get(INCOMPLETE_KEY)) !== undefined;
      return new RepoIndex(db, dir, { snapshot: snap === undefined ? null : (JSON.parse(snap) as { id: string }).id, incomplete }, options);
    } catch (e) {
      await db.close().catch(() => undefined);
      throw ioError(e, 'cannot open the repository index', dir);
    }
  }

  /** The snapshot the entries describe: null when none was named, or when an update did not finish. */
  snapshot(): string | null {
    return this.incompleteFlag ? null : this.snapshotId;
  }

  get state(): IndexState {
    return { snapshot: this.snapshot(), lastSnapshot: this.snapshotId, incomplete: this.incompleteFlag };
  }

  // --- reading --------------------------------------------------------------------------------------------

  async get(path: string): Promise<IndexEntry | undefined> {
    const key = keyOf(normalizePath(path));
    const v = await this.db.get(key);
    return v === undefined ? undefined : decode(key, v);
  }

  async getMany(paths: readonly string[]): Promise<(IndexEntry | undefined)[]> {
    const keys = paths.map((p) => keyOf(normalizePath(p)));
    const values = await this.db.getMany(keys);
    return values.map((v, i) => (v === undefined ? undefined : decode(keys[i] as string, v)));
  }

  /** The direct children of `dir`, by name (byte order). */
  async *iterateDir(dir: string): AsyncGenerator<{ name: string; path: string; entry: IndexEntry }> {
    const d = normalizePath(dir);
    const prefix = d === '/' ? '/' : d + '/';
    for await (const [key, value] of this.scan({ gte: d + '\0', lt: d + '\x01' })) {
      const name = key.slice(d.length + 1);
      yield { name, path: prefix + name, entry: decode(key, value) };
    }
  }

  /** Every entry: the root first, then directory by directory (children of one directory together). */
  iterateAll(): AsyncIterableIterator<{ path: string; entry: IndexEntry }> {
    return flatten(this.iterateAllBlocks());
  }

  /** iterateAll in blocks of up to `size` entries: for full scans, where a step per entry costs (1M entries). */
  async *iterateAllBlocks(size = 1000): AsyncGenerator<{ path: string; entry: IndexEntry }[]> {
    const root = await this.db.get(ROOT_KEY);
    if (root !== undefined) yield [{ path: '/', entry: decode(ROOT_KEY, root) }];
    const it = this.db.iterator({ gte: '/', lt: '0' });
    try {
      for (;;) {
        const block = await it.nextv(size);
        if (block.length === 0) return;
        const out = new Array<{ path: string; entry: IndexEntry }>(block.length);
        for (let i = 0; i < block.length; i++) {
          const [key, value] = block[i] as [string, string];
          out[i] = { path: pathOfKey(key), entry: decode(key, value) };
        }
        yield out;
      }
    } finally {
      await it.close();
    }
  }

  /** Everything strictly below `dir`. */
  async *iterateBelow(dir: string): AsyncGenerator<{ path: string; entry: IndexEntry }> {
    for (const range of belowRanges(normalizePath(dir))) {
      for await (const [key, value] of this.scan(range)) yield { path: pathOfKey(key), entry: decode(key, value) };
    }
  }

  /** Raw key/value pairs of a range, read in blocks (an implicit LevelDB snapshot: writes do not show). */
  private async *scan(range: { gte: string; lt: string }): AsyncGenerator<[string, string]> {
    const it = this.db.iterator(range);
    try {
      for (;;) {
        const block = await it.nextv(1000);
        if (block.length === 0) return;
        for (const kv of block) yield kv as [string, string];
      }
    } finally {
      await it.close();
    }
  }

  private async *scanKeys(range: { gte: string; lt: string }): AsyncGenerator<string> {
    const it = this.db.keys(range);
    try {
      for (;;) {
        const block = await it.nextv(1000);
        if (block.length === 0) return;
        yield* block;
      }
    } finally {
      await it.close();
    }
  }

  private async anyBelow(dir: string): Promise<boolean> {
    for (const range of belowRanges(dir)) {
      for await (const _ of this.db.keys({ ...range, limit: 1 })) return true;
    }
    return false;
  }

  // --- writing --------------------------------------------------------------------------------------------

  /** Puts and deletes entries (one atomic batch unless there are more than `chunk`; see IndexWriteOptions). */
  batch(ops: readonly IndexOp[], options: IndexWriteOptions = {}): Promise<void> {
    return this.serialized(async (w) => {
      for (const op of ops) {
        const key = keyOf(normalizePath(op.path));
        if (op.type === 'put' ? w.put(key, JSON.stringify(op.entry)) : w.del(key)) await w.spill();
      }
      await w.finish(options.snapshot);
    });
  }

  /** Names the snapshot the entries now describe (and clears an interrupted update's marker). */
  setSnapshot(id: string): Promise<void> {
    return this.batch([], { snapshot: id });
  }

  /**
   * Moves `from` and everything below it to `to`, replacing whatever was at `to` (as rename(2) replaces a
   * file or an empty directory). Cost: the entries moved. Throws E_NOTFOUND if nothing is at or below `from`.
   */
  rename(from: string, to: string, options: IndexWriteOptions = {}): Promise<void> {
    const f = normalizePath(from);
    const t = normalizePath(to);
    if (f === '/' || t === '/') return Promise.reject(new DvfsError('E_USAGE', 'cannot rename the root', { path: f }));
    if (t.startsWith(f + '/')) return Promise.reject(new DvfsError('E_USAGE', 'cannot move a directory into itself', { path: f }));
    if (f.startsWith(t + '/')) return Promise.reject(new DvfsError('E_USAGE', 'cannot move a directory over one of its parents', { path: f }));
    return this.serialized(async (w) => {
      if (f === t) return w.finish(options.snapshot);
      const self = await this.db.get(keyOf(f));
      if (self === undefined && !(await this.anyBelow(f))) {
        throw new DvfsError('E_NOTFOUND', 'nothing in the index at or below this path', { path: f });
      }
      // Clear the destination first (the source ranges are disjoint from it).
      if (w.del(keyOf(t))) await w.spill();
      for (const range of belowRanges(t)) for await (const key of this.scanKeys(range)) if (w.del(key)) await w.spill();
      if (self !== undefined) {
        w.del(keyOf(f));
        if (w.put(keyOf(t), self)) await w.spill();
      }
      for (const range of belowRanges(f)) {
        for await (const [key, value] of this.scan(range)) {
          // key = parent + "\0" + name, and parent is f or below it: swap the f prefix for t.
          w.del(key);
          if (w.put(t + key.slice(f.length), value)) await w.spill();
        }
      }
      await w.finish(options.snapshot);
    });
  }

  /** Deletes `path` and everything below it (the root: everything). */
  remove(path: string, options: IndexWriteOptions = {}): Promise<void> {
    const p = normalizePath(path);
    return this.serialized(async (w) => {
      if (w.del(keyOf(p))) await w.spill();
      for (const range of belowRanges(p)) for await (const key of this.scanKeys(range)) if (w.del(key)) await w.spill();
      await w.finish(options.snapshot);
    });
  }

  /** Empties the index completely: no entries, no snapshot (before a rebuild). */
  clear(): Promise<void> {
    return this.serialized(async (w) => {
      await w.discard();
      await this.db.clear();
      this.snapshotId = null;
      this.incompleteFlag = false;
    });
  }

  private serialized(body: (w: ChunkWriter) => Promise<void>): Promise<void> {
    const run = async (): Promise<void> => {
      const w = new ChunkWriter(this.db, this.chunk, (incomplete, snapshot) => {
        this.incompleteFlag = incomplete;
        if (snapshot !== undefined) this.snapshotId = snapshot;
      });
      try {
        await body(w);
      } catch (e) {
        await w.discard().catch(() => undefined);
        throw ioError(e, 'cannot update the repository index', this.dir);
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    await this.chain;
    await this.db.close();
  }
}

/**
 * Entries of a block iterator one by one. A plain iterator object rather than an async generator: it answers
 * from the current block without the generator's extra turns of the microtask queue (3× faster per entry).
 */
function flatten<T>(blocks: AsyncGenerator<T[]>): AsyncIterableIterator<T> {
  let buf: T[] = [];
  let i = 0;
  const it: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]: () => it,
    next: async (): Promise<IteratorResult<T>> => {
      while (i >= buf.length) {
        const r = await blocks.next();
        if (r.done) return { value: undefined, done: true };
        buf = r.value;
        i = 0;
      }
      return { value: buf[i++] as T, done: false };
    },
    return: async (): Promise<IteratorResult<T>> => {
      await blocks.return(undefined);
      return { value: undefined, done: true };
    },
  };
  return it;
}

/**
 * Collects one logical update's batch operations. Up to `chunk` of them go out in one atomic batch with
 * the snapshot (or the incomplete marker); more spill in chunks, the first carrying the incomplete marker.
 * `put`/`del` are synchronous and answer whether the chunk is full (then the caller awaits `spill()`), so
 * an update costs no promise per entry.
 */
class ChunkWriter {
  private batch: Chained | null = null;
  private n = 0;
  private spilled = false;

  constructor(
    private readonly db: Db,
    private readonly chunk: number,
    private readonly onState: (incomplete: boolean, snapshot?: string) => void,
  ) {}

  private current(): Chained {
    this.batch ??= this.db.batch();
    return this.batch;
  }

  put(key: string, value: string): boolean {
    this.current().put(key, value);
    return ++this.n >= this.chunk;
  }

  del(key: string): boolean {
    this.current().del(key);
    return ++this.n >= this.chunk;
  }

  async spill(): Promise<void> {
    if (this.n === 0) return;
    const b = this.current();
    if (!this.spilled) b.put(INCOMPLETE_KEY, JSON.stringify({ since: new Date().toISOString() }));
    this.batch = null;
    this.n = 0;
    await b.write({ sync: false });
    this.spilled = true;
    this.onState(true);
  }

  async discard(): Promise<void> {
    const b = this.batch;
    if (b === null) return;
    this.batch = null;
    this.n = 0;
    await b.close();
  }

  async finish(snapshot: string | undefined): Promise<void> {
    if (snapshot === undefined && this.n === 0 && !this.spilled) return this.discard();
    const b = this.current();
    if (snapshot !== undefined) {
      b.put(SNAPSHOT_KEY, JSON.stringify({ id: snapshot, at: new Date().toISOString() }));
      b.del(INCOMPLETE_KEY);
    } else {
      b.put(INCOMPLETE_KEY, JSON.stringify({ since: new Date().toISOString() }));
    }
    this.batch = null;
    this.n = 0;
    await b.write({ sync: snapshot !== undefined });
    this.onState(snapshot === undefined, snapshot);
  }
}

/** The part of LevelDB's chained batch used here. */
interface Chained {
  put(key: string, value: string): unknown;
  del(key: string): unknown;
  write(options: { sync: boolean }): Promise<void>;
  close(): Promise<void>;
}
