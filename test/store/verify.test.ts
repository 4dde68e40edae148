// Verification: an intact snapshot has no problems; missing objects, corrupt / missing manifests and objects
// the format decoder rejects are reported with the id and the path inside the snapshot.
import t from 'tap';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { DvfsError, IntegrityError } from '../../daemon/errors.js';
import type { ObjectId } from '../../daemon/store/content-hash.js';
import { verifySnapshot } from '../../daemon/store/verify.js';
import { commit, errorOf, tempRepo, type TestRepo } from './store-helpers.js';

const FILES = { a: 'alpha', 'd/b': 'bravo', 'd/e/f': 'foxtrot', 'd/e/g': 'alpha' };

async function flipByte(path: string, at: number): Promise<void> {
  await chmod(path, 0o644);
  const b = await readFile(path);
  b.writeUInt8(b.readUInt8(at) ^ 0x80, at);
  await writeFile(path, b);
}

async function subtree(repo: TestRepo, top: ObjectId, name: string): Promise<ObjectId> {
  const e = (await repo.manifests.getTree(top)).entries.find((x) => x.name === name);
  if (e?.type !== 'dir') throw new Error(`no directory ${name}`);
  return e.tree;
}

t.test('intact snapshot, quick and full', async (t) => {
  const repo = await tempRepo(t);
  const s = await commit(repo, FILES);
  const quick = await verifySnapshot(repo.manifests, repo.objects, s.snapshot, { full: false });
  t.same(quick, { snapshot: s.snapshot, checked: { snapshots: 1, trees: 3, objects: 3, decoded: 0 }, problems: [] }, 'a and d/e/g share one object');

  const decoded: [ObjectId, string][] = [];
  const full = await verifySnapshot(repo.manifests, repo.objects, s.snapshot, {
    full: true,
    decodeObject: async (id, path) => {
      decoded.push([id, path]);
    },
  });
  t.same(full.problems, []);
  t.equal(full.checked.decoded, 3);
  t.same(decoded.map(([id]) => id).sort(), [...new Set(s.files.values())].sort(), 'each object decoded once');
  t.ok(decoded.every(([id, path]) => path === repo.objects.path(id)), 'the decoder gets the stored file');

  await t.rejects(verifySnapshot(repo.manifests, repo.objects, s.snapshot, { full: true }), DvfsError, 'full needs a decoder');
});

t.test('problems are reported, not thrown', async (t) => {
  const repo = await tempRepo(t);
  const s = await commit(repo, FILES);
  const f = s.files.get('d/e/f')!;
  const b = s.files.get('d/b')!;
  await repo.objects.remove(f);
  const report = await verifySnapshot(repo.manifests, repo.objects, s.snapshot, {
    full: true,
    decodeObject: async (id) => {
      if (id === b) throw new IntegrityError('block 0 failed authentication');
    },
  });
  t.same(
    report.problems.map((p) => [p.kind, p.id, p.path]),
    [
      ['corrupt-object', b, '/d/b'],
      ['missing-object', f, '/d/e/f'],
    ],
  );
  t.match(report.problems[0]?.message, 'block 0 failed authentication');
  t.match(report.problems[1]?.message, repo.objects.path(f));
  t.equal(report.checked.decoded, 1, 'the good object was decoded');

  // A damaged directory: reported with its path; what is below it cannot be checked.
  const d = await subtree(repo, s.tree, 'd');
  await flipByte(repo.manifests.path(d), 40);
  const r2 = await verifySnapshot(repo.manifests, repo.objects, s.snapshot, { full: false });
  t.same(r2.problems.map((p) => [p.kind, p.id, p.path]), [['corrupt-manifest', d, '/d']]);
  t.match(r2.problems[0]?.message, /authentication failed/);
  t.same(r2.checked, { snapshots: 1, trees: 2, objects: 1, decoded: 0 });

  await repo.manifests.remove(s.snapshot);
  const r3 = await verifySnapshot(repo.manifests, repo.objects, s.snapshot, { full: false });
  t.same(r3.problems.map((p) => [p.kind, p.id, p.path]), [['missing-manifest', s.snapshot, undefined]]);
  t.match(r3.problems[0]?.message, 'is missing');
});

t.test('history: ancestors only when asked', async (t) => {
  const repo = await tempRepo(t);
  const s1 = await commit(repo, { old: 'old file' }, [], 's1');
  const s2 = await commit(repo, { new: 'new file' }, [s1.snapshot], 's2');
  await repo.objects.remove(s1.files.get('old')!);
  t.same((await verifySnapshot(repo.manifests, repo.objects, s2.snapshot, { full: false })).problems, [], 'without history');
  const r = await verifySnapshot(repo.manifests, repo.objects, s2.snapshot, { full: false, history: true });
  t.same(r.problems.map((p) => [p.kind, p.path]), [['missing-object', '/old']]);
  t.equal(r.checked.snapshots, 2);
  const e = await errorOf(verifySnapshot(repo.manifests, repo.objects, s2.snapshot, { full: false, history: true }));
  t.equal(e, null, 'never throws for damage');
});
