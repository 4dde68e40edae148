/**
 * Open files of a mount. File handles (the numbers FUSE gives back to us) point at one shared FileContent
 * per ciphertext inode, so two opens of one file — in one process or several — see each other's writes
 * and their read-modify-writes are serialised. Keyed by inode, a file stays found after renames and unlink.
 */
import { lstatSync } from 'node:fs';
import type { FileContent } from '../vfs/crypto-tree.js';

export interface SharedFile {
  ino: number;
  content: FileContent;
  refs: number;
}

export interface Handle {
  shared: SharedFile;
  writable: boolean;
  append: boolean;
  /** Plaintext path at open time (for logs). */
  path: string;
}

export class OpenFiles {
  private readonly handles = new Map<number, Handle>();
  private readonly byIno = new Map<number, SharedFile>();
  /** Opens in progress per inode, so concurrent first opens share one FileContent. */
  private readonly opening = new Map<number, Promise<SharedFile>>();
  private nextFd = 1;

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

  /** Registers a handle on inode `ino`, opening its content with `open` unless it is already open. */
  async add(ino: number, open: () => Promise<FileContent>, handle: Omit<Handle, 'shared'>): Promise<number> {
    let shared = this.byIno.get(ino);
    if (!shared) {
      let pending = this.opening.get(ino);
      if (!pending) {
        pending = open().then((content) => {
          const s: SharedFile = { ino, content, refs: 0 };
          this.byIno.set(ino, s);
          return s;
        });
        this.opening.set(ino, pending);
        pending.then(
          () => this.opening.delete(ino),
          () => this.opening.delete(ino),
        );
      }
      shared = await pending;
    }
    shared.refs++;
    const fd = this.nextFd++;
    this.handles.set(fd, { ...handle, shared });
    return fd;
  }

  /** Drops a handle; closes the shared content when it was the last one. */
  async release(fd: number): Promise<void> {
    const h = this.handles.get(fd);
    if (!h) return;
    this.handles.delete(fd);
    if (--h.shared.refs === 0) {
      this.byIno.delete(h.shared.ino);
      await h.shared.content.close();
    }
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
