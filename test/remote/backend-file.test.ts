// The file:// backend: atomic puts (nothing partial is ever visible under a key, a failed put leaves no
// trace), reads and ranges, listing by prefix, deletes, typed errors, and key checks.
import t, { type Test } from 'tap';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotFoundError, PermanentError, RetryingBackend, TransientError } from '../../daemon/remote/backend.js';
import { openBackend } from '../../daemon/remote/open-backend.js';
import { FileBackend, mapFsError } from '../../daemon/remote/file-backend.js';
import { DvfsError } from '../../daemon/errors.js';
import { errorOf } from '../helpers/errors.js';

async function tempBackend(t: Test): Promise<FileBackend> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-backend-file-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return new FileBackend(join(dir, 'remote'));
}


async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

t.test('put, get, head, getRange', async (t) => {
  const b = await tempBackend(t);
  t.equal(b.location, `file://${b.root}`);
  await b.put('config', Buffer.from('hello'), 5);
  t.same(await b.get('config'), Buffer.from('hello'));
  t.equal(await b.head('config'), 5);
  t.equal(await b.head('nope'), null);
  await b.put('data/ab/cdef', Buffer.from('0123456789'), 10);
  t.equal((await stat(join(b.root, 'data/ab/cdef'))).mode & 0o777, 0o600, 'files are private');
  t.equal((await stat(join(b.root, 'data/ab'))).mode & 0o777, 0o700, 'directories are private');
  t.same(await b.getRange('data/ab/cdef', 2, 3), Buffer.from('234'));
  t.same(await b.getRange('data/ab/cdef', 8, 10), Buffer.from('89'), 'short at the end');
  t.same(await b.getRange('data/ab/cdef', 10, 5), Buffer.alloc(0), 'at the end: empty');
  t.same(await b.getRange('data/ab/cdef', 50, 5), Buffer.alloc(0), 'past the end: empty');
  t.same(await b.getRange('data/ab/cdef', 0, 0), Buffer.alloc(0));
  await b.put('empty', Buffer.alloc(0), 0);
  t.equal(await b.head('empty'), 0);
  // replace
  await b.put('config', Buffer.from('bye'), 3);
  t.same(await b.get('config'), Buffer.from('bye'), 'put replaces');
  t.same(await readdir(b.tmpDir), [], 'no temp files left');
});

t.test('missing keys are NotFoundError', async (t) => {
  const b = await tempBackend(t);
  // Started one at a time: a second promise rejecting while the first is awaited would be unhandled.
  for (const start of [() => b.get('data/xx/missing'), () => b.getRange('missing', 0, 1)]) {
    const e = await errorOf(start());
    t.ok(e instanceof NotFoundError, 'NotFoundError');
    t.equal((e as NotFoundError).code, 'E_NOTFOUND');
    t.equal((e as NotFoundError).kind, 'notfound');
    t.equal((e as NotFoundError).key !== undefined, true, 'names the key');
  }
});

t.test('streamed puts, and atomicity', async (t) => {
  const b = await tempBackend(t);
  await b.put('obj', Buffer.from('old contents'), 12);
  // A stream that stops halfway until released: meanwhile the key still shows the old object, complete.
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let reached!: () => void;
  const halfway = new Promise<void>((r) => (reached = r));
  const body = async function* (): AsyncGenerator<Uint8Array> {
    yield Buffer.alloc(1 << 20, 1);
    reached();
    await gate;
    yield Buffer.alloc(1 << 20, 2);
  };
  const put = b.put('obj', body, 2 << 20);
  await halfway;
  t.same(await b.get('obj'), Buffer.from('old contents'), 'old object intact while the new one is written');
  t.equal((await readdir(b.tmpDir)).length, 1, 'the new one is in .tmp/');
  t.same(await collect(b.list('')), [{ key: 'obj', size: 12 }], '.tmp/ is not listed');
  release();
  await put;
  const got = await b.get('obj');
  t.equal(got.length, 2 << 20);
  t.equal(got[0], 1);
  t.equal(got[got.length - 1], 2);
  t.same(await readdir(b.tmpDir), []);

  // A stream that fails: the old object stays, no temp file is left.
  const failing = async function* (): AsyncGenerator<Uint8Array> {
    yield Buffer.from('partial');
    throw new Error('source broke');
  };
  t.match(await errorOf(b.put('obj', failing, 100)), { message: 'source broke' });
  t.equal((await b.get('obj')).length, 2 << 20, 'failed put changed nothing');
  t.same(await readdir(b.tmpDir), [], 'failed put left no temp file');

  // Wrong sizes are refused, leaving nothing.
  const short = await errorOf(b.put('new', Buffer.from('abc'), 4));
  t.ok(short instanceof PermanentError && short.code === 'E_USAGE', 'buffer of the wrong size');
  const long = await errorOf(
    b.put(
      'new',
      async function* () {
        yield Buffer.alloc(10);
      },
      4,
    ),
  );
  t.match(long, { message: /at least 10 bytes, not the 4 announced/ });
  const shortStream = await errorOf(
    b.put(
      'new',
      async function* () {
        yield Buffer.alloc(3);
      },
      4,
    ),
  );
  t.match(shortStream, { message: /3 bytes, not the 4 announced/ });
  t.equal(await b.head('new'), null);
  t.same(await readdir(b.tmpDir), []);

  // putLarge is the same path for files.
  await b.putLarge('big', async function* () {
    for (let i = 0; i < 4; i++) yield Buffer.alloc(1000, i);
  }, 4000);
  t.equal(await b.head('big'), 4000);
});

t.test('list by prefix', async (t) => {
  const b = await tempBackend(t);
  t.same(await collect(b.list('')), [], 'an empty (not yet created) remote lists nothing');
  const keys = ['config', 'data/00/aa', 'data/00/ab', 'data/01/aa', 'data/ff/zz', 'index/1', 'index/2', 'keys/k', 'locks/x'];
  for (const [i, k] of keys.entries()) await b.put(k, Buffer.alloc(i), i);
  const list = async (p: string): Promise<string[]> => (await collect(b.list(p))).map((o) => o.key).sort();
  t.same(await list(''), keys);
  t.same(await list('data/'), ['data/00/aa', 'data/00/ab', 'data/01/aa', 'data/ff/zz']);
  t.same(await list('data/0'), ['data/00/aa', 'data/00/ab', 'data/01/aa'], 'a prefix ending inside a directory name');
  t.same(await list('data/00/a'), ['data/00/aa', 'data/00/ab']);
  t.same(await list('data/00/ab'), ['data/00/ab']);
  t.same(await list('index/'), ['index/1', 'index/2']);
  t.same(await list('con'), ['config']);
  t.same(await list('nothing/'), []);
  t.same(await collect(b.list('index/')), [
    { key: 'index/1', size: 5 },
    { key: 'index/2', size: 6 },
  ], 'with sizes');
});

t.test('delete', async (t) => {
  const b = await tempBackend(t);
  await b.put('a/1', Buffer.from('x'), 1);
  await b.put('a/2', Buffer.from('y'), 1);
  await b.delete(['a/1', 'a/missing', 'never/was']);
  t.equal(await b.head('a/1'), null);
  t.equal(await b.head('a/2'), 1);
  await b.delete([]);
  t.ok((await errorOf(b.get('a/1'))) instanceof NotFoundError);
});

t.test('keys are checked', async (t) => {
  const b = await tempBackend(t);
  for (const key of ['', '/abs', 'a//b', 'a/', '../escape', 'a/./b', 'a/../b', '.tmp/x', '.tmp', 'nul\0byte', 'back\\slash', 'x'.repeat(1025)]) {
    const e = await errorOf(b.put(key, Buffer.alloc(1), 1));
    t.ok(e instanceof DvfsError && e.code === 'E_USAGE', `refused ${JSON.stringify(key.slice(0, 20))}: ${(e as Error).message}`);
  }
  t.ok((await errorOf(b.getRange('x', -1, 2))) instanceof PermanentError, 'negative offsets refused');
  t.ok((await errorOf(b.getRange('x', 0, 1.5))) instanceof PermanentError, 'fractional lengths refused');
});

t.test('filesystem errors are mapped to kinds', async (t) => {
  const err = (code: string): NodeJS.ErrnoException => Object.assign(new Error(code), { code });
  t.ok(mapFsError(err('ENOENT'), 'GET', 'k', '/p') instanceof NotFoundError);
  for (const code of ['EIO', 'EAGAIN', 'EBUSY', 'ETIMEDOUT', 'ESTALE']) t.ok(mapFsError(err(code), 'GET', 'k', '/p') instanceof TransientError, code);
  for (const code of ['EACCES', 'ENOSPC', 'EROFS', 'EISDIR']) t.ok(mapFsError(err(code), 'PUT', 'k', '/p') instanceof PermanentError, code);
  const plain = new TypeError('bug');
  t.equal(mapFsError(plain, 'GET', 'k', '/p'), plain, 'non-filesystem errors pass through');
});

t.test('a key that is a directory, and a root that is a file', async (t) => {
  const b = await tempBackend(t);
  await b.put('d/x', Buffer.from('1'), 1);
  t.ok((await errorOf(b.get('d'))) instanceof PermanentError, 'reading a directory is a permanent error');
  t.ok((await errorOf(b.head('d'))) instanceof PermanentError);
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-backend-file-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'file'), 'x');
  const bad = new FileBackend(join(dir, 'file'));
  const e = await errorOf(bad.put('k', Buffer.from('1'), 1));
  t.ok(e instanceof PermanentError, `put under a file root: ${(e as Error).message}`);
  t.same(await collect(bad.list('')), [], 'listing a file root yields nothing');
});

t.test('openBackend picks the backend from the URL, with retries', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-backend-file-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const b = await openBackend(`file://${dir}/r`);
  t.ok(b instanceof RetryingBackend && b.inner instanceof FileBackend, 'file:// -> FileBackend in a RetryingBackend');
  t.equal(b.location, `file://${dir}/r`);
  await b.put('k', Buffer.from('v'), 1);
  t.same(await b.get('k'), Buffer.from('v'));
  const s3 = await openBackend('s3://bkt/p?endpoint=http://127.0.0.1:9&region=us-east-1', {
    s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b' } },
  });
  t.equal(s3.inner.constructor.name, 'S3Backend', 's3:// -> S3Backend');
  t.equal(s3.location, 's3://bkt/p?endpoint=http%3A%2F%2F127.0.0.1%3A9');
  await s3.close();
  t.match(await errorOf(openBackend('ftp://x')), { code: 'E_USAGE' });
});
