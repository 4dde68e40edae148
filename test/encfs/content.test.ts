// Random-access reads, writes and truncation through CipherFile, held against a plain in-memory model for
// several volume layouts (standard, paranoia with MACs, MAC + random bytes, no holes, no per-file IV).
import t, { type Test } from 'tap';
import { mkdtemp, rm, stat, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EncfsVolume, type CreateOptions } from '../../daemon/encfs/volume.js';
import { IntegrityError } from '../../daemon/errors.js';
import { rng } from '../helpers/rng.js';

const PASSWORD = Buffer.from('content-test');

const LAYOUTS: Record<string, CreateOptions> = {
  standard: { preset: 'standard' },
  paranoia: { preset: 'paranoia' },
  'mac+rand, small blocks': { preset: 'paranoia', overrides: { blockSize: 256, blockMACRandBytes: 4 } },
  'no holes': { preset: 'standard', overrides: { allowHoles: false, blockSize: 128 } },
  'no per-file IV': { preset: 'standard', overrides: { uniqueIV: false, blockSize: 64 } },
};

async function newVolume(t: Test, options: CreateOptions): Promise<EncfsVolume> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-content-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return EncfsVolume.create(join(dir, 'vol'), PASSWORD, { ...options, kdfIterations: 1000, codec: 'typescript' });
}

for (const [name, options] of Object.entries(LAYOUTS)) {
  t.test(`random ops model: ${name}`, async (t) => {
    const seed = 0x5eed + name.length;
    const r = rng(seed);
    const volume = await newVolume(t, options);
    const D = volume.content.dataBlockSize;
    let model = Buffer.alloc(0);
    const file = await volume.openFile('f.bin', 'w+');
    try {
      for (let step = 0; step < 300; step++) {
        const op = r.int(10);
        const where = `seed ${seed} step ${step}`;
        if (op < 5) {
          // write at a random offset, sometimes past EOF, often straddling block boundaries
          const offset = r.int(Math.max(1, model.length + 3 * D));
          const data = r.bytes(r.int(4 * D) + 1);
          await file.write(offset, data);
          if (offset + data.length > model.length) {
            const grown = Buffer.alloc(offset + data.length);
            model.copy(grown);
            model = grown;
          }
          data.copy(model, offset);
        } else if (op < 7) {
          const size = r.int(model.length + 2 * D + 1);
          await file.truncate(size);
          const next = Buffer.alloc(size);
          model.copy(next, 0, 0, Math.min(size, model.length));
          model = next;
        } else {
          const offset = r.int(model.length + 10);
          const length = r.int(3 * D + 5);
          const got = await file.read(offset, length);
          const want = model.subarray(Math.min(offset, model.length), Math.min(model.length, offset + length));
          if (!got.equals(want)) {
            t.fail(`read(${offset}, ${length}) differs from the model (${where})`);
            return;
          }
        }
        const size = await file.size();
        if (size !== model.length) {
          t.fail(`size ${size} != model ${model.length} (${where})`);
          return;
        }
      }
      t.ok((await file.read(0, model.length)).equals(model), `whole file equals the model after 300 ops (seed ${seed})`);
    } finally {
      await file.close();
    }
    // The raw size follows the format's arithmetic.
    const raw = await stat(volume.resolve('f.bin').rawPath);
    t.equal(raw.size, volume.content.rawSize(model.length, volume.config.uniqueIV), 'raw size = header + data + MAC headers');
    // A fresh open (header read back from disk) sees the same bytes.
    t.ok((await volume.readFile('f.bin')).equals(model), 'reopened file equals the model');
  });
}

t.test('holes: extending a file leaves all-zero raw blocks that read back as zeros', async (t) => {
  const volume = await newVolume(t, { preset: 'standard' });
  const file = await volume.openFile('sparse', 'w+');
  await file.write(5 * 1024 * 1024, Buffer.from('x'));
  await file.close();
  const raw = await readFile(volume.resolve('sparse').rawPath);
  t.equal(raw.length, 8 + 5 * 1024 * 1024 + 1);
  t.ok(raw.subarray(8 + 1024, 8 + 2048).every((b) => b === 0), 'a middle block is a hole');
  const plain = await volume.readFile('sparse');
  t.ok(plain.subarray(0, 5 * 1024 * 1024).every((b) => b === 0), 'holes read as zeros');
  t.equal(plain[5 * 1024 * 1024], 'x'.charCodeAt(0));
});

t.test('an empty file has no header until written; truncate(0) leaves an 8-byte file', async (t) => {
  const volume = await newVolume(t, { preset: 'standard' });
  const f = await volume.openFile('e', 'w+');
  await f.close();
  t.equal((await stat(volume.resolve('e').rawPath)).size, 0);
  const g = await volume.openFile('e', 'r+');
  await g.truncate(0);
  await g.close();
  t.equal((await stat(volume.resolve('e').rawPath)).size, 8);
  t.equal((await volume.readFile('e')).length, 0);
});

t.test('tampering with a MAC volume is an integrity error naming the file and block', async (t) => {
  const volume = await newVolume(t, { preset: 'paranoia' });
  const data = rng(7).bytes(10_000);
  await volume.writeFile('dir-less.bin', data);
  const rawPath = volume.resolve('dir-less.bin').rawPath;
  const raw = await readFile(rawPath);
  raw[8 + 3 * 1024 + 100] = (raw[8 + 3 * 1024 + 100] as number) ^ 1;
  await writeFile(rawPath, raw);
  const err = await volume.readFile('dir-less.bin').then(
    () => null,
    (e: unknown) => e,
  );
  t.type(err, IntegrityError);
  t.equal((err as IntegrityError).block, 3);
  t.match((err as IntegrityError).oneLine(), /dir-less\.bin: block 3 failed its MAC check/);
  // Reads that do not touch the damaged block still work.
  const f = await volume.openFile('dir-less.bin');
  t.ok((await f.read(0, 2000)).equals(data.subarray(0, 2000)), 'undamaged blocks read fine');
  await f.close();
});

t.test('truncated ciphertext is reported, not misread', async (t) => {
  const volume = await newVolume(t, { preset: 'paranoia' });
  await volume.writeFile('t.bin', rng(8).bytes(3000));
  const rawPath = volume.resolve('t.bin').rawPath;
  const raw = await readFile(rawPath);
  await writeFile(rawPath, raw.subarray(0, 8 + 1024 + 5)); // ends inside a MAC header
  await t.rejects(volume.readFile('t.bin'), { code: 'E_INTEGRITY', message: /truncated/ });
  await writeFile(rawPath, raw.subarray(0, 5)); // shorter than the file header
  await t.rejects(volume.readFile('t.bin'), { code: 'E_INTEGRITY', message: /header/ });
});
