// Key slots that must be refused, through the real CLI: a tampered slot, a slot signed by someone who is
// not a member, an identity without a slot, a wrong passphrase, an identity file others can read, a
// damaged public key; and the error names the file and the fix.
import t from 'tap';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Identity } from '../../daemon/keys/identity.js';
import { parseKeyring, serializeKeyring, signSlot } from '../../daemon/keys/keyring.js';
import { fails, keyWorkspace, ok } from './keys-helpers.js';

t.test('refused slots, identities and keys', async (t) => {
  const ws = await keyWorkspace(t, 'errors');
  const repo = join(ws.dir, 'repo');
  const aliceId = join(ws.dir, 'alice.id');
  const carolId = join(ws.dir, 'carol.id');
  ok(t, ws.withPassword(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  await writeFile(join(ws.dir, 'f'), 'some data\n');
  ok(t, ws.withPassword(['put', repo, join(ws.dir, 'f'), '/f']), 'put');
  const alicePub = ok(t, ws.as(aliceId, ['key', 'gen', '--out', aliceId, '--name', 'alice']), 'gen alice').out.trim();
  const carolPub = ok(t, ws.as(carolId, ['key', 'gen', '--out', carolId, '--name', 'carol']), 'gen carol').out.trim();

  fails(t, ws.as(aliceId, ['cat', repo, '/f']), /has no key slots, so identity alice/, 'an identity before any slot exists');
  fails(t, ws.as(aliceId, ['key', 'add', repo, '--name', 'carol', carolPub]), /no key slots/, 'a non-member adding a slot before any exists');
  ok(t, ws.withPassword(['key', 'add', repo, alicePub]), 'the password holder adds alice');
  t.equal(ok(t, ws.as(aliceId, ['cat', repo, '/f']), 'alice reads').out, 'some data\n');
  const carol = fails(t, ws.as(carolId, ['cat', repo, '/f']), /identity carol \([0-9a-f-]{19}\) has no key slot/, 'carol, who has no slot');
  t.match(carol.stderr, /alice \([0-9a-f-]{19}\)/, 'the error names who can add her');
  fails(t, ws.as(carolId, ['key', 'add', repo, '--name', 'carol', carolPub]), /no key slot/, 'carol adding herself');
  fails(t, ws.as(aliceId, ['key', 'add', repo, '--name', 'carol', 'dvfs-key1 AAAA carol']), /damaged|not a dvfs public key/, 'a damaged public key');
  fails(t, ws.as(aliceId, ['key', 'remove', repo, 'nobody']), /no member named nobody/, 'removing an unknown member');
  fails(t, ws.withPassword(['key', 'remove', repo, '(password)']), /cannot be removed/, 'removing the password slot');

  const keyringPath = join(repo, '.dvfs/keys/keyring.json');
  const good = await readFile(keyringPath);

  // A slot signed by someone who is not a member (here: mallory, whose own key has no slot).
  const mallory = Identity.generate();
  const k = parseKeyring(good, keyringPath);
  k.slots.push(signSlot(k, mallory, { epoch: 0, name: 'mallory', public: mallory.publicKey, addedAt: new Date().toISOString(), sealed: mallory.publicKey.seal(Buffer.alloc(80, 1)) }));
  await writeFile(keyringPath, serializeKeyring(k));
  fails(t, ws.as(aliceId, ['key', 'list', repo]), /signed by [0-9a-f-]{19}, who is not a member: refused/, 'a slot signed by a non-member (key list)');
  fails(t, ws.as(aliceId, ['cat', repo, '/f']), /who is not a member/, 'a slot signed by a non-member (unlocking)');
  mallory.destroy();

  // A tampered slot: alice's slot renamed by someone editing the file.
  const doc = JSON.parse(good.toString('utf8')) as { slots: { name: string; sealed: string }[] };
  const slot = doc.slots.find((s) => s.name === 'alice');
  if (slot) slot.name = 'alice2';
  await writeFile(keyringPath, JSON.stringify(doc, null, 2));
  const tampered = fails(t, ws.as(aliceId, ['cat', repo, '/f']), /does not match its signature: tampered slot refused/, 'a renamed slot');
  t.match(tampered.stderr, /keyring\.json/, 'naming the keyring file');
  // Its sealed key swapped for another byte string (the signature covers it too).
  const doc2 = JSON.parse(good.toString('utf8')) as { slots: { name: string; sealed: string }[] };
  const s2 = doc2.slots.find((s) => s.name === 'alice');
  if (s2) s2.sealed = Buffer.from(s2.sealed, 'base64url').fill(7, 40, 41).toString('base64url');
  await writeFile(keyringPath, JSON.stringify(doc2, null, 2));
  fails(t, ws.as(aliceId, ['key', 'list', repo]), /tampered slot refused/, 'a slot whose sealed key was changed');
  await writeFile(keyringPath, good);
  ok(t, ws.as(aliceId, ['cat', repo, '/f']), 'the restored keyring works again');

  // Identity files.
  const protectedId = join(ws.dir, 'dave.id');
  const pass = join(ws.dir, 'dave.pass');
  const wrong = join(ws.dir, 'wrong.pass');
  await writeFile(pass, 'right\n', { mode: 0o600 });
  await writeFile(wrong, 'wrong\n', { mode: 0o600 });
  ok(t, ws.as(protectedId, ['key', 'gen', '--out', protectedId, '--name', 'dave', '--password-file', pass]), 'gen dave (protected)');
  fails(t, ws.as(protectedId, ['cat', repo, '/f']), /protected by a passphrase and none was given/, 'a protected identity without its passphrase');
  fails(t, ws.as(protectedId, ['cat', repo, '/f'], { DVFS_IDENTITY_PASSPHRASE_FILE: wrong }), /wrong passphrase for this identity/, 'a wrong passphrase');
  fails(t, ws.as(aliceId, ['key', 'gen', '--out', aliceId]), /already exists/, 'key gen over an existing identity');
  await chmod(aliceId, 0o644);
  fails(t, ws.as(aliceId, ['cat', repo, '/f']), /readable by others.*chmod 600/, 'an identity file others can read');
  await chmod(aliceId, 0o600);
  fails(t, dvfsNoCredentials(ws), /no password given, and no identity/, 'neither a password nor an identity');
});

function dvfsNoCredentials(ws: Awaited<ReturnType<typeof keyWorkspace>>): ReturnType<typeof ws.as> {
  return ws.as('', ['cat', join(ws.dir, 'repo'), '/f']);
}
