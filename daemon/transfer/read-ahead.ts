/**
 * Reading many small files in order, ahead of their consumer: push's packer takes file i only after file
 * i - 1, and awaiting one open/read/close round trip after another was most of a small-file push.
 */
import { readFile } from 'node:fs/promises';
import { DvfsError } from '../errors.js';

/** Small files read ahead of the packer (at most this many reads at once, this many bytes held). */
const READ_AHEAD_FILES = 16;
const READ_AHEAD_BYTES = 64 << 20;

/**
 * Reads the small blobs' files ahead of their turn, in order, with bounded concurrency, so the packer never
 * waits for one file's open/read/close round trip after another (10 000 small files = 10 000 of them).
 * Large blobs (path null) are left to putFile's stream. A file whose size changed since it was stat'ed is an
 * error: a stored object never changes.
 */
export class ReadAhead {
  private readonly reads = new Map<number, Promise<Buffer>>();
  private next = 0;
  private heldBytes = 0;

  constructor(
    private readonly paths: ReadonlyArray<string | null>,
    private readonly sizes: readonly number[],
  ) {}

  async take(i: number): Promise<Buffer | null> {
    this.fill(i);
    const read = this.reads.get(i);
    if (read === undefined) return null;
    this.reads.delete(i);
    const data = await read;
    this.heldBytes -= this.sizes[i] as number;
    this.fill(i + 1);
    return data;
  }

  private fill(from: number): void {
    if (this.next < from) this.next = from;
    while (this.next < this.paths.length && this.reads.size < READ_AHEAD_FILES && (this.heldBytes < READ_AHEAD_BYTES || this.reads.size === 0)) {
      const i = this.next++;
      const path = this.paths[i];
      if (path === null || path === undefined) continue;
      const size = this.sizes[i] as number;
      this.heldBytes += size;
      const read = readFile(path).then((data) => {
        if (data.length !== size) throw new DvfsError('E_IO', 'a stored file changed size while being pushed', { path });
        return data;
      });
      read.catch(() => undefined); // awaited in take(); a failure must not be an unhandled rejection meanwhile
      this.reads.set(i, read);
    }
  }
}
