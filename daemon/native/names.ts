/**
 * dvfs-native names and symlink targets.
 *
 * Every directory holds a random 16-byte directory IV in `.dvfs.diriv`. A name is sealed deterministically
 * (so lookups can encode it) with a synthetic nonce:
 *
 *   nonce  = BLAKE2b-192(key = names-nonce subkey, dirIV || utf8(name))
 *   sealed = XChaCha20-Poly1305(key = names-cipher subkey, nonce, ad = dirIV, utf8(name))   (ciphertext || tag)
 *   entry  = base64url-unpadded(nonce || sealed)
 *
 * Decoding authenticates under the directory's IV and re-derives the nonce, so an entry moved from another
 * directory, edited, or not in canonical form does not decode. Encoded names use only [A-Za-z0-9_-]: they
 * never contain '.', so the format's own files (all named `.dvfs*`) cannot collide with them.
 *
 * Symlink targets are sealed with a random nonce under their own subkey:
 *   stored = base64url-unpadded(nonce(24) || XChaCha20-Poly1305(link subkey, nonce, ad = "dvfs-native link v1", utf8(target)))
 */
import sodium from 'sodium-native';
import { DvfsError, IntegrityError } from '../errors.js';
import type { NativeKeys } from './keys.js';

export const DIRIV_FILE = '.dvfs.diriv';
export const DIRIV_BYTES = 16;

const NONCE_BYTES = 24; // crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
const TAG_BYTES = 16; // crypto_aead_xchacha20poly1305_ietf_ABYTES
const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;
/** The longest raw entry name most filesystems take (NAME_MAX). */
const NAME_MAX = 255;
/** The longest raw symlink target (PATH_MAX minus the terminating NUL). */
const LINK_MAX = 4095;
const LINK_AD = Buffer.from('dvfs-native link v1', 'ascii');

/** Length of the unpadded base64url encoding of `n` bytes. */
function b64Length(n: number): number {
  return Math.ceil((4 * n) / 3);
}

function largestFitting(limit: number): number {
  let n = 0;
  while (b64Length(n + 1 + SEAL_OVERHEAD) <= limit) n++;
  return n;
}

/** The longest plaintext name (UTF-8 bytes) whose encoding fits NAME_MAX: 151. */
export const MAX_NAME_BYTES = largestFitting(NAME_MAX);
/** The longest plaintext symlink target (UTF-8 bytes) whose encoding fits PATH_MAX: 3031. */
export const MAX_LINK_TARGET_BYTES = largestFitting(LINK_MAX);

const B64URL = /^[A-Za-z0-9_-]+$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Strict unpadded base64url: null unless `s` is exactly what Buffer#toString('base64url') produces. */
function fromB64url(s: string): Buffer | null {
  if (!B64URL.test(s) || s.length % 4 === 1) return null;
  const b = Buffer.from(s, 'base64url');
  return b.toString('base64url') === s ? b : null;
}

/** The format's own entries (config, directory IVs, temporaries) and '.'/'..': hidden from listings. */
export function isHiddenEntry(cipherName: string): boolean {
  return cipherName.startsWith('.dvfs') || cipherName === '.' || cipherName === '..';
}

function invalidName(name: string): boolean {
  return name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0');
}

function shown(name: string): string {
  return name.length > 40 ? `${name.slice(0, 37)}...` : name;
}

/** Names remembered per direction. Encoding is a deterministic function of (directory IV, name), so a
 * remembered result is exactly what recomputing would give; decode results were verified when first seen. */
const NAME_CACHE_LIMIT = 32768;

function remember(map: Map<string, string>, key: string, value: string): void {
  if (map.size >= NAME_CACHE_LIMIT) {
    const oldest = map.keys().next();
    if (oldest.done !== true) map.delete(oldest.value);
  }
  map.set(key, value);
}

export class NameCipher {
  private readonly ivKeys = new WeakMap<Buffer, string>();
  private readonly encoded = new Map<string, string>();
  private readonly decoded = new Map<string, string>();

  constructor(private readonly keys: NativeKeys) {}

  /** Encrypts one name for directory `dirIV`. Throws E_NAME for names that cannot be stored. */
  encode(name: string, dirIV: Buffer, displayPath?: string): string {
    this.keys.check();
    const key = `${this.ivKey(dirIV)}/${name}`;
    const known = this.encoded.get(key);
    if (known !== undefined) return known;
    const cipher = this.seal(name, dirIV, displayPath);
    remember(this.encoded, key, cipher);
    return cipher;
  }

  /** Decrypts one entry of directory `dirIV`. Throws E_NAME when it is not a name sealed for that directory. */
  decode(encoded: string, dirIV: Buffer, displayDir?: string): string {
    this.keys.check();
    const key = `${this.ivKey(dirIV)}/${encoded}`;
    const known = this.decoded.get(key);
    if (known !== undefined) return known;
    const name = this.open(encoded, dirIV, displayDir);
    remember(this.decoded, key, name);
    return name;
  }

  /** Forgets remembered names (dispose). */
  clear(): void {
    this.encoded.clear();
    this.decoded.clear();
  }

  private ivKey(dirIV: Buffer): string {
    let k = this.ivKeys.get(dirIV);
    if (k === undefined) {
      k = dirIV.toString('hex');
      this.ivKeys.set(dirIV, k);
    }
    return k;
  }

  private seal(name: string, dirIV: Buffer, displayPath?: string): string {
    const where = displayPath === undefined ? {} : { path: displayPath };
    if (invalidName(name)) throw new DvfsError('E_NAME', `invalid file name ${JSON.stringify(shown(name))}`, where);
    const plain = Buffer.from(name, 'utf8');
    if (plain.length > MAX_NAME_BYTES) {
      throw new DvfsError('E_NAMETOOLONG', `name is ${plain.length} bytes long; dvfs-native stores at most ${MAX_NAME_BYTES}`, {
        ...where,
        hint: 'use a shorter name',
      });
    }
    const out = Buffer.allocUnsafe(plain.length + SEAL_OVERHEAD);
    const nonce = out.subarray(0, NONCE_BYTES);
    this.syntheticNonce(nonce, dirIV, plain);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out.subarray(NONCE_BYTES), plain, dirIV, null, nonce, this.keys.nameCipher);
    return out.toString('base64url');
  }

  private open(encoded: string, dirIV: Buffer, displayDir?: string): string {
    const fail = (why: string): DvfsError =>
      new DvfsError('E_NAME', `cannot decode encrypted name '${shown(encoded)}': ${why}`, displayDir === undefined ? {} : { path: displayDir || '/' });
    const raw = fromB64url(encoded);
    if (raw === null) throw fail('not canonical base64url');
    if (raw.length <= SEAL_OVERHEAD) throw fail('too short');
    const nonce = raw.subarray(0, NONCE_BYTES);
    const plain = Buffer.allocUnsafe(raw.length - SEAL_OVERHEAD);
    if (!open(plain, raw.subarray(NONCE_BYTES), dirIV, nonce, this.keys.nameCipher)) {
      throw fail('authentication failed (tampered, or moved from another directory)');
    }
    const check = Buffer.allocUnsafe(NONCE_BYTES);
    this.syntheticNonce(check, dirIV, plain);
    if (!sodium.sodium_memcmp(check, nonce)) throw fail('nonce does not match the name');
    let name: string;
    try {
      name = utf8.decode(plain);
    } catch {
      throw fail('not UTF-8');
    }
    if (invalidName(name)) throw fail('decodes to an invalid name');
    return name;
  }

  encodeLinkTarget(target: string): string {
    this.keys.check();
    const plain = Buffer.from(target, 'utf8');
    if (plain.length === 0) throw new DvfsError('E_NAME', 'empty symlink target');
    if (plain.length > MAX_LINK_TARGET_BYTES) {
      throw new DvfsError('E_NAME', `symlink target is ${plain.length} bytes long; dvfs-native stores at most ${MAX_LINK_TARGET_BYTES}`);
    }
    const out = Buffer.allocUnsafe(plain.length + SEAL_OVERHEAD);
    const nonce = out.subarray(0, NONCE_BYTES);
    sodium.randombytes_buf(nonce);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out.subarray(NONCE_BYTES), plain, LINK_AD, null, nonce, this.keys.linkTarget);
    return out.toString('base64url');
  }

  /** Throws IntegrityError when the stored target is not one this volume sealed. */
  decodeLinkTarget(stored: string, displayPath?: string): string {
    this.keys.check();
    const where = displayPath === undefined ? {} : { path: displayPath };
    const raw = fromB64url(stored);
    if (raw === null || raw.length <= SEAL_OVERHEAD) {
      throw new IntegrityError('symlink target is not a dvfs-native sealed target (tampered or corrupt)', where);
    }
    const plain = Buffer.allocUnsafe(raw.length - SEAL_OVERHEAD);
    if (!open(plain, raw.subarray(NONCE_BYTES), LINK_AD, raw.subarray(0, NONCE_BYTES), this.keys.linkTarget)) {
      throw new IntegrityError('symlink target failed authentication (tampered or corrupt)', where);
    }
    try {
      return utf8.decode(plain);
    } catch {
      throw new IntegrityError('symlink target is not UTF-8', where);
    }
  }

  private syntheticNonce(out: Buffer, dirIV: Buffer, plain: Buffer): void {
    const input = Buffer.allocUnsafe(dirIV.length + plain.length);
    dirIV.copy(input, 0);
    plain.copy(input, dirIV.length);
    sodium.crypto_generichash(out, input, this.keys.nameNonce);
  }
}

/** AEAD open that reports forgery as false instead of throwing. */
export function open(m: Uint8Array, c: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array): boolean {
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(m, null, c, ad, nonce, key);
    return true;
  } catch {
    return false;
  }
}
