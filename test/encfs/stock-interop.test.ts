// Live interoperability with the real stock `encfs` binary, both presets, both directions:
//  - a volume created and filled by stock encfs is listed and read identically by dvfs, then modified by dvfs
//    (random-access writes into stock-made files, truncation, new files, dirs, symlinks) and read back by encfs;
//  - a volume created and filled by dvfs is mounted by stock encfs, which reads identical bytes and names.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, readlink, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EncfsVolume } from '../../daemon/encfs/volume.js';
import { createStockVolume, encfsAvailable, tmpDir, unmountStock, withStockMount } from '../helpers/stock-encfs.js';
import { rng } from '../helpers/rng.js';

type Tree = Map<string, { type: 'file'; data: Buffer } | { type: 'dir' } | { type: 'symlink'; target: string }>;

const PASSWORD = 'interop password ü';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The file set of the issue: sizes around the block size, big, nested, long and non-ASCII names, links. */
function sampleTree(D: number, seed: number): Tree {
  const r = rng(seed);
  const tree: Tree = new Map();
  const file = (p: string, n: number): void => void tree.set(p, { type: 'file', data: r.bytes(n) });
  file('empty', 0);
  file('one', 1);
  file('block-minus-1', D - 1);
  file('block', D);
  file('block-plus-1', D + 1);
  file('big', (1 << 20) + 7);
  tree.set('nested', { type: 'dir' });
  tree.set('nested/deeper', { type: 'dir' });
  file('nested/deeper/file.txt', 333);
  file('L'.repeat(175), 10);
  file('données-été.txt', 50);
  file('日本語/😀.bin', 70);
  tree.set('日本語', { type: 'dir' });
  tree.set('nested/link-rel', { type: 'symlink', target: 'deeper/file.txt' });
  tree.set('nested/link-up', { type: 'symlink', target: '../one' });
  tree.set('abs-link', { type: 'symlink', target: '/etc/hostname' });
  return tree;
}

async function writeTreePlain(root: string, tree: Tree): Promise<void> {
  const sorted = [...tree.entries()].sort(([a], [b]) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1));
  for (const [p, e] of sorted) {
    const full = join(root, p);
    if (e.type === 'dir') await mkdir(full, { recursive: true });
    else if (e.type === 'file') {
      await mkdir(join(full, '..'), { recursive: true });
      await writeFile(full, e.data);
    } else await symlink(e.target, full);
  }
}

async function writeTreeDvfs(volume: EncfsVolume, tree: Tree): Promise<void> {
  const sorted = [...tree.entries()].sort(([a], [b]) => a.split('/').length - b.split('/').length || (a < b ? -1 : 1));
  for (const [p, e] of sorted) {
    if (e.type === 'dir') await volume.mkdirp(p);
    else if (e.type === 'file') {
      await volume.mkdirp(p.split('/').slice(0, -1).join('/'));
      await volume.writeFile(p, e.data);
    } else await volume.symlink(e.target, p);
  }
}

async function readTreePlain(root: string, dir = ''): Promise<Tree> {
  const out: Tree = new Map();
  for (const name of await readdir(join(root, dir))) {
    const p = dir === '' ? name : `${dir}/${name}`;
    const st = await lstat(join(root, p));
    if (st.isDirectory()) {
      out.set(p, { type: 'dir' });
      for (const [k, v] of await readTreePlain(root, p)) out.set(k, v);
    } else if (st.isSymbolicLink()) out.set(p, { type: 'symlink', target: await readlink(join(root, p)) });
    else out.set(p, { type: 'file', data: await readFile(join(root, p)) });
  }
  return out;
}

async function readTreeDvfs(volume: EncfsVolume, dir = ''): Promise<Tree> {
  const out: Tree = new Map();
  const { entries, undecodable } = await volume.list(dir);
  if (undecodable.length > 0) throw new Error(`undecodable entries in ${dir}: ${JSON.stringify(undecodable)}`);
  for (const e of entries) {
    const p = dir === '' ? e.name : `${dir}/${e.name}`;
    if (e.type === 'dir') {
      out.set(p, { type: 'dir' });
      for (const [k, v] of await readTreeDvfs(volume, p)) out.set(k, v);
    } else if (e.type === 'symlink') out.set(p, { type: 'symlink', target: await volume.readlink(p) });
    else {
      const data = await volume.readFile(p);
      if (data.length !== e.size) throw new Error(`${p}: listed size ${e.size} but read ${data.length} bytes`);
      out.set(p, { type: 'file', data });
    }
  }
  return out;
}

function sameTree(t: Test, got: Tree, want: Tree, what: string): void {
  const summary = (tree: Tree): Record<string, string> =>
    Object.fromEntries([...tree.entries()].map(([p, e]) => [p, e.type === 'file' ? `file ${e.data.length} ${sha(e.data)}` : e.type === 'symlink' ? `-> ${e.target}` : 'dir']));
  t.same(summary(got), summary(want), what);
}

const reason = encfsAvailable();
if (reason !== null) {
  t.test('stock encfs interop', { skip: `stock encfs unavailable: ${reason}` }, () => undefined);
} else {
  for (const preset of ['standard', 'paranoia'] as const) {
    t.test(`stock ${preset} volume → dvfs reads it, modifies it → stock reads the changes`, async (t) => {
      const dir = tmpDir(t);
      const raw = join(dir, 'raw');
      const mnt = join(dir, 'mnt');
      await createStockVolume(raw, mnt, PASSWORD, preset);
      const D = preset === 'paranoia' ? 1016 : 1024;
      const tree = sampleTree(D, 11);
      try {
        await writeTreePlain(mnt, tree);
        await truncate(join(mnt, 'one'), 0); // raw size 8: an emptied file keeps its header
        tree.set('one', { type: 'file', data: Buffer.alloc(0) });
      } finally {
        await unmountStock(mnt);
      }
      const volume = await EncfsVolume.open(raw, Buffer.from(PASSWORD));
      sameTree(t, await readTreeDvfs(volume), tree, 'dvfs reads exactly what stock encfs wrote');

      // Random-access changes by dvfs into files stock encfs made, plus new entries.
      const r = rng(12);
      const big = tree.get('big');
      if (big?.type !== 'file') throw new Error('fixture');
      const f = await volume.openFile('big', 'r+');
      for (let i = 0; i < 20; i++) {
        const offset = r.int(big.data.length + 3000);
        const data = r.bytes(r.int(5000) + 1);
        await f.write(offset, data);
        if (offset + data.length > big.data.length) {
          const grown = Buffer.alloc(offset + data.length);
          big.data.copy(grown);
          big.data = grown;
        }
        data.copy(big.data, offset);
      }
      await f.truncate(big.data.length - 777);
      big.data = big.data.subarray(0, big.data.length - 777);
      await f.close();
      const bp = await volume.openFile('block-plus-1', 'r+');
      await bp.truncate(5 * D + 3); // extend with a hole
      await bp.close();
      const old = tree.get('block-plus-1');
      if (old?.type !== 'file') throw new Error('fixture');
      const grown = Buffer.alloc(5 * D + 3);
      old.data.copy(grown);
      old.data = grown;
      await volume.mkdirp('from-dvfs/sub');
      const fresh = r.bytes(10_000);
      await volume.writeFile('from-dvfs/sub/new.bin', fresh);
      tree.set('from-dvfs', { type: 'dir' });
      tree.set('from-dvfs/sub', { type: 'dir' });
      tree.set('from-dvfs/sub/new.bin', { type: 'file', data: fresh });
      await volume.symlink('sub/new.bin', 'from-dvfs/link');
      tree.set('from-dvfs/link', { type: 'symlink', target: 'sub/new.bin' });

      await withStockMount(raw, mnt, PASSWORD, async (m) => {
        sameTree(t, await readTreePlain(m), tree, 'stock encfs reads the tree after dvfs changed it');
      });
    });

    t.test(`dvfs ${preset} volume → stock encfs mounts it and reads identical bytes`, async (t) => {
      const dir = tmpDir(t);
      const raw = join(dir, 'raw');
      const mnt = join(dir, 'mnt');
      const volume = await EncfsVolume.create(raw, Buffer.from(PASSWORD), { preset, kdfIterations: 20_000 });
      const tree = sampleTree(volume.content.dataBlockSize, 21);
      await writeTreeDvfs(volume, tree);
      // A sparse file written with random access, as a stage would.
      const s = await volume.openFile('sparse', 'w+');
      await s.write(300_000, Buffer.from('tail'));
      await s.write(1000, Buffer.from('head'));
      await s.close();
      const sparse = Buffer.alloc(300_004);
      sparse.write('tail', 300_000);
      sparse.write('head', 1000);
      tree.set('sparse', { type: 'file', data: sparse });
      await withStockMount(raw, mnt, PASSWORD, async (m) => {
        sameTree(t, await readTreePlain(m), tree, 'stock encfs reads what dvfs wrote');
        // and stock writes back into a dvfs-made file, which dvfs then reads
        await writeFile(join(m, 'nested/deeper/file.txt'), 'rewritten by stock encfs\n');
      });
      t.equal((await volume.readFile('nested/deeper/file.txt')).toString(), 'rewritten by stock encfs\n');
    });
  }
}
