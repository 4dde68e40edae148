// The remote formats at the unit level: pack writer and table, index encoding (round trip, strictness,
// splitting, supersedes), large-blob sealing at chunk boundaries, key derivation, config and refs.
import t, { type Test } from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sodium from 'sodium-native';
import { blobChunkCount, blobRawSize, BLOB_CHUNK_BYTES, FILE_BLOB_PART_CHUNKS, PartBuffers, readBlob, sealBlob, sealFileBlob, uploadBlob, uploadFileBlob } from '../../daemon/remote/blob.js';
import { FakeS3, fakeS3Backend } from './backend-fake-s3.js';
import { newConfig, openConfig, openRef, sealConfig, sealRef } from '../../daemon/remote/config.js';
import { deriveRemoteKeys, REMOTE_KEY_LABEL, SEAL_OVERHEAD, wipeRemoteKeys, type RemoteKeys } from '../../daemon/remote/keys.js';
import { dataKey, nameOfDataKey, newName, RemoteIntegrityError } from '../../daemon/remote/layout.js';
import { decodeIndex, encodeIndex, loadIndex, openIndexFile, sealIndexFile, sealIndexFiles, type IndexRecord } from '../../daemon/remote/pack-index.js';
import { openEntry, PackWriter, parsePackTable, TRAILER_BYTES } from '../../daemon/remote/pack.js';
import { getVolumeConfig, putVolumeConfig, verifyVolumeConfig, type VolumeConfigFile } from '../../daemon/remote/volume.js';
import { deriveRepoKeys, wipeRepoKeys } from '../../daemon/store/keys.js';
import type { ObjectId } from '../../daemon/store/object-id.js';
import { blobOf, collect, errorOf, repoKeys, SECRET, tempDir, tempRemote } from './pack-helpers.js';

const id = (c: string): ObjectId => c.repeat(64) as ObjectId;

function remoteKeys(t: Test): RemoteKeys {
  const k = deriveRemoteKeys(repoKeys(t));
  t.teardown(() => wipeRemoteKeys(k));
  return k;
}

t.test('remote keys: derived from the manifest key, distinct, stable', async (t) => {
  const rk = deriveRepoKeys(SECRET);
  const k = deriveRemoteKeys(rk);
  const all = Object.values(k).map((b) => Buffer.from(b).toString('hex'));
  t.equal(new Set([...all, rk.manifest.toString('hex'), rk.contentHash.toString('hex'), rk.paths.toString('hex')]).size, all.length + 3, 'all keys differ');
  const remote = Buffer.alloc(32);
  sodium.crypto_generichash(remote, Buffer.from(REMOTE_KEY_LABEL), rk.manifest);
  const pack = Buffer.alloc(32);
  sodium.crypto_generichash(pack, Buffer.from('dvfs remote pack v1'), remote);
  t.equal(Buffer.from(k.pack).toString('hex'), pack.toString('hex'), 'pack = BLAKE2b(key = BLAKE2b(key = manifest, label), "dvfs remote pack v1")');
  const again = deriveRemoteKeys(rk);
  t.same(Object.values(again).map((b) => Buffer.from(b).toString('hex')), all, 'deterministic');
  wipeRemoteKeys(k);
  t.ok(k.pack.every((x) => x === 0), 'wiped');
  wipeRemoteKeys(again);
  wipeRepoKeys(rk);
});

t.test('pack writer and table', async (t) => {
  const keys = remoteKeys(t);
  const w = new PackWriter(keys);
  t.equal(nameOfDataKey(dataKey(w.name)), w.name);
  const blobs = [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(5000, 7)];
  const entries = blobs.map((b, i) => w.add(i === 1 ? 'manifest' : 'object', id(String(i)), b));
  t.same(
    entries.map((e) => [e.offset, e.length]),
    [
      [0, 40],
      [40, 45],
      [85, 5040],
    ],
    'entries back to back, 40 bytes of overhead each',
  );
  t.equal(w.size, 5125);
  const fin = w.finish();
  t.throws(() => w.add('object', id('9'), Buffer.alloc(1)), /after finish/);
  const tableLen = fin.data.readUInt32BE(fin.data.length - TRAILER_BYTES);
  t.equal(tableLen, SEAL_OVERHEAD + 5 + 3 * 37, 'table: header + 37 bytes per entry, sealed');
  t.equal(fin.data.length, 5125 + tableLen + 4);
  t.same(parsePackTable(keys, 'file:///x', fin.name, fin.data, fin.data.length), entries, 'table parses back to the entries');
  t.same(parsePackTable(keys, 'file:///x', fin.name, fin.data.subarray(-200), fin.data.length), entries, 'from the tail alone');
  for (const [i, e] of entries.entries()) t.same(openEntry(keys, 'file:///x', fin.name, e, fin.data.subarray(e.offset, e.offset + e.length)), blobs[i]);
  t.throws(() => openEntry(keys, 'file:///x', newName(), entries[1] as (typeof entries)[number], fin.data.subarray(40, 85)), RemoteIntegrityError, 'entry of another pack');
  t.throws(() => openEntry(keys, 'file:///x', fin.name, { ...(entries[1] as (typeof entries)[number]), type: 'object' }, fin.data.subarray(40, 85)), /authentication failed/, 'wrong type');
  t.throws(() => openEntry(keys, 'file:///x', fin.name, entries[2] as (typeof entries)[number], fin.data.subarray(85, 90)), /got 5 of 5040 bytes/);
  t.throws(() => parsePackTable(keys, 'file:///x', fin.name, fin.data, fin.data.length + 1), /do not add up/);

  const empty = new PackWriter(keys).finish();
  t.same(parsePackTable(keys, 'l', empty.name, empty.data, empty.data.length), [], 'an empty pack');
  t.throws(() => parsePackTable(keys, 'l', empty.name, Buffer.alloc(2), 2), /too short/);
});

t.test('index encoding', async (t) => {
  const keys = remoteKeys(t);
  const [p1, p2, b1] = [newName(), newName(), newName()];
  const records: IndexRecord[] = [
    { type: 'object', id: id('1'), loc: { kind: 'pack', pack: p1, offset: 0, length: 40 } },
    { type: 'manifest', id: id('2'), loc: { kind: 'pack', pack: p2, offset: 4_000_000_000, length: 100 } },
    { type: 'object', id: id('3'), loc: { kind: 'pack', pack: p1, offset: 40, length: 41 } },
    { type: 'object', id: id('4'), loc: { kind: 'blob', blob: b1, size: 2 ** 40 + 3 } },
  ];
  const sup = [newName()];
  const plain = encodeIndex(records, sup);
  t.equal(plain.length, 1 + 4 + 32 + 4 + 64 + 4 + 3 * 45 + 4 + 73);
  const back = decodeIndex(plain);
  t.same(back.supersedes, sup);
  t.same(
    back.records.sort((a, b) => (a.id < b.id ? -1 : 1)),
    records,
  );
  t.throws(() => decodeIndex(Buffer.concat([plain, Buffer.alloc(1)])), /garbage/);
  t.throws(() => decodeIndex(plain.subarray(0, plain.length - 1)), /truncated/);
  const badVersion = Buffer.from(plain);
  badVersion[0] = 2;
  t.throws(() => decodeIndex(badVersion), /unknown index version 2/);
  const badType = Buffer.from(plain);
  badType[1 + 4 + 32 + 4 + 64 + 4] = 9;
  t.throws(() => decodeIndex(badType), /unknown blob type 9/);
  const badPack = Buffer.from(plain);
  badPack.writeUInt32BE(7, 1 + 4 + 32 + 4 + 64 + 4 + 33);
  t.throws(() => decodeIndex(badPack), /refers to pack #7 of 2/);
  t.throws(() => decodeIndex(Buffer.from([1, 0xff, 0xff, 0xff, 0xff])), /truncated in supersedes/, 'a huge count is not trusted');

  const file = sealIndexFile(keys, records, sup);
  t.equal(file.key, `index/${file.name}`);
  t.same(sealIndexFile(keys, records, sup).name, file.name, 'names are a keyed hash of the contents (stable)');
  t.not(sealIndexFile(keys, records.slice(1), sup).name, file.name);
  t.same(openIndexFile(keys, 'l', file.name, file.data).records.length, 4);
  t.throws(() => openIndexFile(keys, 'l', newName(), file.data), /authentication failed/, 'under another name');

  const many: IndexRecord[] = Array.from({ length: 25 }, (_, i) => ({ type: 'object', id: i.toString(16).padStart(64, '0') as ObjectId, loc: { kind: 'pack', pack: p1, offset: i * 40, length: 40 } }));
  const split = sealIndexFiles(keys, many, 10, sup);
  t.same(
    split.map((f) => openIndexFile(keys, 'l', f.name, f.data).records.length),
    [10, 10, 5],
  );
  t.same(openIndexFile(keys, 'l', split[0]?.name as string, split[0]?.data as Buffer).supersedes, sup, 'supersedes in the first file');
  t.equal(sealIndexFiles(keys, [], 10).length, 1, 'an empty index is still one file');
});

t.test('loadIndex honours supersedes', async (t) => {
  const keys = remoteKeys(t);
  const remote = await tempRemote(t);
  const p = newName();
  const rec = (c: string, offset: number): IndexRecord => ({ type: 'object', id: id(c), loc: { kind: 'pack', pack: p, offset, length: 50 } });
  const old1 = sealIndexFile(keys, [rec('1', 0)]);
  const old2 = sealIndexFile(keys, [rec('2', 50)]);
  const compacted = sealIndexFile(keys, [rec('1', 100), rec('2', 150)], [old1.name, old2.name]);
  for (const f of [old1, old2, compacted]) await remote.put(f.key, f.data, f.data.length);
  const loaded = await loadIndex(remote, keys);
  t.equal(loaded.files.length, 3);
  t.same(loaded.superseded.sort(), [old1.name, old2.name].sort());
  t.equal(loaded.index.size, 2);
  t.same(loaded.index.get('object', id('1')), { kind: 'pack', pack: p, offset: 100, length: 50 }, 'the superseding file wins');
  await remote.put('index/not-an-index', Buffer.from('x'), 1);
  t.equal((await loadIndex(remote, keys)).files.length, 3, 'other names under index/ are ignored');
});

t.test('large blobs at chunk boundaries', async (t) => {
  const rk = repoKeys(t);
  const keys = remoteKeys(t);
  const remote = await tempRemote(t);
  const C = BLOB_CHUNK_BYTES;
  for (const size of [0, 1, C - 1, C, C + 1, 2 * C, 3 * C + 7]) {
    const b = blobOf(rk, size);
    t.equal(blobRawSize(size), 4 + size + 40 * Math.max(1, Math.ceil(size / C)));
    const loc = await uploadBlob(remote, keys, 'object', b.id, size, async function* () {
      for (let off = 0; off < size; off += 300_000) yield b.data.subarray(off, off + 300_000);
    });
    t.equal(await remote.head(dataKey(loc.blob)), blobRawSize(size), `size ${size}: raw size`);
    for (const windowChunks of [1, 2, 16]) {
      const parts = await collect(readBlob(remote, keys, 'object', b.id, loc, { windowChunks }));
      t.equal(parts.length, blobChunkCount(size), `size ${size}, window ${windowChunks}: ${parts.length} chunks`);
      if (!Buffer.concat(parts).equals(b.data)) t.fail(`size ${size}, window ${windowChunks}: differs`);
    }
    t.match(await errorOf(collect(readBlob(remote, keys, 'manifest', b.id, loc))), { code: 'E_INTEGRITY', message: /authentication failed|longer|truncated/ }, 'wrong type');
    t.match(await errorOf(collect(readBlob(remote, keys, 'object', b.id, { ...loc, size: size + 1 }))), { code: 'E_INTEGRITY' }, 'wrong size in the index');
  }
  // A source that is longer or shorter than announced (a file changed while being pushed).
  const b = blobOf(rk, C + 10);
  t.match(await errorOf(collect(sealBlob(keys, newName(), 'object', b.id, (async function* () { yield b.data; })(), C + 5))), { code: 'E_IO', message: /did the file change/ });
  t.match(await errorOf(collect(sealBlob(keys, newName(), 'object', b.id, (async function* () { yield b.data; })(), C + 20))), { code: 'E_IO' });
  t.match(await errorOf(collect(sealBlob(keys, newName(), 'object', b.id, (async function* () { yield b.data.subarray(0, C); })(), C + 10))), { code: 'E_IO' });
});

t.test('large blobs sealed from a file in place: the same format, in part-sized buffers', async (t) => {
  const rk = repoKeys(t);
  const keys = remoteKeys(t);
  const remote = await tempRemote(t);
  const dir = await tempDir(t);
  const C = BLOB_CHUNK_BYTES;
  const P = FILE_BLOB_PART_CHUNKS;
  for (const size of [0, 1, C - 1, C, C + 1, P * C, P * C + 1, (P + 2) * C + 7]) {
    const b = blobOf(rk, size);
    const path = join(dir, `f${size}`);
    await writeFile(path, b.data);
    const name = newName();
    const raw = await collect(sealFileBlob(keys, name, 'object', b.id, path, size));
    t.equal(raw.length, Math.ceil(blobChunkCount(size) / P), `size ${size}: one buffer per ${P} chunks`);
    t.equal(raw.reduce((a, r) => a + r.length, 0), blobRawSize(size), `size ${size}: raw size`);
    // What sealBlob would have written, chunk by chunk (nonces differ: compare by opening).
    const loc = await uploadFileBlob(remote, keys, 'object', b.id, size, path);
    t.equal(await remote.head(dataKey(loc.blob)), blobRawSize(size));
    const parts = await collect(readBlob(remote, keys, 'object', b.id, loc));
    if (!Buffer.concat(parts).equals(b.data)) t.fail(`size ${size}: differs after the round trip`);
  }
  // A file longer or shorter than announced (changed while being pushed).
  const b = blobOf(rk, C + 10);
  const path = join(dir, 'changed');
  await writeFile(path, b.data);
  t.match(await errorOf(collect(sealFileBlob(keys, newName(), 'object', b.id, path, C + 5))), { code: 'E_IO', message: /did it change/ }, 'longer');
  t.match(await errorOf(collect(sealFileBlob(keys, newName(), 'object', b.id, path, C + 20))), { code: 'E_IO' }, 'shorter');
  t.match(await errorOf(collect(sealFileBlob(keys, newName(), 'object', b.id, path, 2 * C + 10))), { code: 'E_IO' }, 'a chunk short');
});

t.test('config and refs', async (t) => {
  const keys = remoteKeys(t);
  const c = newConfig({ packSize: 2048, largeThreshold: 1024 }, new Date('2024-05-01T00:00:00Z'));
  t.same({ ...c, id: 'x' }, { format: 'dvfs-remote', version: 1, id: 'x', createdAt: '2024-05-01T00:00:00.000Z', packSize: 2048, largeThreshold: 1024 });
  t.same(openConfig(keys, 'l', sealConfig(keys, c)), c);
  const ref = { ref: 'HEAD', snapshot: id('a'), time: '2024-05-01T00:00:00.000Z' };
  t.same(openRef(keys, 'l', 'HEAD', sealRef(keys, ref)), ref);
  t.throws(() => openRef(keys, 'l', 'main', sealRef(keys, ref)), /authentication failed/);
  t.throws(() => sealRef(keys, { ...ref, ref: '../x' }), /invalid ref name/);
  t.throws(() => newConfig({ packSize: 2 * 1024 ** 3 }), /outside 1 KiB\.\.1 GiB/);
});

t.test('volume config on the remote', async (t) => {
  const keys = remoteKeys(t);
  const remote = await tempRemote(t);
  const candidates = ['.encfs6.xml', '.dvfs-native.json'];
  t.equal(await getVolumeConfig(remote, candidates), null);
  const file = { fileName: '.encfs6.xml', data: Buffer.from('<?xml version="1.0"?><boost_serialization/>') };
  await putVolumeConfig(remote, keys, file);
  t.ok((await remote.head('keys/encfs6.xml')) !== null && (await remote.head('keys/encfs6.xml.mac')) === 32, 'stored as keys/encfs6.xml (+ .mac)');
  const got = await getVolumeConfig(remote, candidates);
  t.same(got, file);
  await verifyVolumeConfig(remote, keys, got as VolumeConfigFile);
  const edited = { ...file, data: Buffer.from(file.data.toString().replace('boost', 'BOOST')) };
  await remote.put('keys/encfs6.xml', edited.data, edited.data.length);
  t.match(await errorOf(verifyVolumeConfig(remote, keys, edited)), { code: 'E_INTEGRITY', message: /keys\/encfs6.xml.mac: volume config does not match its MAC/ });
  const other = deriveRemoteKeys(repoKeys(t, Buffer.alloc(32, 9)));
  t.teardown(() => wipeRemoteKeys(other));
  t.match(await errorOf(verifyVolumeConfig(remote, other, file)), { code: 'E_INTEGRITY' }, 'other keys');
  await remote.delete(['keys/encfs6.xml.mac']);
  t.match(await errorOf(verifyVolumeConfig(remote, keys, file)), { message: /MAC is missing/ });
  t.match(await errorOf(putVolumeConfig(remote, keys, { fileName: '../x', data: Buffer.alloc(0) })), { code: 'E_USAGE' });
});

t.test('part buffers: reused only when all of a taken buffer comes back, once', async (t) => {
  const pool = new PartBuffers(2);
  const a = pool.take(1000);
  t.equal(a.length, 1000);
  pool.give(a.subarray(0, 500));
  t.equal(pool.spare, 0, 'a piece of a taken buffer is not taken back (its other pieces may still be in flight)');
  pool.give(a.subarray(500));
  t.equal(pool.spare, 0, 'nor a piece at an offset');
  pool.give(Buffer.alloc(1000));
  t.equal(pool.spare, 0, 'nor a buffer it did not give');
  pool.give(a);
  t.equal(pool.spare, 1, 'the whole part is');
  pool.give(a);
  t.equal(pool.spare, 1, 'once');
  const b = pool.take(800);
  t.equal(b.length, 800, 'a smaller request gets a view of the reused buffer');
  t.equal(b.buffer, a.buffer, 'the same memory');
  t.equal(pool.spare, 0);
  pool.give(b);
  t.equal(pool.spare, 1, 'a view given back whole (its taken size) is reusable again');
  const c = pool.take(2000);
  t.not(c.buffer, a.buffer, 'too small a spare is not used for a bigger request');
  const d = pool.take(10);
  const e = pool.take(10);
  pool.give(c);
  pool.give(d);
  pool.give(e);
  t.equal(pool.spare, 2, 'at most `keep` spares are kept');
});

t.test('large file blobs through multipart uploads reuse their part buffers, and arrive intact', async (t) => {
  const MiB = 1024 * 1024;
  const rk = repoKeys(t);
  const keys = remoteKeys(t);
  const dir = await tempDir(t);
  const size = (3 * FILE_BLOB_PART_CHUNKS + 2) * BLOB_CHUNK_BYTES + 4321;
  const b = blobOf(rk, size);
  const path = join(dir, 'big');
  await writeFile(path, b.data);
  // partSize 16 MiB: each sealed buffer is one part, given back once uploaded. partSize 5 MiB: the backend
  // cuts each buffer into pieces, none of which may be reused while its siblings are in flight.
  for (const [partSize, reused] of [[16 * MiB, true], [5 * MiB, false]] as const) {
    const fake = new FakeS3('bkt');
    const backend = fakeS3Backend(fake, 's3://bkt?endpoint=http://fake.invalid:9000', { multipartThreshold: 5 * MiB, partSize, connections: 2 });
    t.teardown(() => backend.close());
    const buffers = new PartBuffers();
    const loc = await uploadFileBlob(backend, keys, 'object', b.id, size, path, buffers);
    const parts = fake.requests.filter((r) => r.method === 'PUT' && r.query['partNumber'] !== undefined).length;
    t.ok(parts >= 4, `partSize ${partSize / MiB} MiB: a multipart upload (${parts} parts)`);
    if (reused) t.ok(buffers.spare >= 1, `partSize ${partSize / MiB} MiB: sent parts came back for reuse (${buffers.spare} spare)`);
    else t.equal(buffers.spare, 0, `partSize ${partSize / MiB} MiB: pieces were not reused`);
    const plain = Buffer.concat(await collect(readBlob(backend, keys, 'object', b.id, loc)));
    t.ok(plain.equals(b.data), `partSize ${partSize / MiB} MiB: the blob opens to the file's bytes`);
    // A second blob through the same pool (reusing what the first one sent) is intact too.
    const loc2 = await uploadFileBlob(backend, keys, 'object', b.id, size, path, buffers);
    t.ok(Buffer.concat(await collect(readBlob(backend, keys, 'object', b.id, loc2))).equals(b.data), `partSize ${partSize / MiB} MiB: and so does a second one`);
  }
});
