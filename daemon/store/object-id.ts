/** Object ids: the names of stored contents and manifests (64 lowercase hex characters). No crypto here. */
import { DvfsError } from '../errors.js';

declare const objectIdBrand: unique symbol;

/** 64 lowercase hex characters (32 bytes). Make one with hashBuffer, ContentHasher, or toObjectId. */
export type ObjectId = string & { readonly [objectIdBrand]: true };

export const OBJECT_ID_BYTES = 32;
export const OBJECT_ID_CHARS = 2 * OBJECT_ID_BYTES;
const OBJECT_ID_RE = /^[0-9a-f]{64}$/;

export function isObjectId(s: unknown): s is ObjectId {
  return typeof s === 'string' && OBJECT_ID_RE.test(s);
}

/** Checks and brands a string (E_USAGE when it is not an object id). */
export function toObjectId(s: string): ObjectId {
  if (!isObjectId(s)) throw new DvfsError('E_USAGE', `not an object id (64 lowercase hex characters): ${JSON.stringify(s.slice(0, 80))}`);
  return s;
}
