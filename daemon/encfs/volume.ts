/**
 * An EncFS volume directory opened with its password: config + volume key + name and content codecs, and
 * the plaintext view of its tree (list, stat, read, write, mkdir, symlink) without any mount.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, unlink, writeFile, chmod } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import { EncfsCipher, cipherGeometry } from './cipher.js';
import { CONFIG_FILE_NAME, CURRENT_SUBVERSION, PRESETS, parseConfig, serializeConfig, validateConfig, type EncfsConfig, type Preset } from './config.js';
import { CipherFile, ContentCodec, layoutOf } from './content.js';
import { derivePbkdf2, deriveLegacy, timeIterations } from './kdf.js';
import { newVolumeKeyMaterial, unwrapVolumeKey, wrapVolumeKey } from './keywrap.js';
import { makeNameCodec, PathCodec, splitPath } from './names.js';
import { makeBlockCodec } from './native-codec.js';

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

export interface OpenOptions {
  /** Where `.encfs6.xml` lives when not in the volume root (ENCFS6_CONFIG). */
  configPath?: string;
  codec?: 'auto' | 'native' | 'typescript';
}

export interface CreateOptions {
  preset?: Preset;
  /** PBKDF2 iterations; default: timed to the preset's desiredKDFDuration, as encfs does. */
  kdfIterations?: number;
  creator?: string;
  codec?: OpenOptions['codec'];
  /** Expert settings on top of the preset (cipher, block size, name codec, IV and MAC options). */
  overrides?: Partial<Omit<EncfsConfig, 'encodedKeyData' | 'saltData' | 'kdfIterations' | 'subVersion'>>;
}

/** Ciphertext names dvfs writes for itself (never valid EncFS names: they contain '.'). */
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

export class EncfsVolume {
  readonly paths: PathCodec;
  readonly content: ContentCodec;

  private constructor(
    /** The ciphertext directory. */
    readonly root: string,
    readonly configPath: string,
    readonly config: EncfsConfig,
    readonly cipher: EncfsCipher,
    codec: OpenOptions['codec'],
  ) {
    this.paths = new PathCodec(makeNameCodec(config.nameAlg.name, config.nameAlg.major, cipher), config.chainedNameIV);
    this.content = new ContentCodec(cipher, config, makeBlockCodec(cipher, layoutOf(config), codec ?? 'auto'));
  }

  static async readConfig(root: string, configPath = join(root, CONFIG_FILE_NAME)): Promise<EncfsConfig> {
    let xml: string;
    try {
      xml = await readFile(configPath, 'utf8');
    } catch (e) {
      if (isNodeError(e) && e.code === 'ENOENT') {
        throw new DvfsError('E_NOTFOUND', 'no EncFS config here', {
          path: configPath,
          hint: 'is this an EncFS volume? create one with: dvfs init REPO --mode encfs',
        });
      }
      throw new DvfsError('E_IO', `cannot read config: ${(e as Error).message}`, { path: configPath });
    }
    return parseConfig(xml, configPath);
  }

  static async open(root: string, password: Buffer, options: OpenOptions = {}): Promise<EncfsVolume> {
    const configPath = options.configPath ?? join(root, CONFIG_FILE_NAME);
    const config = await EncfsVolume.readConfig(root, configPath);
    const params = { name: config.cipherAlg.name, major: config.cipherAlg.major, keySize: config.keySize };
    const { keyLen, ivLen } = cipherGeometry(params, configPath);
    const userKey =
      config.saltData.length > 0
        ? await derivePbkdf2(password, config.saltData, config.kdfIterations, keyLen + ivLen)
        : deriveLegacy(password, keyLen + ivLen);
    const user = new EncfsCipher(params, userKey);
    const volumeKey = unwrapVolumeKey(user, config.encodedKeyData, configPath);
    return new EncfsVolume(root, configPath, config, new EncfsCipher(params, volumeKey), options.codec);
  }

  /** Creates a new volume in `root` (which must be missing or empty). */
  static async create(root: string, password: Buffer, options: CreateOptions = {}): Promise<EncfsVolume> {
    const preset = { ...PRESETS[options.preset ?? 'standard'], ...options.overrides };
    await mkdir(root, { recursive: true });
    const existing = await readdir(root);
    if (existing.length > 0) {
      throw new DvfsError('E_EXISTS', 'directory is not empty', { path: root, hint: 'choose a new or empty directory' });
    }
    const params = { name: preset.cipherAlg.name, major: preset.cipherAlg.major, keySize: preset.keySize };
    const { keyLen, ivLen } = cipherGeometry(params);
    const kdfIterations = options.kdfIterations ?? timeIterations(preset.desiredKDFDuration, keyLen + ivLen);
    const saltData = randomBytes(20);
    const user = new EncfsCipher(params, await derivePbkdf2(password, saltData, kdfIterations, keyLen + ivLen));
    const volumeKey = newVolumeKeyMaterial(keyLen, ivLen);
    const config: EncfsConfig = {
      ...preset,
      subVersion: CURRENT_SUBVERSION,
      creator: options.creator ?? preset.creator ?? 'EncFS 1.9.5',
      encodedKeyData: wrapVolumeKey(user, volumeKey),
      saltData,
      kdfIterations,
    };
    const configPath = join(root, CONFIG_FILE_NAME);
    validateConfig(config, configPath);
    await writeFile(configPath, serializeConfig(config), { mode: 0o600, flag: 'wx' });
    return new EncfsVolume(root, configPath, config, new EncfsCipher(params, volumeKey), options.codec);
  }

  /** Encodes a volume-relative plaintext path: absolute ciphertext path and chained IV. */
  resolve(plainPath: string): { rawPath: string; iv: bigint } {
    const { cipher, iv } = this.paths.encodePath(plainPath);
    return { rawPath: cipher === '' ? this.root : join(this.root, cipher), iv };
  }

  /** The external IV of a file's header (0 unless the volume chains it from the path). */
  externalIV(iv: bigint): bigint {
    return this.config.externalIVChaining ? iv : 0n;
  }

  async list(plainDir: string): Promise<Listing> {
    const { rawPath, iv } = this.resolve(plainDir);
    let names: string[];
    try {
      names = await readdir(rawPath);
    } catch (e) {
      throw this.fsError(e, plainDir);
    }
    const atRoot = splitPath(plainDir).length === 0;
    const entries: Entry[] = [];
    const undecodable: UndecodableEntry[] = [];
    for (const cipherName of names.sort()) {
      if (atRoot && cipherName === CONFIG_FILE_NAME) continue;
      if (cipherName.startsWith(TEMP_PREFIX)) continue;
      let name: string;
      try {
        name = this.paths.decodeName(cipherName, iv).name;
      } catch (e) {
        undecodable.push({ cipherName, reason: e instanceof DvfsError ? e.message : String(e) });
        continue;
      }
      const st = await lstat(join(rawPath, cipherName));
      entries.push(await this.entryFrom(name, cipherName, join(rawPath, cipherName), st));
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { entries, undecodable };
  }

  async stat(plainPath: string): Promise<Entry> {
    const { rawPath } = this.resolve(plainPath);
    let st;
    try {
      st = await lstat(rawPath);
    } catch (e) {
      throw this.fsError(e, plainPath);
    }
    return this.entryFrom(basename(plainPath) || '/', basename(rawPath), rawPath, st);
  }

  private async entryFrom(name: string, cipherName: string, rawPath: string, st: import('node:fs').Stats): Promise<Entry> {
    const type = typeOf(st.mode);
    let size = st.size;
    if (type === 'file') size = this.content.plainSizeOrUnknown(st.size);
    else if (type === 'symlink') {
      try {
        size = Buffer.byteLength(this.paths.decodeLinkTarget(await readlink(rawPath)));
      } catch {
        size = -1;
      }
    }
    return { name, type, size, mode: st.mode & 0o7777, mtimeMs: st.mtimeMs, cipherName };
  }

  async openFile(plainPath: string, flags = 'r'): Promise<CipherFile> {
    const { rawPath, iv } = this.resolve(plainPath);
    try {
      return await CipherFile.open(rawPath, flags, this.content, this.externalIV(iv), plainPath);
    } catch (e) {
      throw this.fsError(e, plainPath);
    }
  }

  async readFile(plainPath: string): Promise<Buffer> {
    const file = await this.openFile(plainPath, 'r');
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
    const { rawPath, iv } = this.resolve(plainPath);
    await this.requireDir(dirname(plainPath), plainPath);
    const tmp = join(dirname(rawPath), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
    const file = await CipherFile.open(tmp, 'wx+', this.content, this.externalIV(iv), plainPath, mode);
    let written = 0;
    try {
      const chunks = Buffer.isBuffer(source) ? [source] : source;
      for await (const chunk of chunks) {
        await file.write(written, chunk);
        written += chunk.length;
      }
      if (written === 0) await file.truncate(0);
      await file.sync();
      await file.close();
      await chmod(tmp, mode);
      await rename(tmp, rawPath);
    } catch (e) {
      await file.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw e instanceof DvfsError ? e : this.fsError(e, plainPath);
    }
    return written;
  }

  async mkdir(plainPath: string, mode = 0o755): Promise<void> {
    const { rawPath } = this.resolve(plainPath);
    await this.requireDir(dirname(plainPath), plainPath);
    try {
      await mkdir(rawPath, { mode });
    } catch (e) {
      throw this.fsError(e, plainPath);
    }
  }

  /** mkdir -p: creates missing directories along the path, refuses to go through non-directories. */
  async mkdirp(plainPath: string): Promise<void> {
    let prefix = '';
    for (const component of splitPath(plainPath)) {
      prefix = prefix === '' ? component : `${prefix}/${component}`;
      const { rawPath } = this.resolve(prefix);
      try {
        await mkdir(rawPath, { mode: 0o755 });
      } catch (e) {
        if (!(isNodeError(e) && e.code === 'EEXIST')) throw this.fsError(e, prefix);
        const st = await lstat(rawPath);
        if (!st.isDirectory()) throw new DvfsError('E_NOTDIR', 'exists and is not a directory', { path: prefix });
      }
    }
  }

  async symlink(target: string, plainPath: string): Promise<void> {
    const { rawPath } = this.resolve(plainPath);
    await this.requireDir(dirname(plainPath), plainPath);
    try {
      await symlink(this.paths.encodeLinkTarget(target), rawPath);
    } catch (e) {
      throw this.fsError(e, plainPath);
    }
  }

  async readlink(plainPath: string): Promise<string> {
    const { rawPath } = this.resolve(plainPath);
    try {
      return this.paths.decodeLinkTarget(await readlink(rawPath));
    } catch (e) {
      throw e instanceof DvfsError ? new DvfsError(e.code, e.message, { path: plainPath }) : this.fsError(e, plainPath);
    }
  }

  async remove(plainPath: string): Promise<void> {
    const { rawPath } = this.resolve(plainPath);
    try {
      await rm(rawPath, { recursive: true });
    } catch (e) {
      throw this.fsError(e, plainPath);
    }
  }

  private async requireDir(plainDir: string, forPath: string): Promise<void> {
    const dir = plainDir === '.' ? '' : plainDir;
    const { rawPath } = this.resolve(dir);
    try {
      const st = await lstat(rawPath);
      if (!st.isDirectory()) throw new DvfsError('E_NOTDIR', `parent ${dir || '/'} is not a directory`, { path: forPath });
    } catch (e) {
      if (e instanceof DvfsError) throw e;
      throw new DvfsError('E_NOTFOUND', `parent directory ${dir || '/'} does not exist`, {
        path: forPath,
        hint: 'create it first (dvfs put creates missing parents)',
      });
    }
  }

  private fsError(e: unknown, plainPath: string): Error {
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
}
