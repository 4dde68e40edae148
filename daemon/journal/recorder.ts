/**
 * What the FUSE frontend calls: one hook per filesystem operation, turning operations into journal
 * records and feeding each file's WriteHasher. It keeps, per open file written through the mount, the
 * file's hasher and its *current* path (renames of it or of a directory above it move it; unlinking it
 * stops recording it), so the final hash is recorded at the right path when the last writer releases it.
 *
 * Every hook is synchronous and touches memory only (the journal batches to LevelDB on its own), except
 * `flush()` — the durability point for fsync and for the control socket's flush.
 *
 * Records per file written through the mount: the first mutation records "being written" (hash null,
 * size so far) — so a crash or an fsync finds the file in the journal — and the release of the last
 * writable handle records the final hash (or null: written out of order, commit hashes it).
 *
 * Paths: hooks take plaintext paths (as FUSE gives them) and the recorder keeps them in memory only, to follow
 * open files across renames. Every path handed to the journal goes through `encodePath` first — the daemon
 * passes the repository's opaque-path cipher — because the journal lives on disk under `REPO/.dvfs`, where no
 * plaintext name may appear.
 *
 * Open files are keyed by a number the caller chooses (the frontend: a stable id per open file, which survives
 * the file's ciphertext being replaced by copy-on-write, unlike its inode).
 */
import type { SessionJournal } from './journal.js';
import { WriteHasher, type HashFactory, type WriteHasherOptions } from './write-hasher.js';

/** Turns a plaintext path ('/a/b') into what the journal stores (the daemon: PathCipher.encodePath). */
export type PathEncoder = (plainPath: string) => string;

interface Tracked {
  /** Current plaintext path (memory only); null once unlinked or replaced (nothing more is recorded for it). */
  path: string | null;
  hasher: WriteHasher;
  /** A "being written" record exists for this opening. */
  announced: boolean;
  /** Writable handles open on the file. */
  writers: number;
}

export class ChangeRecorder {
  private readonly files = new Map<number, Tracked>();
  private emptyHashValue: string | null = null;

  constructor(
    readonly journal: SessionJournal,
    private readonly hashFactory: HashFactory,
    private readonly encodePath: PathEncoder,
    private readonly hasherOptions: WriteHasherOptions = {},
  ) {}

  /** The hash of empty content (for files created or truncated to 0 without an open handle). */
  get emptyHash(): string {
    return (this.emptyHashValue ??= this.hashFactory().digest());
  }

  /** Files open for writing (for stats). */
  get openFiles(): number {
    return this.files.size;
  }

  // --- files ---------------------------------------------------------------------------------------------

  /** FUSE create succeeded: a new empty file `path` (open-file id `id`), open for writing. */
  created(id: number, path: string): void {
    this.journal.write(this.encodePath(path), { hash: null, size: 0, created: true });
    const t = this.files.get(id);
    if (t) {
      t.writers++;
      return;
    }
    this.files.set(id, { path, hasher: new WriteHasher(this.hashFactory, 0, this.hasherOptions), announced: true, writers: 1 });
  }

  /**
   * FUSE open succeeded with a writable access mode. `plainSize`: the file's plaintext size now (before an
   * O_TRUNC is applied; report that with `truncated`).
   */
  openedForWrite(id: number, path: string, plainSize: number): void {
    const t = this.files.get(id);
    if (t) {
      t.writers++;
      return;
    }
    this.files.set(id, { path, hasher: new WriteHasher(this.hashFactory, plainSize, this.hasherOptions), announced: false, writers: 1 });
  }

  /**
   * Just before `content.write(offset, data)` — in the same synchronous stretch, so the hasher sees writes
   * in the order the file content applies them (its lock is first come, first served). For an O_APPEND
   * handle, `offset` is the size the write goes to.
   */
  write(id: number, offset: number, data: Buffer): void {
    const t = this.files.get(id);
    if (!t) return;
    t.hasher.onWrite(offset, data);
    this.announce(t);
  }

  /** A write reported with `write` failed: the hash can no longer be trusted. */
  writeFailed(id: number): void {
    const t = this.files.get(id);
    if (!t) return;
    t.hasher.invalidate();
    this.announce(t);
  }

  /**
   * A file was truncated to `size` (ftruncate, truncate(2), open with O_TRUNC). `id`: its open-file id when known
   * (an open file's), else null. Call after the truncation succeeded.
   */
  truncated(id: number | null, path: string, size: number): void {
    const t = id === null ? undefined : this.files.get(id);
    if (t) {
      t.hasher.onTruncate(size);
      this.announce(t);
      return;
    }
    this.journal.write(this.encodePath(path), { hash: size === 0 ? this.emptyHash : null, size });
  }

  /**
   * A writable handle on file `id` was released. When it was the last, the final hash is recorded at the
   * file's current path if the file changed. `finalSize`: the plaintext size now (the size the hasher
   * tracked is used when left out).
   */
  releasedWrite(id: number, finalSize?: number): void {
    const t = this.files.get(id);
    if (!t) return;
    if (--t.writers > 0) return;
    this.files.delete(id);
    this.finalize(t, finalSize);
  }

  /** Whether releasing the last writer of `id` will record anything (so the caller need not fetch a size). */
  needsFinalSize(id: number): boolean {
    const t = this.files.get(id);
    return t !== undefined && t.writers === 1 && t.path !== null && t.hasher.modified;
  }

  private finalize(t: Tracked, finalSize: number | undefined): void {
    if (t.path === null || !t.hasher.modified) return;
    const size = finalSize ?? t.hasher.size;
    const r = t.hasher.result(size);
    this.journal.write(this.encodePath(t.path), { hash: 'hash' in r ? r.hash : null, size });
  }

  private announce(t: Tracked): void {
    if (t.announced || t.path === null) return;
    t.announced = true;
    this.journal.write(this.encodePath(t.path), { hash: null, size: t.hasher.size });
  }

  // --- names ---------------------------------------------------------------------------------------------

  /** unlink succeeded. An open file there keeps its data but is no longer recorded. */
  unlinked(path: string): void {
    this.journal.remove(this.encodePath(path));
    for (const t of this.files.values()) if (t.path === path) t.path = null;
  }

  /** rmdir succeeded. */
  rmdir(path: string): void {
    this.journal.remove(this.encodePath(path));
  }

  /**
   * rename succeeded. `replaced`: whether `to` existed before (lstat it before renaming; see
   * SessionJournal.rename). Open files at or below `from` follow; an open file at `to` was replaced.
   */
  renamed(from: string, to: string, replaced: boolean | undefined): void {
    this.journal.rename(this.encodePath(from), this.encodePath(to), replaced === undefined ? {} : { replaced });
    const prefix = from === '/' ? '/' : from + '/';
    for (const t of this.files.values()) {
      if (t.path === null) continue;
      if (t.path === to) t.path = null;
      else if (t.path === from) t.path = to;
      else if (t.path.startsWith(prefix)) t.path = to + t.path.slice(from.length);
    }
  }

  mkdir(path: string): void {
    this.journal.mkdir(this.encodePath(path));
  }

  symlink(path: string): void {
    this.journal.symlink(this.encodePath(path));
  }

  /** link succeeded: `path` is a new name for a file of `size` bytes (hashed at commit). */
  linked(path: string, size: number): void {
    this.journal.write(this.encodePath(path), { hash: null, size, created: true });
  }

  /** mknod of a regular file (created empty, not opened). Fifos: `special`. */
  mknodFile(path: string): void {
    this.journal.write(this.encodePath(path), { hash: this.emptyHash, size: 0, created: true });
  }

  /** A fifo or other special file was created: commit looks at it (lstat). */
  special(path: string): void {
    this.journal.write(this.encodePath(path), { hash: null, size: 0, created: true });
  }

  /** chmod, chown, utimens, setxattr, removexattr succeeded. */
  meta(path: string): void {
    this.journal.meta(this.encodePath(path));
  }

  // --- durability and the end -----------------------------------------------------------------------------

  /** Everything recorded so far is on disk when this resolves (fsync, control-socket flush, commit). */
  flush(): Promise<void> {
    return this.journal.flush();
  }

  /**
   * The mount is going away with files still open (unmount, closeAll): records their final state as far as
   * known — the hash when clean, else null — and forgets them. `sizes` gives plaintext sizes by open-file id.
   */
  releaseAll(sizes: ReadonlyMap<number, number> = new Map()): void {
    for (const [id, t] of this.files) this.finalize(t, sizes.get(id));
    this.files.clear();
  }
}
