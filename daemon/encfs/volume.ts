/**
 * An EncFS volume directory opened with its password: config + volume key + name and content codecs, and
 * the plaintext view of its tree (list, stat, read, write, mkdir, symlink) without any mount.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import { writeFileAtomic } from '../store/durable.js';
import { EncfsCipher, cipherGeometry } from './cipher.js';
import { CONFIG_FILE_NAME, CURRENT_SUBVERSION, PRESETS, parseConfig, serializeConfig, validateConfig, type EncfsConfig, type Preset } from './config.js';
import { CipherFile, ContentCodec, layoutOf } from './content.js';
import { EncfsTree } from './tree.js';
import { derivePbkdf2, deriveLegacy, timeIterations } from './kdf.js';
import { newVolumeKeyMaterial, unwrapVolumeKey, wrapVolumeKey } from './keywrap.js';
import { makeNameCodec, PathCodec } from './names.js';
import { makeBlockCodec } from './native-codec.js';
import { PlainView, type Entry, type Listing } from '../vfs/plain-view.js';

export type { Entry, EntryType, Listing, UndecodableEntry } from '../vfs/plain-view.js';

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

export class EncfsVolume {
  readonly paths: PathCodec;
  readonly content: ContentCodec;
  private plainView: PlainView | undefined;

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

  /**
   * Opens the volume with its key material (key || IV, as a key slot carries it) instead of the password.
   * Nothing in `.encfs6.xml` can check raw key material, so a wrong key shows as undecodable names.
   */
  static async openWithKey(root: string, keyMaterial: Buffer, options: OpenOptions = {}): Promise<EncfsVolume> {
    const configPath = options.configPath ?? join(root, CONFIG_FILE_NAME);
    const config = await EncfsVolume.readConfig(root, configPath);
    const params = { name: config.cipherAlg.name, major: config.cipherAlg.major, keySize: config.keySize };
    const { keyLen, ivLen } = cipherGeometry(params, configPath);
    if (keyMaterial.length !== keyLen + ivLen) {
      throw new DvfsError('E_CONFIG', `the key from the key slot is ${keyMaterial.length} bytes, this volume needs ${keyLen + ivLen}`, {
        path: configPath,
        hint: 'the slot belongs to another volume (or the volume was re-created)',
      });
    }
    return new EncfsVolume(root, configPath, config, new EncfsCipher(params, Buffer.from(keyMaterial)), options.codec);
  }

  /**
   * Wraps this volume's key under `password` (new salt, same KDF iterations unless given) and replaces
   * `.encfs6.xml` atomically: what `encfsctl passwd` does; stock encfs opens the volume with the new password.
   */
  async changePassword(password: Buffer, kdfIterations?: number): Promise<void> {
    const { keyLen, ivLen } = this.cipher.geometry;
    const saltData = randomBytes(20);
    const iterations = kdfIterations ?? this.config.kdfIterations;
    const params = { name: this.config.cipherAlg.name, major: this.config.cipherAlg.major, keySize: this.config.keySize };
    const user = new EncfsCipher(params, await derivePbkdf2(password, saltData, iterations, keyLen + ivLen));
    const material = Buffer.concat([this.cipher.key, this.cipher.iv]);
    const config: EncfsConfig = { ...this.config, encodedKeyData: wrapVolumeKey(user, material), saltData, kdfIterations: iterations };
    material.fill(0);
    validateConfig(config, this.configPath);
    await writeFileAtomic(this.configPath, Buffer.from(serializeConfig(config), 'utf8'), { mode: 0o600 });
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

  /** The plaintext view (list, read, write...) of this volume without a mount. */
  get view(): PlainView {
    this.plainView ??= new PlainView(new EncfsTree(this));
    return this.plainView;
  }

  list(plainDir: string): Promise<Listing> {
    return this.view.list(plainDir);
  }

  stat(plainPath: string): Promise<Entry> {
    return this.view.stat(plainPath);
  }

  /** Opens a file: 'r' read-only, 'r+' read-write, 'w+' created (emptied if it has contents). */
  async openFile(plainPath: string, flags: 'r' | 'r+' | 'w+' = 'r'): Promise<CipherFile> {
    const file = await this.view.openFile(plainPath, { create: flags === 'w+', readOnly: flags === 'r' });
    if (!(file instanceof CipherFile)) throw new Error('EncfsTree returned a foreign FileContent');
    if (flags === 'w+' && (await file.size()) > 0) await file.truncate(0);
    return file;
  }

  readFile(plainPath: string): Promise<Buffer> {
    return this.view.readFile(plainPath);
  }

  writeFile(plainPath: string, source: AsyncIterable<Buffer> | Buffer, mode = 0o644): Promise<number> {
    return this.view.writeFile(plainPath, source, mode);
  }

  mkdir(plainPath: string, mode = 0o755): Promise<void> {
    return this.view.mkdir(plainPath, mode);
  }

  mkdirp(plainPath: string): Promise<void> {
    return this.view.mkdirp(plainPath);
  }

  symlink(target: string, plainPath: string): Promise<void> {
    return this.view.symlink(target, plainPath);
  }

  readlink(plainPath: string): Promise<string> {
    return this.view.readlink(plainPath);
  }

  remove(plainPath: string): Promise<void> {
    return this.view.remove(plainPath);
  }
}
