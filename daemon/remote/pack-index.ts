/**
 * The remote index: where each blob (type, id) is — an entry of a pack, or a large blob of its own — kept in
 * sealed index files so the remote shows no id, type, size or grouping in the clear.
 *
 * An index file holds the plaintext I (all integers big-endian)
 *
 *   version u8 (= 1)
 *   s u32 || s × name (32)                               index files this one supersedes
 *   p u32 || p × pack name (32)                          the packs its entries refer to
 *   e u32 || e × (type u8 || id (32) || pack u32 || offset u32 || length u32)   packed blobs; pack indexes
 *                                                        the list above, length counts the sealed entry
 *   b u32 || b × (type u8 || id (32) || blob name (32) || size u64)              large blobs; size = plaintext
 *
 * and is stored at index/<hex(M)> as
 *
 *   M      = BLAKE2b-256(key = name key, "dvfs remote index name v1" || I)
 *   file   = nonce (24) || XChaCha20-Poly1305(index key, nonce, "dvfs remote index v1" || M, I) || tag (16)
 *
 * Reading checks the tag (which binds the name) and that I hashes back to M: a damaged, forged or renamed index
 * file is refused with RemoteIntegrityError. Equal contents get equal names, so re-uploading an index is
 * harmless. Files are kept to at most `maxEntries` entries (default 100 000, about 4.5 MB) each.
 *
 * The index in effect is the union of every index file not superseded by another (a compaction writes one file
 * superseding several, then deletes them). When two files place the same blob, the first loaded wins (both
 * places hold valid copies).
 */
import { IdTable } from '../store/id-table.js';
import type { ObjectId } from '../store/object-id.js';
import type { Backend } from './backend.js';
import { keyedHash, open, seal, SEAL_OVERHEAD, type RemoteKeys } from './keys.js';
import {
  idBytes,
  INDEX_PREFIX,
  indexKey,
  nameBytes,
  nameOfIndexKey,
  RemoteIntegrityError,
  typeCode,
  typeOfCode,
  type BlobType,
} from './layout.js';

export const INDEX_VERSION = 1;
export const INDEX_SEAL_LABEL = 'dvfs remote index v1';
export const INDEX_NAME_LABEL = 'dvfs remote index name v1';
export const DEFAULT_INDEX_ENTRIES = 100_000;
const PACKED_RECORD_BYTES = 1 + 32 + 4 + 4 + 4;
const BLOB_RECORD_BYTES = 1 + 32 + 32 + 8;
/** Largest index file accepted. */
export const MAX_INDEX_FILE_BYTES = 256 * 1024 * 1024;

/** A blob inside a pack: `length` sealed bytes at `offset` (the blob itself is length - 40 bytes). */
export interface PackLocation {
  kind: 'pack';
  pack: string;
  offset: number;
  length: number;
}

/** A large blob stored alone (blob.ts): `size` plaintext bytes. */
export interface BlobLocation {
  kind: 'blob';
  blob: string;
  size: number;
}

export type Location = PackLocation | BlobLocation;

export interface IndexRecord {
  type: BlobType;
  id: ObjectId;
  loc: Location;
}

/** Plaintext size of the blob at a location. */
export function blobSize(loc: Location): number {
  return loc.kind === 'pack' ? loc.length - SEAL_OVERHEAD : loc.size;
}

/** Value words of a PackIndex row: pack number + 1 (0: a large blob, see `blobs`), offset, length. */
const W_PACK = 0;
const W_OFFSET = 1;
const W_LENGTH = 2;

/**
 * An in-memory index: (type, id) -> location. Compact (IdTable: ~60 bytes per blob; pack names once each),
 * since a push or a pull of a million-file tree holds a record per blob; large blobs, rare, sit in a Map.
 */
export class PackIndex {
  private readonly table = new IdTable(3);
  private readonly packNames: string[] = [];
  private readonly packNumbers = new Map<string, number>();
  private readonly blobs = new Map<number, BlobLocation>();

  get size(): number {
    return this.table.size;
  }

  has(type: BlobType, id: ObjectId): boolean {
    return this.table.has(typeCode(type), id);
  }

  get(type: BlobType, id: ObjectId): Location | undefined {
    const row = this.table.find(typeCode(type), id);
    return row === -1 ? undefined : this.locationOf(row);
  }

  /** Adds a record; false (and no change) when the blob is already placed. */
  add(rec: IndexRecord): boolean {
    const { row, added } = this.table.add(typeCode(rec.type), rec.id);
    if (!added) return false;
    const loc = rec.loc;
    if (loc.kind === 'blob') {
      this.blobs.set(row, { kind: 'blob', blob: loc.blob, size: loc.size });
      return true;
    }
    let n = this.packNumbers.get(loc.pack);
    if (n === undefined) {
      n = this.packNames.length;
      this.packNames.push(loc.pack);
      this.packNumbers.set(loc.pack, n);
    }
    this.table.setValue(row, W_PACK, n + 1);
    this.table.setValue(row, W_OFFSET, loc.offset);
    this.table.setValue(row, W_LENGTH, loc.length);
    return true;
  }

  /** Every record, in the order added (made on the fly). */
  *records(): IterableIterator<IndexRecord> {
    for (let row = 0; row < this.table.size; row++) {
      const type = typeOfCode(this.table.code(row));
      if (type === null) throw new Error(`PackIndex: bad type code in row ${row}`);
      yield { type, id: this.table.id(row), loc: this.locationOf(row) };
    }
  }

  /** Names of every pack and large blob referred to. */
  dataNames(): Set<string> {
    const out = new Set<string>(this.packNames);
    for (const b of this.blobs.values()) out.add(b.blob);
    return out;
  }

  private locationOf(row: number): Location {
    const pack = this.table.value(row, W_PACK);
    if (pack === 0) {
      const b = this.blobs.get(row);
      if (b === undefined) throw new Error(`PackIndex: row ${row} has no location`);
      return { kind: 'blob', blob: b.blob, size: b.size };
    }
    return { kind: 'pack', pack: this.packNames[pack - 1] as string, offset: this.table.value(row, W_OFFSET), length: this.table.value(row, W_LENGTH) };
  }
}

/** Encodes one index file's plaintext. */
export function encodeIndex(records: readonly IndexRecord[], supersedes: readonly string[] = []): Buffer {
  const packs = new Map<string, number>();
  const packed: Array<IndexRecord & { loc: PackLocation }> = [];
  const blobs: Array<IndexRecord & { loc: BlobLocation }> = [];
  for (const r of records) {
    if (r.loc.kind === 'pack') {
      if (!packs.has(r.loc.pack)) packs.set(r.loc.pack, packs.size);
      packed.push(r as IndexRecord & { loc: PackLocation });
    } else {
      blobs.push(r as IndexRecord & { loc: BlobLocation });
    }
  }
  const size = 1 + 4 + 32 * supersedes.length + 4 + 32 * packs.size + 4 + PACKED_RECORD_BYTES * packed.length + 4 + BLOB_RECORD_BYTES * blobs.length;
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  out[p++] = INDEX_VERSION;
  const names = (list: Iterable<string>, n: number): void => {
    p = out.writeUInt32BE(n, p);
    for (const name of list) p += nameBytes(name).copy(out, p);
  };
  names(supersedes, supersedes.length);
  names(packs.keys(), packs.size);
  p = out.writeUInt32BE(packed.length, p);
  for (const r of packed) {
    out[p++] = typeCode(r.type);
    p += idBytes(r.id).copy(out, p);
    p = out.writeUInt32BE(packs.get(r.loc.pack) ?? 0, p);
    p = out.writeUInt32BE(r.loc.offset, p);
    p = out.writeUInt32BE(r.loc.length, p);
  }
  p = out.writeUInt32BE(blobs.length, p);
  for (const r of blobs) {
    out[p++] = typeCode(r.type);
    p += idBytes(r.id).copy(out, p);
    p += nameBytes(r.loc.blob).copy(out, p);
    p = out.writeBigUInt64BE(BigInt(r.loc.size), p);
  }
  if (p !== size) throw new Error('encodeIndex: size mismatch');
  return out;
}

export interface IndexContents {
  supersedes: string[];
  records: IndexRecord[];
}

/** Decodes an index file's plaintext; throws an Error naming the problem when it is malformed. */
export function decodeIndex(plain: Buffer): IndexContents {
  const records: IndexRecord[] = [];
  const supersedes = decodeIndexEach(plain, (r) => records.push(r));
  return { supersedes, records };
}

/**
 * Decodes an index file's plaintext record by record (nothing kept: a million records cost no memory here);
 * returns the names it supersedes. Throws like decodeIndex, possibly after some records were visited.
 */
export function decodeIndexEach(plain: Buffer, visit: (r: IndexRecord) => void): string[] {
  let p = 0;
  const need = (n: number, what: string): void => {
    if (p + n > plain.length) throw new Error(`truncated in ${what}`);
  };
  const u32 = (what: string): number => {
    need(4, what);
    const v = plain.readUInt32BE(p);
    p += 4;
    return v;
  };
  const hex = (what: string): string => {
    need(32, what);
    const s = plain.subarray(p, p + 32).toString('hex');
    p += 32;
    return s;
  };
  const type = (what: string): BlobType => {
    need(1, what);
    const t = typeOfCode(plain[p++] ?? 0);
    if (t === null) throw new Error(`unknown blob type ${plain[p - 1]} in ${what}`);
    return t;
  };
  need(1, 'header');
  if (plain[p++] !== INDEX_VERSION) throw new Error(`unknown index version ${plain[0]}`);
  const count = (per: number, what: string): number => {
    const n = u32(what);
    need(n * per, what);
    return n;
  };
  const supersedes: string[] = [];
  for (let i = 0, n = count(32, 'supersedes'); i < n; i++) supersedes.push(hex('supersedes'));
  const packs: string[] = [];
  for (let i = 0, n = count(32, 'packs'); i < n; i++) packs.push(hex('packs'));
  for (let i = 0, n = count(PACKED_RECORD_BYTES, 'packed blobs'); i < n; i++) {
    const t = type('packed blobs');
    const id = hex('packed blobs') as ObjectId;
    const pi = u32('packed blobs');
    const offset = u32('packed blobs');
    const length = u32('packed blobs');
    const pack = packs[pi];
    if (pack === undefined) throw new Error(`packed blob ${i} refers to pack #${pi} of ${packs.length}`);
    if (length < SEAL_OVERHEAD) throw new Error(`packed blob ${i} has impossible length ${length}`);
    if (offset + length > 0xffff_ffff) throw new Error(`packed blob ${i} ends past 4 GiB`);
    visit({ type: t, id, loc: { kind: 'pack', pack, offset, length } });
  }
  for (let i = 0, n = count(BLOB_RECORD_BYTES, 'large blobs'); i < n; i++) {
    const t = type('large blobs');
    const id = hex('large blobs') as ObjectId;
    const blob = hex('large blobs');
    need(8, 'large blobs');
    const size = plain.readBigUInt64BE(p);
    p += 8;
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`large blob ${i} has impossible size ${size}`);
    visit({ type: t, id, loc: { kind: 'blob', blob, size: Number(size) } });
  }
  if (p !== plain.length) throw new Error(`${plain.length - p} bytes of garbage after the records`);
  return supersedes;
}

function sealAd(name: Buffer): Buffer {
  return Buffer.concat([Buffer.from(INDEX_SEAL_LABEL, 'ascii'), name]);
}

function nameOf(keys: RemoteKeys, plain: Buffer): Buffer {
  return keyedHash(keys.name, Buffer.from(INDEX_NAME_LABEL, 'ascii'), plain);
}

export interface SealedIndexFile {
  name: string;
  /** Backend key: index/<name>. */
  key: string;
  data: Buffer;
}

/** Seals one index file. */
export function sealIndexFile(keys: RemoteKeys, records: readonly IndexRecord[], supersedes: readonly string[] = []): SealedIndexFile {
  const plain = encodeIndex(records, supersedes);
  const name = nameOf(keys, plain);
  const hex = name.toString('hex');
  return { name: hex, key: indexKey(hex), data: seal(keys.index, sealAd(name), plain) };
}

/** Splits records into sealed index files of at most `maxEntries` records each (at least one file). */
export function sealIndexFiles(keys: RemoteKeys, records: readonly IndexRecord[], maxEntries = DEFAULT_INDEX_ENTRIES, supersedes: readonly string[] = []): SealedIndexFile[] {
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
  const out: SealedIndexFile[] = [];
  for (let i = 0; i === 0 || i < records.length; i += maxEntries) {
    out.push(sealIndexFile(keys, records.slice(i, i + maxEntries), i === 0 ? supersedes : []));
  }
  return out;
}

/** Opens one index file stored under `name`; RemoteIntegrityError when it is not what the name says. */
export function openIndexFile(keys: RemoteKeys, location: string, name: string, data: Buffer): IndexContents {
  const records: IndexRecord[] = [];
  const supersedes = openIndexFileEach(keys, location, name, data, (r) => records.push(r));
  return { supersedes, records };
}

/** openIndexFile, visiting the records one by one (see decodeIndexEach); returns what the file supersedes. */
export function openIndexFileEach(keys: RemoteKeys, location: string, name: string, data: Buffer, visit: (r: IndexRecord) => void): string[] {
  const key = indexKey(name);
  const nb = nameBytes(name);
  const plain = open(keys.index, sealAd(nb), data);
  if (plain === null) throw new RemoteIntegrityError(location, key, 'index file: authentication failed (damaged, forged, renamed, or sealed with other keys)');
  if (!nameOf(keys, plain).equals(nb)) throw new RemoteIntegrityError(location, key, 'index file: contents do not match its name');
  try {
    return decodeIndexEach(plain, visit);
  } catch (e) {
    throw new RemoteIntegrityError(location, key, `index file: malformed: ${e instanceof Error ? e.message : String(e)}`);
  }
}

export interface LoadedIndex {
  index: PackIndex;
  /** Every index file found (superseded ones included). */
  files: string[];
  /** Index files superseded by others (safe to delete). */
  superseded: string[];
}

/**
 * Reads and opens every index file of a remote (`concurrency` at a time) and merges them. Each file's
 * records go into a PackIndex of their own as it is read (compact, unlike decoded record objects); the
 * indexes of files no other file supersedes are then merged in name order.
 */
export async function loadIndex(backend: Backend, keys: RemoteKeys, concurrency = 4): Promise<LoadedIndex> {
  const names: string[] = [];
  for await (const { key } of backend.list(INDEX_PREFIX)) {
    const name = nameOfIndexKey(key);
    if (name !== null) names.push(name);
  }
  names.sort();
  // per file, in name order; a part merged into the result is dropped (undefined) so its memory can go
  const parts = new Array<{ supersedes: string[]; index: PackIndex } | undefined>(names.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const i = next++;
      const name = names[i] as string;
      const key = indexKey(name);
      const data = await backend.get(key);
      if (data.length > MAX_INDEX_FILE_BYTES + SEAL_OVERHEAD) throw new RemoteIntegrityError(backend.location, key, `index file of ${data.length} bytes is implausibly large`);
      const index = new PackIndex();
      const supersedes = openIndexFileEach(keys, backend.location, name, data, (r) => index.add(r));
      parts[i] = { supersedes, index };
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, names.length)) }, worker));
  const superseded = new Set<string>();
  for (const c of parts) for (const s of c?.supersedes ?? []) superseded.add(s);
  // A single live file (the usual case after a compaction, or a first push) is the index as it is.
  const live = names.flatMap((n, i) => (superseded.has(n) ? [] : [i]));
  const only = live.length === 1 ? parts[live[0] as number]?.index : undefined;
  const index = only ?? new PackIndex();
  if (only === undefined) {
    for (const i of live) {
      for (const r of parts[i]?.index.records() ?? []) index.add(r);
      parts[i] = undefined;
    }
  }
  return { index, files: names, superseded: names.filter((n) => superseded.has(n)) };
}
