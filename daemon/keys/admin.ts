/**
 * What `dvfs key add/remove/rotate/passwd` do to a repository's keyring, each under the repository lock and
 * written atomically. The caller has unlocked the repository (unlock.ts): it holds the grants of some
 * epochs and signs with its identity, or — when it gave the password — with the root key pair derived from
 * the password. The first change to a repository without a keyring creates one (password needed).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import sodium from 'sodium-native';
import { DvfsError } from '../errors.js';
import type { Logger } from '../log.js';
import { META_DIR, type Repository } from '../repo/layout.js';
import { withRepoLock } from '../store/lock.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import { INDEX_DIR } from '../versioning/context.js';
import { EncfsTree } from '../encfs/tree.js';
import { NativeTree } from '../native/tree.js';
import { epochKeysOf, EpochKeys } from './epoch-keys.js';
import { encodeGrant, makeGrant, type Grant } from './grant.js';
import { checkMemberName, Identity, type PublicKey } from './identity.js';
import { currentEpoch, keyringPath, newKeyring, readKeyring, ROOT_NAME, signEpoch, signSlot, verifyKeyring, writeKeyring, type Keyring, type Member } from './keyring.js';
import { costFromEnv, newPwhashParams, stretch } from './pwhash.js';
import { rootIdentity, unlockTree, volumeGrant, type Credential } from './unlock.js';

export interface KeyAdmin {
  repo: Repository;
  tree: CryptoTree;
  keys: EpochKeys;
  /** Who signs what this session changes: the identity, or the root (password holder). */
  signer: Identity;
  signerName: string;
  credential: Credential;
  /** The keyring to create on the first change, when the repository has none yet (password holders only). */
  fresh: Keyring | null;
  close(): void;
}

function requireDvfs(repo: Repository): void {
  if (repo.kind !== 'dvfs') {
    throw new DvfsError('E_UNSUPPORTED', 'key slots belong to a dvfs repository, not a bare volume', { path: repo.root, hint: 'create a repository with dvfs init' });
  }
}

async function rootFromPassword(password: Buffer, keyring: Keyring | null, where: string): Promise<{ root: Identity; keyring: Keyring }> {
  if (keyring) return { root: await rootIdentity(password, keyring, where), keyring };
  const kdf = newPwhashParams(costFromEnv());
  const seed = await stretch(password, kdf);
  const root = Identity.fromSeed(seed);
  sodium.sodium_memzero(seed);
  return { root, keyring: newKeyring(root, kdf) };
}

/** Unlocks the repository for key administration (see the header). */
export async function openKeyAdmin(repo: Repository, credential: Credential, logger: Logger): Promise<KeyAdmin> {
  requireDvfs(repo);
  const tree = await unlockTree(repo, credential, logger);
  try {
    const keys = epochKeysOf(tree) ?? new EpochKeys(new Map([[0, volumeGrant(tree)]]), 0);
    let signer: Identity;
    let signerName: string;
    let fresh: Keyring | null = null;
    if (credential.kind === 'identity') {
      signer = credential.identity;
      signerName = credential.name;
    } else {
      const existing = await readKeyring(repo.root);
      const r = await rootFromPassword(credential.password, existing, keyringPath(repo.root));
      signer = r.root;
      signerName = ROOT_NAME;
      if (!existing) {
        fresh = r.keyring;
        // The root holds epoch 0 through the password itself; its slot lets it survive a re-keyed tree.
        fresh.slots.push(sealSlot(fresh, signer, keys.grant(0), ROOT_NAME, fresh.root.public));
      }
    }
    return {
      repo,
      tree,
      keys,
      signer,
      signerName,
      credential,
      fresh,
      close() {
        keys.wipe();
        tree.dispose?.();
        if (credential.kind === 'password') signer.destroy();
      },
    };
  } catch (e) {
    tree.dispose?.();
    throw e;
  }
}

/**
 * Reads the keyring under the repository lock (creating it when the caller holds the password), lets
 * `change` edit it, bumps its generation and writes it.
 */
async function changeKeyring<T>(admin: KeyAdmin, change: (k: Keyring) => T | Promise<T>): Promise<T> {
  return withRepoLock(admin.repo.root, { purpose: 'keys', waitMs: 10_000 }, async () => {
    const where = keyringPath(admin.repo.root);
    const k = (await readKeyring(admin.repo.root)) ?? admin.fresh;
    if (!k) throw new DvfsError('E_USAGE', 'the repository has no keyring yet: the password holder makes the first change', { path: where });
    if (!admin.signer.publicKey.equals(k.root.public) && !verifyKeyring(k, where).some((m) => m.public.equals(admin.signer.publicKey))) {
      throw new DvfsError('E_PASSWORD', `${admin.signerName} (${admin.signer.fingerprint}) is not a member of this repository`, { path: where });
    }
    const result = await change(k);
    k.generation++;
    verifyKeyring(k, where);
    await writeKeyring(admin.repo.root, k);
    return result;
  });
}

function sealSlot(k: Keyring, signer: Identity, grant: Grant, name: string, to: PublicKey): ReturnType<typeof signSlot> {
  const plain = encodeGrant(grant);
  try {
    return signSlot(k, signer, { epoch: grant.epoch, name, public: to, addedAt: new Date().toISOString(), sealed: to.seal(plain) });
  } finally {
    sodium.sodium_memzero(plain);
  }
}

export interface AddReport {
  name: string;
  fingerprint: string;
  epochs: number[];
  addedBy: string;
}

/** Gives `name` a slot for every epoch the caller holds. */
export async function addMember(admin: KeyAdmin, name: string, key: PublicKey): Promise<AddReport> {
  checkMemberName(name);
  if (name === ROOT_NAME) throw new DvfsError('E_USAGE', `${ROOT_NAME} is the password slot's name`);
  return changeKeyring(admin, (k) => {
    if (key.equals(k.root.public)) throw new DvfsError('E_USAGE', 'that is the key of the password slot');
    const members = verifyKeyring(k, keyringPath(admin.repo.root));
    const sameName = members.find((m) => m.name === name);
    if (sameName && !sameName.public.equals(key)) {
      throw new DvfsError('E_EXISTS', `a member named ${name} already exists with another key (${sameName.fingerprint})`, { hint: `remove it first: dvfs key remove REPO ${name}` });
    }
    const sameKey = members.find((m) => m.public.equals(key));
    if (sameKey && sameKey.name !== name) throw new DvfsError('E_EXISTS', `this key is already a member, as ${sameKey.name}`);
    const epochs = admin.keys.held.filter((e) => !k.slots.some((s) => s.epoch === e && s.public.equals(key)));
    if (epochs.length === 0) throw new DvfsError('E_EXISTS', `${name} (${key.fingerprint}) already has a slot for every epoch you hold`);
    for (const e of epochs) k.slots.push(sealSlot(k, admin.signer, admin.keys.grant(e), name, key));
    return { name, fingerprint: key.fingerprint, epochs, addedBy: `${admin.signerName} (${admin.signer.fingerprint})` };
  });
}

/** Drops every slot of `name`; whatever it had signed is signed again by the caller. */
export async function removeMember(admin: KeyAdmin, name: string): Promise<{ name: string; fingerprint: string; slots: number; resigned: number }> {
  if (name === ROOT_NAME) throw new DvfsError('E_USAGE', 'the password slot cannot be removed', { hint: 'change it with: dvfs key passwd REPO' });
  return changeKeyring(admin, (k) => {
    const gone = k.slots.filter((s) => s.name === name);
    const key = gone[0]?.public;
    if (!key) throw new DvfsError('E_NOTFOUND', `no member named ${name}`, { path: keyringPath(admin.repo.root), hint: 'see the members with: dvfs key list REPO' });
    if (key.equals(admin.signer.publicKey)) throw new DvfsError('E_USAGE', 'you cannot remove yourself', { hint: 'ask another member or the password holder' });
    if (k.slots.some((s) => s.addedBy.equals(key) && s.public.equals(admin.signer.publicKey))) {
      throw new DvfsError('E_USAGE', `you were added by ${name}: removing ${name} would leave your own slot signed by nobody trusted`, {
        hint: `ask the password holder (or a member not added by ${name}) to remove ${name}`,
      });
    }
    k.slots = k.slots.filter((s) => !s.public.equals(key));
    let resigned = 0;
    k.slots = k.slots.map((s) => {
      if (!s.addedBy.equals(key)) return s;
      resigned++;
      return signSlot(k, admin.signer, { epoch: s.epoch, name: s.name, public: s.public, addedAt: s.addedAt, sealed: s.sealed });
    });
    k.epochs = k.epochs.map((e) => (e.by.equals(key) ? signEpoch(k, admin.signer, e.epoch, e.createdAt) : e));
    return { name, fingerprint: key.fingerprint, slots: gone.length, resigned };
  });
}

/**
 * A new epoch: a fresh random secret sealed to the password holder and every member who holds the current
 * epoch (a removed member holds none). New snapshots, path keys and pushes use it from now on. The index is
 * dropped (its paths were sealed under the old path key); the next commit rebuilds it from HEAD.
 */
export async function rotateEpoch(admin: KeyAdmin): Promise<{ epoch: number; members: string[] }> {
  const result = await changeKeyring(admin, (k) => {
    const from = currentEpoch(k);
    if (!admin.keys.held.includes(from)) throw new DvfsError('E_PASSWORD', `you do not hold the current epoch ${from}`);
    const current = admin.keys.grant(from);
    const epoch = from + 1;
    const secret = sodium.sodium_malloc(32);
    sodium.randombytes_buf(secret);
    const grant = makeGrant(epoch, current.tree, secret, current.content);
    sodium.sodium_memzero(secret);
    k.epochs.push(signEpoch(k, admin.signer, epoch));
    const members = verifyKeyring(k, keyringPath(admin.repo.root)).filter((m: Member) => m.epochs.includes(from));
    k.slots.push(sealSlot(k, admin.signer, grant, ROOT_NAME, k.root.public));
    for (const m of members) k.slots.push(sealSlot(k, admin.signer, grant, m.name, m.public));
    return { epoch, members: members.map((m) => m.name) };
  });
  await rm(join(admin.repo.root, META_DIR, INDEX_DIR), { recursive: true, force: true });
  return result;
}

/**
 * Changes the password slot: the volume's own config (`.encfs6.xml`, which stock encfs keeps reading, or
 * `.dvfs-native.json`) and, when there is a keyring, its root key pair (new salt): what the old root signed
 * is signed again by the new one and its slots are sealed to the new one.
 */
export async function changePassword(admin: KeyAdmin, newPassword: Buffer): Promise<{ resealed: number[] }> {
  const tree = admin.tree;
  const k = await readKeyring(admin.repo.root);
  if (!k) {
    await setVolumePassword(tree, newPassword);
    return { resealed: [] };
  }
  return changeKeyring(admin, async (ring) => {
    const kdf = newPwhashParams(costFromEnv());
    const seed = await stretch(newPassword, kdf);
    const newRoot = Identity.fromSeed(seed);
    sodium.sodium_memzero(seed);
    try {
      const oldRoot = ring.root.public;
      ring.root = { public: newRoot.publicKey, kdf };
      const resealed: number[] = [];
      const kept = ring.slots.filter((s) => !s.public.equals(oldRoot));
      for (const e of admin.keys.held) {
        kept.push(sealSlot(ring, newRoot, admin.keys.grant(e), ROOT_NAME, newRoot.publicKey));
        resealed.push(e);
      }
      ring.slots = kept.map((s) => (s.addedBy.equals(oldRoot) ? signSlot(ring, newRoot, { epoch: s.epoch, name: s.name, public: s.public, addedAt: s.addedAt, sealed: s.sealed }) : s));
      ring.epochs = ring.epochs.map((e) => (e.by.equals(oldRoot) ? signEpoch(ring, newRoot, e.epoch, e.createdAt) : e));
      await setVolumePassword(tree, newPassword);
      return { resealed };
    } finally {
      newRoot.destroy();
    }
  });
}

async function setVolumePassword(tree: CryptoTree, password: Buffer): Promise<void> {
  if (tree instanceof EncfsTree) return tree.volume.changePassword(password);
  if (tree instanceof NativeTree) return tree.changePassword(password);
  throw new DvfsError('E_UNSUPPORTED', 'this kind of tree has no password');
}

/** The members (and the password slot's epochs) for `dvfs key list`. */
export async function listMembers(repo: Repository): Promise<{ epoch: number; generation: number; root: { fingerprint: string; epochs: number[] }; members: Member[] } | null> {
  requireDvfs(repo);
  const k = await readKeyring(repo.root);
  if (!k) return null;
  const where = keyringPath(repo.root);
  const members = verifyKeyring(k, where);
  return {
    epoch: currentEpoch(k),
    generation: k.generation,
    root: { fingerprint: k.root.public.fingerprint, epochs: k.slots.filter((s) => s.public.equals(k.root.public)).map((s) => s.epoch) },
    members,
  };
}
