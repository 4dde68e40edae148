// Interoperability of a live dvfs mount with the stock `encfs` 1.9.5 binary, both directions:
//  1. a tree written (and reorganised: renames of directories with files inside) through a dvfs mount is read
//     by stock encfs: identical names, types, modes, sizes, bytes, symlink targets and mtimes;
//  2. a tree written through stock encfs is read through a dvfs mount, modified there (writes into stock
//     files, truncation, new files, symlinks, removal, and renaming a directory with files inside, which in
//     the paranoia preset re-encodes every name below it and re-seals every file header), then read again by
//     stock encfs, which must see exactly the modified tree.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { rng } from '../helpers/rng.js';
import { createStockVolume, encfsAvailable, unmountStock, withStockMount } from '../helpers/stock-encfs.js';
import { fuseAvailable, initRepo, mountDvfs, workspace, type Preset } from '../helpers/mount.js';

const unavailable = fuseAvailable() ?? encfsAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING dvfs/stock-encfs interop tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `cannot run: ${unavailable}`;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

type Node =
  | { type: 'file'; data: Buffer; mode?: number; mtime?: number }
  | { type: 'dir'; mode?: number }
  | { type: 'symlink'; target: string };
type Tree = Map<string, Node>;

function sampleTree(seed: number): Tree {
  const r = rng(seed);
  const tree: Tree = new Map();
  const file = (p: string, n: number, extra: { mode?: number; mtime?: number } = {}): void => void tree.set(p, { type: 'file', data: r.bytes(n), ...extra });
  for (const d of ['docs', 'docs/deep', 'docs/deep/deeper', 'data', 'données', '日本語', 'empty-dir', 'private']) tree.set(d, { type: 'dir' });
  tree.set('private', { type: 'dir', mode: 0o700 });
  file('empty', 0);
  file('one', 1);
  file('block-1', 1023);
  file('block', 1024);
  file('block+1', 1025);
  file('docs/readme.txt', 4000, { mtime: 1_500_000_000 });
  file('docs/deep/a.bin', 70_000);
  file('docs/deep/deeper/b.bin', 12_345);
  file('data/big.bin', 2 * 1024 * 1024 + 3);
  file('données/été.txt', 321);
  file('日本語/😀.bin', 77);
  file('private/key', 64, { mode: 0o600 });
  file('script.sh', 200, { mode: 0o755 });
  file('N'.repeat(175), 10);
  tree.set('docs/link-rel', { type: 'symlink', target: 'deep/a.bin' });
  tree.set('docs/deep/link-up', { type: 'symlink', target: '../../one' });
  tree.set('abs-link', { type: 'symlink', target: '/etc/hostname' });
  tree.set('dangling', { type: 'symlink', target: 'does/not/exist' });
  return tree;
}

function writeTree(root: string, tree: Tree): void {
  const entries = [...tree.entries()].sort(([a], [b]) => a.split('/').length - b.split('/').length);
  for (const [p, n] of entries) {
    const full = join(root, p);
    if (n.type === 'dir') {
      fs.mkdirSync(full, { recursive: true });
      if (n.mode !== undefined) fs.chmodSync(full, n.mode);
    } else if (n.type === 'file') {
      fs.writeFileSync(full, n.data);
      if (n.mode !== undefined) fs.chmodSync(full, n.mode);
    } else fs.symlinkSync(n.target, full);
  }
  // times last: creating children changes a directory's mtime
  for (const [p, n] of entries) if (n.type === 'file' && n.mtime !== undefined) fs.utimesSync(join(root, p), n.mtime, n.mtime);
}

interface Seen {
  type: string;
  mode?: number;
  size?: number;
  sha?: string;
  target?: string;
  mtime?: number;
}

/** What a mounted tree shows: every entry's type, mode, size, content hash, link target (and set mtimes). */
function readTree(root: string, withMtimeOf: Set<string> = new Set()): Map<string, Seen> {
  const out = new Map<string, Seen>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(join(root, rel))) {
      const p = rel === '' ? name : `${rel}/${name}`;
      const full = join(root, p);
      const st = fs.lstatSync(full);
      if (st.isDirectory()) {
        out.set(p, { type: 'dir', mode: st.mode & 0o7777 });
        walk(p);
      } else if (st.isSymbolicLink()) out.set(p, { type: 'symlink', target: fs.readlinkSync(full), size: st.size });
      else if (st.isFile()) {
        const s: Seen = { type: 'file', mode: st.mode & 0o7777, size: st.size, sha: sha(fs.readFileSync(full)) };
        if (withMtimeOf.has(p)) s.mtime = st.mtimeMs;
        out.set(p, s);
      } else out.set(p, { type: 'other' });
    }
  };
  walk('');
  return out;
}

function expected(tree: Tree): Map<string, Seen> {
  const out = new Map<string, Seen>();
  for (const [p, n] of tree) {
    if (n.type === 'dir') out.set(p, { type: 'dir', mode: n.mode ?? 0o755 });
    else if (n.type === 'symlink') out.set(p, { type: 'symlink', target: n.target, size: Buffer.byteLength(n.target) });
    else {
      const s: Seen = { type: 'file', mode: n.mode ?? 0o644, size: n.data.length, sha: sha(n.data) };
      if (n.mtime !== undefined) s.mtime = n.mtime * 1000;
      out.set(p, s);
    }
  }
  return out;
}

const mtimed = (tree: Tree): Set<string> => new Set([...tree].filter(([, n]) => n.type === 'file' && n.mtime !== undefined).map(([p]) => p));

/** Compares everything but mtimes in one assertion, and the mtimes set with utimes in another. */
function compareTrees(t: Test, got: Map<string, Seen>, want: Map<string, Seen>, what: string): void {
  const diffs: string[] = [];
  const mtimeDiffs: string[] = [];
  const strip = (s: Seen | undefined): string | undefined => (s === undefined ? undefined : JSON.stringify({ ...s, mtime: undefined }));
  for (const k of new Set([...got.keys(), ...want.keys()])) {
    const a = strip(got.get(k));
    const b = strip(want.get(k));
    if (a !== b) diffs.push(`${k}: got ${a ?? 'absent'}, want ${b ?? 'absent'}`);
    else if (got.get(k)?.mtime !== want.get(k)?.mtime) mtimeDiffs.push(`${k}: mtime ${got.get(k)?.mtime} (${new Date(got.get(k)?.mtime ?? 0).toISOString()}), want ${want.get(k)?.mtime}`);
  }
  t.same(diffs, [], `${what}: ${want.size} entries identical (names, types, modes, sizes, bytes, link targets)`);
  t.same(mtimeDiffs, [], `${what}: mtimes set with utimes are kept (also across renames of the file or its directory)`);
}

/** Moves every entry under `from` to `to` in the model (what a directory rename does). */
function renameInModel(tree: Tree, from: string, to: string): void {
  for (const [p, n] of [...tree]) {
    if (p === from || p.startsWith(`${from}/`)) {
      tree.delete(p);
      tree.set(to + p.slice(from.length), n);
    }
  }
}

process.umask(0o022);

for (const preset of ['standard', 'paranoia'] as Preset[]) {
  t.test(`${preset}: a tree written through a dvfs mount is read identically by stock encfs`, { skip }, async (t) => {
    const ws = workspace(t, `interop-dvfs-${preset}`);
    const repo = initRepo(ws, 'repo', preset);
    const m = mountDvfs(ws, repo, join(ws.dir, 'mnt'));
    const tree = sampleTree(preset === 'standard' ? 1 : 2);
    writeTree(m.mnt, tree);
    // reorganise through the mount: directory renames re-encode names (chained IVs) and, in paranoia, headers
    fs.renameSync(join(m.mnt, 'docs'), join(m.mnt, 'data', 'docs-moved'));
    renameInModel(tree, 'docs', 'data/docs-moved');
    fs.renameSync(join(m.mnt, 'block'), join(m.mnt, 'données', 'block-moved'));
    renameInModel(tree, 'block', 'données/block-moved');
    // a write into the middle of a moved file after the move
    const moved = tree.get('data/docs-moved/deep/a.bin') as { type: 'file'; data: Buffer };
    const patch = Buffer.from('PATCHED-AFTER-RENAME');
    const fd = fs.openSync(join(m.mnt, 'data/docs-moved/deep/a.bin'), 'r+');
    fs.writeSync(fd, patch, 0, patch.length, 33_333);
    fs.closeSync(fd);
    patch.copy(moved.data, 33_333);
    compareTrees(t, readTree(m.mnt, mtimed(tree)), expected(tree), 'dvfs reads back its own tree');
    await m.umount();

    const stockMnt = join(ws.dir, 'stock-mnt');
    await withStockMount(m.tree, stockMnt, ws.password, (mnt) => {
      compareTrees(t, readTree(mnt, mtimed(tree)), expected(tree), 'stock encfs reads the dvfs-written tree');
      t.equal(fs.readFileSync(join(mnt, 'data/docs-moved/link-rel')).length, 70_000, 'stock encfs follows a dvfs-written relative link');
    });
  });

  t.test(`${preset}: a tree written by stock encfs is read and modified through dvfs, then read again by stock encfs`, { skip }, async (t) => {
    const ws = workspace(t, `interop-stock-${preset}`);
    const volume = join(ws.dir, 'stock-volume');
    const stockMnt = join(ws.dir, 'stock-mnt');
    const tree = sampleTree(preset === 'standard' ? 3 : 4);
    await createStockVolume(volume, stockMnt, ws.password, preset);
    try {
      writeTree(stockMnt, tree);
    } finally {
      await unmountStock(stockMnt);
    }

    // dvfs mounts the stock volume directory directly
    const m = mountDvfs(ws, volume, join(ws.dir, 'mnt'));
    const mnt = m.mnt;
    compareTrees(t, readTree(mnt, mtimed(tree)), expected(tree), 'dvfs reads the stock-written tree');

    const r = rng(99);
    // random-access writes into stock-made files, across block boundaries
    const big = tree.get('data/big.bin') as { type: 'file'; data: Buffer };
    const fd = fs.openSync(join(mnt, 'data/big.bin'), 'r+');
    for (const off of [0, 1000, 1023, 4096, 1_000_000, big.data.length - 5]) {
      const b = r.bytes(700);
      fs.writeSync(fd, b, 0, b.length, off);
      if (off + b.length > big.data.length) {
        const g = Buffer.alloc(off + b.length);
        big.data.copy(g);
        big.data = g;
      }
      b.copy(big.data, off);
    }
    fs.closeSync(fd);
    // truncate down and up
    const b1 = tree.get('block+1') as { type: 'file'; data: Buffer };
    fs.truncateSync(join(mnt, 'block+1'), 500);
    b1.data = b1.data.subarray(0, 500);
    const one = tree.get('one') as { type: 'file'; data: Buffer };
    fs.truncateSync(join(mnt, 'one'), 5000);
    one.data = Buffer.concat([one.data, Buffer.alloc(4999)]);
    // new files, a symlink, removals
    const fresh = r.bytes(9999);
    fs.writeFileSync(join(mnt, 'docs/deep/new-from-dvfs.bin'), fresh);
    tree.set('docs/deep/new-from-dvfs.bin', { type: 'file', data: fresh });
    fs.symlinkSync('deeper/b.bin', join(mnt, 'docs/deep/dvfs-link'));
    tree.set('docs/deep/dvfs-link', { type: 'symlink', target: 'deeper/b.bin' });
    fs.unlinkSync(join(mnt, 'empty'));
    tree.delete('empty');
    fs.rmdirSync(join(mnt, 'empty-dir'));
    tree.delete('empty-dir');
    fs.chmodSync(join(mnt, 'script.sh'), 0o700);
    (tree.get('script.sh') as { mode?: number }).mode = 0o700;
    // rename a directory with files (and a subdirectory, and links) inside, into another directory
    fs.renameSync(join(mnt, 'docs'), join(mnt, '日本語', 'docs-renamed'));
    renameInModel(tree, 'docs', '日本語/docs-renamed');
    // rename a single stock-made file into another directory, then write into it
    fs.renameSync(join(mnt, 'données/été.txt'), join(mnt, 'private/été-moved.txt'));
    renameInModel(tree, 'données/été.txt', 'private/été-moved.txt');
    const ete = tree.get('private/été-moved.txt') as { type: 'file'; data: Buffer };
    fs.appendFileSync(join(mnt, 'private/été-moved.txt'), 'appended by dvfs');
    ete.data = Buffer.concat([ete.data, Buffer.from('appended by dvfs')]);
    compareTrees(t, readTree(mnt, mtimed(tree)), expected(tree), 'dvfs sees its modifications');
    t.equal(m.status().integrityErrors, 0, 'no integrity errors in dvfs');
    await m.umount();

    await withStockMount(volume, stockMnt, ws.password, (smnt) => {
      compareTrees(t, readTree(smnt, mtimed(tree)), expected(tree), 'stock encfs reads the tree as dvfs modified it');
      // and stock encfs can keep working on it
      fs.writeFileSync(join(smnt, '日本語/docs-renamed/deep/written-by-stock-after'), 'stock again');
    });
    const again = mountDvfs(ws, volume, join(ws.dir, 'mnt2'));
    t.equal(fs.readFileSync(join(again.mnt, '日本語/docs-renamed/deep/written-by-stock-after'), 'utf8'), 'stock again', 'dvfs reads what stock encfs wrote inside the renamed directory');
  });
}
