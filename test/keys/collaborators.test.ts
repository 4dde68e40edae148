// The collaborators scenario of issue 6 through the real CLI, on a local (file://) remote and on a real
// OpenStack Swift: Alice (password holder) creates a repository and adds Bob by his public key; Bob clones
// and reads with his identity alone; Alice removes Bob and rotates the keys, commits and pushes; Bob's copy
// of the old keys opens neither the new snapshot nor anything pushed after the rotation, and his pull is
// refused with an error naming his fingerprint and who can add him; Alice (identity or password) reads
// both epochs. Secrets never reach a file other than the 0600 identity files.
import t, { type Test } from 'tap';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { cp, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startSwift, swiftAvailable } from '../helpers/swift.js';
import { fails, filesBelow, filesHolding, identitySeed, keyWorkspace, ok, type KeyWorkspace } from './keys-helpers.js';
import { openBackend } from '../../daemon/remote/open-backend.js';
import { RemoteRepository } from '../../daemon/remote/repository.js';
import { locateRepository } from '../../daemon/repo/repository.js';
import { openTree } from '../../daemon/repo/open-tree.js';
import { silentLogger } from '../../daemon/log.js';
import { loadIdentity } from '../../daemon/keys/identity-file.js';
import { epochKeysOf } from '../../daemon/keys/epoch-keys.js';
import { deriveEpochRepoKeys } from '../../daemon/store/keys.js';
import { EncfsTree } from '../../daemon/encfs/tree.js';
import type { CryptoTree } from '../../daemon/vfs/crypto-tree.js';

interface ListJson {
  epoch: number;
  members: { name: string; fingerprint: string; addedBy: string; epochs: number[] }[];
}

async function scenario(t: Test, ws: KeyWorkspace, url: string, env: NodeJS.ProcessEnv): Promise<void> {
  const { dir } = ws;
  const repo = join(dir, 'alice-repo');
  const aliceId = join(dir, 'alice.id');
  const bobId = join(dir, 'bob.id');
  const bobPass = join(dir, 'bob.pass');
  await writeFile(bobPass, 'bob passphrase\n', { mode: 0o600 });
  const bobEnv = { ...env, DVFS_IDENTITY_PASSPHRASE_FILE: bobPass };
  const alicePub = ok(t, ws.as(aliceId, ['key', 'gen', '--out', aliceId, '--name', 'alice']), 'alice: key gen').out.trim();
  const bobGen = JSON.parse(ok(t, ws.as(bobId, ['key', 'gen', '--out', bobId, '--name', 'bob', '--password-file', bobPass, '--json']), 'bob: key gen with a passphrase').out) as { public: string; fingerprint: string; protected: boolean };
  t.ok(bobGen.protected, "bob's identity is passphrase-protected");
  t.match(alicePub, /^dvfs-key1 [A-Za-z0-9_-]{86} alice$/, 'a public key is one copy-pasteable line');
  for (const f of [aliceId, bobId]) t.equal((await stat(f)).mode & 0o777, 0o600, `${f} is 0600`);
  t.match(ok(t, ws.as(bobId, ['key', 'show']), 'key show').out.trim(), bobGen.public, 'key show prints the same public line');

  ok(t, ws.withPassword(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'alice: init');
  await writeFile(join(dir, 'v1.txt'), 'first version, readable by bob\n');
  ok(t, ws.withPassword(['put', repo, join(dir, 'v1.txt'), '/v1.txt']), 'put');
  ok(t, ws.withPassword(['commit', repo, '-m', 'one']), 'commit');
  await writeFile(join(dir, 'alice.pub'), alicePub + '\n');
  ok(t, ws.withPassword(['key', 'add', repo, join(dir, 'alice.pub')]), 'the password holder adds alice (name from the key line)');
  ok(t, ws.as(aliceId, ['key', 'add', repo, '--name', 'bob', bobGen.public]), 'alice adds bob with her identity');
  const list = JSON.parse(ok(t, ws.as(aliceId, ['key', 'list', repo, '--json']), 'key list').out) as ListJson;
  t.same(list.members.map((m) => [m.name, m.epochs]), [['alice', [0]], ['bob', [0]]], 'two members, epoch 0');
  t.match(list.members[1]?.addedBy, /^alice \(/, 'bob was added by alice');
  t.equal(list.members[1]?.fingerprint, bobGen.fingerprint, 'with his fingerprint');

  ok(t, ws.as(aliceId, ['remote', 'add', repo, 'origin', url]), 'remote add');
  ok(t, ws.as(aliceId, ['push', repo], env), 'alice pushes with her identity');
  const bobRepo = join(dir, 'bob-clone');
  ok(t, ws.as(bobId, ['clone', url, bobRepo], bobEnv), 'bob clones with his identity alone');
  t.equal(ok(t, ws.as(bobId, ['cat', bobRepo, '/v1.txt'], bobEnv), 'bob reads').out, 'first version, readable by bob\n', 'bob reads what alice wrote');
  const oldKeyring = await readFile(join(bobRepo, '.dvfs/keys/keyring.json'));

  const removed = ok(t, ws.as(aliceId, ['key', 'remove', repo, 'bob']), 'alice removes bob');
  t.match(removed.stderr, /key rotate/, 'and is told to rotate');
  const rotated = JSON.parse(ok(t, ws.as(aliceId, ['key', 'rotate', repo, '--json']), 'alice rotates').out) as { epoch: number; members: string[] };
  t.same(rotated, { epoch: 1, members: ['alice'] }, 'epoch 1 is sealed to alice (and the password), not to bob');
  await writeFile(join(dir, 'v2.txt'), 'second version, after bob left\n');
  ok(t, ws.as(aliceId, ['put', repo, join(dir, 'v2.txt'), '/v2.txt']), 'alice puts new data');
  const c2 = JSON.parse(ok(t, ws.as(aliceId, ['commit', repo, '-m', 'two', '--json']), 'alice commits').out) as { snapshot: string };
  ok(t, ws.as(aliceId, ['push', repo], env), 'alice pushes after the rotation');

  // Bob's copy of the old keys does not open the new snapshot, even with its manifest in hand.
  await cp(join(repo, '.dvfs/manifests'), join(bobRepo, '.dvfs/manifests'), { recursive: true, force: false, errorOnExist: false });
  fails(t, ws.as(bobId, ['show', bobRepo, c2.snapshot], bobEnv), /key epoch these keys do not hold/, 'bob (old keys) shows the new snapshot');
  // Nor anything pushed after the rotation: the remote's epoch-1 namespace does not open with his keys.
  const bob = await loadIdentity(bobId, async () => Buffer.from('bob passphrase'));
  const bobTree = await openTree(await locateRepository(bobRepo), { kind: 'identity', identity: bob.identity, name: 'bob' }, silentLogger());
  const bobGrant = epochKeysOf(bobTree)?.grant(0);
  t.ok(bobGrant, 'bob holds epoch 0');
  if (bobGrant) {
    const backend = await openBackend(url);
    await t.rejects(RemoteRepository.open(backend, deriveEpochRepoKeys(1, bobGrant.secret, bobGrant.content)), /does not open/, "the remote's epoch-1 data does not open with bob's keys");
    await backend.close();
  }
  bobTree.dispose?.();
  bob.identity.destroy();
  const pulled = fails(t, ws.as(bobId, ['pull', bobRepo], bobEnv), /identity bob \([0-9a-f-]{19}\) has no key slot/, 'bob pulls after being removed');
  t.match(pulled.stderr, /alice \([0-9a-f-]{19}\)/, 'the error names who can add him');
  t.not((await readFile(join(bobRepo, '.dvfs/keys/keyring.json'))).equals(oldKeyring), "bob's clone took the newer keyring");

  // Alice reads both epochs: in her repository, in a fresh clone, with her identity or the password.
  const aliceClone = join(dir, 'alice-clone');
  ok(t, ws.as(aliceId, ['clone', url, aliceClone], env), 'alice clones after the rotation');
  t.equal(ok(t, ws.as(aliceId, ['cat', aliceClone, '/v2.txt']), 'alice reads new data').out, 'second version, after bob left\n');
  const log = JSON.parse(ok(t, ws.as(aliceId, ['log', aliceClone, '--json']), 'alice: log').out) as { snapshots: unknown[] };
  t.equal(log.snapshots.length, 2, 'both snapshots (epoch 1 and epoch 0) are readable');
  ok(t, ws.withPassword(['show', aliceClone, 'HEAD~1']), 'the password holder reads the epoch-0 snapshot');
  ok(t, ws.withPassword(['verify', repo, '--full']), 'the repository verifies across epochs');

  // No secret in any file but the identities.
  const aliceSeed = await identitySeed(aliceId);
  for (const where of [repo, bobRepo, aliceClone, ...(url.startsWith('file://') ? [url.slice('file://'.length)] : [])]) {
    t.same(await filesHolding(where, aliceSeed), [], `alice's secret key is in no file below ${where}`);
  }
  const byPassword: CryptoTree = await openTree(await locateRepository(repo), Buffer.from('the repository password'), silentLogger());
  const volumeKey = byPassword instanceof EncfsTree ? Buffer.from(byPassword.volume.cipher.key) : null;
  byPassword.dispose?.();
  t.ok(volumeKey, 'an EncFS tree');
  if (volumeKey) t.same(await filesHolding(join(repo, '.dvfs'), volumeKey), [], 'the volume key is in no file under .dvfs (slots hold it sealed)');
  const keyring = join(repo, '.dvfs/keys/keyring.json');
  t.equal((await stat(keyring)).mode & 0o777, 0o644, 'the keyring (public keys, sealed slots) is 0644');
  t.ok((await filesBelow(join(repo, '.dvfs'))).length > 0);
}

t.test('alice and bob on a file:// remote', async (t) => {
  const ws = await keyWorkspace(t, 'file');
  await scenario(t, ws, `file://${join(ws.dir, 'remote')}`, {});
});

const swiftReason = swiftAvailable();
t.test('alice and bob on a real OpenStack Swift (S3 API)', { skip: swiftReason === null ? false : `OpenStack Swift unavailable: ${swiftReason}` }, async (t) => {
  const swift = await startSwift(t);
  const bucket = `dvfs-keys-${Date.now().toString(36)}`;
  await swift.client().send(new CreateBucketCommand({ Bucket: bucket }));
  const ws = await keyWorkspace(t, 'swift');
  const env = { AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey };
  Object.assign(process.env, env); // the in-test RemoteRepository check opens the backend in this process
  await scenario(t, ws, `s3://${bucket}/team?endpoint=${encodeURIComponent(swift.endpoint)}&region=${swift.region}`, env);
});
