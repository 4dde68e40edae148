/**
 * Content-addressed object storage: `REPO/.dvfs/objects/<2 hex>/<62 hex>` holds one ciphertext file of the
 * working tree's format whose plaintext has that object id (keyed BLAKE2b, see content-hash.ts). The store
 * never decrypts; it only files raw files under ids the caller computed.
 *
 * - addByLink hard-links a raw working-tree file in (no copy, no extra space), falling back to a copy when the
 *   filesystem refuses (EXDEV, EPERM, EMLINK, ENOTSUP). A linked object shares its inode with the working-tree
 *   file: the writer of that file must replace it (copy-up / write-new-and-rename) rather than write in place,
 *   or it would rewrite history (the daemon's copy-on-write keys on st_nlink > 1). A linked object keeps the
 *   working file's mode: the inode is shared, and making it read-only would change what the mount shows.
 *   Copied objects are read-only (0444).
 * - addByCopy copies through `objects/tmp/` (write, fsync, rename, fsync directory), so a crash never leaves a
 *   partial object under its id, only a leftover in tmp/ that cleanTemp() removes. An optional transform
 *   rewrites the file's leading header (a format whose file header is bound to the file's path).
 *
 * Both are idempotent: an id already present is not touched. Mutations (adds, removals, cleanTemp) are meant
 * to run under the repository lock (lock.ts); cleanTemp would otherwise remove another writer's in-flight file.
 */
import { constants as fsc, linkSync, mkdirSync, type Stats } from 'node:fs';
import { chmod, copyFile, link, mkdir, open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import { META_DIR } from '../repo/repository.js';
import type { ObjectId } from './content-hash.js';
import { fsyncDir, fsyncFile, tempName } from './durable.js';
import { cleanTempDir, listShardIds, listTemp, removeIfPresent, shardDir, shardPath, TMP_DIR } from './shards.js';

export const OBJECTS_DIR = 'objects';
export const OBJECT_MODE = 0o444;
/** Bytes handed to a header transform unless told otherwise: the EncFS per-file IV header. */
export const DEFAULT_HEADER_BYTES = 8;
const COPY_BUFFER_BYTES = 1 << 20;
/** Errors from link(2) after which a copy still works. */
const LINK_FALLBACK = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

export interface AddResult {
  /** false when the id was already stored (nothing was written). */
  added: boolean;
  /** Bytes of the object filed by this call (0 when not added). */
  bytes: number;
  /** true when the object is a hard link to the source file. */
  linked: boolean;
}

/**
 * Rewrites a file's leading header for the object copy. Receives the first `headerBytes` bytes (fewer for a
 * shorter file, none for an empty one); returns the bytes that replace them (any length), or null to keep them.
 */
export type HeaderTransform = (header: Buffer) => Buffer | null;

export interface AddByCopyOptions {
  /** How many leading bytes the transform sees and replaces; default DEFAULT_HEADER_BYTES. */
  headerBytes?: number;
}

export interface ObjectStoreOptions {
  /** fsync objects and directories (default true). Only tests and throwaway stores should turn this off. */
  fsync?: boolean;
}

const NOT_ADDED: AddResult = { added: false, bytes: 0, linked: false };

async function writeAll(fh: FileHandle, buf: Buffer, length: number): Promise<void> {
  let off = 0;
  while (off < length) off += (await fh.write(buf, off, length - off)).bytesWritten;
}

function sameVersion(a: Stats, b: Stats): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

export class ObjectStore {
  /** `REPO/.dvfs/objects`. */
  readonly dir: string;
  /** `REPO/.dvfs/objects/tmp`: in-flight copies. */
  readonly tmpDir: string;
  private readonly durable: boolean;

  constructor(
    readonly repoRoot: string,
    options: ObjectStoreOptions = {},
  ) {
    this.dir = join(repoRoot, META_DIR, OBJECTS_DIR);
    this.tmpDir = join(this.dir, TMP_DIR);
    this.durable = options.fsync !== false;
  }

  /** Where the object `id` is (or would be) stored. */
  path(id: ObjectId): string {
    return shardPath(this.dir, id);
  }

  async has(id: ObjectId): Promise<boolean> {
    try {
      return (await stat(this.path(id))).isFile();
    } catch (e) {
      if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return false;
      throw e;
    }
  }

  /** Size and link count of a stored object (E_NOTFOUND when missing). */
  async info(id: ObjectId): Promise<{ size: number; nlink: number }> {
    const path = this.path(id);
    try {
      const st = await stat(path);
      return { size: st.size, nlink: st.nlink };
    } catch (e) {
      if (isNodeError(e) && e.code === 'ENOENT') {
        throw new DvfsError('E_NOTFOUND', `object ${id} is missing from repository ${this.repoRoot}`, { path });
      }
      throw e;
    }
  }

  /** Files `rawPath` under `id` by hard link (copying when the filesystem cannot link it). */
  async addByLink(id: ObjectId, rawPath: string): Promise<AddResult> {
    const target = this.path(id);
    if (await this.has(id)) return NOT_ADDED;
    const st = await this.sourceStat(rawPath);
    await this.ensureDir(shardDir(this.dir, id));
    // The data must be durable before a name in the store points at it.
    if (this.durable) await fsyncFile(rawPath);
    try {
      await link(rawPath, target);
    } catch (e) {
      if (isNodeError(e) && e.code === 'EEXIST') return NOT_ADDED;
      if (isNodeError(e) && e.code !== undefined && LINK_FALLBACK.has(e.code)) return this.addByCopy(id, rawPath);
      throw e;
    }
    if (this.durable) await fsyncDir(shardDir(this.dir, id));
    return { added: true, bytes: st.size, linked: true };
  }

  /**
   * The commit hot path: hard-links `rawPath` (a regular file the caller just lstat'ed) in as `id` — one
   * link(2), plus a mkdir(2) the first time in the repository's life a shard directory is needed.
   * Synchronous: measured on 10 000 files, parallel async links on the thread pool were 10 % slower.
   * 'exists': the id was stored already (nothing done); 'unlinkable': the filesystem refuses hard links here
   * (use addByCopy). Durability is the caller's business (commit syncs the filesystem once).
   */
  linkInSync(id: ObjectId, rawPath: string): 'added' | 'exists' | 'unlinkable' {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(rawPath, this.path(id));
        return 'added';
      } catch (e) {
        if (!isNodeError(e)) throw e;
        if (e.code === 'EEXIST') return 'exists';
        // The shard directory does not exist yet (made once in the repository's life, not per commit).
        if (e.code === 'ENOENT' && attempt === 0) {
          mkdirSync(shardDir(this.dir, id), { recursive: true, mode: 0o700 });
          continue;
        }
        if (e.code !== undefined && LINK_FALLBACK.has(e.code)) return 'unlinkable';
        throw e;
      }
    }
  }

  /**
   * Files a copy of `rawPath` under `id`, optionally with its header rewritten. The copy is made in tmp/ and
   * renamed into place only when complete and fsynced. Fails (E_IO) when the source changes during the copy.
   */
  async addByCopy(id: ObjectId, rawPath: string, transform?: HeaderTransform, options: AddByCopyOptions = {}): Promise<AddResult> {
    const target = this.path(id);
    if (await this.has(id)) return NOT_ADDED;
    const headerBytes = options.headerBytes ?? DEFAULT_HEADER_BYTES;
    if (!Number.isSafeInteger(headerBytes) || headerBytes < 0 || headerBytes > COPY_BUFFER_BYTES) {
      throw new DvfsError('E_USAGE', `headerBytes must be an integer in 0..${COPY_BUFFER_BYTES}`);
    }
    await this.ensureDir(this.tmpDir);
    await this.ensureDir(shardDir(this.dir, id));
    const tmp = join(this.tmpDir, tempName());
    let renamed = false;
    try {
      const before = await this.sourceStat(rawPath);
      const bytes = transform === undefined ? await this.plainCopy(rawPath, tmp) : await this.transformCopy(rawPath, tmp, transform, headerBytes);
      const after = await stat(rawPath);
      if (!sameVersion(before, after)) {
        throw new DvfsError('E_IO', `file changed while it was being stored as object ${id}`, {
          path: rawPath,
          hint: 'snapshot files only while nothing writes them',
        });
      }
      await rename(tmp, target);
      renamed = true;
      if (this.durable) await fsyncDir(shardDir(this.dir, id));
      return { added: true, bytes, linked: false };
    } finally {
      if (!renamed) await rm(tmp, { force: true });
    }
  }

  /** Every stored id (no particular order). */
  ids(): AsyncIterable<ObjectId> {
    return listShardIds(this.dir);
  }

  /** Deletes an object; false when it was not there. */
  remove(id: ObjectId): Promise<boolean> {
    return removeIfPresent(this.path(id));
  }

  /** Leftovers of interrupted copies (absolute paths). */
  tempFiles(): Promise<string[]> {
    return listTemp(this.tmpDir);
  }

  /** Removes the leftovers of interrupted copies; returns how many. Run it under the repository lock. */
  cleanTemp(): Promise<number> {
    return cleanTempDir(this.tmpDir);
  }

  private async sourceStat(rawPath: string): Promise<Stats> {
    const st = await stat(rawPath);
    if (!st.isFile()) throw new DvfsError('E_USAGE', 'only regular files can be stored as objects', { path: rawPath });
    return st;
  }

  private async ensureDir(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  }

  /** Copy (a reflink where the filesystem offers one); returns the bytes copied. */
  private async plainCopy(rawPath: string, tmp: string): Promise<number> {
    await copyFile(rawPath, tmp, fsc.COPYFILE_EXCL | fsc.COPYFILE_FICLONE);
    // The copy has the source's mode (maybe already 0444): chmod by path, fsync through a read-only handle.
    await chmod(tmp, OBJECT_MODE);
    const fh = await open(tmp, 'r');
    try {
      if (this.durable) await fh.sync();
      return (await fh.stat()).size;
    } finally {
      await fh.close();
    }
  }

  private async transformCopy(rawPath: string, tmp: string, transform: HeaderTransform, headerBytes: number): Promise<number> {
    const src = await open(rawPath, 'r');
    try {
      const buf = Buffer.allocUnsafe(COPY_BUFFER_BYTES);
      const { bytesRead: headerRead } = await src.read(buf, 0, headerBytes, 0);
      const header = Buffer.from(buf.subarray(0, headerRead));
      const replaced = transform(header);
      const dst = await open(tmp, 'wx', 0o600);
      try {
        const head = replaced ?? header;
        await writeAll(dst, head, head.length);
        let written = head.length;
        let pos = headerRead;
        for (;;) {
          const { bytesRead } = await src.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) break;
          pos += bytesRead;
          await writeAll(dst, buf, bytesRead);
          written += bytesRead;
        }
        await dst.chmod(OBJECT_MODE);
        if (this.durable) await dst.sync();
        return written;
      } finally {
        await dst.close();
      }
    } finally {
      await src.close();
    }
  }
}
