// dvfs-native file contents: a random-access model test, concurrency, the size arithmetic, and tampering
// (bit flips, swapped / foreign / appended chunks, truncation at and between chunk boundaries).
import t, { type Test } from 'tap';
import { open, readFile, stat, truncate, writeFile } from 'node:fs/promises';
import { IntegrityError } from '../../daemon/errors.js';
import { CHUNK_OVERHEAD, ChunkLayout, HEADER_BYTES } from '../../daemon/native/content.js';
import type { NativeTree } from '../../daemon/native/tree.js';
import type { FileContent } from '../../daemon/vfs/crypto-tree.js';
import { rng } from '../helpers/rng.js';
import { errorOf, newVolume } from './native-helpers.js';

async function openFile(tree: NativeTree, path: string): Promise<FileContent> {
  return tree.openContent(await tree.locate(path), { create: true, mode: 0o644 });
}

async function rawOf(tree: NativeTree, path: string): Promise<string> {
  return (await tree.locate(path)).rawPath;
}

t.test('size arithmetic', async (t) => {
  for (const C of [64, 100, 4096]) {
    const L = new ChunkLayout(C);
    const seen = new Set<number>();
    for (let plain = 0; plain <= 5 * C + 3; plain++) {
      const raw = L.rawSize(plain);
      if (L.plainSize(raw) !== plain) t.fail(`C=${C}: plainSize(rawSize(${plain})) = ${L.plainSize(raw)}`);
      seen.add(raw);
    }
    // Every raw size the layout can produce maps back; everything else is impossible.
    for (let raw = 0; raw <= L.rawSize(5 * C + 3); raw++) {
      if (!seen.has(raw) && L.plainSize(raw) !== -1) t.fail(`C=${C}: raw size ${raw} should be impossible`);
    }
    t.equal(L.rawSize(0), 0, `C=${C}: an empty file is 0 raw bytes`);
    t.equal(L.plainSize(HEADER_BYTES), -1, `C=${C}: a header-only file is impossible`);
    t.equal(L.plainSize(HEADER_BYTES + CHUNK_OVERHEAD), -1, `C=${C}: an empty chunk is impossible`);
    t.equal(L.rawSize(C), HEADER_BYTES + C + CHUNK_OVERHEAD, `C=${C}: one full chunk`);
  }
});

for (const chunkSize of [64, 4096]) {
  t.test(`random ops model, chunk size ${chunkSize}`, async (t) => {
    const seed = 0x5eed0 + chunkSize;
    const r = rng(seed);
    const tree = await newVolume(t, chunkSize);
    const C = chunkSize;
    const file = await openFile(tree, 'model.bin');
    const raw = await rawOf(tree, 'model.bin');
    let model = Buffer.alloc(0);
    const steps = 400;
    try {
      for (let step = 0; step < steps; step++) {
        const where = `seed ${seed}, step ${step}`;
        const op = r.int(10);
        let what: string;
        if (op < 5) {
          // writes anywhere, past EOF too, often straddling chunk boundaries
          const offset = r.int(Math.max(1, model.length + 3 * C));
          const data = r.bytes(r.int(r.int(4) === 0 ? 6 * C : C) + 1);
          what = `write(${offset}, ${data.length})`;
          t.equal(await file.write(offset, data), data.length);
          if (offset + data.length > model.length) {
            const grown = Buffer.alloc(offset + data.length);
            model.copy(grown);
            model = grown;
          }
          data.copy(model, offset);
        } else if (op < 7) {
          const choice = r.int(4);
          const size = choice === 0 ? r.int(4) * C : choice === 1 ? 0 : r.int(model.length + 3 * C + 1);
          what = `truncate(${size})`;
          await file.truncate(size);
          const next = Buffer.alloc(size);
          model.copy(next, 0, 0, Math.min(size, model.length));
          model = next;
        } else {
          const offset = r.int(model.length + 10);
          const length = r.int(3 * C + 5);
          what = `read(${offset}, ${length})`;
          const got = await file.read(offset, length);
          const want = model.subarray(Math.min(offset, model.length), Math.min(model.length, offset + length));
          if (!got.equals(want)) {
            t.fail(`${what} differs from the model (${where})`);
            return;
          }
        }
        // After every step: size, raw size arithmetic and the whole content match the model.
        const size = await file.size();
        if (size !== model.length) {
          t.fail(`after ${what}: size ${size} != model ${model.length} (${where})`);
          return;
        }
        const rawSize = (await stat(raw)).size;
        if (rawSize !== tree.layout.rawSize(model.length)) {
          t.fail(`after ${what}: raw size ${rawSize} != ${tree.layout.rawSize(model.length)} (${where})`);
          return;
        }
        if (!(await file.read(0, model.length + 1)).equals(model)) {
          t.fail(`after ${what}: content differs from the model (${where})`);
          return;
        }
      }
      t.pass(`${steps} random ops matched the model (seed ${seed})`);
    } finally {
      await file.close();
    }
    const again = await tree.openContent(await tree.locate('model.bin'), { readOnly: true });
    try {
      t.ok((await again.read(0, model.length)).equals(model), `a fresh open reads the same bytes (seed ${seed})`);
      t.equal(tree.plainSize(await stat(raw), await tree.locate('model.bin')), model.length, 'plainSize from raw stats');
    } finally {
      await again.close();
    }
  });
}

t.test('concurrent requests behave as if run one by one, in call order', async (t) => {
  const seed = 0xc0c0;
  const r = rng(seed);
  const tree = await newVolume(t, 128);
  const file = await openFile(tree, 'c.bin');
  let model = Buffer.alloc(0);
  const pending: Promise<unknown>[] = [];
  let mismatches = 0;
  for (let i = 0; i < 300; i++) {
    const op = r.int(3);
    if (op === 0) {
      const offset = r.int(model.length + 300);
      const data = r.bytes(r.int(700) + 1);
      pending.push(file.write(offset, data));
      const grown = Buffer.alloc(Math.max(model.length, offset + data.length));
      model.copy(grown);
      data.copy(grown, offset);
      model = grown;
    } else if (op === 1) {
      const size = r.int(model.length + 300);
      pending.push(file.truncate(size));
      const next = Buffer.alloc(size);
      model.copy(next, 0, 0, Math.min(size, model.length));
      model = next;
    } else {
      const want = Buffer.from(model);
      pending.push(
        file.read(0, want.length + 10).then((got) => {
          if (!got.equals(want)) mismatches++;
        }),
      );
      const expectSize = want.length;
      pending.push(
        file.size().then((s) => {
          if (s !== expectSize) mismatches++;
        }),
      );
    }
  }
  await Promise.all(pending);
  t.equal(mismatches, 0, `every read saw exactly the writes issued before it (seed ${seed})`);
  t.ok((await file.read(0, model.length)).equals(model), 'final content');
  await file.close();
});

t.test('openContent: create, read-only, empty files, truncate(0)', async (t) => {
  const tree = await newVolume(t);
  const loc = await tree.locate('new.txt');
  t.equal(((await errorOf(tree.openContent(loc, {}))) as NodeJS.ErrnoException).code, 'ENOENT', 'no create: ENOENT');
  const f = await tree.openContent(loc, { create: true, mode: 0o600 });
  t.equal((await stat(loc.rawPath)).size, 0, 'a created file is 0 raw bytes');
  t.equal((await stat(loc.rawPath)).mode & 0o777, 0o600, 'mode applied');
  t.equal(await f.size(), 0);
  t.equal((await f.read(0, 100)).length, 0);
  t.equal((await f.rawStats()).size, 0, 'rawStats');
  await f.write(0, Buffer.from('hello world'));
  const header1 = (await readFile(loc.rawPath)).subarray(0, HEADER_BYTES);
  await f.truncate(0);
  t.equal((await stat(loc.rawPath)).size, 0, 'truncate(0) leaves 0 raw bytes');
  await f.write(0, Buffer.from('hello world'));
  const header2 = (await readFile(loc.rawPath)).subarray(0, HEADER_BYTES);
  t.notOk(header1.equals(header2), 'a file emptied and rewritten gets a new file id');
  await f.truncate(5000);
  t.equal(await f.size(), 5000, 'truncate up');
  t.ok((await f.read(11, 4989)).equals(Buffer.alloc(4989)), 'extension reads as zeros');
  await f.close();

  const ro = await tree.openContent(loc, { readOnly: true });
  t.equal(((await errorOf(ro.write(0, Buffer.from('x')))) as NodeJS.ErrnoException).code, 'EBADF', 'read-only handle refuses writes');
  t.equal(((await errorOf(ro.truncate(0))) as NodeJS.ErrnoException).code, 'EBADF', 'and truncation');
  t.equal((await ro.read(0, 5)).toString(), 'hello');
  await ro.close();
  await ro.close(); // idempotent

  // Growing an empty file by truncate writes sealed zero chunks: no unauthenticated holes.
  const g = await tree.openContent(await tree.locate('sparse.bin'), { create: true });
  await g.write(3 * 4096 + 10, Buffer.from('tail'));
  t.equal(await g.size(), 3 * 4096 + 14);
  t.ok((await g.read(0, 3 * 4096 + 10)).equals(Buffer.alloc(3 * 4096 + 10)), 'gap reads as zeros');
  await g.close();
  const rawSparse = await readFile((await tree.locate('sparse.bin')).rawPath);
  t.notOk(rawSparse.subarray(HEADER_BYTES, HEADER_BYTES + 4096).equals(Buffer.alloc(4096)), 'gap chunks are sealed, not holes');
});

// ---- tampering -------------------------------------------------------------------------------------------

const C = 256;
const R = C + CHUNK_OVERHEAD;

/** A volume with 'd/f.bin' of 5 full chunks + 100 bytes, and 'd/g.bin' of the same size. */
async function tamperSetup(t: Test): Promise<{ tree: NativeTree; data: Buffer; raw: string; otherRaw: string }> {
  const tree = await newVolume(t, C);
  await tree.mkdir(await tree.locate('d'), 0o755);
  const r = rng(77);
  const data = r.bytes(5 * C + 100);
  for (const name of ['d/f.bin', 'd/g.bin']) {
    const f = await openFile(tree, name);
    await f.write(0, name === 'd/f.bin' ? data : r.bytes(data.length));
    await f.close();
  }
  return { tree, data, raw: await rawOf(tree, 'd/f.bin'), otherRaw: await rawOf(tree, 'd/g.bin') };
}

async function patch(raw: string, position: number, bytes: Buffer): Promise<void> {
  const h = await open(raw, 'r+');
  try {
    await h.write(bytes, 0, bytes.length, position);
  } finally {
    await h.close();
  }
}

async function readChunk(tree: NativeTree, path: string, index: number, length = C): Promise<unknown> {
  const f = await tree.openContent(await tree.locate(path), { readOnly: true });
  try {
    return await errorOf(f.read(index * C, length));
  } finally {
    await f.close();
  }
}

function isIntegrity(t: Test, e: unknown, block: number | undefined, what: string): void {
  if (!(e instanceof IntegrityError)) {
    t.fail(`${what}: expected IntegrityError, got ${String(e)}`);
    return;
  }
  t.equal(e.code, 'E_INTEGRITY', `${what}: E_INTEGRITY`);
  t.equal(e.path, 'd/f.bin', `${what}: names the file`);
  if (block !== undefined) {
    t.equal(e.block, block, `${what}: names chunk ${block}`);
    t.match(e.message, new RegExp(`chunk ${block}\\b`), `${what}: message names the chunk`);
  }
}

t.test('tamper: a flipped bit anywhere in a chunk', async (t) => {
  const { tree, data, raw } = await tamperSetup(t);
  const reported: IntegrityError[] = [];
  tree.onIntegrityError = (e) => reported.push(e);
  const original = await readFile(raw);
  for (const [part, offset] of [
    ['nonce', 3],
    ['ciphertext', CHUNK_OVERHEAD + 7],
    ['tag', R - 1],
  ] as const) {
    const pos = HEADER_BYTES + 2 * R + offset;
    await patch(raw, pos, Buffer.from([original[pos]! ^ 0x10]));
    isIntegrity(t, await readChunk(tree, 'd/f.bin', 2), 2, `flipped ${part} byte`);
    // Random access: the other chunks still read.
    const ok = await readChunk(tree, 'd/f.bin', 1);
    t.equal(ok, null, `chunk 1 still reads after tampering with chunk 2's ${part}`);
    await writeFile(raw, original);
  }
  t.equal(reported.length, 3, 'each failure was reported to onIntegrityError');
  // A write that has to keep part of the damaged chunk refuses too (no re-sealing of forged data).
  const pos = HEADER_BYTES + 2 * R + CHUNK_OVERHEAD;
  await patch(raw, pos, Buffer.from([original[pos]! ^ 1]));
  const f = await tree.openContent(await tree.locate('d/f.bin'), {});
  isIntegrity(t, await errorOf(f.write(2 * C + 5, Buffer.from('x'))), 2, 'partial write into a damaged chunk');
  // ... but a write covering the whole chunk replaces it, and truncate(0) always works.
  await f.write(2 * C, data.subarray(2 * C, 3 * C));
  t.ok((await f.read(0, data.length)).equals(data), 'overwriting the whole chunk heals it');
  await f.close();
});

t.test('tamper: header version and file id', async (t) => {
  const { tree, raw, otherRaw } = await tamperSetup(t);
  const original = await readFile(raw);
  await patch(raw, 1, Buffer.from([7]));
  isIntegrity(t, await readChunk(tree, 'd/f.bin', 0), undefined, 'unknown version');
  await writeFile(raw, original);
  // The header of another file: every chunk was sealed for a different file id.
  await patch(raw, 0, (await readFile(otherRaw)).subarray(0, HEADER_BYTES));
  isIntegrity(t, await readChunk(tree, 'd/f.bin', 0), 0, 'header copied from another file');
});

t.test('tamper: swapped and foreign chunks', async (t) => {
  const { tree, raw, otherRaw } = await tamperSetup(t);
  const original = await readFile(raw);
  const chunk = (b: Buffer, i: number): Buffer => Buffer.from(b.subarray(HEADER_BYTES + i * R, HEADER_BYTES + (i + 1) * R));
  await patch(raw, HEADER_BYTES + 1 * R, chunk(original, 3));
  await patch(raw, HEADER_BYTES + 3 * R, chunk(original, 1));
  isIntegrity(t, await readChunk(tree, 'd/f.bin', 1), 1, 'chunks 1 and 3 swapped (read 1)');
  isIntegrity(t, await readChunk(tree, 'd/f.bin', 3), 3, 'chunks 1 and 3 swapped (read 3)');
  await writeFile(raw, original);
  await patch(raw, HEADER_BYTES + 2 * R, chunk(await readFile(otherRaw), 2));
  isIntegrity(t, await readChunk(tree, 'd/f.bin', 2), 2, 'chunk 2 copied from another file at the same index');
});

t.test('tamper: truncation and extension', async (t) => {
  const { tree, raw, data } = await tamperSetup(t);
  const original = await readFile(raw);
  const loc = await tree.locate('d/f.bin');
  // Cut exactly at a chunk boundary: a valid size, but chunk 4 was sealed as non-final.
  await truncate(raw, HEADER_BYTES + 5 * R);
  t.equal(tree.plainSize(await stat(raw), loc), 5 * C, 'boundary cut has a possible size');
  isIntegrity(t, await readChunk(tree, 'd/f.bin', 4), 4, 'truncated at a chunk boundary');
  t.equal(await readChunk(tree, 'd/f.bin', 3), null, 'earlier chunks still read');
  // Cut at every chunk boundary down to one chunk.
  for (let k = 4; k >= 1; k--) {
    await truncate(raw, HEADER_BYTES + k * R);
    isIntegrity(t, await readChunk(tree, 'd/f.bin', k - 1), k - 1, `truncated to ${k} chunks`);
  }
  // Cut inside the last chunk: a shorter final chunk does not authenticate.
  await writeFile(raw, original);
  await truncate(raw, original.length - 10);
  isIntegrity(t, await readChunk(tree, 'd/f.bin', 5, 100), 5, 'truncated inside the last chunk');
  // Impossible sizes: header only, inside a chunk's overhead.
  for (const size of [HEADER_BYTES, HEADER_BYTES - 3, HEADER_BYTES + 5 * R + 20]) {
    await truncate(raw, size);
    const e = await errorOf((async () => tree.plainSize(await stat(raw), loc))());
    t.ok(e instanceof IntegrityError && e.path === 'd/f.bin', `raw size ${size} is impossible (plainSize)`);
    const f = await tree.openContent(loc, { readOnly: true });
    t.ok((await errorOf(f.size())) instanceof IntegrityError, `raw size ${size} is impossible (size)`);
    await f.close();
  }
  // Appending a chunk (the old non-final chunk 4 again, as chunk 5/6): the final chunk is no longer last.
  await writeFile(raw, Buffer.concat([original.subarray(0, HEADER_BYTES + 5 * R), original.subarray(HEADER_BYTES + 4 * R, HEADER_BYTES + 5 * R)]));
  isIntegrity(t, await readChunk(tree, 'd/f.bin', 5), 5, 'extra chunk appended');
  // Truncating the file to 0 through the API repairs it.
  const f = await tree.openContent(loc, {});
  await f.truncate(0);
  await f.write(0, data);
  t.ok((await f.read(0, data.length)).equals(data), 'truncate(0) resets a damaged file');
  await f.close();
});
