/**
 * The small sealed documents of a remote: its config and its refs. Each is canonical-enough JSON (written by
 * JSON.stringify, read strictly) sealed under the config key:
 *
 *   file = nonce (24) || XChaCha20-Poly1305(config key, nonce, AD, JSON) || tag (16)
 *
 *   config        key "config",     AD "dvfs remote config v1"
 *                 {"format":"dvfs-remote","version":1,"id":"<64 hex>","createdAt":"<ISO>",
 *                  "packSize":<bytes>,"largeThreshold":<bytes>}
 *   refs/<NAME>   key "refs/NAME",  AD "dvfs remote ref v1 NAME"
 *                 {"ref":"NAME","snapshot":"<64 hex>","time":"<ISO>"}
 *
 * The config is written once, by init; it fixes the remote's random id and the pack parameters every writer
 * uses. A config that does not open means the remote was made from another repository (other keys) or is
 * damaged: that is reported as such (E_CONFIG), before anything else is read. A ref's AD binds its name, so a
 * ref cannot be moved to another name; like the local HEAD, an old sealed ref put back by whoever controls the
 * storage (a rollback) is not detected here.
 */
import { DvfsError } from '../errors.js';
import { isObjectId, type ObjectId } from '../store/object-id.js';
import { isNotFound, type Backend } from './backend.js';
import { open, seal, type RemoteKeys } from './keys.js';
import { CONFIG_KEY, isName, newName, REFS_PREFIX, RemoteIntegrityError } from './layout.js';

export const REMOTE_FORMAT = 'dvfs-remote';
export const REMOTE_VERSION = 1;
export const CONFIG_LABEL = 'dvfs remote config v1';
export const REF_LABEL = 'dvfs remote ref v1';
export const DEFAULT_PACK_SIZE = 32 * 1024 * 1024;
export const DEFAULT_LARGE_THRESHOLD = 8 * 1024 * 1024;
/** Packs are at most about 2 × this (u32 offsets in the index). */
export const MAX_PACK_SIZE = 1024 * 1024 * 1024;
const MAX_DOC_BYTES = 1024 * 1024;
const REF_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export interface RemoteConfig {
  format: typeof REMOTE_FORMAT;
  version: typeof REMOTE_VERSION;
  /** 32 random bytes in hex, fixed at init. */
  id: string;
  createdAt: string;
  /** Target size of pack files. */
  packSize: number;
  /** Blobs larger than this are stored alone (blob.ts), not packed. */
  largeThreshold: number;
}

export interface ConfigParams {
  packSize?: number;
  largeThreshold?: number;
}

/** A new config (random id); checks packSize in 1 KiB..1 GiB and 0 <= largeThreshold <= packSize. */
export function newConfig(params: ConfigParams = {}, now: Date = new Date()): RemoteConfig {
  const packSize = params.packSize ?? DEFAULT_PACK_SIZE;
  const largeThreshold = params.largeThreshold ?? Math.min(DEFAULT_LARGE_THRESHOLD, packSize);
  checkParams(packSize, largeThreshold, (why) => new DvfsError('E_USAGE', why));
  return { format: REMOTE_FORMAT, version: REMOTE_VERSION, id: newName(), createdAt: now.toISOString(), packSize, largeThreshold };
}

function checkParams(packSize: number, largeThreshold: number, fail: (why: string) => Error): void {
  if (!Number.isSafeInteger(packSize) || packSize < 1024 || packSize > MAX_PACK_SIZE) throw fail(`pack size ${packSize} is outside 1 KiB..1 GiB`);
  if (!Number.isSafeInteger(largeThreshold) || largeThreshold < 0 || largeThreshold > packSize) {
    throw fail(`large-object threshold ${largeThreshold} is outside 0..pack size (${packSize})`);
  }
}

const configAd = (): Buffer => Buffer.from(CONFIG_LABEL, 'ascii');
const refAd = (name: string): Buffer => Buffer.from(`${REF_LABEL} ${name}`, 'utf8');

export function sealConfig(keys: RemoteKeys, config: RemoteConfig): Buffer {
  return seal(keys.config, configAd(), Buffer.from(JSON.stringify(config), 'utf8'));
}

function parseJson(data: Buffer, fail: (why: string) => Error): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(data.toString('utf8'));
  } catch (e) {
    throw fail(`not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail('not a JSON object');
  return v as Record<string, unknown>;
}

/** Opens a config file's bytes (E_CONFIG when it does not open with these keys; integrity error when malformed). */
export function openConfig(keys: RemoteKeys, location: string, data: Buffer): RemoteConfig {
  const plain = data.length > MAX_DOC_BYTES ? null : open(keys.config, configAd(), data);
  if (plain === null) {
    throw new DvfsError('E_CONFIG', `remote ${location}: its config does not open with this repository's keys`, {
      path: `${location}/${CONFIG_KEY}`,
      hint: 'the remote was made from another repository (or its config is damaged); push to a new remote, or use the repository it belongs to',
    });
  }
  const fail = (why: string): RemoteIntegrityError => new RemoteIntegrityError(location, CONFIG_KEY, `config: ${why}`);
  const o = parseJson(plain, fail);
  if (o.format !== REMOTE_FORMAT) throw fail(`format ${JSON.stringify(o.format)} is not ${REMOTE_FORMAT}`);
  if (o.version !== REMOTE_VERSION) {
    throw new DvfsError('E_UNSUPPORTED', `remote ${location} has format version ${String(o.version)}; this dvfs reads version ${REMOTE_VERSION}`, { hint: 'upgrade dvfs' });
  }
  if (!isName(o.id)) throw fail('bad id');
  if (typeof o.createdAt !== 'string') throw fail('bad createdAt');
  if (typeof o.packSize !== 'number' || typeof o.largeThreshold !== 'number') throw fail('bad pack parameters');
  checkParams(o.packSize, o.largeThreshold, (why) => fail(why));
  return { format: REMOTE_FORMAT, version: REMOTE_VERSION, id: o.id, createdAt: o.createdAt, packSize: o.packSize, largeThreshold: o.largeThreshold };
}

/** The remote's config, or null when the remote has none (not initialized). */
export async function readConfig(backend: Backend, keys: RemoteKeys): Promise<RemoteConfig | null> {
  let data: Buffer;
  try {
    data = await backend.get(CONFIG_KEY);
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
  return openConfig(keys, backend.location, data);
}

export async function writeConfig(backend: Backend, keys: RemoteKeys, config: RemoteConfig): Promise<void> {
  const data = sealConfig(keys, config);
  await backend.put(CONFIG_KEY, data, data.length);
}

// ------------------------------------------------------------------------------------------------ refs

export interface RemoteRef {
  ref: string;
  snapshot: ObjectId;
  time: string;
}

export function refKey(name: string): string {
  if (!REF_NAME_RE.test(name)) throw new DvfsError('E_USAGE', `invalid ref name ${JSON.stringify(name)} (letters, digits, ".", "_", "-"; at most 100)`);
  return `${REFS_PREFIX}${name}`;
}

export function sealRef(keys: RemoteKeys, ref: RemoteRef): Buffer {
  refKey(ref.ref);
  if (!isObjectId(ref.snapshot)) throw new DvfsError('E_USAGE', 'sealRef: not a snapshot id');
  return seal(keys.config, refAd(ref.ref), Buffer.from(JSON.stringify({ ref: ref.ref, snapshot: ref.snapshot, time: ref.time }), 'utf8'));
}

export function openRef(keys: RemoteKeys, location: string, name: string, data: Buffer): RemoteRef {
  const key = refKey(name);
  const fail = (why: string): RemoteIntegrityError => new RemoteIntegrityError(location, key, `ref: ${why}`);
  const plain = data.length > MAX_DOC_BYTES ? null : open(keys.config, refAd(name), data);
  if (plain === null) throw fail('authentication failed (damaged, forged, or renamed)');
  const o = parseJson(plain, fail);
  if (o.ref !== name) throw fail('names another ref');
  if (!isObjectId(o.snapshot)) throw fail('bad snapshot id');
  if (typeof o.time !== 'string') throw fail('bad time');
  return { ref: name, snapshot: o.snapshot, time: o.time };
}

/** A ref's value, or null when it does not exist. */
export async function readRef(backend: Backend, keys: RemoteKeys, name: string): Promise<RemoteRef | null> {
  let data: Buffer;
  try {
    data = await backend.get(refKey(name));
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
  return openRef(keys, backend.location, name, data);
}

export async function writeRef(backend: Backend, keys: RemoteKeys, name: string, snapshot: ObjectId, now: Date = new Date()): Promise<void> {
  const data = sealRef(keys, { ref: name, snapshot, time: now.toISOString() });
  await backend.put(refKey(name), data, data.length);
}
