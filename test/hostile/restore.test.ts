// Hostile manifests (sealed with the real keys, as a collaborator could) against restore, clone and pull:
// names the schema must refuse at decode time, and valid trees that try to write through a symlink out of
// the target (the classic "symlink first, then a directory of the same name" attack), or lie about sizes.
import t, { type Test } from 'tap';
import { lstat, mkdir, readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ManifestIntegrityError, makeTree } from '../../daemon/store/manifests.js';
import { readHead, writeHead } from '../../daemon/store/refs.js';
import type { ObjectId } from '../../daemon/store/content-hash.js';
import type { FileEntry } from '../../daemon/store/manifest-schema.js';
import type { Versioning } from '../../daemon/versioning/context.js';
import { fuseAvailable, isMounted } from '../helpers/mount.js';
import { existsSync } from 'node:fs';
import { ok, openRepo, sealRaw, snapshotOf, workspace, type Workspace } from './hostile-helpers.js';

const CONTENT = 'the only honest file\n';

interface Fixture {
  ws: Workspace;
  repo: string;
  outside: string;
  v: Versioning;
  file: FileEntry;
  head: ObjectId;
}

async function fixture(t: Test): Promise<Fixture> {
  const ws = await workspace(t);
  const repo = join(ws.dir, 'repo');
  const outside = join(ws.dir, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'victim'), 'must stay\n');
  ok(t, ws.run(['init', repo, '--mode', 'native', '--kdf-profile', 'min']), 'init');
  await writeFile(join(ws.dir, 'f'), CONTENT);
  ok(t, ws.run(['put', repo, join(ws.dir, 'f'), '/f.txt']), 'put');
  ok(t, ws.run(['commit', repo, '-m', 'honest']), 'commit');
  const head = await readHead(repo);
  if (head === null) throw new Error('no HEAD after commit');
  const v = await openRepo(t, repo);
  const root = await v.manifests.getTree((await v.manifests.getSnapshot(head)).tree);
  const file = root.entries.find((e): e is FileEntry => e.type === 'file');
  if (!file) throw new Error('no file in the honest snapshot');
  return { ws, repo, outside, v, file, head };
}

async function outsideUntouched(t: Test, f: Fixture, what: string): Promise<void> {
  t.same((await readdir(f.outside)).sort(), ['victim'], `${what}: nothing created outside the target`);
  t.equal(await readFile(join(f.outside, 'victim'), 'utf8'), 'must stay\n', `${what}: the file outside is unchanged`);
}

/** Snapshot 1: `a` is a symlink to the outside directory. Snapshot 2 (child of 1): `a` is a directory with a file and a subdirectory. */
async function symlinkThenDir(f: Fixture): Promise<{ s1: ObjectId; s2: ObjectId }> {
  const m = f.v.manifests;
  const link = makeTree([{ type: 'symlink', name: 'a', mode: 0o777, mtimeMs: 0, target: f.outside }, { type: 'symlink', name: 'up', mode: 0o777, mtimeMs: 0, target: '../../../../../../etc' }]);
  const s1 = await m.putSnapshot(snapshotOf(await m.putTree(link), [f.head], 'symlink out'));
  const sub = await m.putTree(makeTree([]));
  const inner = await m.putTree(makeTree([{ ...f.file, name: 'victim' }, { type: 'dir', name: 'sub', mode: 0o755, mtimeMs: 0, tree: sub }]));
  const dir = makeTree([{ type: 'dir', name: 'a', mode: 0o755, mtimeMs: 0, tree: inner }]);
  const s2 = await m.putSnapshot(snapshotOf(await m.putTree(dir), [s1], 'directory through it'));
  return { s1, s2 };
}

t.test('names the schema refuses are refused at decode time, sealed with the real key', async (t) => {
  const f = await fixture(t);
  const obj = f.file.object;
  const fileJson = (name: string): string => `{"mode":420,"mtimeMs":0,"name":${JSON.stringify(name)},"object":"${obj}","size":${CONTENT.length},"type":"file"}`;
  const cases: [string, string[]][] = [
    ['dot-dot', ['..']],
    ['dot', ['.']],
    ['absolute', ['/etc/passwd']],
    ['slash inside', ['a/../../x']],
    ['NUL', ['a\u0000b']],
    ['empty', ['']],
    ['duplicate', ['x', 'x']],
    ['unsorted', ['y', 'x']],
    ['too long', ['n'.repeat(256)]],
  ];
  for (const [label, names] of cases) {
    const treeId = await sealRaw(f.v, 'tree', `{"entries":[${names.map(fileJson).join(',')}],"kind":"tree","v":1}`);
    await t.rejects(f.v.manifests.getTree(treeId), ManifestIntegrityError, `${label}: getTree refuses it`);
    const snap = await f.v.manifests.putSnapshot(snapshotOf(treeId, [f.head], label));
    const target = join(f.ws.dir, `to-${label.replace(/\W/g, '_')}`);
    const r = f.ws.run(['restore', f.repo, snap, '--to', target]);
    t.not(r.status, 0, `${label}: restore --to fails`);
    t.match(r.stderr, /manifest|tampered|damaged/i, `${label}: and says the manifest is bad`);
    await outsideUntouched(t, f, label);
  }
  const huge = await sealRaw(f.v, 'tree', `{"entries":[{"mode":420,"mtimeMs":0,"name":"h","object":"${obj}","size":9007199254740993,"type":"file"}],"kind":"tree","v":1}`);
  await t.rejects(f.v.manifests.getTree(huge), ManifestIntegrityError, 'a size beyond 2^53 is refused');
  const negative = await sealRaw(f.v, 'tree', `{"entries":[{"mode":420,"mtimeMs":0,"name":"h","object":"${obj}","size":-1,"type":"file"}],"kind":"tree","v":1}`);
  await t.rejects(f.v.manifests.getTree(negative), ManifestIntegrityError, 'a negative size is refused');
});

t.test('restore --to DIR --force never writes through a symlink an earlier snapshot planted', async (t) => {
  const f = await fixture(t);
  const { s1, s2 } = await symlinkThenDir(f);
  const target = join(f.ws.dir, 'plain');
  ok(t, f.ws.run(['restore', f.repo, s1, '--to', target]), 'restore of the symlinks');
  t.equal(await readlink(join(target, 'a')), f.outside, 'the symlink itself is restored (not followed)');
  const r = f.ws.run(['restore', f.repo, s2, '--to', target, '--force']);
  t.equal(r.status, 0, `restore of the directory over it (${r.stderr.trim()})`);
  t.ok((await lstat(join(target, 'a'))).isDirectory(), 'a is now a real directory in the target');
  t.equal(await readFile(join(target, 'a', 'victim'), 'utf8'), CONTENT, 'with the file inside the target');
  await outsideUntouched(t, f, 'restore --force');

  const target2 = join(f.ws.dir, 'plain2');
  ok(t, f.ws.run(['restore', f.repo, s1, '--to', target2]), 'restore of the symlinks again');
  const noForce = f.ws.run(['restore', f.repo, s2, '--to', target2]);
  t.not(noForce.status, 0, 'without --force the directory over the symlink is refused');
  t.match(noForce.stderr, /exists/, 'because it exists');
  await outsideUntouched(t, f, 'restore without --force');

  const target3 = join(f.ws.dir, 'plain3');
  ok(t, f.ws.run(['restore', f.repo, s1, '--to', target3]), 'restore of the symlinks, third');
  ok(t, f.ws.run(['restore', f.repo, s2, 'a/victim', '--to', target3, '--force']), 'restore of one path below the symlink');
  t.ok((await lstat(join(target3, 'a'))).isDirectory(), 'its parent became a real directory');
  await outsideUntouched(t, f, 'restore of one path');
});

t.test('working-tree restore, clone and pull never follow a planted symlink', async (t) => {
  const f = await fixture(t);
  const { s1, s2 } = await symlinkThenDir(f);
  f.v.close();
  ok(t, f.ws.run(['restore', f.repo, s1, '--force']), 'working-tree restore of the symlinks');
  ok(t, f.ws.run(['restore', f.repo, s2, '--force']), 'working-tree restore of the directory');
  await outsideUntouched(t, f, 'working-tree restore');
  const cat = f.ws.run(['cat', f.repo, '/a/victim']);
  t.equal(cat.status, 0, `cat of the restored file (${cat.stderr.trim()})`);
  t.equal(cat.out, CONTENT, 'the working tree holds the snapshot content');

  const remote = `file://${join(f.ws.dir, 'remote')}`;
  await writeHead(f.repo, s1);
  ok(t, f.ws.run(['push', f.repo, remote]), 'push of the symlink snapshot');
  const cloned = join(f.ws.dir, 'cloned');
  ok(t, f.ws.run(['clone', remote, cloned]), 'clone');
  await outsideUntouched(t, f, 'clone');
  await writeHead(f.repo, s2);
  ok(t, f.ws.run(['push', f.repo, remote]), 'push of the directory snapshot');
  ok(t, f.ws.run(['pull', cloned]), 'pull');
  await outsideUntouched(t, f, 'pull');
  t.equal(f.ws.run(['cat', cloned, '/a/victim']).out, CONTENT, 'the clone holds the pulled content');
});

const unavailable = fuseAvailable();
const skip = unavailable === null ? false : `needs FUSE, unavailable because ${unavailable}`;

t.test('mount --snapshot serves hostile snapshots without writing outside, and refuses malformed ones', { skip }, async (t) => {
  const f = await fixture(t);
  const { s1, s2 } = await symlinkThenDir(f);
  const bad = await f.v.manifests.putSnapshot(snapshotOf(await sealRaw(f.v, 'tree', `{"entries":[{"mode":420,"mtimeMs":0,"name":"../escape","object":"${f.file.object}","size":${CONTENT.length},"type":"file"}],"kind":"tree","v":1}`), [f.head], 'bad'));
  f.v.close();
  const mnt = join(f.ws.dir, 'mnt');
  await mkdir(mnt);
  for (const [label, snap] of [['symlink out', s1], ['directory through it', s2]] as const) {
    ok(t, f.ws.run(['mount', f.repo, mnt, '--snapshot', snap]), `mount --snapshot (${label})`);
    try {
      if (snap === s1) t.equal(await readlink(join(mnt, 'a')), f.outside, 'the symlink is served as a symlink');
      else t.equal(await readFile(join(mnt, 'a', 'victim'), 'utf8'), CONTENT, 'the directory is served with its file');
    } finally {
      ok(t, f.ws.run(['umount', mnt]), `umount (${label})`);
    }
    await outsideUntouched(t, f, `mount --snapshot (${label})`);
  }
  const r = f.ws.run(['mount', f.repo, mnt, '--snapshot', bad]);
  t.not(r.status, 0, `mount --snapshot of a tree with "../escape" fails (${r.stderr.trim().slice(0, 200)})`);
  t.notOk(isMounted(mnt), 'and nothing is mounted');
  t.notOk(existsSync(join(f.ws.dir, 'escape')), 'and nothing escaped');
  await outsideUntouched(t, f, 'mount --snapshot of a malformed tree');
});

t.test('a file entry whose size lies about its object is refused by restore --to', async (t) => {
  const f = await fixture(t);
  const m = f.v.manifests;
  const lying = makeTree([{ ...f.file, name: 'liar', size: 1 << 40 }]);
  const snap = await m.putSnapshot(snapshotOf(await m.putTree(lying), [f.head], 'huge size'));
  const target = join(f.ws.dir, 'sized');
  const r = f.ws.run(['restore', f.repo, snap, '--to', target]);
  t.not(r.status, 0, 'restore fails');
  t.match(r.stderr, /size/, 'naming the size mismatch');
  t.same(await readdir(target).catch(() => []), [], 'and leaves no file behind');
});
