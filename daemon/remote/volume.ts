/**
 * The repository's volume config on a remote, so that clone can turn a password into keys: the file that
 * wraps the volume key under the password (`.encfs6.xml` or `.dvfs-native.json`) is stored as is, since it
 * must be readable before any key is known, plus a MAC that binds it to the remote's keys:
 *
 *   keys/<file name without its leading dot>        the file's bytes, unchanged
 *   keys/<file name without its leading dot>.mac    BLAKE2b-256(key = config key, "dvfs remote volume v1" ||
 *                                                   u16 BE len(file name) || file name || bytes)  (32 bytes)
 *
 * Clone reads the file, derives the keys from it and the password, then checks the MAC (and opens the sealed
 * config): an EncFS config is not authenticated by itself, so an edited one (other cipher parameters, same
 * wrapped key) would otherwise go unnoticed. A mismatch is a RemoteIntegrityError.
 */
import sodium from 'sodium-native';
import { DvfsError } from '../errors.js';
import { isNotFound, type Backend } from './backend.js';
import { keyedHash, type RemoteKeys } from './keys.js';
import { KEYS_PREFIX, RemoteIntegrityError } from './layout.js';

export const VOLUME_MAC_LABEL = 'dvfs remote volume v1';
const FILE_RE = /^\.?[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export interface VolumeConfigFile {
  /** The file's name in the working tree (e.g. ".encfs6.xml"). */
  fileName: string;
  data: Buffer;
}

function stem(fileName: string): string {
  if (!FILE_RE.test(fileName) || fileName.endsWith('.mac')) throw new DvfsError('E_USAGE', `invalid volume config file name ${JSON.stringify(fileName)}`);
  return fileName.startsWith('.') ? fileName.slice(1) : fileName;
}

export function volumeMac(keys: RemoteKeys, file: VolumeConfigFile): Buffer {
  const name = Buffer.from(file.fileName, 'utf8');
  const len = Buffer.allocUnsafe(2);
  len.writeUInt16BE(name.length, 0);
  return keyedHash(keys.config, Buffer.from(VOLUME_MAC_LABEL, 'ascii'), len, name, file.data);
}

/** Stores the volume config and its MAC (replacing an older one, e.g. after a password change). */
export async function putVolumeConfig(backend: Backend, keys: RemoteKeys, file: VolumeConfigFile): Promise<void> {
  const key = `${KEYS_PREFIX}${stem(file.fileName)}`;
  const mac = volumeMac(keys, file);
  // Both at once: a reader checks the one against the other either way (and a push writes them before the ref).
  await Promise.all([backend.put(key, file.data, file.data.length), backend.put(`${key}.mac`, mac, mac.length)]);
}

/**
 * The volume config stored on the remote, or null when there is none. `candidates` are the file names the
 * caller knows (".encfs6.xml", ".dvfs-native.json"); the first one present is returned, unverified.
 */
export async function getVolumeConfig(backend: Backend, candidates: readonly string[]): Promise<VolumeConfigFile | null> {
  for (const fileName of candidates) {
    try {
      return { fileName, data: await backend.get(`${KEYS_PREFIX}${stem(fileName)}`) };
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }
  return null;
}

/** Checks a volume config read from the remote against keys derived from it (RemoteIntegrityError if altered). */
export async function verifyVolumeConfig(backend: Backend, keys: RemoteKeys, file: VolumeConfigFile): Promise<void> {
  const key = `${KEYS_PREFIX}${stem(file.fileName)}.mac`;
  let mac: Buffer;
  try {
    mac = await backend.get(key);
  } catch (e) {
    if (isNotFound(e)) throw new RemoteIntegrityError(backend.location, key, 'volume config MAC is missing');
    throw e;
  }
  if (mac.length !== 32 || !sodium.sodium_memcmp(mac, volumeMac(keys, file))) {
    throw new RemoteIntegrityError(backend.location, key, 'volume config does not match its MAC (altered, or from another repository)');
  }
}
