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

t.test('a file that changed size is an error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-readahead-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const p = join(dir, 'f');
  await writeFile(p, 'twelve bytes');
  const e = await errorOf(new ReadAhead([p], [10]).take(0));
  t.ok(e instanceof DvfsError, 'a DvfsError');
  t.match(e, { code: 'E_IO', message: /changed size/ });
});
