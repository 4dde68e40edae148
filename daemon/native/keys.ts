/**
 * Key material of a dvfs-native volume. A random 32-byte master key (sealed in the config under the
 * password) is never used directly: every purpose gets its own subkey from crypto_kdf_derive_from_key
 * (BLAKE2b) under the context "dvfsnatv". All of it lives in sodium secure memory (guard pages, mlock)
 * and is wiped by destroy().
 */
import sodium, { type SecureBuffer } from 'sodium-native';
import { DvfsError } from '../errors.js';

const KDF_CONTEXT = Buffer.from('dvfsnatv', 'ascii');

/** Subkey numbers. Never renumber: they are part of the on-disk format. */
export const SUBKEY_ID = {
  /** BLAKE2b key of the config MAC. */
  config: 1,
  /** XChaCha20-Poly1305 key of file chunks. */
  contents: 2,
  /** BLAKE2b key of the synthetic name nonces. */
  nameNonce: 3,
  /** XChaCha20-Poly1305 key of names. */
  nameCipher: 4,
  /** XChaCha20-Poly1305 key of symlink targets. */
  linkTarget: 5,
  /** Reserved for keyed plaintext hashes (deduplication, change detection). */
  plaintextHash: 6,
} as const;

export const MASTER_KEY_BYTES = 32;
const SUBKEY_BYTES = 32;

function secureCopy(src: Uint8Array): SecureBuffer {
  const b = sodium.sodium_malloc(src.length);
  b.set(src);
  return b;
}

export class NativeKeys {
  readonly config: SecureBuffer;
  readonly contents: SecureBuffer;
  readonly nameNonce: SecureBuffer;
  readonly nameCipher: SecureBuffer;
  readonly linkTarget: SecureBuffer;
  readonly plaintextHash: SecureBuffer;
  private destroyed = false;

  private constructor(private readonly master: SecureBuffer) {
    this.config = this.derive(SUBKEY_ID.config);
    this.contents = this.derive(SUBKEY_ID.contents);
    this.nameNonce = this.derive(SUBKEY_ID.nameNonce);
    this.nameCipher = this.derive(SUBKEY_ID.nameCipher);
    this.linkTarget = this.derive(SUBKEY_ID.linkTarget);
    this.plaintextHash = this.derive(SUBKEY_ID.plaintextHash);
  }

  /** A fresh random master key (new volume). */
  static generate(): NativeKeys {
    const master = sodium.sodium_malloc(MASTER_KEY_BYTES);
    sodium.randombytes_buf(master);
    return new NativeKeys(master);
  }

  /** Takes a copy of an unsealed master key; the caller wipes its own buffer. */
  static fromMaster(master: Uint8Array): NativeKeys {
    if (master.length !== MASTER_KEY_BYTES) throw new RangeError(`master key must be ${MASTER_KEY_BYTES} bytes`);
    return new NativeKeys(secureCopy(master));
  }

  private derive(id: number): SecureBuffer {
    const k = sodium.sodium_malloc(SUBKEY_BYTES);
    sodium.crypto_kdf_derive_from_key(k, id, KDF_CONTEXT, this.master);
    return k;
  }

  /** Seals the master key with crypto_secretbox under `wrapKey` (the password-derived key). */
  sealMaster(wrapKey: Uint8Array): { nonce: Buffer; sealed: Buffer } {
    const nonce = Buffer.allocUnsafe(sodium.crypto_secretbox_NONCEBYTES);
    sodium.randombytes_buf(nonce);
    const sealed = Buffer.allocUnsafe(MASTER_KEY_BYTES + sodium.crypto_secretbox_MACBYTES);
    sodium.crypto_secretbox_easy(sealed, this.master, nonce, wrapKey);
    return { nonce, sealed };
  }

  /** A secure copy of the master key (what a key slot seals); the caller wipes it. */
  exportMaster(): SecureBuffer {
    this.check();
    return secureCopy(this.master);
  }

  /** False once destroy() wiped the keys. */
  get alive(): boolean {
    return !this.destroyed;
  }

  /** Throws once the keys were wiped: nothing may be sealed under a zeroed key. */
  check(): void {
    if (this.destroyed) throw new DvfsError('E_IO', 'the volume was closed (its keys are wiped)');
  }

  /** Wipes every key; the object must not be used afterwards. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const k of [this.master, this.config, this.contents, this.nameNonce, this.nameCipher, this.linkTarget, this.plaintextHash]) {
      sodium.sodium_memzero(k);
    }
  }
}
