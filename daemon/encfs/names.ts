/**
 * EncFS name codecs (nameio/block, nameio/block32, nameio/stream, nameio/null) and the path codec that
 * chains name IVs from the root down, as NameIO::recodePath does.
 */
import { DvfsError } from '../errors.js';
import type { ChainedIV, EncfsCipher } from './cipher.js';
import { nameB32, nameB64 } from './name-base.js';

export type NameAlgName = 'nameio/block' | 'nameio/block32' | 'nameio/stream' | 'nameio/null';

/** Registered interfaces (current, age): a config major in [current-age, current] is accepted. */
const NAME_INTERFACES: Record<NameAlgName, { current: number; age: number }> = {
  'nameio/block': { current: 4, age: 2 },
  'nameio/block32': { current: 4, age: 2 },
  'nameio/stream': { current: 2, age: 2 },
  'nameio/null': { current: 1, age: 0 },
};

export function isNameAlg(name: string): name is NameAlgName {
  return Object.prototype.hasOwnProperty.call(NAME_INTERFACES, name);
}

export function checkNameInterface(name: NameAlgName, major: number, configPath?: string): void {
  const { current, age } = NAME_INTERFACES[name];
  if (major > current || major < current - age) {
    throw new DvfsError('E_UNSUPPORTED', `unsupported name codec ${name} major ${major}`, {
      ...(configPath === undefined ? {} : { path: configPath }),
      hint: `EncFS 1.x accepts majors ${current - age}..${current}`,
    });
  }
}

/** The longest encrypted name most filesystems take (NAME_MAX). */
export const NAME_MAX = 255;

export interface NameCodec {
  readonly alg: NameAlgName;
  /** Encrypts one name; advances `chain` when given. */
  encode(name: Buffer, chain: ChainedIV | null): string;
  /** Decrypts one name; advances `chain` when given. Throws E_NAME when it cannot. */
  decode(encoded: string, chain: ChainedIV | null): Buffer;
  /** The longest plaintext name (bytes) whose encoding fits NAME_MAX. */
  readonly maxNameBytes: number;
}

function nameError(encoded: string, why: string): DvfsError {
  return new DvfsError('E_NAME', `cannot decode encrypted name '${encoded}': ${why}`);
}

function be16(mac: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(mac & 0xffff);
  return b;
}

class BlockNameCodec implements NameCodec {
  readonly alg: NameAlgName;
  readonly maxNameBytes: number;
  private readonly bs: number;
  private readonly base: typeof nameB64;

  constructor(
    private readonly cipher: EncfsCipher,
    private readonly major: number,
    base32: boolean,
  ) {
    this.alg = base32 ? 'nameio/block32' : 'nameio/block';
    this.bs = cipher.geometry.cipherBlockSize;
    this.base = base32 ? nameB32 : nameB64;
    const bitsPerChar = base32 ? 5 : 6;
    let max = 0;
    while (Math.ceil((8 * (2 + (Math.floor((max + 1) / this.bs) + 1) * this.bs)) / bitsPerChar) <= NAME_MAX) max++;
    this.maxNameBytes = max;
  }

  encode(name: Buffer, chain: ChainedIV | null): string {
    const pad = this.bs - (name.length % this.bs);
    const padded = Buffer.alloc(name.length + pad, pad);
    name.copy(padded);
    const tmpIV = chain && this.major >= 3 ? chain.iv : 0n;
    const mac = this.cipher.mac16(padded, chain);
    const enc = this.cipher.blockEncode(padded, BigInt(mac) ^ tmpIV);
    return this.base.encode(Buffer.concat([be16(mac), enc]));
  }

  decode(encoded: string, chain: ChainedIV | null): Buffer {
    const raw = this.base.decode(encoded);
    if (raw === null) throw nameError(encoded, 'character outside the name alphabet');
    const streamLen = raw.length - 2;
    if (streamLen < this.bs) throw nameError(encoded, 'too short to be an encrypted name');
    if (streamLen % this.bs !== 0) throw nameError(encoded, 'length is not a whole number of cipher blocks');
    const mac = raw.readUInt16BE(0);
    const tmpIV = chain && this.major >= 3 ? chain.iv : 0n;
    const padded = this.cipher.blockDecode(raw.subarray(2), BigInt(mac) ^ tmpIV);
    const pad = padded[padded.length - 1] as number;
    if (pad > this.bs || pad > streamLen) throw nameError(encoded, 'bad padding (wrong key or not an EncFS name)');
    const check = this.cipher.mac16(padded, chain);
    if (check !== mac) throw nameError(encoded, 'checksum mismatch (wrong key, wrong directory, or tampered)');
    return padded.subarray(0, streamLen - pad);
  }
}

class StreamNameCodec implements NameCodec {
  readonly alg: NameAlgName = 'nameio/stream';
  readonly maxNameBytes: number;

  constructor(
    private readonly cipher: EncfsCipher,
    private readonly major: number,
  ) {
    let max = 0;
    while (Math.ceil((8 * (max + 1 + 2)) / 6) <= NAME_MAX) max++;
    this.maxNameBytes = max;
  }

  encode(name: Buffer, chain: ChainedIV | null): string {
    const tmpIV = chain && this.major >= 2 ? chain.iv : 0n;
    const mac = this.cipher.mac16(name, chain);
    const enc = this.cipher.streamEncode(name, BigInt(mac) ^ tmpIV);
    const parts = this.major >= 1 ? [be16(mac), enc] : [enc, be16(mac)];
    return nameB64.encode(Buffer.concat(parts));
  }

  decode(encoded: string, chain: ChainedIV | null): Buffer {
    const raw = nameB64.decode(encoded);
    if (raw === null) throw nameError(encoded, 'character outside the name alphabet');
    if (raw.length - 2 <= 0) throw nameError(encoded, 'too short to be an encrypted name');
    const tmpIV = chain && this.major >= 2 ? chain.iv : 0n;
    const mac = this.major >= 1 ? raw.readUInt16BE(0) : raw.readUInt16BE(raw.length - 2);
    const body = this.major >= 1 ? raw.subarray(2) : raw.subarray(0, raw.length - 2);
    const name = this.cipher.streamDecode(body, BigInt(mac) ^ tmpIV);
    if (this.cipher.mac16(name, chain) !== mac) {
      throw nameError(encoded, 'checksum mismatch (wrong key, wrong directory, or tampered)');
    }
    return name;
  }
}

class NullNameCodec implements NameCodec {
  readonly alg: NameAlgName = 'nameio/null';
  readonly maxNameBytes = NAME_MAX;
  encode(name: Buffer): string {
    return name.toString('utf8');
  }
  decode(encoded: string): Buffer {
    return Buffer.from(encoded, 'utf8');
  }
}

export function makeNameCodec(alg: NameAlgName, major: number, cipher: EncfsCipher): NameCodec {
  switch (alg) {
    case 'nameio/block':
      return new BlockNameCodec(cipher, major, false);
    case 'nameio/block32':
      return new BlockNameCodec(cipher, major, true);
    case 'nameio/stream':
      return new StreamNameCodec(cipher, major);
    case 'nameio/null':
      return new NullNameCodec();
  }
}

/** Splits a volume-relative plaintext path into its components ('' and '/' are the root). */
export function splitPath(path: string): string[] {
  return path.split('/').filter((c) => c.length > 0);
}

const isDotOrDotDot = (c: string): boolean => c === '.' || c === '..';

export interface EncodedPath {
  /** Cipher path relative to the volume root ('' for the root). */
  cipher: string;
  /** The chained IV after the last component: the parent IV of its entries and, for a file, its external IV. */
  iv: bigint;
}

/** Encodes and decodes whole paths, chaining IVs from the root when the volume says so. */
export class PathCodec {
  constructor(
    readonly names: NameCodec,
    readonly chained: boolean,
  ) {}

  /** Encodes one component below a directory whose chained IV is `parentIV`. */
  encodeName(name: string, parentIV: bigint): EncodedPath {
    if (isDotOrDotDot(name)) return { cipher: name, iv: parentIV };
    const bytes = Buffer.from(name, 'utf8');
    if (bytes.length > this.names.maxNameBytes) {
      throw new DvfsError('E_NAMETOOLONG', `name '${truncateForMessage(name)}' is ${bytes.length} bytes long`, {
        hint: `${this.names.alg} names can be at most ${this.names.maxNameBytes} bytes`,
      });
    }
    const chain = this.chained ? { iv: parentIV } : null;
    const cipher = this.names.encode(bytes, chain);
    return { cipher, iv: chain ? chain.iv : 0n };
  }

  /** Decodes one directory entry of a directory whose chained IV is `parentIV`. Throws E_NAME. */
  decodeName(encoded: string, parentIV: bigint): { name: string; iv: bigint } {
    if (isDotOrDotDot(encoded)) return { name: encoded, iv: parentIV };
    const chain = this.chained ? { iv: parentIV } : null;
    const bytes = this.names.decode(encoded, chain);
    // Whoever holds the volume key can encrypt any bytes as a name: a "name" that is a path (or empty, ".",
    // "..", or holds NUL) must not reach readdir, commit or restore.
    if (bytes.length === 0 || bytes.includes(0x2f) || bytes.includes(0) || isDotOrDotDot(bytes.toString('latin1'))) {
      throw nameError(encoded, 'decodes to an invalid name (empty, ".", "..", or containing "/" or NUL)');
    }
    return { name: bytes.toString('utf8'), iv: chain ? chain.iv : 0n };
  }

  encodePath(plain: string): EncodedPath {
    let iv = 0n;
    const out: string[] = [];
    for (const component of splitPath(plain)) {
      const enc = this.encodeName(component, iv);
      out.push(enc.cipher);
      iv = enc.iv;
    }
    return { cipher: out.join('/'), iv };
  }

  decodePath(cipher: string): EncodedPath & { plain: string } {
    let iv = 0n;
    const out: string[] = [];
    for (const component of splitPath(cipher)) {
      const dec = this.decodeName(component, iv);
      out.push(dec.name);
      iv = dec.iv;
    }
    return { plain: out.join('/'), cipher, iv };
  }

  /** A symlink target as EncFS stores it: '+' + one unchained name for absolute targets, else a path. */
  encodeLinkTarget(target: string): string {
    if (target.startsWith('/')) {
      return '+' + this.names.encode(Buffer.from(target.slice(1), 'utf8'), null);
    }
    return this.encodePath(target).cipher;
  }

  decodeLinkTarget(stored: string): string {
    if (stored.startsWith('+')) return '/' + this.names.decode(stored.slice(1), null).toString('utf8');
    return this.decodePath(stored).plain;
  }
}

function truncateForMessage(name: string): string {
  return name.length > 40 ? `${name.slice(0, 37)}...` : name;
}
