/**
 * The `file:///PATH` backend: keys are files under a root directory (`data/ab/cd…` is `ROOT/data/ab/cd…`).
 * The embedded default: a directory on a shared filesystem, a USB disk, or a test fixture.
 *
 * - put() writes into `ROOT/.tmp/` (which is never a key), fsyncs, renames into place (creating directories as
 *   needed) and fsyncs the directory: a key holds the old or the new object, never a torn one, and a finished
 *   put survives power loss. Leftovers of interrupted puts stay in `.tmp/` (cleanTemp() removes them).
 * - Files are created 0600 and directories 0700 by default: the remote holds the password-wrapped volume key.
 * - Filesystem errors are mapped: ENOENT -> NotFoundError; EIO, EAGAIN, EBUSY, ETIMEDOUT, ESTALE, EINTR ->
 *   TransientError (network filesystems hiccup); anything else (EACCES, ENOSPC, EROFS…) -> PermanentError.
 */
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import { fsyncDir, tempName } from '../store/durable.js';
import {
  bodyChunks,
  checkKey,
  checkRange,
  NotFoundError,
  PermanentError,
  TransientError,
  wrongSize,
  type Backend,
  type Body,
  type ObjectInfo,
} from './backend.js';
import { formatRemoteUrl } from './url.js';

export const FILE_TMP_DIR = '.tmp';
const TRANSIENT_CODES = new Set(['EIO', 'EAGAIN', 'EBUSY', 'ETIMEDOUT', 'ESTALE', 'EINTR', 'ECONNRESET', 'EMFILE', 'ENFILE']);

export interface FileBackendOptions {
  /** fsync files and directories (default true). */
  fsync?: boolean;
  /** Mode of new files (default 0o600). */
  fileMode?: number;
  /** Mode of new directories (default 0o700). */
  dirMode?: number;
}

/** Maps a filesystem error of operation `op` on `key` to a backend error (non-fs errors pass through). */
export function mapFsError(e: unknown, op: string, key: string, path: string): unknown {
  if (e instanceof DvfsError || !isNodeError(e) || e.code === undefined) return e;
  const msg = `${op} ${key}: ${e.code} ${e.message}`;
  if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return new NotFoundError(`${op} ${key}: no such object`, { key, path, cause: e });
  if (TRANSIENT_CODES.has(e.code)) return new TransientError(msg, { key, path, cause: e });
  return new PermanentError(msg, { key, path, cause: e });
}

export class FileBackend implements Backend {
  readonly root: string;
  readonly location: string;
  readonly tmpDir: string;
  private readonly durable: boolean;
  private readonly fileMode: number;
  private readonly dirMode: number;

  constructor(root: string, options: FileBackendOptions = {}) {
    this.root = resolve(root);
    this.location = formatRemoteUrl({ scheme: 'file', path: this.root });
    this.tmpDir = join(this.root, FILE_TMP_DIR);
    this.durable = options.fsync !== false;
    this.fileMode = options.fileMode ?? 0o600;
    this.dirMode = options.dirMode ?? 0o700;
  }

  /** The file of a key (checked: no `..`, no absolute paths, not inside `.tmp/`). */
  path(key: string): string {
    checkKey(key);
    if (key === FILE_TMP_DIR || key.startsWith(`${FILE_TMP_DIR}/`)) {
      throw new PermanentError(`invalid key ${JSON.stringify(key)}: ${FILE_TMP_DIR}/ is reserved for in-flight writes`, { code: 'E_USAGE', key });
    }
    return join(this.root, key);
  }

  async put(key: string, body: Body, size: number): Promise<void> {
    const target = this.path(key);
    await this.mkdirs(this.tmpDir, key, target);
    const tmp = join(this.tmpDir, tempName());
    let renamed = false;
    try {
      const fh = await open(tmp, 'wx', this.fileMode);
      try {
        let n = 0;
        if (body instanceof Uint8Array) {
          if (body.length !== size) throw wrongSize(key, size, body.length);
          await fh.writeFile(body);
          n = body.length;
        } else {
          for await (const chunk of bodyChunks(body)) {
            if (n + chunk.length > size) throw wrongSize(key, size, n + chunk.length, true);
            let off = 0;
            while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off, n + off)).bytesWritten;
            n += chunk.length;
          }
          if (n !== size) throw wrongSize(key, size, n);
        }
        if (this.durable) await fh.sync();
      } finally {
        await fh.close();
      }
      await this.mkdirs(dirname(target), key, target);
      await rename(tmp, target);
      renamed = true;
      if (this.durable) await fsyncDir(dirname(target));
    } catch (e) {
      throw putError(mapFsError(e, 'PUT', key, target));
    } finally {
      if (!renamed) await rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /** A file has no parts: the same streamed, atomic write as put(). */
  putLarge(key: string, body: Body, size: number): Promise<void> {
    return this.put(key, body, size);
  }

  async get(key: string): Promise<Buffer> {
    const path = this.path(key);
    try {
      return await readFile(path);
    } catch (e) {
      throw mapFsError(e, 'GET', key, path);
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    checkRange(key, offset, length);
    const path = this.path(key);
    try {
      const fh = await open(path, 'r');
      try {
        const size = (await fh.stat()).size;
        const n = Math.max(0, Math.min(length, size - offset));
        const buf = Buffer.allocUnsafe(n);
        let got = 0;
        while (got < n) {
          const { bytesRead } = await fh.read(buf, got, n - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return got === n ? buf : buf.subarray(0, got);
      } finally {
        await fh.close();
      }
    } catch (e) {
      throw mapFsError(e, 'GET', key, path);
    }
  }

  async head(key: string): Promise<number | null> {
    const path = this.path(key);
    try {
      const st = await stat(path);
      if (!st.isFile()) throw new PermanentError(`HEAD ${key}: not a regular file`, { key, path });
      return st.size;
    } catch (e) {
      const mapped = mapFsError(e, 'HEAD', key, path);
      if (mapped instanceof NotFoundError) return null;
      throw mapped;
    }
  }

  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    // Walk from the deepest directory the prefix names completely ("data/a" -> "data").
    const cut = prefix.lastIndexOf('/');
    const base = cut < 0 ? '' : prefix.slice(0, cut);
    if (base !== '') checkKey(base);
    yield* this.walk(base, prefix);
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (const key of keys) {
      const path = this.path(key);
      try {
        await unlink(path);
      } catch (e) {
        const mapped = mapFsError(e, 'DELETE', key, path);
        if (!(mapped instanceof NotFoundError)) throw mapped;
      }
    }
  }

  /** Removes leftovers of interrupted puts; returns how many. Only while nobody else writes to this remote. */
  async cleanTemp(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.tmpDir);
    } catch (e) {
      if (isNodeError(e) && e.code === 'ENOENT') return 0;
      throw e;
    }
    for (const n of names) await rm(join(this.tmpDir, n), { force: true, recursive: true });
    return names.length;
  }

  async close(): Promise<void> {
    // nothing held open
  }

  private async mkdirs(dir: string, key: string, path: string): Promise<void> {
    try {
      await mkdir(dir, { recursive: true, mode: this.dirMode });
    } catch (e) {
      throw putError(mapFsError(e, 'PUT', key, path));
    }
  }

  private async *walk(rel: string, prefix: string): AsyncGenerator<ObjectInfo> {
    const dir = rel === '' ? this.root : join(this.root, rel);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return;
      throw mapFsError(e, 'LIST', rel === '' ? '/' : rel, dir);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const ent of entries) {
      if (rel === '' && ent.name === FILE_TMP_DIR) continue;
      const key = rel === '' ? ent.name : `${rel}/${ent.name}`;
      if (ent.isDirectory()) {
        // Descend only where keys with the prefix can be.
        const asDir = `${key}/`;
        if (asDir.startsWith(prefix) || prefix.startsWith(asDir)) yield* this.walk(key, prefix);
      } else if (ent.isFile() && key.startsWith(prefix)) {
        let size: number;
        try {
          size = (await stat(join(dir, ent.name))).size;
        } catch (e) {
          if (isNodeError(e) && e.code === 'ENOENT') continue; // deleted meanwhile
          throw mapFsError(e, 'LIST', key, join(dir, ent.name));
        }
        yield { key, size };
      }
    }
  }
}

/** A path component that is not a directory is no "not found" for a write: the put cannot work. */
function putError(e: unknown): unknown {
  if (!(e instanceof NotFoundError)) return e;
  return new PermanentError(e.message.replace(/no such object$/, 'a path component is missing or not a directory'), {
    ...(e.key === undefined ? {} : { key: e.key }),
    ...(e.path === undefined ? {} : { path: e.path }),
    cause: e.cause,
  });
}
