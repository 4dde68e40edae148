/**
 * What a key slot seals: the keys of one epoch, as one binary record (FORMAT.md, "Grant"):
 *
 *   "dvfs-grant1" (11) || u32 BE epoch || u8 n || tree key (n) || u8 n || epoch secret (n) || u8 32 || content key (32)
 *
 * - tree key: what opens the working tree — the EncFS volume key material (key || IV) in encfs mode, the
 *   native master key in native mode;
 * - epoch secret: from it come the manifest and path keys of snapshots made in this epoch (and the remote
 *   keys, which come from the manifest key). Epoch 0's secret is the tree's own snapshot secret, so
 *   repositories made before key slots existed keep every id and key they had;
 * - content key: the keyed-hash key that names file contents (object ids). It is the same in every epoch,
 *   so deduplication and the index survive a rotation (FORMAT.md says what that costs).
 *
 * All three live in sodium secure memory; wipeGrant() zeroes them.
 */
import sodium, { type SecureBuffer } from 'sodium-native';
import { DvfsError } from '../errors.js';

const MAGIC = Buffer.from('dvfs-grant1', 'ascii');

export interface Grant {
  epoch: number;
  tree: SecureBuffer;
  secret: SecureBuffer;
  content: SecureBuffer;
}

function secure(src: Uint8Array): SecureBuffer {
  const b = sodium.sodium_malloc(src.length);
  b.set(src);
  return b;
}

export function makeGrant(epoch: number, tree: Uint8Array, secret: Uint8Array, content: Uint8Array): Grant {
  return { epoch, tree: secure(tree), secret: secure(secret), content: secure(content) };
}

export function encodeGrant(g: Grant): SecureBuffer {
  for (const [what, b] of [['tree key', g.tree], ['epoch secret', g.secret]] as const) {
    if (b.length < 16 || b.length > 255) throw new DvfsError('E_USAGE', `${what} must be 16..255 bytes`);
  }
  if (g.content.length !== 32) throw new DvfsError('E_USAGE', 'content key must be 32 bytes');
  const out = sodium.sodium_malloc(MAGIC.length + 4 + 3 + g.tree.length + g.secret.length + 32);
  let o = MAGIC.copy(out, 0);
  o = out.writeUInt32BE(g.epoch, o);
  for (const part of [g.tree, g.secret, g.content]) {
    out[o++] = part.length;
    out.set(part, o);
    o += part.length;
  }
  return out;
}

/** Decodes a grant; null when the bytes are not one (the caller reports where they came from). */
export function decodeGrant(b: Uint8Array): Grant | null {
  if (b.length < MAGIC.length + 7 || !Buffer.from(b.subarray(0, MAGIC.length)).equals(MAGIC)) return null;
  const view = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const epoch = view.readUInt32BE(MAGIC.length);
  let o = MAGIC.length + 4;
  const parts: Uint8Array[] = [];
  for (let i = 0; i < 3; i++) {
    const n = view[o++];
    if (n === undefined || o + n > view.length) return null;
    parts.push(view.subarray(o, o + n));
    o += n;
  }
  const [tree, secret, content] = parts;
  if (o !== view.length || !tree || !secret || !content || content.length !== 32) return null;
  return makeGrant(epoch, tree, secret, content);
}

export function wipeGrant(g: Grant): void {
  sodium.sodium_memzero(g.tree);
  sodium.sodium_memzero(g.secret);
  sodium.sodium_memzero(g.content);
}
