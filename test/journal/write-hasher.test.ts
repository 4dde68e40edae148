// WriteHasher: sequential writes hash like a one-shot hash of the content; anything it cannot follow is
// dirty; truncate(0) starts over; a randomized model checks "clean ⇒ the hash is right" against a buffer.
import t from 'tap';
import { WriteHasher } from '../../daemon/journal/write-hasher.js';
import { rng } from '../helpers/rng.js';
import { sha256, sha256Stream } from './helpers.js';

t.test('sequential writes equal a one-shot hash of the whole content', async (t) => {
  const r = rng(1);
  const content = r.bytes(300_000);
  const h = new WriteHasher(sha256Stream, 0);
  let off = 0;
  while (off < content.length) {
    const n = Math.min(content.length - off, 1 + r.int(70_000));
    h.onWrite(off, content.subarray(off, off + n));
    off += n;
  }
  t.ok(h.clean);
  t.ok(h.modified);
  t.equal(h.size, content.length);
  t.same(h.result(content.length), { hash: sha256(content) });
  t.same(h.result(content.length), { hash: sha256(content) }, 'result() is idempotent');
});

t.test('an empty file created and closed hashes as empty; untouched is not modified', async (t) => {
  const h = new WriteHasher(sha256Stream, 0);
  t.notOk(h.modified);
  t.same(h.result(0), { hash: sha256(Buffer.alloc(0)) });
});

t.test('out-of-order writes are dirty', async (t) => {
  const a = new WriteHasher(sha256Stream, 0);
  a.onWrite(0, Buffer.from('hello'));
  a.onWrite(0, Buffer.from('J')); // overwrite
  t.notOk(a.clean);
  t.same(a.result(5), { dirty: true });

  const b = new WriteHasher(sha256Stream, 0);
  b.onWrite(0, Buffer.from('hello'));
  b.onWrite(3, Buffer.from('p me')); // overlaps the end
  t.same(b.result(7), { dirty: true });

  const c = new WriteHasher(sha256Stream, 0, { zeroFillLimit: 0 });
  c.onWrite(0, Buffer.from('a'));
  c.onWrite(10, Buffer.from('b')); // a gap, and gaps are not allowed here
  t.same(c.result(11), { dirty: true });

  const d = new WriteHasher(sha256Stream, 0);
  d.onWrite(4096, Buffer.from('tail')); // first write in the middle, gap too big? no: 4 KiB is zero-filled
  d.onWrite(0, Buffer.from('head')); // ... but this goes back
  t.same(d.result(4100), { dirty: true });
});

t.test('small gaps are hashed as zeros, big ones are dirty', async (t) => {
  const h = new WriteHasher(sha256Stream, 0, { zeroFillLimit: 100_000 });
  h.onWrite(0, Buffer.from('abc'));
  h.onWrite(70_003, Buffer.from('xyz')); // 70 000 zeros in between
  t.ok(h.clean);
  const expect = Buffer.concat([Buffer.from('abc'), Buffer.alloc(70_000), Buffer.from('xyz')]);
  t.same(h.result(expect.length), { hash: sha256(expect) });

  const g = new WriteHasher(sha256Stream, 0, { zeroFillLimit: 100_000 });
  g.onWrite(0, Buffer.from('abc'));
  g.onWrite(100_004, Buffer.from('x'));
  t.notOk(g.clean, 'a gap over the limit');

  const grow = new WriteHasher(sha256Stream, 0);
  grow.onWrite(0, Buffer.from('abc'));
  grow.onTruncate(10); // ftruncate growing the file: zeros
  t.same(grow.result(10), { hash: sha256(Buffer.concat([Buffer.from('abc'), Buffer.alloc(7)])) });

  const big = new WriteHasher(sha256Stream, 0);
  big.onTruncate(1 << 30); // a 1 GiB preallocation is not hashed in the write path
  t.notOk(big.clean);
  t.same(big.result(1 << 30), { dirty: true });

  const empty = new WriteHasher(sha256Stream, 0);
  empty.onWrite(0, Buffer.from('ab'));
  empty.onWrite(5, Buffer.alloc(0)); // CipherFile extends the file to 5 for this
  t.equal(empty.size, 5);
  t.same(empty.result(5), { hash: sha256(Buffer.from([0x61, 0x62, 0, 0, 0])) });
});

t.test('truncate(0) resets to a fresh stream, even after dirt or from a non-empty file', async (t) => {
  const h = new WriteHasher(sha256Stream, 0);
  h.onWrite(0, Buffer.from('first version'));
  h.onWrite(2, Buffer.from('X'));
  t.notOk(h.clean);
  h.onTruncate(0);
  t.ok(h.clean);
  h.onWrite(0, Buffer.from('second'));
  t.same(h.result(6), { hash: sha256(Buffer.from('second')) });

  const reopened = new WriteHasher(sha256Stream, 1234); // open(O_TRUNC) of an existing file
  t.notOk(reopened.clean);
  reopened.onTruncate(0);
  reopened.onWrite(0, Buffer.from('new'));
  t.same(reopened.result(3), { hash: sha256(Buffer.from('new')) });
});

t.test('shrinking is dirty; truncating to the current size changes nothing', async (t) => {
  const h = new WriteHasher(sha256Stream, 0);
  h.onWrite(0, Buffer.from('abcdef'));
  h.onTruncate(6);
  t.ok(h.clean);
  t.same(h.result(6), { hash: sha256(Buffer.from('abcdef')) });

  const s = new WriteHasher(sha256Stream, 0);
  s.onWrite(0, Buffer.from('abcdef'));
  s.onTruncate(3);
  t.notOk(s.clean);
  t.same(s.result(3), { dirty: true });
});

t.test('append after reopening a non-empty file is dirty (its old bytes were never seen)', async (t) => {
  const h = new WriteHasher(sha256Stream, 100);
  t.notOk(h.modified);
  h.onWrite(100, Buffer.from('more'));
  t.ok(h.modified);
  t.same(h.result(104), { dirty: true });
});

t.test('a final size other than the one seen is dirty; invalidate() is dirty', async (t) => {
  const h = new WriteHasher(sha256Stream, 0);
  h.onWrite(0, Buffer.from('abc'));
  t.same(h.result(4), { dirty: true });

  const i = new WriteHasher(sha256Stream, 0);
  i.onWrite(0, Buffer.from('abc'));
  i.invalidate();
  t.same(i.result(3), { dirty: true });
});

t.test('writes after result(): dirty unless the file is emptied first', async (t) => {
  const h = new WriteHasher(sha256Stream, 0);
  h.onWrite(0, Buffer.from('abc'));
  t.same(h.result(3), { hash: sha256(Buffer.from('abc')) });
  h.onWrite(3, Buffer.from('d'));
  t.same(h.result(4), { dirty: true });
  h.onTruncate(0);
  h.onWrite(0, Buffer.from('z'));
  t.same(h.result(1), { hash: sha256(Buffer.from('z')) });
});

t.test('random model: whenever the hasher says clean, the hash is the content hash', async (t) => {
  let cleanResults = 0;
  let dirtyResults = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const r = rng(seed * 7919);
    const h = new WriteHasher(sha256Stream, 0, { zeroFillLimit: 64 });
    let model = Buffer.alloc(0);
    for (let step = 0; step < 60; step++) {
      const op = r.int(10);
      if (op < 7) {
        // mostly appends, sometimes near the end or past it
        const offset = r.int(4) === 0 ? r.int(model.length + 100) : model.length;
        const data = r.bytes(r.int(50));
        h.onWrite(offset, data);
        if (data.length > 0 || offset > model.length) {
          const end = offset + data.length;
          if (end > model.length) model = Buffer.concat([model, Buffer.alloc(end - model.length)]);
          data.copy(model, offset);
        }
      } else if (op < 9) {
        const size = r.int(3) === 0 ? 0 : r.int(model.length + 80);
        h.onTruncate(size);
        model = size <= model.length ? Buffer.from(model.subarray(0, size)) : Buffer.concat([model, Buffer.alloc(size - model.length)]);
      } else {
        const res = h.result(model.length);
        if ('hash' in res) {
          cleanResults++;
          if (res.hash !== sha256(model)) t.fail(`seed ${seed} step ${step}: wrong hash`);
        } else {
          dirtyResults++;
        }
      }
      if (h.size !== model.length) t.fail(`seed ${seed} step ${step}: size ${h.size} vs ${model.length}`);
    }
    const res = h.result(model.length);
    if ('hash' in res && res.hash !== sha256(model)) t.fail(`seed ${seed}: wrong final hash`);
  }
  t.ok(cleanResults > 20, `${cleanResults} clean results checked`);
  t.ok(dirtyResults > 20, `${dirtyResults} dirty results`);
});
