/**
 * Open files of a mount. File handles (the numbers FUSE gives back to us) point at one shared FileContent
 * per ciphertext inode, so two opens of one file — in one process or several — see each other's writes
 * and their read-modify-writes are serialised. Keyed by inode, a file stays found after renames and unlink.
 *
 * Each shared file also has an id of its own, stable while it is open: copy-on-write (link-guard.ts) gives an
 * open file a new ciphertext inode, so whatever must follow the file across that (the change recorder) keys it
 * by id. And each keeps its current plaintext path, as far as this mount's renames and unlinks tell, so the
 * copy can be put in the file's place and commit can learn which paths are open for writing.
 */
import { lstatSync } from 'node:fs';
import type { FileContent } from '../vfs/crypto-tree.js';

export interface SharedFile {
  /** Stable while the file is open (unlike `ino`, which copy-on-write changes). */
  readonly id: number;
  ino: number;
  content: FileContent;
  refs: number;
  /** Handles open for writing. */
  writers: number;
  /** Current plaintext path ('/a/b'); null once unlinked or replaced by a rename. */
  path: string | null;
}

export interface Handle {
  shared: SharedFile;
  writable: boolean;
  append: boolean;
  /** Plaintext path at open time (for logs). */
  path: string;
}

/** Where `path` is after `from` was renamed to `to`: unchanged, moved along, or null (replaced by it). */
export function pathAfterRename(path: string, from: string, to: string): string | null {
  if (path === to && from !== to) return null;
  if (path === from) return to;
  const prefix = from === '/' ? '/' : `${from}/`;
  return path.startsWith(prefix) ? to + path.slice(from.length) : path;
}

export class OpenFiles {
  private readonly handles = new Map<number, Handle>();
  private readonly byIno = new Map<number, SharedFile>();
  /** Opens in progress per inode, so concurrent first opens share one FileContent. */
  private readonly opening = new Map<number, Promise<SharedFile>>();
  private nextFd = 1;
  private nextId = 1;

  get count(): number {
    return this.handles.size;
  }

  get files(): number {
    return this.byIno.size;
  }

  get(fd: number): Handle | undefined {
    return this.handles.get(fd);
  }

  byInode(ino: number): SharedFile | undefined {
    return this.byIno.get(ino);
  }

  /** The shared file for the ciphertext now at rawPath, if it is open. */
  async findByRawPath(rawPath: string): Promise<FileContent | undefined> {
    try {
      return this.byIno.get(lstatSync(rawPath).ino)?.content;
    } catch {
      return undefined;
    }
  }

  /**
   * Registers a handle on inode `ino`, opening its content with `open` unless it is already open. The inode is
   * checked against what was opened: the caller's lstat may predate a copy-on-write that put a new inode at
   * the path, and two FileContents on one inode would not serialise their writes.
   */
  async add(ino: number, open: () => Promise<FileContent>, handle: Omit<Handle, 'shared'>): Promise<number> {
    let shared = this.byIno.get(ino);
    if (!shared) {
      let pending = this.opening.get(ino);
      if (!pending) {
        pending = this.openShared(open, handle.path);
        this.opening.set(ino, pending);
        pending.then(
          () => this.opening.delete(ino),
          () => this.opening.delete(ino),
        );
      }
      shared = await pending;
    }
    shared.refs++;
    if (handle.writable) shared.writers++;
    const fd = this.nextFd++;
    this.handles.set(fd, { ...handle, shared });
    return fd;
  }

  private async openShared(open: () => Promise<FileContent>, path: string): Promise<SharedFile> {
    const content = await open();
    let ino: number;
    try {
      ino = (await content.rawStats()).ino;
    } catch (e) {
      await content.close().catch(() => undefined);
      throw e;
    }
    const existing = this.byIno.get(ino);
    if (existing) {
      await content.close();
      return existing;
    }
    const s: SharedFile = { id: this.nextId++, ino, content, refs: 0, writers: 0, path };
    this.byIno.set(ino, s);
    return s;
  }

  /** Drops a handle; closes the shared content when it was the last one. */
  async release(fd: number): Promise<void> {
    const h = this.handles.get(fd);
    if (!h) return;
    this.handles.delete(fd);
    if (h.writable) h.shared.writers--;
    if (--h.shared.refs === 0) {
      if (this.byIno.get(h.shared.ino) === h.shared) this.byIno.delete(h.shared.ino);
      await h.shared.content.close();
    }
  }

  /** Copy-on-write gave `shared` a new ciphertext file: open files are found by its inode from now on. */
  replaceContent(shared: SharedFile, content: FileContent, ino: number): void {
    if (this.byIno.get(shared.ino) === shared) this.byIno.delete(shared.ino);
    shared.ino = ino;
    shared.content = content;
    this.byIno.set(ino, shared);
  }

  /** rename(2) of `from` to `to` succeeded: open files at or below `from` move; one at `to` was replaced. */
  renamed(from: string, to: string): void {
    for (const s of this.byIno.values()) if (s.path !== null) s.path = pathAfterRename(s.path, from, to);
  }

  /** unlink(2) of `path` succeeded. */
  unlinked(path: string): void {
    for (const s of this.byIno.values()) if (s.path === path) s.path = null;
  }

  /** Current plaintext paths of files with writable handles (commit leaves them for the next commit). */
  openForWrite(): Set<string> {
    const out = new Set<string>();
    for (const s of this.byIno.values()) if (s.writers > 0 && s.path !== null) out.add(s.path);
    return out;
  }

  /** Plaintext sizes of the files open for writing, by id (for the recorder at unmount); unreadable ones left out. */
  async writerSizes(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const s of this.byIno.values()) {
      if (s.writers === 0) continue;
      try {
        out.set(s.id, await s.content.size());
      } catch {
        // damaged: the recorder falls back to the size it tracked
      }
    }
    return out;
  }

  async syncAll(): Promise<void> {
    await Promise.all([...this.byIno.values()].map((s) => s.content.sync()));
  }

  async closeAll(): Promise<void> {
    const all = [...this.byIno.values()];
    this.handles.clear();
    this.byIno.clear();
    await Promise.allSettled(all.map((s) => s.content.close()));
  }
}
