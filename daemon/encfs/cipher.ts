/**
 * EncFS cipher primitives (SSL_Cipher in EncFS 1.x): the HMAC-SHA1 MAC folds, the seed → IV derivation, the
 * CBC "block" mode and the shuffle/flip double-CFB "stream" mode. One EncfsCipher holds one key object
 * (key bytes followed by IV bytes), as EncFS does for both the user key and the volume key.
 */
import { createCipheriv, createDecipheriv, createHmac, getCiphers } from 'node:crypto';
import { DvfsError } from '../errors.js';

export type CipherName = 'ssl/aes' | 'ssl/blowfish' | 'ssl/camellia';

interface CipherFamily {
  /** OpenSSL name stem: aes-<bits>-cbc, bf-cbc, camellia-<bits>-cbc. */
  openssl(bits: number, mode: 'cbc' | 'cfb'): string;
  ivLen: number;
  keySizes: { min: number; max: number; step: number; dflt: number };
  /** Registered interface current/age: config majors in [current-age, current] are accepted. */
  current: number;
  age: number;
}

const FAMILIES: Record<CipherName, CipherFamily> = {
  'ssl/aes': {
    openssl: (bits, mode) => `aes-${bits}-${mode}`,
    ivLen: 16,
    keySizes: { min: 128, max: 256, step: 64, dflt: 192 },
    current: 3,
    age: 2,
  },
  'ssl/camellia': {
    openssl: (bits, mode) => `camellia-${bits}-${mode}`,
    ivLen: 16,
    keySizes: { min: 128, max: 256, step: 64, dflt: 192 },
    current: 3,
    age: 2,
  },
  'ssl/blowfish': {
    openssl: (_bits, mode) => `bf-${mode}`,
    ivLen: 8,
    keySizes: { min: 128, max: 256, step: 32, dflt: 160 },
    current: 3,
    age: 2,
  },
};

export function isCipherName(name: string): name is CipherName {
  return Object.prototype.hasOwnProperty.call(FAMILIES, name);
}

/** The shape of a cipher: everything but the key bytes. */
export interface CipherParams {
  name: CipherName;
  /** The config's interface major: it selects the IV derivation (major < 3: the old 32-bit scheme). */
  major: number;
  /** Key size in bits (0 = the cipher's default). */
  keySize: number;
}

export interface CipherGeometry {
  keyLen: number;
  ivLen: number;
  /** The cipher's block size: 16 for AES/Camellia, 8 for Blowfish. */
  cipherBlockSize: number;
  keyBits: number;
}

/** Checks that a cipher configuration is one EncFS 1.9 would mount, and that this Node can run it. */
export function cipherGeometry(params: CipherParams, configPath?: string): CipherGeometry {
  const family = FAMILIES[params.name];
  const where = configPath === undefined ? {} : { path: configPath };
  if (params.major > family.current || params.major < family.current - family.age) {
    throw new DvfsError('E_UNSUPPORTED', `unsupported cipher interface ${params.name} major ${params.major}`, {
      ...where,
      hint: `EncFS 1.x accepts majors ${family.current - family.age}..${family.current}`,
    });
  }
  let bits = params.keySize === 0 ? family.keySizes.dflt : params.keySize;
  const { min, max, step } = family.keySizes;
  // EncFS snaps a disallowed size to the closest allowed one (Range::closest).
  if (bits < min) bits = min;
  if (bits > max) bits = max;
  bits = min + Math.round((bits - min) / step) * step;
  const keyLen = bits / 8;
  const available = new Set(getCiphers());
  for (const mode of ['cbc', 'cfb'] as const) {
    const name = family.openssl(bits, mode);
    if (!available.has(name)) {
      throw new DvfsError('E_UNSUPPORTED', `cipher ${name} is not available in this Node's OpenSSL`, {
        ...where,
        hint: params.name === 'ssl/blowfish' ? 'run node with --openssl-legacy-provider' : 'use an AES volume',
      });
    }
  }
  return { keyLen, ivLen: family.ivLen, cipherBlockSize: family.ivLen, keyBits: bits };
}

/** A mutable chained IV: name codecs read it as the parent's IV and overwrite it with their MAC_64. */
export interface ChainedIV {
  iv: bigint;
}

const U64 = (x: bigint): bigint => BigInt.asUintN(64, x);

export class EncfsCipher {
  readonly params: CipherParams;
  readonly geometry: CipherGeometry;
  /** Key bytes (also the HMAC key). */
  readonly key: Buffer;
  /** IV bytes of the key object: mixed into every derived IV. */
  readonly iv: Buffer;
  private readonly cbc: string;
  private readonly cfb: string;

  constructor(params: CipherParams, keyMaterial: Buffer) {
    this.params = params;
    this.geometry = cipherGeometry(params);
    const { keyLen, ivLen } = this.geometry;
    if (keyMaterial.length !== keyLen + ivLen) {
      throw new DvfsError('E_CONFIG', `key material is ${keyMaterial.length} bytes, expected ${keyLen + ivLen}`);
    }
    this.key = Buffer.from(keyMaterial.subarray(0, keyLen));
    this.iv = Buffer.from(keyMaterial.subarray(keyLen));
    const family = FAMILIES[params.name];
    this.cbc = family.openssl(this.geometry.keyBits, 'cbc');
    this.cfb = family.openssl(this.geometry.keyBits, 'cfb');
  }

  /** Key bytes followed by IV bytes, as EncFS lays out a key object. */
  keyMaterial(): Buffer {
    return Buffer.concat([this.key, this.iv]);
  }

  /**
   * MAC_64: HMAC-SHA1 over data (and the chained IV, little-endian, when one is given), folded into 8 bytes
   * from the first 19 digest bytes, read big-endian. A given chain is advanced to the result.
   */
  mac64(data: Buffer, chain?: ChainedIV | null): bigint {
    const h = createHmac('sha1', this.key);
    h.update(data);
    if (chain) {
      const le = Buffer.allocUnsafe(8);
      le.writeBigUInt64LE(chain.iv);
      h.update(le);
    }
    const md = h.digest();
    const fold = Buffer.alloc(8);
    for (let i = 0; i < md.length - 1; i++) fold[i % 8] = (fold[i % 8] as number) ^ (md[i] as number);
    const value = fold.readBigUInt64BE();
    if (chain) chain.iv = value;
    return value;
  }

  mac32(data: Buffer, chain?: ChainedIV | null): number {
    const m = this.mac64(data, chain);
    return Number((m >> 32n) ^ (m & 0xffffffffn));
  }

  mac16(data: Buffer, chain?: ChainedIV | null): number {
    const m = this.mac32(data, chain);
    return ((m >>> 16) ^ (m & 0xffff)) >>> 0;
  }

  /** The cipher IV for a 64-bit seed (setIVec). */
  ivFor(seed: bigint): Buffer {
    const ivLen = this.geometry.ivLen;
    if (this.params.major >= 3) {
      const le = Buffer.allocUnsafe(8);
      le.writeBigUInt64LE(U64(seed));
      return createHmac('sha1', this.key).update(this.iv).update(le).digest().subarray(0, ivLen);
    }
    return oldIV(this.iv, seed);
  }

  blockEncode(data: Buffer, seed: bigint): Buffer {
    this.checkBlockLength(data);
    const c = createCipheriv(this.cbc, this.key, this.ivFor(seed));
    c.setAutoPadding(false);
    return Buffer.concat([c.update(data), c.final()]);
  }

  blockDecode(data: Buffer, seed: bigint): Buffer {
    this.checkBlockLength(data);
    const d = createDecipheriv(this.cbc, this.key, this.ivFor(seed));
    d.setAutoPadding(false);
    return Buffer.concat([d.update(data), d.final()]);
  }

  streamEncode(data: Buffer, seed: bigint): Buffer {
    const b = Buffer.from(data);
    shuffle(b);
    this.cfbInPlace(b, seed, true);
    flip(b);
    shuffle(b);
    this.cfbInPlace(b, U64(seed + 1n), true);
    return b;
  }

  streamDecode(data: Buffer, seed: bigint): Buffer {
    const b = Buffer.from(data);
    this.cfbInPlace(b, U64(seed + 1n), false);
    unshuffle(b);
    flip(b);
    this.cfbInPlace(b, seed, false);
    unshuffle(b);
    return b;
  }

  private cfbInPlace(b: Buffer, seed: bigint, encrypt: boolean): void {
    if (b.length === 0) return;
    const iv = this.ivFor(seed);
    const c = encrypt ? createCipheriv(this.cfb, this.key, iv) : createDecipheriv(this.cfb, this.key, iv);
    const out = c.update(b);
    out.copy(b);
    c.final();
  }

  private checkBlockLength(data: Buffer): void {
    const bs = this.geometry.cipherBlockSize;
    if (data.length === 0 || data.length % bs !== 0) {
      throw new DvfsError('E_INTEGRITY', `block cipher input of ${data.length} bytes is not a multiple of ${bs}`);
    }
  }
}

/** setIVec_old (cipher interface major < 3): the seed truncated to 32 bits and scattered into the key IV. */
function oldIV(baseIV: Buffer, seed: bigint): Buffer {
  const s = Number(seed & 0xffffffffn);
  const var1 = Math.imul(0x060a4011, s) >>> 0;
  const var2 = Math.imul(0x0221040d, (s ^ 0xd3fea11c) >>> 0) >>> 0;
  const b = (x: number, n: number): number => (x >>> n) & 0xff;
  const ivec = Buffer.from(baseIV);
  const low = [b(var1, 24), b(var2, 16), b(var1, 8), b(var2, 0), b(var2, 24), b(var1, 16), b(var2, 8), b(var1, 0)];
  const high = [b(var1, 0), b(var2, 8), b(var1, 16), b(var2, 24), b(var1, 24), b(var2, 16), b(var1, 8), b(var2, 0)];
  for (let i = 0; i < 8; i++) ivec[i] = (ivec[i] as number) ^ (low[i] as number);
  if (ivec.length > 8) for (let i = 0; i < 8; i++) ivec[8 + i] = (ivec[8 + i] as number) ^ (high[i] as number);
  return ivec;
}

/** Running XOR prefix: b[i+1] ^= b[i]. */
export function shuffle(b: Buffer): void {
  for (let i = 0; i + 1 < b.length; i++) b[i + 1] = (b[i + 1] as number) ^ (b[i] as number);
}

export function unshuffle(b: Buffer): void {
  for (let i = b.length - 1; i > 0; i--) b[i] = (b[i] as number) ^ (b[i - 1] as number);
}

/** Reverses the bytes within each 64-byte chunk (its own inverse). */
export function flip(b: Buffer): void {
  for (let start = 0; start < b.length; start += 64) {
    b.subarray(start, Math.min(start + 64, b.length)).reverse();
  }
}
