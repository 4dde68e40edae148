// Every FUSE operation of dvfs through a real mount made with the real CLI, exercised with plain node:fs
// calls (and a few standard commands: mkfifo, mknod, setfattr/getfattr, stat -f, setpriv), each with its
// error cases. Most subtests run on a standard and on a paranoia volume.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/cli.js';
import { rng } from '../helpers/rng.js';
import { findExecutable } from '../helpers/stock-encfs.js';
import { fuseAvailable, initRepo, mountDvfs, openUp, quickMount, workspace, type QuickMount } from '../helpers/mount.js';

const unavailable = fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING dvfs FUSE operation tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `FUSE unavailable: ${unavailable}`;

const xattrSkip = findExecutable('setfattr') !== null && findExecutable('getfattr') !== null ? false : 'setfattr/getfattr not installed (Debian package "attr"): xattr operations NOT TESTED';
if (xattrSkip) console.error(`\n!!! SKIPPING the xattr subtests: ${xattrSkip}\n`);
const setpriv = findExecutable('setpriv');
const su = findExecutable('su');
const eaccesSkip =
  process.getuid?.() !== 0 ? 'not running as root: cannot switch to another uid, EACCES NOT TESTED' : setpriv === null && su === null ? 'neither setpriv nor su is installed: EACCES NOT TESTED' : false;
if (eaccesSkip) console.error(`\n!!! SKIPPING the EACCES subtest: ${eaccesSkip}\n`);

/** Written by native/fuse-native-fix.mjs when it built fuse-native with the utimens fix. */
const UTIMENS_FIX_MARKER = join(REPO_ROOT, 'node_modules', 'fuse-native', 'build', 'Release', '.dvfs-utimens-fix');
const utimensFixBuilt = fs.existsSync(UTIMENS_FIX_MARKER);

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The error code of `fn` ('OK' when it does not throw). */
function code(fn: () => unknown): string {
  try {
    fn();
    return 'OK';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

function expectCode(t: Test, fn: () => unknown, want: string, what: string): void {
  t.equal(code(fn), want, `${what} → ${want}`);
}

const mounts = new Map<string, QuickMount>();
function mountFor(preset: 'standard' | 'paranoia'): QuickMount {
  let m = mounts.get(preset);
  if (!m) {
    m = quickMount(t, preset, { label: `ops-${preset}` });
    mounts.set(preset, m);
  }
  return m;
}

/** A fresh directory inside the mount for one subtest. */
function area(m: QuickMount, name: string): string {
  const d = join(m.mnt, name);
  fs.mkdirSync(d);
  return d;
}

process.umask(0o022);

for (const preset of ['standard', 'paranoia'] as const) {
  t.test(`${preset}: getattr/stat: sizes, types, modes, uid/gid`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'stat');
    const r = rng(101);
    for (const n of [0, 1, 7, 8, 1015, 1016, 1017, 1023, 1024, 1025, 4096, 65536, 100_003]) {
      const p = join(d, `f${n}`);
      fs.writeFileSync(p, r.bytes(n));
      const st = fs.statSync(p);
      t.equal(st.size, n, `size of a ${n}-byte file`);
      t.ok(st.isFile(), `f${n} is a file`);
      t.equal(st.mode & 0o7777, 0o644, `f${n} created 0644 (0666 & ~umask 022)`);
      t.equal(st.uid, process.getuid!(), 'uid');
      t.equal(st.gid, process.getgid!(), 'gid');
      t.equal(st.nlink, 1, 'nlink 1');
    }
    fs.writeFileSync(join(d, 'mode600'), 'x', { mode: 0o600 });
    t.equal(fs.statSync(join(d, 'mode600')).mode & 0o7777, 0o600, 'create honours the mode');
    const dst = fs.statSync(d);
    t.ok(dst.isDirectory(), 'directory type');
    t.equal(dst.mode & 0o7777, 0o755, 'mkdir 0777 & ~022');
    fs.symlinkSync('f1', join(d, 'ln'));
    const lst = fs.lstatSync(join(d, 'ln'));
    t.ok(lst.isSymbolicLink(), 'lstat sees the symlink');
    t.equal(lst.size, 2, 'symlink size is the plaintext target length');
    t.equal(fs.statSync(join(d, 'ln')).size, 1, 'stat follows the link');
    // fstat of an open file follows size changes made through the fd
    const fd = fs.openSync(join(d, 'grow'), 'w+');
    fs.writeSync(fd, Buffer.alloc(3000, 1), 0, 3000, 0);
    t.equal(fs.fstatSync(fd).size, 3000, 'fstat after write');
    fs.writeSync(fd, Buffer.alloc(10, 2), 0, 10, 5000);
    t.equal(fs.fstatSync(fd).size, 5010, 'fstat after writing past EOF');
    fs.closeSync(fd);
    t.equal(fs.statSync(join(d, 'grow')).size, 5010, 'stat after close');
    expectCode(t, () => fs.statSync(join(d, 'missing')), 'ENOENT', 'stat of a missing name');
    expectCode(t, () => fs.lstatSync(join(d, 'missing', 'deeper')), 'ENOENT', 'stat below a missing directory');
  });

  t.test(`${preset}: utimens with atime == mtime (utimes, futimes, lutimes) and mtime on write`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'times');
    const p = join(d, 'f');
    fs.writeFileSync(p, 'data');
    fs.utimesSync(p, 1_000_000_000, 1_000_000_000);
    let st = fs.statSync(p);
    t.equal(st.mtimeMs, 1_000_000_000_000, 'mtime as set (whole seconds)');
    t.equal(st.atimeMs, 1_000_000_000_000, 'atime as set');
    fs.utimesSync(p, 1_234_567_890.25, 1_234_567_890.25);
    st = fs.statSync(p);
    t.equal(st.mtimeMs, 1_234_567_890_250, 'mtime with sub-second part (ms precision)');
    t.equal(st.atimeMs, 1_234_567_890_250, 'atime with sub-second part');
    const fd = fs.openSync(p, 'r+');
    fs.futimesSync(fd, 1_500_000_000, 1_500_000_000);
    t.equal(fs.fstatSync(fd).mtimeMs, 1_500_000_000_000, 'futimes sets mtime');
    fs.closeSync(fd);
    t.equal(fs.statSync(p).mtimeMs, 1_500_000_000_000, 'futimes visible to stat');
    const dirTime = 1_100_000_000;
    fs.utimesSync(d, dirTime, dirTime);
    t.equal(fs.statSync(d).mtimeMs, dirTime * 1000, 'utimes on a directory');
    fs.symlinkSync('f', join(d, 'ln'));
    fs.lutimesSync(join(d, 'ln'), 1_200_000_000, 1_200_000_000);
    t.equal(fs.lstatSync(join(d, 'ln')).mtimeMs, 1_200_000_000_000, 'lutimes sets the link itself');
    t.equal(fs.statSync(p).mtimeMs, 1_500_000_000_000, 'lutimes did not touch the target');
    // a write moves mtime to "now"
    fs.utimesSync(p, 1_000_000_000, 1_000_000_000);
    const before = Date.now();
    fs.appendFileSync(p, 'more');
    const after = fs.statSync(p).mtimeMs;
    t.ok(after >= before - 2000, `a write updates mtime to now (${after} vs ${before})`);
    expectCode(t, () => fs.utimesSync(join(d, 'missing'), 1, 1), 'ENOENT', 'utimes of a missing file');
  });

  t.test(`${preset}: utimens with atime ≠ mtime — fuse-native 2.2.6 bug (passes atime as mtime): must pass with dvfs's fuse-native fix built, else documents the bug`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'times2');
    const p = join(d, 'f');
    fs.writeFileSync(p, 'x');
    fs.utimesSync(p, 1_000_000_000, 1_300_000_000);
    const st = fs.statSync(p);
    t.equal(st.atimeMs, 1_000_000_000_000, 'atime is the requested atime');
    if (!utimensFixBuilt) {
      t.comment(`KNOWN BUG: ${UTIMENS_FIX_MARKER} is missing, so fuse-native's prebuilt binding is in use and utimens loses mtime`);
      t.equal(st.mtimeMs, st.atimeMs, 'KNOWN BUG (fuse-native 2.2.6 without the dvfs fix): mtime == atime');
      return;
    }
    t.equal(st.mtimeMs, 1_300_000_000_000, 'mtime is the requested mtime (fix built)');
  });

  t.test(`${preset}: utimens with UTIME_OMIT: touch -m / touch -a change one time and keep the other; touch sets both to now`, { skip }, async (t) => {
    const m = mountFor(preset);
    const p = join(area(m, 'times3'), 'f');
    fs.writeFileSync(p, 'x');
    const recent = Math.floor(Date.now() / 1000) - 3600;
    fs.utimesSync(p, recent, 1_000_000_000);
    let r = spawnSync('touch', ['-m', '-d', '@1400000000', p], { encoding: 'utf8' });
    t.equal(r.status, 0, `touch -m: ${r.stderr}`);
    let s2 = fs.statSync(p);
    t.equal(s2.mtimeMs, 1_400_000_000_000, 'touch -m sets mtime');
    // Not asserted: that touch -m keeps atime. The daemon reads the file header when touch opens the file,
    // and the backing filesystem's relatime rule (atime older than ctime) then moves the raw atime to now.
    t.comment(`after touch -m: atime ${s2.atimeMs} (was ${recent * 1000})`);
    const mtimeBefore = s2.mtimeMs;
    r = spawnSync('touch', ['-a', '-d', `@${recent - 60}`, p], { encoding: 'utf8' });
    t.equal(r.status, 0, `touch -a: ${r.stderr}`);
    s2 = fs.statSync(p);
    t.equal(s2.atimeMs, (recent - 60) * 1000, 'touch -a sets atime');
    t.equal(s2.mtimeMs, mtimeBefore, 'touch -a keeps mtime (UTIME_OMIT)');
    const before = Date.now();
    r = spawnSync('touch', [p], { encoding: 'utf8' });
    s2 = fs.statSync(p);
    t.ok(Math.abs(s2.mtimeMs - before) < 5000, `plain touch (UTIME_NOW) sets mtime to now (${s2.mtimeMs} vs ${before})`);
    t.ok(Math.abs(s2.atimeMs - before) < 5000, 'and atime to now');
  });

  t.test(`${preset}: readdir`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'readdir');
    const names = ['a', 'b.txt', 'ünïcödé', '日本語', 'with space', '.hidden', 'x'.repeat(100)];
    for (const n of names) fs.writeFileSync(join(d, n), n);
    fs.mkdirSync(join(d, 'sub'));
    fs.symlinkSync('a', join(d, 'link'));
    t.same(fs.readdirSync(d).sort(), [...names, 'sub', 'link'].sort(), 'readdir lists every plaintext name');
    const types = new Map(fs.readdirSync(d, { withFileTypes: true }).map((e) => [e.name, e.isDirectory() ? 'd' : e.isSymbolicLink() ? 'l' : e.isFile() ? 'f' : '?']));
    t.equal(types.get('sub'), 'd', 'directory entry type');
    t.equal(types.get('link'), 'l', 'symlink entry type');
    t.equal(types.get('a'), 'f', 'file entry type');
    t.same(fs.readdirSync(area(m, 'readdir-empty')), [], 'empty directory lists nothing');
    // the volume root hides the EncFS config file
    t.notOk(fs.readdirSync(m.mnt).includes('.encfs6.xml'), 'the root listing does not show .encfs6.xml');
    const big = area(m, 'readdir-many');
    for (let i = 0; i < 300; i++) fs.writeFileSync(join(big, `n${i}`), '');
    t.equal(fs.readdirSync(big).length, 300, '300 entries listed');
    expectCode(t, () => fs.readdirSync(join(d, 'missing')), 'ENOENT', 'readdir of a missing dir');
    expectCode(t, () => fs.readdirSync(join(d, 'a')), 'ENOTDIR', 'readdir of a file');
  });

  t.test(`${preset}: create/open: O_CREAT|O_EXCL, O_TRUNC, O_APPEND with two appenders, ENOENT`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'open');
    const p = join(d, 'f');
    const c = fs.constants;
    const fd = fs.openSync(p, c.O_CREAT | c.O_EXCL | c.O_WRONLY, 0o640);
    fs.writeSync(fd, 'first');
    fs.closeSync(fd);
    t.equal(fs.statSync(p).mode & 0o777, 0o640, 'O_CREAT mode');
    expectCode(t, () => fs.openSync(p, c.O_CREAT | c.O_EXCL | c.O_WRONLY), 'EEXIST', 'O_CREAT|O_EXCL on an existing file');
    expectCode(t, () => fs.openSync(d, c.O_CREAT | c.O_EXCL | c.O_WRONLY), 'EEXIST', 'O_CREAT|O_EXCL on an existing directory');
    t.equal(fs.readFileSync(p, 'utf8'), 'first', 'failed O_EXCL did not touch the file');
    const fd2 = fs.openSync(p, c.O_CREAT | c.O_WRONLY);
    fs.closeSync(fd2);
    t.equal(fs.readFileSync(p, 'utf8'), 'first', 'O_CREAT without O_EXCL opens the existing file unchanged');
    expectCode(t, () => fs.openSync(join(d, 'missing'), 'r'), 'ENOENT', 'open of a missing file without O_CREAT');
    expectCode(t, () => fs.openSync(join(d, 'missing-dir', 'f'), 'w'), 'ENOENT', 'create in a missing directory');

    // O_TRUNC
    fs.writeFileSync(p, Buffer.alloc(5000, 7));
    const ft = fs.openSync(p, c.O_RDWR | c.O_TRUNC);
    t.equal(fs.fstatSync(ft).size, 0, 'O_TRUNC empties the file');
    fs.writeSync(ft, 'abc', 0);
    fs.closeSync(ft);
    t.equal(fs.readFileSync(p, 'utf8'), 'abc', 'after O_TRUNC only the new data');
    fs.writeFileSync(p, 'short');
    t.equal(fs.readFileSync(p, 'utf8'), 'short', "writeFile ('w' = O_TRUNC) replaces a longer file");

    // O_APPEND: two appenders interleaved; every write lands at the end
    const ap = join(d, 'append');
    fs.writeFileSync(ap, 'start\n');
    const a1 = fs.openSync(ap, 'a');
    const a2 = fs.openSync(ap, 'a');
    let expected = 'start\n';
    const r = rng(7);
    for (let i = 0; i < 60; i++) {
      const which = r.int(2) === 0 ? a1 : a2;
      const line = `${which === a1 ? 'one' : 'two'} ${i} ${'z'.repeat(r.int(1500))}\n`;
      fs.writeSync(which, line);
      expected += line;
    }
    fs.closeSync(a1);
    fs.closeSync(a2);
    t.equal(sha(fs.readFileSync(ap)), sha(Buffer.from(expected)), 'two O_APPEND fds: all lines, in write order, nothing overwritten');
    // O_APPEND ignores the position of pwrite (Linux semantics)
    const a3 = fs.openSync(ap, 'a');
    fs.writeSync(a3, 'END', 0);
    fs.closeSync(a3);
    t.ok(fs.readFileSync(ap, 'utf8').endsWith('END'), 'positional write on an O_APPEND fd appends');
    t.ok(fs.readFileSync(ap, 'utf8').startsWith('start\n'), '…and leaves the start alone');

    // read-only and write-only fds
    const ro = fs.openSync(p, 'r');
    expectCode(t, () => fs.writeSync(ro, 'x'), 'EBADF', 'write on an O_RDONLY fd');
    fs.closeSync(ro);
    const wo = fs.openSync(p, 'r+');
    t.equal(fs.readSync(wo, Buffer.alloc(5), 0, 5, 0), 5, 'O_RDWR fd reads');
    fs.closeSync(wo);
  });

  t.test(`${preset}: read/write at random offsets, reads past EOF, big files`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'rw');
    const p = join(d, 'f');
    const r = rng(preset === 'standard' ? 11 : 12);
    let model = Buffer.alloc(0);
    const fd = fs.openSync(p, 'w+');
    for (let i = 0; i < 150; i++) {
      const off = r.int(model.length + 3000);
      const data = r.bytes(1 + r.int(r.int(4) === 0 ? 9000 : 300));
      t.equal(fs.writeSync(fd, data, 0, data.length, off), data.length, 'write returns its length');
      if (off + data.length > model.length) {
        const grown = Buffer.alloc(off + data.length);
        model.copy(grown);
        model = grown;
      }
      data.copy(model, off);
      if (i % 10 === 0) {
        const ro = r.int(model.length);
        const len = r.int(5000);
        const buf = Buffer.alloc(len);
        const n = fs.readSync(fd, buf, 0, len, ro);
        t.equal(n, Math.min(len, model.length - ro), `read length at ${ro}`);
        t.equal(sha(buf.subarray(0, n)), sha(model.subarray(ro, ro + n)), `read contents at ${ro}`);
      }
    }
    t.equal(fs.fstatSync(fd).size, model.length, 'size after random writes');
    t.equal(fs.readSync(fd, Buffer.alloc(10), 0, 10, model.length), 0, 'read at EOF returns 0');
    t.equal(fs.readSync(fd, Buffer.alloc(10), 0, 10, model.length + 100_000), 0, 'read past EOF returns 0');
    t.equal(fs.readSync(fd, Buffer.alloc(10), 0, 10, model.length - 3), 3, 'read straddling EOF is short');
    fs.closeSync(fd);
    t.equal(sha(fs.readFileSync(p)), sha(model), 'whole file after close');
    const big = r.bytes(3 * 1024 * 1024 + 17);
    fs.writeFileSync(join(d, 'big'), big);
    t.equal(sha(fs.readFileSync(join(d, 'big'))), sha(big), '3 MiB file round trip');
    // the same file through two fds sees each other's writes
    const f1 = fs.openSync(p, 'r+');
    const f2 = fs.openSync(p, 'r');
    fs.writeSync(f1, 'SHARED', 0, 'utf8');
    const b = Buffer.alloc(6);
    fs.readSync(f2, b, 0, 6, 0);
    t.equal(b.toString(), 'SHARED', 'second fd reads the first fd’s write');
    fs.closeSync(f1);
    fs.closeSync(f2);
  });

  t.test(`${preset}: fsync and fdatasync`, { skip }, async (t) => {
    const m = mountFor(preset);
    const p = join(area(m, 'fsync'), 'f');
    const fd = fs.openSync(p, 'w+');
    fs.writeSync(fd, Buffer.alloc(100_000, 3));
    t.equal(code(() => fs.fsyncSync(fd)), 'OK', 'fsync');
    fs.writeSync(fd, Buffer.alloc(10, 4), 0, 10, 50);
    t.equal(code(() => fs.fdatasyncSync(fd)), 'OK', 'fdatasync');
    fs.closeSync(fd);
    const ro = fs.openSync(p, 'r');
    t.equal(code(() => fs.fsyncSync(ro)), 'OK', 'fsync on a read-only fd');
    fs.closeSync(ro);
    const got = fs.readFileSync(p);
    t.equal(got.length, 100_000);
    t.equal(got[50], 4, 'data written before fdatasync');
    t.equal(got[60], 3);
    const dfd = fs.openSync(join(m.mnt, 'fsync'), 'r');
    t.equal(code(() => fs.fsyncSync(dfd)), 'OK', 'fsync of a directory fd');
    fs.closeSync(dfd);
  });

  t.test(`${preset}: truncate and ftruncate, up and down`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'trunc');
    const p = join(d, 'f');
    const r = rng(21);
    let model = r.bytes(5000);
    fs.writeFileSync(p, model);
    const apply = (n: number): void => {
      const next = Buffer.alloc(n);
      model.copy(next, 0, 0, Math.min(n, model.length));
      model = next;
    };
    for (const n of [4000, 4096, 1024, 1023, 1, 0, 10, 3000, 70_000, 1025, 200_000, 5]) {
      fs.truncateSync(p, n);
      apply(n);
      t.equal(fs.statSync(p).size, n, `truncate to ${n}: size`);
      t.equal(sha(fs.readFileSync(p)), sha(model), `truncate to ${n}: contents (prefix, then zeros)`);
    }
    const fd = fs.openSync(p, 'r+');
    for (const n of [9000, 2048, 2049, 0, 1500]) {
      fs.ftruncateSync(fd, n);
      apply(n);
      t.equal(fs.fstatSync(fd).size, n, `ftruncate to ${n}: fstat size`);
      const buf = Buffer.alloc(n + 10);
      const got = fs.readSync(fd, buf, 0, buf.length, 0);
      t.equal(got, n, `ftruncate to ${n}: read length`);
      t.equal(sha(buf.subarray(0, got)), sha(model), `ftruncate to ${n}: contents`);
      const w = r.bytes(100);
      const off = Math.max(0, n - 50);
      fs.writeSync(fd, w, 0, 100, off);
      apply(Math.max(n, off + 100));
      w.copy(model, off);
    }
    fs.closeSync(fd);
    t.equal(sha(fs.readFileSync(p)), sha(model), 'after ftruncate + writes');
    // truncate by path while the file is open elsewhere
    const keep = fs.openSync(p, 'r');
    fs.truncateSync(p, 10);
    t.equal(fs.fstatSync(keep).size, 10, 'truncate by path seen through an open fd');
    fs.closeSync(keep);
    expectCode(t, () => fs.truncateSync(join(d, 'missing'), 0), 'ENOENT', 'truncate of a missing file');
    expectCode(t, () => fs.truncateSync(d, 0), 'EISDIR', 'truncate of a directory');
    const rofd = fs.openSync(p, 'r');
    expectCode(t, () => fs.ftruncateSync(rofd, 0), 'EINVAL', 'ftruncate of an O_RDONLY fd');
    fs.closeSync(rofd);
    t.equal(fs.statSync(p).size, 10, 'failed ftruncate did not change the file');
  });

  t.test(`${preset}: unlink, mkdir, rmdir`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'dirs');
    fs.writeFileSync(join(d, 'f'), 'x');
    fs.unlinkSync(join(d, 'f'));
    t.notOk(fs.existsSync(join(d, 'f')), 'unlinked file is gone');
    t.same(fs.readdirSync(d), [], 'and not listed');
    expectCode(t, () => fs.unlinkSync(join(d, 'f')), 'ENOENT', 'unlink of a missing file');
    fs.mkdirSync(join(d, 'sub'), { mode: 0o700 });
    t.equal(fs.statSync(join(d, 'sub')).mode & 0o777, 0o700, 'mkdir mode');
    expectCode(t, () => fs.unlinkSync(join(d, 'sub')), 'EISDIR', 'unlink of a directory');
    expectCode(t, () => fs.mkdirSync(join(d, 'sub')), 'EEXIST', 'mkdir over an existing directory');
    fs.writeFileSync(join(d, 'file'), 'x');
    expectCode(t, () => fs.mkdirSync(join(d, 'file')), 'EEXIST', 'mkdir over an existing file');
    expectCode(t, () => fs.mkdirSync(join(d, 'nope', 'x')), 'ENOENT', 'mkdir in a missing parent');
    fs.mkdirSync(join(d, 'a', 'b', 'c'), { recursive: true });
    fs.writeFileSync(join(d, 'a', 'b', 'c', 'leaf'), 'leaf');
    t.equal(fs.readFileSync(join(d, 'a', 'b', 'c', 'leaf'), 'utf8'), 'leaf', 'deep path');
    expectCode(t, () => fs.rmdirSync(join(d, 'a')), 'ENOTEMPTY', 'rmdir of a non-empty directory');
    expectCode(t, () => fs.rmdirSync(join(d, 'file')), 'ENOTDIR', 'rmdir of a file');
    expectCode(t, () => fs.rmdirSync(join(d, 'missing')), 'ENOENT', 'rmdir of a missing directory');
    t.ok(fs.existsSync(join(d, 'a', 'b', 'c', 'leaf')), 'failed rmdir removed nothing');
    fs.rmdirSync(join(d, 'sub'));
    t.notOk(fs.existsSync(join(d, 'sub')), 'rmdir removes an empty directory');
    fs.rmSync(join(d, 'a'), { recursive: true });
    t.notOk(fs.existsSync(join(d, 'a')), 'recursive removal');
    // a name can be reused after removal, as a different type
    fs.mkdirSync(join(d, 'reuse'));
    fs.rmdirSync(join(d, 'reuse'));
    fs.writeFileSync(join(d, 'reuse'), 'now a file');
    t.equal(fs.readFileSync(join(d, 'reuse'), 'utf8'), 'now a file', 'name reused as a file after rmdir');
    fs.unlinkSync(join(d, 'reuse'));
    fs.mkdirSync(join(d, 'reuse'));
    fs.writeFileSync(join(d, 'reuse', 'in'), 'inside');
    t.equal(fs.readFileSync(join(d, 'reuse', 'in'), 'utf8'), 'inside', 'name reused as a directory after unlink');
  });

  t.test(`${preset}: rename of files and directories`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'rename');
    const r = rng(31);
    const data = r.bytes(10_000);
    fs.writeFileSync(join(d, 'a'), data);
    fs.renameSync(join(d, 'a'), join(d, 'b'));
    t.notOk(fs.existsSync(join(d, 'a')), 'old name gone');
    t.equal(sha(fs.readFileSync(join(d, 'b'))), sha(data), 'file renamed with its contents');
    // over an existing file
    fs.writeFileSync(join(d, 'target'), 'old target');
    fs.renameSync(join(d, 'b'), join(d, 'target'));
    t.equal(sha(fs.readFileSync(join(d, 'target'))), sha(data), 'rename over an existing file replaces it');
    t.same(fs.readdirSync(d).sort(), ['target'], 'only the target left');
    // across directories
    fs.mkdirSync(join(d, 'x'));
    fs.mkdirSync(join(d, 'y'));
    fs.renameSync(join(d, 'target'), join(d, 'x', 'moved'));
    t.equal(sha(fs.readFileSync(join(d, 'x', 'moved'))), sha(data), 'moved to another directory, contents intact');
    // a directory with nested files
    const nested: Record<string, Buffer> = {};
    fs.mkdirSync(join(d, 'x', 'n1', 'n2', 'n3'), { recursive: true });
    for (const p of ['n1/f', 'n1/n2/g', 'n1/n2/n3/h', 'n1/n2/n3/big']) {
      nested[p] = r.bytes(p.endsWith('big') ? 300_000 : 1 + r.int(5000));
      fs.writeFileSync(join(d, 'x', p), nested[p]!);
    }
    fs.symlinkSync('../f', join(d, 'x', 'n1', 'n2', 'up'));
    fs.renameSync(join(d, 'x', 'n1'), join(d, 'y', 'renamed-tree'));
    t.notOk(fs.existsSync(join(d, 'x', 'n1')), 'source directory gone');
    for (const [p, b] of Object.entries(nested)) {
      const now = join(d, 'y', p.replace(/^n1/, 'renamed-tree'));
      t.equal(sha(fs.readFileSync(now)), sha(b), `nested ${p} intact after the directory rename`);
    }
    t.equal(fs.readlinkSync(join(d, 'y', 'renamed-tree', 'n2', 'up')), '../f', 'nested symlink intact');
    t.same(fs.readdirSync(join(d, 'y', 'renamed-tree', 'n2')).sort(), ['g', 'n3', 'up'], 'nested listing intact');
    // new files in the renamed tree, and renaming it back
    fs.writeFileSync(join(d, 'y', 'renamed-tree', 'n2', 'new'), 'new');
    fs.renameSync(join(d, 'y', 'renamed-tree'), join(d, 'x', 'n1'));
    t.equal(fs.readFileSync(join(d, 'x', 'n1', 'n2', 'new'), 'utf8'), 'new', 'file created after a rename, renamed back');
    t.equal(sha(fs.readFileSync(join(d, 'x', 'n1', 'n2', 'n3', 'big'))), sha(nested['n1/n2/n3/big']!), 'big file after two renames');
    // directory over an existing empty directory
    fs.mkdirSync(join(d, 'empty'));
    fs.renameSync(join(d, 'x', 'n1'), join(d, 'empty'));
    t.equal(fs.readFileSync(join(d, 'empty', 'f')).length, nested['n1/f']!.length, 'directory renamed over an empty directory');
    // error cases
    fs.mkdirSync(join(d, 'full'));
    fs.writeFileSync(join(d, 'full', 'keep'), 'keep');
    expectCode(t, () => fs.renameSync(join(d, 'empty'), join(d, 'full')), 'ENOTEMPTY', 'directory over a non-empty directory');
    fs.writeFileSync(join(d, 'plain'), 'plain');
    expectCode(t, () => fs.renameSync(join(d, 'plain'), join(d, 'full')), 'EISDIR', 'file over a directory');
    expectCode(t, () => fs.renameSync(join(d, 'full'), join(d, 'plain')), 'ENOTDIR', 'directory over a file');
    expectCode(t, () => fs.renameSync(join(d, 'missing'), join(d, 'z')), 'ENOENT', 'rename of a missing name');
    expectCode(t, () => fs.renameSync(join(d, 'full'), join(d, 'full', 'inside')), 'EINVAL', 'directory into itself');
    t.equal(fs.readFileSync(join(d, 'full', 'keep'), 'utf8'), 'keep', 'failed renames changed nothing');
    t.equal(fs.readFileSync(join(d, 'plain'), 'utf8'), 'plain');
    // renames keep the mtime of what they move (stock encfs restores it after re-sealing headers)
    fs.mkdirSync(join(d, 'timed', 'sub'), { recursive: true });
    fs.writeFileSync(join(d, 'timed', 'sub', 'inner'), 'inner');
    fs.writeFileSync(join(d, 'timed', 'single'), 'single');
    fs.utimesSync(join(d, 'timed', 'sub', 'inner'), 1_500_000_000, 1_500_000_000);
    fs.utimesSync(join(d, 'timed', 'single'), 1_500_000_000, 1_500_000_000);
    fs.renameSync(join(d, 'timed', 'single'), join(d, 'y', 'single-moved'));
    fs.renameSync(join(d, 'timed'), join(d, 'y', 'timed-moved'));
    await new Promise((res) => setTimeout(res, 1200)); // let the kernel's 1 s attribute cache expire
    t.equal(fs.statSync(join(d, 'y', 'single-moved')).mtimeMs, 1_500_000_000_000, 'a file moved to another directory keeps its mtime');
    t.equal(fs.statSync(join(d, 'y', 'timed-moved', 'sub', 'inner')).mtimeMs, 1_500_000_000_000, 'a file inside a moved directory keeps its mtime');
    // rename onto itself is a no-op
    fs.renameSync(join(d, 'plain'), join(d, 'plain'));
    t.equal(fs.readFileSync(join(d, 'plain'), 'utf8'), 'plain', 'rename onto itself keeps the file');
  });

  t.test(`${preset}: symlink and readlink`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'links');
    fs.writeFileSync(join(d, 'target'), 'target data');
    fs.mkdirSync(join(d, 'sub'));
    fs.symlinkSync('target', join(d, 'rel'));
    fs.symlinkSync('../target', join(d, 'sub', 'up'));
    fs.symlinkSync('/etc/hostname', join(d, 'abs'));
    const longTarget = `${'segment/'.repeat(100)}end`;
    fs.symlinkSync(longTarget, join(d, 'long'));
    fs.symlinkSync('nowhere/ü', join(d, 'dangling'));
    t.equal(fs.readlinkSync(join(d, 'rel')), 'target', 'relative target');
    t.equal(fs.readlinkSync(join(d, 'sub', 'up')), '../target', 'relative target with ..');
    t.equal(fs.readlinkSync(join(d, 'abs')), '/etc/hostname', 'absolute target');
    t.equal(fs.readlinkSync(join(d, 'long')), longTarget, '807-byte target');
    t.equal(fs.readlinkSync(join(d, 'dangling')), 'nowhere/ü', 'dangling target');
    t.equal(fs.readFileSync(join(d, 'rel'), 'utf8'), 'target data', 'read through a relative link');
    t.equal(fs.readFileSync(join(d, 'sub', 'up'), 'utf8'), 'target data', 'read through ../ link');
    t.equal(fs.readFileSync(join(d, 'abs'), 'utf8'), fs.readFileSync('/etc/hostname', 'utf8'), 'read through an absolute link leaving the mount');
    fs.writeFileSync(join(d, 'rel'), 'written via link');
    t.equal(fs.readFileSync(join(d, 'target'), 'utf8'), 'written via link', 'write through a link reaches the target');
    expectCode(t, () => fs.statSync(join(d, 'dangling')), 'ENOENT', 'stat through a dangling link');
    expectCode(t, () => fs.symlinkSync('x', join(d, 'rel')), 'EEXIST', 'symlink over an existing name');
    expectCode(t, () => fs.readlinkSync(join(d, 'target')), 'EINVAL', 'readlink of a regular file');
    expectCode(t, () => fs.readlinkSync(join(d, 'missing')), 'ENOENT', 'readlink of a missing name');
    fs.renameSync(join(d, 'rel'), join(d, 'sub', 'rel-moved'));
    t.equal(fs.readlinkSync(join(d, 'sub', 'rel-moved')), 'target', 'a moved symlink keeps its target text');
    fs.unlinkSync(join(d, 'abs'));
    t.ok(fs.existsSync('/etc/hostname'), 'unlinking a link leaves its target');
    t.notOk(fs.existsSync(join(d, 'abs')), 'link removed');
  });

  t.test(`${preset}: chmod and chown`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'perm');
    const p = join(d, 'f');
    fs.writeFileSync(p, 'x');
    for (const mode of [0o600, 0o755, 0o400, 0o4755, 0o2750, 0o1777, 0o000, 0o644]) {
      fs.chmodSync(p, mode);
      t.equal(fs.statSync(p).mode & 0o7777, mode, `chmod ${mode.toString(8)}`);
    }
    fs.chmodSync(d, 0o711);
    t.equal(fs.statSync(d).mode & 0o7777, 0o711, 'chmod of a directory');
    fs.chmodSync(d, 0o755);
    const fd = fs.openSync(p, 'r');
    fs.fchmodSync(fd, 0o640);
    fs.closeSync(fd);
    t.equal(fs.statSync(p).mode & 0o7777, 0o640, 'fchmod');
    fs.chownSync(p, 1234, 5678);
    let st = fs.statSync(p);
    t.equal(st.uid, 1234, 'chown uid');
    t.equal(st.gid, 5678, 'chown gid');
    fs.chownSync(p, -1, 42);
    st = fs.statSync(p);
    t.equal(st.uid, 1234, 'chown -1 keeps the uid');
    t.equal(st.gid, 42, 'chown changes only the gid');
    fs.symlinkSync('f', join(d, 'ln'));
    fs.lchownSync(join(d, 'ln'), 77, 88);
    t.equal(fs.lstatSync(join(d, 'ln')).uid, 77, 'lchown changes the link');
    t.equal(fs.statSync(p).uid, 1234, 'lchown does not follow the link');
    fs.chownSync(p, 0, 0);
    expectCode(t, () => fs.chmodSync(join(d, 'missing'), 0o600), 'ENOENT', 'chmod of a missing file');
    expectCode(t, () => fs.chownSync(join(d, 'missing'), 0, 0), 'ENOENT', 'chown of a missing file');
  });

  t.test(`${preset}: statfs and access`, { skip }, async (t) => {
    const m = mountFor(preset);
    const s = fs.statfsSync(m.mnt);
    const under = fs.statfsSync(m.tree);
    t.ok(s.bsize > 0, 'bsize');
    t.equal(s.bsize, under.bsize, 'bsize of the backing filesystem');
    if (under.blocks < 0xffffffff) t.equal(s.blocks, under.blocks, 'blocks of the backing filesystem');
    t.ok(s.bfree <= s.blocks && s.bavail <= s.bfree, 'bavail ≤ bfree ≤ blocks');
    t.ok(Math.abs(s.bfree - Math.min(under.bfree, 0xffffffff)) < 0.01 * s.blocks + 10_000, 'bfree close to the backing filesystem');
    const namemax = spawnSync('stat', ['-f', '-c', '%l', m.mnt], { encoding: 'utf8' });
    t.equal(namemax.status, 0, 'stat -f works');
    t.equal(namemax.stdout.trim(), '175', 'namemax: the longest plaintext name a block-encoded name can have');
    const d = area(m, 'access');
    const p = join(d, 'f');
    fs.writeFileSync(p, 'x', { mode: 0o644 });
    t.equal(code(() => fs.accessSync(p, fs.constants.F_OK)), 'OK', 'F_OK');
    t.equal(code(() => fs.accessSync(p, fs.constants.R_OK | fs.constants.W_OK)), 'OK', 'R_OK|W_OK as root');
    expectCode(t, () => fs.accessSync(p, fs.constants.X_OK), 'EACCES', 'X_OK on a file without any x bit (even root)');
    fs.chmodSync(p, 0o744);
    t.equal(code(() => fs.accessSync(p, fs.constants.X_OK)), 'OK', 'X_OK once executable');
    expectCode(t, () => fs.accessSync(join(d, 'missing')), 'ENOENT', 'access of a missing name');
  });

  t.test(`${preset}: mknod: fifo works, devices refused`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'fifo');
    const p = join(d, 'pipe');
    const mk = spawnSync('mkfifo', ['-m', '0640', p], { encoding: 'utf8' });
    t.equal(mk.status, 0, `mkfifo: ${mk.stderr}`);
    const st = fs.lstatSync(p);
    t.ok(st.isFIFO(), 'a fifo');
    t.equal(st.mode & 0o777, 0o640, 'fifo mode');
    t.same(fs.readdirSync(d), ['pipe'], 'fifo listed');
    const reader = spawn('cat', [p], { stdio: ['ignore', 'pipe', 'inherit'] });
    let got = '';
    reader.stdout.setEncoding('utf8').on('data', (s: string) => (got += s));
    const exited = new Promise<number | null>((res) => reader.on('exit', (c) => res(c)));
    fs.writeFileSync(p, 'through the fifo\n');
    t.equal(await exited, 0, 'reader exited');
    t.equal(got, 'through the fifo\n', 'data passes through the fifo');
    const again = spawnSync('mkfifo', [p], { encoding: 'utf8' });
    t.not(again.status, 0, 'mkfifo over an existing name fails');
    t.match(again.stderr, /File exists/, 'with EEXIST');
    const dev = spawnSync('mknod', [join(d, 'null'), 'c', '1', '3'], { encoding: 'utf8' });
    t.not(dev.status, 0, 'mknod of a character device fails');
    t.match(dev.stderr, /Operation not permitted/, 'with EPERM');
    t.notOk(fs.existsSync(join(d, 'null')), 'and creates nothing');
    fs.unlinkSync(p);
    t.notOk(fs.existsSync(p), 'fifo unlinked');
  });

  t.test(`${preset}: without --xattr, extended attributes answer "not supported"`, { skip: skip || xattrSkip }, async (t) => {
    const q = quickMount(t, preset, { label: 'noxattr', xattr: false });
    const p = join(q.mnt, 'f');
    fs.writeFileSync(p, 'x');
    const r = spawnSync(findExecutable('setfattr')!, ['-n', 'user.colour', '-v', 'blue', p], { encoding: 'utf8' });
    t.not(r.status, 0, 'setxattr fails');
    t.match(r.stderr, /Operation not supported/, `ENOTSUP: ${r.stderr.trim()}`);
    t.equal(fs.readFileSync(p, 'utf8'), 'x', 'the file is untouched');
  });

  t.test(`${preset}: extended attributes (setfattr/getfattr)`, { skip: skip || xattrSkip }, async (t) => {
    const setfattr = findExecutable('setfattr')!;
    const getfattr = findExecutable('getfattr')!;
    const m = mountFor(preset);
    const d = area(m, 'xattr');
    const p = join(d, 'f');
    fs.writeFileSync(p, 'x');
    const run = (bin: string, args: string[]): { status: number | null; out: string; err: string } => {
      const r = spawnSync(bin, args, { encoding: 'utf8' });
      return { status: r.status, out: r.stdout, err: r.stderr };
    };
    let r = run(setfattr, ['-n', 'user.colour', '-v', 'blue', p]);
    t.equal(r.status, 0, `setxattr: ${r.err}`);
    r = run(getfattr, ['--only-values', '-n', 'user.colour', p]);
    t.equal(r.status, 0, `getxattr: ${r.err}`);
    t.equal(r.out, 'blue', 'value read back');
    r = run(setfattr, ['-n', 'user.second', '-v', '0x00ff10', p]);
    t.equal(r.status, 0, 'binary value');
    r = run(getfattr, ['-e', 'hex', '-n', 'user.second', p]);
    t.match(r.out, /user\.second=0x00ff10/, 'binary value read back');
    r = run(getfattr, ['-d', '-m', '-', '-e', 'text', p]);
    t.match(r.out, /user\.colour="blue"/, 'listxattr shows user.colour');
    t.match(r.out, /user\.second=/, 'listxattr shows user.second');
    r = run(getfattr, ['-n', 'user.missing', p]);
    t.not(r.status, 0, 'getxattr of a missing attribute fails');
    t.match(r.err, /No such attribute/, 'with ENODATA');
    r = run(setfattr, ['-x', 'user.colour', p]);
    t.equal(r.status, 0, `removexattr: ${r.err}`);
    r = run(getfattr, ['-d', p]);
    t.notMatch(r.out, /user\.colour/, 'removed attribute no longer listed');
    r = run(setfattr, ['-x', 'user.colour', p]);
    t.not(r.status, 0, 'removing a missing attribute fails');
    r = run(setfattr, ['-n', 'user.on-dir', '-v', 'yes', d]);
    t.equal(r.status, 0, 'setxattr on a directory');
    t.equal(run(getfattr, ['--only-values', '-n', 'user.on-dir', d]).out, 'yes', 'directory xattr read back');
    r = run(setfattr, ['-n', 'user.colour', '-v', 'x', join(d, 'missing')]);
    t.not(r.status, 0, 'setxattr on a missing file fails');
    t.match(r.err, /No such file/, 'with ENOENT');
  });

  t.test(`${preset}: EISDIR, ENOTDIR`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'errs');
    fs.writeFileSync(join(d, 'file'), 'x');
    expectCode(t, () => fs.readFileSync(d), 'EISDIR', 'reading a directory as a file');
    expectCode(t, () => fs.openSync(d, 'w'), 'EISDIR', 'opening a directory for writing');
    expectCode(t, () => fs.writeFileSync(d, 'x'), 'EISDIR', 'writeFile on a directory');
    expectCode(t, () => fs.statSync(join(d, 'file', 'below')), 'ENOTDIR', 'stat of a path through a file');
    expectCode(t, () => fs.writeFileSync(join(d, 'file', 'below'), 'x'), 'ENOTDIR', 'create through a file');
    expectCode(t, () => fs.mkdirSync(join(d, 'file', 'below')), 'ENOTDIR', 'mkdir through a file');
    expectCode(t, () => fs.readdirSync(join(d, 'file')), 'ENOTDIR', 'readdir of a file');
  });

  t.test(`${preset}: hard links`, { skip }, async (t) => {
    const m = mountFor(preset);
    const d = area(m, 'hardlink');
    fs.writeFileSync(join(d, 'orig'), 'shared contents');
    if (preset === 'paranoia') {
      expectCode(t, () => fs.linkSync(join(d, 'orig'), join(d, 'second')), 'EPERM', 'link with external IV chaining');
      t.notOk(fs.existsSync(join(d, 'second')), 'no link created');
      t.equal(fs.statSync(join(d, 'orig')).nlink, 1, 'nlink unchanged');
      return;
    }
    fs.linkSync(join(d, 'orig'), join(d, 'second'));
    t.equal(fs.statSync(join(d, 'orig')).nlink, 2, 'nlink 2');
    t.equal(fs.statSync(join(d, 'orig')).ino, fs.statSync(join(d, 'second')).ino, 'both names report the same st_ino (as stock encfs does with use_ino; tar, rsync -H, du rely on it)');
    t.equal(fs.readFileSync(join(d, 'second'), 'utf8'), 'shared contents', 'link reads the contents');
    fs.mkdirSync(join(d, 'elsewhere'));
    fs.linkSync(join(d, 'orig'), join(d, 'elsewhere', 'third'));
    t.equal(fs.readFileSync(join(d, 'elsewhere', 'third'), 'utf8'), 'shared contents', 'link in another directory');
    // In a repository, ciphertext with more than one link may be shared with the object store, so a change
    // never goes to it in place: writing through one name re-encrypts that name into a file of its own
    // (copy-on-write). The write-through behaviour of hard links is tested on a bare volume below.
    fs.writeFileSync(join(d, 'second'), 'changed via link');
    t.equal(fs.readFileSync(join(d, 'second'), 'utf8'), 'changed via link', 'the name written through has the new contents');
    t.equal(fs.readFileSync(join(d, 'orig'), 'utf8'), 'shared contents', 'the other names keep the old contents (copy-on-write)');
    t.equal(fs.readFileSync(join(d, 'elsewhere', 'third'), 'utf8'), 'shared contents', 'in every directory');
    fs.unlinkSync(join(d, 'orig'));
    t.equal(fs.readFileSync(join(d, 'elsewhere', 'third'), 'utf8'), 'shared contents', 'contents survive unlinking one name');
    expectCode(t, () => fs.linkSync(join(d, 'second'), join(d, 'elsewhere', 'third')), 'EEXIST', 'link over an existing name');
    expectCode(t, () => fs.linkSync(join(d, 'missing'), join(d, 'x')), 'ENOENT', 'link of a missing file');
    expectCode(t, () => fs.linkSync(join(d, 'elsewhere'), join(d, 'dirlink')), 'EPERM', 'link of a directory');
  });
}

t.test('readdir tells entry types: ls -R and find walk a tree without a round trip per entry', { skip }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'ops-dtype' });
  const d = join(m.mnt, 'tree');
  for (const sub of ['d1', 'd2', 'd2/d3']) fs.mkdirSync(join(d, sub), { recursive: true });
  const files = Array.from({ length: 300 }, (_, i) => `d${(i % 2) + 1}/f${i}`);
  for (const f of files) fs.writeFileSync(join(d, f), f);
  fs.symlinkSync('f0', join(d, 'd1', 'link'));
  t.equal(spawnSync('mkfifo', [join(d, 'd2', 'pipe')]).status, 0, 'mkfifo');
  await m.umount();
  // a fresh mount: the kernel has no entries of the tree cached
  const again = mountDvfs(m.ws, m.repo, m.mnt);
  const before = again.status().operations;
  const ls = spawnSync('ls', ['-R', d], { encoding: 'utf8' });
  const during = again.status().operations - before; // status goes over the control socket, not FUSE
  t.equal(ls.status, 0, 'ls -R succeeds');
  const listed = ls.stdout.split('\n').filter((l) => /^f\d+$/.test(l)).length;
  t.equal(listed, 300, 'ls -R lists every file');
  t.ok(during < 40, `ls -R of 306 entries in 4 directories took ${during} FUSE operations (a lookup per entry would be over 300)`);
  const find = (type: string): string[] => spawnSync('find', [d, '-type', type], { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.slice(d.length + 1)).sort();
  t.same(find('d'), ['', 'd1', 'd2', 'd2/d3'].sort(), 'find -type d: the directories');
  t.same(find('l'), ['d1/link'], 'find -type l: the symlink');
  t.same(find('p'), ['d2/pipe'], 'find -type p: the fifo');
  t.same(find('f'), files.sort(), 'find -type f: every file');
});

t.test('standard, bare volume (no repository, no copy-on-write): a write through one hard link is seen through the other', { skip }, async (t) => {
  const ws = workspace(t, 'ops-bare-links');
  const repo = initRepo(ws, 'repo', 'standard');
  // The repository's tree is a plain EncFS volume: mounted directly, it is a bare volume.
  const m = mountDvfs(ws, join(repo, 'tree'), join(ws.dir, 'mnt'));
  const d = m.mnt;
  fs.writeFileSync(join(d, 'orig'), 'shared contents');
  fs.linkSync(join(d, 'orig'), join(d, 'second'));
  t.equal(fs.statSync(join(d, 'orig')).nlink, 2, 'nlink 2');
  fs.writeFileSync(join(d, 'second'), 'changed via link');
  // The kernel caches attributes per name for attr_timeout (1 s): right after the write the other name may
  // still report the old size (stock encfs behaves the same). Once that expires it must see the new data.
  const deadline = Date.now() + 3000;
  let seen = fs.readFileSync(join(d, 'orig'), 'utf8');
  while (seen !== 'changed via link' && Date.now() < deadline) {
    await new Promise((res) => setTimeout(res, 100));
    seen = fs.readFileSync(join(d, 'orig'), 'utf8');
  }
  t.equal(seen, 'changed via link', 'write through one name seen through the other (after the attribute cache expires)');
  t.equal(fs.statSync(join(d, 'orig')).ino, fs.statSync(join(d, 'second')).ino, 'still one inode');
  fs.unlinkSync(join(d, 'orig'));
  t.equal(fs.readFileSync(join(d, 'second'), 'utf8'), 'changed via link', 'contents survive unlinking one name');
  t.equal(fs.statSync(join(d, 'second')).nlink, 1, 'nlink drops');
  await m.umount();
});

t.test('standard: foreign and damaged ciphertext: undecodable names skipped; a damaged file reads EIO and can still be moved aside or removed', { skip }, async (t) => {
  const m = mountFor('standard');
  const d = area(m, 'foreign');
  fs.writeFileSync(join(d, 'good'), 'good');
  const VICTIM = 4321; // its ciphertext is VICTIM + 8 (header) bytes in the standard preset: unique here
  fs.writeFileSync(join(d, 'victim'), Buffer.alloc(VICTIM, 1));
  const victimRaw = (function find(dir: string): string | null {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        const deeper = find(p);
        if (deeper) return deeper;
      } else if (e.isFile() && fs.statSync(p).size === VICTIM + 8) return p;
    }
    return null;
  })(m.tree);
  t.ok(victimRaw, 'found the ciphertext of the victim');
  const rawDir = join(victimRaw!, '..');
  t.equal(fs.readdirSync(rawDir).length, 2, 'its ciphertext directory holds the two files');
  fs.writeFileSync(join(rawDir, 'not an encfs name!'), 'foreign');
  fs.writeFileSync(join(rawDir, '.dvfs-tmp-0123456789ab'), 'temporary');
  t.same(fs.readdirSync(d).sort(), ['good', 'victim'], 'undecodable and temporary entries are not listed');
  const before = m.status().integrityErrors;
  fs.truncateSync(victimRaw!, 3); // shorter than the 8-byte file header: cannot be an EncFS file
  await new Promise((res) => setTimeout(res, 1100)); // the kernel caches the old size for 1 s
  expectCode(t, () => fs.readFileSync(join(d, 'victim')), 'EIO', 'reading a ciphertext shorter than its header');
  t.comment(`stat of it: ${code(() => fs.statSync(join(d, 'victim')))}`);
  t.ok(m.status().integrityErrors > before, 'counted as an integrity error');
  t.equal(fs.readFileSync(join(d, 'good'), 'utf8'), 'good', 'the other file is unaffected');
  // a workflow must be able to clean up a damaged file through the mount (rm, or mv it aside)
  t.equal(code(() => fs.renameSync(join(d, 'victim'), join(d, 'quarantined'))), 'OK', 'the damaged file can be renamed aside');
  const name = fs.existsSync(join(d, 'quarantined')) ? 'quarantined' : 'victim';
  t.equal(code(() => fs.unlinkSync(join(d, name))), 'OK', 'the damaged file can be removed');
  t.same(fs.readdirSync(d), ['good'], 'and is gone');
});

t.test('standard: ENAMETOOLONG for a 176-byte name, 175 bytes work', { skip }, async (t) => {
  const m = mountFor('standard');
  const d = area(m, 'names');
  const ok175 = 'n'.repeat(175);
  fs.writeFileSync(join(d, ok175), '175');
  t.equal(fs.readFileSync(join(d, ok175), 'utf8'), '175', '175-byte name works');
  t.ok(fs.readdirSync(d).includes(ok175), '175-byte name listed');
  const long = 'L'.repeat(176);
  expectCode(t, () => fs.writeFileSync(join(d, long), 'x'), 'ENAMETOOLONG', 'create with a 176-byte name');
  expectCode(t, () => fs.mkdirSync(join(d, long)), 'ENAMETOOLONG', 'mkdir with a 176-byte name');
  expectCode(t, () => fs.symlinkSync('x', join(d, long)), 'ENAMETOOLONG', 'symlink with a 176-byte name');
  expectCode(t, () => fs.renameSync(join(d, ok175), join(d, long)), 'ENAMETOOLONG', 'rename to a 176-byte name');
  expectCode(t, () => fs.writeFileSync(join(d, 'é'.repeat(88)), 'x'), 'ENAMETOOLONG', '88 two-byte characters (176 bytes)');
  expectCode(t, () => fs.writeFileSync(join(d, 'x'.repeat(256)), 'x'), 'ENAMETOOLONG', 'a name over NAME_MAX');
  t.same(fs.readdirSync(d), [ok175], 'nothing else was created');
  t.equal(fs.readFileSync(join(d, ok175), 'utf8'), '175', 'failed rename left the source');
});

t.test('EACCES for another user on a --allow-other mount (0600 file), and no access at all without it', { skip: skip || eaccesSkip }, async (t) => {
  const asNobody = (cmd: string[]): { status: number | null; out: string; err: string } => {
    const argv = setpriv !== null ? [setpriv, '--reuid=65534', '--regid=65534', '--clear-groups', ...cmd] : [su!, 'nobody', '-s', '/bin/sh', '-c', cmd.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ')];
    const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
    return { status: r.status, out: r.stdout, err: r.stderr };
  };
  const ws = workspace(t, 'ops-eacces');
  openUp(ws);
  const repo = initRepo(ws, 'repo', 'standard');
  const mnt = join(ws.dir, 'mnt');
  mountDvfs(ws, repo, mnt, { allowOther: true });
  fs.writeFileSync(join(mnt, 'secret'), 'top secret', { mode: 0o600 });
  fs.writeFileSync(join(mnt, 'public'), 'for everyone', { mode: 0o644 });
  fs.mkdirSync(join(mnt, 'closed'), { mode: 0o700 });
  fs.writeFileSync(join(mnt, 'closed', 'inner'), 'inner', { mode: 0o644 });
  let r = asNobody(['cat', join(mnt, 'public')]);
  t.equal(r.status, 0, `another user reads a 0644 file on an --allow-other mount: ${r.err}`);
  t.equal(r.out, 'for everyone', 'and gets its contents (the privilege drop works)');
  r = asNobody(['cat', join(mnt, 'secret')]);
  t.not(r.status, 0, 'another user cannot read a 0600 file');
  t.match(r.err, /Permission denied/, 'EACCES');
  r = asNobody(['sh', '-c', `echo x >> '${join(mnt, 'public')}'`]);
  t.match(r.err, /Permission denied/, 'another user cannot write a 0644 file owned by root');
  r = asNobody(['touch', join(mnt, 'new-by-nobody')]);
  t.match(r.err, /Permission denied/, 'nor create in a 0755 directory owned by root');
  r = asNobody(['ls', join(mnt, 'closed')]);
  t.match(r.err, /Permission denied/, 'nor list a 0700 directory');
  r = asNobody(['cat', join(mnt, 'closed', 'inner')]);
  t.match(r.err, /Permission denied/, 'nor traverse it');
  t.equal(fs.readFileSync(join(mnt, 'public'), 'utf8'), 'for everyone', 'nothing was changed');
  t.notOk(fs.existsSync(join(mnt, 'new-by-nobody')), 'nothing was created');
  fs.chmodSync(join(mnt, 'secret'), 0o604);
  r = asNobody(['cat', join(mnt, 'secret')]);
  t.equal(r.out, 'top secret', 'after chmod o+r the other user can read it');

  // without --allow-other, the other user cannot even look at the mount
  const mnt2 = join(ws.dir, 'mnt-private');
  const repo2 = initRepo(ws, 'repo2', 'standard');
  mountDvfs(ws, repo2, mnt2);
  fs.writeFileSync(join(mnt2, 'public'), 'x', { mode: 0o644 });
  r = asNobody(['cat', join(mnt2, 'public')]);
  t.not(r.status, 0, 'a mount without --allow-other refuses other users');
  t.match(r.err, /Permission denied/, 'with EACCES');
});

t.test('EROFS everywhere on a --read-only mount, reads still work', { skip }, async (t) => {
  const ws = workspace(t, 'ops-ro');
  const repo = initRepo(ws, 'repo', 'standard');
  const rw = mountDvfs(ws, repo, join(ws.dir, 'rw'));
  fs.mkdirSync(join(rw.mnt, 'dir'));
  fs.writeFileSync(join(rw.mnt, 'dir', 'f'), 'read me');
  fs.symlinkSync('dir/f', join(rw.mnt, 'ln'));
  await rw.umount();
  const ro = mountDvfs(ws, repo, join(ws.dir, 'ro'), { readOnly: true });
  const mnt = ro.mnt;
  t.equal(fs.readFileSync(join(mnt, 'dir', 'f'), 'utf8'), 'read me', 'reading works');
  t.equal(fs.readlinkSync(join(mnt, 'ln')), 'dir/f', 'readlink works');
  t.same(fs.readdirSync(mnt).sort(), ['dir', 'ln'], 'readdir works');
  const f = join(mnt, 'dir', 'f');
  expectCode(t, () => fs.writeFileSync(join(mnt, 'new'), 'x'), 'EROFS', 'create');
  expectCode(t, () => fs.openSync(f, 'r+'), 'EROFS', 'open O_RDWR');
  expectCode(t, () => fs.openSync(f, 'a'), 'EROFS', 'open O_APPEND');
  expectCode(t, () => fs.truncateSync(f, 0), 'EROFS', 'truncate');
  expectCode(t, () => fs.unlinkSync(f), 'EROFS', 'unlink');
  expectCode(t, () => fs.mkdirSync(join(mnt, 'd2')), 'EROFS', 'mkdir');
  expectCode(t, () => fs.rmdirSync(join(mnt, 'dir')), 'EROFS', 'rmdir');
  expectCode(t, () => fs.renameSync(f, join(mnt, 'dir', 'g')), 'EROFS', 'rename');
  expectCode(t, () => fs.symlinkSync('x', join(mnt, 'ln2')), 'EROFS', 'symlink');
  expectCode(t, () => fs.linkSync(f, join(mnt, 'hard')), 'EROFS', 'link');
  expectCode(t, () => fs.chmodSync(f, 0o600), 'EROFS', 'chmod');
  expectCode(t, () => fs.chownSync(f, 1, 1), 'EROFS', 'chown');
  expectCode(t, () => fs.utimesSync(f, 1, 1), 'EROFS', 'utimes');
  const mk = spawnSync('mkfifo', [join(mnt, 'fifo')], { encoding: 'utf8' });
  t.match(mk.stderr, /Read-only file system/, 'mkfifo → EROFS');
  t.equal(fs.readFileSync(f, 'utf8'), 'read me', 'file unchanged');
  const s = ro.status();
  t.equal(s['readOnly'], true, 'status says read-only');
  t.equal(s.bytesWritten, 0, 'nothing written');
});
