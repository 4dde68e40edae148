/**
 * The dvfs-native volume config, `.dvfs-native.json` in the ciphertext root (mode 0600):
 *
 *   { "format": "dvfs-native", "version": 1, "chunkSize": 4096,
 *     "kdf": { "alg": "argon2id13", "opslimit": 3, "memlimit": 268435456, "salt": "<base64, 16 bytes>" },
 *     "masterKey": { "nonce": "<base64, 24 bytes>", "sealed": "<base64, 48 bytes>" },
 *     "mac": "<base64, 32 bytes>" }
 *
 * The 32-byte master key is sealed with crypto_secretbox (XSalsa20-Poly1305) under a key derived from the
 * password by crypto_pwhash (Argon2id 1.3, the stored salt and limits). `mac` is keyed BLAKE2b-256, under
 * the config subkey of the master key, over every other field, so no parameter can be changed unnoticed:
 * a changed KDF field or sealed key fails as a wrong password, anything else fails the MAC.
 */
import { readFile } from 'node:fs/promises';
import sodium from 'sodium-native';
import { DvfsError, isNodeError } from '../errors.js';
import { MASTER_KEY_BYTES, NativeKeys } from './keys.js';

export const NATIVE_CONFIG_FILE = '.dvfs-native.json';
export const NATIVE_FORMAT = 'dvfs-native';
export const NATIVE_VERSION = 1;

export const DEFAULT_CHUNK_SIZE = 4096;
export const MIN_CHUNK_SIZE = 64;
export const MAX_CHUNK_SIZE = 1 << 20;
/** Upper bounds accepted when opening, so an edited config cannot make opening hang or exhaust memory. */
const MAX_OPSLIMIT = 64;
const MAX_MEMLIMIT = Math.min(sodium.crypto_pwhash_MEMLIMIT_MAX, 4 * 1024 ** 3);
const MAC_BYTES = 32;
const MAC_DOMAIN = 'dvfs-native config mac v1';

export interface NativeKdfParams {
  alg: 'argon2id13';
  opslimit: number;
  memlimit: number;
  salt: Buffer;
}

export interface NativeConfig {
  version: typeof NATIVE_VERSION;
  /** Plaintext bytes per chunk. */
  chunkSize: number;
  kdf: NativeKdfParams;
  masterKey: { nonce: Buffer; sealed: Buffer };
  mac: Buffer;
}

export interface NativeParams {
  chunkSize?: number;
  /** Argon2id passes (default crypto_pwhash_OPSLIMIT_MODERATE; tests use OPSLIMIT_MIN). */
  opslimit?: number;
  /** Argon2id memory in bytes (default crypto_pwhash_MEMLIMIT_MODERATE; tests use MEMLIMIT_MIN). */
  memlimit?: number;
}

function configError(message: string, path: string, hint?: string): DvfsError {
  return new DvfsError('E_CONFIG', message, { path, hint: hint ?? 'the dvfs-native config is damaged; restore it from a backup' });
}

function checkInt(value: unknown, what: string, min: number, max: number, path: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw configError(`${what} must be an integer in ${min}..${max}, found ${JSON.stringify(value)}`, path);
  }
  return value;
}

function checkB64(value: unknown, what: string, bytes: number, path: string): Buffer {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) {
    throw configError(`${what} must be a base64 string`, path);
  }
  const b = Buffer.from(value, 'base64');
  if (b.length !== bytes || b.toString('base64') !== value) {
    throw configError(`${what} must be ${bytes} bytes of canonical base64`, path);
  }
  return b;
}

function record(value: unknown, what: string, path: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw configError(`${what} must be an object`, path);
  return value as Record<string, unknown>;
}

export function validateChunkSize(chunkSize: number, path: string): number {
  return checkInt(chunkSize, 'chunkSize', MIN_CHUNK_SIZE, MAX_CHUNK_SIZE, path);
}

/** Parses and structurally validates a config; nothing is authenticated yet. */
export function parseNativeConfig(text: string, path: string): NativeConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw configError(`not valid JSON: ${(e as Error).message}`, path);
  }
  const top = record(json, 'the config', path);
  if (top.format !== NATIVE_FORMAT) throw configError(`format is ${JSON.stringify(top.format)}, expected "${NATIVE_FORMAT}"`, path);
  if (top.version !== NATIVE_VERSION) {
    throw new DvfsError('E_UNSUPPORTED', `dvfs-native format version ${JSON.stringify(top.version)} is not supported`, {
      path,
      hint: `this dvfs reads version ${NATIVE_VERSION}; upgrade dvfs`,
    });
  }
  const kdf = record(top.kdf, 'kdf', path);
  if (kdf.alg !== 'argon2id13') throw configError(`kdf.alg is ${JSON.stringify(kdf.alg)}, expected "argon2id13"`, path);
  const key = record(top.masterKey, 'masterKey', path);
  return {
    version: NATIVE_VERSION,
    chunkSize: validateChunkSize(top.chunkSize as number, path),
    kdf: {
      alg: 'argon2id13',
      opslimit: checkInt(kdf.opslimit, 'kdf.opslimit', sodium.crypto_pwhash_OPSLIMIT_MIN, MAX_OPSLIMIT, path),
      memlimit: checkInt(kdf.memlimit, 'kdf.memlimit', sodium.crypto_pwhash_MEMLIMIT_MIN, MAX_MEMLIMIT, path),
      salt: checkB64(kdf.salt, 'kdf.salt', sodium.crypto_pwhash_SALTBYTES, path),
    },
    masterKey: {
      nonce: checkB64(key.nonce, 'masterKey.nonce', sodium.crypto_secretbox_NONCEBYTES, path),
      sealed: checkB64(key.sealed, 'masterKey.sealed', MASTER_KEY_BYTES + sodium.crypto_secretbox_MACBYTES, path),
    },
    mac: checkB64(top.mac, 'mac', MAC_BYTES, path),
  };
}

export function serializeNativeConfig(config: NativeConfig): string {
  const doc = {
    format: NATIVE_FORMAT,
    version: config.version,
    chunkSize: config.chunkSize,
    kdf: {
      alg: config.kdf.alg,
      opslimit: config.kdf.opslimit,
      memlimit: config.kdf.memlimit,
      salt: config.kdf.salt.toString('base64'),
    },
    masterKey: { nonce: config.masterKey.nonce.toString('base64'), sealed: config.masterKey.sealed.toString('base64') },
    mac: config.mac.toString('base64'),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** The bytes the config MAC covers: every field but the MAC, in a fixed order. */
function macInput(config: Omit<NativeConfig, 'mac'>): Buffer {
  return Buffer.from(
    JSON.stringify([
      MAC_DOMAIN,
      NATIVE_FORMAT,
      config.version,
      config.chunkSize,
      config.kdf.alg,
      config.kdf.opslimit,
      config.kdf.memlimit,
      config.kdf.salt.toString('base64'),
      config.masterKey.nonce.toString('base64'),
      config.masterKey.sealed.toString('base64'),
    ]),
    'utf8',
  );
}

function configMac(config: Omit<NativeConfig, 'mac'>, keys: NativeKeys): Buffer {
  const mac = Buffer.allocUnsafe(MAC_BYTES);
  sodium.crypto_generichash(mac, macInput(config), keys.config);
  return mac;
}

/** Runs Argon2id off the main thread into a secure buffer; the caller wipes it. */
async function passwordKey(password: Buffer, kdf: NativeKdfParams): Promise<Buffer> {
  const key = sodium.sodium_malloc(sodium.crypto_secretbox_KEYBYTES);
  await sodium.crypto_pwhash_async(key, password, kdf.salt, kdf.opslimit, kdf.memlimit, sodium.crypto_pwhash_ALG_ARGON2ID13);
  return key;
}

/** Builds the config of a new volume: seals `keys`' master key under `password` and MACs the parameters. */
export async function sealNativeConfig(keys: NativeKeys, password: Buffer, params: NativeParams, path: string): Promise<NativeConfig> {
  const chunkSize = validateChunkSize(params.chunkSize ?? DEFAULT_CHUNK_SIZE, path);
  const salt = Buffer.allocUnsafe(sodium.crypto_pwhash_SALTBYTES);
  sodium.randombytes_buf(salt);
  const kdf: NativeKdfParams = {
    alg: 'argon2id13',
    opslimit: checkInt(params.opslimit ?? sodium.crypto_pwhash_OPSLIMIT_MODERATE, 'opslimit', sodium.crypto_pwhash_OPSLIMIT_MIN, MAX_OPSLIMIT, path),
    memlimit: checkInt(params.memlimit ?? sodium.crypto_pwhash_MEMLIMIT_MODERATE, 'memlimit', sodium.crypto_pwhash_MEMLIMIT_MIN, MAX_MEMLIMIT, path),
    salt,
  };
  const wrapKey = await passwordKey(password, kdf);
  try {
    const body = { version: NATIVE_VERSION, chunkSize, kdf, masterKey: keys.sealMaster(wrapKey) } as const;
    return { ...body, mac: configMac(body, keys) };
  } finally {
    sodium.sodium_memzero(wrapKey);
  }
}

/**
 * Unseals the master key with `password` and checks the config MAC. Throws E_PASSWORD when the key does not
 * open, E_CONFIG when the parameters do not match their MAC.
 */
export async function unlockNativeConfig(config: NativeConfig, password: Buffer, path: string): Promise<NativeKeys> {
  const wrapKey = await passwordKey(password, config.kdf);
  const master = sodium.sodium_malloc(MASTER_KEY_BYTES);
  let keys: NativeKeys;
  try {
    if (!sodium.crypto_secretbox_open_easy(master, config.masterKey.sealed, config.masterKey.nonce, wrapKey)) {
      throw new DvfsError('E_PASSWORD', 'wrong password: the volume key does not open', {
        path,
        hint: 'check the password (or whether the kdf / masterKey fields of the config were edited)',
      });
    }
    keys = NativeKeys.fromMaster(master);
  } finally {
    sodium.sodium_memzero(wrapKey);
    sodium.sodium_memzero(master);
  }
  if (!sodium.sodium_memcmp(configMac(config, keys), config.mac)) {
    keys.destroy();
    throw configError('config parameters do not match their MAC (edited or corrupt config)', path, 'restore the config from a backup; do not edit it by hand');
  }
  return keys;
}

/** Opens the config with the master key itself (from a key slot): checks the MAC, E_PASSWORD when it fails. */
export function unlockNativeConfigWithMaster(config: NativeConfig, master: Uint8Array, path: string): NativeKeys {
  if (master.length !== MASTER_KEY_BYTES) throw new DvfsError('E_PASSWORD', `the key from the key slot is ${master.length} bytes, expected ${MASTER_KEY_BYTES}`, { path });
  const keys = NativeKeys.fromMaster(master);
  if (!sodium.sodium_memcmp(configMac(config, keys), config.mac)) {
    keys.destroy();
    throw new DvfsError('E_PASSWORD', 'the key from the key slot does not open this volume', { path, hint: 'the slot belongs to another volume, or the volume was re-keyed' });
  }
  return keys;
}

/** The same volume's config with the master key sealed under a new password (new salt, same cost). */
export async function resealNativeConfig(config: NativeConfig, keys: NativeKeys, password: Buffer, path: string): Promise<NativeConfig> {
  return sealNativeConfig(keys, password, { chunkSize: config.chunkSize, opslimit: config.kdf.opslimit, memlimit: config.kdf.memlimit }, path);
}

export async function readNativeConfig(path: string): Promise<NativeConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') {
      throw new DvfsError('E_NOTFOUND', 'no dvfs-native config here', {
        path,
        hint: 'is this a dvfs-native volume? (EncFS volumes have .encfs6.xml instead)',
      });
    }
    throw new DvfsError('E_IO', `cannot read config: ${(e as Error).message}`, { path });
  }
  return parseNativeConfig(text, path);
}
