/**
 * An EncFS volume as the FUSE frontend sees it (CryptoTree): locating plaintext paths with cached directory
 * IVs, decoding entries, opening contents, and renames that re-encode what EncFS binds to paths — every
 * name below a directory when names are chained, and file headers under external IV chaining.
 */
import { constants as fsc, type Stats } from 'node:fs';
import { lstatSync, lutimesSync, mkdirSync, readdirSync, renameSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import sodium from 'sodium-native';
import { DvfsError } from '../errors.js';
import type { CryptoTree, FileContent, Location, OpenFileLookup, PathBoundHeader } from '../vfs/crypto-tree.js';
import { CONFIG_FILE_NAME } from './config.js';
import { CipherFile } from './content.js';
import { splitPath } from './names.js';
import { TEMP_PREFIX } from '../vfs/plain-view.js';
import type { EncfsVolume } from './volume.js';

/**
 * Locations kept for fast path resolution (encrypting a name costs an HMAC and an AES call). EncFS names are
 * a pure function of the volume key and the plaintext path, so an entry never goes stale, whatever is
 * renamed or removed; the cache is only bounded (emptied when full). An entry costs ~220 bytes (two paths,
 * an IV, a Map slot): 32 768 of them hold every directory and the files being worked on, where the former
 * 200 000 held 40+ MiB of a million-file mount's memory, mostly files long closed.
 */
export const LOCATION_CACHE_LIMIT = 32_768;

/** Reports names inside a renamed directory that could not be re-encoded (left as they were). */
export type RecodeProblem = (rawPath: string, reason: string) => void;

export class EncfsTree implements CryptoTree<bigint> {
  readonly format = 'encfs' as const;
  readonly root: string;
  readonly maxNameBytes: number;
  readonly hardLinks: boolean;
  private readonly cache = new Map<string, Location<bigint>>();

  constructor(
    readonly volume: EncfsVolume,
    private readonly onRecodeProblem: RecodeProblem = () => undefined,
    /** Locations cached at most (tests make it small). */
    private readonly cacheLimit = LOCATION_CACHE_LIMIT,
  ) {
    this.root = volume.root;
    this.maxNameBytes = volume.paths.names.maxNameBytes;
    this.hardLinks = !volume.config.externalIVChaining;
  }

  private rootLocation(): Location<bigint> {
    return { plainPath: '', rawPath: this.root, ctx: 0n };
  }

  async locate(plainPath: string): Promise<Location<bigint>> {
    return this.locateSync(plainPath);
  }

  locateCached(plainPath: string): Location<bigint> | undefined {
    return this.locateSync(plainPath);
  }

  /** Locations cached now (at most the limit). */
  get cachedLocations(): number {
    return this.cache.size;
  }

  locateSync(plainPath: string): Location<bigint> {
    const key = plainPath.startsWith('/') || plainPath.endsWith('/') ? splitPath(plainPath).join('/') : plainPath;
    if (key === '') return this.rootLocation();
    const hit = this.cache.get(key);
    if (hit) return hit;
    const slash = key.lastIndexOf('/');
    const parent = slash < 0 ? this.rootLocation() : this.locateSync(key.slice(0, slash));
    const loc = this.childSync(parent, key.slice(slash + 1));
    this.remember(loc);
    return loc;
  }

  async child(dir: Location<bigint>, name: string): Promise<Location<bigint>> {
    return this.childSync(dir, name);
  }

  private childSync(dir: Location<bigint>, name: string): Location<bigint> {
    const enc = this.volume.paths.encodeName(name, dir.ctx);
    return { plainPath: dir.plainPath === '' ? name : `${dir.plainPath}/${name}`, rawPath: `${dir.rawPath}/${enc.cipher}`, ctx: enc.iv };
  }

  private remember(loc: Location<bigint>): void {
    if (this.cache.size >= this.cacheLimit) this.cache.clear();
    this.cache.set(loc.plainPath, loc);
  }

  /** Decodes a directory entry; the location it yields is remembered (a listing is usually followed by stats). */
  decodeEntry(dir: Location<bigint>, cipherName: string): string | null {
    if (dir.plainPath === '' && cipherName === CONFIG_FILE_NAME) return null;
    if (cipherName.startsWith(TEMP_PREFIX)) return null;
    const { name, iv } = this.volume.paths.decodeName(cipherName, dir.ctx);
    if (name !== '.' && name !== '..') {
      this.remember({ plainPath: dir.plainPath === '' ? name : `${dir.plainPath}/${name}`, rawPath: `${dir.rawPath}/${cipherName}`, ctx: iv });
    }
    return name;
  }

  plainSize(rawStats: Stats, location: Location<bigint>): number {
    return this.volume.content.plainSize(rawStats.size, location.plainPath);
  }

  snapshotSecret(): Buffer {
    const { key, iv } = this.volume.cipher;
    const out = sodium.sodium_malloc(key.length + iv.length);
    out.set(key);
    out.set(iv, key.length);
    return out;
  }

  get pathBoundHeader(): PathBoundHeader<bigint> | undefined {
    const volume = this.volume;
    if (!volume.config.externalIVChaining || volume.content.headerSize === 0) return undefined;
    const codec = volume.content;
    return {
      bytes: codec.headerSize,
      toStore: (loc, header) => codec.encodeHeader(codec.decodeHeader(header, volume.externalIV(loc.ctx)), 0n),
      fromStore: (loc, header) => codec.encodeHeader(codec.decodeHeader(header, 0n), volume.externalIV(loc.ctx)),
    };
  }

  async openContent(location: Location<bigint>, options: { create?: boolean; mode?: number; readOnly?: boolean }): Promise<FileContent> {
    const flags = options.readOnly ? fsc.O_RDONLY : fsc.O_RDWR | (options.create ? fsc.O_CREAT : 0);
    return CipherFile.open(location.rawPath, flags, this.volume.content, this.volume.externalIV(location.ctx), location.plainPath, options.mode ?? 0o644);
  }

  async mkdir(location: Location<bigint>, mode: number): Promise<void> {
    mkdirSync(location.rawPath, { mode });
  }

  async rmdir(location: Location<bigint>): Promise<void> {
    rmdirSync(location.rawPath);
  }

  encodeLinkTarget(target: string): string {
    return this.volume.paths.encodeLinkTarget(target);
  }

  decodeLinkTarget(stored: string): string {
    return this.volume.paths.decodeLinkTarget(stored);
  }

  async rename(from: Location<bigint>, to: Location<bigint>, openFiles: OpenFileLookup): Promise<void> {
    const st = lstatSync(from.rawPath);
    renameSync(from.rawPath, to.rawPath);
    if (st.isDirectory()) {
      if (this.volume.config.chainedNameIV && from.ctx !== to.ctx) await this.recode(to.rawPath, from.ctx, to.ctx, openFiles);
    } else if (st.isFile()) {
      await this.reseal(to.rawPath, from.ctx, to.ctx, openFiles);
    }
  }

  /** Re-encodes every entry of a moved directory for its new chained IV, depth first. */
  private async recode(rawDir: string, oldIV: bigint, newIV: bigint, openFiles: OpenFileLookup): Promise<void> {
    const paths = this.volume.paths;
    for (const name of readdirSync(rawDir)) {
      if (name.startsWith(TEMP_PREFIX)) continue;
      let plain: { name: string; iv: bigint };
      try {
        plain = paths.decodeName(name, oldIV);
      } catch (e) {
        this.onRecodeProblem(join(rawDir, name), e instanceof DvfsError ? e.message : String(e));
        continue;
      }
      const enc = paths.encodeName(plain.name, newIV);
      const target = join(rawDir, enc.cipher);
      if (enc.cipher !== name) renameSync(join(rawDir, name), target);
      const st = lstatSync(target);
      if (st.isDirectory()) await this.recode(target, plain.iv, enc.iv, openFiles);
      else if (st.isFile()) await this.reseal(target, plain.iv, enc.iv, openFiles);
    }
  }

  /** With external IV chaining, a moved file's header is re-sealed under its new path's IV. */
  private async reseal(rawPath: string, oldIV: bigint, newIV: bigint, openFiles: OpenFileLookup): Promise<void> {
    if (!this.volume.config.externalIVChaining || oldIV === newIV) return;
    // Rewriting the header is bookkeeping, not a modification: the file keeps its times (as with encfs).
    const { atime, mtime } = lstatSync(rawPath);
    const open = await openFiles(rawPath);
    if (open instanceof CipherFile) {
      await open.setExternalIV(newIV);
    } else {
      const file = await CipherFile.open(rawPath, fsc.O_RDWR, this.volume.content, oldIV, rawPath);
      try {
        await file.setExternalIV(newIV);
      } finally {
        await file.close();
      }
    }
    lutimesSync(rawPath, atime, mtime);
  }
}
