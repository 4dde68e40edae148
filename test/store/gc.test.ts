// Garbage collection: what an abandoned snapshot and orphans leave unreferenced is found exactly; a dry run
// removes nothing; a real run removes exactly that (and temp leftovers); HEAD is always kept; a damaged
// reachable manifest aborts before anything is removed.
import t, { type Test } from 'tap';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { IntegrityError } from '../../daemon/errors.js';
import { hashBuffer, type ObjectId } from '../../daemon/store/content-hash.js';
import { collect, findUnreferenced } from '../../daemon/store/gc.js';
import { makeTree } from '../../daemon/store/manifests.js';
import { writeHead } from '../../daemon/store/refs.js';
import { verifySnapshot } from '../../daemon/store/verify.js';
import { commit, errorOf, tempRepo, type TestRepo } from './store-helpers.js';

async function all(ids: AsyncIterable<ObjectId>): Promise<ObjectId[]> {
  const out: ObjectId[] = [];
  for await (const id of ids) out.push(id);
  return out.sort();
}

async function setup(t: Test): Promise<{
  repo: TestRepo;
  s1: Awaited<ReturnType<typeof commit>>;
  s2: Awaited<ReturnType<typeof commit>>;
  s3: Awaited<ReturnType<typeof commit>>;
  orphanTree: ObjectId;
  orphanObjects: ObjectId[];
}> {
  const repo = await tempRepo(t);
  const s1 = await commit(repo, { a: 'one', 'd/b': 'two' }, [], 's1');
  const s2 = await commit(repo, { a: 'one', 'd/b': 'three', c: 'four' }, [s1.snapshot], 's2');
  // Abandoned line of work: shares the d/ subtree of s1 and adds a file of its own.
  const s3 = await commit(repo, { x: 'only in s3', 'd/b': 'two' }, [s1.snapshot], 's3');
  await writeHead(repo.root, s2.snapshot);
  // An object stored by a snapshot that never finished (one of them also still linked from the working tree),
  // and a tree nobody references.
  const orphanObjects: ObjectId[] = [];
  for (const [name, text, linkIt] of [['o1', 'orphan one', false], ['o2', 'orphan two (linked)', true]] as const) {
    const raw = join(repo.root, 'tree', name);
    await writeFile(raw, text);
    const id = hashBuffer(repo.keys.contentHash, Buffer.from(text));
    await (linkIt ? repo.objects.addByLink(id, raw) : repo.objects.addByCopy(id, raw));
    orphanObjects.push(id);
  }
  const orphanTree = await repo.manifests.putTree(makeTree([{ type: 'file', name: 'o1', mode: 0o644, size: 10, mtimeMs: 0, object: orphanObjects[0]! }]));
  return { repo, s1, s2, s3, orphanTree, orphanObjects };
}

t.test('find, dry run, collect', async (t) => {
  const { repo, s1, s2, s3, orphanTree, orphanObjects } = await setup(t);
  const onlyS3 = s3.files.get('x')!;
  t.equal(s3.files.get('d/b'), s1.files.get('d/b'), 'd/b is shared with s1');

  const withS3 = await findUnreferenced(repo.root, repo.manifests, repo.objects, [s3.snapshot]);
  t.same(withS3.roots.sort(), [s2.snapshot, s3.snapshot].sort(), 'HEAD is always a root');
  t.same(withS3.manifests, [orphanTree], 'keeping s3: only the orphan tree');
  t.same(withS3.objects, [...orphanObjects].sort());

  const found = await findUnreferenced(repo.root, repo.manifests, repo.objects, []);
  const expectManifests = [s3.snapshot, s3.tree, orphanTree].sort();
  const expectObjects = [onlyS3, ...orphanObjects].sort();
  t.same(found.manifests, expectManifests, 'the abandoned snapshot, its own top tree, the orphan tree');
  t.same(found.objects, expectObjects, 'its own file and the orphans');
  t.same(found.reachable, { snapshots: 2, trees: 4, objects: 4 });

  // Leftovers of interrupted writes.
  await mkdir(repo.objects.tmpDir, { recursive: true });
  await writeFile(join(repo.objects.tmpDir, '1-aa.tmp'), 'partial');
  await mkdir(repo.manifests.tmpDir, { recursive: true });
  await writeFile(join(repo.manifests.tmpDir, '1-bb.tmp'), 'partial');

  const manifestsBefore = await all(repo.manifests.ids());
  const objectsBefore = await all(repo.objects.ids());
  const dry = await collect(repo.root, repo.manifests, repo.objects, [], { dryRun: true });
  t.equal(dry.dryRun, true);
  t.equal(dry.manifests.count, 3);
  t.ok(dry.manifests.bytes > 3 * 40, 'manifest bytes counted');
  t.equal(dry.objects.count, 3);
  const sizes = 'only in s3'.length + 'orphan one'.length + 'orphan two (linked)'.length;
  t.equal(dry.objects.bytes, sizes);
  t.equal(dry.objects.bytesFreed, sizes - 'orphan two (linked)'.length, 'a linked object frees nothing');
  t.equal(dry.tempFiles, 2);
  t.same(await all(repo.manifests.ids()), manifestsBefore, 'dry run removed no manifest');
  t.same(await all(repo.objects.ids()), objectsBefore, 'dry run removed no object');
  t.equal((await repo.objects.tempFiles()).length, 1, 'nor temp files');

  const real = await collect(repo.root, repo.manifests, repo.objects, [], { dryRun: false });
  t.same({ m: real.manifests, o: real.objects, tmp: real.tempFiles }, { m: dry.manifests, o: dry.objects, tmp: 2 }, 'removed what the dry run said');
  t.same(await all(repo.manifests.ids()), manifestsBefore.filter((id) => !expectManifests.includes(id)), 'exactly those manifests gone');
  t.same(await all(repo.objects.ids()), objectsBefore.filter((id) => !expectObjects.includes(id)), 'exactly those objects gone');
  t.same(await repo.objects.tempFiles(), []);
  t.same(await repo.manifests.tempFiles(), []);
  t.equal(await readFile(join(repo.root, 'tree', 'o2'), 'utf8'), 'orphan two (linked)', 'the working-tree file survives');

  for (const s of [s1, s2]) {
    const report = await verifySnapshot(repo.manifests, repo.objects, s.snapshot, { full: false });
    t.same(report.problems, [], 'kept snapshots are intact');
  }
  const again = await findUnreferenced(repo.root, repo.manifests, repo.objects, []);
  t.same([again.manifests, again.objects], [[], []], 'nothing left to collect');
});

t.test('a damaged reachable manifest aborts collection', async (t) => {
  const { repo, s1 } = await setup(t);
  const path = repo.manifests.path(s1.tree);
  await chmod(path, 0o644);
  const bytes = await readFile(path);
  bytes.writeUInt8(bytes.readUInt8(30) ^ 4, 30);
  await writeFile(path, bytes);
  const before = await all(repo.objects.ids());
  const e = await errorOf(collect(repo.root, repo.manifests, repo.objects, [], { dryRun: false }));
  t.ok(e instanceof IntegrityError, 'refuses to guess what the damaged tree referenced');
  t.same(await all(repo.objects.ids()), before, 'nothing removed');
});
