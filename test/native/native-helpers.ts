// Shared setup for the dvfs-native tests: throwaway volumes with the cheapest Argon2id parameters.
import type { Test } from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sodium from 'sodium-native';
import { createNativeVolume, type NativeTree } from '../../daemon/native/tree.js';
import { errorOf } from '../helpers/errors.js';
export { errorOf };

export const PASSWORD = Buffer.from('native-test-password');
export const CHEAP = { opslimit: sodium.crypto_pwhash_OPSLIMIT_MIN, memlimit: sodium.crypto_pwhash_MEMLIMIT_MIN };

export async function tempDir(t: Test, prefix = 'dvfs-native-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export async function newVolume(t: Test, chunkSize?: number): Promise<NativeTree> {
  const root = join(await tempDir(t), 'vol');
  const tree = await createNativeVolume(root, PASSWORD, { ...CHEAP, ...(chunkSize === undefined ? {} : { chunkSize }) });
  t.teardown(() => tree.dispose());
  return tree;
}

