/**
 * A personal identity: one 32-byte secret seed from which an X25519 key pair (crypto_box: slots are sealed
 * to it) and an Ed25519 key pair (crypto_sign: the slots its holder adds are signed with it) are derived.
 * The public half travels as one copy-pasteable line,
 *
 *   dvfs-key1 <base64url(X25519 public (32) || Ed25519 public (32))> [name]
 *
 * and is named by a short fingerprint: the first 8 bytes of BLAKE2b-256("dvfs key fingerprint v1" ||
 * public key bytes) as four groups of four hex digits. The layout is in FORMAT.md.
 */
import sodium, { type SecureBuffer } from 'sodium-native';
import { DvfsError } from '../errors.js';

export const SEED_BYTES = 32;
export const PUBLIC_BYTES = 64;
export const PUBLIC_PREFIX = 'dvfs-key1';
const BOX_SEED_LABEL = 'dvfs identity box v1';
const SIGN_SEED_LABEL = 'dvfs identity sign v1';
const FINGERPRINT_LABEL = 'dvfs key fingerprint v1';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

/** The public half of an identity: what a slot is sealed to and what verifies its holder's signatures. */
export class PublicKey {
  private constructor(
    readonly box: Buffer,
    readonly sign: Buffer,
  ) {}

  static fromBytes(bytes: Uint8Array, where = 'public key'): PublicKey {
    if (bytes.length !== PUBLIC_BYTES) throw new DvfsError('E_USAGE', `${where} is ${bytes.length} bytes, expected ${PUBLIC_BYTES}`);
    return new PublicKey(Buffer.from(bytes.subarray(0, 32)), Buffer.from(bytes.subarray(32)));
  }

  /** Parses `dvfs-key1 <base64url> [name]` (the name, if any, is returned separately). */
  static parse(line: string): { key: PublicKey; name: string | null } {
    const parts = line.trim().split(/\s+/);
    const [prefix, data, name] = parts;
    if (prefix !== PUBLIC_PREFIX || data === undefined || parts.length > 3 || !/^[A-Za-z0-9_-]+$/.test(data)) {
      throw new DvfsError('E_USAGE', `not a dvfs public key: ${JSON.stringify(line.slice(0, 120))}`, {
        hint: `a public key looks like "${PUBLIC_PREFIX} <86 characters> [name]"; print yours with: dvfs key show`,
      });
    }
    const bytes = Buffer.from(data, 'base64url');
    if (bytes.length !== PUBLIC_BYTES || bytes.toString('base64url') !== data) {
      throw new DvfsError('E_USAGE', 'the public key is damaged (wrong length or characters)', { hint: 'copy the whole line again' });
    }
    return { key: PublicKey.fromBytes(bytes), name: name ?? null };
  }

  get bytes(): Buffer {
    return Buffer.concat([this.box, this.sign]);
  }

  /** Base64url of the 64 public bytes (how the keyring stores it). */
  get encoded(): string {
    return this.bytes.toString('base64url');
  }

  get fingerprint(): string {
    const h = Buffer.alloc(32);
    sodium.crypto_generichash(h, Buffer.concat([Buffer.from(FINGERPRINT_LABEL, 'ascii'), this.bytes]));
    return h.toString('hex', 0, 8).replace(/(.{4})(?!$)/g, '$1-');
  }

  line(name?: string): string {
    return `${PUBLIC_PREFIX} ${this.encoded}${name ? ` ${name}` : ''}`;
  }

  equals(other: PublicKey): boolean {
    return this.box.equals(other.box) && this.sign.equals(other.sign);
  }

  /** True when `sig` is this key's Ed25519 signature of `message`. */
  verify(message: Uint8Array, sig: Uint8Array): boolean {
    return sig.length === sodium.crypto_sign_BYTES && sodium.crypto_sign_verify_detached(sig, message, this.sign);
  }

  /** crypto_box_seal of `plain` to this key (anonymous: only the holder of the secret half opens it). */
  seal(plain: Uint8Array): Buffer {
    const out = Buffer.alloc(plain.length + sodium.crypto_box_SEALBYTES);
    sodium.crypto_box_seal(out, plain, this.box);
    return out;
  }
}

export function checkMemberName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new DvfsError('E_USAGE', `invalid member name ${JSON.stringify(name)}`, { hint: 'letters, digits, ".", "_", "@", "-"; at most 64 characters' });
  }
  return name;
}

function deriveSeed(seed: Uint8Array, label: string): SecureBuffer {
  const out = sodium.sodium_malloc(32);
  sodium.crypto_generichash(out, Buffer.from(label, 'ascii'), seed);
  return out;
}

/** The secret half (held in sodium secure memory; destroy() wipes it). */
export class Identity {
  readonly publicKey: PublicKey;
  private readonly boxSecret: SecureBuffer;
  private readonly signSecret: SecureBuffer;
  private destroyed = false;

  private constructor(private readonly seed: SecureBuffer) {
    const boxPk = Buffer.alloc(sodium.crypto_box_PUBLICKEYBYTES);
    this.boxSecret = sodium.sodium_malloc(sodium.crypto_box_SECRETKEYBYTES);
    const boxSeed = deriveSeed(seed, BOX_SEED_LABEL);
    sodium.crypto_box_seed_keypair(boxPk, this.boxSecret, boxSeed);
    sodium.sodium_memzero(boxSeed);
    const signPk = Buffer.alloc(sodium.crypto_sign_PUBLICKEYBYTES);
    this.signSecret = sodium.sodium_malloc(sodium.crypto_sign_SECRETKEYBYTES);
    const signSeed = deriveSeed(seed, SIGN_SEED_LABEL);
    sodium.crypto_sign_seed_keypair(signPk, this.signSecret, signSeed);
    sodium.sodium_memzero(signSeed);
    this.publicKey = PublicKey.fromBytes(Buffer.concat([boxPk, signPk]));
  }

  static generate(): Identity {
    const seed = sodium.sodium_malloc(SEED_BYTES);
    sodium.randombytes_buf(seed);
    return new Identity(seed);
  }

  /** Takes a copy of `seed` (the caller wipes its own). */
  static fromSeed(seed: Uint8Array): Identity {
    if (seed.length !== SEED_BYTES) throw new DvfsError('E_CONFIG', `identity seed is ${seed.length} bytes, expected ${SEED_BYTES}`);
    const s = sodium.sodium_malloc(SEED_BYTES);
    s.set(seed);
    return new Identity(s);
  }

  get fingerprint(): string {
    return this.publicKey.fingerprint;
  }

  /** A secure copy of the seed (for writing the identity file or handing it to the mount daemon). */
  exportSeed(): SecureBuffer {
    this.check();
    const out = sodium.sodium_malloc(SEED_BYTES);
    out.set(this.seed);
    return out;
  }

  sign(message: Uint8Array): Buffer {
    this.check();
    const sig = Buffer.alloc(sodium.crypto_sign_BYTES);
    sodium.crypto_sign_detached(sig, message, this.signSecret);
    return sig;
  }

  /** Opens a sealed box addressed to this identity into secure memory; null when it is not for us / damaged. */
  open(sealed: Uint8Array): SecureBuffer | null {
    this.check();
    if (sealed.length < sodium.crypto_box_SEALBYTES) return null;
    const out = sodium.sodium_malloc(sealed.length - sodium.crypto_box_SEALBYTES);
    if (!sodium.crypto_box_seal_open(out, sealed, this.publicKey.box, this.boxSecret)) return null;
    return out;
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const b of [this.seed, this.boxSecret, this.signSecret]) sodium.sodium_memzero(b);
  }

  private check(): void {
    if (this.destroyed) throw new DvfsError('E_IO', 'the identity was closed (its keys are wiped)');
  }
}
