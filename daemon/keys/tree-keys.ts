/**
 * The keys of a tree that is already open, for a mount daemon launched by the process that opened it (the
 * stage runner of `dvfs run` and of SLURM stage jobs unlocks the repository before it mounts): the daemon
 * opens the tree with the volume key and the held epoch grants instead of unlocking it again, which with a
 * password means stretching it once more (PBKDF2 of an EncFS volume: ~0.4 CPU s at the default iterations).
 *
 * The keys travel the way the password did: on the daemon's stdin pipe, never argv, the environment or a
 * file. The launching process checked the keyring against HEAD when it unlocked; the daemon trusts that.
 */
import sodium, { type SecureBuffer } from 'sodium-native';
import { DvfsError } from '../errors.js';
import type { OpenOptions } from '../encfs/volume.js';
import type { ErrorLog } from '../quiet-log.js';
import type { Repository } from '../repo/layout.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import { attachEpochKeys, EpochKeys, epochKeysOf } from './epoch-keys.js';
import { decodeGrant, encodeGrant, makeGrant, wipeGrant, type Grant } from './grant.js';
import { openWithTreeKey, treeKeyOf } from './unlock.js';

export interface TreeKeys {
  kind: 'keys';
  /** What opens the tree: the EncFS volume key (key || IV) or the native master key. */
  treeKey: SecureBuffer;
  /** The epoch grants the opener held (a repository with key epochs), or null (keys from the volume). */
  epochs: { current: number; grants: Grant[] } | null;
}

/** On the pipe: base64 of the tree key and of each encoded grant. */
export interface TreeKeysWire {
  kind: 'keys';
  treeKey: string;
  current: number | null;
  grants: string[];
}

function secureCopy(b: Uint8Array): SecureBuffer {
  const out = sodium.sodium_malloc(b.length);
  out.set(b);
  return out;
}

/** Copies of the keys `tree` was opened with (the caller wipes them with {@link wipeTreeKeys}). */
export function keysOfTree(tree: CryptoTree): TreeKeys {
  const raw = treeKeyOf(tree);
  let treeKey: SecureBuffer;
  try {
    treeKey = secureCopy(raw);
  } finally {
    sodium.sodium_memzero(raw);
  }
  const held = epochKeysOf(tree);
  if (held === undefined) return { kind: 'keys', treeKey, epochs: null };
  const grants = [...held.grants.values()].map((g) => makeGrant(g.epoch, g.tree, g.secret, g.content));
  return { kind: 'keys', treeKey, epochs: { current: held.current, grants } };
}

export function wipeTreeKeys(keys: TreeKeys): void {
  sodium.sodium_memzero(keys.treeKey);
  for (const g of keys.epochs?.grants ?? []) wipeGrant(g);
}

export function encodeTreeKeys(keys: TreeKeys): TreeKeysWire {
  const grants = (keys.epochs?.grants ?? []).map((g) => {
    const b = encodeGrant(g);
    try {
      return Buffer.from(b).toString('base64');
    } finally {
      sodium.sodium_memzero(b);
    }
  });
  return { kind: 'keys', treeKey: Buffer.from(keys.treeKey).toString('base64'), current: keys.epochs?.current ?? null, grants };
}

export function decodeTreeKeys(wire: TreeKeysWire): TreeKeys {
  const grants: Grant[] = [];
  const raw = Buffer.from(wire.treeKey, 'base64');
  const treeKey = secureCopy(raw);
  raw.fill(0);
  for (const text of wire.grants) {
    const b = Buffer.from(text, 'base64');
    const g = decodeGrant(b);
    b.fill(0);
    if (g === null) {
      for (const done of grants) wipeGrant(done);
      sodium.sodium_memzero(treeKey);
      throw new DvfsError('E_USAGE', 'the mount daemon was handed a damaged key grant');
    }
    grants.push(g);
  }
  return { kind: 'keys', treeKey, epochs: wire.current === null ? null : { current: wire.current, grants } };
}

/** Opens the tree with handed-over keys; they stay the caller's to wipe (the grants are copied). */
export async function openWithKeys(repo: Repository, keys: TreeKeys, logger: ErrorLog, options: OpenOptions = {}): Promise<CryptoTree> {
  const epochs = keys.epochs === null ? null : new EpochKeys(new Map(keys.epochs.grants.map((g) => [g.epoch, makeGrant(g.epoch, g.tree, g.secret, g.content)])), keys.epochs.current);
  let tree: CryptoTree;
  try {
    tree = await openWithTreeKey(repo, Buffer.from(keys.treeKey.buffer, keys.treeKey.byteOffset, keys.treeKey.byteLength), logger, options);
  } catch (e) {
    epochs?.wipe();
    throw e;
  }
  if (epochs !== null) attachEpochKeys(tree, epochs);
  return tree;
}
