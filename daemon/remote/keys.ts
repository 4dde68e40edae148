/**
 * Keys of the remote format, and its one AEAD.
 *
 * Everything on a remote is sealed under keys derived from the repository's manifest key (RepoKeys.manifest,
 * daemon/store/keys.ts), so whoever can open the repository can open its remotes and nobody else can, and no
 * new secret has to be stored or typed:
 *
 *   remote = BLAKE2b-256(key = RepoKeys.manifest, "dvfs remote v1")
 *   pack   = BLAKE2b-256(key = remote, "dvfs remote pack v1")     seals pack entries and pack tables
 *   blob   = BLAKE2b-256(key = remote, "dvfs remote blob v1")     seals the chunks of large objects
 *   index  = BLAKE2b-256(key = remote, "dvfs remote index v1")    seals index files
 *   name   = BLAKE2b-256(key = remote, "dvfs remote name v1")     names index files (keyed hash)
 *   config = BLAKE2b-256(key = remote, "dvfs remote config v1")   seals config, refs and locks
 *
 * The manifest store derives its own subkeys from the same manifest key with other labels ("dvfs manifest id
 * v1", "dvfs manifest seal v1"), so no key here equals one there. Never change a label: every remote depends
 * on them.
 *
 * The AEAD is XChaCha20-Poly1305-IETF with a fresh random 24-byte nonce per message:
 *
 *   sealed = nonce (24) || ciphertext (len(plaintext)) || tag (16)
 */
import sodium, { type SecureBuffer } from 'sodium-native';
import { DvfsError } from '../errors.js';
import type { RepoKeys } from '../store/keys.js';

export const REMOTE_KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
/** Bytes a sealed message adds to its plaintext. */
export const SEAL_OVERHEAD = NONCE_BYTES + TAG_BYTES;

export const REMOTE_KEY_LABEL = 'dvfs remote v1';
export const REMOTE_SUBKEY_LABELS = {
  pack: 'dvfs remote pack v1',
  blob: 'dvfs remote blob v1',
  index: 'dvfs remote index v1',
  name: 'dvfs remote name v1',
  config: 'dvfs remote config v1',
} as const;

export type RemoteKeys = { readonly [K in keyof typeof REMOTE_SUBKEY_LABELS]: SecureBuffer };

function derive(key: Uint8Array, label: string): SecureBuffer {
  const out = sodium.sodium_malloc(REMOTE_KEY_BYTES);
  sodium.crypto_generichash(out, Buffer.from(label, 'ascii'), key);
  return out;
}

/** Derives the remote keys from the repository's keys (the caller keeps and wipes those). */
export function deriveRemoteKeys(repoKeys: RepoKeys): RemoteKeys {
  if (repoKeys.manifest.length !== REMOTE_KEY_BYTES) throw new DvfsError('E_USAGE', `manifest key must be ${REMOTE_KEY_BYTES} bytes`);
  const remote = derive(repoKeys.manifest, REMOTE_KEY_LABEL);
  try {
    return {
      pack: derive(remote, REMOTE_SUBKEY_LABELS.pack),
      blob: derive(remote, REMOTE_SUBKEY_LABELS.blob),
      index: derive(remote, REMOTE_SUBKEY_LABELS.index),
      name: derive(remote, REMOTE_SUBKEY_LABELS.name),
      config: derive(remote, REMOTE_SUBKEY_LABELS.config),
    };
  } finally {
    sodium.sodium_memzero(remote);
  }
}

/** Zeroes the keys; they must not be used afterwards. */
export function wipeRemoteKeys(keys: RemoteKeys): void {
  for (const k of Object.values(keys)) sodium.sodium_memzero(k);
}

/** Seals `plain` into `out` (exactly len(plain) + SEAL_OVERHEAD bytes) with a fresh random nonce. */
export function sealInto(out: Uint8Array, key: Uint8Array, ad: Uint8Array, plain: Uint8Array): void {
  if (out.length !== plain.length + SEAL_OVERHEAD) throw new RangeError('sealInto: output buffer has the wrong size');
  const nonce = out.subarray(0, NONCE_BYTES);
  sodium.randombytes_buf(nonce);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out.subarray(NONCE_BYTES), plain, ad, null, nonce, key);
}

/**
 * Seals in place: `buf` is nonce space (24) || plaintext (`plainLength`) || tag space (16); the nonce is drawn
 * and the plaintext replaced by its ciphertext, giving what sealInto() would have written (no copy, no buffer).
 */
export function sealInPlace(buf: Uint8Array, key: Uint8Array, ad: Uint8Array, plainLength: number): void {
  if (buf.length !== plainLength + SEAL_OVERHEAD) throw new RangeError('sealInPlace: buffer has the wrong size');
  const nonce = buf.subarray(0, NONCE_BYTES);
  sodium.randombytes_buf(nonce);
  const body = buf.subarray(NONCE_BYTES);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(body, body.subarray(0, plainLength), ad, null, nonce, key);
}

/** nonce || ciphertext || tag of `plain`. */
export function seal(key: Uint8Array, ad: Uint8Array, plain: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(plain.length + SEAL_OVERHEAD);
  sealInto(out, key, ad, plain);
  return out;
}

/** The plaintext of a sealed message, or null when it does not authenticate (damaged, forged, wrong AD/key). */
export function open(key: Uint8Array, ad: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < SEAL_OVERHEAD) return null;
  const plain = Buffer.allocUnsafe(sealed.length - SEAL_OVERHEAD);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(plain, null, sealed.subarray(NONCE_BYTES), ad, sealed.subarray(0, NONCE_BYTES), key);
    return plain;
  } catch {
    return null;
  }
}

/** Keyed BLAKE2b-256 of the concatenation of `parts`. */
export function keyedHash(key: Uint8Array, ...parts: Uint8Array[]): Buffer {
  const state = Buffer.alloc(sodium.crypto_generichash_STATEBYTES);
  sodium.crypto_generichash_init(state, key, 32);
  for (const p of parts) sodium.crypto_generichash_update(state, p);
  const out = Buffer.alloc(32);
  sodium.crypto_generichash_final(state, out);
  return out;
}
