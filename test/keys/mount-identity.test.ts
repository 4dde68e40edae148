// Mounting with an identity alone (real FUSE mount, the detached daemon): the identity reaches the daemon
// over its stdin pipe, never argv or environment, and no secret reaches its log; a commit through the
// mount and after a key rotation works with the identity; `dvfs key passwd` changes the password slot and
// the real stock `encfs` opens the tree with the new password.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fuseAvailable, initRepo, mountDvfs, workspace } from '../helpers/mount.js';
import { encfsAvailable, withStockMount } from '../helpers/stock-encfs.js';
import { fails, FAST_KDF, filesHolding, identitySeed, ok } from './keys-helpers.js';

const fuse = fuseAvailable();
t.test('mount with an identity alone, commit, rotate, change the password', { skip: fuse === null ? false : `FUSE unavailable: ${fuse}` }, async (t) => {
  const ws = workspace(t, 'keys-mount');
  const repo = initRepo(ws, 'repo');
  const id = join(ws.dir, 'alice.id');
  const idEnv = { ...FAST_KDF, DVFS_PASSWORD_FILE: '', DVFS_IDENTITY: id, XDG_CONFIG_HOME: join(ws.dir, 'config') };
  const pwEnv = { ...FAST_KDF, XDG_CONFIG_HOME: join(ws.dir, 'config') };
  const pub = ok(t, ws.cli(['key', 'gen', '--out', id, '--name', 'alice'], idEnv), 'key gen').out.trim();
  await writeFile(join(ws.dir, 'before.txt'), 'put before the mount\n');
  ok(t, ws.cli(['put', repo, join(ws.dir, 'before.txt'), '/before.txt'], pwEnv), 'put with the password');
  ok(t, ws.cli(['key', 'add', repo, pub], pwEnv), 'the password holder adds alice');

  const mnt = join(ws.dir, 'mnt');
  const m = mountDvfs(ws, repo, mnt, { env: idEnv });
  t.equal(await readFile(join(mnt, 'before.txt'), 'utf8'), 'put before the mount\n', 'the identity-only mount reads');
  await writeFile(join(mnt, 'through-mount.txt'), 'written through the mount\n');
  const seed = await identitySeed(id);
  const forms = [seed.toString('base64'), seed.toString('hex'), seed.toString('base64url')];
  const cmdline = await readFile(`/proc/${m.pid}/cmdline`, 'utf8');
  const environ = await readFile(`/proc/${m.pid}/environ`, 'utf8');
  t.notOk(forms.some((f) => cmdline.includes(f)), "the identity's secret is not in the daemon's argv");
  t.notOk(forms.some((f) => environ.includes(f)), "nor in the daemon's environment");
  ok(t, ws.cli(['commit', repo, '-m', 'through the mount'], idEnv), 'commit while mounted, as alice');
  await m.umount();
  t.same(await filesHolding(join(repo, '.dvfs'), seed), [], 'no file under .dvfs (run directory and logs included) holds the secret');
  t.equal(ok(t, ws.cli(['cat', repo, '/through-mount.txt'], idEnv), 'cat').out, 'written through the mount\n');

  // A rotation, then the same through a new mount: journal paths and snapshots under epoch 1.
  ok(t, ws.cli(['key', 'rotate', repo], idEnv), 'rotate');
  const m2 = mountDvfs(ws, repo, mnt, { env: idEnv });
  await writeFile(join(mnt, 'after-rotate.txt'), 'epoch one\n');
  await m2.umount();
  ok(t, ws.cli(['commit', repo, '-m', 'after rotate'], pwEnv), 'the password holder commits the session after the rotation');
  const log = JSON.parse(ok(t, ws.cli(['log', repo, '--json'], idEnv), 'log').out) as { snapshots: { message: string }[] };
  t.same(log.snapshots.map((s) => s.message), ['after rotate', 'through the mount', ...log.snapshots.slice(2).map((s) => s.message)], 'history spans both epochs');
  ok(t, ws.cli(['verify', repo, '--full'], idEnv), 'verify --full across epochs');

  // key passwd: the password slot changes; the identity and the root chain keep working.
  const newPw = join(ws.dir, 'new-password');
  await writeFile(newPw, 'a brand new password\n', { mode: 0o600 });
  ok(t, ws.cli(['key', 'passwd', repo, '--new-password-file', newPw], idEnv), 'alice changes the password with her identity');
  fails(t, ws.cli(['cat', repo, '/before.txt'], pwEnv), /wrong password/, 'the old password');
  const newEnv = { ...pwEnv, DVFS_PASSWORD_FILE: newPw };
  t.equal(ok(t, ws.cli(['cat', repo, '/after-rotate.txt'], newEnv), 'the new password reads epoch-1 data').out, 'epoch one\n');
  const bobId = join(ws.dir, 'bob.id');
  const bobPub = ok(t, ws.cli(['key', 'gen', '--out', bobId, '--name', 'bob'], idEnv), 'gen bob').out.trim();
  ok(t, ws.cli(['key', 'add', repo, bobPub], newEnv), 'the new password signs new slots');
  t.equal(ok(t, ws.cli(['cat', repo, '/before.txt'], { ...idEnv, DVFS_IDENTITY: bobId }), 'bob reads').out, 'put before the mount\n');
  ok(t, ws.cli(['key', 'list', repo], idEnv), 'the keyring verifies after the password change');

  const encfs = encfsAvailable();
  await t.test('stock encfs opens the tree with the new password', { skip: encfs === null ? false : `stock encfs unavailable: ${encfs}` }, async (t) => {
    const stockMnt = join(ws.dir, 'stock');
    const plain = await withStockMount(join(repo, 'tree'), stockMnt, 'a brand new password', (dir) => readFile(join(dir, 'before.txt'), 'utf8'));
    t.equal(plain, 'put before the mount\n', 'stock encfs reads what dvfs wrote');
  });
});
