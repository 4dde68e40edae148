/**
 * The plaintext view of a CryptoTree without any mount: list, stat, read, write, mkdir, symlink. Used by the
 * FUSE-free CLI (`ls`, `cat`, `put`) on login nodes, for every on-disk format.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc, type Stats } from 'node:fs';
import { chmod, lstat, readdir, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import type { CryptoTree, FileContent, Location } from './crypto-tree.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'other';

export interface Entry {
  name: string;
  type: EntryType;
  /** Plaintext size (symlinks: length of the target; -1 when the ciphertext size is impossible). */
  size: number;
  mode: number;
  mtimeMs: number;
  /** Name of the ciphertext entry, relative to its directory. */
  cipherName: string;
}

/** A directory entry that could not be decoded: EncFS hides these; dvfs reports them. */
export interface UndecodableEntry {
  cipherName: string;
  reason: string;
}

export interface Listing {
  entries: Entry[];
  undecodable: UndecodableEntry[];
}

/** Temporary ciphertext names dvfs writes (contain '.', so no format ever decodes them as names). */
export const TEMP_PREFIX = '.dvfs-tmp-';

function typeOf(mode: number): EntryType {
  switch (mode & fsc.S_IFMT) {
    case fsc.S_IFREG:
      return 'file';
    case fsc.S_IFDIR:
      return 'dir';
    case fsc.S_IFLNK:
      return 'symlink';
    case fsc.S_IFIFO:
      return 'fifo';
    default:
      return 'other';
  }
}

const parentOf = (p: string): string => (dirname(p) === '.' ? '' : dirname(p));

export class PlainView {
  constructor(readonly tree: CryptoTree) {}

  async list(plainDir: string): Promise<Listing> {
    const dir = await this.tree.locate(plainDir);
    let names: string[];
    await this.tree.prepareDir?.(dir).catch(() => undefined);
    try {
      names = await readdir(dir.rawPath);
    } catch (e) {
      throw fsError(e, plainDir);
    }
    const entries: Entry[] = [];
    const undecodable: UndecodableEntry[] = [];
    for (const cipherName of names.sort()) {
      let name: string | null;
      try {
        name = this.tree.decodeEntry(dir, cipherName);
      } catch (e) {
        undecodable.push({ cipherName, reason: e instanceof DvfsError ? e.message : String(e) });
        continue;
      }
      if (name === null) continue;
      const loc = await this.tree.child(dir, name);
      entries.push(await this.entryFrom(loc, cipherName, await lstat(join(dir.rawPath, cipherName))));
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { entries, undecodable };
  }

  async stat(plainPath: string): Promise<Entry> {
    const loc = await this.tree.locate(plainPath);
    let st: Stats;
    try {
      st = await lstat(loc.rawPath);
    } catch (e) {
      throw fsError(e, plainPath);
    }
    return this.entryFrom(loc, basename(loc.rawPath), st);
  }

  private async entryFrom(loc: Location, cipherName: string, st: Stats): Promise<Entry> {
    const type = typeOf(st.mode);
    let size = st.size;
    if (type === 'file') {
      try {
        size = this.tree.plainSize(st, loc);
      } catch {
        size = -1;
      }
    } else if (type === 'symlink') {
      try {
        size = Buffer.byteLength(this.tree.decodeLinkTarget(await readlink(loc.rawPath)));
      } catch {
        size = -1;
      }
    }
    return { name: basename(loc.plainPath) || '/', type, size, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, cipherName };
  }

  async openFile(plainPath: string, options: { create?: boolean; readOnly?: boolean } = {}): Promise<FileContent> {
    const loc = await this.tree.locate(plainPath);
    try {
      return await this.tree.openContent(loc, options);
    } catch (e) {
      throw fsError(e, plainPath);
    }
  }

  async readFile(plainPath: string): Promise<Buffer> {
    const file = await this.openFile(plainPath, { readOnly: true });
    try {
      return await file.read(0, await file.size());
    } finally {
      await file.close();
    }
  }

  /**
   * Writes a whole file atomically: the ciphertext goes to a temporary name beside the target (sealed for the
   * target's path) and is renamed over it only once complete, so a failure leaves the old file untouched.
   */
  async writeFile(plainPath: string, source: AsyncIterable<Buffer> | Buffer, mode = 0o644): Promise<number> {
    await this.requireDir(parentOf(plainPath), plainPath);
    const target = await this.tree.locate(plainPath);
    const tmp: Location = { ...target, rawPath: join(dirname(target.rawPath), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`) };
    const file = await this.tree.openContent(tmp, { create: true, mode });
    let written = 0;
    try {
      for await (const chunk of Buffer.isBuffer(source) ? [source] : source) {
        await file.write(written, chunk);
        written += chunk.length;
      }
      if (written === 0) await file.truncate(0);
      await file.sync();
      await file.close();
      await chmod(tmp.rawPath, mode);
      await rename(tmp.rawPath, target.rawPath);
    } catch (e) {
      await file.close().catch(() => undefined);
      await unlink(tmp.rawPath).catch(() => undefined);
      throw e instanceof DvfsError ? e : fsError(e, plainPath);
    }
    return written;
  }

  async mkdir(plainPath: string, mode = 0o755): Promise<void> {
    await this.requireDir(parentOf(plainPath), plainPath);
    try {
      await this.tree.mkdir(await this.tree.locate(plainPath), mode);
    } catch (e) {
      throw fsError(e, plainPath);
    }
  }

  /** mkdir -p: creates missing directories along the path, refuses to go through non-directories. */
  async mkdirp(plainPath: string): Promise<void> {
    let prefix = '';
    for (const component of plainPath.split('/').filter((c) => c.length > 0)) {
      prefix = prefix === '' ? component : `${prefix}/${component}`;
      const loc = await this.tree.locate(prefix);
      try {
        await this.tree.mkdir(loc, 0o755);
      } catch (e) {
        if (!(isNodeError(e) && e.code === 'EEXIST')) throw fsError(e, prefix);
        if (!(await lstat(loc.rawPath)).isDirectory()) throw new DvfsError('E_NOTDIR', 'exists and is not a directory', { path: prefix });
      }
    }
  }

  async symlink(target: string, plainPath: string): Promise<void> {
    await this.requireDir(parentOf(plainPath), plainPath);
    try {
      await symlink(this.tree.encodeLinkTarget(target), (await this.tree.locate(plainPath)).rawPath);
    } catch (e) {
      throw fsError(e, plainPath);
    }
  }

  async readlink(plainPath: string): Promise<string> {
    const loc = await this.tree.locate(plainPath);
    try {
      return this.tree.decodeLinkTarget(await readlink(loc.rawPath));
    } catch (e) {
      throw e instanceof DvfsError ? new DvfsError(e.code, e.message, { path: plainPath }) : fsError(e, plainPath);
    }
  }

  async remove(plainPath: string): Promise<void> {
    try {
      await rm((await this.tree.locate(plainPath)).rawPath, { recursive: true });
    } catch (e) {
      throw fsError(e, plainPath);
    }
  }

  private async requireDir(plainDir: string, forPath: string): Promise<void> {
    let st: Stats;
    try {
      st = await lstat((await this.tree.locate(plainDir)).rawPath);
    } catch {
      throw new DvfsError('E_NOTFOUND', `parent directory ${plainDir || '/'} does not exist`, { path: forPath, hint: 'create it first (dvfs put creates missing parents)' });
    }
    if (!st.isDirectory()) throw new DvfsError('E_NOTDIR', `parent ${plainDir || '/'} is not a directory`, { path: forPath });
  }
}

/** Maps a Node filesystem error on a ciphertext path to a DvfsError naming the plaintext path. */
export function fsError(e: unknown, plainPath: string): Error {
  if (e instanceof DvfsError) return e;
  if (isNodeError(e)) {
    const path = plainPath === '' ? '/' : plainPath;
    switch (e.code) {
      case 'ENOENT':
        return new DvfsError('E_NOTFOUND', 'no such file or directory', { path });
      case 'EEXIST':
        return new DvfsError('E_EXISTS', 'already exists', { path });
      case 'ENOTDIR':
        return new DvfsError('E_NOTDIR', 'not a directory', { path });
      case 'EISDIR':
        return new DvfsError('E_ISDIR', 'is a directory', { path });
      default:
        return new DvfsError('E_IO', `${e.code}: ${e.message}`, { path });
    }
  }
  return e instanceof Error ? e : new Error(String(e));
}

