// dvfs key rotate --reencrypt through the real CLI, in both EncFS presets: killed half-way and run again
// (resumable), it leaves no object and no working-tree name that the old volume key decodes, every snapshot
// still verifies and restores, members keep access through the new epoch, and stock encfs opens the new
// tree with the password.
import t from 'tap';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EncfsVolume } from '../../daemon/encfs/volume.js';
import { EncfsTree } from '../../daemon/encfs/tree.js';
import { ObjectStore } from '../../daemon/store/objects.js';
import { deriveRepoKeys } from '../../daemon/store/keys.js';
import { readObject } from '../../daemon/versioning/working-files.js';
import { encfsAvailable, withStockMount } from '../helpers/stock-encfs.js';
import { fuseAvailable } from '../helpers/mount.js';
import { fails, keyWorkspace, ok } from './keys-helpers.js';

const PASSWORD = 'the repository password';

for (const preset of ['standard', 'paranoia'] as const) {
  t.test(`${preset}: rotate --reencrypt`, async (t) => {
    const ws = await keyWorkspace(t, `reenc-${preset}`);
    const repo = join(ws.dir, 'repo');
    const src = join(ws.dir, 'src');
    ok(t, ws.withPassword(['init', repo, '--mode', 'encfs', '--preset', preset, '--kdf-iterations', '1000']), 'init');
    await mkdir(join(src, 'results/run-1'), { recursive: true });
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 6; i++) files.set(`results/run-1/part-${i}.dat`, Buffer.from(`part ${i} `.repeat(2000 + i * 500)));
    files.set('README', Buffer.from('top level\n'));
    for (const [p, d] of files) await writeFile(join(src, p), d);
    ok(t, ws.withPassword(['put', repo, src, '/']), 'put');
    ok(t, ws.withPassword(['commit', repo, '-m', 'one']), 'commit one');
    await writeFile(join(src, 'later.txt'), 'second snapshot\n');
    ok(t, ws.withPassword(['put', repo, join(src, 'later.txt'), '/later.txt']), 'put later');
    ok(t, ws.withPassword(['commit', repo, '-m', 'two']), 'commit two');
    const aliceId = join(ws.dir, 'alice.id');
    const pub = ok(t, ws.as(aliceId, ['key', 'gen', '--out', aliceId, '--name', 'alice']), 'gen').out.trim();
    ok(t, ws.withPassword(['key', 'add', repo, pub]), 'add alice');

    // The old volume, kept aside to try its key afterwards.
    const oldDir = join(ws.dir, 'old-volume');
    await mkdir(oldDir);
    await copyFile(join(repo, 'tree/.encfs6.xml'), join(oldDir, '.encfs6.xml'));

    const killed = ws.withPassword(['key', 'rotate', repo, '--reencrypt'], { DVFS_FAILPOINT: 'reencrypt-objects' });
    t.not(killed.status, 0, 'the first run is killed half-way through the objects');
    const again = JSON.parse(ok(t, ws.withPassword(['key', 'rotate', repo, '--reencrypt', '--json']), 'the second run finishes').out) as { epoch: number; objects: number; resumedObjects: number; files: number };
    t.equal(again.epoch, 1, 'a new epoch');
    t.ok(again.resumedObjects >= 2, `objects done before the kill are not redone (${again.resumedObjects})`);
    t.equal(again.files, files.size + 1, 'every working file re-encrypted');
    fails(t, ws.withPassword(['key', 'rotate', repo, '--reencrypt'], { DVFS_PASSWORD_FILE: '', DVFS_IDENTITY: aliceId }), /needs the repository password/, '--reencrypt with an identity only');

    // Nothing in the repository decodes under the old key.
    const old = await EncfsVolume.open(oldDir, Buffer.from(PASSWORD));
    const oldTree = new EncfsTree(old, () => undefined);
    const oldKeys = deriveRepoKeys(oldTree.snapshotSecret());
    const store = new ObjectStore(repo);
    let objects = 0;
    let decodable = 0;
    for await (const id of store.ids()) {
      objects++;
      const got = await readObject({ tree: oldTree, objects: store, keys: oldKeys }, id).catch(() => null);
      if (got?.id === id) decodable++;
    }
    t.equal(objects, files.size + 1, 'every object is still stored');
    t.equal(decodable, 0, 'no object decodes to its content with the old key');
    const listed = await (await EncfsVolume.open(join(repo, 'tree'), Buffer.from(PASSWORD))).list('');
    t.ok(listed.entries.length > 0, 'the new tree lists with the password');
    const oldView = await EncfsVolume.openWithKey(join(repo, 'tree'), Buffer.concat([old.cipher.key, old.cipher.iv])).then((v) => v.list('').catch(() => ({ entries: [], undecodable: ['(error)'] })));
    t.same(oldView.entries.map((e) => e.name).filter((n) => n === 'src' || n === 'later.txt'), [], 'no working-tree name decodes with the old key');

    // History and access survive.
    ok(t, ws.withPassword(['verify', repo, '--full']), 'every snapshot verifies');
    const out = join(ws.dir, 'restored');
    ok(t, ws.as(aliceId, ['restore', repo, 'HEAD~1', '--to', out]), 'alice restores the older snapshot with her identity');
    for (const [p, d] of files) if (!(await readFile(join(out, 'src', p))).equals(d)) t.fail(`${p} differs after restore`);
    t.equal(ok(t, ws.as(aliceId, ['cat', repo, '/later.txt']), 'alice reads').out, 'second snapshot\n');
    t.same(JSON.parse(ok(t, ws.withPassword(['commit', repo, '--json']), 'commit').out).nothingToCommit, true, 'the re-encrypted tree is HEAD (nothing to commit)');

    const encfs = encfsAvailable() ?? fuseAvailable();
    await t.test('stock encfs reads the re-encrypted tree with the password', { skip: encfs === null ? false : `stock encfs unavailable: ${encfs}` }, async (t) => {
      const data = await withStockMount(join(repo, 'tree'), join(ws.dir, 'stock'), PASSWORD, (dir) => readFile(join(dir, 'src/results/run-1/part-3.dat')));
      t.ok(data.equals(files.get('results/run-1/part-3.dat') ?? Buffer.alloc(0)), 'identical bytes');
    });
  });
}
