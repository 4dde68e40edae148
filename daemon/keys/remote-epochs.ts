/**
 * How key epochs and the keyring travel to a remote (daemon/remote/FORMAT.md, "Key epochs"):
 *
 * - epoch 0 uses the remote's root (the layout remotes had before key slots existed); epoch n ≥ 1 is a
 *   namespace of its own under `epochs/<n>/`, with its own config, index, packs, refs and locks, all sealed
 *   under keys derived from that epoch's manifest key. The first push after a rotation therefore sends the
 *   history again under the new keys (once); a removed member's old keys open none of it.
 * - the keyring is stored as `keys/keyring.json`, as is: it is public and self-authenticating (signatures,
 *   checked on every read). Its `generation` only grows; push refuses to replace a newer remote keyring
 *   (pull first), pull adopts a newer one.
 */
import { DvfsError } from '../errors.js';
import { isNotFound, type Backend, type Body, type ObjectInfo, type PartSent } from '../remote/backend.js';
import { KEYS_PREFIX } from '../remote/layout.js';
import { parseKeyring, readKeyring, serializeKeyring, writeKeyring, type Keyring } from './keyring.js';

export const EPOCHS_PREFIX = 'epochs/';
export const REMOTE_KEYRING_KEY = `${KEYS_PREFIX}keyring.json`;

/** The same store with every key under `prefix` (the namespace of one key epoch). */
class PrefixedBackend implements Backend {
  readonly location: string;
  constructor(
    private readonly inner: Backend,
    private readonly prefix: string,
  ) {
    this.location = `${inner.location} (${prefix.replace(/\/$/, '')})`;
  }
  put(key: string, body: Body, size: number): Promise<void> {
    return this.inner.put(this.prefix + key, body, size);
  }
  putLarge(key: string, body: Body, size: number, sent?: PartSent): Promise<void> {
    return this.inner.putLarge(this.prefix + key, body, size, sent);
  }
  get(key: string): Promise<Buffer> {
    return this.inner.get(this.prefix + key);
  }
  getRange(key: string, offset: number, length: number): Promise<Buffer> {
    return this.inner.getRange(this.prefix + key, offset, length);
  }
  head(key: string): Promise<number | null> {
    return this.inner.head(this.prefix + key);
  }
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for await (const o of this.inner.list(this.prefix + prefix)) yield { key: o.key.slice(this.prefix.length), size: o.size };
  }
  delete(keys: readonly string[]): Promise<void> {
    return this.inner.delete(keys.map((k) => this.prefix + k));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The part of a remote that holds key epoch `epoch` (the remote itself for epoch 0). */
export function epochBackend(backend: Backend, epoch: number | undefined): Backend {
  if (epoch === undefined || epoch === 0) return backend;
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw new DvfsError('E_USAGE', `bad key epoch ${epoch}`);
  return new PrefixedBackend(backend, `${EPOCHS_PREFIX}${epoch}/`);
}

/** The keyring stored on a remote (verified), or null when it has none. */
export async function readRemoteKeyring(backend: Backend): Promise<Keyring | null> {
  let data: Buffer;
  try {
    data = await backend.get(REMOTE_KEYRING_KEY);
  } catch (e) {
    if (isNotFound(e)) return null;
    throw e;
  }
  return parseKeyring(data, `${backend.location}/${REMOTE_KEYRING_KEY}`);
}

function sameRepository(local: Keyring, remote: Keyring, location: string): void {
  if (local.id !== remote.id) {
    throw new DvfsError('E_CONFLICT', `the remote ${location} holds the keyring of another repository`, { hint: 'push to a remote made from this repository' });
  }
}

/**
 * Before a push: the remote's keyring must not be newer than ours (else E_CONFLICT: pull first); ours is
 * uploaded when the remote lacks it or has an older generation.
 */
export async function pushKeyring(backend: Backend, repoRoot: string): Promise<void> {
  const local = await readKeyring(repoRoot);
  const remote = await readRemoteKeyring(backend);
  if (remote && (!local || remote.generation > local.generation)) {
    throw new DvfsError('E_CONFLICT', `the key slots on ${backend.location} are newer than this repository's (keys were added, removed or rotated there)`, {
      hint: 'run dvfs pull first, then push',
    });
  }
  if (!local) return;
  if (remote) sameRepository(local, remote, backend.location);
  if (!remote || remote.generation < local.generation) {
    const data = serializeKeyring(local);
    await backend.put(REMOTE_KEYRING_KEY, data, data.length);
  }
}

/**
 * Adopts the remote's keyring when it is newer than the local one (or the local repository has none);
 * returns true when the local keyring changed. A keyring of another repository is refused.
 */
export async function pullKeyring(backend: Backend, repoRoot: string): Promise<boolean> {
  const remote = await readRemoteKeyring(backend);
  if (!remote) return false;
  const local = await readKeyring(repoRoot);
  if (local) {
    sameRepository(local, remote, backend.location);
    if (remote.generation <= local.generation) return false;
  }
  await writeKeyring(repoRoot, remote);
  return true;
}

/** pullKeyring() for a remote URL (opens and closes its backend). */
export async function adoptRemoteKeyring(repoRoot: string, url: string): Promise<boolean> {
  const { openBackend } = await import('../remote/open-backend.js');
  const backend = await openBackend(url);
  try {
    return await pullKeyring(backend, repoRoot);
  } finally {
    await backend.close();
  }
}
