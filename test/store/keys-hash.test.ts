// Store keys and object ids: known answers (computed once with an independent BLAKE2b, Python's hashlib),
// determinism, keyed-ness, and streaming == one-shot on random splits.
import t from 'tap';
import { createHash } from 'node:crypto';
import { DvfsError } from '../../daemon/errors.js';
import { ContentHasher, hashBuffer, hashStream, isObjectId, toObjectId } from '../../daemon/store/content-hash.js';
import { deriveRepoKeys, wipeRepoKeys } from '../../daemon/store/keys.js';
import { rng } from '../helpers/rng.js';
import { SECRET } from './store-helpers.js';

const KAT = {
  contentHash: 'dab41fe064d2a06852ec283c13f78c5e7f5846d76d1252cbf527e5661ca3fe47',
  manifest: '633ded6e552b71ce111d03391a416fa6617b3a63b0a1d9b2c4349fbbf2245805',
  hello: '2c97de88a82349817eb5098012989c21b3c3da225f869a7dd08d082f2085eb9e',
  empty: '2592a053d73ccc7aaaa5ed188f75a7d4861e28a9b0686d6cbe03afad3628378b',
};

t.test('known answers', async (t) => {
  const keys = deriveRepoKeys(SECRET);
  t.equal(keys.contentHash.toString('hex'), KAT.contentHash, 'content-hash key');
  t.equal(keys.manifest.toString('hex'), KAT.manifest, 'manifest key');
  t.equal(hashBuffer(keys.contentHash, Buffer.from('hello, dvfs\n')), KAT.hello);
  t.equal(hashBuffer(keys.contentHash, Buffer.alloc(0)), KAT.empty, 'empty file');
  const h = new ContentHasher(keys.contentHash);
  t.equal(h.digest(), KAT.empty, 'streaming hasher with no input');
});

t.test('keys: deterministic, distinct, keyed by the secret', async (t) => {
  const a = deriveRepoKeys(SECRET);
  const b = deriveRepoKeys(Buffer.from(SECRET));
  t.same(a.contentHash, b.contentHash);
  t.same(a.manifest, b.manifest);
  t.notSame(a.contentHash, a.manifest, 'one key per purpose');
  const other = Buffer.from(SECRET);
  other.writeUInt8(other.readUInt8(31) ^ 1, 31);
  const c = deriveRepoKeys(other);
  t.notSame(c.contentHash, a.contentHash);
  const data = Buffer.from('same plaintext');
  t.not(hashBuffer(c.contentHash, data), hashBuffer(a.contentHash, data), 'different secret -> different id');
  // Not an unkeyed hash anyone could compute from a guess.
  t.not(hashBuffer(a.contentHash, data), createHash('blake2b512').update(data).digest('hex').slice(0, 64));
  for (const len of [0, 15, 65]) {
    t.throws(() => deriveRepoKeys(Buffer.alloc(len, 1)), DvfsError, `a ${len}-byte secret is refused`);
  }
  t.doesNotThrow(() => deriveRepoKeys(Buffer.alloc(16, 1)));
  t.doesNotThrow(() => deriveRepoKeys(Buffer.alloc(64, 1)));
  wipeRepoKeys(b);
  t.ok(b.contentHash.every((x) => x === 0) && b.manifest.every((x) => x === 0), 'wiped');
});

t.test('streaming equals one-shot on random splits', async (t) => {
  const { contentHash: key } = deriveRepoKeys(SECRET);
  const r = rng(0x5709e);
  for (let round = 0; round < 60; round++) {
    const data = r.bytes(r.int(round < 30 ? 300 : 200_000));
    const expect = hashBuffer(key, data);
    const h = new ContentHasher(key);
    let pos = 0;
    while (pos < data.length) {
      const n = Math.min(data.length - pos, r.int(r.int(2) === 0 ? 7 : 70_000) + 1);
      h.update(data.subarray(pos, pos + n));
      pos += n;
    }
    if (round % 5 === 0) h.update(Buffer.alloc(0));
    t.equal(h.bytes, data.length);
    const got = h.digest();
    if (got !== expect) t.fail(`seed ${r.seed}, round ${round}: streaming ${got} != one-shot ${expect}`);
  }
  const chunks = [Buffer.from('hello, '), Buffer.from('dvfs\n')];
  const streamed = await hashStream(deriveRepoKeys(SECRET).contentHash, (async function* () {
    yield* chunks;
  })());
  t.same(streamed, { id: KAT.hello, bytes: 12 });
});

t.test('a hasher is single-use; ids are checked', async (t) => {
  const { contentHash: key } = deriveRepoKeys(SECRET);
  const h = new ContentHasher(key);
  h.update(Buffer.from('x'));
  h.digest();
  t.throws(() => h.update(Buffer.from('y')));
  t.throws(() => h.digest());
  t.throws(() => new ContentHasher(Buffer.alloc(8)), DvfsError, 'short key refused');
  t.ok(isObjectId(KAT.hello));
  t.notOk(isObjectId(KAT.hello.toUpperCase()), 'uppercase is not canonical');
  t.notOk(isObjectId(KAT.hello.slice(1)));
  t.notOk(isObjectId(`../${KAT.hello.slice(3)}`));
  t.notOk(isObjectId(42));
  t.equal(toObjectId(KAT.hello), KAT.hello);
  t.throws(() => toObjectId('nope'), DvfsError);
});
