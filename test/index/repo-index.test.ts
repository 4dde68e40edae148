// RepoIndex: key layout (children of a directory stay apart from names sharing a prefix), subtree rename
// and remove, the snapshot id kept consistent with the entries (also under kill -9 of a multi-batch update),
// and figures for 100 000 entries (DVFS_INDEX_BENCH_N for more).
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { keyOf, normalizePath, pathOfKey, RepoIndex, type FileEntry, type IndexEntry, type IndexOp } from '../../daemon/index/repo-index.js';
import { rng } from '../helpers/rng.js';
import { tempDir } from '../journal/helpers.js';

const file = (n: number): FileEntry => ({
  kind: 'file',
  object: n.toString(16).padStart(64, '0'),
  size: n,
  mode: 0o100644,
  mtimeMs: 1_700_000_000_000 + n,
  raw: { ino: 1000 + n, size: n + 8, mtimeMs: 1_700_000_000_000 + n },
});
const dir = (): IndexEntry => ({ kind: 'dir', tree: null, mode: 0o40755 });

async function openIndex(t: Test, options = {}): Promise<{ index: RepoIndex; path: string }> {
  const path = join(await tempDir(t, 'index'), 'index');
  const index = await RepoIndex.open(path, options);
  t.teardown(() => index.close());
  return { index, path };
}

async function all(index: RepoIndex): Promise<string[]> {
  const out: string[] = [];
  for await (const e of index.iterateAll()) out.push(e.path);
  return out.sort();
}

async function children(index: RepoIndex, d: string): Promise<string[]> {
  const out: string[] = [];
  for await (const c of index.iterateDir(d)) out.push(c.name);
  return out;
}

t.test('keys', async (t) => {
  t.equal(keyOf('/'), '\0');
  t.equal(keyOf('/a'), '/\0a');
  t.equal(keyOf('/a/b c'), '/a\0b c');
  for (const p of ['/', '/a', '/a/b', '/a b/c/d']) t.equal(pathOfKey(keyOf(p)), p);
  t.equal(normalizePath('a//b/'), '/a/b');
  t.equal(normalizePath('/./a/.'), '/a');
  t.throws(() => normalizePath('/a/../b'), { code: 'E_NAME' });
  t.throws(() => normalizePath('/a\0b'), { code: 'E_NAME' });
});

t.test('children of a directory never include names that merely share its prefix', async (t) => {
  const { index } = await openIndex(t);
  const paths = ['/', '/a', '/a/x', '/a/y', '/a/sub', '/a/sub/deep', '/a b', '/a b/z', '/ab', '/ab/w', '/a-', '/a-/q', '/a.', '/a0', '/a0/r'];
  await index.batch(paths.map((p) => ({ type: 'put', path: p, entry: p.includes('/x') || p.endsWith('deep') ? file(1) : dir() })), { snapshot: 's1' });
  t.same(await children(index, '/a'), ['sub', 'x', 'y']);
  t.same(await children(index, '/a b'), ['z']);
  t.same(await children(index, '/ab'), ['w']);
  t.same(await children(index, '/a/sub'), ['deep']);
  t.same(await children(index, '/'), ['a', 'a b', 'a-', 'a.', 'a0', 'ab']);
  t.same(await children(index, '/a/x'), []);
  t.same(await all(index), [...paths].sort());
  const below: string[] = [];
  for await (const e of index.iterateBelow('/a')) below.push(e.path);
  t.same(below.sort(), ['/a/sub', '/a/sub/deep', '/a/x', '/a/y']);
  t.same(await index.get('/a/x'), file(1));
  t.equal(await index.get('/a/nope'), undefined);
  t.same(await index.getMany(['/a/x', '/nope', '/a']), [file(1), undefined, dir()]);
});

t.test('subtree rename and remove', async (t) => {
  const { index } = await openIndex(t, { chunk: 4 }); // small chunks: the multi-batch path too
  const paths = ['/a', '/a/x', '/a/sub', '/a/sub/deep', '/a/sub/deep/f', '/a b', '/a b/z', '/ab', '/ab/w', '/t', '/t/old'];
  await index.batch(paths.map((p, i) => ({ type: 'put', path: p, entry: p === '/a/x' || p.endsWith('/f') || p.endsWith('/z') || p.endsWith('/w') || p === '/t/old' ? file(i) : dir() })), { snapshot: 's1' });

  await index.rename('/a', '/c');
  t.same(await all(index), ['/a b', '/a b/z', '/ab', '/ab/w', '/c', '/c/sub', '/c/sub/deep', '/c/sub/deep/f', '/c/x', '/t', '/t/old'].sort());
  t.same(await children(index, '/c/sub/deep'), ['f']);
  t.same(await index.get('/c/x'), file(1), 'values move along');
  t.equal(index.snapshot(), null, 'a change without a snapshot id leaves the index incomplete');

  // rename over an existing entry replaces it (and what was below it)
  await index.rename('/c', '/t', { snapshot: 's2' });
  t.same(await all(index), ['/a b', '/a b/z', '/ab', '/ab/w', '/t', '/t/sub', '/t/sub/deep', '/t/sub/deep/f', '/t/x'].sort());
  t.equal(index.snapshot(), 's2');

  // a file
  await index.rename('/t/x', '/ab/x2');
  t.same(await children(index, '/ab'), ['w', 'x2']);

  await t.rejects(index.rename('/t', '/t/sub/in'), { code: 'E_USAGE' });
  await t.rejects(index.rename('/t/sub', '/t'), { code: 'E_USAGE' });
  await t.rejects(index.rename('/nope', '/else'), { code: 'E_NOTFOUND' });
  await t.rejects(index.rename('/', '/x'), { code: 'E_USAGE' });

  await index.remove('/t');
  t.same(await all(index), ['/a b', '/a b/z', '/ab', '/ab/w', '/ab/x2']);
  await index.remove('/a'); // nothing there: fine
  await index.remove('/', { snapshot: 'empty' });
  t.same(await all(index), []);
  t.equal(index.snapshot(), 'empty');
});

t.test('the snapshot id goes with its entries', async (t) => {
  const { index, path } = await openIndex(t, { chunk: 10 });
  t.equal(index.snapshot(), null, 'a new index describes no snapshot');
  await index.batch([{ type: 'put', path: '/f', entry: file(1) }], { snapshot: 's1' });
  t.equal(index.snapshot(), 's1');
  await index.batch([{ type: 'put', path: '/g', entry: file(2) }]);
  t.same(index.state, { snapshot: null, lastSnapshot: 's1', incomplete: true });
  await index.close();

  let again = await RepoIndex.open(path, { chunk: 10 });
  t.same(again.state, { snapshot: null, lastSnapshot: 's1', incomplete: true }, 'incomplete survives reopening');
  await again.setSnapshot('s2');
  t.equal(again.snapshot(), 's2');
  // more than one chunk, with a snapshot: all of it, then the id
  const ops: IndexOp[] = [];
  for (let i = 0; i < 95; i++) ops.push({ type: 'put', path: `/many/${i}`, entry: file(i) });
  await again.batch(ops, { snapshot: 's3' });
  t.equal(again.snapshot(), 's3');
  t.equal((await children(again, '/many')).length, 95);
  await again.close();
  again = await RepoIndex.open(path);
  t.equal(again.snapshot(), 's3');
  await again.clear();
  t.same(again.state, { snapshot: null, lastSnapshot: null, incomplete: false });
  t.same(await all(again), []);
  await again.close();
});

t.test('kill -9 during a multi-batch update: the index names a snapshot only with all its entries', async (t) => {
  const base = await tempDir(t, 'index-crash');
  const OLD = 1000;
  const NEW = 30_000;
  const outcomes: string[] = [];
  for (const [i, delay] of [0, 15, 40, 5000].entries()) {
    const path = join(base, `i${i}`);
    const child = spawn(process.execPath, [fileURLToPath(new URL('./index-child.js', import.meta.url)), path, String(OLD), String(NEW)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    for await (const line of createInterface({ input: child.stdout })) {
      if (line === 'updating') setTimeout(() => child.kill('SIGKILL'), delay);
    }
    await exited;
    const index = await RepoIndex.open(path);
    let olds = 0;
    let news = 0;
    for await (const e of index.iterateAll()) {
      if (e.path.startsWith('/old/')) olds++;
      if (e.path.startsWith('/new/')) news++;
    }
    const snap = index.snapshot();
    outcomes.push(`${snap ?? 'incomplete'} (old ${olds}, new ${news})`);
    if (snap === 'old') t.ok(olds === OLD && news === 0, `delay ${delay}: snapshot "old" has exactly its entries`);
    else if (snap === 'new') t.ok(olds === 0 && news === NEW, `delay ${delay}: snapshot "new" has exactly its entries`);
    else t.ok(index.state.incomplete, `delay ${delay}: interrupted mid-way, the index says so`);
    await index.close();
  }
  t.comment(`outcomes: ${outcomes.join('; ')}`);
  t.match(outcomes[3], /^new /, 'an update left alone completes');
});

t.test('figures: write entries in batches, scan them all, list directories, look them up', async (t) => {
  const N = Number(process.env['DVFS_INDEX_BENCH_N'] ?? 100_000);
  const { index } = await openIndex(t);
  const DIRS = Math.max(1, Math.round(N / 100));
  const pathOf = (i: number): string => `/proj/d${i % DIRS}/f${i}.dat`;
  let t0 = performance.now();
  const BATCH = 10_000;
  const dirOps: IndexOp[] = [{ type: 'put', path: '/proj', entry: dir() }];
  for (let d = 0; d < DIRS; d++) dirOps.push({ type: 'put', path: `/proj/d${d}`, entry: dir() });
  await index.batch(dirOps);
  for (let start = 0; start < N; start += BATCH) {
    const ops: IndexOp[] = [];
    for (let i = start; i < Math.min(N, start + BATCH); i++) ops.push({ type: 'put', path: pathOf(i), entry: file(i) });
    await index.batch(ops);
  }
  await index.setSnapshot('bench');
  const writeMs = performance.now() - t0;

  t0 = performance.now();
  let count = 0;
  let bytes = 0;
  for await (const block of index.iterateAllBlocks()) {
    for (const e of block) {
      count++;
      if (e.entry.kind === 'file') bytes += e.entry.size;
    }
  }
  const scanMs = performance.now() - t0;
  t.equal(count, N + DIRS + 1, 'every entry scanned');
  t.equal(bytes, (N * (N - 1)) / 2, 'and read intact');

  t0 = performance.now();
  let count2 = 0;
  for await (const _ of index.iterateAll()) count2++;
  const scan2Ms = performance.now() - t0;
  t.equal(count2, count, 'iterateAll sees the same');

  t0 = performance.now();
  let listed = 0;
  const r = rng(7);
  const LISTS = 200;
  for (let k = 0; k < LISTS; k++) for await (const _ of index.iterateDir(`/proj/d${r.int(DIRS)}`)) listed++;
  const listMs = performance.now() - t0;
  t.ok(listed >= LISTS * Math.floor(N / DIRS), 'directories list their files');

  t0 = performance.now();
  const GETS = 10_000;
  let found = 0;
  for (let k = 0; k < GETS; k += 100) {
    const keys = Array.from({ length: 100 }, () => pathOf(r.int(N)));
    for (const e of await index.getMany(keys)) if (e) found++;
  }
  const getMs = performance.now() - t0;
  t.equal(found, GETS);

  const rate = (n: number, ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`;
  t.comment(`index figures for ${N.toLocaleString('en-US')} file entries in ${DIRS} directories:`);
  t.comment(`  write (batches of ${BATCH}): ${writeMs.toFixed(0)} ms, ${rate(N, writeMs)}`);
  t.comment(`  full scan (iterateAllBlocks): ${scanMs.toFixed(0)} ms, ${rate(count, scanMs)}  → 1 000 000 entries ≈ ${((scanMs / count) * 1e6 / 1000).toFixed(2)} s`);
  t.comment(`  full scan (iterateAll):       ${scan2Ms.toFixed(0)} ms, ${rate(count2, scan2Ms)}`);
  t.comment(`  iterateDir (${LISTS} dirs, ${listed} entries): ${listMs.toFixed(0)} ms, ${rate(listed, listMs)}`);
  t.comment(`  getMany (${GETS} random lookups, 100 per call): ${getMs.toFixed(0)} ms, ${rate(GETS, getMs)}`);
});
