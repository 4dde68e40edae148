// Tampering with a remote is detected and refused with a clear integrity error: flipped bytes in packs, pack
// tables, index files, large blobs, config and refs; swapped, renamed, truncated, extended or missing files;
// an index that points a blob at another blob's entry; a remote opened with another repository's keys.
import t, { type Test } from 'tap';
import { copyFile, readFile, rename, rm, truncate, writeFile, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import { BLOB_HEADER_BYTES, BLOB_RAW_CHUNK_BYTES } from '../../daemon/remote/blob.js';
import type { FileBackend } from '../../daemon/remote/file-backend.js';
import { deriveRemoteKeys, wipeRemoteKeys } from '../../daemon/remote/keys.js';
import { dataKey, indexKey, RemoteIntegrityError } from '../../daemon/remote/layout.js';
import { sealIndexFile, type IndexRecord, type Location } from '../../daemon/remote/pack-index.js';
import { readPackTable } from '../../daemon/remote/pack.js';
import { RemoteRepository } from '../../daemon/remote/repository.js';
import type { ObjectId } from '../../daemon/store/object-id.js';
import { blobOf, collect, errorOf, OTHER_SECRET, repoKeys, tempRemote, type TestBlob } from './pack-helpers.js';

const MiB = 1024 * 1024;

interface Fixture {
  file: FileBackend;
  keys: ReturnType<typeof repoKeys>;
  small: TestBlob[];
  large: TestBlob[];
  /** Opens the remote afresh (the index is re-read every time). */
  open(): Promise<RemoteRepository>;
  loc(b: TestBlob): Location;
  path(key: string): string;
  indexFiles: string[];
}

async function fixture(t: Test): Promise<Fixture> {
  const keys = repoKeys(t);
  const file = await tempRemote(t);
  const repo = await RemoteRepository.init(file, keys, { packSize: 64 * 1024, largeThreshold: 32 * 1024 });
  const small: TestBlob[] = [];
  for (let i = 1; i <= 30; i++) small.push(blobOf(keys, i * 700));
  const large = [blobOf(keys, 32 * 1024 + 1), blobOf(keys, 3 * MiB + 5)];
  for (const b of [...small, ...large]) await repo.put('object', b.id, b.data);
  const { indexFiles } = await repo.flush();
  await repo.writeRef(small[0]?.id as ObjectId);
  const locs = new Map<string, Location>();
  for (const b of [...small, ...large]) locs.set(b.id, repo.locate('object', b.id) as Location);
  repo.close();
  const opened: RemoteRepository[] = [];
  t.teardown(() => opened.forEach((r) => r.close()));
  return {
    file,
    keys,
    small,
    large,
    indexFiles,
    open: async () => {
      const r = await RemoteRepository.open(file, keys, { windowChunks: 2 });
      opened.push(r);
      return r;
    },
    loc: (b) => locs.get(b.id) as Location,
    path: (key) => join(file.root, key),
  };
}

async function flip(path: string, offset: number): Promise<void> {
  const buf = await readFile(path);
  const at = offset < 0 ? buf.length + offset : offset;
  buf[at] = (buf[at] ?? 0) ^ 0x01;
  await writeFile(path, buf);
}

function packOf(f: Fixture, b: TestBlob): string {
  const loc = f.loc(b);
  if (loc.kind !== 'pack') throw new Error('not packed');
  return loc.pack;
}

function blobNameOf(f: Fixture, b: TestBlob): string {
  const loc = f.loc(b);
  if (loc.kind !== 'blob') throw new Error('not large');
  return loc.blob;
}

function integrity(t: Test, e: unknown, re: RegExp, what: string): void {
  t.ok(e instanceof RemoteIntegrityError, `${what}: a RemoteIntegrityError`);
  if (!(e instanceof RemoteIntegrityError)) {
    t.comment(String(e));
    return;
  }
  t.equal(e.code, 'E_INTEGRITY');
  t.match(e.message, re, `${what}: ${e.message}`);
  t.match(e.hint, /damaged or was tampered with/);
}

t.test('the untouched fixture reads back', async (t) => {
  const f = await fixture(t);
  const r = await f.open();
  for (const b of [...f.small, ...f.large]) if (!(await r.get('object', b.id)).equals(b.data)) t.fail(b.id);
  t.equal(f.loc(f.large[1] as TestBlob).kind, 'blob');
  t.pass('all equal');
});

t.test('a flipped byte in a pack entry', async (t) => {
  const f = await fixture(t);
  const victim = f.small[10] as TestBlob;
  const loc = f.loc(victim);
  if (loc.kind !== 'pack') throw new Error('expected packed');
  await flip(f.path(dataKey(loc.pack)), loc.offset + 100);
  const r = await f.open();
  integrity(t, await errorOf(r.get('object', victim.id)), new RegExp(`${dataKey(loc.pack)}: object ${victim.id} at offset ${loc.offset}: authentication failed`), 'get');
  integrity(t, await errorOf(collect(r.getMany([{ type: 'object', id: victim.id }]))), /authentication failed/, 'getMany');
  const neighbour = f.small.find((b) => b !== victim && f.loc(b).kind === 'pack' && packOf(f, b) === loc.pack) as TestBlob;
  t.ok((await r.get('object', neighbour.id)).equals(neighbour.data), 'other entries of the same pack still read (per-entry authentication)');
  integrity(t, await errorOf(collect(r.getMany(f.small.map((b) => ({ type: 'object' as const, id: b.id }))))), /authentication failed/, 'getMany over everything');
});

t.test('a flipped byte in a pack table', async (t) => {
  const f = await fixture(t);
  const pack = packOf(f, f.small[0] as TestBlob);
  await flip(f.path(dataKey(pack)), -10);
  const rk = deriveRemoteKeys(f.keys);
  t.teardown(() => wipeRemoteKeys(rk));
  integrity(t, await errorOf(readPackTable(f.file, rk, pack)), /pack table: authentication failed/, 'table');
  await flip(f.path(dataKey(pack)), -1); // trailer length now wrong as well
  integrity(t, await errorOf(readPackTable(f.file, rk, pack)), /pack table/, 'trailer');
});

t.test('swapped packs', async (t) => {
  const f = await fixture(t);
  const a = f.small[0] as TestBlob;
  const packA = packOf(f, a);
  const b = f.small.find((x) => f.loc(x).kind === 'pack' && packOf(f, x) !== packA) as TestBlob;
  const packB = packOf(f, b);
  const pa = f.path(dataKey(packA));
  const pb = f.path(dataKey(packB));
  await rename(pa, `${pa}.x`);
  await rename(pb, pa);
  await rename(`${pa}.x`, pb);
  const r = await f.open();
  const e = await errorOf(r.get('object', a.id));
  t.ok(e instanceof RemoteIntegrityError, `swapped: ${(e as Error).message}`);
  t.match((e as Error).message, /authentication failed|truncated/);
  const rk = deriveRemoteKeys(f.keys);
  t.teardown(() => wipeRemoteKeys(rk));
  integrity(t, await errorOf(readPackTable(f.file, rk, packA)), /pack table: authentication failed/, 'table of a renamed pack');
});

t.test('truncated and missing packs', async (t) => {
  const f = await fixture(t);
  const inPack = f.small.filter((b) => packOf(f, b) === packOf(f, f.small[0] as TestBlob));
  const last = inPack.reduce((x, y) => ((f.loc(x) as { offset: number }).offset > (f.loc(y) as { offset: number }).offset ? x : y));
  const loc = f.loc(last) as { pack: string; offset: number; length: number };
  await truncate(f.path(dataKey(loc.pack)), loc.offset + loc.length - 5);
  const r = await f.open();
  integrity(t, await errorOf(r.get('object', last.id)), /pack truncated/, 'entry cut short');
  const first = inPack.find((b) => (f.loc(b) as { offset: number }).offset === 0) as TestBlob;
  t.ok((await r.get('object', first.id)).equals(first.data), 'entries before the cut still read');
  await rm(f.path(dataKey(loc.pack)));
  integrity(t, await errorOf(r.get('object', first.id)), /pack is missing/, 'missing pack');
});

t.test('a flipped byte, truncation or renaming of an index file', async (t) => {
  const f = await fixture(t);
  t.equal(f.indexFiles.length, 1);
  const name = f.indexFiles[0] as string;
  const path = f.path(indexKey(name));
  const original = await readFile(path);

  await flip(path, 60);
  let e = await errorOf(f.open());
  integrity(t, e, new RegExp(`index/${name}: index file: authentication failed`), 'flipped');
  t.equal((e as RemoteIntegrityError).key, indexKey(name), 'names the index file');

  await writeFile(path, original.subarray(0, original.length - 1));
  integrity(t, await errorOf(f.open()), /index file: authentication failed/, 'truncated');

  await writeFile(path, original.subarray(0, 10));
  integrity(t, await errorOf(f.open()), /index file: authentication failed/, 'mostly gone');

  await rm(path);
  const other = 'ab'.repeat(32);
  await writeFile(f.path(indexKey(other)), original);
  e = await errorOf(f.open());
  integrity(t, e, /authentication failed \(damaged, forged, renamed/, 'renamed');
});

t.test('an index that points a blob at another blob is refused', async (t) => {
  const f = await fixture(t);
  const rk = deriveRemoteKeys(f.keys);
  t.teardown(() => wipeRemoteKeys(rk));
  const [a, b] = [f.small[3] as TestBlob, f.small[4] as TestBlob];
  const bigA = f.large[0] as TestBlob;
  const bigB = f.large[1] as TestBlob;
  // A correctly sealed index (whoever forges it has the keys) with locations swapped.
  const records: IndexRecord[] = [
    { type: 'object', id: a.id, loc: f.loc(b) },
    { type: 'object', id: b.id, loc: f.loc(a) },
    { type: 'manifest', id: a.id, loc: f.loc(a) },
    { type: 'object', id: bigA.id, loc: { kind: 'blob', blob: blobNameOf(f, bigB), size: bigA.data.length } },
  ];
  for (const n of f.indexFiles) await rm(f.path(indexKey(n)));
  const forged = sealIndexFile(rk, records);
  await f.file.put(forged.key, forged.data, forged.data.length);
  const r = await f.open();
  integrity(t, await errorOf(r.get('object', a.id)), new RegExp(`object ${a.id} at offset \\d+: authentication failed`), 'object a at b');
  integrity(t, await errorOf(r.get('object', b.id)), /authentication failed/, 'object b at a');
  integrity(t, await errorOf(r.get('manifest', a.id)), /manifest .*authentication failed/, 'an object entry read as a manifest');
  integrity(t, await errorOf(r.get('object', bigA.id)), /large blob of object .*: (chunk 0 of \d+: authentication failed|longer than|truncated)/, 'large blob of another id');
});

t.test('large blobs: flipped, truncated, extended, reordered, missing', async (t) => {
  const f = await fixture(t);
  const big = f.large[1] as TestBlob;
  const key = dataKey(blobNameOf(f, big));
  const path = f.path(key);
  const original = await readFile(path);
  const n = Math.ceil(big.data.length / MiB);
  t.equal(n, 4);

  const fresh = async (): Promise<RemoteRepository> => f.open();
  const read = async (): Promise<unknown> => errorOf(collect((await fresh()).read('object', big.id)));

  await flip(path, BLOB_HEADER_BYTES + BLOB_RAW_CHUNK_BYTES + 500);
  integrity(t, await read(), /chunk 1 of 4: authentication failed/, 'flipped byte in chunk 1');
  // The chunks before it were delivered first: a streaming reader must discard what it got on error.

  await writeFile(path, original.subarray(0, BLOB_HEADER_BYTES + 3 * BLOB_RAW_CHUNK_BYTES));
  integrity(t, await read(), /truncated/, 'truncated at a chunk boundary');

  await writeFile(path, original);
  await appendFile(path, Buffer.from('junk'));
  integrity(t, await read(), /longer than/, 'extended');

  const swapped = Buffer.from(original);
  original.copy(swapped, BLOB_HEADER_BYTES, BLOB_HEADER_BYTES + BLOB_RAW_CHUNK_BYTES, BLOB_HEADER_BYTES + 2 * BLOB_RAW_CHUNK_BYTES);
  original.copy(swapped, BLOB_HEADER_BYTES + BLOB_RAW_CHUNK_BYTES, BLOB_HEADER_BYTES, BLOB_HEADER_BYTES + BLOB_RAW_CHUNK_BYTES);
  await writeFile(path, swapped);
  integrity(t, await read(), /chunk 0 of 4: authentication failed/, 'chunks 0 and 1 swapped');

  const header = Buffer.from(original);
  header[1] = 21;
  await writeFile(path, header);
  integrity(t, await read(), /unknown header/, 'header changed');

  // The last chunk cut off and the one before it re-labelled would need the key; cutting just the final
  // chunk's tail is caught by length and by its tag.
  await writeFile(path, original.subarray(0, original.length - 1));
  integrity(t, await read(), /truncated/, 'one byte short');

  await rm(path);
  integrity(t, await read(), /missing/, 'missing');
  integrity(t, await errorOf((await fresh()).get('object', big.id)), /missing/, 'get() too');

  await writeFile(path, original);
  t.ok(Buffer.concat(await collect((await fresh()).read('object', big.id))).equals(big.data), 'restored: reads again');
});

t.test('config: other keys, damage, wrong version', async (t) => {
  const f = await fixture(t);
  const other = repoKeys(t, OTHER_SECRET);
  const e = await errorOf(RemoteRepository.open(f.file, other));
  t.ok(e instanceof DvfsError && e.code === 'E_CONFIG', 'E_CONFIG');
  t.match((e as DvfsError).message, /its config does not open with this repository's keys/);
  t.match((e as DvfsError).hint, /made from another repository/);
  t.match(await errorOf(RemoteRepository.openOrInit(f.file, other)), { code: 'E_CONFIG' }, 'openOrInit does not overwrite it');
  t.match(await errorOf(RemoteRepository.init(f.file, other)), { code: 'E_CONFIG' }, 'nor does init');
  await flip(f.path('config'), 30);
  t.match(await errorOf(f.open()), { code: 'E_CONFIG' }, 'a damaged config');
});

t.test('refs: flipped and renamed', async (t) => {
  const f = await fixture(t);
  const r = await f.open();
  t.equal((await r.readRef())?.snapshot, f.small[0]?.id);
  await copyFile(f.path('refs/HEAD'), f.path('refs/main'));
  integrity(t, await errorOf(r.readRef('main')), /refs\/main: ref: authentication failed/, 'a ref copied to another name');
  await flip(f.path('refs/HEAD'), 40);
  integrity(t, await errorOf(r.readRef()), /refs\/HEAD: ref: authentication failed/, 'flipped');
});
