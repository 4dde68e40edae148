/**
 * Batch codec for runs of consecutive file blocks: the MAC block headers (MACFileIO) and the block / stream
 * encryption of each block (CipherFileIO), with holes. This pure-TypeScript implementation is the reference;
 * the native addon implements the same contract and must produce identical bytes.
 *
 * Terms: B = config blockSize (cipher-level block, MAC header included), h = macBytes + randBytes,
 * D = B - h (user bytes per block). Block k of a file is encrypted with seed k XOR fileIV.
 */
import type { EncfsCipher } from './cipher.js';

export interface BlockLayout {
  blockSize: number;
  macBytes: number;
  randBytes: number;
  allowHoles: boolean;
}

export interface DecodeResult {
  plain: Buffer;
  /**
   * Index (relative to the batch) of the first bad block, or -1: a block whose MAC failed, or a final block
   * too short to hold its MAC header. Decoding stops checking MACs after the first failure.
   */
  badBlock: number;
}

/** One implementation of the batch contract (TypeScript or native). */
export interface BlockCodec {
  readonly layout: BlockLayout;
  readonly name: 'typescript' | 'native';
  /**
   * Encodes user data starting at block `firstBlock`: full D-byte blocks, the last may be shorter (not empty).
   * `rand` holds randBytes fresh random bytes per block (null when randBytes is 0).
   */
  encode(plain: Buffer, firstBlock: number, fileIV: bigint, rand: Buffer | null): Buffer;
  /** Decodes raw blocks starting at block `firstBlock`: full B-byte blocks, the last may be shorter. */
  decode(raw: Buffer, firstBlock: number, fileIV: bigint): DecodeResult;
  /** Same as encode/decode, possibly off the main thread (the TypeScript codec just runs them). */
  encodeAsync(plain: Buffer, firstBlock: number, fileIV: bigint, rand: Buffer | null): Promise<Buffer>;
  decodeAsync(raw: Buffer, firstBlock: number, fileIV: bigint): Promise<DecodeResult>;
}

export function headerBytes(layout: BlockLayout): number {
  return layout.macBytes + layout.randBytes;
}

export function dataBytesPerBlock(layout: BlockLayout): number {
  return layout.blockSize - headerBytes(layout);
}

/** Raw (cipher-level) length of `plainLength` user bytes, not counting the file header. */
export function rawLength(layout: BlockLayout, plainLength: number): number {
  const D = dataBytesPerBlock(layout);
  return plainLength + Math.ceil(plainLength / D) * headerBytes(layout);
}

/** User length of `rawLen` cipher-level bytes; NaN when the last block is too short to hold a header. */
export function plainLength(layout: BlockLayout, rawLen: number): number {
  const h = headerBytes(layout);
  const blocks = Math.ceil(rawLen / layout.blockSize);
  const tail = rawLen % layout.blockSize;
  if (h > 0 && tail > 0 && tail <= h) return NaN;
  return rawLen - blocks * h;
}

const isZero = (b: Buffer): boolean => {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
};

export class TypeScriptBlockCodec implements BlockCodec {
  readonly name = 'typescript' as const;
  private readonly h: number;
  private readonly D: number;

  constructor(
    private readonly cipher: EncfsCipher,
    readonly layout: BlockLayout,
  ) {
    this.h = headerBytes(layout);
    this.D = dataBytesPerBlock(layout);
  }

  encode(plain: Buffer, firstBlock: number, fileIV: bigint, rand: Buffer | null): Buffer {
    const { blockSize: B, macBytes, randBytes } = this.layout;
    const { h, D } = this;
    const nblocks = Math.ceil(plain.length / D);
    if (randBytes > 0 && (rand === null || rand.length < nblocks * randBytes)) {
      throw new RangeError(`encode needs ${nblocks * randBytes} random bytes for ${nblocks} blocks`);
    }
    const out = Buffer.allocUnsafe(rawLength(this.layout, plain.length));
    for (let i = 0; i < nblocks; i++) {
      const data = plain.subarray(i * D, Math.min((i + 1) * D, plain.length));
      const block = out.subarray(i * B, i * B + h + data.length);
      if (h > 0) {
        if (randBytes > 0 && rand !== null) rand.copy(block, macBytes, i * randBytes, (i + 1) * randBytes);
        data.copy(block, h);
        if (macBytes > 0) {
          const mac = this.cipher.mac64(block.subarray(macBytes));
          for (let j = 0; j < macBytes; j++) block[j] = Number((mac >> BigInt(8 * j)) & 0xffn);
        }
      } else {
        data.copy(block);
      }
      const seed = BigInt.asUintN(64, BigInt(firstBlock + i) ^ fileIV);
      const enc = block.length === B ? this.cipher.blockEncode(block, seed) : this.cipher.streamEncode(block, seed);
      enc.copy(block);
    }
    return out;
  }

  decode(raw: Buffer, firstBlock: number, fileIV: bigint): DecodeResult {
    const { blockSize: B, macBytes, allowHoles } = this.layout;
    const { h } = this;
    const nblocks = Math.ceil(raw.length / B);
    const plain = Buffer.allocUnsafe(nblocks * this.D);
    let written = 0;
    let badBlock = -1;
    for (let i = 0; i < nblocks; i++) {
      const enc = raw.subarray(i * B, Math.min((i + 1) * B, raw.length));
      const outPos = i * this.D;
      if (enc.length <= h) {
        if (badBlock < 0) badBlock = i;
        break;
      }
      let block: Buffer;
      if (allowHoles && enc.length === B && isZero(enc)) {
        block = enc; // a hole: zeros, never decrypted
      } else {
        const seed = BigInt.asUintN(64, BigInt(firstBlock + i) ^ fileIV);
        block = enc.length === B ? this.cipher.blockDecode(enc, seed) : this.cipher.streamDecode(enc, seed);
      }
      if (macBytes > 0 && !(allowHoles && isZero(block)) && badBlock < 0) {
        const mac = this.cipher.mac64(block.subarray(macBytes));
        for (let j = 0; j < macBytes; j++) {
          if (block[j] !== Number((mac >> BigInt(8 * j)) & 0xffn)) {
            badBlock = i;
            break;
          }
        }
      }
      written = outPos + block.copy(plain, outPos, h);
    }
    return { plain: plain.subarray(0, written), badBlock };
  }

  async encodeAsync(plain: Buffer, firstBlock: number, fileIV: bigint, rand: Buffer | null): Promise<Buffer> {
    return this.encode(plain, firstBlock, fileIV, rand);
  }

  async decodeAsync(raw: Buffer, firstBlock: number, fileIV: bigint): Promise<DecodeResult> {
    return this.decode(raw, firstBlock, fileIV);
  }
}
