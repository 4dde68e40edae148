/**
 * What unlocking costs, in-process (no Node start-up): opening a repository's tree and store keys with
 * the password (PBKDF2 at the repository's iteration count), with an identity (slot opened, keyring
 * signatures checked, HEAD opened), with a passphrase-protected identity (plus Argon2id), and with the
 * password once the keyring has a later epoch (plus Argon2id for the root key pair). Argon2id runs at the
 * default (interactive) cost unless DVFS_KEY_KDF says otherwise.
 *
 *   node dist/bench/unlock.js [--iterations N] [--runs N] [--json]
 *
 * Prints the median milliseconds of --runs runs per way. Everything happens in a temporary directory.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { addMember, openKeyAdmin, rotateEpoch } from '../daemon/keys/admin.js';
import { Identity } from '../daemon/keys/identity.js';
import { loadIdentity, writeIdentityFile } from '../daemon/keys/identity-file.js';
import type { Credential } from '../daemon/keys/unlock.js';
import { silentLogger } from '../daemon/log.js';
import { openTree } from '../daemon/repo/open-tree.js';
import { initRepository } from '../daemon/repo/repository.js';
import { openVersioning } from '../daemon/versioning/context.js';

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '100000' }, runs: { type: 'string', default: '5' }, json: { type: 'boolean', default: false } } });
const runs = Number(values.runs);
const password = Buffer.from('bench password');
const passphrase = Buffer.from('bench passphrase');

async function median(what: () => Promise<void>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await what();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? NaN;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-bench-unlock-'));
  try {
    const repo = await initRepository(join(dir, 'repo'), password, { mode: 'encfs', preset: 'standard', kdfIterations: Number(values.iterations) });
    const plainId = join(dir, 'plain.id');
    const protectedId = join(dir, 'protected.id');
    for (const [path, pass] of [[plainId, undefined], [protectedId, passphrase]] as const) {
      const id = Identity.generate();
      await writeIdentityFile(path, id, 'bench', pass ? { passphrase: pass } : {});
      const admin = await openKeyAdmin(repo, { kind: 'password', password: Buffer.from(password) }, silentLogger());
      await addMember(admin, path === plainId ? 'plain' : 'protected', id.publicKey);
      admin.close();
      id.destroy();
    }
    const unlock = async (credential: () => Promise<Credential>): Promise<void> => {
      const tree = await openTree(repo, await credential(), silentLogger());
      openVersioning(repo, tree).close();
      tree.dispose?.();
    };
    const identity = (path: string, pass: Buffer | null) => async (): Promise<Credential> => ({ kind: 'identity', name: 'bench', identity: (await loadIdentity(path, async () => pass)).identity });
    const byPassword = async (): Promise<Credential> => ({ kind: 'password', password: Buffer.from(password) });
    const result: Record<string, number> = {};
    result['password (epoch 0)'] = await median(() => unlock(byPassword));
    result['identity'] = await median(() => unlock(identity(plainId, null)));
    result['passphrase-protected identity'] = await median(() => unlock(identity(protectedId, passphrase)));
    const admin = await openKeyAdmin(repo, { kind: 'password', password: Buffer.from(password) }, silentLogger());
    await rotateEpoch(admin);
    admin.close();
    result['password (epoch 1: + root key pair)'] = await median(() => unlock(byPassword));
    result['identity (epoch 1)'] = await median(() => unlock(identity(plainId, null)));
    if (values.json) process.stdout.write(JSON.stringify({ pbkdf2Iterations: Number(values.iterations), runs, ms: result }, null, 2) + '\n');
    else for (const [k, v] of Object.entries(result)) process.stdout.write(`${k.padEnd(40)} ${v.toFixed(1)} ms\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
