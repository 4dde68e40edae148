/**
 * File contents of an EncFS volume: the optional 8-byte per-file IV header and random-access reads, writes
 * and truncation over block-encrypted ciphertext. Only the blocks a request touches are read, decoded,
 * merged and re-encoded (read-modify-write), as EncFS's BlockFileIO does; extending a file leaves holes
 * where the volume allows them.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, readSync, writeSync, type Stats } from 'node:fs';
import { DvfsError, IntegrityError } from '../errors.js';
import { RwLock } from '../util/rwlock.js';
import type { EncfsCipher } from './cipher.js';
import { dataBytesPerBlock, plainLength, rawLength, type BlockCodec, type BlockLayout } from './block-codec.js';
import type { EncfsConfig } from './config.js';
import type { FileContent } from '../vfs/crypto-tree.js';

export const FILE_HEADER_SIZE = 8;

/** Blocks encoded per codec call when a request spans many blocks (bounded memory, batched crypto). */
const BATCH_BLOCKS = 1024;

/**
 * Batches up to this size are coded on the calling thread: for one FUSE request (128 KiB) a trip through
 * the libuv pool costs more than it saves (measured with bench/mount). Larger batches go to the pool.
 */
const SYNC_CODEC_BYTES = Number(process.env['DVFS_SYNC_CODEC_BYTES'] ?? 256 * 1024);

export function layoutOf(config: EncfsConfig): BlockLayout {
  return {
    blockSize: config.blockSize,
    macBytes: config.blockMACBytes,
    randBytes: config.blockMACRandBytes,
    allowHoles: config.allowHoles,
  };
}

/** Per-volume content parameters: how plaintext sizes map to raw sizes and how headers are sealed. */
export class ContentCodec {
  readonly headerSize: number;
  readonly dataBlockSize: number;
  readonly layout: BlockLayout;

  constructor(
    readonly cipher: EncfsCipher,
    readonly config: EncfsConfig,
    readonly blocks: BlockCodec,
  ) {
    this.layout = blocks.layout;
    this.headerSize = config.uniqueIV ? FILE_HEADER_SIZE : 0;
    this.dataBlockSize = dataBytesPerBlock(this.layout);
  }

  /** Plaintext size of a ciphertext file of `rawSize` bytes. Throws IntegrityError for impossible sizes. */
  plainSize(rawSize: number, displayPath: string): number {
    if (this.headerSize > 0) {
      if (rawSize === 0) return 0;
      if (rawSize < this.headerSize) {
        throw new IntegrityError(`ciphertext is ${rawSize} bytes, shorter than its ${this.headerSize}-byte header (truncated?)`, {
          path: displayPath,
        });
      }
    }
    const plain = plainLength(this.layout, rawSize - this.headerSize);
    if (Number.isNaN(plain)) {
      throw new IntegrityError('ciphertext ends inside a block header (truncated?)', { path: displayPath });
    }
    return plain;
  }

  /** Like plainSize, but reports an impossible size as -1 instead of throwing (for listings). */
  plainSizeOrUnknown(rawSize: number): number {
    try {
      return this.plainSize(rawSize, '');
    } catch {
      return -1;
    }
  }

  rawSize(plainSize: number, hasHeader: boolean): number {
    return (hasHeader ? this.headerSize : 0) + rawLength(this.layout, plainSize);
  }

  encodeHeader(fileIV: bigint, externalIV: bigint): Buffer {
    const b = Buffer.allocUnsafe(FILE_HEADER_SIZE);
    b.writeBigUInt64BE(fileIV);
    return this.cipher.streamEncode(b, externalIV);
  }

  decodeHeader(raw: Buffer, externalIV: bigint): bigint {
    return this.cipher.streamDecode(raw, externalIV).readBigUInt64BE();
  }

  newFileIV(): bigint {
    for (;;) {
      const iv = randomBytes(8).readBigUInt64BE();
      if (iv !== 0n) return iv;
    }
  }

  randFor(blocks: number): Buffer | null {
    return this.layout.randBytes > 0 ? randomBytes(blocks * this.layout.randBytes) : null;
  }
}

/**
 * An open ciphertext file seen as plaintext. Reads share a lock, mutations are exclusive. I/O is done with
 * synchronous pread/pwrite on the file descriptor: on a FUSE daemon's single JavaScript thread that is
 * cheaper than a round trip through the libuv pool per call (the page cache makes these calls short), while
 * the codec still runs large batches on the pool. The raw size is tracked here rather than fstat'ed for every
 * request, so one CipherFile must be the only writer of its file (the frontend shares one per inode).
 */
export class CipherFile implements FileContent {
  /** 0n until the header exists (EncFS creates it lazily, on the first write or truncate). */
  private fileIV = 0n;
  /** A header made but not yet on disk: it goes out with the first block write (one pwrite, not two). */
  private pendingHeader: Buffer | null = null;
  private rawLen: number;
  private closed = false;
  /** Reads share, mutations are exclusive: a read never decodes a half-rewritten block. */
  private readonly lock = new RwLock();

  private constructor(
    private readonly fd: number,
    private readonly codec: ContentCodec,
    private externalIV: bigint,
    /** The plaintext path, for error messages. */
    readonly displayPath: string,
  ) {
    this.rawLen = fstatSync(fd).size;
  }

  /** Opens (or with O_CREAT / 'w+' creates) a ciphertext file; reads its header when it has one. */
  static async open(rawPath: string, flags: string | number, codec: ContentCodec, externalIV: bigint, displayPath: string, mode = 0o644): Promise<CipherFile> {
    const fd = openSync(rawPath, flags, mode);
    let file: CipherFile;
    try {
      file = new CipherFile(fd, codec, externalIV, displayPath);
      file.loadHeader();
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    return file;
  }

  private loadHeader(): void {
    if (this.codec.headerSize === 0 || this.rawLen === 0) return;
    this.codec.plainSize(this.rawLen, this.displayPath); // rejects 1..7-byte files
    const raw = Buffer.alloc(FILE_HEADER_SIZE);
    readSync(this.fd, raw, 0, FILE_HEADER_SIZE, 0);
    this.fileIV = this.codec.decodeHeader(raw, this.externalIV);
    if (this.fileIV === 0n) {
      throw new IntegrityError('file header decodes to a zero IV (corrupt header or wrong path)', { path: this.displayPath });
    }
  }

  /** Header bytes in front of the data: present once the header exists (on disk or pending). */
  private get hdr(): number {
    return this.fileIV !== 0n ? this.codec.headerSize : 0;
  }

  size(): Promise<number> {
    return this.lock.read(async () => this.sizeNow());
  }

  private sizeNow(): number {
    return this.codec.plainSize(this.rawLen, this.displayPath);
  }

  rawStats(): Promise<Stats> {
    return this.lock.read(async () => fstatSync(this.fd));
  }

  read(offset: number, length: number): Promise<Buffer> {
    return this.lock.read(async () => {
      const size = this.sizeNow();
      if (offset >= size || length <= 0) return Buffer.alloc(0);
      const end = Math.min(size, offset + length);
      const D = this.codec.dataBlockSize;
      const first = Math.floor(offset / D);
      const last = Math.floor((end - 1) / D);
      const plain = await this.readBlocks(first, last - first + 1);
      return plain.subarray(offset - first * D, end - first * D);
    });
  }

  /** Reads and decodes `count` blocks from block `first` (fewer at the end of the file). */
  private async readBlocks(first: number, count: number): Promise<Buffer> {
    const B = this.codec.layout.blockSize;
    const start = this.hdr + first * B;
    const end = Math.min(this.hdr + (first + count) * B, this.rawLen);
    if (end <= start) return Buffer.alloc(0);
    const raw = Buffer.allocUnsafe(end - start);
    let got = 0;
    while (got < raw.length) {
      const n = readSync(this.fd, raw, got, raw.length - got, start + got);
      if (n === 0) break;
      got += n;
    }
    const input = raw.subarray(0, got);
    const { plain, badBlock } = got <= SYNC_CODEC_BYTES ? this.codec.blocks.decode(input, first, this.fileIV) : await this.codec.blocks.decodeAsync(input, first, this.fileIV);
    if (badBlock >= 0) {
      throw new IntegrityError(`block ${first + badBlock} failed its MAC check (tampered or corrupt ciphertext)`, {
        path: this.displayPath,
        block: first + badBlock,
      });
    }
    return plain;
  }

  write(offset: number, data: Buffer): Promise<number> {
    return this.lock.write(async () => {
      this.ensureHeader();
      let size = this.sizeNow();
      if (offset > size) {
        await this.resize(size, offset);
        size = offset;
      }
      if (data.length === 0) return 0;
      const D = this.codec.dataBlockSize;
      const end = offset + data.length;
      const first = Math.floor(offset / D);
      const last = Math.floor((end - 1) / D);
      const regionStart = first * D;
      const regionEnd = Math.min((last + 1) * D, Math.max(size, end));
      let region: Buffer;
      if (offset === regionStart && end === regionEnd) {
        region = data;
      } else {
        region = Buffer.alloc(regionEnd - regionStart);
        if (offset > regionStart && regionStart < size) {
          (await this.readBlocks(first, 1)).copy(region, 0);
        }
        if (end < regionEnd && (last > first || offset === regionStart)) {
          (await this.readBlocks(last, 1)).copy(region, last * D - regionStart);
        }
        data.copy(region, offset - regionStart);
      }
      await this.writeBlocks(first, region);
      return data.length;
    });
  }

  truncate(newSize: number): Promise<void> {
    return this.lock.write(async () => {
      this.ensureHeader();
      const size = this.sizeNow();
      if (newSize !== size) await this.resize(size, newSize);
      this.flushHeader();
    });
  }

  /** Re-seals the header under a new external IV (after a rename with externalIVChaining). */
  setExternalIV(externalIV: bigint): Promise<void> {
    return this.lock.write(async () => {
      this.externalIV = externalIV;
      if (this.fileIV !== 0n) {
        this.pendingHeader = null;
        this.writeAt(this.codec.encodeHeader(this.fileIV, externalIV), 0);
      }
    });
  }

  async sync(): Promise<void> {
    await this.lock.write(async () => {
      this.flushHeader();
      fsyncSync(this.fd);
    });
  }

  async close(): Promise<void> {
    await this.lock.write(async () => {
      if (this.closed) return;
      this.flushHeader();
      this.closed = true;
      closeSync(this.fd);
    });
  }

  private ensureHeader(): void {
    if (this.codec.headerSize === 0 || this.fileIV !== 0n) return;
    this.fileIV = this.codec.newFileIV();
    this.pendingHeader = this.codec.encodeHeader(this.fileIV, this.externalIV);
    this.rawLen = Math.max(this.rawLen, FILE_HEADER_SIZE);
  }

  /** Writes a pending header on its own (when no block write at offset 0 took it along). */
  private flushHeader(): void {
    if (this.pendingHeader === null) return;
    const header = this.pendingHeader;
    this.pendingHeader = null;
    this.writeAt(header, 0);
  }

  /** Grows or shrinks the plaintext from `size` to `newSize` (EncFS padFile / truncate semantics). */
  private async resize(size: number, newSize: number): Promise<void> {
    const D = this.codec.dataBlockSize;
    if (newSize < size) {
      const cut = newSize % D;
      if (cut !== 0) {
        const k = Math.floor(newSize / D);
        const block = await this.readBlocks(k, 1);
        this.truncateRaw(this.hdr + rawLength(this.codec.layout, k * D));
        await this.writeBlocks(k, block.subarray(0, cut));
      }
      this.truncateRaw(this.hdr + rawLength(this.codec.layout, newSize));
      return;
    }
    // Growing: the old partial tail block is zero-extended and rewritten, whole blocks in between become
    // holes (or encrypted zeros when the volume forbids holes), and a new partial tail is encrypted zeros.
    const oldTail = Math.floor(size / D);
    if (size % D !== 0) {
      const block = await this.readBlocks(oldTail, 1);
      const grown = Buffer.alloc(Math.min(D, newSize - oldTail * D));
      block.copy(grown);
      await this.writeBlocks(oldTail, grown);
    }
    const firstNew = Math.ceil(size / D);
    const fullEnd = Math.floor(newSize / D);
    if (!this.codec.layout.allowHoles) {
      for (let k = firstNew; k < fullEnd; k += BATCH_BLOCKS) {
        const n = Math.min(BATCH_BLOCKS, fullEnd - k);
        await this.writeBlocks(k, Buffer.alloc(n * D));
      }
    }
    if (newSize % D !== 0 && fullEnd >= firstNew) {
      await this.writeBlocks(fullEnd, Buffer.alloc(newSize % D));
    }
    this.flushHeader();
    this.truncateRaw(this.hdr + rawLength(this.codec.layout, newSize));
  }

  /** Encodes user data starting at block `first` and writes it in place, in bounded batches. */
  private async writeBlocks(first: number, data: Buffer): Promise<void> {
    const D = this.codec.dataBlockSize;
    const B = this.codec.layout.blockSize;
    for (let done = 0; done < data.length; done += BATCH_BLOCKS * D) {
      const chunk = data.subarray(done, Math.min(data.length, done + BATCH_BLOCKS * D));
      const k = first + done / D;
      const rand = this.codec.randFor(Math.ceil(chunk.length / D));
      const raw = chunk.length <= SYNC_CODEC_BYTES ? this.codec.blocks.encode(chunk, k, this.fileIV, rand) : await this.codec.blocks.encodeAsync(chunk, k, this.fileIV, rand);
      if (k === 0 && this.pendingHeader !== null) {
        const header = this.pendingHeader;
        this.pendingHeader = null;
        this.writeAt(Buffer.concat([header, raw]), 0);
      } else {
        this.flushHeader();
        this.writeAt(raw, this.hdr + k * B);
      }
    }
  }

  private writeAt(buf: Buffer, position: number): void {
    let done = 0;
    while (done < buf.length) {
      const n = writeSync(this.fd, buf, done, buf.length - done, position + done);
      if (n === 0) throw new DvfsError('E_IO', 'short write to ciphertext file', { path: this.displayPath });
      done += n;
    }
    this.rawLen = Math.max(this.rawLen, position + buf.length);
  }

  private truncateRaw(length: number): void {
    ftruncateSync(this.fd, length);
    this.rawLen = length;
  }
}
