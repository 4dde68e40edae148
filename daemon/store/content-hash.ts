/**
 * Object ids: keyed BLAKE2b-256 of a file's plaintext, written as 64 lowercase hex characters.
 *
 * The hash is keyed (RepoKeys.contentHash) so that nothing stored in or pushed from a repository lets anyone
 * without the key confirm a guess of a file's content: equal ids still show that two files are equal, but only
 * to someone who can already compute ids. The same id type names manifests (under the manifest key).
 */
import sodium from 'sodium-native';
import { DvfsError } from '../errors.js';

import { OBJECT_ID_BYTES, type ObjectId } from './object-id.js';

export { isObjectId, toObjectId, OBJECT_ID_BYTES, OBJECT_ID_CHARS, type ObjectId } from './object-id.js';

function checkKey(key: Uint8Array): void {
  if (key.length < sodium.crypto_generichash_KEYBYTES_MIN || key.length > sodium.crypto_generichash_KEYBYTES_MAX) {
    throw new DvfsError('E_USAGE', `hash key must be ${sodium.crypto_generichash_KEYBYTES_MIN}..${sodium.crypto_generichash_KEYBYTES_MAX} bytes`);
  }
}

/** Streaming keyed BLAKE2b-256. One use: digest() finishes it. */
export class ContentHasher {
  private readonly state = Buffer.alloc(sodium.crypto_generichash_STATEBYTES);
  private finished = false;
  /** Bytes absorbed so far. */
  bytes = 0;

  constructor(key: Uint8Array) {
    checkKey(key);
    sodium.crypto_generichash_init(this.state, key, OBJECT_ID_BYTES);
  }

  update(buf: Uint8Array): this {
    if (this.finished) throw new Error('ContentHasher: update() after digest()');
    sodium.crypto_generichash_update(this.state, buf);
    this.bytes += buf.length;
    return this;
  }

  digest(): ObjectId {
    if (this.finished) throw new Error('ContentHasher: digest() called twice');
    this.finished = true;
    const out = Buffer.alloc(OBJECT_ID_BYTES);
    sodium.crypto_generichash_final(this.state, out);
    // The state holds key-derived material.
    sodium.sodium_memzero(this.state);
    return out.toString('hex') as ObjectId;
  }
}

/** Keyed BLAKE2b-256 of one buffer (equal to streaming the same bytes through a ContentHasher). */
export function hashBuffer(key: Uint8Array, buf: Uint8Array): ObjectId {
  checkKey(key);
  const out = Buffer.alloc(OBJECT_ID_BYTES);
  sodium.crypto_generichash(out, buf, key);
  return out.toString('hex') as ObjectId;
}

/** Keyed BLAKE2b-256 of a stream of chunks (e.g. a decrypting reader); returns the id and the byte count. */
export async function hashStream(key: Uint8Array, chunks: AsyncIterable<Uint8Array>): Promise<{ id: ObjectId; bytes: number }> {
  const h = new ContentHasher(key);
  for await (const chunk of chunks) h.update(chunk);
  const bytes = h.bytes;
  return { id: h.digest(), bytes };
}
