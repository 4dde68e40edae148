// Key slots on a native-mode repository: an identity opens it (the slot carries the master key, checked
// against the config MAC), a rotation and a re-encryption keep every snapshot readable, the password
// change reseals the native config; `dvfs info` reports the slots.
import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fails, keyWorkspace, ok } from './keys-helpers.js';

t.test('native mode: identity, rotate, --reencrypt, passwd', async (t) => {
  const ws = await keyWorkspace(t, 'native');
  const repo = join(ws.dir, 'repo');
  ok(t, ws.withPassword(['init', repo, '--mode', 'native', '--kdf-profile', 'min']), 'init native');
  await writeFile(join(ws.dir, 'a'), 'native one\n');
  ok(t, ws.withPassword(['put', repo, join(ws.dir, 'a'), '/a']), 'put');
  ok(t, ws.withPassword(['commit', repo, '-m', 'one']), 'commit');
  const id = join(ws.dir, 'carol.id');
  const pub = ok(t, ws.as(id, ['key', 'gen', '--out', id, '--name', 'carol']), 'gen').out.trim();
  ok(t, ws.withPassword(['key', 'add', repo, pub]), 'add carol');
  t.equal(ok(t, ws.as(id, ['cat', repo, '/a']), 'carol reads').out, 'native one\n');
  const info = JSON.parse(ok(t, ws.as(id, ['info', repo, '--json', '--identity', id]), 'info').out) as { unlocked: boolean; keySlots: { epoch: number; members: string[] } };
  t.same(info.keySlots, { epoch: 0, members: ['carol'] }, 'info lists the key slots');
  t.ok(info.unlocked, 'info unlocks with the identity');

  ok(t, ws.as(id, ['key', 'rotate', repo]), 'rotate');
  await writeFile(join(ws.dir, 'b'), 'native two\n');
  ok(t, ws.as(id, ['put', repo, join(ws.dir, 'b'), '/b']), 'put after rotate');
  ok(t, ws.as(id, ['commit', repo, '-m', 'two']), 'commit under epoch 1');
  const r = JSON.parse(ok(t, ws.withPassword(['key', 'rotate', repo, '--reencrypt', '--json']), 'rotate --reencrypt').out) as { epoch: number; objects: number };
  t.same([r.epoch, r.objects], [2, 2], 'epoch 2, both objects re-encrypted');
  ok(t, ws.as(id, ['verify', repo, '--full']), 'verify across three epochs');
  t.equal(ok(t, ws.as(id, ['show', repo, 'HEAD~1', '--json']), 'the epoch-0 snapshot').status, 0);
  const newPw = join(ws.dir, 'new-pw');
  await writeFile(newPw, 'new native password\n', { mode: 0o600 });
  ok(t, ws.as(id, ['key', 'passwd', repo, '--new-password-file', newPw]), 'passwd with the identity');
  fails(t, ws.withPassword(['cat', repo, '/a']), /wrong password/, 'the old password');
  t.equal(ok(t, ws.withPassword(['cat', repo, '/b'], { DVFS_PASSWORD_FILE: newPw }), 'the new password').out, 'native two\n');
});
