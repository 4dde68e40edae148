/**
 * The content hash of a file, computed while it is written. A file written front to back (the common case:
 * create, write, write, ..., close) is hashed as the data passes through the write path, so `dvfs commit`
 * never reads it back. Anything else — an overwrite, a write before the end, a shrink, a big hole — makes the
 * hash "dirty": the journal then records the file without a hash and commit hashes it from disk.
 *
 * One WriteHasher per open file (per inode: every handle on it feeds the same one), fed with every mutation
 * in the order the file content applies them. Exact rules, with `hashed` = the number of bytes hashed so far
 * and `size` = the file's plaintext size as far as the mutations seen tell:
 *
 * - construction: streaming starts only from an empty file (`sizeAtOpen === 0`); a file opened non-empty
 *   starts dirty (its existing bytes were never seen). Dirty is not "modified": see `modified`.
 * - `onWrite(offset, data)`, clean:
 *     offset === hashed          → the data extends the hash (a sequential append);
 *     hashed < offset ≤ hashed + zeroFillLimit
 *                                → the gap reads as zeros (the file content zero-fills it), so zeros are
 *                                  hashed first, then the data (`cp --sparse`, small seeks past the end);
 *     anything else              → dirty (an overwrite, a partial overlap, or a gap too large to hash in the
 *                                  write path).
 *   A zero-length write at or before the end changes nothing; one past the end counts as growing to `offset`
 *   (CipherFile extends the file to `offset` even for an empty write).
 * - `onTruncate(newSize)`:
 *     newSize === 0              → a fresh stream (clean again, whatever happened before);
 *     newSize === size           → nothing changes;
 *     clean, newSize > hashed    → growth: zero-filled into the hash when the gap is ≤ zeroFillLimit, else dirty;
 *     clean, newSize < hashed    → dirty (a hash state cannot be rewound);
 *     dirty                      → stays dirty.
 * - `result(finalSize)`: `{ hash }` when clean and `finalSize` is exactly the hashed length, else
 *   `{ dirty: true }` (a size we did not see coming means a mutation went past us). It finalizes the stream
 *   and is idempotent; a mutation after it behaves as on a file opened non-empty (dirty, unless truncated to 0).
 * - `invalidate()`: dirty now (the daemon calls it when a write it already reported failed).
 */

/** A streaming hash: fed in order, finalized once. dvfs's is keyed BLAKE2b-256 (store/content-hash.ts). */
export interface StreamingHash {
  update(buf: Buffer): void;
  /** The finished hash, as the store names objects (lowercase hex). Called at most once. */
  digest(): string;
}

export type HashFactory = () => StreamingHash;

export type WriteHashResult = { hash: string } | { dirty: true };

/** Gaps up to this many bytes are hashed as zeros rather than making the hash dirty (bounded write-path work). */
export const DEFAULT_ZERO_FILL_LIMIT = 1024 * 1024;

const ZEROS = Buffer.alloc(64 * 1024);

export interface WriteHasherOptions {
  /** See DEFAULT_ZERO_FILL_LIMIT; 0 makes any gap dirty. */
  zeroFillLimit?: number;
}

export class WriteHasher {
  /** The running hash while clean; null once dirty (or finalized). */
  private stream: StreamingHash | null;
  private hashedBytes = 0;
  private sizeNow: number;
  private wasModified = false;
  private finished: WriteHashResult | null = null;
  private readonly zeroFillLimit: number;

  constructor(
    private readonly factory: HashFactory,
    sizeAtOpen: number,
    options: WriteHasherOptions = {},
  ) {
    this.zeroFillLimit = options.zeroFillLimit ?? DEFAULT_ZERO_FILL_LIMIT;
    this.sizeNow = sizeAtOpen;
    this.stream = sizeAtOpen === 0 ? factory() : null;
  }

  /** True while the hash covers the whole file so far. */
  get clean(): boolean {
    return this.stream !== null || (this.finished !== null && 'hash' in this.finished);
  }

  /** True once a mutation changed the file (content or size) since the hasher was made. */
  get modified(): boolean {
    return this.wasModified;
  }

  /** The plaintext size the mutations seen so far give (for "being written" journal records). */
  get size(): number {
    return this.sizeNow;
  }

  /** Bytes hashed so far (equals `size` while clean). */
  get hashed(): number {
    return this.hashedBytes;
  }

  onWrite(offset: number, data: Buffer): void {
    this.reopenIfFinished();
    const end = offset + data.length;
    if (data.length === 0) {
      if (offset <= this.sizeNow) return;
    }
    this.wasModified = true;
    const stream = this.stream;
    if (stream !== null) {
      if (offset === this.hashedBytes) {
        if (data.length > 0) stream.update(data);
        this.hashedBytes = end;
      } else if (offset > this.hashedBytes && offset - this.hashedBytes <= this.zeroFillLimit) {
        this.feedZeros(stream, offset - this.hashedBytes);
        if (data.length > 0) stream.update(data);
        this.hashedBytes = end;
      } else {
        this.markDirty();
      }
    }
    if (end > this.sizeNow) this.sizeNow = end;
  }

  onTruncate(newSize: number): void {
    this.reopenIfFinished();
    if (newSize === 0) {
      if (this.sizeNow !== 0) this.wasModified = true;
      this.stream = this.factory();
      this.hashedBytes = 0;
      this.sizeNow = 0;
      return;
    }
    if (newSize === this.sizeNow) return;
    this.wasModified = true;
    const stream = this.stream;
    if (stream !== null) {
      if (newSize > this.hashedBytes && newSize - this.hashedBytes <= this.zeroFillLimit) {
        this.feedZeros(stream, newSize - this.hashedBytes);
        this.hashedBytes = newSize;
      } else {
        this.markDirty();
      }
    }
    this.sizeNow = newSize;
  }

  /** The hash is no good any more (a reported write failed, or the file changed behind our back). */
  invalidate(): void {
    this.reopenIfFinished();
    this.wasModified = true;
    this.markDirty();
  }

  /** The file's hash if every byte of its `finalSize` bytes went through this hasher in order. */
  result(finalSize: number): WriteHashResult {
    if (this.finished !== null) {
      if ('hash' in this.finished && finalSize !== this.hashedBytes) this.finished = { dirty: true };
      return this.finished;
    }
    const stream = this.stream;
    this.stream = null;
    this.finished = stream !== null && finalSize === this.hashedBytes ? { hash: stream.digest() } : { dirty: true };
    return this.finished;
  }

  private markDirty(): void {
    this.stream = null;
  }

  private feedZeros(stream: StreamingHash, n: number): void {
    while (n > 0) {
      const k = Math.min(n, ZEROS.length);
      stream.update(k === ZEROS.length ? ZEROS : ZEROS.subarray(0, k));
      n -= k;
    }
  }

  /** A mutation after result(): the finalized stream cannot continue, so the file counts as opened non-empty. */
  private reopenIfFinished(): void {
    if (this.finished === null) return;
    this.finished = null;
    this.stream = null;
    if (this.sizeNow === 0) {
      this.stream = this.factory();
      this.hashedBytes = 0;
    }
  }
}
