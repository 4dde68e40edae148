// The journal's per-path "last write" bookkeeping (what a commit beside a running mount uses to see a file
// changed after its summary) is keyed by pathKey, a 53-bit hash: distinct for a million realistic paths, and
// lastWriteSeq answers per path, never below the truth, forgets what a commit took, and holds nothing
// outside trackWrites (a mount keeps no per-file state between commits).
import t from 'tap';
import { join } from 'node:path';
import { SessionJournal } from '../../daemon/journal/journal.js';
import { pathKey } from '../../daemon/journal/path-key.js';
import { rng } from '../helpers/rng.js';
import { tempDir, TEST_META } from './helpers.js';

t.test('pathKey: a million opaque-looking paths, no two share a key; deterministic; 53 bits', async (t) => {
  const r = rng(77);
  const seen = new Set<number>();
  let collisions = 0;
  let maxKey = 0;
  const component = (): string => r.bytes(40).toString('base64url');
  const dirs = Array.from({ length: 1000 }, () => `/${component()}/${component()}`);
  for (let i = 0; i < 1_000_000; i++) {
    const k = pathKey(`${dirs[i % 1000]}/${component()}`);
    if (seen.has(k)) collisions++;
    seen.add(k);
    maxKey = Math.max(maxKey, k);
  }
  t.equal(collisions, 0, 'no collision among 1 000 000 paths');
  t.ok(Number.isSafeInteger(maxKey) && maxKey < 2 ** 53, 'keys are safe integers');
  t.equal(pathKey('/a/b'), pathKey('/a/b'), 'same path, same key');
  t.not(pathKey('/a/b'), pathKey('/b/a'), 'order matters');
  t.not(pathKey('/ab'), pathKey('/a/b'), 'separators matter');
});

t.test('lastWriteSeq per path while tracked, cleared by markCommitted', async (t) => {
  const j = await SessionJournal.create(join(await tempDir(t, 'lastwrites'), 'j'), TEST_META);
  t.teardown(() => j.close());
  j.write('/d/a', { hash: null, size: 1, created: true });
  const stop = j.trackWrites();
  t.teardown(stop);
  t.equal(j.lastWriteSeq('/d/a'), 0, 'a write before tracking began is not known');
  const a1 = j.write('/d/a', { hash: null, size: 1, created: true });
  const b1 = j.write('/d/b', { hash: null, size: 1, created: true });
  t.equal(j.lastWriteSeq('/d/a'), a1, 'a: its own seq');
  t.equal(j.lastWriteSeq('/d/b'), b1, 'b: its own seq');
  t.equal(j.lastWriteSeq('/d/c'), 0, 'never written: 0');
  await j.flush();
  await j.markCommitted(b1, 'snap');
  t.equal(j.lastWriteSeq('/d/a'), 0, 'committed writes are forgotten');
  const a2 = j.write('/d/a', { hash: null, size: 2 });
  t.equal(j.lastWriteSeq('/d/a'), a2, 'a later write is remembered again');
  t.equal(j.lastWriteSeq('/d/b'), 0, 'b stays forgotten');
});

t.test('trackWrites: nothing is kept outside it; nested calls end with the last', async (t) => {
  const j = await SessionJournal.create(join(await tempDir(t, 'lastwrites-track'), 'j'), TEST_META);
  t.teardown(() => j.close());
  j.write('/x', { hash: null, size: 1, created: true });
  t.equal(j.lastWriteSeq('/x'), 0, 'untracked: 0');
  const outer = j.trackWrites();
  const inner = j.trackWrites();
  const x1 = j.write('/x', { hash: null, size: 2 });
  inner();
  inner(); // a second call of the same stop function changes nothing
  t.equal(j.lastWriteSeq('/x'), x1, 'still tracked while the outer tracker runs');
  const x2 = j.write('/x', { hash: null, size: 3 });
  t.equal(j.lastWriteSeq('/x'), x2);
  outer();
  t.equal(j.lastWriteSeq('/x'), 0, 'tracking ended: forgotten');
  j.write('/x', { hash: null, size: 4 });
  t.equal(j.lastWriteSeq('/x'), 0, 'and later writes are not kept');
});
