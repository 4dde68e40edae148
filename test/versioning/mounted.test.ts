// Versioning through real mounts: the journal the daemon keeps while data is written makes commit cost what
// changed (asserted from commit --json), copy-on-write keeps committed objects intact, renames add no
// object, concurrent sessions merge into one history unless they touched the same paths.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuseAvailable, initRepo, mountDvfs, quickMount, workspace } from '../helpers/mount.js';
import type { CliResult } from '../helpers/cli.js';
import type { CommitReport } from '../../daemon/versioning/commit.js';
import { rng } from '../helpers/rng.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

type Report = CommitReport;

function report(t: Test, r: CliResult, what: string): Report {
  t.equal(r.status, 0, `${what} (${r.stderr.trim().slice(0, 400)})`);
  return JSON.parse(r.out) as Report;
}

function filesBelow(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

const skip = fuseAvailable();

t.test('commit, change 10 of 2000 files, commit: only those 10 are hashed; diff and restore', { skip: skip ?? false }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'ver2000' });
  const r = rng(4242);
  const first = new Map<string, Buffer>();
  for (let d = 0; d < 20; d++) {
    mkdirSync(join(m.mnt, `dir${d}`));
    for (let f = 0; f < 100; f++) {
      const data = r.bytes(200 + r.int(3000));
      const p = `/dir${d}/file${f}.dat`;
      writeFileSync(join(m.mnt, p), data);
      first.set(p, data);
    }
  }
  const c1 = report(t, m.ws.cli(['commit', m.repo, '-m', 'all 2000', '--json']), 'first commit while mounted');
  t.equal(c1.files, 2000, '2000 files in the snapshot');
  t.equal(c1.filesHashed, 2000);
  t.equal(c1.filesRehashed, 0, 'hashes came from the write path: nothing read back');
  t.ok(c1.objectsLinked > 0 && c1.objectsLinked === c1.objectsAdded, 'objects entered the store by hard link');

  const changed = [...first.keys()].filter((_, i) => i % 200 === 7);
  t.equal(changed.length, 10);
  const second = new Map<string, Buffer>();
  for (const p of changed) {
    const data = r.bytes(100 + r.int(2000));
    writeFileSync(join(m.mnt, p), data);
    second.set(p, data);
  }
  const c2 = report(t, m.ws.cli(['commit', m.repo, '-m', 'ten changed', '--json']), 'second commit');
  t.equal(c2.filesHashed, 10, 'the second commit hashes only the 10 changed files');
  t.equal(c2.filesRehashed, 0);
  t.equal(c2.changed, 10);
  t.equal(c2.files, 2000);

  const none = report(t, m.ws.cli(['commit', m.repo, '--json']), 'no-change commit');
  t.equal(none.nothingToCommit, true, 'nothing to commit');

  const diff = JSON.parse(m.ws.cli(['diff', m.repo, '--json']).out) as { entries: { status: string; path: string }[] };
  t.same(diff.entries.map((e) => e.path).sort(), [...changed].sort(), 'diff lists exactly the 10 files');
  t.ok(diff.entries.every((e) => e.status === 'changed'));

  // An in-place change of a committed file (no truncation): copy-on-write, then the commit re-hashes it.
  const p0 = changed[0] as string;
  const fd = openSync(join(m.mnt, p0), 'r+');
  writeSync(fd, Buffer.from('XYZ'), 0, 3, 1);
  closeSync(fd);
  const expected = Buffer.from(second.get(p0) as Buffer);
  expected.write('XYZ', 1);
  t.equal(sha(readFileSync(join(m.mnt, p0))), sha(expected), 'the in-place write reads back');
  const c3 = report(t, m.ws.cli(['commit', m.repo, '-m', 'in place', '--json']), 'third commit');
  t.equal(c3.filesHashed, 1);
  t.equal(c3.filesRehashed, 1, 'a file written out of order is hashed by commit');

  await m.umount();
  const v = m.ws.cli(['verify', m.repo, '--full']);
  t.equal(v.status, 0, `every committed object is intact after the rewrites (${v.out.trim()} ${v.stderr.trim()})`);

  const restored = m.ws.cli(['restore', m.repo, 'HEAD~2']);
  t.equal(restored.status, 0, `restore of the first snapshot (${restored.stderr.trim()})`);
  const again = mountDvfs(m.ws, m.repo, m.mnt);
  let same = 0;
  for (const [p, data] of first) if (sha(readFileSync(join(again.mnt, p))) === sha(data)) same++;
  t.equal(same, 2000, 'the first contents are back, read through a new mount');
  await again.umount();
  const c4 = report(t, m.ws.cli(['commit', m.repo, '-m', 'restored', '--json']), 'commit of the restore');
  t.equal(c4.filesRehashed, 0, 'the restore is committed without hashing');
  const d = JSON.parse(m.ws.cli(['diff', m.repo, 'HEAD~3', 'HEAD', '--json']).out) as { entries: unknown[] };
  t.same(d.entries, [], 'the restored snapshot equals the first');

  const marker = 'dir13';
  for (const f of filesBelow(join(m.repo, '.dvfs'))) if (readFileSync(f).includes(marker)) t.fail(`plaintext name in ${f}`);
});

t.test('a rename-only change adds no object', { skip: skip ?? false }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'verrename' });
  mkdirSync(join(m.mnt, 'results'));
  writeFileSync(join(m.mnt, 'results', 'a.h5'), Buffer.alloc(100_000, 1));
  writeFileSync(join(m.mnt, 'top.txt'), 'top');
  report(t, m.ws.cli(['commit', m.repo, '--json']), 'first commit');
  renameSync(join(m.mnt, 'results'), join(m.mnt, 'final'));
  renameSync(join(m.mnt, 'top.txt'), join(m.mnt, 'final', 'top.txt'));
  const c = report(t, m.ws.cli(['commit', m.repo, '--json']), 'rename commit');
  t.equal(c.objectsAdded, 0, 'no object added');
  t.equal(c.filesRehashed, 0, 'nothing hashed');
  t.equal(c.files, 2);
  const diff = JSON.parse(m.ws.cli(['diff', m.repo, '--json']).out) as { entries: { status: string; path: string }[] };
  const byPath = Object.fromEntries(diff.entries.map((e) => [e.path, e.status]));
  t.equal(byPath['/final/a.h5'], 'added');
  t.equal(byPath['/results/a.h5'], 'removed');
  t.equal(byPath['/final/top.txt'], 'added');
});

t.test('concurrent sessions: disjoint paths commit into one history, overlapping ones are refused', { skip: skip ?? false }, async (t) => {
  const ws = workspace(t, 'verconc');
  const repo = initRepo(ws, 'repo');
  const mA = join(ws.dir, 'mntA');
  const mB = join(ws.dir, 'mntB');
  mkdirSync(mA);
  mkdirSync(mB);
  const a = mountDvfs(ws, repo, mA);
  const b = mountDvfs(ws, repo, mB);
  mkdirSync(join(mA, 'out'), { recursive: true });
  mkdirSync(join(mB, 'out'), { recursive: true }); // both make the shared directory: no conflict
  writeFileSync(join(mA, 'out', 'job-a.txt'), 'from job a');
  writeFileSync(join(mB, 'out', 'job-b.txt'), 'from job b');
  const c = ws.cli(['commit', repo, '--json']);
  t.equal(c.status, 0, `both sessions commit (${c.stderr.trim()})`);
  const log = JSON.parse(ws.cli(['log', repo, '--json']).out) as { snapshots: { id: string; parents: string[]; sessions?: { id: string }[] }[] };
  t.equal(log.snapshots.length, 2, 'two snapshots, one per session');
  t.same(log.snapshots[0]?.parents, [log.snapshots[1]?.id], 'in one line of history');
  const show = JSON.parse(ws.cli(['show', repo, 'HEAD', '--json']).out) as { stats: { files: number } };
  t.equal(show.stats.files, 2, 'HEAD holds both jobs\' files');

  writeFileSync(join(mA, 'out', 'shared.txt'), 'A wrote this');
  writeFileSync(join(mB, 'out', 'shared.txt'), 'B wrote this');
  const sessionOf = (mnt: string): string => String((JSON.parse(ws.cli(['status', mnt, '--json']).out) as { session: string }).session);
  const first = ws.cli(['commit', repo, '--session', sessionOf(mA), '--json']);
  t.equal(first.status, 0, 'the first session commits');
  const second = ws.cli(['commit', repo, '--session', sessionOf(mB), '--json']);
  t.not(second.status, 0, 'the second, which wrote the same path at the same time, is refused');
  t.match(second.stderr, /E_CONFLICT|same time/, 'as a conflict');
  t.match(second.stderr, /out\/shared\.txt/, 'naming the path');
  t.match(second.stderr, /--force/, 'saying how to resolve it');
  const forced = ws.cli(['commit', repo, '--session', sessionOf(mB), '--force', '--json']);
  t.equal(forced.status, 0, `--force keeps the second session's version (${forced.stderr.trim()})`);
  t.equal(readFileSync(join(mB, 'out', 'shared.txt'), 'utf8'), 'B wrote this');
  await a.umount();
  await b.umount();
  const after = ws.cli(['commit', repo, '--json']);
  t.equal(after.status, 0, 'nothing left over after unmounting');
  t.equal((JSON.parse(after.out) as Report).nothingToCommit, true);
});

for (const preset of ['standard', 'paranoia'] as const) {
  t.test(`mount --snapshot serves an old snapshot read-only (${preset})`, { skip: skip ?? false }, async (t) => {
    const m = quickMount(t, preset, { label: `verview${preset}` });
    mkdirSync(join(m.mnt, 'd'));
    writeFileSync(join(m.mnt, 'd', 'f.txt'), 'version one');
    writeFileSync(join(m.mnt, 'keep.bin'), Buffer.alloc(70_000, 7));
    report(t, m.ws.cli(['commit', m.repo, '-m', 'one', '--json']), 'commit one');
    writeFileSync(join(m.mnt, 'd', 'f.txt'), 'version two');
    writeFileSync(join(m.mnt, 'new.txt'), 'only in two');
    report(t, m.ws.cli(['commit', m.repo, '-m', 'two', '--json']), 'commit two');
    const viewMnt = join(m.ws.dir, 'view');
    mkdirSync(viewMnt);
    const r = m.ws.cli(['mount', m.repo, viewMnt, '--snapshot', 'HEAD~1', '--json']);
    t.equal(r.status, 0, `mount --snapshot (${r.stderr.trim()})`);
    const rec = JSON.parse(r.out) as { snapshot: string; readOnly: boolean; session: string | null };
    t.equal(rec.readOnly, true, 'read-only');
    t.equal(rec.session, null, 'no session');
    t.equal(readFileSync(join(viewMnt, 'd', 'f.txt'), 'utf8'), 'version one', 'the old version');
    t.equal(readFileSync(join(viewMnt, 'keep.bin')).length, 70_000);
    t.same(readdirSync(viewMnt).sort(), ['d', 'keep.bin'], 'exactly what the snapshot holds');
    t.throws(() => writeFileSync(join(viewMnt, 'x'), 'no'), /EROFS|read-only/, 'writes are refused');
    t.equal(readFileSync(join(m.mnt, 'd', 'f.txt'), 'utf8'), 'version two', 'the working mount is unaffected');
    const u = m.ws.cli(['umount', viewMnt]);
    t.equal(u.status, 0, 'umount of the view');
    await new Promise((res) => setTimeout(res, 300));
    const views = join(m.repo, '.dvfs', 'views');
    t.same(readdirSync(views), [], 'the view is deleted at unmount');
    await m.umount();
    const v = m.ws.cli(['verify', m.repo, '--full']);
    t.equal(v.status, 0, `objects intact (${v.out.trim()})`);
  });
}
