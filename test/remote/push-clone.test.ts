// dvfs push / clone through the real CLI: to a file:// remote in every format, and to a real OpenStack Swift
// over its S3 API. Round trips are byte-identical, a second push sends nothing, the remote holds no plaintext
// (names or contents), and a tampered remote is refused without leaving a half-made clone.
import t, { type Test } from 'tap';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dvfs, type CliResult } from '../helpers/cli.js';
import { startSwift, swiftAvailable } from '../helpers/swift.js';

interface PushJson {
  objects: number;
  manifests: number;
  skipped: number;
  bytesSent: number;
  packs: number;
}

async function workspace(t: Test): Promise<{ dir: string; env: NodeJS.ProcessEnv; run: (args: string[], extra?: NodeJS.ProcessEnv) => CliResult }> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-push-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'pw');
  await writeFile(pw, 'remote round trip password\n', { mode: 0o600 });
  const env = { DVFS_PASSWORD_FILE: pw, DVFS_NO_PROGRESS: '1' };
  return { dir, env, run: (args, extra = {}) => dvfs(args, { env: { ...env, ...extra } }) };
}

function ok(t: Test, r: CliResult, what: string): CliResult {
  t.equal(r.status, 0, `${what} (${r.stderr.trim().slice(0, 400)})`);
  return r;
}

async function filesBelow(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true, recursive: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** A source tree with a unique marker in names and contents, one large file (a multipart/large blob). */
async function sourceTree(dir: string, marker: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  await mkdir(join(dir, `${marker}-dir`), { recursive: true });
  for (let i = 0; i < 60; i++) files.set(`${marker}-dir/f${i}.txt`, Buffer.concat([Buffer.from(`${marker} file ${i}\n`), randomBytes(100 + i * 50)]));
  files.set('large.bin', Buffer.concat([randomBytes(9 << 20), Buffer.from(marker)]));
  for (const [p, data] of files) await writeFile(join(dir, p), data);
  return files;
}

async function roundTrip(t: Test, label: string, initArgs: string[], remoteUrl: (dir: string) => Promise<string>, extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
  const { dir, run } = await workspace(t);
  const repo = join(dir, 'repo');
  ok(t, run(['init', repo, ...initArgs]), `${label}: init`);
  const marker = `plainmarker${randomBytes(6).toString('hex')}`;
  const src = join(dir, 'src');
  const files = await sourceTree(src, marker);
  ok(t, run(['put', repo, src, '/data']), 'put');
  ok(t, run(['commit', repo, '-m', 'first']), 'commit');
  const url = await remoteUrl(dir);
  ok(t, run(['remote', 'add', repo, 'origin', url]), 'remote add');
  const p1 = JSON.parse(ok(t, run(['push', repo, '--json'], extraEnv), 'push').out) as PushJson;
  t.equal(p1.objects, files.size, 'every object went up');
  t.ok(p1.bytesSent > 9 << 20, 'and their bytes');
  t.ok(p1.packs >= 1, 'small objects in packs');
  const p2 = JSON.parse(ok(t, run(['push', repo, '--json'], extraEnv), 'second push').out) as PushJson;
  t.equal(p2.bytesSent, 0, 'a second push sends 0 bytes');
  t.equal(p2.objects + p2.manifests, 0);

  const cloneDir = join(dir, 'clone');
  ok(t, run(['clone', url, cloneDir], extraEnv), 'clone');
  let same = 0;
  for (const [p, data] of files) if (run(['cat', cloneDir, `/data/${p}`]).stdout.equals(data)) same++;
  t.equal(same, files.size, 'every file of the clone is byte-identical');
  ok(t, run(['verify', cloneDir, '--full']), 'the clone verifies');
  t.same(JSON.parse(run(['remote', 'list', cloneDir, '--json']).out), { origin: url }, 'the clone knows its origin');
  // The clone is a working repository: change, commit, push back.
  await writeFile(join(dir, 'new.txt'), 'from the clone');
  ok(t, run(['put', cloneDir, join(dir, 'new.txt'), '/data/new.txt']), 'put in the clone');
  ok(t, run(['commit', cloneDir, '-m', 'from clone']), 'commit in the clone');
  const p3 = JSON.parse(ok(t, run(['push', cloneDir, '--json'], extraEnv), 'push from the clone').out) as PushJson;
  t.equal(p3.objects, 1, 'only the new object goes up');
  // The first repository pulls it.
  const pl = JSON.parse(ok(t, run(['pull', repo, '--json'], extraEnv), 'pull').out) as { upToDate: boolean; objects: number };
  t.equal(pl.upToDate, false);
  t.equal(pl.objects >= 1, true, 'the new object came down');
  t.equal(run(['cat', repo, '/data/new.txt']).out, 'from the clone', 'the working tree has the pulled file');
  const again = JSON.parse(ok(t, run(['pull', repo, '--json'], extraEnv), 'second pull').out) as { upToDate: boolean };
  t.equal(again.upToDate, true, 'a second pull has nothing to do');
  const afterPull = JSON.parse(ok(t, run(['commit', repo, '--json']), 'commit after pull').out) as { nothingToCommit: boolean };
  t.equal(afterPull.nothingToCommit, true, 'the pulled working tree is the pulled HEAD');
}

for (const [label, initArgs] of [
  ['encfs standard', ['--mode', 'encfs', '--kdf-iterations', '1000']],
  ['encfs paranoia', ['--mode', 'encfs', '--preset', 'paranoia', '--kdf-iterations', '1000']],
  ['native', ['--mode', 'native', '--kdf-profile', 'min']],
] as const) {
  t.test(`${label}: push to a file:// remote, clone, push back`, async (t) => {
    let remoteDir = '';
    await roundTrip(t, label, [...initArgs], async (dir) => {
      remoteDir = join(dir, 'remote');
      return `file://${remoteDir}`;
    });
    // Nothing on the remote names or contains plaintext.
    const repoMarkerFree = await filesBelow(remoteDir);
    t.ok(repoMarkerFree.length > 3, 'the remote has files');
    for (const f of repoMarkerFree) if ((await readFile(f)).includes('plainmarker')) t.fail(`plaintext in ${f}`);
    t.notOk(repoMarkerFree.some((f) => f.includes('plainmarker')), 'no plaintext name in the remote');
  });
}

t.test('a tampered remote is refused and leaves no clone behind', async (t) => {
  const { dir, run } = await workspace(t);
  const repo = join(dir, 'repo');
  ok(t, run(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  await writeFile(join(dir, 'a'), randomBytes(5000));
  ok(t, run(['put', repo, join(dir, 'a'), '/a']), 'put');
  ok(t, run(['commit', repo]), 'commit');
  const remote = join(dir, 'remote');
  ok(t, run(['push', repo, `file://${remote}`]), 'push by URL');
  const packs = (await filesBelow(join(remote, 'data'))).sort();
  t.ok(packs.length >= 1, 'packs exist');
  const good = ok(t, run(['verify', repo, '--remote', `file://${remote}`, '--json']), 'verify --remote of an intact remote');
  t.same((JSON.parse(good.out) as { problems: unknown[] }).problems, [], 'no problems');
  for (const p of packs) {
    const b = await readFile(p);
    b[Math.floor(b.length / 2)] = (b[Math.floor(b.length / 2)] ?? 0) ^ 0x40;
    await writeFile(p, b);
  }
  const bad = run(['verify', repo, '--remote', `file://${remote}`, '--json']);
  t.equal(bad.status, 1, 'verify --remote fails on the tampered remote');
  const problems = (JSON.parse(bad.out) as { problems: { kind: string }[] }).problems;
  t.ok(problems.length > 0 && problems.every((p) => p.kind === 'corrupt'), 'and reports corrupt blobs');
  await rm(packs[0] as string);
  const gone = JSON.parse(run(['verify', repo, '--remote', `file://${remote}`, '--json']).out) as { problems: { kind: string }[] };
  t.ok(gone.problems.some((p) => p.kind === 'missing'), 'a deleted pack is reported as missing blobs');
  const c = run(['clone', `file://${remote}`, join(dir, 'clone')]);
  t.not(c.status, 0, 'clone fails');
  t.match(c.stderr, /integrity|tamper|authentic|does not match/i, 'as an integrity error');
  await t.rejects(stat(join(dir, 'clone')), 'no clone directory is left');
  t.same((await readdir(dir)).filter((n) => n.includes('dvfs-clone')), [], 'no staging directory is left');
  const wrong = join(dir, 'wrongpw');
  await writeFile(wrong, 'not the password\n', { mode: 0o600 });
  const w = run(['clone', `file://${remote}`, join(dir, 'clone2')], { DVFS_PASSWORD_FILE: wrong });
  t.not(w.status, 0, 'a wrong password is refused');
  t.match(w.stderr, /password/i);
});

const swiftReason = swiftAvailable();
t.test('push to and clone from a real OpenStack Swift (S3 API)', { skip: swiftReason === null ? false : `OpenStack Swift unavailable: ${swiftReason}` }, async (t) => {
  const swift = await startSwift(t);
  const bucket = `dvfs-${randomBytes(4).toString('hex')}`;
  await swift.client().send(new CreateBucketCommand({ Bucket: bucket }));
  const env = { AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey };
  await roundTrip(t, 'swift', ['--mode', 'encfs', '--kdf-iterations', '1000'], async () => `s3://${bucket}/team-a?endpoint=${encodeURIComponent(swift.endpoint)}&region=${swift.region}`, env);
});
