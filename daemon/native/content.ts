/**
 * dvfs-native file contents: authenticated, random-access, chunked.
 *
 * An empty file is 0 raw bytes. Any other file is
 *
 *   header   version u16 BE (= 1) || file id (16 random bytes)                          18 bytes
 *   chunk i  nonce (24 random bytes) || XChaCha20-Poly1305(contents subkey, nonce, AD_i, plaintext_i) || tag (16)
 *
 * where every chunk but the last holds exactly `chunkSize` plaintext bytes, the last holds 1..chunkSize, and
 *
 *   AD_i = version u16 BE || file id || i u64 BE || final u8 (1 for the last chunk, else 0)   27 bytes
 *
 * so a chunk only opens in its own file, at its own index, and in its own role: flipping bits, swapping or
 * reordering chunks, splicing chunks or headers from another file, and truncating (also exactly at a chunk
 * boundary, which leaves a last chunk sealed as non-final) all fail authentication. A header-only file or one
 * ending in a chunk with no plaintext has an impossible size. Every write draws a fresh nonce.
 *
 * Writes re-seal only the chunks they touch (read-verify-modify-write at the edges); growing a file re-seals
 * the old last chunk without its final flag and fills gaps with sealed zero chunks (no unauthenticated holes).
 * truncate(0) always leaves a 0-byte file; the next write starts a new file id.
 */
import { constants as fsc, type Stats } from 'node:fs';
import { open as fsOpen, type FileHandle } from 'node:fs/promises';
import { constants as osc } from 'node:os';
import sodium from 'sodium-native';
import { DvfsError, IntegrityError, isNodeError } from '../errors.js';
import type { FileContent } from '../vfs/crypto-tree.js';
import type { NativeKeys } from './keys.js';
import { open as aeadOpen } from './names.js';

export const FILE_VERSION = 1;
export const FILE_ID_BYTES = 16;
export const HEADER_BYTES = 2 + FILE_ID_BYTES;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
export const CHUNK_OVERHEAD = NONCE_BYTES + TAG_BYTES;
const AD_BYTES = 2 + FILE_ID_BYTES + 8 + 1;

/** Chunks sealed or opened per batch: bounds temporary buffers for large requests. */
const BATCH_CHUNKS = 256;
const EMPTY = Buffer.alloc(0);

/** Size arithmetic of the chunked layout. */
export class ChunkLayout {
  /** Raw bytes of a full chunk. */
  readonly rawChunkSize: number;

  constructor(readonly chunkSize: number) {
    this.rawChunkSize = chunkSize + CHUNK_OVERHEAD;
  }

  /** Plaintext size of a raw file of `rawSize` bytes, or -1 when no file of the format has that size. */
  plainSize(rawSize: number): number {
    if (rawSize === 0) return 0;
    const body = rawSize - HEADER_BYTES;
    if (body <= 0) return -1;
    const full = Math.floor(body / this.rawChunkSize);
    const rest = body - full * this.rawChunkSize;
    if (rest === 0) return full * this.chunkSize;
    if (rest <= CHUNK_OVERHEAD) return -1;
    return full * this.chunkSize + rest - CHUNK_OVERHEAD;
  }

  rawSize(plainSize: number): number {
    if (plainSize === 0) return 0;
    const full = Math.floor(plainSize / this.chunkSize);
    const rest = plainSize - full * this.chunkSize;
    return HEADER_BYTES + full * this.rawChunkSize + (rest === 0 ? 0 : rest + CHUNK_OVERHEAD);
  }

  /** Raw offset of chunk `index`. */
  rawOffset(index: number): number {
    return HEADER_BYTES + index * this.rawChunkSize;
  }

  /** Index of the last chunk of a non-empty file of `size` plaintext bytes. */
  lastIndex(size: number): number {
    return Math.ceil(size / this.chunkSize) - 1;
  }

  /** Throws IntegrityError (naming `displayPath`) for impossible raw sizes. */
  checkedPlainSize(rawSize: number, displayPath: string): number {
    const plain = this.plainSize(rawSize);
    if (plain < 0) {
      const why =
        rawSize - HEADER_BYTES <= 0
          ? `shorter than a header plus one chunk (${HEADER_BYTES + CHUNK_OVERHEAD + 1} bytes)`
          : 'its last chunk holds no plaintext';
      throw new IntegrityError(`ciphertext is ${rawSize} bytes: ${why} (truncated or corrupt)`, { path: displayPath || '/' });
    }
    return plain;
  }
}

export interface OpenContentOptions {
  create?: boolean;
  mode?: number;
  readOnly?: boolean;
}

function errnoError(code: 'EBADF' | 'EINVAL', message: string, path: string): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: ${message}`);
  e.code = code;
  e.errno = -osc.errno[code];
  e.path = path;
  return e;
}

const noop = (): void => undefined;

/**
 * An open dvfs-native file seen as plaintext. Reads run concurrently with each other; writes, truncation and
 * close are exclusive (a read never sees a half-written chunk, which would fail authentication). The raw size
 * is tracked in memory after the first fstat: one NativeFile must be the only writer of its file.
 */
export class NativeFile implements FileContent {
  /** null while the file is empty (0 raw bytes, no header). */
  private fileId: Buffer | null = null;
  private knownRawSize: number | null = null;
  private readonly ad = Buffer.alloc(AD_BYTES);
  private writeTail: Promise<void> = Promise.resolve();
  private readers = new Set<Promise<void>>();
  private closed = false;
  /** Plaintext of the final chunk as this object last sealed it (appends re-seal it without re-reading). */
  private tail: { index: number; plain: Buffer } | null = null;
  private zeroChunk: Buffer | null = null;

  private constructor(
    private readonly handle: FileHandle,
    private readonly layout: ChunkLayout,
    private readonly keys: NativeKeys,
    /** The plaintext path, for error messages. */
    readonly displayPath: string,
    readonly readOnly: boolean,
    private readonly onIntegrityError: ((e: IntegrityError) => void) | undefined,
  ) {}

  /**
   * Opens (creating when `create`) a ciphertext file. Nothing is verified yet, so a damaged file can still be
   * truncated to 0 or overwritten; reads report damage as IntegrityError.
   */
  static async open(
    rawPath: string,
    options: OpenContentOptions,
    layout: ChunkLayout,
    keys: NativeKeys,
    displayPath: string,
    onIntegrityError?: (e: IntegrityError) => void,
  ): Promise<NativeFile> {
    let readOnly = options.readOnly === true;
    const create = options.create === true ? fsc.O_CREAT : 0;
    let handle: FileHandle;
    try {
      handle = await fsOpen(rawPath, (readOnly ? fsc.O_RDONLY : fsc.O_RDWR) | create, options.mode ?? 0o644);
    } catch (e) {
      // A file without write permission can still be read (writes then answer EBADF).
      if (readOnly || create !== 0 || !(isNodeError(e) && e.code === 'EACCES')) throw e;
      handle = await fsOpen(rawPath, fsc.O_RDONLY);
      readOnly = true;
    }
    return new NativeFile(handle, layout, keys, displayPath, readOnly, onIntegrityError);
  }

  size(): Promise<number> {
    return this.shared(() => this.current());
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.shared(async () => {
      this.checkRange(offset, length);
      const size = await this.current();
      if (offset >= size || length === 0) return EMPTY;
      const C = this.layout.chunkSize;
      const end = Math.min(size, offset + length);
      const first = Math.floor(offset / C);
      const plain = await this.readChunks(first, Math.floor((end - 1) / C), size);
      return plain.subarray(offset - first * C, end - first * C);
    });
  }

  write(offset: number, data: Buffer): Promise<number> {
    return this.exclusive(async () => {
      this.checkWritable();
      this.checkRange(offset, data.length);
      const size = await this.current();
      if (data.length === 0) return 0;
      await this.apply(size, offset, data, Math.max(size, offset + data.length));
      return data.length;
    });
  }

  truncate(newSize: number): Promise<void> {
    return this.exclusive(async () => {
      this.checkWritable();
      this.checkRange(newSize, 0);
      if (newSize === 0) {
        // Needs nothing verified: also the way to reset a damaged file.
        this.knownRawSize = null;
        this.tail = null;
        await this.handle.truncate(0);
        this.fileId = null;
        this.knownRawSize = 0;
        return;
      }
      const size = await this.current();
      if (newSize === size) return;
      if (newSize > size) {
        await this.apply(size, size, EMPTY, newSize);
      } else {
        // The new last chunk is re-sealed (cut, and final) before the rest is cut off.
        const C = this.layout.chunkSize;
        const k = this.layout.lastIndex(newSize);
        const kept = Buffer.from((await this.oldChunk(k, size)).subarray(0, newSize - k * C));
        this.knownRawSize = null;
        this.tail = null;
        const out = Buffer.allocUnsafe(kept.length + CHUNK_OVERHEAD);
        this.sealChunk(out, 0, kept, k, true);
        await this.writeAll(out, this.layout.rawOffset(k));
        await this.handle.truncate(this.layout.rawSize(newSize));
        this.knownRawSize = this.layout.rawSize(newSize);
        this.tail = { index: k, plain: kept };
      }
    });
  }

  /** fstat of the ciphertext file, ordered after pending writes (so its size is never mid-write). */
  rawStats(): Promise<Stats> {
    return this.shared(() => this.handle.stat());
  }

  async sync(): Promise<void> {
    await this.exclusive(() => this.handle.sync());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([this.writeTail, ...this.readers]);
    await this.handle.close();
  }

  // --- sequencing -------------------------------------------------------------------------------------

  private shared<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writeTail.then(() => {
      this.keys.check();
      return fn();
    });
    const settled = run.then(noop, noop);
    this.readers.add(settled);
    void settled.then(() => this.readers.delete(settled));
    return this.reported(run);
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const prior = this.readers.size === 0 ? this.writeTail : Promise.all([this.writeTail, ...this.readers]);
    this.readers = new Set();
    const run = prior
      .then(() => {
        this.keys.check();
        return fn();
      })
      .catch((e: unknown) => {
        // A failed mutation may have left the raw size anywhere: fstat again next time.
        this.knownRawSize = null;
        this.tail = null;
        throw e;
      });
    this.writeTail = run.then(noop, noop);
    return this.reported(run);
  }

  private reported<T>(run: Promise<T>): Promise<T> {
    if (this.onIntegrityError === undefined) return run;
    const report = this.onIntegrityError;
    return run.catch((e: unknown) => {
      if (e instanceof IntegrityError) report(e);
      throw e;
    });
  }

  private checkWritable(): void {
    if (this.readOnly) throw errnoError('EBADF', 'file was opened read-only', this.displayPath);
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || offset + length > Number.MAX_SAFE_INTEGER) {
      throw errnoError('EINVAL', `bad offset ${offset} / length ${length}`, this.displayPath);
    }
  }

  // --- state ------------------------------------------------------------------------------------------

  /** Plaintext size; loads the header of a file that became non-empty. */
  private async current(): Promise<number> {
    if (this.knownRawSize === null) this.knownRawSize = (await this.handle.stat()).size;
    const rawSize = this.knownRawSize;
    const size = this.layout.checkedPlainSize(rawSize, this.displayPath);
    if (rawSize === 0) this.fileId = null;
    else if (this.fileId === null) await this.loadHeader();
    return size;
  }

  private async loadHeader(): Promise<void> {
    const header = Buffer.alloc(HEADER_BYTES);
    const got = await this.readFully(header, 0);
    if (got < HEADER_BYTES) throw new IntegrityError('file header is truncated', { path: this.displayPath });
    const version = header.readUInt16BE(0);
    if (version !== FILE_VERSION) {
      throw new IntegrityError(`file header has unknown format version ${version} (corrupt or tampered header)`, { path: this.displayPath });
    }
    this.fileId = Buffer.from(header.subarray(2));
    this.ad.writeUInt16BE(FILE_VERSION, 0);
    this.fileId.copy(this.ad, 2);
  }

  /** Starts a new file id; the header bytes go out with the first chunks (see apply). */
  private newHeader(): Buffer {
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt16BE(FILE_VERSION, 0);
    const id = Buffer.allocUnsafe(FILE_ID_BYTES);
    sodium.randombytes_buf(id);
    id.copy(header, 2);
    this.fileId = id;
    this.ad.writeUInt16BE(FILE_VERSION, 0);
    id.copy(this.ad, 2);
    return header;
  }

  private setAd(index: number, final: boolean): Buffer {
    const ad = this.ad;
    ad.writeUInt32BE(Math.floor(index / 0x100000000), 2 + FILE_ID_BYTES);
    ad.writeUInt32BE(index >>> 0, 6 + FILE_ID_BYTES);
    ad[10 + FILE_ID_BYTES] = final ? 1 : 0;
    return ad;
  }

  // --- chunks -----------------------------------------------------------------------------------------

  /**
   * Writes `data` at `offset` into a file of `size` plaintext bytes that becomes `newSize` bytes long
   * (newSize >= size; newSize > offset + data.length only when growing by truncate).
   */
  private async apply(size: number, offset: number, data: Buffer, newSize: number): Promise<void> {
    const L = this.layout;
    const C = L.chunkSize;
    const end = offset + data.length;
    let first: number;
    let last: number;
    if (newSize > size) {
      // Growing: everything from the old last chunk (which loses its final flag) to the new last chunk.
      last = L.lastIndex(newSize);
      first = size === 0 ? 0 : Math.min(L.lastIndex(size), Math.floor(offset / C));
    } else {
      first = Math.floor(offset / C);
      last = Math.floor((end - 1) / C);
    }
    // Old plaintext the request keeps in its edge chunks (only they can have any), verified before anything
    // is written; the final chunk usually comes from memory.
    const keeps = (i: number): boolean => i * C < size && !(offset <= i * C && end >= Math.min((i + 1) * C, size));
    const oldFirst = keeps(first) ? await this.oldChunk(first, size) : null;
    const oldLast = last !== first && keeps(last) ? await this.oldChunk(last, size) : null;

    const finalIndex = L.lastIndex(newSize);
    const chunkPlain = (i: number): Buffer => {
      const cs = i * C;
      const ce = Math.min(cs + C, newSize);
      if (offset <= cs && end >= ce) return data.subarray(cs - offset, ce - offset);
      const old = i === first ? oldFirst : i === last ? oldLast : null;
      const from = Math.max(offset, cs);
      const to = Math.min(end, ce);
      if (old === null && to <= from) return this.zeros(ce - cs);
      const merged = Buffer.alloc(ce - cs);
      if (old !== null) old.copy(merged, 0);
      if (to > from) data.copy(merged, from - cs, from - offset, to - offset);
      return merged;
    };

    // If the final chunk is not among those re-sealed, the size is unchanged and so is the remembered tail.
    const keptTail = this.tail;
    this.knownRawSize = null;
    this.tail = null;
    // A new file's header is written in the same pwrite as its first chunks: never a header-only file.
    const header = size === 0 ? this.newHeader() : null;
    let finalPlain: Buffer | null = null;
    for (let s = first; s <= last; s += BATCH_CHUNKS) {
      const e = Math.min(last, s + BATCH_CHUNKS - 1);
      const room = header !== null && s === first ? HEADER_BYTES : 0;
      const out = Buffer.allocUnsafe(room + Math.min((e + 1) * C, newSize) - s * C + (e - s + 1) * CHUNK_OVERHEAD);
      if (header !== null && room > 0) header.copy(out, 0);
      for (let i = s; i <= e; i++) {
        const plain = chunkPlain(i);
        this.sealChunk(out, room + (i - s) * L.rawChunkSize, plain, i, i === finalIndex);
        if (i === finalIndex) finalPlain = plain;
      }
      await this.writeAll(out, room > 0 ? 0 : L.rawOffset(s));
    }
    this.knownRawSize = L.rawSize(newSize);
    this.tail = finalPlain !== null ? { index: finalIndex, plain: Buffer.from(finalPlain) } : keptTail;
  }

  /** Verified plaintext of chunk `index` of a file of `size` bytes: the remembered final chunk, or from disk. */
  private async oldChunk(index: number, size: number): Promise<Buffer> {
    const t = this.tail;
    if (t !== null && t.index === index && index === this.layout.lastIndex(size) && t.plain.length === size - index * this.layout.chunkSize) {
      return t.plain;
    }
    return this.readChunks(index, index, size);
  }

  /** A read-only run of zeros (gap chunks). */
  private zeros(length: number): Buffer {
    if (this.zeroChunk === null) this.zeroChunk = Buffer.alloc(this.layout.chunkSize);
    return this.zeroChunk.subarray(0, length);
  }

  /** Seals one chunk into `out` at `p`: fresh random nonce, ciphertext, tag. */
  private sealChunk(out: Buffer, p: number, plain: Buffer, index: number, final: boolean): void {
    if (plain.length < this.layout.chunkSize && !final) throw new Error(`internal: short chunk ${index} is not the last`);
    const nonce = out.subarray(p, p + NONCE_BYTES);
    sodium.randombytes_buf(nonce);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
      out.subarray(p + NONCE_BYTES, p + NONCE_BYTES + plain.length + TAG_BYTES),
      plain,
      this.setAd(index, final),
      null,
      nonce,
      this.keys.contents,
    );
  }

  /** Reads and verifies chunks `first..last` of a file of `size` plaintext bytes. */
  private async readChunks(first: number, last: number, size: number): Promise<Buffer> {
    const L = this.layout;
    const C = L.chunkSize;
    const R = L.rawChunkSize;
    const finalIndex = L.lastIndex(size);
    const plainStart = first * C;
    const out = Buffer.allocUnsafe(Math.min((last + 1) * C, size) - plainStart);
    for (let s = first; s <= last; s += BATCH_CHUNKS) {
      const e = Math.min(last, s + BATCH_CHUNKS - 1);
      const plainStop = Math.min((e + 1) * C, size);
      const raw = Buffer.allocUnsafe(plainStop - s * C + (e - s + 1) * CHUNK_OVERHEAD);
      const got = await this.readFully(raw, L.rawOffset(s));
      for (let i = s; i <= e; i++) {
        const p = (i - s) * R;
        const len = Math.min(C, size - i * C);
        if (p + len + CHUNK_OVERHEAD > got) {
          throw new IntegrityError(`chunk ${i} is cut short (file truncated while open?)`, { path: this.displayPath, block: i });
        }
        const ok = aeadOpen(
          out.subarray(i * C - plainStart, i * C - plainStart + len),
          raw.subarray(p + NONCE_BYTES, p + NONCE_BYTES + len + TAG_BYTES),
          this.setAd(i, i === finalIndex),
          raw.subarray(p, p + NONCE_BYTES),
          this.keys.contents,
        );
        if (!ok) {
          throw new IntegrityError(`chunk ${i} failed authentication (tampered, reordered, truncated or foreign ciphertext)`, {
            path: this.displayPath,
            block: i,
          });
        }
      }
    }
    return out;
  }

  private async readFully(buf: Buffer, position: number): Promise<number> {
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.handle.read(buf, got, buf.length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  }

  private async writeAll(buf: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.handle.write(buf, done, buf.length - done, position + done);
      if (bytesWritten === 0) throw new DvfsError('E_IO', 'short write to ciphertext file', { path: this.displayPath });
      done += bytesWritten;
    }
  }
}
