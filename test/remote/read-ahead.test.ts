// ReadAhead: files come back in order with their contents, large ones (null) are left alone, and a file that
// changed size since it was stat'ed is an error, not a short blob.
import t from 'tap';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DvfsError } from '../../daemon/errors.js';
import { ReadAhead } from '../../daemon/transfer/read-ahead.js';
import { errorOf } from '../helpers/errors.js';

t.test('reads in order, ahead of the consumer', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-readahead-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const data = Array.from({ length: 50 }, (_, i) => randomBytes(100 + i * 997));
  const paths: Array<string | null> = [];
  for (let i = 0; i < data.length; i++) {
    const p = join(dir, `f${i}`);
    await writeFile(p, data[i] as Buffer);
    paths.push(i % 7 === 3 ? null : p); // every 7th is "large": left to the caller
  }
  const ahead = new ReadAhead(paths, data.map((d) => d.length));
  let same = 0;
  let nulls = 0;
  for (let i = 0; i < data.length; i++) {
    const got = await ahead.take(i);
    if (got === null) nulls++;
    else if (got.equals(data[i] as Buffer)) same++;
  }
  t.equal(nulls, 7, 'large ones come back as null');
  t.equal(same, 43, 'every small one with its bytes, in order');
});

t.test('a small ring: bytes reused round its end, big files in their own buffers, nothing overwritten early', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-readahead-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const RING = 64 * 1024;
  // Sizes from 0 to past a quarter of the ring, in an order that makes allocation wrap at odd offsets.
  const data = Array.from({ length: 300 }, (_, i) => randomBytes((i * 7919) % (RING / 3)));
  const paths: string[] = [];
  for (let i = 0; i < data.length; i++) {
    const p = join(dir, `f${i}`);
    await writeFile(p, data[i] as Buffer);
    paths.push(p);
  }
  const ahead = new ReadAhead(paths, data.map((d) => d.length), RING);
  let same = 0;
  for (let i = 0; i < data.length; i++) {
    const got = await ahead.take(i);
    // Give the reads started by this take() a chance to land (they must not touch this buffer).
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 1));
    if (got !== null && got.equals(data[i] as Buffer)) same++;
    else t.fail(`file ${i} (${(data[i] as Buffer).length} bytes) differs`);
  }
  t.equal(same, data.length, 'every file intact while later ones were read into the ring');
  await t.rejects(ahead.take(5), /out of turn/, 'take() goes in order');
});

t.test('a file that changed size is an error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-readahead-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const p = join(dir, 'f');
  await writeFile(p, 'twelve bytes');
  const e = await errorOf(new ReadAhead([p], [10]).take(0));
  t.ok(e instanceof DvfsError, 'a DvfsError');
  t.match(e, { code: 'E_IO', message: /changed size/ }, 'longer than stat said');
  t.match(await errorOf(new ReadAhead([p], [20]).take(0)), { code: 'E_IO', message: /changed size/ }, 'shorter than stat said');
});
