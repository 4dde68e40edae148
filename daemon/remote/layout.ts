/**
 * Names on a remote (FORMAT.md has the whole layout), the kinds of blobs it stores, and its integrity error.
 *
 *   config                 sealed remote config (config.ts)
 *   keys/<file>            the repository's password-wrapped volume config, as is (written by push)
 *   data/<2 hex>/<62 hex>  pack files and large blobs, named by 32 random bytes (pack.ts, blob.ts)
 *   index/<64 hex>         sealed index files, named by a keyed hash of their plaintext (pack-index.ts)
 *   refs/<name>            sealed refs, e.g. refs/HEAD (config.ts)
 *   locks/<64 hex>         sealed lock files, named by 32 random bytes
 */
import { randomBytes } from 'node:crypto';
import { DvfsError, IntegrityError } from '../errors.js';
import { isObjectId, type ObjectId } from '../store/object-id.js';

export const CONFIG_KEY = 'config';
export const KEYS_PREFIX = 'keys/';
export const DATA_PREFIX = 'data/';
export const INDEX_PREFIX = 'index/';
export const REFS_PREFIX = 'refs/';
export const LOCKS_PREFIX = 'locks/';

/** Bytes of a random or hashed name (written as 64 hex characters). */
export const NAME_BYTES = 32;
const NAME_RE = /^[0-9a-f]{64}$/;

/** What a stored blob is: a content object (ciphertext of the working tree's format) or a manifest file. */
export type BlobType = 'object' | 'manifest';
export const BLOB_TYPES: readonly BlobType[] = ['object', 'manifest'];
const TYPE_CODES: Record<BlobType, number> = { object: 1, manifest: 2 };

export function typeCode(type: BlobType): number {
  return TYPE_CODES[type];
}

/** The type of a code, or null for an unknown one. */
export function typeOfCode(code: number): BlobType | null {
  return code === 1 ? 'object' : code === 2 ? 'manifest' : null;
}

export function isName(s: unknown): s is string {
  return typeof s === 'string' && NAME_RE.test(s);
}

/** 32 fresh random bytes as hex: the name of a new pack, large blob or lock. */
export function newName(): string {
  return randomBytes(NAME_BYTES).toString('hex');
}

export function nameBytes(name: string): Buffer {
  if (!isName(name)) throw new DvfsError('E_USAGE', `not a remote name (64 hex characters): ${JSON.stringify(String(name).slice(0, 80))}`);
  return Buffer.from(name, 'hex');
}

export function idBytes(id: ObjectId): Buffer {
  if (!isObjectId(id)) throw new DvfsError('E_USAGE', `not an object id: ${JSON.stringify(String(id).slice(0, 80))}`);
  return Buffer.from(id, 'hex');
}

/** `data/<2>/<62>`: where a pack or large blob named `name` lives. */
export function dataKey(name: string): string {
  if (!isName(name)) throw new DvfsError('E_USAGE', `not a remote name: ${JSON.stringify(String(name).slice(0, 80))}`);
  return `${DATA_PREFIX}${name.slice(0, 2)}/${name.slice(2)}`;
}

/** The name in a `data/<2>/<62>` key, or null when the key is something else. */
export function nameOfDataKey(key: string): string | null {
  const m = /^data\/([0-9a-f]{2})\/([0-9a-f]{62})$/.exec(key);
  return m === null ? null : `${m[1]}${m[2]}`;
}

export function indexKey(name: string): string {
  if (!isName(name)) throw new DvfsError('E_USAGE', `not a remote name: ${JSON.stringify(String(name).slice(0, 80))}`);
  return `${INDEX_PREFIX}${name}`;
}

export function nameOfIndexKey(key: string): string | null {
  const m = /^index\/([0-9a-f]{64})$/.exec(key);
  return m === null ? null : (m[1] ?? null);
}

/** "object 1f…" / "manifest 1f…" for messages. */
export function describe(type: BlobType, id: string): string {
  return `${type} ${id}`;
}

/**
 * Something read from a remote is not what the format and keys say it must be: damaged, truncated, forged,
 * moved to another name, or sealed with another repository's keys. `key` is the backend key concerned.
 */
export class RemoteIntegrityError extends IntegrityError {
  /** The remote (its URL). */
  readonly location: string;
  /** The backend key concerned. */
  readonly key: string;
  constructor(location: string, key: string, why: string) {
    super(`remote ${location}: ${key}: ${why}`, {
      hint: 'the remote is damaged or was tampered with; do not trust this copy (check the remote, push again from a good repository)',
    });
    this.name = 'RemoteIntegrityError';
    this.location = location;
    this.key = key;
  }
}
