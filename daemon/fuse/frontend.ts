/**
 * The FUSE frontend: every filesystem operation on plaintext paths, carried out on the ciphertext tree of a
 * CryptoTree. Errors become errnos (and a log line with the path); integrity failures become EIO and are
 * logged at error level — a tampered file is never returned as wrong plaintext.
 *
 * On a versioned mount, every successful change is also told to the change recorder (the session journal),
 * and mutations of files whose ciphertext is shared with the object store go to a re-encrypted copy first
 * (link-guard.ts).
 */
import { constants as fsc, type Dirent, type Stats } from 'node:fs';
import { chmodSync, linkSync, lchownSync, lstatSync, lutimesSync, readdirSync, readlinkSync, statfsSync, symlinkSync, unlinkSync } from 'node:fs';
import type { FuseOperations, FuseStat, FuseStatfs } from 'fuse-native';
import { DvfsError, IntegrityError, isNodeError } from '../errors.js';
import type { ChangeRecorder } from '../journal/recorder.js';
import type { Logger } from '../log.js';
import type { CryptoTree, Location } from '../vfs/crypto-tree.js';
import { ERRNO, errnoName, errnoOf, FsError } from './errno.js';
import { LinkGuard } from './link-guard.js';
import { OpenFiles, type Handle, type SharedFile } from './open-files.js';
import type { SpecialFiles } from './special-files.js';

export interface FrontendOptions {
  readOnly: boolean;
  /**
   * Serve extended attributes (passed through to the ciphertext files). Without them the kernel learns once
   * that the filesystem has none and stops asking — it otherwise asks for security.capability before every
   * write and for two attributes per `ls -l` entry, each a round trip to the daemon.
   */
  xattr: boolean;
  logger: Logger;
  special: SpecialFiles;
  /** Versioned writable mounts: every successful change is recorded in the session journal through it. */
  recorder?: ChangeRecorder;
  /**
   * Re-encrypt a file into a fresh ciphertext file before changing it when its ciphertext has other hard links
   * (commit links working files into the object store). On for repositories; off for bare volumes, where
   * nothing links files into a store and hard links made through the mount must keep sharing their content.
   */
  copyOnWrite?: boolean;
}

export interface FrontendStats {
  mountedAt: string;
  openHandles: number;
  openFiles: number;
  bytesRead: number;
  bytesWritten: number;
  errors: number;
  integrityErrors: number;
  operations: number;
  /** Files re-encrypted before a change because the object store shares their ciphertext, and bytes copied. */
  copiesOnWrite: number;
  bytesCopiedOnWrite: number;
  /** Changes that succeeded but could not be recorded in the session journal (logged at error level). */
  recordingErrors: number;
}

/** Errnos that are part of normal life (lookups of missing names) and are not logged as errors. */
const QUIET = new Set<number>([ERRNO.ENOENT, ERRNO.EEXIST, ERRNO.ENOTEMPTY, ERRNO.ENODATA, ERRNO.ENOTSUP]);

/** utimens times at or above this many ms mean UTIME_OMIT (see native/fuse-native-fix.mjs). */
const OMIT_MS = 2 ** 48 - 1;

/** An error for the log: its kind and errno, never a message that could carry a plaintext name. */
function describe(e: unknown): string {
  if (e instanceof DvfsError) return e.code;
  if (e instanceof FsError) return e.errno;
  const n = e as NodeJS.ErrnoException;
  return n.code ? `${n.code}${n.syscall ? ` (${n.syscall})` : ''}` : 'error';
}

/**
 * What readdir tells the kernel of each entry: its type alone (the ciphertext entry's, which is the plaintext
 * one's), so directory walkers (`ls -R`, `find`) know files from directories without a lookup and a
 * getattr round trip per entry. The inode stays unknown, as it was without these stats; getattr gives it.
 */
const typeStat = (type: number): FuseStat => ({ mode: type, uid: 0, gid: 0, size: 0, ino: 0xffffffff, atime: 0, mtime: 0, ctime: 0 });
const ENTRY_TYPE_STATS = {
  directory: typeStat(fsc.S_IFDIR),
  file: typeStat(fsc.S_IFREG),
  symlink: typeStat(fsc.S_IFLNK),
  fifo: typeStat(fsc.S_IFIFO),
  socket: typeStat(fsc.S_IFSOCK),
  unknown: typeStat(0),
};

function entryTypeStat(entry: Dirent): FuseStat {
  if (entry.isFile()) return ENTRY_TYPE_STATS.file;
  if (entry.isDirectory()) return ENTRY_TYPE_STATS.directory;
  if (entry.isSymbolicLink()) return ENTRY_TYPE_STATS.symlink;
  if (entry.isFIFO()) return ENTRY_TYPE_STATS.fifo;
  if (entry.isSocket()) return ENTRY_TYPE_STATS.socket;
  return ENTRY_TYPE_STATS.unknown;
}

const toFuseStat = (st: Stats, size: number): FuseStat => ({
  mode: st.mode,
  uid: st.uid,
  gid: st.gid,
  size,
  dev: st.dev,
  nlink: st.nlink,
  ino: st.ino,
  rdev: st.rdev,
  blksize: st.blksize,
  blocks: st.blocks,
  atime: st.atime,
  mtime: st.mtime,
  ctime: st.ctime,
});

/** Whether anything is at a raw path (rename's `replaced`); undefined when lstat cannot tell. */
function existsRaw(rawPath: string): boolean | undefined {
  try {
    lstatSync(rawPath);
    return true;
  } catch (e) {
    return isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR') ? false : undefined;
  }
}

export class Frontend {
  readonly files = new OpenFiles();
  private readonly guard: LinkGuard;
  private readonly startedAt = new Date();
  private counters = { bytesRead: 0, bytesWritten: 0, errors: 0, integrityErrors: 0, operations: 0, recordingErrors: 0 };
  private readonly traceOps: boolean;

  constructor(
    private readonly tree: CryptoTree,
    private readonly options: FrontendOptions,
  ) {
    this.traceOps = options.logger.isLevelEnabled('trace');
    this.guard = new LinkGuard(tree, this.files, options.logger, options.copyOnWrite === true, options.special);
  }

  stats(): FrontendStats {
    return { mountedAt: this.startedAt.toISOString(), openHandles: this.files.count, openFiles: this.files.files, ...this.counters, ...this.guard.stats() };
  }

  /** Commit linked working files into the store (LiveMount.filesLinked): open files re-check before changing. */
  filesLinked(): void {
    this.guard.filesLinked();
  }

  /** Current plaintext paths of files open for writing (LiveMount.openForWrite). */
  openForWrite(): Set<string> {
    return this.files.openForWrite();
  }

  /**
   * Tells the recorder about a change that already happened. A recording failure must not turn a successful
   * operation into an errno (the change is on disk); it is logged, and commit then misses the change unless
   * it rescans — so it is an error, not a warning.
   */
  private record(hook: (r: ChangeRecorder) => void): void {
    const r = this.options.recorder;
    if (!r) return;
    try {
      hook(r);
    } catch (e) {
      // The first failure and then every 1000th: a broken journal fails every operation's recording.
      if (this.counters.recordingErrors++ % 1000 === 0) {
        this.log.error({ err: describe(e), failures: this.counters.recordingErrors }, 'change journal: a change could not be recorded');
      }
    }
  }

  private get log(): Logger {
    return this.options.logger;
  }

  private writable(): void {
    if (this.options.readOnly) throw new FsError('EROFS');
  }

  /** Runs an operation, answering FUSE with its result or a negative errno. */
  private run<T>(op: string, path: string, body: () => Promise<T>, answer: (err: number, value?: T) => void): void {
    this.counters.operations++;
    if (this.traceOps) this.log.trace({ op, cipherPath: this.cipherPathOf(path) }, 'op');
    body().then(
      (value) => answer(0, value),
      (e: unknown) => {
        const errno = errnoOf(e);
        if (!QUIET.has(errno)) this.counters.errors++;
        if (e instanceof IntegrityError) {
          this.counters.integrityErrors++;
          this.log.error({ op, cipherPath: this.cipherPathOf(path), errno: 'EIO', block: e.block }, 'integrity error: ciphertext tampered or corrupt');
        } else if (!QUIET.has(errno)) {
          this.log.warn({ op, cipherPath: this.cipherPathOf(path), errno: errnoName(errno), err: describe(e) }, 'operation failed');
        }
        answer(-errno);
      },
    );
  }

  /**
   * What the logs name a file by: its ciphertext path relative to the tree. Logs live beside the ciphertext,
   * so they must not hold plaintext names any more than file contents.
   */
  private cipherPathOf(plainPath: string): string {
    try {
      const loc = this.tree.locateCached?.(plainPath);
      return loc ? loc.rawPath.slice(this.tree.root.length + 1) || '/' : '(not resolved yet)';
    } catch {
      return '(name cannot be encrypted)'; // e.g. too long; the name itself is not repeated
    }
  }

  private async statOf(loc: Location, st: Stats): Promise<FuseStat> {
    if (st.isFile()) {
      // An open file may be mid-write: its raw size can be momentarily impossible; ask the open file.
      const open = this.files.byInode(st.ino);
      if (open) return toFuseStat(st, await open.content.size());
      try {
        return toFuseStat(st, this.tree.plainSize(st, loc));
      } catch (e) {
        if (!(e instanceof IntegrityError)) throw e;
        // A damaged file must stay visible so it can be removed or renamed aside; reading it gives EIO.
        this.counters.integrityErrors++;
        this.log.error({ op: 'getattr', cipherPath: loc.rawPath.slice(this.tree.root.length + 1), errno: 'EIO' }, 'integrity error: impossible ciphertext size (shown as 0 bytes)');
        return toFuseStat(st, 0);
      }
    }
    if (st.isSymbolicLink()) return toFuseStat(st, Buffer.byteLength(this.tree.decodeLinkTarget(readlinkSync(loc.rawPath))));
    return toFuseStat(st, st.size);
  }

  private handle(fd: number): Handle {
    const h = this.files.get(fd);
    if (!h) throw new FsError('EBADF');
    return h;
  }

  operations(): FuseOperations {
    const ops = this.allOperations();
    if (!this.options.xattr) {
      delete ops.getxattr;
      delete ops.setxattr;
      delete ops.listxattr;
      delete ops.removexattr;
    }
    return ops;
  }

  private allOperations(): FuseOperations {
    const tree = this.tree;
    return {
      init: (cb) => cb(0),
      getattr: (path, cb) =>
        this.run('getattr', path, async () => {
          const loc = await tree.locate(path);
          return this.statOf(loc, lstatSync(loc.rawPath));
        }, cb),
      fgetattr: (path, fd, cb) =>
        this.run('fgetattr', path, async () => {
          const h = this.handle(fd);
          const st = await h.shared.content.rawStats();
          return toFuseStat(st, await h.shared.content.size());
        }, cb),
      access: (path, _mode, cb) =>
        this.run('access', path, async () => {
          lstatSync((await tree.locate(path)).rawPath);
        }, cb),
      statfs: (path, cb) =>
        this.run('statfs', path, async (): Promise<FuseStatfs> => {
          const s = statfsSync(tree.root);
          const cap = (n: number): number => Math.min(n, 0xffffffff);
          return { bsize: s.bsize, frsize: s.bsize, blocks: cap(s.blocks), bfree: cap(s.bfree), bavail: cap(s.bavail), files: cap(s.files), ffree: cap(s.ffree), favail: cap(s.ffree), fsid: 0, flag: 0, namemax: tree.maxNameBytes };
        }, cb),
      readdir: (path, cb) =>
        this.run('readdir', path, async () => {
          const dir = await tree.locate(path);
          await tree.prepareDir?.(dir);
          const names = ['.', '..'];
          const types = [ENTRY_TYPE_STATS.directory, ENTRY_TYPE_STATS.directory];
          for (const entry of readdirSync(dir.rawPath, { withFileTypes: true })) {
            try {
              const name = tree.decodeEntry(dir, entry.name);
              if (name === null) continue;
              names.push(name);
              types.push(entryTypeStat(entry));
            } catch (e) {
              this.log.warn({ op: 'readdir', cipherPath: this.cipherPathOf(path), cipherName: entry.name, err: describe(e) }, 'undecodable directory entry skipped');
            }
          }
          return { names, types };
        }, (err, listing) => cb(err, listing?.names ?? [], listing?.types ?? [])),
      create: (path, mode, cb) =>
        this.run('create', path, async () => {
          this.writable();
          const loc = await tree.locate(path);
          const content = await tree.openContent(loc, { create: true, mode: mode & 0o7777 });
          const st = await content.rawStats();
          const fd = await this.files.add(st.ino, async () => content, { writable: true, append: false, path });
          const shared = this.handle(fd).shared;
          if (shared.content !== content) await content.close(); // the file was open already: share that
          if (st.nlink === 1 && shared.writers === 1) this.guard.markExclusive(shared);
          this.record((r) => r.created(shared.id, path));
          return fd;
        }, cb),
      open: (path, flags, cb) =>
        this.run('open', path, async () => {
          const access = flags & 3; // O_ACCMODE
          const writable = access !== fsc.O_RDONLY;
          if (writable || flags & fsc.O_TRUNC) this.writable();
          const loc = await tree.locate(path);
          const st = lstatSync(loc.rawPath);
          if (st.isDirectory()) throw new FsError('EISDIR');
          const fd = await this.files.add(st.ino, () => tree.openContent(loc, { readOnly: this.options.readOnly }), { writable, append: (flags & fsc.O_APPEND) !== 0, path });
          const shared = this.handle(fd).shared;
          try {
            if (writable) await this.openedForWrite(shared, path);
            if (flags & fsc.O_TRUNC) {
              await this.guard.mutate(shared, path, 0, (content) => content.truncate(0));
              this.record((r) => r.truncated(shared.id, path, 0));
            }
          } catch (e) {
            if (writable) this.record((r) => r.releasedWrite(shared.id));
            await this.files.release(fd);
            throw e;
          }
          return fd;
        }, cb),
      read: (path, fd, buffer, length, position, cb) =>
        this.run('read', path, async () => {
          const data = await this.handle(fd).shared.content.read(position, length);
          data.copy(buffer);
          this.counters.bytesRead += data.length;
          return data.length;
        }, (err, n) => cb(err < 0 ? err : (n ?? 0))),
      write: (path, fd, buffer, length, position, cb) =>
        this.run('write', path, async () => {
          const h = this.handle(fd);
          if (!h.writable) throw new FsError('EBADF');
          const data = buffer.subarray(0, length);
          const id = h.shared.id;
          await this.guard.mutate(h.shared, path, undefined, async (content) => {
            const at = h.append ? await content.size() : position;
            // Same synchronous stretch as the write call: the hasher sees writes in the order the content
            // applies them (its lock is first come, first served).
            this.record((r) => r.write(id, at, data));
            try {
              await content.write(at, data);
            } catch (e) {
              this.record((r) => r.writeFailed(id));
              throw e;
            }
          });
          this.counters.bytesWritten += length;
          return length;
        }, (err, n) => cb(err < 0 ? err : (n ?? 0))),
      fsync: (path, _datasync, fd, cb) =>
        this.run('fsync', path, async () => {
          await this.handle(fd).shared.content.sync();
          // fsync is a durability point for the journal too: what was recorded so far survives a crash.
          await this.options.recorder?.flush();
        }, cb),
      release: (path, fd, cb) => this.run('release', path, () => this.release(fd), cb),
      truncate: (path, size, cb) =>
        this.run('truncate', path, async () => {
          this.writable();
          const loc = await tree.locate(path);
          const st = lstatSync(loc.rawPath);
          if (st.isDirectory()) throw new FsError('EISDIR');
          // Through a transient handle (shared with the file's open handles, if any): so copy-on-write and
          // concurrent opens see one FileContent. It is not a writer (commit need not wait for it).
          const fd = await this.files.add(st.ino, () => tree.openContent(loc, {}), { writable: false, append: false, path });
          try {
            const shared = this.handle(fd).shared;
            await this.guard.mutate(shared, path, size, (content) => content.truncate(size));
            this.record((r) => r.truncated(shared.id, path, size));
          } finally {
            await this.files.release(fd);
          }
        }, cb),
      ftruncate: (path, fd, size, cb) =>
        this.run('ftruncate', path, async () => {
          this.writable();
          const shared = this.handle(fd).shared;
          await this.guard.mutate(shared, path, size, (content) => content.truncate(size));
          this.record((r) => r.truncated(shared.id, path, size));
        }, cb),
      unlink: (path, cb) =>
        this.run('unlink', path, async () => {
          this.writable();
          unlinkSync((await tree.locate(path)).rawPath);
          this.files.unlinked(path);
          this.record((r) => r.unlinked(path));
        }, cb),
      mkdir: (path, mode, cb) =>
        this.run('mkdir', path, async () => {
          this.writable();
          await tree.mkdir(await tree.locate(path), mode & 0o7777);
          this.record((r) => r.mkdir(path));
        }, cb),
      rmdir: (path, cb) =>
        this.run('rmdir', path, async () => {
          this.writable();
          await tree.rmdir(await tree.locate(path));
          this.record((r) => r.rmdir(path));
        }, cb),
      rename: (src, dest, cb) =>
        this.run('rename', src, async () => {
          this.writable();
          const from = await tree.locate(src);
          const to = await tree.locate(dest);
          const replaced = existsRaw(to.rawPath);
          await tree.rename(from, to, (rawPath) => this.files.findByRawPath(rawPath));
          this.files.renamed(src, dest);
          this.record((r) => r.renamed(src, dest, replaced));
        }, cb),
      link: (src, dest, cb) =>
        this.run('link', src, async () => {
          this.writable();
          if (!tree.hardLinks) throw new FsError('EPERM', 'hard links are impossible with external IV chaining');
          const to = await tree.locate(dest);
          linkSync((await tree.locate(src)).rawPath, to.rawPath);
          if (this.options.recorder) {
            const size = await this.plainSizeAt(to);
            this.record((r) => r.linked(dest, size));
          }
        }, cb),
      symlink: (target, path, cb) =>
        this.run('symlink', path, async () => {
          this.writable();
          symlinkSync(tree.encodeLinkTarget(target), (await tree.locate(path)).rawPath);
          this.record((r) => r.symlink(path));
        }, cb),
      readlink: (path, cb) =>
        this.run('readlink', path, async () => tree.decodeLinkTarget(readlinkSync((await tree.locate(path)).rawPath)), cb),
      chmod: (path, mode, cb) =>
        this.run('chmod', path, async () => {
          this.writable();
          chmodSync((await tree.locate(path)).rawPath, mode & 0o7777);
          this.record((r) => r.meta(path));
        }, cb),
      chown: (path, uid, gid, cb) =>
        this.run('chown', path, async () => {
          this.writable();
          lchownSync((await tree.locate(path)).rawPath, uid, gid);
          this.record((r) => r.meta(path));
        }, cb),
      utimens: (path, atime, mtime, cb) =>
        this.run('utimens', path, async () => {
          this.writable();
          const raw = (await tree.locate(path)).rawPath;
          // With dvfs's fuse-native fix, UTIME_OMIT arrives as OMIT_MS: keep that time as it is.
          const current = atime >= OMIT_MS || mtime >= OMIT_MS ? lstatSync(raw) : null;
          lutimesSync(raw, current && atime >= OMIT_MS ? current.atime : atime / 1000, current && mtime >= OMIT_MS ? current.mtime : mtime / 1000);
          this.record((r) => r.meta(path));
        }, cb),
      mknod: (path, mode, _dev, cb) =>
        this.run('mknod', path, async () => {
          this.writable();
          const loc = await tree.locate(path);
          const type = mode & fsc.S_IFMT;
          if (type === fsc.S_IFREG || type === 0) {
            const content = await tree.openContent(loc, { create: true, mode: mode & 0o7777 });
            await content.close();
            this.record((r) => r.mknodFile(path));
          } else if (type === fsc.S_IFIFO) {
            await this.options.special.mkfifo(loc.rawPath, mode & 0o7777);
            this.record((r) => r.special(path));
          } else {
            throw new FsError('EPERM', 'only regular files and fifos can be created with mknod');
          }
        }, cb),
      setxattr: (path, name, value, _position, flags, cb) =>
        this.run('setxattr', path, async () => {
          this.writable();
          await this.options.special.setxattr((await tree.locate(path)).rawPath, name, value, flags);
          this.record((r) => r.meta(path));
        }, cb),
      getxattr: (path, name, _position, cb) =>
        this.run('getxattr', path, async () => this.options.special.getxattr((await tree.locate(path)).rawPath, name), (err, value) => cb(err, value ?? null)),
      listxattr: (path, cb) =>
        this.run('listxattr', path, async () => this.options.special.listxattr((await tree.locate(path)).rawPath), (err, list) => cb(err, list ?? [])),
      removexattr: (path, name, cb) =>
        this.run('removexattr', path, async () => {
          this.writable();
          await this.options.special.removexattr((await tree.locate(path)).rawPath, name);
          this.record((r) => r.meta(path));
        }, cb),
    };
  }

  /** A writable open: the recorder learns the size the file had before (its hash streams only from empty). */
  private async openedForWrite(shared: SharedFile, path: string): Promise<void> {
    if (shared.writers === 1) this.guard.recheck(shared);
    const recorder = this.options.recorder;
    if (!recorder) return;
    let size: number;
    try {
      size = await shared.content.size();
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      // Damaged ciphertext (it may be opened to be rewritten): any non-zero size makes the recorded hash
      // dirty, so commit hashes the file from disk.
      size = 1;
    }
    this.record((r) => r.openedForWrite(shared.id, path, size));
  }

  /** FUSE release: the last writer tells the recorder the file's final size (when it wants it). */
  private async release(fd: number): Promise<void> {
    const h = this.files.get(fd);
    const recorder = this.options.recorder;
    if (h && h.writable && recorder) {
      const id = h.shared.id;
      const size = recorder.needsFinalSize(id) ? await h.shared.content.size().catch(() => undefined) : undefined;
      this.record((r) => r.releasedWrite(id, size));
    }
    await this.files.release(fd);
  }

  /** Plaintext size of the file at `loc` (for a new hard link's record); 0 when it cannot be told. */
  private async plainSizeAt(loc: Location): Promise<number> {
    try {
      const st = lstatSync(loc.rawPath);
      const open = this.files.byInode(st.ino);
      return open ? await open.content.size() : this.tree.plainSize(st, loc);
    } catch {
      return 0;
    }
  }

  /** Flushes every open file to disk (the control socket's `flush`, and before unmount), and the journal. */
  async flush(): Promise<void> {
    await this.files.syncAll();
    await this.options.recorder?.flush();
  }

  /**
   * Closes every open file. Files still open for writing (a forced unmount) are recorded as far as known: the
   * recorder gets their final sizes first.
   */
  async close(): Promise<void> {
    if (this.options.recorder) {
      const sizes = await this.files.writerSizes();
      this.record((r) => r.releaseAll(sizes));
    }
    await this.files.closeAll();
  }
}
