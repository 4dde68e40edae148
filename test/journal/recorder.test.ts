// ChangeRecorder: the hook sequence the FUSE frontend produces for everyday operations, and the records
// and summary that come out of it (hashes at the file's current path, dirty files, unlinked open files).
import t, { type Test } from 'tap';
import { join } from 'node:path';
import { SessionJournal } from '../../daemon/journal/journal.js';
import { ChangeRecorder } from '../../daemon/journal/recorder.js';
import { sha256, sha256Stream, tempDir } from './helpers.js';

async function setup(t: Test, encodePath: (p: string) => string = (p) => p): Promise<ChangeRecorder> {
  const j = await SessionJournal.create(join(await tempDir(t, 'recorder'), 'j'), { sessionId: 's', repoId: 'r', mountpoint: '/m', startedAt: '', baseSnapshot: null, host: 'h', pid: 1 });
  t.teardown(() => j.close());
  return new ChangeRecorder(j, sha256Stream, encodePath);
}

const summaryOf = async (rec: ChangeRecorder): Promise<string[]> =>
  (await rec.journal.summary()).entries.map((e) => `${e.status} ${e.path}${e.origin !== null && e.origin !== e.path ? ` <- ${e.origin}` : ''} ${e.dirty ? 'dirty' : (e.hash ?? '-').slice(0, 8)}${e.replaced ? ' replaced' : ''}`);

t.test('small files: create, write, release', async (t) => {
  const rec = await setup(t);
  for (let i = 0; i < 3; i++) {
    const data = Buffer.from(`file ${i}\n`);
    rec.created(100 + i, `/out/f${i}`);
    rec.write(100 + i, 0, data);
    t.ok(rec.needsFinalSize(100 + i));
    rec.releasedWrite(100 + i, data.length);
  }
  t.equal(rec.openFiles, 0);
  const records = [];
  for await (const r of rec.journal.records()) records.push(`${r.op} ${'path' in r ? r.path : ''} ${'hash' in r ? (r.hash ?? 'null').slice(0, 8) : ''}`);
  t.same(records, [
    'write /out/f0 null',
    `write /out/f0 ${sha256(Buffer.from('file 0\n')).slice(0, 8)}`,
    'write /out/f1 null',
    `write /out/f1 ${sha256(Buffer.from('file 1\n')).slice(0, 8)}`,
    'write /out/f2 null',
    `write /out/f2 ${sha256(Buffer.from('file 2\n')).slice(0, 8)}`,
  ]);
  t.same(await summaryOf(rec), [0, 1, 2].map((i) => `added /out/f${i} ${sha256(Buffer.from(`file ${i}\n`)).slice(0, 8)}`));
});

t.test('rewrite with O_TRUNC, append to an existing file, random writes, read-only opens', async (t) => {
  const rec = await setup(t);
  // open(O_WRONLY|O_TRUNC) of a 500-byte file, then sequential writes: hashed
  rec.openedForWrite(1, '/a', 500);
  rec.truncated(1, '/a', 0);
  rec.write(1, 0, Buffer.from('new '));
  rec.write(1, 4, Buffer.from('content'));
  rec.releasedWrite(1, 11);
  // O_APPEND to an existing file: dirty
  rec.openedForWrite(2, '/b', 10);
  rec.write(2, 10, Buffer.from('more'));
  rec.releasedWrite(2, 14);
  // random writes: dirty
  rec.created(3, '/c');
  rec.write(3, 100, Buffer.alloc(10));
  rec.write(3, 0, Buffer.alloc(10));
  rec.releasedWrite(3, 110);
  // opened for writing but never written: nothing
  rec.openedForWrite(4, '/d', 3);
  t.notOk(rec.needsFinalSize(4));
  rec.releasedWrite(4, 3);
  // truncate(2) of a file nobody has open
  rec.truncated(null, '/e', 0);
  rec.truncated(null, '/f', 7);
  // two writers on one inode: recorded once, when the last goes
  rec.openedForWrite(5, '/g', 0);
  rec.openedForWrite(5, '/g', 0);
  rec.write(5, 0, Buffer.from('xy'));
  rec.releasedWrite(5, 2);
  t.equal(rec.openFiles, 1);
  rec.releasedWrite(5, 2);
  t.same(await summaryOf(rec), [
    `changed /a ${sha256(Buffer.from('new content')).slice(0, 8)}`,
    'changed /b dirty',
    'added /c dirty',
    `changed /e ${sha256(Buffer.alloc(0)).slice(0, 8)}`,
    'changed /f dirty',
    `changed /g ${sha256(Buffer.from('xy')).slice(0, 8)}`,
  ]);
});

t.test('an open file follows renames; an unlinked or replaced one is not recorded', async (t) => {
  const rec = await setup(t);
  rec.created(1, '/dir/x');
  rec.write(1, 0, Buffer.from('one'));
  rec.renamed('/dir', '/dir2', false); // the directory above it
  rec.renamed('/dir2/x', '/y', false); // the file itself
  rec.write(1, 3, Buffer.from('two'));
  rec.releasedWrite(1, 6);

  rec.created(2, '/tmp1');
  rec.write(2, 0, Buffer.from('gone'));
  rec.unlinked('/tmp1');
  rec.write(2, 4, Buffer.from('!'));
  rec.releasedWrite(2, 5);

  rec.created(3, '/victim');
  rec.created(4, '/.victim.swp');
  rec.write(4, 0, Buffer.from('saved'));
  rec.releasedWrite(4, 5);
  rec.renamed('/.victim.swp', '/victim', true); // replaces the open /victim
  rec.write(3, 0, Buffer.from('late'));
  rec.releasedWrite(3, 4);

  rec.mkdir('/m');
  rec.symlink('/m/link');
  rec.linked('/m/hard', 6);
  rec.mknodFile('/m/empty');
  rec.meta('/m');
  t.same(await summaryOf(rec), [
    'renamed /dir2 <- /dir -',
    'added /m -',
    `added /m/empty ${sha256(Buffer.alloc(0)).slice(0, 8)}`,
    'added /m/hard dirty',
    'added /m/link -',
    `added /victim ${sha256(Buffer.from('saved')).slice(0, 8)}`,
    `added /y ${sha256(Buffer.from('onetwo')).slice(0, 8)}`,
  ], 'x lands at its final path with its full hash; /tmp1 and the replaced /victim leave no trace');
});

t.test('releaseAll at unmount records what is still open', async (t) => {
  const rec = await setup(t);
  rec.created(1, '/open-at-unmount');
  rec.write(1, 0, Buffer.from('abc'));
  rec.openedForWrite(2, '/other', 10);
  rec.write(2, 0, Buffer.from('X'));
  rec.releaseAll(new Map([[2, 10]]));
  t.equal(rec.openFiles, 0);
  await rec.flush();
  t.same(await summaryOf(rec), ['changed /other dirty', `added /open-at-unmount ${sha256(Buffer.from('abc')).slice(0, 8)}`].sort());
});

t.test('every path given to the journal goes through the encoder; open files are followed by plaintext path', async (t) => {
  // A reversible stand-in for the opaque-path cipher: each component reversed and tagged.
  const encode = (p: string): string => p.split('/').map((c) => (c === '' ? c : `E${[...c].reverse().join('')}`)).join('/') || '/';
  const seen: string[] = [];
  const rec = await setup(t, (p) => {
    seen.push(p);
    return encode(p);
  });
  rec.mkdir('/dir');
  rec.created(1, '/dir/file');
  rec.write(1, 0, Buffer.from('abc'));
  rec.renamed('/dir', '/moved', false);
  rec.write(1, 3, Buffer.from('def'));
  rec.releasedWrite(1, 6);
  rec.symlink('/moved/link');
  rec.meta('/moved/link');
  rec.truncated(null, '/other', 0);
  rec.linked('/moved/hard', 6);
  rec.mknodFile('/moved/empty');
  rec.special('/moved/fifo');
  rec.unlinked('/moved/empty');
  rec.rmdir('/gone');
  await rec.flush();
  const stored: string[] = [];
  for await (const r of rec.journal.records()) stored.push(...('path' in r ? [r.path] : [r.from, r.to]));
  t.ok(stored.length >= 12, 'records were written');
  t.same(stored.filter((p) => !p.split('/').every((c) => c === '' || c.startsWith('E'))), [], 'no stored path has a component that skipped the encoder');
  t.ok(stored.includes(encode('/moved/file')), 'the final hash of the open file is recorded at its encoded path after the rename');
  t.equal(stored.filter((p) => p === encode('/dir/file')).length, 1, 'only the create record names the path it had before the rename');
  t.ok(seen.every((p) => p.startsWith('/')), 'the encoder is given plaintext paths as FUSE spells them');
  const summary = (await rec.journal.summary()).entries.map((e) => `${e.status} ${e.path}`);
  t.ok(summary.includes(`added ${encode('/moved/file')}`), 'the summary is in encoded paths too');
});
