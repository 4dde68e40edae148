/**
 * A compact hash table of (type code, object id) keys: the set of blobs a push or a remote index holds, at
 * 10^6 entries and more. Each key costs its 33 bytes in chunked byte arrays plus a 4-byte slot (the table is
 * kept at most half full), and `words` 32-bit values per row in chunked Uint32Arrays — about 45 + 4 x words
 * bytes per entry, where a Map of hex strings to objects costs several hundred.
 *
 * Rows are numbered in insertion order from 0 and never removed. Slots are found by SipHash-2-4 of the key
 * under a random per-table key, so ids chosen by a hostile remote cannot be made to collide (a table of
 * colliding keys would turn every lookup into a scan).
 */
import sodium from 'sodium-native';
import { DvfsError } from '../errors.js';
import { isObjectId, OBJECT_ID_BYTES, type ObjectId } from './object-id.js';

const KEY_BYTES = 1 + OBJECT_ID_BYTES;
/** Rows per chunk (a power of two): the arrays grow a chunk at a time, never copied whole. */
const CHUNK_SHIFT = 14;
const CHUNK_ROWS = 1 << CHUNK_SHIFT;
const CHUNK_MASK = CHUNK_ROWS - 1;
/** Empty slot marker (slots hold row + 1). */
const EMPTY = 0;

export class IdTable {
  private readonly keyChunks: Uint8Array[] = [];
  private readonly valueChunks: Uint32Array[] = [];
  private slots = new Uint32Array(1024);
  private mask = this.slots.length - 1;
  private rows = 0;
  private readonly hashKey = Buffer.alloc(sodium.crypto_shorthash_KEYBYTES);
  private readonly scratch = Buffer.alloc(KEY_BYTES);
  private readonly hashOut = Buffer.alloc(sodium.crypto_shorthash_BYTES);

  /** `words`: 32-bit values kept per row (0: a set). */
  constructor(readonly words = 0) {
    if (!Number.isSafeInteger(words) || words < 0 || words > 16) throw new RangeError('IdTable: words must be 0..16');
    sodium.randombytes_buf(this.hashKey);
  }

  get size(): number {
    return this.rows;
  }

  /** The row of (code, id), or -1. */
  find(code: number, id: ObjectId): number {
    this.load(code, id);
    for (let s = this.slotOf(); ; s = (s + 1) & this.mask) {
      const v = this.slots[s] as number;
      if (v === EMPTY) return -1;
      if (this.sameKey(v - 1)) return v - 1;
    }
  }

  has(code: number, id: ObjectId): boolean {
    return this.find(code, id) !== -1;
  }

  /** Adds (code, id) unless present; returns its row and whether it was added. */
  add(code: number, id: ObjectId): { row: number; added: boolean } {
    this.load(code, id);
    let s = this.slotOf();
    for (; ; s = (s + 1) & this.mask) {
      const v = this.slots[s] as number;
      if (v === EMPTY) break;
      if (this.sameKey(v - 1)) return { row: v - 1, added: false };
    }
    const row = this.rows++;
    if ((row & CHUNK_MASK) === 0) {
      this.keyChunks.push(new Uint8Array(CHUNK_ROWS * KEY_BYTES));
      if (this.words > 0) this.valueChunks.push(new Uint32Array(CHUNK_ROWS * this.words));
    }
    (this.keyChunks[row >>> CHUNK_SHIFT] as Uint8Array).set(this.scratch, (row & CHUNK_MASK) * KEY_BYTES);
    this.slots[s] = row + 1;
    if (this.rows * 2 > this.slots.length) this.grow();
    return { row, added: true };
  }

  /** The type code of row `row`. */
  code(row: number): number {
    this.checkRow(row);
    return (this.keyChunks[row >>> CHUNK_SHIFT] as Uint8Array)[(row & CHUNK_MASK) * KEY_BYTES] as number;
  }

  /** The object id of row `row` (a new string each call). */
  id(row: number): ObjectId {
    this.checkRow(row);
    const at = (row & CHUNK_MASK) * KEY_BYTES + 1;
    const chunk = this.keyChunks[row >>> CHUNK_SHIFT] as Uint8Array;
    return Buffer.from(chunk.buffer, chunk.byteOffset + at, OBJECT_ID_BYTES).toString('hex') as ObjectId;
  }

  /** Value word `w` of row `row`. */
  value(row: number, w: number): number {
    this.checkWord(row, w);
    return (this.valueChunks[row >>> CHUNK_SHIFT] as Uint32Array)[(row & CHUNK_MASK) * this.words + w] as number;
  }

  setValue(row: number, w: number, v: number): void {
    this.checkWord(row, w);
    (this.valueChunks[row >>> CHUNK_SHIFT] as Uint32Array)[(row & CHUNK_MASK) * this.words + w] = v;
  }

  private checkRow(row: number): void {
    if (!(Number.isInteger(row) && row >= 0 && row < this.rows)) throw new RangeError(`IdTable: no row ${row} (of ${this.rows})`);
  }

  private checkWord(row: number, w: number): void {
    this.checkRow(row);
    if (!(Number.isInteger(w) && w >= 0 && w < this.words)) throw new RangeError(`IdTable: no value word ${w} (of ${this.words})`);
  }

  private load(code: number, id: ObjectId): void {
    if (!isObjectId(id)) throw new DvfsError('E_USAGE', `not an object id: ${JSON.stringify(String(id).slice(0, 80))}`);
    this.scratch[0] = code;
    this.scratch.write(id, 1, OBJECT_ID_BYTES, 'hex');
  }

  private slotOf(): number {
    sodium.crypto_shorthash(this.hashOut, this.scratch, this.hashKey);
    return this.hashOut.readUInt32LE(0) & this.mask;
  }

  private sameKey(row: number): boolean {
    const chunk = this.keyChunks[row >>> CHUNK_SHIFT] as Uint8Array;
    const at = (row & CHUNK_MASK) * KEY_BYTES;
    for (let i = 0; i < KEY_BYTES; i++) if (chunk[at + i] !== this.scratch[i]) return false;
    return true;
  }

  /** Doubles the slot array and re-places every row (keys are re-hashed from their bytes). */
  private grow(): void {
    this.slots = new Uint32Array(this.slots.length * 2);
    this.mask = this.slots.length - 1;
    for (let row = 0; row < this.rows; row++) {
      const chunk = this.keyChunks[row >>> CHUNK_SHIFT] as Uint8Array;
      const at = (row & CHUNK_MASK) * KEY_BYTES;
      this.scratch.set(chunk.subarray(at, at + KEY_BYTES));
      let s = this.slotOf();
      while (this.slots[s] !== EMPTY) s = (s + 1) & this.mask;
      this.slots[s] = row + 1;
    }
  }
}
