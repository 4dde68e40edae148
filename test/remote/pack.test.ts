// Packs on a remote, end to end over the file:// backend: many random blobs (0..2 MiB) go in, come back equal
// (one by one, streamed, and in merged range reads), survive reopening (the index is loaded from the
// remote), and the remote shows no blob id, size or plaintext in the clear.
import t from 'tap';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend, Body, ObjectInfo } from '../../daemon/remote/backend.js';
import { blobRawSize } from '../../daemon/remote/blob.js';
import { dataKey, INDEX_PREFIX, nameOfDataKey, type BlobType } from '../../daemon/remote/layout.js';
import { blobSize } from '../../daemon/remote/pack-index.js';
import { readPackTable } from '../../daemon/remote/pack.js';
import { RemoteRepository } from '../../daemon/remote/repository.js';
import { deriveRemoteKeys, wipeRemoteKeys } from '../../daemon/remote/keys.js';
import type { ObjectId } from '../../daemon/store/object-id.js';
import { collect, errorOf, randomBlobs, repoKeys, seeded, tempDir, tempRemote, type TestBlob } from './pack-helpers.js';

const MiB = 1024 * 1024;

/** Counts requests on the way to another backend. */
class Counting implements Backend {
  readonly location: string;
  counts = { put: 0, putLarge: 0, get: 0, getRange: 0, head: 0, list: 0, delete: 0 };
  constructor(readonly inner: Backend) {
    this.location = inner.location;
  }
  put(key: string, body: Body, size: number): Promise<void> {
    this.counts.put++;
    return this.inner.put(key, body, size);
  }
  putLarge(key: string, body: Body, size: number): Promise<void> {
    this.counts.putLarge++;
    return this.inner.putLarge(key, body, size);
  }
  get(key: string): Promise<Buffer> {
    this.counts.get++;
    return this.inner.get(key);
  }
  getRange(key: string, offset: number, length: number): Promise<Buffer> {
    this.counts.getRange++;
    return this.inner.getRange(key, offset, length);
  }
  head(key: string): Promise<number | null> {
    this.counts.head++;
    return this.inner.head(key);
  }
  list(prefix: string): AsyncIterable<ObjectInfo> {
    this.counts.list++;
    return this.inner.list(prefix);
  }
  delete(keys: readonly string[]): Promise<void> {
    this.counts.delete++;
    return this.inner.delete(keys);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

t.test('round trip of many random blobs', async (t) => {
  const r = seeded(t, 20240501);
  const keys = repoKeys(t);
  const file = await tempRemote(t);
  const remote = new Counting(file);
  const objects = randomBlobs(keys, r, 160, 2 * MiB);
  const manifests = randomBlobs(keys, r, 40, 64 * 1024);
  const params = { packSize: 4 * MiB, largeThreshold: 1 * MiB };
  const repo = await RemoteRepository.init(remote, keys, params, { connections: 2, indexEntriesPerFile: 50, windowChunks: 1 });
  t.teardown(() => repo.close());
  t.equal(repo.config.packSize, 4 * MiB);

  // Put them three ways: from memory, from a file, from a stream.
  const files = await tempDir(t);
  let i = 0;
  for (const b of objects) {
    const how = i++ % 3;
    if (how === 0) t.equal(await repo.put('object', b.id, b.data), true);
    else if (how === 1) {
      const path = join(files, b.id);
      await writeFile(path, b.data);
      t.equal(await repo.putFile('object', b.id, path), true);
    } else {
      t.equal(
        await repo.putStream('object', b.id, b.data.length, async function* () {
          for (let off = 0; off < b.data.length; off += 100_000) yield b.data.subarray(off, off + 100_000);
        }),
        true,
      );
    }
  }
  for (const m of manifests) await repo.put('manifest', m.id, m.data);
  t.equal(await repo.put('object', objects[5]?.id as ObjectId, objects[5]?.data as Buffer), false, 'a queued blob is not put twice');
  t.ok(repo.has('object', objects[7]?.id as ObjectId), 'has() sees queued blobs');
  t.notOk(repo.has('manifest', objects[7]?.id as ObjectId), 'types are separate namespaces');

  const flushed = await repo.flush();
  const large = objects.filter((b) => b.data.length > params.largeThreshold);
  t.equal(flushed.blobs, large.length, `${large.length} large blobs stored alone`);
  t.ok(flushed.packs >= 2, `${flushed.packs} packs`);
  t.equal(repo.index.size, uniq(objects) + uniq(manifests), 'every distinct (type, id) indexed');
  t.equal(flushed.indexFiles.length, Math.ceil(repo.index.size / 50), 'index split into files of 50 records');
  t.equal(remote.counts.putLarge, large.length, 'large blobs went through putLarge (multipart on S3)');
  t.same(await repo.flush(), { packs: 0, blobs: 0, bytes: 0, indexFiles: [] }, 'a second flush has nothing to do');

  // Everything reads back equal.
  const check = async (rp: RemoteRepository, what: string): Promise<void> => {
    let bad = 0;
    for (const [type, list] of [
      ['object', objects],
      ['manifest', manifests],
    ] as Array<[BlobType, TestBlob[]]>) {
      for (const b of list) {
        const got = await rp.get(type, b.id);
        if (!got.equals(b.data)) bad++;
        const loc = rp.locate(type, b.id);
        if (loc === undefined || blobSize(loc) !== b.data.length) bad++;
      }
    }
    t.equal(bad, 0, `${what}: every blob equal, every size right`);
  };
  await check(repo, 'same session');

  // Streamed reads of large blobs, in 1-chunk windows.
  for (const b of large.slice(0, 3)) {
    const parts = await collect(repo.read('object', b.id));
    t.ok(parts.length === Math.max(1, Math.ceil(b.data.length / MiB)), 'one piece per chunk');
    t.ok(Buffer.concat(parts).equals(b.data), 'streamed read equal');
  }

  // getMany: few range requests for many packed blobs.
  const packed = [...objects, ...manifests].filter((b) => b.data.length <= params.largeThreshold);
  const wanted = [
    ...objects.filter((b) => b.data.length <= params.largeThreshold).map((b) => ({ type: 'object' as const, id: b.id })),
    ...manifests.map((b) => ({ type: 'manifest' as const, id: b.id })),
  ];
  remote.counts.getRange = 0;
  const byId = new Map(packed.map((b) => [b.id, b.data]));
  let got = 0;
  for await (const x of repo.getMany(wanted)) {
    if (byId.get(x.id)?.equals(x.data) === true) got++;
  }
  t.equal(got, new Set(wanted.map((w) => `${w.type}${w.id}`)).size, 'getMany returned every blob, equal');
  t.ok(remote.counts.getRange <= flushed.packs * 2, `${remote.counts.getRange} range requests for ${wanted.length} blobs in ${flushed.packs} packs`);
  t.match(await errorOf(collect(repo.getMany([{ type: 'object', id: large[0]?.id as ObjectId }]))), { code: 'E_USAGE', message: /read it with read\(\)/ });
  t.match(await errorOf(repo.get('object', 'f'.repeat(64) as ObjectId)), { code: 'E_NOTFOUND' });

  // The pack tables agree with the index; packs hold one type each and respect the size target.
  const rk = deriveRemoteKeys(keys);
  t.teardown(() => wipeRemoteKeys(rk));
  const packs = new Set<string>();
  for (const rec of repo.index.records()) if (rec.loc.kind === 'pack') packs.add(rec.loc.pack);
  let tablesOk = true;
  for (const p of packs) {
    const table = await readPackTable(file, rk, p);
    const types = new Set(table.map((e) => e.type));
    if (types.size !== 1) tablesOk = false;
    for (const e of table) {
      const loc = repo.locate(e.type, e.id);
      if (loc?.kind !== 'pack' || loc.pack !== p || loc.offset !== e.offset || loc.length !== e.length) tablesOk = false;
    }
    const size = (await file.head(dataKey(p))) ?? 0;
    if (size > params.packSize + params.largeThreshold + 64 * 1024) tablesOk = false;
  }
  t.ok(tablesOk, `${packs.size} pack tables match the index; one type per pack; sizes near the target`);
  for (const b of large) {
    const loc = repo.locate('object', b.id);
    if (loc?.kind !== 'blob') t.fail('large blob not stored alone');
    else t.equal(await file.head(dataKey(loc.blob)), blobRawSize(b.data.length));
  }

  // Reopen: the index comes from the remote.
  remote.counts.get = 0;
  const again = await RemoteRepository.open(remote, keys, { windowChunks: 3 });
  t.teardown(() => again.close());
  t.equal(again.index.size, repo.index.size, 'index loaded');
  t.same(again.indexFiles.sort(), [...flushed.indexFiles].sort());
  t.equal(again.config.id, repo.config.id);
  await check(again, 'reopened');

  // A second session adds only what is new.
  const more = randomBlobs(keys, r, 20, 300 * 1024);
  let added = 0;
  for (const b of [...objects.slice(0, 30), ...more]) if (await again.put('object', b.id, b.data)) added++;
  t.equal(added, more.length - countDuplicates(more, objects), 'only new blobs are queued');
  const second = await again.flush();
  t.equal(second.indexFiles.length, 1);
  await again.writeRef(objects[2]?.id as ObjectId);
  const third = await RemoteRepository.open(remote, keys);
  t.teardown(() => third.close());
  t.equal(third.index.size, repo.index.size + added, 'union of both sessions');
  t.equal((await third.readRef())?.snapshot, objects[2]?.id, 'HEAD ref');
  t.equal(await third.readRef('other'), null);
  let moreOk = 0;
  for (const b of more) if ((await third.get('object', b.id)).equals(b.data)) moreOk++;
  t.equal(moreOk, more.length, 'second session blobs read back');

  // Nothing in the clear: no id in any name, no id bytes and no plaintext sample in any file.
  const names = (await collect(file.list(''))).map((o) => o.key);
  const needles = [...objects, ...manifests].filter((b) => b.data.length >= 64).map((b) => b.data.subarray(0, 32));
  const idNeedles = [...objects, ...manifests].map((b) => Buffer.from(b.id, 'hex'));
  let leaks = 0;
  for (const k of names) {
    if ([...objects, ...manifests].some((b) => k.includes(b.id) || k.includes(b.id.slice(2)))) leaks++;
    const bytes = await readFile(join(file.root, k));
    for (const n of [...needles, ...idNeedles]) if (bytes.includes(n)) leaks++;
  }
  t.equal(leaks, 0, `no ids or plaintext visible in ${names.length} remote files`);
  t.ok(names.every((k) => k === 'config' || k.startsWith('refs/') || k.startsWith(INDEX_PREFIX) || nameOfDataKey(k) !== null), 'only the layout names');
  t.equal((await stat(join(file.root, 'config'))).mode & 0o777, 0o600);
});

function uniq(list: TestBlob[]): number {
  return new Set(list.map((b) => b.id)).size;
}

/** Blobs of `a` that are in `b` or repeat within `a`. */
function countDuplicates(a: TestBlob[], b: TestBlob[]): number {
  const seen = new Set(b.map((x) => x.id));
  let n = 0;
  const inA = new Set<string>();
  for (const x of a) {
    if (seen.has(x.id) || inA.has(x.id)) n++;
    inA.add(x.id);
  }
  return n;
}

t.test('default parameters: 32 MiB packs, 8 MiB threshold', async (t) => {
  const r = seeded(t, 7);
  const keys = repoKeys(t);
  const file = await tempRemote(t);
  const repo = await RemoteRepository.init(file, keys);
  t.teardown(() => repo.close());
  t.equal(repo.config.packSize, 32 * MiB);
  t.equal(repo.config.largeThreshold, 8 * MiB);
  const blobs = randomBlobs(keys, r, 60, 2 * MiB);
  for (const b of blobs) await repo.put('object', b.id, b.data);
  const res = await repo.flush();
  t.equal(res.blobs, 0, 'nothing is large');
  t.ok(res.packs >= 1 && res.packs <= 2, `${res.packs} pack(s)`);
  const data = (await readdir(join(file.root, 'data'))).length;
  t.ok(data >= 1, 'packs under data/');
  for (const b of blobs) if (!(await repo.get('object', b.id)).equals(b.data)) t.fail(`blob ${b.id}`);
  t.pass('all equal');
});

t.test('init and open', async (t) => {
  const keys = repoKeys(t);
  const file = await tempRemote(t);
  t.match(await errorOf(RemoteRepository.open(file, keys)), { code: 'E_NOTFOUND', message: /no dvfs remote at file:\/\// });
  const a = await RemoteRepository.openOrInit(file, keys, { packSize: 1 * MiB });
  a.close();
  t.match(await errorOf(RemoteRepository.init(file, keys)), { code: 'E_EXISTS' });
  const b = await RemoteRepository.openOrInit(file, keys);
  t.equal(b.config.packSize, 1 * MiB, 'openOrInit opened the existing remote');
  b.close();
  t.match(await errorOf(b.get('object', 'a'.repeat(64) as ObjectId)), { message: /after close/ });
  t.match(await errorOf(RemoteRepository.init(await tempRemote(t), keys, { packSize: 100 })), { code: 'E_USAGE', message: /pack size 100/ });
  t.match(await errorOf(RemoteRepository.init(await tempRemote(t), keys, { packSize: MiB, largeThreshold: 2 * MiB })), { code: 'E_USAGE', message: /threshold/ });
  const c = await RemoteRepository.open(file, keys);
  t.teardown(() => c.close());
  await c.put('object', 'b'.repeat(64) as ObjectId, Buffer.from('x'));
  t.match(await errorOf(c.writeRef('b'.repeat(64) as ObjectId)), { code: 'E_USAGE', message: /before flush/ });
});

class FailingPuts extends Counting {
  failPuts = false;
  override put(key: string, body: Body, size: number): Promise<void> {
    if (this.failPuts && key.startsWith('data/')) return Promise.reject(new Error('disk on fire'));
    return super.put(key, body, size);
  }
}

t.test('an upload failure surfaces at the next put or at flush', async (t) => {
  const keys = repoKeys(t);
  const file = await tempRemote(t);
  const failing = new FailingPuts(file);
  const repo = await RemoteRepository.init(failing, keys, { packSize: 64 * 1024, largeThreshold: 16 * 1024 });
  t.teardown(() => repo.close());
  failing.failPuts = true;
  const blobs = randomBlobs(keys, seeded(t, 3), 40, 10 * 1024);
  const e = await errorOf(
    (async () => {
      for (const b of blobs) await repo.put('object', b.id, b.data);
      await repo.flush();
    })(),
  );
  t.match(e, { message: 'disk on fire' });
  t.equal((await collect(file.list(INDEX_PREFIX))).length, 0, 'no index was written for the failed pack');
});
