// Copy-on-write of working files whose ciphertext is shared with the object store (commit hard-links working
// files into REPO/.dvfs). Simulated here by hard-linking a raw ciphertext file elsewhere: a change through the
// mount must never reach the linked copy. Real mounts of an EncFS (standard) and a native repository; then the
// frontend on a real tree without FUSE, to drive filesLinked() (what commit calls) directly.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { Frontend } from '../../daemon/fuse/frontend.js';
import { specialFiles } from '../../daemon/fuse/special-files.js';
import { silentLogger } from '../../daemon/log.js';
import { openTree } from '../../daemon/repo/open-tree.js';
import { initRepository, locateRepository } from '../../daemon/repo/repository.js';
import type { CryptoTree } from '../../daemon/vfs/crypto-tree.js';
import { TEMP_PREFIX } from '../../daemon/vfs/plain-view.js';
import { fuseAvailable, initRepo, mountDvfs, workspace, type DvfsMount, type Workspace } from '../helpers/mount.js';

const unavailable = fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING dvfs copy-on-write FUSE tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `FUSE unavailable: ${unavailable}`;

type Mode = 'encfs' | 'native';

/** The bytes of the file header that carry the file's IV (EncFS standard: the 8-byte header) or id (native). */
const headerId = (mode: Mode, raw: Buffer): Buffer => (mode === 'encfs' ? raw.subarray(0, 8) : raw.subarray(2, 18));

function makeRepo(ws: Workspace, mode: Mode): string {
  if (mode === 'encfs') return initRepo(ws, 'repo', 'standard');
  const repo = join(ws.dir, 'repo');
  const r = ws.cli(['init', repo, '--mode', 'native', '--kdf-profile', 'min']);
  if (r.status !== 0) throw new Error(`dvfs init --mode native failed: ${r.stderr}`);
  return repo;
}

/** The raw ciphertext path of plaintext `path` (the tree is opened read-only with the password: no mount needed). */
async function rawPathOf(ws: Workspace, repo: string, path: string): Promise<string> {
  const tree = await openTree(await locateRepository(repo), Buffer.from(ws.password), silentLogger());
  try {
    return (await tree.locate(path)).rawPath;
  } finally {
    tree.dispose?.();
  }
}

/** Names in the raw tree that are dvfs temporaries (must not be left behind). */
function temporaries(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith(TEMP_PREFIX)) out.push(join(dir, e.name));
    if (e.isDirectory()) out.push(...temporaries(join(dir, e.name)));
  }
  return out;
}

interface Linked {
  raw: string;
  store: string;
  bytes: Buffer;
  st: fs.Stats;
}

/** Hard-links the raw file of `path` to REPO/../store-<name> (what commit does with the object store). */
async function linkIntoStore(ws: Workspace, repo: string, path: string): Promise<Linked> {
  const raw = await rawPathOf(ws, repo, path);
  const store = join(ws.dir, `store-${path.replace(/\W/g, '_')}`);
  fs.linkSync(raw, store);
  return { raw, store, bytes: fs.readFileSync(store), st: fs.statSync(store) };
}

const status = (m: DvfsMount): { copiesOnWrite: number; bytesCopiedOnWrite: number } => m.status() as unknown as { copiesOnWrite: number; bytesCopiedOnWrite: number };

for (const mode of ['encfs', 'native'] as const) {
  t.test(`${mode}: a file linked into the store is re-encrypted before it changes`, { skip }, async (t) => {
    const ws = workspace(t, `cow-${mode}`);
    const repo = makeRepo(ws, mode);
    const mnt = join(ws.dir, 'mnt');
    const original = randomBytes(300_000);
    const truncOld = randomBytes(50_000);
    const shrinkOld = randomBytes(70_000);
    let m = mountDvfs(ws, repo, mnt);
    fs.mkdirSync(join(mnt, 'sub'));
    fs.writeFileSync(join(mnt, 'sub', 'data.bin'), original);
    fs.writeFileSync(join(mnt, 'trunc.bin'), truncOld);
    fs.writeFileSync(join(mnt, 'shrink.bin'), shrinkOld);
    fs.chmodSync(join(mnt, 'sub', 'data.bin'), 0o640);
    fs.utimesSync(join(mnt, 'sub', 'data.bin'), 1_500_000_000, 1_500_000_000);
    await m.umount();

    const data = await linkIntoStore(ws, repo, 'sub/data.bin');
    const trunc = await linkIntoStore(ws, repo, 'trunc.bin');
    const shrink = await linkIntoStore(ws, repo, 'shrink.bin');
    t.equal(fs.statSync(data.raw).nlink, 2, 'the working file now has two links');

    m = mountDvfs(ws, repo, mnt);
    const before = status(m);
    t.equal(before.copiesOnWrite, 0, 'nothing copied by mounting or reading');
    t.same(fs.readFileSync(join(mnt, 'sub', 'data.bin')), original, 'reading a linked file is not a change');
    t.equal(status(m).copiesOnWrite, 0, 'reads copy nothing');

    // (a) overwrite and append through one handle
    const fd = fs.openSync(join(mnt, 'sub', 'data.bin'), 'r+');
    fs.writeSync(fd, Buffer.from('OVERWRITTEN'), 0, 11, 1000);
    fs.writeSync(fd, Buffer.from('APPENDED'), 0, 8, original.length);
    fs.closeSync(fd);
    const expected = Buffer.concat([original, Buffer.from('APPENDED')]);
    Buffer.from('OVERWRITTEN').copy(expected, 1000);
    t.same(fs.readFileSync(join(mnt, 'sub', 'data.bin')), expected, 'reads back the old contents with both writes');
    t.same(fs.readFileSync(data.store), data.bytes, 'the linked copy is byte-identical to before');
    t.equal(fs.statSync(data.store).nlink, 1, 'the linked copy is no longer linked into the working tree');
    const nowRaw = fs.statSync(data.raw);
    t.not(nowRaw.ino, data.st.ino, 'the working file is a new inode');
    t.equal(nowRaw.nlink, 1, 'with one link');
    t.notSame(headerId(mode, fs.readFileSync(data.raw)), headerId(mode, data.bytes), `and a new file ${mode === 'encfs' ? 'IV (first 8 bytes)' : 'id (header bytes 2..18)'}`);
    t.equal(nowRaw.mode & 0o7777, data.st.mode & 0o7777, 'mode kept');
    t.equal(nowRaw.uid, data.st.uid, 'owner kept');
    t.equal(nowRaw.gid, data.st.gid, 'group kept');
    let s = status(m);
    t.equal(s.copiesOnWrite, 1, 'one copy-on-write');
    t.equal(s.bytesCopiedOnWrite, original.length, 'of the whole file');

    // (b) open with O_TRUNC and write: nothing to copy
    fs.writeFileSync(join(mnt, 'trunc.bin'), 'fresh');
    t.equal(fs.readFileSync(join(mnt, 'trunc.bin'), 'utf8'), 'fresh', 'O_TRUNC + write reads back');
    t.same(fs.readFileSync(trunc.store), trunc.bytes, 'the linked copy is untouched by the truncation');
    t.not(fs.statSync(trunc.raw).ino, trunc.st.ino, 'the working file is a new inode');
    s = status(m);
    t.equal(s.copiesOnWrite, 2, 'a second copy-on-write');
    t.equal(s.bytesCopiedOnWrite, original.length, 'that copied no bytes (the file was being truncated to 0)');

    // truncate(2) of a path nobody has open: only the bytes kept are copied
    fs.truncateSync(join(mnt, 'shrink.bin'), 1234);
    t.same(fs.readFileSync(join(mnt, 'shrink.bin')), shrinkOld.subarray(0, 1234), 'truncate(2) shrinks the working file');
    t.same(fs.readFileSync(shrink.store), shrink.bytes, 'the linked copy keeps its full contents');
    s = status(m);
    t.equal(s.copiesOnWrite, 3, 'a third copy-on-write');
    t.equal(s.bytesCopiedOnWrite, original.length + 1234, 'that copied only the 1234 bytes kept');

    // a second change of the same file goes in place (it is exclusive now)
    const inoAfter = fs.statSync(data.raw).ino;
    fs.appendFileSync(join(mnt, 'sub', 'data.bin'), 'more');
    t.equal(fs.statSync(data.raw).ino, inoAfter, 'the next change goes to the (now exclusive) copy in place');
    t.equal(status(m).copiesOnWrite, 3, 'no further copy');
    t.same(temporaries(join(repo, 'tree')), [], 'no temporary file is left in the working tree');
    t.notOk(fs.readdirSync(join(mnt, 'sub')).some((n) => n.startsWith(TEMP_PREFIX)), 'temporaries never show in listings');
    await m.umount();
    t.same(fs.readFileSync(data.store), data.bytes, 'after unmount the linked copy is still identical');
  });
}

// --- the frontend without FUSE: filesLinked() ------------------------------------------------------------

type Cb<T> = (err: number, value?: T) => void;

/** Calls a FUSE operation and resolves with its value (rejects with the errno). */
function call<T>(invoke: (cb: Cb<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => invoke((err, value) => (err < 0 ? reject(new Error(`errno ${-err}`)) : resolve(value as T))));
}

/** read/write answer with a byte count or a negative errno. */
function count(invoke: (cb: (n: number) => void) => void): Promise<number> {
  return new Promise((resolve, reject) => invoke((n) => (n < 0 ? reject(new Error(`errno ${-n}`)) : resolve(n))));
}

async function frontendOn(t: Test, mode: Mode): Promise<{ frontend: Frontend; tree: CryptoTree; dir: string }> {
  const dir = fs.mkdtempSync(join(fs.realpathSync('/tmp'), `dvfs-cow-unit-${mode}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const password = Buffer.from('unit test password');
  await initRepository(join(dir, 'repo'), password, mode === 'encfs' ? { mode, preset: 'standard', kdfIterations: 1000 } : { mode, preset: 'standard', native: { opslimit: 1, memlimit: 8192 } });
  const tree = await openTree(await locateRepository(join(dir, 'repo')), password, silentLogger());
  const frontend = new Frontend(tree, { readOnly: false, xattr: false, logger: silentLogger(), special: specialFiles(), copyOnWrite: true });
  t.teardown(async () => {
    await frontend.close();
    tree.dispose?.();
  });
  return { frontend, tree, dir };
}

for (const mode of ['encfs', 'native'] as const) {
  t.test(`${mode}, frontend without FUSE: after filesLinked(), open files re-check before their next change`, async (t) => {
    const { frontend, tree, dir } = await frontendOn(t, mode);
    const ops = frontend.operations();
    const write = (path: string, fd: number, data: Buffer, at: number): Promise<number> => count((cb) => ops.write!(path, fd, data, data.length, at, cb));
    const read = async (path: string, fd: number, length: number): Promise<Buffer> => {
      const buf = Buffer.alloc(length);
      const n = await count((cb) => ops.read!(path, fd, buf, length, 0, cb));
      return buf.subarray(0, n);
    };

    // a file written and closed, then opened read-only and read-write; the writer changes it (exclusive: checked)
    let fd = await call<number>((cb) => ops.create!('/g', 0o644, cb));
    await write('/g', fd, Buffer.from('0123456789'), 0);
    await call((cb) => ops.release!('/g', fd, cb));
    const reader = await call<number>((cb) => ops.open!('/g', fsc.O_RDONLY, cb));
    const writer = await call<number>((cb) => ops.open!('/g', fsc.O_RDWR, cb));
    await write('/g', writer, Buffer.from('a'), 0);
    t.same([...frontend.openForWrite()], ['/g'], 'openForWrite: the path open for writing');

    // commit links the file into the store, then tells the mount
    const raw = (await tree.locate('/g')).rawPath;
    const store = join(dir, 'store-g');
    fs.linkSync(raw, store);
    const stored = fs.readFileSync(store);
    const inoBefore = fs.statSync(raw).ino;
    frontend.filesLinked();
    await write('/g', writer, Buffer.from('b'), 1);
    t.same(fs.readFileSync(store), stored, 'the linked copy did not change');
    t.not(fs.statSync(raw).ino, inoBefore, 'the working file was replaced by a copy');
    t.equal(fs.statSync(raw).nlink, 1, 'which has one link');
    t.equal((await read('/g', reader, 100)).toString(), 'ab23456789', 'the handle opened read-only before the link sees the change (handles share the copy)');
    t.equal((await read('/g', writer, 100)).toString(), 'ab23456789', 'and so does the writer');
    t.equal(frontend.stats().copiesOnWrite, 1, 'one copy');

    // a later filesLinked() with nothing linked: one fstat, no copy
    frontend.filesLinked();
    await write('/g', writer, Buffer.from('c'), 2);
    t.equal(frontend.stats().copiesOnWrite, 1, 'an exclusive file is not copied again');

    // renames move the path commit is told about; releasing the writer removes it
    await call((cb) => ops.mkdir!('/dir', 0o755, cb));
    await call((cb) => ops.rename!('/g', '/dir/g2', cb));
    t.same([...frontend.openForWrite()], ['/dir/g2'], 'openForWrite follows renames');
    // linked again after the rename: the copy takes the file's current place
    const raw2 = (await tree.locate('/dir/g2')).rawPath;
    fs.linkSync(raw2, join(dir, 'store-g2'));
    const stored2 = fs.readFileSync(join(dir, 'store-g2'));
    frontend.filesLinked();
    await call((cb) => ops.ftruncate!('/dir/g2', writer, 4, cb));
    t.same(fs.readFileSync(join(dir, 'store-g2')), stored2, 'ftruncate did not reach the linked copy');
    t.equal(fs.statSync(raw2).nlink, 1, 'the copy is at the renamed path');
    t.equal((await read('/dir/g2', reader, 100)).toString(), 'abc3', 'truncated copy reads back');
    await call((cb) => ops.release!('/dir/g2', writer, cb));
    t.same([...frontend.openForWrite()], [], 'nothing open for writing after the release');
    await call((cb) => ops.release!('/dir/g2', reader, cb));

    // an open file unlinked from the tree but still linked into the store: the copy stays anonymous
    fd = await call<number>((cb) => ops.create!('/h', 0o644, cb));
    await write('/h', fd, Buffer.from('hhhh'), 0);
    const rawH = (await tree.locate('/h')).rawPath;
    fs.linkSync(rawH, join(dir, 'store-h'));
    const storedH = fs.readFileSync(join(dir, 'store-h'));
    await call((cb) => ops.unlink!('/h', cb));
    frontend.filesLinked();
    await write('/h', fd, Buffer.from('X'), 0);
    t.equal((await read('/h', fd, 10)).toString(), 'Xhhh', 'the open handle sees its change');
    t.same(fs.readFileSync(join(dir, 'store-h')), storedH, 'the store copy did not change');
    t.notOk(fs.existsSync(rawH), 'nothing reappeared at the unlinked path');
    await call((cb) => ops.release!('/h', fd, cb));
    t.same(temporaries(tree.root), [], 'no temporaries left');
  });
}
