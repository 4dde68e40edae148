/**
 * Turning what the user holds — the repository password or a personal identity — into an open working
 * tree plus the keys of the epochs they hold (EpochKeys, attached to the tree).
 *
 * - Password, no keyring or a keyring still at epoch 0: the volume opens with the password and the store
 *   keys come from the volume, exactly as before key slots existed (no extra cost).
 * - Password, later epochs: the root identity is derived from the password (Argon2id, keyring salt) and
 *   opens the slots sealed to it; epoch 0 comes from the volume itself.
 * - Identity: its slots are opened (crypto_box_seal_open); the tree opens with the current epoch's tree key.
 *   No slot, or none for the current epoch, is an error naming the identity's fingerprint and who can add it.
 */
import sodium from 'sodium-native';
import { DvfsError, IntegrityError } from '../errors.js';
import { EncfsTree } from '../encfs/tree.js';
import { EncfsVolume, type OpenOptions } from '../encfs/volume.js';
import type { ErrorLog } from '../quiet-log.js';
import { NativeTree, openNativeVolume, openNativeVolumeWithMaster } from '../native/tree.js';
import type { Repository } from '../repo/layout.js';
import { contentHashKeyOf, wipeRepoKeys } from '../store/keys.js';
import { ManifestStore } from '../store/manifests.js';
import { readHead } from '../store/refs.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import { attachEpochKeys, EpochKeys } from './epoch-keys.js';
import { decodeGrant, makeGrant, wipeGrant, type Grant } from './grant.js';
import { Identity } from './identity.js';
import { currentEpoch, keyringPath, readKeyring, verifyKeyring, ROOT_NAME, type Keyring } from './keyring.js';
import { stretch } from './pwhash.js';

export type Credential = { kind: 'password'; password: Buffer } | { kind: 'identity'; identity: Identity; name: string };

/** The password itself, or the key pair it stands for in a keyring (the root). */
export async function rootIdentity(password: Buffer, keyring: Keyring, where: string): Promise<Identity> {
  const seed = await stretch(password, keyring.root.kdf);
  try {
    const root = Identity.fromSeed(seed);
    if (!root.publicKey.equals(keyring.root.public)) {
      root.destroy();
      throw new DvfsError('E_PASSWORD', 'the password does not match the keyring (its root key was made from another password)', {
        path: where,
        hint: 'check the password file; after dvfs key passwd elsewhere, pull the new keyring first',
      });
    }
    return root;
  } finally {
    sodium.sodium_memzero(seed);
  }
}

/** Opens every slot sealed to `holder`, by epoch. A slot that does not open is reported (damaged/tampered). */
export function openSlots(keyring: Keyring, holder: Identity, where: string): Map<number, Grant> {
  const grants = new Map<number, Grant>();
  keyring.slots.forEach((s, i) => {
    if (!s.public.equals(holder.publicKey)) return;
    const plain = holder.open(s.sealed);
    const grant = plain ? decodeGrant(plain) : null;
    if (plain) sodium.sodium_memzero(plain);
    if (!grant || grant.epoch !== s.epoch) {
      if (grant) wipeGrant(grant);
      throw new DvfsError('E_INTEGRITY', `key slot ${i} (${s.name}, epoch ${s.epoch}) does not open with this identity: damaged or tampered`, {
        path: where,
        hint: `ask a member to remove and re-add ${s.name}`,
      });
    }
    const duplicate = grants.get(s.epoch);
    if (duplicate) wipeGrant(duplicate);
    grants.set(s.epoch, grant);
  });
  return grants;
}

/** Key material that opens a tree: the EncFS volume key (key || IV) or the native master key. */
export function treeKeyOf(tree: CryptoTree): Buffer {
  if (tree instanceof NativeTree) return tree.exportMasterKey();
  if (tree instanceof EncfsTree) return tree.snapshotSecret();
  throw new DvfsError('E_UNSUPPORTED', 'this kind of tree has no key slots');
}

/** The epoch-0 grant of a tree opened with the password (its own keys, as before key slots). */
export function volumeGrant(tree: CryptoTree): Grant {
  const treeKey = treeKeyOf(tree);
  const secret = tree.snapshotSecret();
  const content = contentHashKeyOf(secret);
  const g = makeGrant(0, treeKey, secret, content);
  for (const b of [treeKey, secret, content]) sodium.sodium_memzero(b);
  return g;
}

export async function openWithTreeKey(repo: Repository, treeKey: Buffer, logger: ErrorLog, options: OpenOptions): Promise<CryptoTree> {
  if (repo.format === 'native') return openNativeVolumeWithMaster(repo.tree, treeKey);
  if (repo.encfsRoot === null) throw new DvfsError('E_UNSUPPORTED', 'not an EncFS volume', { path: repo.root });
  const volume = await EncfsVolume.openWithKey(repo.encfsRoot, treeKey, options);
  return new EncfsTree(volume, (rawPath, reason) => logger.error({ rawPath, err: reason }, 'rename: entry could not be re-encoded'));
}

async function openWithPassword(repo: Repository, password: Buffer, logger: ErrorLog, options: OpenOptions): Promise<CryptoTree> {
  if (repo.format === 'native') return openNativeVolume(repo.tree, password);
  if (repo.encfsRoot === null) throw new DvfsError('E_UNSUPPORTED', 'not an EncFS volume', { path: repo.root });
  const volume = await EncfsVolume.open(repo.encfsRoot, password, options);
  return new EncfsTree(volume, (rawPath, reason) => logger.error({ rawPath, err: reason }, 'rename: entry could not be re-encoded'));
}

function whoCanAdd(keyring: Keyring, where: string): string {
  const members = verifyKeyring(keyring, where).filter((m) => m.epochs.includes(currentEpoch(keyring)));
  const names = members.map((m) => `${m.name} (${m.fingerprint})`);
  return [...names, `the holder of the repository password ${ROOT_NAME}`].join(', ');
}

/**
 * The keys from a keyring must open the repository's HEAD snapshot: a keyring replaced by someone else's
 * (their own root sealing secrets they chose) or rolled back to before a rotation fails here, before
 * anything is written under the wrong keys.
 */
async function checkAgainstHead(repo: Repository, keys: EpochKeys, where: string): Promise<void> {
  if (repo.kind !== 'dvfs') return;
  const head = await readHead(repo.root);
  if (head === null) return;
  const current = keys.repoKeys();
  const older = keys.olderRepoKeys();
  const store = new ManifestStore(repo.root, current.manifest, false, older.map((k) => k.manifest));
  try {
    await store.getSnapshot(head);
  } catch (e) {
    if (!(e instanceof IntegrityError)) throw e;
    throw new DvfsError('E_INTEGRITY', `the keys in the keyring do not open this repository's HEAD (${head.slice(0, 12)}): the keyring was replaced or rolled back`, {
      path: where,
      hint: 'restore the keyring from a copy you trust (a remote has one), or unlock with the password',
    });
  } finally {
    store.dispose();
    for (const k of [current, ...older]) wipeRepoKeys(k);
  }
}

/** Opens the tree with `credential` and attaches the epoch keys the holder has (see the header). */
export async function unlockTree(repo: Repository, credential: Credential, logger: ErrorLog, options: OpenOptions = {}): Promise<CryptoTree> {
  const keyring = repo.kind === 'dvfs' ? await readKeyring(repo.root) : null;
  const where = keyringPath(repo.root);
  if (credential.kind === 'password') {
    const tree = await openWithPassword(repo, credential.password, logger, options);
    if (!keyring || currentEpoch(keyring) === 0) return tree;
    try {
      const root = await rootIdentity(credential.password, keyring, where);
      const grants = openSlots(keyring, root, where);
      root.destroy();
      if (!grants.has(0)) grants.set(0, volumeGrant(tree));
      if (!grants.has(currentEpoch(keyring))) {
        throw new DvfsError('E_INTEGRITY', `the keyring has no slot of epoch ${currentEpoch(keyring)} for the password holder`, { path: where, hint: 'restore the keyring from a copy (a remote has one)' });
      }
      const keys = new EpochKeys(grants, currentEpoch(keyring));
      await checkAgainstHead(repo, keys, where);
      attachEpochKeys(tree, keys);
      return tree;
    } catch (e) {
      tree.dispose?.();
      throw e;
    }
  }
  const { identity, name } = credential;
  const who = `identity ${name} (${identity.fingerprint})`;
  if (!keyring) {
    throw new DvfsError('E_NOTFOUND', `this repository has no key slots, so ${who} cannot open it`, {
      path: repo.root,
      hint: `the password holder adds you with: dvfs key add ${repo.root} --name ${name} '${identity.publicKey.line(name)}'`,
    });
  }
  const grants = openSlots(keyring, identity, where);
  const current = currentEpoch(keyring);
  const grant = grants.get(current);
  if (!grant) {
    const held = [...grants.keys()];
    for (const g of grants.values()) wipeGrant(g);
    const why = held.length === 0 ? 'has no key slot in this repository' : `holds key epochs ${held.join(', ')} but not the current epoch ${current} (its access was removed, then the keys were rotated)`;
    throw new DvfsError('E_PASSWORD', `${who} ${why}`, {
      path: where,
      hint: `members who can add it: ${whoCanAdd(keyring, where)} — with: dvfs key add REPO --name ${name} '${identity.publicKey.line(name)}'`,
    });
  }
  const keys = new EpochKeys(grants, current);
  try {
    await checkAgainstHead(repo, keys, where);
  } catch (e) {
    keys.wipe();
    throw e;
  }
  const tree = await openWithTreeKey(repo, grant.tree, logger, options);
  attachEpochKeys(tree, keys);
  return tree;
}
