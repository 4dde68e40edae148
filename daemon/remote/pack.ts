/**
 * Pack files: many small blobs (objects, manifests) in one remote file, so a push of 10^5 small files is a few
 * dozen uploads and the remote sees neither their ids nor their sizes.
 *
 * A pack named N (32 random bytes, stored at data/<2>/<62> of its hex) is
 *
 *   entry_0 || entry_1 || … || entry_{k-1} || table || table_length (u32 BE)
 *
 *   entry_i = nonce (24) || XChaCha20-Poly1305(pack key, nonce, AD_i, blob_i) || tag (16)
 *   AD_i    = "dvfs remote pack v1" || N (32) || type u8 || id (32)
 *   table   = nonce (24) || XChaCha20-Poly1305(pack key, nonce, "dvfs remote pack table v1" || N, T) || tag (16)
 *   T       = version u8 (= 1) || k u32 BE || k × (type u8 || id (32) || blob length u32 BE)
 *
 * Entries lie back to back from offset 0, so entry i starts at sum_{j<i}(len_j + 40). The table lets an index
 * be rebuilt from the packs alone (like restic's pack header); readers normally use the index and fetch an
 * entry by offset and length.
 *
 * An entry opens only under the pack key, in the pack it was written to (N), as the blob (type, id) it was
 * written for: a flipped byte, an entry or pack moved or renamed, or an index pointing at the wrong entry all
 * fail authentication and raise RemoteIntegrityError. What an entry holds is opaque here: an object is
 * ciphertext of the working tree's format, which the pack layer cannot decrypt, so it does not re-hash the
 * blob against its id; the AEAD (whose AD carries the id) is the check: only a holder of the key can have
 * sealed these bytes as this id. The working format's own authentication applies when the object is read.
 *
 * Visible to the remote: pack sizes and the number of entries of each pack (from the table length).
 */
import type { ObjectId } from '../store/object-id.js';
import type { Backend } from './backend.js';
import { open, SEAL_OVERHEAD, sealInto, type RemoteKeys } from './keys.js';
import { dataKey, describe, idBytes, nameBytes, newName, RemoteIntegrityError, typeCode, typeOfCode, type BlobType } from './layout.js';

export const PACK_ENTRY_LABEL = 'dvfs remote pack v1';
export const PACK_TABLE_LABEL = 'dvfs remote pack table v1';
export const PACK_VERSION = 1;
export const TABLE_ENTRY_BYTES = 1 + 32 + 4;
export const TABLE_HEADER_BYTES = 1 + 4;
export const TRAILER_BYTES = 4;
/** Largest blob one entry can hold (the table stores lengths as u32). */
export const MAX_ENTRY_BYTES = 0xffff_ffff - SEAL_OVERHEAD;
/** Largest pack this code writes or reads (offsets in the index are u32). */
export const MAX_PACK_BYTES = 0xffff_ffff;

const ENTRY_LABEL = Buffer.from(PACK_ENTRY_LABEL, 'ascii');
const TABLE_LABEL = Buffer.from(PACK_TABLE_LABEL, 'ascii');

/** One blob in a pack: where its sealed entry is. `length` counts the sealed bytes (blob + 40). */
export interface PackedBlob {
  type: BlobType;
  id: ObjectId;
  offset: number;
  length: number;
}

export function entryAd(pack: Buffer, type: BlobType, id: ObjectId): Buffer {
  const ad = Buffer.allocUnsafe(ENTRY_LABEL.length + 32 + 1 + 32);
  ENTRY_LABEL.copy(ad, 0);
  pack.copy(ad, ENTRY_LABEL.length);
  ad[ENTRY_LABEL.length + 32] = typeCode(type);
  idBytes(id).copy(ad, ENTRY_LABEL.length + 33);
  return ad;
}

function tableAd(pack: Buffer): Buffer {
  return Buffer.concat([TABLE_LABEL, pack]);
}

export interface FinishedPack {
  name: string;
  /** Backend key: data/<2>/<62>. */
  key: string;
  data: Buffer;
  entries: PackedBlob[];
  /** The whole buffer `data` lies in: the next PackWriter may reuse it once `data` has been uploaded. */
  backing: Buffer;
}

/**
 * Builds one pack in memory, sealing each entry straight into one buffer (grown by doubling when the hint
 * was short), so a finished pack is never copied again: a push touches each byte once to read it and once
 * to seal it.
 */
export class PackWriter {
  readonly name: string;
  private readonly nameBuf: Buffer;
  private buf: Buffer;
  private readonly list: PackedBlob[] = [];
  private bytes = 0;
  private done = false;

  constructor(
    private readonly keys: RemoteKeys,
    name: string = newName(),
    /** Expected pack size (entries), to allocate once. */
    capacityHint = 1 << 20,
    /** A finished pack's backing buffer, no longer in use, to write into instead of a new one. */
    reuse?: Buffer,
  ) {
    this.name = name;
    this.nameBuf = nameBytes(name);
    const capacity = Math.max(4096, capacityHint);
    this.buf = reuse !== undefined && reuse.length >= capacity ? reuse : Buffer.allocUnsafe(capacity);
  }

  private reserve(extra: number): void {
    if (this.bytes + extra <= this.buf.length) return;
    let size = this.buf.length;
    while (size < this.bytes + extra) size *= 2;
    const grown = Buffer.allocUnsafe(size);
    this.buf.copy(grown, 0, 0, this.bytes);
    this.buf = grown;
  }

  /** Bytes of entries so far (the table and trailer come on top). */
  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.list.length;
  }

  /** Seals `blob` as entry (type, id) and appends it. */
  add(type: BlobType, id: ObjectId, blob: Uint8Array): PackedBlob {
    if (this.done) throw new Error('PackWriter: add() after finish()');
    if (blob.length > MAX_ENTRY_BYTES) throw new RangeError(`blob of ${blob.length} bytes is too large for a pack entry`);
    const length = blob.length + SEAL_OVERHEAD;
    if (this.bytes + length + TRAILER_BYTES + SEAL_OVERHEAD + TABLE_HEADER_BYTES + (this.list.length + 1) * TABLE_ENTRY_BYTES > MAX_PACK_BYTES) {
      throw new RangeError('pack would exceed 4 GiB');
    }
    this.reserve(length);
    sealInto(this.buf.subarray(this.bytes, this.bytes + length), this.keys.pack, entryAd(this.nameBuf, type, id), blob);
    const entry: PackedBlob = { type, id, offset: this.bytes, length };
    this.list.push(entry);
    this.bytes += length;
    return entry;
  }

  /** Appends the sealed table and trailer; returns the whole pack. The writer cannot be used afterwards. */
  finish(): FinishedPack {
    if (this.done) throw new Error('PackWriter: finish() called twice');
    this.done = true;
    const plain = Buffer.allocUnsafe(TABLE_HEADER_BYTES + this.list.length * TABLE_ENTRY_BYTES);
    plain[0] = PACK_VERSION;
    plain.writeUInt32BE(this.list.length, 1);
    let off = TABLE_HEADER_BYTES;
    for (const e of this.list) {
      plain[off] = typeCode(e.type);
      idBytes(e.id).copy(plain, off + 1);
      plain.writeUInt32BE(e.length - SEAL_OVERHEAD, off + 33);
      off += TABLE_ENTRY_BYTES;
    }
    const tableLength = plain.length + SEAL_OVERHEAD;
    this.reserve(tableLength + TRAILER_BYTES);
    sealInto(this.buf.subarray(this.bytes, this.bytes + tableLength), this.keys.pack, tableAd(this.nameBuf), plain);
    this.buf.writeUInt32BE(tableLength, this.bytes + tableLength);
    const backing = this.buf;
    const data = backing.subarray(0, this.bytes + tableLength + TRAILER_BYTES);
    this.buf = Buffer.alloc(0);
    return { name: this.name, key: dataKey(this.name), data, entries: this.list, backing };
  }
}

/**
 * Opens one sealed entry (exactly its `length` bytes) of pack `pack` as blob (type, id). Throws
 * RemoteIntegrityError when it does not authenticate.
 */
export function openEntry(keys: RemoteKeys, location: string, pack: string, entry: PackedBlob, sealed: Uint8Array): Buffer {
  const key = dataKey(pack);
  if (sealed.length !== entry.length) {
    throw new RemoteIntegrityError(location, key, `${describe(entry.type, entry.id)} at offset ${entry.offset}: got ${sealed.length} of ${entry.length} bytes (pack truncated?)`);
  }
  const plain = open(keys.pack, entryAd(nameBytes(pack), entry.type, entry.id), sealed);
  if (plain === null) {
    throw new RemoteIntegrityError(location, key, `${describe(entry.type, entry.id)} at offset ${entry.offset}: authentication failed (damaged, forged, or not this blob of this pack)`);
  }
  return plain;
}

/**
 * Parses a pack's table from the pack's last bytes. `tail` must be the final `tail.length` bytes of the pack
 * (all of it, or at least the table and trailer); `packSize` is the pack's full size.
 */
export function parsePackTable(keys: RemoteKeys, location: string, pack: string, tail: Buffer, packSize: number): PackedBlob[] {
  const key = dataKey(pack);
  const bad = (why: string): never => {
    throw new RemoteIntegrityError(location, key, `pack table: ${why}`);
  };
  if (tail.length < TRAILER_BYTES) bad(`pack of ${packSize} bytes is too short to hold a table`);
  const tableLen = tail.readUInt32BE(tail.length - TRAILER_BYTES);
  if (tableLen < SEAL_OVERHEAD + TABLE_HEADER_BYTES || tableLen + TRAILER_BYTES > packSize) bad(`impossible table length ${tableLen}`);
  if (tableLen + TRAILER_BYTES > tail.length) bad(`need the last ${tableLen + TRAILER_BYTES} bytes, got ${tail.length}`);
  const sealed = tail.subarray(tail.length - TRAILER_BYTES - tableLen, tail.length - TRAILER_BYTES);
  const plain = open(keys.pack, tableAd(nameBytes(pack)), sealed);
  if (plain === null) return bad('authentication failed (damaged, forged, or not this pack)');
  if (plain[0] !== PACK_VERSION) bad(`unknown pack version ${plain[0]}`);
  const count = plain.readUInt32BE(1);
  if (plain.length !== TABLE_HEADER_BYTES + count * TABLE_ENTRY_BYTES) bad(`table of ${plain.length} bytes cannot hold ${count} entries`);
  const out: PackedBlob[] = [];
  let offset = 0;
  for (let i = 0, p = TABLE_HEADER_BYTES; i < count; i++, p += TABLE_ENTRY_BYTES) {
    const type = typeOfCode(plain[p] ?? 0);
    if (type === null) return bad(`entry ${i} has unknown type ${plain[p]}`);
    const id = plain.subarray(p + 1, p + 33).toString('hex') as ObjectId;
    const length = plain.readUInt32BE(p + 33) + SEAL_OVERHEAD;
    out.push({ type, id, offset, length });
    offset += length;
  }
  if (offset + tableLen + TRAILER_BYTES !== packSize) bad(`entries (${offset} bytes) and table do not add up to the pack's ${packSize} bytes`);
  return out;
}

/** Reads the table of the pack named `pack` from a backend (two small range reads). */
export async function readPackTable(backend: Backend, keys: RemoteKeys, pack: string): Promise<PackedBlob[]> {
  const key = dataKey(pack);
  const size = await backend.head(key);
  if (size === null) throw new RemoteIntegrityError(backend.location, key, 'pack is missing');
  if (size < TRAILER_BYTES) throw new RemoteIntegrityError(backend.location, key, `pack of ${size} bytes is too short`);
  const trailer = await backend.getRange(key, size - TRAILER_BYTES, TRAILER_BYTES);
  if (trailer.length !== TRAILER_BYTES) throw new RemoteIntegrityError(backend.location, key, 'pack changed while being read');
  const tableLen = trailer.readUInt32BE(0);
  if (tableLen + TRAILER_BYTES > size) throw new RemoteIntegrityError(backend.location, key, `pack table: impossible table length ${tableLen}`);
  const tail = await backend.getRange(key, size - TRAILER_BYTES - tableLen, tableLen + TRAILER_BYTES);
  return parsePackTable(keys, backend.location, pack, tail, size);
}
