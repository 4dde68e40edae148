/**
 * A dvfs-native volume as a CryptoTree: authenticated names (per-directory IVs), authenticated chunked
 * contents, sealed symlink targets. Contents are not bound to paths and names are bound to their directory's
 * own random IV (not to its path), so rename is one raw rename and hard links work.
 *
 * Directory IVs are cached by raw path. Every way a raw path can become a different directory (mkdir, rmdir,
 * rename) goes through this class and updates the cache; a volume must not be changed behind a mounted tree.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readFileSync, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { constants as osc } from 'node:os';
import { join, resolve } from 'node:path';
import sodium from 'sodium-native';
import { DvfsError, IntegrityError, isNodeError } from '../errors.js';
import { writeFileAtomic } from '../store/durable.js';
import type { CryptoTree, FileContent, Location, OpenFileLookup } from '../vfs/crypto-tree.js';
import {
  DEFAULT_CHUNK_SIZE,
  NATIVE_CONFIG_FILE,
  readNativeConfig,
  resealNativeConfig,
  sealNativeConfig,
  serializeNativeConfig,
  unlockNativeConfig,
  unlockNativeConfigWithMaster,
  validateChunkSize,
  type NativeConfig,
  type NativeParams,
} from './config.js';
import { ChunkLayout, NativeFile, type OpenContentOptions } from './content.js';
import { NativeKeys } from './keys.js';
import { DIRIV_BYTES, DIRIV_FILE, MAX_NAME_BYTES, NameCipher, isHiddenEntry } from './names.js';

/** Per-location state: the IV the location's children are encoded under (null: not a directory, or not loaded yet). */
export interface NativeCtx {
  dirIV: Buffer | null;
}

export type NativeLocation = Location<NativeCtx>;

/** Directory IVs kept in memory (insertion-ordered eviction beyond this). */
const IV_CACHE_LIMIT = 65536;

function errnoError(code: 'ENOTEMPTY', syscall: string, path: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: directory not empty, ${syscall} '${path}'`);
  e.code = code;
  e.errno = -osc.errno[code];
  e.syscall = syscall;
  e.path = path;
  return e;
}

function splitPath(path: string): string[] {
  return path.split('/').filter((c) => c.length > 0);
}

export class NativeTree implements CryptoTree<NativeCtx> {
  readonly format = 'native' as const;
  readonly maxNameBytes = MAX_NAME_BYTES;
  readonly hardLinks = true;
  /** The ciphertext directory (absolute). */
  readonly root: string;
  readonly layout: ChunkLayout;
  /** Called with every IntegrityError this tree throws (set it to the daemon's logger). */
  onIntegrityError: ((e: IntegrityError) => void) | undefined;
  private readonly names: NameCipher;
  private readonly ivCache = new Map<string, Buffer>();
  private readonly report = (e: IntegrityError): void => this.onIntegrityError?.(e);

  constructor(
    root: string,
    readonly configPath: string,
    readonly config: NativeConfig,
    private readonly keys: NativeKeys,
    rootIV: Buffer,
  ) {
    this.root = resolve(root);
    this.layout = new ChunkLayout(config.chunkSize);
    this.names = new NameCipher(keys);
    this.ivCache.set(this.root, rootIV);
  }

  /** A secure copy of the master key (what a key slot seals); the caller wipes it. */
  exportMasterKey(): Buffer {
    return this.keys.exportMaster();
  }

  /** Seals the master key under a new password and replaces the config atomically (`dvfs key passwd`). */
  async changePassword(password: Buffer): Promise<void> {
    const config = await resealNativeConfig(this.config, this.keys, password, this.configPath);
    await writeFileAtomic(this.configPath, Buffer.from(serializeNativeConfig(config), 'utf8'), { mode: 0o600 });
  }

  snapshotSecret(): Buffer {
    const out = sodium.sodium_malloc(this.keys.plaintextHash.length);
    out.set(this.keys.plaintextHash);
    return out;
  }

  /** Keyed-hash subkey reserved for plaintext hashes (secure memory; do not keep copies). */
  get plaintextHashKey(): Buffer {
    return this.keys.plaintextHash;
  }

  // --- locations ----------------------------------------------------------------------------------------

  async locate(plainPath: string): Promise<NativeLocation> {
    let loc: NativeLocation = { plainPath: '', rawPath: this.root, ctx: { dirIV: this.cachedIV(this.root) } };
    for (const component of splitPath(plainPath)) {
      // Directory IVs are usually cached: stay synchronous until one has to be read.
      loc = loc.ctx.dirIV !== null ? this.childOf(loc, component, loc.ctx.dirIV) : await this.child(loc, component);
    }
    return loc;
  }

  /** The location of a path when every directory IV on the way is cached (no I/O); else undefined. */
  locateCached(plainPath: string): NativeLocation | undefined {
    let loc: NativeLocation = { plainPath: '', rawPath: this.root, ctx: { dirIV: this.cachedIV(this.root) } };
    for (const component of splitPath(plainPath)) {
      if (loc.ctx.dirIV === null) return undefined;
      loc = this.childOf(loc, component, loc.ctx.dirIV);
    }
    return loc;
  }

  async child(dir: NativeLocation, name: string): Promise<NativeLocation> {
    const iv = dir.ctx.dirIV ?? (dir.ctx.dirIV = await this.loadDirIV(dir));
    return this.childOf(dir, name, iv);
  }

  private childOf(dir: NativeLocation, name: string, iv: Buffer): NativeLocation {
    const plainPath = dir.plainPath === '' ? name : `${dir.plainPath}/${name}`;
    const cipher = this.names.encode(name, iv, plainPath);
    const rawPath = dir.rawPath.endsWith('/') ? dir.rawPath + cipher : `${dir.rawPath}/${cipher}`;
    return { plainPath, rawPath, ctx: { dirIV: this.cachedIV(rawPath) } };
  }

  decodeEntry(dir: NativeLocation, cipherName: string): string | null {
    if (isHiddenEntry(cipherName)) return null;
    const iv = dir.ctx.dirIV ?? (dir.ctx.dirIV = this.loadDirIVSync(dir));
    return this.names.decode(cipherName, iv, dir.plainPath);
  }

  /**
   * Loads (and caches) the IV of directory `dir`, so a following decodeEntry needs no synchronous read. The
   * frontend may call it after opendir; decodeEntry falls back to a synchronous read otherwise.
   */
  async prepareDir(dir: NativeLocation): Promise<void> {
    dir.ctx.dirIV ??= await this.loadDirIV(dir);
  }

  /** Forgets cached directory IVs at and below `rawPath` (all when omitted). */
  invalidate(rawPath?: string): void {
    if (rawPath === undefined) {
      const rootIV = this.ivCache.get(this.root);
      this.ivCache.clear();
      if (rootIV !== undefined) this.ivCache.set(this.root, rootIV);
      return;
    }
    const prefix = `${rawPath}/`;
    for (const key of [...this.ivCache.keys()]) {
      if ((key === rawPath || key.startsWith(prefix)) && key !== this.root) this.ivCache.delete(key);
    }
  }

  // --- contents -----------------------------------------------------------------------------------------

  plainSize(rawStats: Stats, location: NativeLocation): number {
    try {
      return this.layout.checkedPlainSize(rawStats.size, location.plainPath);
    } catch (e) {
      if (e instanceof IntegrityError) this.report(e);
      throw e;
    }
  }

  openContent(location: NativeLocation, options: OpenContentOptions): Promise<FileContent> {
    return NativeFile.open(location.rawPath, options, this.layout, this.keys, location.plainPath || '/', this.report);
  }

  // --- directories and links ----------------------------------------------------------------------------

  /** Creates the directory and its IV file; the mode is applied like mkdir(2) (with the process umask). */
  async mkdir(location: NativeLocation, mode: number): Promise<void> {
    const raw = location.rawPath;
    await mkdir(raw, { mode: (mode & 0o7777) | 0o700 });
    const iv = randomBytes(DIRIV_BYTES);
    try {
      await writeFile(join(raw, DIRIV_FILE), iv, { mode: 0o444, flag: 'wx' });
      if ((mode & 0o700) !== 0o700) {
        const st = await lstat(raw);
        await chmod(raw, (st.mode & 0o7077) | (mode & 0o700));
      }
    } catch (e) {
      await unlink(join(raw, DIRIV_FILE)).catch(() => undefined);
      await rmdir(raw).catch(() => undefined);
      throw e;
    }
    this.cacheIV(raw, iv);
    location.ctx.dirIV = iv;
  }

  /**
   * Removes an empty directory: rmdir(2) of a dvfs-native directory must also remove its IV file, so the
   * frontend calls this instead of a raw rmdir. Throws ENOTEMPTY when it has entries.
   */
  async rmdir(location: NativeLocation): Promise<void> {
    const raw = location.rawPath;
    const st = await lstat(raw);
    if (!st.isDirectory()) {
      await rmdir(raw); // the ENOTDIR rmdir(2) gives
      return;
    }
    const iv = await this.takeDirIV(raw, 'rmdir');
    try {
      await rmdir(raw);
    } catch (e) {
      if (iv !== null) await this.restoreDirIV(raw, iv);
      throw e;
    }
    this.invalidate(raw);
    location.ctx.dirIV = null;
  }

  encodeLinkTarget(target: string): string {
    return this.names.encodeLinkTarget(target);
  }

  decodeLinkTarget(stored: string): string {
    try {
      return this.names.decodeLinkTarget(stored);
    } catch (e) {
      if (e instanceof IntegrityError) this.report(e);
      throw e;
    }
  }

  /** Decodes a symlink target, naming the link in errors. */
  decodeLinkTargetAt(stored: string, location: NativeLocation): string {
    try {
      return this.names.decodeLinkTarget(stored, location.plainPath);
    } catch (e) {
      if (e instanceof IntegrityError) this.report(e);
      throw e;
    }
  }

  /**
   * rename(2) on the raw tree. Nothing depends on paths, so open files need no re-sealing. A directory
   * replacing an empty directory first takes the target's IV file out (restored if the rename fails).
   */
  async rename(from: NativeLocation, to: NativeLocation, _openFiles: OpenFileLookup): Promise<void> {
    const fromStats = await lstat(from.rawPath);
    let replacedIV: Buffer | null = null;
    let replacedDir = false;
    if (fromStats.isDirectory() && from.rawPath !== to.rawPath) {
      let toStats: Stats | null = null;
      try {
        toStats = await lstat(to.rawPath);
      } catch (e) {
        if (!(isNodeError(e) && e.code === 'ENOENT')) throw e;
      }
      if (toStats !== null && toStats.isDirectory() && toStats.ino !== fromStats.ino) {
        replacedIV = await this.takeDirIV(to.rawPath, 'rename');
        replacedDir = true;
      }
    }
    try {
      await rename(from.rawPath, to.rawPath);
    } catch (e) {
      if (replacedDir && replacedIV !== null) await this.restoreDirIV(to.rawPath, replacedIV);
      throw e;
    }
    if (fromStats.isDirectory() && from.rawPath !== to.rawPath) {
      this.invalidate(to.rawPath);
      this.moveCached(from.rawPath, to.rawPath);
      to.ctx.dirIV = from.ctx.dirIV ?? this.cachedIV(to.rawPath);
      from.ctx.dirIV = null;
    }
  }

  /** Wipes the volume keys; the tree and its open files must not be used afterwards. */
  dispose(): void {
    this.keys.destroy();
    this.ivCache.clear();
    this.names.clear();
  }

  // --- directory IVs ------------------------------------------------------------------------------------

  private cachedIV(rawPath: string): Buffer | null {
    return this.ivCache.get(rawPath) ?? null;
  }

  private cacheIV(rawPath: string, iv: Buffer): void {
    this.ivCache.delete(rawPath);
    this.ivCache.set(rawPath, iv);
    if (this.ivCache.size > IV_CACHE_LIMIT) {
      for (const key of this.ivCache.keys()) {
        if (key !== this.root) {
          this.ivCache.delete(key);
          break;
        }
      }
    }
  }

  /** Re-keys cached IVs at and below `from` to `to` (a renamed directory keeps its IV and its subtree's). */
  private moveCached(from: string, to: string): void {
    const prefix = `${from}/`;
    const moved: [string, Buffer][] = [];
    for (const [key, iv] of this.ivCache) {
      if (key === from) moved.push([to, iv]);
      else if (key.startsWith(prefix)) moved.push([to + key.slice(from.length), iv]);
    }
    this.invalidate(from);
    for (const [key, iv] of moved) this.cacheIV(key, iv);
  }

  private checkIV(data: Buffer, dir: NativeLocation): Buffer {
    if (data.length !== DIRIV_BYTES) {
      const e = new IntegrityError(`directory IV file ${DIRIV_FILE} is ${data.length} bytes, expected ${DIRIV_BYTES}`, { path: dir.plainPath || '/' });
      this.report(e);
      throw e;
    }
    this.cacheIV(dir.rawPath, data);
    return data;
  }

  private async loadDirIV(dir: NativeLocation): Promise<Buffer> {
    const cached = this.ivCache.get(dir.rawPath);
    if (cached !== undefined) return cached;
    let data: Buffer;
    try {
      data = await readFile(join(dir.rawPath, DIRIV_FILE));
    } catch (e) {
      let stats: Stats | null = null;
      try {
        stats = await lstat(dir.rawPath);
      } catch {
        /* missing */
      }
      throw this.dirIVError(e, dir, stats);
    }
    return this.checkIV(data, dir);
  }

  private loadDirIVSync(dir: NativeLocation): Buffer {
    const cached = this.ivCache.get(dir.rawPath);
    if (cached !== undefined) return cached;
    let data: Buffer;
    try {
      data = readFileSync(join(dir.rawPath, DIRIV_FILE));
    } catch (e) {
      let stats: Stats | null = null;
      try {
        stats = lstatSync(dir.rawPath);
      } catch {
        /* missing */
      }
      throw this.dirIVError(e, dir, stats);
    }
    return this.checkIV(data, dir);
  }

  private dirIVError(e: unknown, dir: NativeLocation, stats: Stats | null): Error {
    const path = dir.plainPath || '/';
    if (stats === null) return new DvfsError('E_NOTFOUND', 'no such file or directory', { path });
    if (!stats.isDirectory()) return new DvfsError('E_NOTDIR', 'not a directory', { path });
    if (isNodeError(e) && e.code === 'ENOENT') {
      const err = new IntegrityError(`directory has no ${DIRIV_FILE}: its entries cannot be decoded (deleted or damaged)`, { path });
      this.report(err);
      return err;
    }
    return new DvfsError('E_IO', `cannot read directory IV: ${(e as Error).message}`, { path });
  }

  /**
   * Removes the IV file of a directory that is empty in plaintext (before rmdir or being replaced by
   * rename) and returns the IV so a failed operation can restore it. Throws ENOTEMPTY otherwise.
   */
  private async takeDirIV(raw: string, syscall: string): Promise<Buffer | null> {
    const entries = await readdir(raw);
    if (entries.some((name) => name !== DIRIV_FILE)) throw errnoError('ENOTEMPTY', syscall, raw);
    if (!entries.includes(DIRIV_FILE)) return null;
    const ivPath = join(raw, DIRIV_FILE);
    const iv = await readFile(ivPath).catch(() => this.ivCache.get(raw) ?? null);
    try {
      await unlink(ivPath);
    } catch (e) {
      if (!(isNodeError(e) && e.code === 'EACCES')) throw e;
      // A directory without owner write permission: lend it one for the unlink, as rmdir(2) needs none.
      const st = await lstat(raw);
      await chmod(raw, (st.mode & 0o7777) | 0o200);
      try {
        await unlink(ivPath);
      } finally {
        await chmod(raw, st.mode & 0o7777);
      }
    }
    return iv;
  }

  private async restoreDirIV(raw: string, iv: Buffer): Promise<void> {
    const st = await lstat(raw).catch(() => null);
    if (st === null || !st.isDirectory()) return;
    const writable = (st.mode & 0o200) !== 0;
    if (!writable) await chmod(raw, (st.mode & 0o7777) | 0o200);
    try {
      await writeFile(join(raw, DIRIV_FILE), iv, { mode: 0o444, flag: 'wx' });
    } catch {
      /* best effort: it is still there, or the directory went away */
    } finally {
      if (!writable) await chmod(raw, st.mode & 0o7777);
    }
  }
}

// --- volumes ----------------------------------------------------------------------------------------------

export type CreateNativeOptions = NativeParams;

/** Creates a dvfs-native volume in `root` (missing or empty): config, master key and root directory IV. */
export async function createNativeVolume(root: string, password: Buffer, options: CreateNativeOptions = {}): Promise<NativeTree> {
  const dir = resolve(root);
  const configPath = join(dir, NATIVE_CONFIG_FILE);
  validateChunkSize(options.chunkSize ?? DEFAULT_CHUNK_SIZE, configPath);
  await mkdir(dir, { recursive: true });
  if ((await readdir(dir)).length > 0) {
    throw new DvfsError('E_EXISTS', 'directory is not empty', { path: dir, hint: 'choose a new or empty directory' });
  }
  const keys = NativeKeys.generate();
  try {
    const config = await sealNativeConfig(keys, password, options, configPath);
    await writeFile(configPath, serializeNativeConfig(config), { mode: 0o600, flag: 'wx' });
    await chmod(configPath, 0o600);
    const rootIV = randomBytes(DIRIV_BYTES);
    await writeFile(join(dir, DIRIV_FILE), rootIV, { mode: 0o444, flag: 'wx' });
    return new NativeTree(dir, configPath, config, keys, rootIV);
  } catch (e) {
    keys.destroy();
    throw e;
  }
}

/** Opens a dvfs-native volume: E_NOTFOUND / E_CONFIG / E_UNSUPPORTED for the config, E_PASSWORD for the password. */
export async function openNativeVolume(root: string, password: Buffer): Promise<NativeTree> {
  const dir = resolve(root);
  const configPath = join(dir, NATIVE_CONFIG_FILE);
  const config = await readNativeConfig(configPath);
  return withRootIV(dir, configPath, config, await unlockNativeConfig(config, password, configPath));
}

/** Opens a dvfs-native volume with its master key (from a key slot) instead of the password. */
export async function openNativeVolumeWithMaster(root: string, master: Uint8Array): Promise<NativeTree> {
  const dir = resolve(root);
  const configPath = join(dir, NATIVE_CONFIG_FILE);
  const config = await readNativeConfig(configPath);
  return withRootIV(dir, configPath, config, unlockNativeConfigWithMaster(config, master, configPath));
}

async function withRootIV(dir: string, configPath: string, config: NativeConfig, keys: NativeKeys): Promise<NativeTree> {
  try {
    const ivPath = join(dir, DIRIV_FILE);
    let rootIV: Buffer;
    try {
      rootIV = await readFile(ivPath);
    } catch (e) {
      throw new DvfsError('E_CONFIG', `root directory IV is unreadable: ${(e as Error).message}`, {
        path: ivPath,
        hint: 'names in the volume root cannot be decoded without it; restore it from a backup',
      });
    }
    if (rootIV.length !== DIRIV_BYTES) {
      throw new DvfsError('E_CONFIG', `root directory IV is ${rootIV.length} bytes, expected ${DIRIV_BYTES}`, {
        path: ivPath,
        hint: 'restore it from a backup',
      });
    }
    return new NativeTree(dir, configPath, config, keys, rootIV);
  } catch (e) {
    keys.destroy();
    throw e;
  }
}

/** True when `root` holds a dvfs-native config (no password needed). */
export async function isNativeVolume(root: string): Promise<boolean> {
  try {
    return (await lstat(join(resolve(root), NATIVE_CONFIG_FILE))).isFile();
  } catch {
    return false;
  }
}
