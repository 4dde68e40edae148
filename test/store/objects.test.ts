// The object store: link vs copy (and the copy fallback across filesystems), idempotent dedup, read-only
// objects, header transforms, and that an interrupted or failed add never leaves an object under its id.
import t from 'tap';
import { appendFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import { hashBuffer, type ObjectId } from '../../daemon/store/content-hash.js';
import { rng } from '../helpers/rng.js';
import { errorOf, tempRepo, type TestRepo } from './store-helpers.js';

async function rawFile(repo: TestRepo, name: string, contents: Buffer | string): Promise<{ raw: string; id: ObjectId }> {
  const raw = join(repo.root, 'tree', name);
  await writeFile(raw, contents);
  return { raw, id: hashBuffer(repo.keys.contentHash, Buffer.from(contents)) };
}

const perm = async (p: string): Promise<number> => (await stat(p)).mode & 0o7777;

t.test('addByLink shares the inode; addByCopy does not', async (t) => {
  const repo = await tempRepo(t);
  const a = await rawFile(repo, 'a', 'linked contents');
  const r1 = await repo.objects.addByLink(a.id, a.raw);
  t.same(r1, { added: true, bytes: 15, linked: true });
  const obj = repo.objects.path(a.id);
  t.equal(obj, join(repo.root, '.dvfs', 'objects', a.id.slice(0, 2), a.id.slice(2)), 'sharded layout');
  const [so, sr] = [await stat(obj), await stat(a.raw)];
  t.equal(so.ino, sr.ino, 'same inode');
  t.equal(so.nlink, 2);
  t.equal(await perm(a.raw), 0o644, 'linking does not change the mode the working file shows');
  t.ok(await repo.objects.has(a.id));

  const b = await rawFile(repo, 'b', 'copied contents');
  const r2 = await repo.objects.addByCopy(b.id, b.raw);
  t.same(r2, { added: true, bytes: 15, linked: false });
  const sb = await stat(repo.objects.path(b.id));
  t.not(sb.ino, (await stat(b.raw)).ino, 'a separate inode');
  t.equal(sb.nlink, 1);
  t.equal(await perm(repo.objects.path(b.id)), 0o444);
  t.equal(await perm(b.raw), 0o644, 'the source keeps its mode');
  t.equal(await readFile(repo.objects.path(b.id), 'utf8'), 'copied contents');
  t.same(await repo.objects.tempFiles(), [], 'no temp files left');

  // Copying a source that is already read-only (a linked working-tree file).
  const c = hashBuffer(repo.keys.contentHash, Buffer.from('another id'));
  t.same(await repo.objects.addByCopy(c, a.raw), { added: true, bytes: 15, linked: false });
  t.equal(await perm(repo.objects.path(c)), 0o444);
  t.equal(await readFile(repo.objects.path(c), 'utf8'), 'linked contents');
});

t.test('adds are idempotent: an existing id is not touched', async (t) => {
  const repo = await tempRepo(t);
  const first = await rawFile(repo, 'first', 'same plaintext');
  // Same id, different raw bytes (as two ciphertexts of one plaintext would be).
  const second = join(repo.root, 'tree', 'second');
  await writeFile(second, 'different ciphertext');
  t.same(await repo.objects.addByCopy(first.id, first.raw), { added: true, bytes: 14, linked: false });
  const before = await stat(repo.objects.path(first.id));
  t.same(await repo.objects.addByCopy(first.id, second), { added: false, bytes: 0, linked: false });
  t.same(await repo.objects.addByLink(first.id, second), { added: false, bytes: 0, linked: false });
  const after = await stat(repo.objects.path(first.id));
  t.equal(after.ino, before.ino);
  t.equal(after.mtimeMs, before.mtimeMs);
  t.equal(await readFile(repo.objects.path(first.id), 'utf8'), 'same plaintext', 'the first copy stays');
  t.equal((await stat(second)).nlink, 1, 'second was not linked');
  const ids: ObjectId[] = [];
  for await (const id of repo.objects.ids()) ids.push(id);
  t.same(ids, [first.id]);
});

/** Why the cross-filesystem test cannot run here, or false. */
async function noOtherFilesystem(): Promise<string | false> {
  try {
    if ((await stat('/dev/shm')).dev === (await stat(tmpdir())).dev) return '/dev/shm is on the same filesystem as the temp directory';
    return false;
  } catch {
    return 'no /dev/shm';
  }
}

t.test('addByLink falls back to a copy across filesystems', { skip: await noOtherFilesystem() }, async (t) => {
  const repo = await tempRepo(t);
  const shm = await mkdtemp('/dev/shm/dvfs-store-');
  t.teardown(() => rm(shm, { recursive: true, force: true }));
  const raw = join(shm, 'elsewhere');
  await writeFile(raw, 'from another filesystem');
  const id = hashBuffer(repo.keys.contentHash, Buffer.from('from another filesystem'));
  t.same(await repo.objects.addByLink(id, raw), { added: true, bytes: 23, linked: false }, 'EXDEV -> copied');
  t.equal(await readFile(repo.objects.path(id), 'utf8'), 'from another filesystem');
  t.equal(await perm(raw), 0o644, 'the source was not made read-only');
});

t.test('header transforms', async (t) => {
  const repo = await tempRepo(t);
  const body = rng(0x70b).bytes(3 * 1024 * 1024 + 5);
  const raw = join(repo.root, 'tree', 'big');
  await writeFile(raw, Buffer.concat([Buffer.from('OLDHEAD!'), body]));
  const id = hashBuffer(repo.keys.contentHash, body);
  const seen: Buffer[] = [];
  const r = await repo.objects.addByCopy(id, raw, (header) => {
    seen.push(header);
    return Buffer.from('NEWHEAD!');
  });
  t.same(r, { added: true, bytes: 8 + body.length, linked: false });
  t.same(seen, [Buffer.from('OLDHEAD!')], 'the transform saw the 8-byte header');
  const stored = await readFile(repo.objects.path(id));
  t.ok(stored.subarray(0, 8).equals(Buffer.from('NEWHEAD!')), 'header replaced');
  t.ok(stored.subarray(8).equals(body), 'rest copied unchanged');

  // null keeps the header; other lengths; a file shorter than the header.
  const raw2 = join(repo.root, 'tree', 'small');
  await writeFile(raw2, 'HDR:rest');
  const id2 = hashBuffer(repo.keys.contentHash, Buffer.from('2'));
  await repo.objects.addByCopy(id2, raw2, () => null, { headerBytes: 4 });
  t.equal(await readFile(repo.objects.path(id2), 'utf8'), 'HDR:rest', 'null keeps the file as is');
  const id3 = hashBuffer(repo.keys.contentHash, Buffer.from('3'));
  await repo.objects.addByCopy(id3, raw2, (h) => Buffer.from(`<${h.toString()}>`), { headerBytes: 4 });
  t.equal(await readFile(repo.objects.path(id3), 'utf8'), '<HDR:>rest', 'a header of another length');
  const empty = join(repo.root, 'tree', 'empty');
  await writeFile(empty, '');
  const id4 = hashBuffer(repo.keys.contentHash, Buffer.alloc(0));
  const lengths: number[] = [];
  t.same(await repo.objects.addByCopy(id4, empty, (h) => (lengths.push(h.length), null)), { added: true, bytes: 0, linked: false });
  t.same(lengths, [0], 'an empty file gives an empty header');
});

t.test('a failed or interrupted add leaves no object', async (t) => {
  const repo = await tempRepo(t);
  const { raw, id } = await rawFile(repo, 'f', 'x'.repeat(10_000));

  const err = await errorOf(
    repo.objects.addByCopy(id, raw, () => {
      throw new Error('transform blew up');
    }),
  );
  t.match(err, { message: 'transform blew up' });
  t.notOk(await repo.objects.has(id), 'no object after a failing transform');
  t.same(await repo.objects.tempFiles(), [], 'and no temp file');

  const changed = await errorOf(
    repo.objects.addByCopy(id, raw, (h) => {
      appendFileSync(raw, 'written meanwhile');
      return h;
    }),
  );
  t.ok(changed instanceof DvfsError && changed.code === 'E_IO', 'a source changing during the copy is refused');
  t.notOk(await repo.objects.has(id));
  t.same(await repo.objects.tempFiles(), []);

  // A crash mid-copy: the partial file only ever exists in tmp/.
  await mkdir(repo.objects.tmpDir, { recursive: true });
  await writeFile(join(repo.objects.tmpDir, `99999-0123456789abcdef.tmp`), 'x'.repeat(100));
  t.notOk(await repo.objects.has(id));
  const ids: ObjectId[] = [];
  for await (const i of repo.objects.ids()) ids.push(i);
  t.same(ids, [], 'temp files are not objects');
  t.equal(await repo.objects.cleanTemp(), 1, 'cleanTemp removes the leftover');
  t.same(await readdir(repo.objects.tmpDir), []);
  t.equal(await repo.objects.cleanTemp(), 0);

  t.same(await repo.objects.addByCopy(id, raw), { added: true, bytes: 10_017, linked: false }, 'a later add works');
});

t.test('ids, remove, and bad ids', async (t) => {
  const repo = await tempRepo(t);
  const want: ObjectId[] = [];
  for (let i = 0; i < 20; i++) {
    const { raw, id } = await rawFile(repo, `f${i}`, `file ${i}`);
    await (i % 2 === 0 ? repo.objects.addByLink(id, raw) : repo.objects.addByCopy(id, raw));
    want.push(id);
  }
  // Junk in the store is skipped.
  await writeFile(join(repo.objects.dir, want[0]!.slice(0, 2), 'not-an-object'), '');
  await mkdir(join(repo.objects.dir, 'zz'), { recursive: true });
  const got: ObjectId[] = [];
  for await (const id of repo.objects.ids()) got.push(id);
  t.same(got.sort(), [...want].sort());
  t.equal(await repo.objects.remove(want[3]!), true);
  t.equal(await repo.objects.remove(want[3]!), false, 'removing twice');
  t.notOk(await repo.objects.has(want[3]!));
  t.throws(() => repo.objects.path('../../etc/passwd' as ObjectId), DvfsError, 'path refuses non-ids');
  const dirErr = await errorOf(repo.objects.addByCopy(want[3]!, join(repo.root, 'tree')));
  t.ok(dirErr instanceof DvfsError && dirErr.code === 'E_USAGE', 'only regular files');
});
