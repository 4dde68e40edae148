/**
 * The identity file (default `~/.config/dvfs/identity`, mode 0600, its directory 0700):
 *
 *   { "format": "dvfs-identity", "version": 1, "name": "alice", "createdAt": "<ISO>",
 *     "public": "dvfs-key1 <base64url> alice",
 *     "seed": "<base64, 32 bytes>" }                                         (no passphrase)
 *   or "protected": { "kdf": {Argon2id params}, "nonce": "<base64, 24>",
 *                     "sealed": "<base64, crypto_secretbox of the seed, 48 bytes>" }
 *
 * The public line is stored in the clear so `dvfs key show` needs no passphrase; on loading, the key derived
 * from the seed must equal it (a damaged or edited file is refused). A file readable by group or others is
 * refused, as ssh does.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import sodium from 'sodium-native';
import { DvfsError, isNodeError } from '../errors.js';
import { writeFileAtomic } from '../store/durable.js';
import { Identity, PublicKey, SEED_BYTES } from './identity.js';
import { newPwhashParams, pwhashFromJson, pwhashToJson, stretch, type PwhashCost } from './pwhash.js';

export const IDENTITY_FORMAT = 'dvfs-identity';
export const IDENTITY_VERSION = 1;

export function defaultIdentityPath(env: NodeJS.ProcessEnv = process.env): string {
  const config = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME !== '' ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(config, 'dvfs', 'identity');
}

export interface IdentityFileInfo {
  path: string;
  name: string;
  createdAt: string;
  publicKey: PublicKey;
  protected: boolean;
}

interface ParsedFile extends IdentityFileInfo {
  seed: Buffer | null;
  sealed: { kdf: ReturnType<typeof pwhashFromJson>; nonce: Buffer; box: Buffer } | null;
}

/** Writes a new identity file (never over an existing one unless `overwrite`). */
export async function writeIdentityFile(path: string, identity: Identity, name: string, options: { passphrase?: Buffer; cost?: PwhashCost; overwrite?: boolean } = {}): Promise<void> {
  if (!options.overwrite && (await stat(path).then(() => true, () => false))) {
    throw new DvfsError('E_EXISTS', 'an identity file already exists here', { path, hint: 'use --out FILE for another one, or --force to replace it (the old key is lost)' });
  }
  const doc: Record<string, unknown> = {
    format: IDENTITY_FORMAT,
    version: IDENTITY_VERSION,
    name,
    createdAt: new Date().toISOString(),
    public: identity.publicKey.line(name),
  };
  const seed = identity.exportSeed();
  try {
    if (options.passphrase) {
      const kdf = newPwhashParams(options.cost);
      const key = await stretch(options.passphrase, kdf);
      const nonce = Buffer.alloc(sodium.crypto_secretbox_NONCEBYTES);
      sodium.randombytes_buf(nonce);
      const box = Buffer.alloc(SEED_BYTES + sodium.crypto_secretbox_MACBYTES);
      sodium.crypto_secretbox_easy(box, seed, nonce, key);
      sodium.sodium_memzero(key);
      doc.protected = { kdf: pwhashToJson(kdf), nonce: nonce.toString('base64'), sealed: box.toString('base64') };
    } else {
      doc.seed = seed.toString('base64');
    }
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const text = Buffer.from(JSON.stringify(doc, null, 2) + '\n', 'utf8');
    await writeFileAtomic(path, text, { mode: 0o600 });
    text.fill(0);
  } finally {
    sodium.sodium_memzero(seed);
  }
}

function fail(path: string, why: string): DvfsError {
  return new DvfsError('E_CONFIG', `not a usable identity file: ${why}`, { path, hint: 'create one with: dvfs key gen' });
}

async function parseIdentityFile(path: string): Promise<ParsedFile> {
  let text: string;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw fail(path, 'not a regular file');
    if ((st.mode & 0o077) !== 0) {
      throw new DvfsError('E_CONFIG', 'identity file is readable by others: refusing to use it', { path, hint: `chmod 600 ${path}` });
    }
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof DvfsError) throw e;
    if (isNodeError(e) && e.code === 'ENOENT') {
      throw new DvfsError('E_NOTFOUND', 'no identity file', { path, hint: 'create one with: dvfs key gen (or give --identity FILE / DVFS_IDENTITY)' });
    }
    throw new DvfsError('E_IO', `cannot read identity file: ${(e as Error).message}`, { path });
  }
  let doc: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    doc = v as Record<string, unknown>;
  } catch (e) {
    throw fail(path, `not JSON (${(e as Error).message})`);
  }
  if (doc.format !== IDENTITY_FORMAT) throw fail(path, `format is ${JSON.stringify(doc.format)}`);
  if (doc.version !== IDENTITY_VERSION) throw new DvfsError('E_UNSUPPORTED', `identity file version ${String(doc.version)} is not supported`, { path, hint: 'upgrade dvfs' });
  if (typeof doc.public !== 'string' || typeof doc.name !== 'string' || typeof doc.createdAt !== 'string') throw fail(path, 'missing public key, name or date');
  const publicKey = PublicKey.parse(doc.public).key;
  const info = { path, name: doc.name, createdAt: doc.createdAt, publicKey };
  if (typeof doc.seed === 'string') {
    const seed = Buffer.from(doc.seed, 'base64');
    if (seed.length !== SEED_BYTES) throw fail(path, 'seed has the wrong length');
    return { ...info, protected: false, seed, sealed: null };
  }
  const p = doc.protected;
  if (typeof p !== 'object' || p === null) throw fail(path, 'neither "seed" nor "protected"');
  const o = p as Record<string, unknown>;
  const kdf = pwhashFromJson(o.kdf, (why) => fail(path, why));
  const nonce = Buffer.from(typeof o.nonce === 'string' ? o.nonce : '', 'base64');
  const box = Buffer.from(typeof o.sealed === 'string' ? o.sealed : '', 'base64');
  if (nonce.length !== sodium.crypto_secretbox_NONCEBYTES || box.length !== SEED_BYTES + sodium.crypto_secretbox_MACBYTES) throw fail(path, 'damaged protected seed');
  return { ...info, protected: true, seed: null, sealed: { kdf, nonce, box } };
}

/** What the file says in the clear (name, public key, whether a passphrase protects it). */
export async function readIdentityInfo(path: string): Promise<IdentityFileInfo> {
  const { seed, sealed: _sealed, ...info } = await parseIdentityFile(path);
  seed?.fill(0);
  return info;
}

/**
 * Loads an identity. A protected file needs `passphrase` (E_PASSWORD when it is missing or wrong). The key
 * derived from the seed must equal the stored public line.
 */
export async function loadIdentity(path: string, passphrase: () => Promise<Buffer | null>): Promise<{ identity: Identity; name: string }> {
  const parsed = await parseIdentityFile(path);
  let identity: Identity;
  if (parsed.seed) {
    identity = Identity.fromSeed(parsed.seed);
    parsed.seed.fill(0);
  } else if (parsed.sealed) {
    const pass = await passphrase();
    if (pass === null) {
      throw new DvfsError('E_PASSWORD', 'this identity is protected by a passphrase and none was given', { path, hint: 'give --identity-passphrase-file FILE or DVFS_IDENTITY_PASSPHRASE_FILE' });
    }
    const key = await stretch(pass, parsed.sealed.kdf);
    const seed = sodium.sodium_malloc(SEED_BYTES);
    try {
      if (!sodium.crypto_secretbox_open_easy(seed, parsed.sealed.box, parsed.sealed.nonce, key)) {
        throw new DvfsError('E_PASSWORD', 'wrong passphrase for this identity', { path, hint: 'check --identity-passphrase-file / DVFS_IDENTITY_PASSPHRASE_FILE' });
      }
      identity = Identity.fromSeed(seed);
    } finally {
      sodium.sodium_memzero(key);
      sodium.sodium_memzero(seed);
    }
  } else {
    throw fail(path, 'no seed');
  }
  if (!identity.publicKey.equals(parsed.publicKey)) {
    identity.destroy();
    throw fail(path, 'the secret key does not match the public key stored with it (damaged or edited file)');
  }
  return { identity, name: parsed.name };
}
