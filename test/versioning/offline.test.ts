// Versioning without a mount: commit --rescan finds files put into the working tree behind the daemon's back,
// log/show/diff/restore/verify/gc on the result, in all three formats, through the real CLI.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dvfs, type CliResult } from '../helpers/cli.js';
import { encfsAvailable, withStockMount } from '../helpers/stock-encfs.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function workspace(t: { teardown(fn: () => unknown): void }): Promise<{ dir: string; env: NodeJS.ProcessEnv }> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-ver-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'pw');
  await writeFile(pw, 'versioned workspace password\n', { mode: 0o600 });
  return { dir, env: { DVFS_PASSWORD_FILE: pw, DVFS_NO_PROGRESS: '1' } };
}

function ok(t: Test, r: CliResult, what: string): CliResult {
  t.equal(r.status, 0, `${what} (${r.stderr.trim().slice(0, 300)})`);
  return r;
}

function json<T>(r: CliResult): T {
  return JSON.parse(r.out) as T;
}

async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

const MODES: [string, string[]][] = [
  ['encfs standard', ['--mode', 'encfs', '--kdf-iterations', '1000']],
  ['encfs paranoia', ['--mode', 'encfs', '--preset', 'paranoia', '--kdf-iterations', '1000']],
  ['native', ['--mode', 'native', '--kdf-profile', 'min']],
];

for (const [label, initArgs] of MODES) {
  t.test(`${label}: rescan commit, change, diff, restore, verify`, async (t) => {
    const { dir, env } = await workspace(t);
    const repo = join(dir, 'repo');
    const run = (args: string[]): CliResult => dvfs(args, { env });
    ok(t, run(['init', repo, ...initArgs]), 'init');
    const marker = `plaintextmarker${randomBytes(4).toString('hex')}`;
    const first = { a: Buffer.from('first version of a\n'), big: randomBytes(300_000) };
    await writeFile(join(dir, 'a'), first.a);
    await writeFile(join(dir, 'big'), first.big);
    ok(t, run(['put', repo, join(dir, 'a'), `/${marker}/a.txt`]), 'put a');
    ok(t, run(['put', repo, join(dir, 'big'), '/big.bin']), 'put big');

    const c1 = json<{ snapshot: string; nothingToCommit: boolean; added: number; filesHashed: number; filesRehashed: number; objectsAdded: number; files: number }>(ok(t, run(['commit', repo, '-m', 'first', '--json']), 'first commit'));
    t.equal(c1.nothingToCommit, false);
    t.equal(c1.files, 2, 'two files in the snapshot');
    t.equal(c1.objectsAdded, 2, 'two objects');
    t.equal(c1.filesHashed, 2, 'two files hashed');
    t.equal(c1.filesRehashed, 0, 'dvfs put hashed them while writing: commit reads nothing back');
    t.match(c1.snapshot, /^[0-9a-f]{64}$/);

    const none = json<{ nothingToCommit: boolean; snapshot: string }>(ok(t, run(['commit', repo, '--json']), 'no-change commit'));
    t.equal(none.nothingToCommit, true, 'nothing to commit');
    t.equal(none.snapshot, c1.snapshot, 'HEAD unchanged');
    const noneRescan = json<{ nothingToCommit: boolean }>(ok(t, run(['commit', repo, '--rescan', '--json']), 'no-change rescan'));
    t.equal(noneRescan.nothingToCommit, true, 'a rescan of an unchanged tree finds nothing (stat comparison)');

    await writeFile(join(dir, 'a2'), 'second version\n');
    ok(t, run(['put', repo, join(dir, 'a2'), `/${marker}/a.txt`]), 'put a again');
    const c2 = json<{ snapshot: string; changed: number; filesHashed: number; filesRehashed: number; objectsAdded: number }>(ok(t, run(['commit', repo, '-m', 'second', '--json']), 'second commit'));
    t.equal(c2.filesHashed, 1, 'only the changed file is hashed');
    t.equal(c2.filesRehashed, 0);
    t.equal(c2.changed, 1);
    t.equal(c2.objectsAdded, 1);

    const log = json<{ head: string; snapshots: { id: string; message: string; parents: string[] }[] }>(ok(t, run(['log', repo, '--json']), 'log'));
    t.same(log.snapshots.map((s) => s.message), ['second', 'first']);
    t.same(log.snapshots[0]?.parents, [c1.snapshot], 'parent link');
    const diff = json<{ entries: { status: string; path: string }[] }>(ok(t, run(['diff', repo, '--json']), 'diff'));
    t.same(diff.entries.map((e) => [e.status, e.path]), [['changed', `/${marker}/a.txt`]], 'diff lists exactly the changed file');
    const show = json<{ id: string; message: string; stats: { files: number } }>(ok(t, run(['show', repo, c1.snapshot.slice(0, 10), '--json']), 'show by prefix'));
    t.equal(show.id, c1.snapshot);
    t.equal(show.stats.files, 2);

    const out = join(dir, 'out');
    ok(t, run(['restore', repo, 'HEAD~1', '--to', out]), 'restore --to');
    t.equal(sha(await readFile(join(out, marker, 'a.txt'))), sha(first.a), 'first contents decrypted');
    t.equal(sha(await readFile(join(out, 'big.bin'))), sha(first.big));
    const again = run(['restore', repo, 'HEAD~1', '--to', out]);
    t.not(again.status, 0, 'restoring over existing files is refused without --force');
    t.match(again.stderr, /already exists/);

    ok(t, run(['restore', repo, 'HEAD~1']), 'restore into the working tree');
    t.equal(run(['cat', repo, `/${marker}/a.txt`]).out, first.a.toString(), 'working tree has the first version');
    const c3 = json<{ snapshot: string; filesRehashed: number; objectsAdded: number }>(ok(t, run(['commit', repo, '-m', 'restored', '--json']), 'commit the restore'));
    t.equal(c3.filesRehashed, 0, 'restored files are not re-hashed');
    t.equal(c3.objectsAdded, 0, 'and add no object');
    const d13 = json<{ entries: unknown[] }>(ok(t, run(['diff', repo, c1.snapshot, 'HEAD', '--json']), 'diff first..restored'));
    t.same(d13.entries, [], 'the restored snapshot equals the first');

    const v = ok(t, run(['verify', repo, '--full']), 'verify --full');
    t.match(v.out, /^ok: 3 snapshot/);

    // No plaintext name anywhere in the repository's metadata.
    for (const f of await filesBelow(join(repo, '.dvfs'))) {
      const bytes = await readFile(f);
      if (bytes.includes(marker)) t.fail(`plaintext name found in ${f}`);
    }
    t.pass('no plaintext name under .dvfs');
  });
}

t.test('dedup: two identical 10 MiB files add one object', async (t) => {
  const { dir, env } = await workspace(t);
  const repo = join(dir, 'repo');
  const run = (args: string[]): CliResult => dvfs(args, { env });
  ok(t, run(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  await writeFile(join(dir, 'ten'), randomBytes(10 << 20));
  ok(t, run(['put', repo, join(dir, 'ten'), '/one.bin']), 'put one');
  ok(t, run(['put', repo, join(dir, 'ten'), '/dir/two.bin']), 'put two');
  const c = json<{ objectsAdded: number; files: number; bytes: number }>(ok(t, run(['commit', repo, '--json']), 'commit'));
  t.equal(c.files, 2);
  t.equal(c.bytes, 20 << 20);
  t.equal(c.objectsAdded, 1, 'one object for two identical files');
  let objects = 0;
  for (const f of await filesBelow(join(repo, '.dvfs', 'objects'))) if (!f.includes('/objects/tmp/')) objects++;
  t.equal(objects, 1, 'one file in the object store');
});

t.test('verify catches a flipped byte in an object and in a manifest; gc removes what nothing reaches', async (t) => {
  const { dir, env } = await workspace(t);
  const repo = join(dir, 'repo');
  const run = (args: string[]): CliResult => dvfs(args, { env });
  ok(t, run(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  await writeFile(join(dir, 'f'), randomBytes(50_000));
  ok(t, run(['put', repo, join(dir, 'f'), '/f.bin']), 'put');
  const c1 = json<{ snapshot: string }>(ok(t, run(['commit', repo, '--json']), 'commit'));
  await writeFile(join(dir, 'g'), randomBytes(1000));
  ok(t, run(['put', repo, join(dir, 'g'), '/g.bin']), 'put g');
  const c2 = json<{ snapshot: string }>(ok(t, run(['commit', repo, '--json']), 'commit 2'));
  t.not(c2.snapshot, c1.snapshot, 'a second snapshot');
  ok(t, run(['verify', repo, '--full']), 'intact');

  // gc: move HEAD back; the second snapshot and g's object become unreachable.
  await writeFile(join(repo, '.dvfs', 'HEAD'), c1.snapshot + '\n');
  const dry = json<{ objects: { count: number }; manifests: { count: number } }>(ok(t, run(['gc', repo, '--dry-run', '--json']), 'gc --dry-run'));
  t.equal(dry.objects.count, 1, 'one unreachable object');
  t.equal(dry.manifests.count, 2, 'the snapshot and its root tree');
  t.ok(await stat(join(repo, '.dvfs', 'manifests', c2.snapshot.slice(0, 2), c2.snapshot.slice(2))), 'dry run deletes nothing');
  const gc = json<{ objects: { count: number } }>(ok(t, run(['gc', repo, '--json']), 'gc'));
  t.equal(gc.objects.count, 1);
  ok(t, run(['verify', repo, '--full']), 'still intact after gc');

  // Flip one byte of the object (past the header) and of the snapshot manifest.
  const objDir = join(repo, '.dvfs', 'objects');
  const [obj] = (await filesBelow(objDir)).filter((f) => !f.includes('/objects/tmp/'));
  if (!obj) throw new Error('no object');
  const bytes = await readFile(obj);
  bytes[1000] = (bytes[1000] ?? 0) ^ 0x20;
  await rm(obj, { force: true }); // the object may be hard-linked with the working file: write a new inode
  await writeFile(obj, bytes);
  ok(t, run(['verify', repo]), 'a quick verify does not decrypt objects');
  const bad = run(['verify', repo, '--full', '--json']);
  t.equal(bad.status, 1, 'verify --full fails');
  t.match(json<{ problems: { kind: string }[] }>(bad).problems, [{ kind: 'corrupt-object' }]);

  const man = join(repo, '.dvfs', 'manifests', c1.snapshot.slice(0, 2), c1.snapshot.slice(2));
  const mb = await readFile(man);
  mb[30] = (mb[30] ?? 0) ^ 1;
  await writeFile(man, mb);
  const bad2 = run(['verify', repo, '--json']);
  t.equal(bad2.status, 1, 'verify fails on a damaged manifest');
  t.match(json<{ problems: { kind: string }[] }>(bad2).problems, [{ kind: 'corrupt-manifest' }]);
});

t.test('versioning refuses bare volumes with a clear message', async (t) => {
  const { dir, env } = await workspace(t);
  const r = dvfs(['commit', join(dir, 'nope')], { env });
  t.not(r.status, 0);
  t.match(r.stderr, /no such repository/);
});

const stockReason = encfsAvailable();
t.test('changes made with stock encfs are found by commit --rescan, by stat, without re-hashing the rest', { skip: stockReason === null ? false : `stock encfs unavailable: ${stockReason}` }, async (t) => {
  const { dir, env } = await workspace(t);
  const repo = join(dir, 'repo');
  const run = (args: string[]): CliResult => dvfs(args, { env });
  ok(t, run(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  const src = join(dir, 'src');
  await mkdir(src);
  for (let i = 0; i < 50; i++) await writeFile(join(src, `f${i}`), randomBytes(2000));
  ok(t, run(['put', repo, src, '/data']), 'put 50 files');
  ok(t, run(['commit', repo, '--json']), 'first commit');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  await withStockMount(join(repo, 'tree'), mnt, 'versioned workspace password', async (m) => {
    await writeFile(join(m, 'data', 'f7'), 'changed by stock encfs');
    await writeFile(join(m, 'data', 'new'), 'added by stock encfs');
    await rm(join(m, 'data', 'f9'));
  });
  const plain = json<{ nothingToCommit: boolean }>(ok(t, run(['commit', repo, '--json']), 'commit without rescan'));
  t.equal(plain.nothingToCommit, true, 'without --rescan the journal has nothing (stock encfs wrote behind dvfs)');
  const c = json<{ added: number; changed: number; removed: number; filesRehashed: number; files: number }>(ok(t, run(['commit', repo, '--rescan', '--json']), 'commit --rescan'));
  t.same([c.added, c.changed, c.removed], [1, 1, 1], 'one added, one changed, one removed');
  t.equal(c.filesRehashed, 2, 'only the two written files are hashed');
  t.equal(c.files, 50);
  t.equal(run(['cat', repo, '/data/f7']).out, 'changed by stock encfs');
});
