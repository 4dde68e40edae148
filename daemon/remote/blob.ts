/**
 * Large blobs: an object above the large-object threshold is stored alone, as a chunked AEAD stream that is
 * sealed while it is read from disk and uploaded (multipart on S3), and opened chunk by chunk while it is
 * downloaded, so neither side holds it in memory. The layout follows the dvfs-native file format (per-chunk
 * random nonces, index and final flag in the AD):
 *
 * A blob named N (32 random bytes, stored at data/<2>/<62> of its hex, like packs) of plaintext size P is
 *
 *   header || chunk_0 || … || chunk_{n-1}          n = max(1, ceil(P / C)), C = 2^shift = 1 MiB
 *
 *   header  = version u8 (= 1) || shift u8 (= 20) || reserved u16 (= 0)                          4 bytes
 *   chunk_i = nonce (24) || XChaCha20-Poly1305(blob key, nonce, AD_i, p_i) || tag (16)
 *   AD_i    = "dvfs remote blob v1" || header || N (32) || type u8 || id (32) || i u64 BE || final u8
 *
 * Every chunk but the last holds exactly C plaintext bytes; the last holds the rest (1..C bytes, or 0 when
 * P = 0); final is 1 for the last chunk only. Raw size = 4 + P + 40 n.
 *
 * A chunk opens only in its blob, at its index, as the blob (type, id), in its role (final or not): flipped
 * bytes, reordered, dropped or spliced chunks, truncation (also at a chunk boundary) and a blob renamed or
 * pointed at by the wrong index record all fail. P comes from the (sealed) index; the reader also refuses a
 * blob longer than 4 + P + 40 n. As with packs, the plaintext is opaque (ciphertext of the working format) and
 * is not re-hashed against its id here.
 */
import type { ObjectId } from '../store/object-id.js';
import { isNotFound, rechunk, type Backend, type StreamFactory } from './backend.js';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { NONCE_BYTES, open, SEAL_OVERHEAD, sealInPlace, sealInto, type RemoteKeys } from './keys.js';
import { dataKey, describe, idBytes, nameBytes, newName, RemoteIntegrityError, typeCode, type BlobType } from './layout.js';
import type { BlobLocation } from './pack-index.js';
import { DvfsError } from '../errors.js';

export const BLOB_VERSION = 1;
export const BLOB_CHUNK_SHIFT = 20;
export const BLOB_CHUNK_BYTES = 1 << BLOB_CHUNK_SHIFT;
export const BLOB_HEADER_BYTES = 4;
export const BLOB_LABEL = 'dvfs remote blob v1';
/** Raw bytes of a full chunk. */
export const BLOB_RAW_CHUNK_BYTES = BLOB_CHUNK_BYTES + SEAL_OVERHEAD;
/** Chunks fetched per range request when reading (16 MiB and a bit). */
export const DEFAULT_WINDOW_CHUNKS = 16;

const LABEL = Buffer.from(BLOB_LABEL, 'ascii');
const HEADER = Buffer.from([BLOB_VERSION, BLOB_CHUNK_SHIFT, 0, 0]);

export function blobChunkCount(size: number): number {
  return Math.max(1, Math.ceil(size / BLOB_CHUNK_BYTES));
}

/** Raw (stored) size of a blob of `size` plaintext bytes. */
export function blobRawSize(size: number): number {
  return BLOB_HEADER_BYTES + size + SEAL_OVERHEAD * blobChunkCount(size);
}

/** AD of chunk `index`; `base` is the shared prefix from chunkAdBase(). */
function chunkAd(base: Buffer, index: number, final: boolean): Buffer {
  const ad = Buffer.allocUnsafe(base.length + 9);
  base.copy(ad, 0);
  ad.writeBigUInt64BE(BigInt(index), base.length);
  ad[base.length + 8] = final ? 1 : 0;
  return ad;
}

function chunkAdBase(name: string, type: BlobType, id: ObjectId): Buffer {
  return Buffer.concat([LABEL, HEADER, nameBytes(name), Buffer.from([typeCode(type)]), idBytes(id)]);
}

/**
 * Seals a stream of exactly `size` plaintext bytes as blob `name` holding (type, id); yields the raw blob
 * (header, then one buffer per chunk). Throws E_IO when the source is longer or shorter than `size` (a file
 * that changed while being pushed).
 */
export async function* sealBlob(keys: RemoteKeys, name: string, type: BlobType, id: ObjectId, source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  const base = chunkAdBase(name, type, id);
  const n = blobChunkCount(size);
  yield Buffer.from(HEADER);
  let i = 0;
  let seen = 0;
  const changed = (got: string): DvfsError =>
    new DvfsError('E_IO', `${describe(type, id)}: source has ${got} bytes, not the ${size} expected (did the file change while being pushed?)`);
  for await (const chunk of rechunk(source, BLOB_CHUNK_BYTES)) {
    seen += chunk.length;
    if (seen > size || i >= n) throw changed(`more than ${size}`);
    const final = i === n - 1;
    if (final && seen !== size) throw changed(String(seen));
    const out = Buffer.allocUnsafe(chunk.length + SEAL_OVERHEAD);
    sealInto(out, keys.blob, chunkAd(base, i, final), chunk);
    yield out;
    i++;
  }
  if (size === 0 && i === 0) {
    const out = Buffer.allocUnsafe(SEAL_OVERHEAD);
    sealInto(out, keys.blob, chunkAd(base, 0, true), Buffer.alloc(0));
    yield out;
    i++;
  }
  if (seen !== size || i !== n) throw changed(String(seen));
}

/** Chunks sealed into each buffer sealFileBlob() yields: an upload part of 16 MiB and a bit. */
export const FILE_BLOB_PART_CHUNKS = 16;

/**
 * Buffers for the parts sealFileBlob() yields, reused once the backend reports a part sent. A fresh 16 MiB
 * buffer per part made V8 run a full garbage collection for nearly every part (external memory pressure):
 * 29 of them for a 512 MiB blob, 0.4-0.6 s of the push's main thread on a loaded machine.
 */
export class PartBuffers {
  private readonly free: Buffer[] = [];
  /** Buffers handed out, with the size asked for (weak: a part never reported sent is simply collected). */
  private readonly out = new WeakMap<ArrayBufferLike, number>();

  constructor(private readonly keep = 8) {}

  /** A buffer of exactly `size` bytes (a view of a reused one when one is big enough). */
  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= size);
    const whole = i < 0 ? Buffer.allocUnsafeSlow(size) : (this.free.splice(i, 1)[0] as Buffer);
    this.out.set(whole.buffer, size);
    return whole.subarray(0, size);
  }

  /**
   * Takes back a part that is all of what one take() gave. Anything else is ignored: another buffer, a part
   * given twice, and a part that is only a piece of a taken buffer (a backend that cut it into several parts
   * may still be sending the others).
   */
  give(part: Uint8Array): void {
    if (part.byteOffset !== 0 || this.out.get(part.buffer) !== part.byteLength) return;
    this.out.delete(part.buffer);
    if (this.free.length < this.keep) this.free.push(Buffer.from(part.buffer));
  }

  /** Buffers waiting to be reused (tests). */
  get spare(): number {
    return this.free.length;
  }
}

/** Reads into all of `into` from `position` on; returns the bytes read (fewer at the end of the file). */
async function readAt(fh: FileHandle, into: Buffer, position: number): Promise<number> {
  let got = 0;
  while (got < into.length) {
    const { bytesRead } = await fh.read(into, got, into.length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

/**
 * sealBlob() of a file of `size` bytes, reading each chunk straight into its place in the output and sealing
 * it there: the raw blob comes as buffers of FILE_BLOB_PART_CHUNKS chunks (the first with the header), ready
 * to go up as multipart parts, and no byte is copied between the disk and the upload.
 */
export async function* sealFileBlob(
  keys: RemoteKeys,
  name: string,
  type: BlobType,
  id: ObjectId,
  path: string,
  size: number,
  buffers: PartBuffers = new PartBuffers(0),
): AsyncGenerator<Buffer> {
  const base = chunkAdBase(name, type, id);
  const n = blobChunkCount(size);
  const changed = (): DvfsError => new DvfsError('E_IO', `${describe(type, id)}: the file is no longer ${size} bytes (did it change while being pushed?)`, { path });
  const plainOf = (i: number): number => (i === n - 1 ? size - i * BLOB_CHUNK_BYTES : BLOB_CHUNK_BYTES);
  const fh = await openFile(path, 'r');
  try {
    for (let i = 0; i < n; ) {
      const count = Math.min(FILE_BLOB_PART_CHUNKS, n - i);
      const header = i === 0 ? BLOB_HEADER_BYTES : 0;
      const part = buffers.take(header + (count - 1) * BLOB_RAW_CHUNK_BYTES + plainOf(i + count - 1) + SEAL_OVERHEAD);
      HEADER.copy(part, 0, 0, header);
      let off = header;
      for (const end = i + count; i < end; i++) {
        const final = i === n - 1;
        const plain = plainOf(i);
        // The final chunk asks for one byte more (it lands in the tag's space): a longer file shows up.
        const got = await readAt(fh, part.subarray(off + NONCE_BYTES, off + NONCE_BYTES + plain + (final ? 1 : 0)), i * BLOB_CHUNK_BYTES);
        if (got !== plain) throw changed();
        sealInPlace(part.subarray(off, off + plain + SEAL_OVERHEAD), keys.blob, chunkAd(base, i, final), plain);
        off += plain + SEAL_OVERHEAD;
      }
      yield part;
    }
  } finally {
    await fh.close();
  }
}

/** uploadBlob() of the file at `path` (see sealFileBlob()), its parts in `buffers` (reused once sent). */
export async function uploadFileBlob(
  backend: Backend,
  keys: RemoteKeys,
  type: BlobType,
  id: ObjectId,
  size: number,
  path: string,
  buffers: PartBuffers = new PartBuffers(),
): Promise<BlobLocation> {
  const name = newName();
  await backend.putLarge(dataKey(name), () => sealFileBlob(keys, name, type, id, path, size, buffers), blobRawSize(size), (part) => buffers.give(part));
  return { kind: 'blob', blob: name, size };
}

/**
 * Uploads `size` bytes from `source` (opened again if the upload is retried) as a new large blob holding
 * (type, id); returns its location for the index.
 */
export async function uploadBlob(backend: Backend, keys: RemoteKeys, type: BlobType, id: ObjectId, size: number, source: StreamFactory): Promise<BlobLocation> {
  const name = newName();
  await backend.putLarge(dataKey(name), () => sealBlob(keys, name, type, id, source(), size), blobRawSize(size));
  return { kind: 'blob', blob: name, size };
}

export interface ReadBlobOptions {
  /** Chunks per range request (default 16: about 16 MiB). */
  windowChunks?: number;
}

/**
 * Streams the plaintext of large blob `loc` holding (type, id), verifying every chunk; fetches the next window
 * while the current one is consumed. Throws RemoteIntegrityError on any mismatch (also when the blob is missing).
 */
export async function* readBlob(backend: Backend, keys: RemoteKeys, type: BlobType, id: ObjectId, loc: BlobLocation, options: ReadBlobOptions = {}): AsyncGenerator<Buffer> {
  const key = dataKey(loc.blob);
  const what = describe(type, id);
  const bad = (why: string): RemoteIntegrityError => new RemoteIntegrityError(backend.location, key, `large blob of ${what}: ${why}`);
  const per = Math.max(1, Math.floor(options.windowChunks ?? DEFAULT_WINDOW_CHUNKS));
  const n = blobChunkCount(loc.size);
  const raw = blobRawSize(loc.size);
  const base = chunkAdBase(loc.blob, type, id);
  const fetchWindow = async (first: number): Promise<Buffer> => {
    const start = first === 0 ? 0 : BLOB_HEADER_BYTES + first * BLOB_RAW_CHUNK_BYTES;
    const end = Math.min(raw, BLOB_HEADER_BYTES + (first + per) * BLOB_RAW_CHUNK_BYTES);
    const last = end === raw;
    // One byte more on the last window shows a blob longer than it should be.
    try {
      const got = await backend.getRange(key, start, end - start + (last ? 1 : 0));
      if (got.length < end - start) throw bad(`truncated: ${start + got.length} of ${raw} bytes`);
      if (got.length > end - start) throw bad(`longer than the ${raw} bytes the index says`);
      return got;
    } catch (e) {
      if (isNotFound(e)) throw bad('missing');
      throw e;
    }
  };
  let pending: Promise<Buffer> | null = fetchWindow(0);
  for (let first = 0; first < n; first += per) {
    const current = pending;
    if (current === null) break;
    const next = first + per < n ? fetchWindow(first + per) : null;
    // Keep a rejected prefetch from being reported as unhandled if the consumer stops early.
    next?.catch(() => undefined);
    pending = next;
    let buf = await current;
    if (first === 0) {
      if (!buf.subarray(0, BLOB_HEADER_BYTES).equals(HEADER)) throw bad(`unknown header ${buf.subarray(0, BLOB_HEADER_BYTES).toString('hex')}`);
      buf = buf.subarray(BLOB_HEADER_BYTES);
    }
    let off = 0;
    for (let i = first; i < Math.min(n, first + per); i++) {
      const final = i === n - 1;
      const plainLen = final ? loc.size - i * BLOB_CHUNK_BYTES : BLOB_CHUNK_BYTES;
      const sealed = buf.subarray(off, off + plainLen + SEAL_OVERHEAD);
      off += sealed.length;
      const plain = open(keys.blob, chunkAd(base, i, final), sealed);
      if (plain === null) throw bad(`chunk ${i} of ${n}: authentication failed (damaged, forged, moved, or not this blob)`);
      yield plain;
    }
  }
}
