/**
 * Keys of the snapshot store. All come from one format-specific secret (the EncFS volume key material, or
 * the dvfs-native "plaintext hashes" subkey) through keyed BLAKE2b over fixed labels, so each purpose has its
 * own key and none of them reveals the secret or the other key:
 *
 *   contentHash = BLAKE2b-256(key = secret, "dvfs content-hash v1")   names file contents (object ids)
 *   manifest    = BLAKE2b-256(key = secret, "dvfs manifest v1")       names and seals trees and snapshots
 *   paths       = BLAKE2b-256(key = secret, "dvfs paths v1")          hides paths in journals and the index
 *
 * Never change the labels: they are part of the on-disk format (every stored id depends on them).
 * The keys live in sodium secure memory; wipeRepoKeys() zeroes them.
 */
import sodium from 'sodium-native';
import { DvfsError } from '../errors.js';

export const REPO_KEY_BYTES = 32;
export const SECRET_BYTES_MIN = 16;
export const SECRET_BYTES_MAX = 64;

export const KEY_LABELS = {
  contentHash: 'dvfs content-hash v1',
  manifest: 'dvfs manifest v1',
  paths: 'dvfs paths v1',
} as const;

export interface RepoKeys {
  /** Key of the keyed BLAKE2b-256 that names file contents. */
  readonly contentHash: Buffer;
  /** Key that names (keyed BLAKE2b) and seals (XChaCha20-Poly1305) manifests; see manifests.ts. */
  readonly manifest: Buffer;
  /** Key of the opaque paths stored in session journals and the repository index (path-cipher.ts). */
  readonly paths: Buffer;
  /** The key epoch these keys belong to (daemon/keys/FORMAT.md); absent means 0, the volume's own. */
  readonly epoch?: number;
}

function derive(secret: Uint8Array, label: string): Buffer {
  const out = sodium.sodium_malloc(REPO_KEY_BYTES);
  sodium.crypto_generichash(out, Buffer.from(label, 'ascii'), secret);
  return out;
}

/** Derives the store keys from a format-specific secret of 16..64 bytes (the caller keeps and wipes it). */
export function deriveRepoKeys(secret: Buffer): RepoKeys {
  if (secret.length < SECRET_BYTES_MIN || secret.length > SECRET_BYTES_MAX) {
    throw new DvfsError('E_USAGE', `snapshot store secret must be ${SECRET_BYTES_MIN}..${SECRET_BYTES_MAX} bytes, got ${secret.length}`);
  }
  return { contentHash: derive(secret, KEY_LABELS.contentHash), manifest: derive(secret, KEY_LABELS.manifest), paths: derive(secret, KEY_LABELS.paths) };
}

/**
 * The store keys of key epoch `epoch` (daemon/keys): manifest and path keys from the epoch's secret, the
 * content-hash key as given (it is the same in every epoch, so object ids stay comparable). For epoch 0 with
 * content = derive(secret, contentHash) this equals deriveRepoKeys(secret).
 */
export function deriveEpochRepoKeys(epoch: number, secret: Buffer, contentHashKey: Uint8Array): RepoKeys {
  if (secret.length < SECRET_BYTES_MIN || secret.length > SECRET_BYTES_MAX || contentHashKey.length !== REPO_KEY_BYTES) {
    throw new DvfsError('E_USAGE', 'epoch secret or content key has the wrong size');
  }
  const contentHash = sodium.sodium_malloc(REPO_KEY_BYTES);
  contentHash.set(contentHashKey);
  return { contentHash, manifest: derive(secret, KEY_LABELS.manifest), paths: derive(secret, KEY_LABELS.paths), epoch };
}

/** The content-hash key of a format secret (what an epoch-0 grant carries as its content key). */
export function contentHashKeyOf(secret: Buffer): Buffer {
  return derive(secret, KEY_LABELS.contentHash);
}

/** Zeroes both keys; the object must not be used afterwards. */
export function wipeRepoKeys(keys: RepoKeys): void {
  sodium.sodium_memzero(keys.contentHash);
  sodium.sodium_memzero(keys.manifest);
  sodium.sodium_memzero(keys.paths);
}
