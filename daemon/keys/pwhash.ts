/**
 * Argon2id (crypto_pwhash, version 1.3) parameters as dvfs stores them, and stretching a password or
 * passphrase into 32 bytes of secure memory. Used by passphrase-protected identity files and by the
 * password-derived root identity of a keyring.
 */
import sodium, { type SecureBuffer } from 'sodium-native';
import { DvfsError } from '../errors.js';

export interface PwhashParams {
  alg: 'argon2id13';
  opslimit: number;
  memlimit: number;
  /** 16 random bytes. */
  salt: Buffer;
}

export interface PwhashCost {
  opslimit?: number;
  memlimit?: number;
}

/** Upper bounds accepted when reading, so an edited file cannot make unlocking hang or exhaust memory. */
const MAX_OPSLIMIT = 64;
const MAX_MEMLIMIT = 4 * 1024 ** 3;

export function newPwhashParams(cost: PwhashCost = {}): PwhashParams {
  const salt = Buffer.alloc(sodium.crypto_pwhash_SALTBYTES);
  sodium.randombytes_buf(salt);
  return {
    alg: 'argon2id13',
    opslimit: cost.opslimit ?? sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE,
    memlimit: cost.memlimit ?? sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE,
    salt,
  };
}

/** Argon2id cost from DVFS_KEY_KDF=opslimit:memlimit (tests and small machines), else the interactive default. */
export function costFromEnv(env: NodeJS.ProcessEnv = process.env): PwhashCost {
  const v = env.DVFS_KEY_KDF;
  if (v === undefined || v === '') return {};
  const m = /^(\d+):(\d+)$/.exec(v);
  if (!m) throw new DvfsError('E_USAGE', `DVFS_KEY_KDF must be OPSLIMIT:MEMLIMIT, got ${JSON.stringify(v)}`);
  return { opslimit: Number(m[1]), memlimit: Number(m[2]) };
}

export function pwhashToJson(p: PwhashParams): Record<string, unknown> {
  return { alg: p.alg, opslimit: p.opslimit, memlimit: p.memlimit, salt: p.salt.toString('base64') };
}

/** Reads stored parameters; `fail(why)` builds the error naming the file. */
export function pwhashFromJson(v: unknown, fail: (why: string) => Error): PwhashParams {
  if (typeof v !== 'object' || v === null) throw fail('kdf must be an object');
  const o = v as Record<string, unknown>;
  if (o.alg !== 'argon2id13') throw fail(`kdf.alg is ${JSON.stringify(o.alg)}, expected "argon2id13"`);
  const int = (x: unknown, what: string, min: number, max: number): number => {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min || x > max) throw fail(`kdf.${what} must be an integer in ${min}..${max}`);
    return x;
  };
  const salt = typeof o.salt === 'string' ? Buffer.from(o.salt, 'base64') : Buffer.alloc(0);
  if (salt.length !== sodium.crypto_pwhash_SALTBYTES) throw fail(`kdf.salt must be ${sodium.crypto_pwhash_SALTBYTES} bytes of base64`);
  return {
    alg: 'argon2id13',
    opslimit: int(o.opslimit, 'opslimit', sodium.crypto_pwhash_OPSLIMIT_MIN, MAX_OPSLIMIT),
    memlimit: int(o.memlimit, 'memlimit', sodium.crypto_pwhash_MEMLIMIT_MIN, MAX_MEMLIMIT),
    salt,
  };
}

/** Argon2id of `password` on the thread pool, into 32 bytes of secure memory (the caller wipes it). */
export async function stretch(password: Buffer, params: PwhashParams): Promise<SecureBuffer> {
  const out = sodium.sodium_malloc(32);
  await sodium.crypto_pwhash_async(out, password, params.salt, params.opslimit, params.memlimit, sodium.crypto_pwhash_ALG_ARGON2ID13);
  return out;
}
