/**
 * The volume key as `.encfs6.xml` stores it: BE32(MAC_32 of the plain key under the user key) followed by
 * the key material stream-encoded under the user key with that checksum as seed.
 */
import { randomBytes } from 'node:crypto';
import { DvfsError } from '../errors.js';
import type { EncfsCipher } from './cipher.js';

export function wrapVolumeKey(user: EncfsCipher, volumeKeyMaterial: Buffer): Buffer {
  const checksum = user.mac32(volumeKeyMaterial) >>> 0;
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(checksum);
  return Buffer.concat([head, user.streamEncode(volumeKeyMaterial, BigInt(checksum))]);
}

/** Returns the volume key material, or throws E_PASSWORD when the checksum does not match. */
export function unwrapVolumeKey(user: EncfsCipher, encoded: Buffer, configPath?: string): Buffer {
  const { keyLen, ivLen } = user.geometry;
  const where = configPath === undefined ? {} : { path: configPath };
  if (encoded.length !== 4 + keyLen + ivLen) {
    throw new DvfsError('E_CONFIG', `encodedKeyData is ${encoded.length} bytes, expected ${4 + keyLen + ivLen}`, where);
  }
  const checksum = encoded.readUInt32BE(0);
  const material = user.streamDecode(encoded.subarray(4), BigInt(checksum));
  if ((user.mac32(material) >>> 0) !== checksum) {
    throw new DvfsError('E_PASSWORD', 'wrong password (the volume key checksum does not match)', {
      ...where,
      hint: 'check the password file',
    });
  }
  return material;
}

export function newVolumeKeyMaterial(keyLen: number, ivLen: number): Buffer {
  return randomBytes(keyLen + ivLen);
}
