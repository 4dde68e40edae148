/**
 * The keyring of a repository: `REPO/.dvfs/keys/keyring.json` (and `keys/keyring.json` on a remote). It
 * holds no secret in the clear — public keys, sealed boxes and signatures — so it can travel anywhere:
 *
 *   { "format": "dvfs-keyring", "version": 1, "id": "<64 hex, random>", "generation": <n>,
 *     "root":   { "public": "<base64url 64>", "kdf": {Argon2id params} },
 *     "epochs": [ { "epoch": 0, "createdAt": "<ISO>", "by": "<base64url 64>", "sig": "<base64url 64>" }, ... ],
 *     "slots":  [ { "epoch": 0, "name": "bob", "public": "<base64url 64>", "addedBy": "<base64url 64>",
 *                   "addedAt": "<ISO>", "sealed": "<base64url>", "sig": "<base64url 64>" }, ... ] }
 *
 * Trust (FORMAT.md): the root key pair is derived from the repository password (Argon2id with the stored
 * salt), so the root is whoever holds the password — the password slot. Every slot and epoch record is
 * signed (Ed25519) by the key named in it; a signature counts only if that key is the root's or belongs to a
 * member whose own slot is valid, so every chain ends at the password holder. Reading a keyring checks all of
 * it: a slot whose signature does not verify is "tampered", one signed by a key that is not a member is
 * "signed by a non-member"; either refuses the whole keyring, naming the slot and the file.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sodium from 'sodium-native';
import { DvfsError, isNodeError } from '../errors.js';
import { META_DIR } from '../repo/layout.js';
import { writeFileAtomic } from '../store/durable.js';
import { PublicKey, type Identity } from './identity.js';
import { pwhashFromJson, pwhashToJson, type PwhashParams } from './pwhash.js';

export const KEYRING_FORMAT = 'dvfs-keyring';
export const KEYRING_VERSION = 1;
export const KEYS_DIR = 'keys';
export const KEYRING_FILE = 'keyring.json';
export const ROOT_NAME = '(password)';
const SLOT_LABEL = 'dvfs slot v1';
const EPOCH_LABEL = 'dvfs epoch v1';

export interface EpochRecord {
  epoch: number;
  createdAt: string;
  by: PublicKey;
  sig: Buffer;
}

export interface Slot {
  epoch: number;
  name: string;
  public: PublicKey;
  addedBy: PublicKey;
  addedAt: string;
  sealed: Buffer;
  sig: Buffer;
}

export interface Keyring {
  id: string;
  generation: number;
  root: { public: PublicKey; kdf: PwhashParams };
  epochs: EpochRecord[];
  slots: Slot[];
}

export function keyringPath(repoRoot: string): string {
  return join(repoRoot, META_DIR, KEYS_DIR, KEYRING_FILE);
}

export function currentEpoch(k: Keyring): number {
  return k.epochs.length - 1;
}

function slotMessage(id: string, s: Omit<Slot, 'sig'>): Buffer {
  return Buffer.from(JSON.stringify([SLOT_LABEL, id, s.epoch, s.name, s.public.encoded, s.addedBy.encoded, s.addedAt, s.sealed.toString('base64url')]), 'utf8');
}

function epochMessage(id: string, e: Omit<EpochRecord, 'sig'>): Buffer {
  return Buffer.from(JSON.stringify([EPOCH_LABEL, id, e.epoch, e.createdAt, e.by.encoded]), 'utf8');
}

export function signSlot(k: Keyring, signer: Identity, s: Omit<Slot, 'sig' | 'addedBy'>): Slot {
  const body = { ...s, addedBy: signer.publicKey };
  return { ...body, sig: signer.sign(slotMessage(k.id, body)) };
}

export function signEpoch(k: Keyring, signer: Identity, epoch: number, createdAt = new Date().toISOString()): EpochRecord {
  const body = { epoch, createdAt, by: signer.publicKey };
  return { ...body, sig: signer.sign(epochMessage(k.id, body)) };
}

/** A new keyring whose root is `root` (the password-derived identity) with epoch 0. */
export function newKeyring(root: Identity, kdf: PwhashParams): Keyring {
  const id = Buffer.alloc(32);
  sodium.randombytes_buf(id);
  const k: Keyring = { id: id.toString('hex'), generation: 1, root: { public: root.publicKey, kdf }, epochs: [], slots: [] };
  k.epochs.push(signEpoch(k, root, 0));
  return k;
}

// ------------------------------------------------------------------------------------------ trust

export interface Member {
  name: string;
  public: PublicKey;
  fingerprint: string;
  addedBy: string;
  addedAt: string;
  epochs: number[];
}

/** Checks every signature and chain (see the header); returns the members (root excluded), or throws. */
export function verifyKeyring(k: Keyring, where: string): Member[] {
  const trusted = new Set<string>([k.root.public.encoded]);
  const nameOf = new Map<string, string>([[k.root.public.encoded, ROOT_NAME]]);
  let pending = k.slots.map((s, i) => ({ s, i }));
  for (let progress = true; progress && pending.length > 0; ) {
    progress = false;
    const rest: typeof pending = [];
    for (const p of pending) {
      if (!trusted.has(p.s.addedBy.encoded)) {
        rest.push(p);
        continue;
      }
      if (!p.s.addedBy.verify(slotMessage(k.id, p.s), p.s.sig)) throw tampered(where, p.s, p.i);
      trusted.add(p.s.public.encoded);
      nameOf.set(p.s.public.encoded, p.s.name);
      progress = true;
    }
    pending = rest;
  }
  const first = pending[0];
  if (first) {
    if (!first.s.addedBy.verify(slotMessage(k.id, first.s), first.s.sig)) throw tampered(where, first.s, first.i);
    throw new DvfsError('E_INTEGRITY', `key slot ${first.i} (${first.s.name}, epoch ${first.s.epoch}) is signed by ${first.s.addedBy.fingerprint}, who is not a member: refused`, {
      path: where,
      hint: 'someone without access added it; remove it with: dvfs key remove REPO ' + first.s.name,
    });
  }
  k.epochs.forEach((e, i) => {
    if (e.epoch !== i) throw new DvfsError('E_INTEGRITY', `epoch records are not numbered 0..${k.epochs.length - 1}`, { path: where, hint: 'the keyring was edited; restore it from a copy (a remote has one)' });
    if (!trusted.has(e.by.encoded) || !e.by.verify(epochMessage(k.id, e), e.sig)) {
      throw new DvfsError('E_INTEGRITY', `epoch ${e.epoch} record is not signed by a member (tampered)`, { path: where, hint: 'restore the keyring from a copy (a remote has one)' });
    }
  });
  const members = new Map<string, Member>();
  for (const s of k.slots) {
    if (s.epoch >= k.epochs.length) throw new DvfsError('E_INTEGRITY', `key slot for ${s.name} names epoch ${s.epoch}, which does not exist`, { path: where });
    if (s.public.equals(k.root.public)) continue;
    const m = members.get(s.public.encoded);
    if (m) m.epochs.push(s.epoch);
    else {
      members.set(s.public.encoded, {
        name: s.name,
        public: s.public,
        fingerprint: s.public.fingerprint,
        addedBy: `${nameOf.get(s.addedBy.encoded) ?? '?'} (${s.addedBy.fingerprint})`,
        addedAt: s.addedAt,
        epochs: [s.epoch],
      });
    }
  }
  return [...members.values()];
}

function tampered(where: string, s: Slot, i: number): DvfsError {
  return new DvfsError('E_INTEGRITY', `key slot ${i} (${s.name}, epoch ${s.epoch}) does not match its signature: tampered slot refused`, {
    path: where,
    hint: 'restore the keyring from a copy (a remote has one), or ask a member to remove and re-add ' + s.name,
  });
}

// ------------------------------------------------------------------------------------- encoding

export function serializeKeyring(k: Keyring): Buffer {
  const doc = {
    format: KEYRING_FORMAT,
    version: KEYRING_VERSION,
    id: k.id,
    generation: k.generation,
    root: { public: k.root.public.encoded, kdf: pwhashToJson(k.root.kdf) },
    epochs: k.epochs.map((e) => ({ epoch: e.epoch, createdAt: e.createdAt, by: e.by.encoded, sig: e.sig.toString('base64url') })),
    slots: k.slots.map((s) => ({
      epoch: s.epoch,
      name: s.name,
      public: s.public.encoded,
      addedBy: s.addedBy.encoded,
      addedAt: s.addedAt,
      sealed: s.sealed.toString('base64url'),
      sig: s.sig.toString('base64url'),
    })),
  };
  return Buffer.from(JSON.stringify(doc, null, 2) + '\n', 'utf8');
}

/** Parses and verifies a keyring (see verifyKeyring); `where` names it in errors. */
export function parseKeyring(data: Buffer, where: string): Keyring {
  const bad = (why: string): DvfsError => new DvfsError('E_CONFIG', `unreadable keyring: ${why}`, { path: where, hint: 'restore it from a copy (a remote has one)' });
  let o: Record<string, unknown>;
  try {
    const v: unknown = JSON.parse(data.toString('utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    o = v as Record<string, unknown>;
  } catch (e) {
    throw bad(`not JSON (${(e as Error).message})`);
  }
  if (o.format !== KEYRING_FORMAT) throw bad(`format is ${JSON.stringify(o.format)}`);
  if (o.version !== KEYRING_VERSION) throw new DvfsError('E_UNSUPPORTED', `keyring version ${String(o.version)} is not supported`, { path: where, hint: 'upgrade dvfs' });
  if (typeof o.id !== 'string' || !/^[0-9a-f]{64}$/.test(o.id)) throw bad('bad id');
  if (typeof o.generation !== 'number' || !Number.isSafeInteger(o.generation) || o.generation < 1) throw bad('bad generation');
  const pub = (v: unknown, what: string): PublicKey => {
    if (typeof v !== 'string') throw bad(`${what} is not a key`);
    try {
      return PublicKey.fromBytes(Buffer.from(v, 'base64url'), what);
    } catch {
      throw bad(`${what} is not a key`);
    }
  };
  const b64 = (v: unknown, what: string): Buffer => {
    if (typeof v !== 'string' || !/^[A-Za-z0-9_-]*$/.test(v)) throw bad(`${what} is not base64url`);
    return Buffer.from(v, 'base64url');
  };
  const str = (v: unknown, what: string): string => {
    if (typeof v !== 'string') throw bad(`${what} is not a string`);
    return v;
  };
  const int = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw bad(`${what} is not a whole number`);
    return v;
  };
  const arr = (v: unknown, what: string): Record<string, unknown>[] => {
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'object' || x === null)) throw bad(`${what} is not a list of objects`);
    return v as Record<string, unknown>[];
  };
  const root = o.root as Record<string, unknown> | undefined;
  if (typeof root !== 'object' || root === null) throw bad('no root');
  const k: Keyring = {
    id: o.id,
    generation: o.generation,
    root: { public: pub(root.public, 'root.public'), kdf: pwhashFromJson(root.kdf, bad) },
    epochs: arr(o.epochs, 'epochs').map((e, i) => ({ epoch: int(e.epoch, `epochs[${i}].epoch`), createdAt: str(e.createdAt, 'createdAt'), by: pub(e.by, `epochs[${i}].by`), sig: b64(e.sig, 'sig') })),
    slots: arr(o.slots, 'slots').map((s, i) => ({
      epoch: int(s.epoch, `slots[${i}].epoch`),
      name: str(s.name, `slots[${i}].name`),
      public: pub(s.public, `slots[${i}].public`),
      addedBy: pub(s.addedBy, `slots[${i}].addedBy`),
      addedAt: str(s.addedAt, `slots[${i}].addedAt`),
      sealed: b64(s.sealed, `slots[${i}].sealed`),
      sig: b64(s.sig, `slots[${i}].sig`),
    })),
  };
  if (k.epochs.length === 0) throw bad('no epochs');
  verifyKeyring(k, where);
  return k;
}

/** The repository's keyring, or null when it has none (made before key slots, or never shared). */
export async function readKeyring(repoRoot: string): Promise<Keyring | null> {
  const path = keyringPath(repoRoot);
  let data: Buffer;
  try {
    data = await readFile(path);
  } catch (e) {
    if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return null;
    throw new DvfsError('E_IO', `cannot read the keyring: ${(e as Error).message}`, { path });
  }
  return parseKeyring(data, path);
}

/** Writes the keyring atomically (mode 0644: it holds nothing secret in the clear). */
export async function writeKeyring(repoRoot: string, k: Keyring): Promise<void> {
  const path = keyringPath(repoRoot);
  await mkdir(join(repoRoot, META_DIR, KEYS_DIR), { recursive: true, mode: 0o755 });
  await writeFileAtomic(path, serializeKeyring(k), { mode: 0o644 });
}
