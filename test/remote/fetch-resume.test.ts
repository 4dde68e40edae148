// Remotes under interruption and lazy fetching, through the real CLI:
// - a clone holds only HEAD's objects; restore / fetch / mount --snapshot of an older snapshot bring down
//   only the objects below the paths asked for, from origin or --remote, and fail clearly without a remote;
// - a push killed half-way (SIGKILL at an index checkpoint) resumes and sends only the rest;
// - a real Swift whose proxy goes down mid-push: the push fails with a clear error (exit != 0) after its
//   retries, and a push once Swift is back completes, resuming, and clones back byte-identical.
import t, { type Test } from 'tap';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH, dvfs, REPO_ROOT, type CliResult } from '../helpers/cli.js';
import { fuseAvailable } from '../helpers/mount.js';
import { startSwift, swiftAvailable } from '../helpers/swift.js';

interface PushJson {
  objects: number;
  manifests: number;
  skipped: number;
  bytesSent: number;
  checkpoints: number;
}

interface FetchJson {
  needed: number;
  present: number;
  fetched: number;
  bytes: number;
}

type Run = (args: string[], extra?: NodeJS.ProcessEnv) => CliResult;

async function workspace(t: Test): Promise<{ dir: string; env: NodeJS.ProcessEnv; run: Run }> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-fetch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'pw');
  await writeFile(pw, 'fetch and resume password\n', { mode: 0o600 });
  const env = { DVFS_PASSWORD_FILE: pw, DVFS_NO_PROGRESS: '1' };
  return { dir, env, run: (args, extra = {}) => dvfs(args, { env: { ...env, ...extra } }) };
}

function ok(t: Test, r: CliResult, what: string): CliResult {
  t.equal(r.status, 0, `${what} (${r.stderr.trim().slice(0, 400)})`);
  return r;
}

async function objectCount(repo: string): Promise<number> {
  const dir = join(repo, '.dvfs', 'objects');
  const entries = await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => []);
  return entries.filter((e) => e.isFile() && !e.parentPath.slice(dir.length).includes('tmp')).length;
}

/** Restores the snapshot into a plain directory and counts the files of `files` that came back identical. */
async function identicalFiles(run: Run, repo: string, out: string, files: Map<string, Buffer>, extra: NodeJS.ProcessEnv = {}): Promise<number> {
  const r = run(['restore', repo, 'HEAD', '--to', out], extra);
  if (r.status !== 0) throw new Error(`restore failed: ${r.stderr}`);
  let same = 0;
  for (const [p, data] of files) if ((await readFile(join(out, p)).catch(() => Buffer.alloc(0))).equals(data)) same++;
  return same;
}

/** Runs the CLI in the background (for failpoints that kill or stop it). */
function spawnCli(args: string[], env: NodeJS.ProcessEnv): { pid: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }> } {
  const child = spawn(process.execPath, [CLI_PATH, ...args], { env: { ...process.env, ...env }, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stderr, stdout })),
  );
  if (child.pid === undefined) throw new Error('could not start the CLI');
  return { pid: child.pid, exited };
}

function processState(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').charAt(0);
  } catch {
    return null;
  }
}

async function waitStopped(pid: number, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = processState(pid);
    if (st === 'T') return;
    if (st === null || st === 'Z') throw new Error(`process ${pid} ended before reaching the failpoint`);
    if (Date.now() > deadline) throw new Error(`process ${pid} did not reach the failpoint in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Three snapshots: v1 writes a/ and b/, v2 rewrites b/, v3 rewrites a/. Returns each version's files. */
async function threeSnapshots(t: Test, dir: string, run: Run, repo: string): Promise<Array<Map<string, Buffer>>> {
  ok(t, run(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  const versions: Array<Map<string, Buffer>> = [];
  let current = new Map<string, Buffer>();
  for (const [v, dirs] of [[1, ['a', 'b']], [2, ['b']], [3, ['a']]] as const) {
    const src = join(dir, `src${v}`);
    current = new Map(current);
    for (const d of dirs) {
      await mkdir(join(src, d), { recursive: true });
      for (let i = 0; i < 8; i++) {
        const data = Buffer.concat([Buffer.from(`v${v} ${d}/${i}\n`), randomBytes(3000 + i * 200)]);
        current.set(`/${d}/f${i}`, data);
        await writeFile(join(src, d, `f${i}`), data);
      }
      ok(t, run(["put", repo, join(src, d), "/"]), `put v${v} ${d}`);
    }
    ok(t, run(['commit', repo, '-m', `v${v}`]), `commit v${v}`);
    versions.push(current);
  }
  return versions;
}

t.test('a clone holds HEAD only; restore, fetch and mount --snapshot fetch what they need, lazily', async (t) => {
  const { dir, run } = await workspace(t);
  const repo = join(dir, 'repo');
  const versions = await threeSnapshots(t, dir, run, repo);
  const [v1, v2] = versions as [Map<string, Buffer>, Map<string, Buffer>];
  const url = `file://${join(dir, 'remote')}`;
  ok(t, run(['remote', 'add', repo, 'origin', url]), 'remote add');
  ok(t, run(['push', repo]), 'push');

  const clone = join(dir, 'clone');
  ok(t, run(['clone', url, clone]), 'clone');
  t.equal(await objectCount(clone), 16, "the clone stores only HEAD's 16 objects");
  ok(t, run(['log', clone]), 'log works offline (all manifests came down)');

  // restore --to of one directory of v1: only its 8 objects (a/ of v1) come down.
  const out = join(dir, 'out');
  const r = ok(t, run(['restore', clone, 'HEAD~2', '/a', '--to', out]), 'restore of an old snapshot');
  t.match(r.stderr, /fetching 8 object\(s\)/, 'says it fetches');
  t.equal(await objectCount(clone), 24, 'exactly the 8 objects below /a came down');
  let same = 0;
  for (let i = 0; i < 8; i++) if ((await readFile(join(out, 'a', `f${i}`))).equals(v1.get(`/a/f${i}`) as Buffer)) same++;
  t.equal(same, 8, 'restored files are byte-identical');
  // Again: nothing missing, so no remote is contacted (the remote is renamed away to prove it).
  await rm(join(dir, 'out2'), { recursive: true, force: true });
  const { rename } = await import('node:fs/promises');
  await rename(join(dir, 'remote'), join(dir, 'remote-away'));
  ok(t, run(['restore', clone, 'HEAD~2', '/a', '--to', join(dir, 'out2')]), 'a second restore needs no remote');
  // b/ of v1 is not here and the remote is gone: a clear error, nothing written.
  const gone = run(['restore', clone, 'HEAD~2', '/b', '--to', join(dir, 'out3')]);
  t.not(gone.status, 0, 'fails while the remote is unreachable');
  t.match(gone.stderr, /remote/i, 'names the remote');
  await rename(join(dir, 'remote-away'), join(dir, 'remote'));

  // dvfs fetch of two files of v1's b/ (prefetch), then of all of v2: only what is missing comes down.
  const f1 = JSON.parse(ok(t, run(['fetch', clone, 'HEAD~2', '/b/f1', 'b/f2', '--json']), 'fetch two paths').out) as FetchJson;
  t.same([f1.needed, f1.present, f1.fetched], [2, 0, 2], 'fetch of two files of v1: 2 needed, 2 fetched');
  t.ok(f1.bytes > 2 * 3000, 'and their bytes');
  const f2 = JSON.parse(ok(t, run(['fetch', clone, 'HEAD~1', '--json']), 'fetch a snapshot').out) as FetchJson;
  t.same([f2.needed, f2.present, f2.fetched], [16, 16, 0], "v2 = v1's a/ (restored above) + HEAD's b/: all here");
  const f3 = JSON.parse(ok(t, run(['fetch', clone, '--json']), 'fetch HEAD').out) as FetchJson;
  t.equal(f3.fetched, 0, 'HEAD is complete after a clone');
  const ver = JSON.parse(ok(t, run(['verify', clone, '--full', '--json']), 'the clone verifies, old objects not fetched yet').out) as { notFetched: number };
  t.equal(ver.notFetched, 6, "v1's six unfetched b/ objects are reported as not fetched, not as damage");

  // Without any remote: the error names the fix.
  ok(t, run(['remote', 'remove', clone, 'origin']), 'remote remove');
  const noRemote = run(['restore', clone, 'HEAD~2', '/b', '--to', join(dir, 'out4')]);
  t.not(noRemote.status, 0, 'a restore that needs objects fails without a remote');
  t.match(noRemote.stderr, /not stored locally.*no remote/s, 'says why');
  t.match(noRemote.stderr, /dvfs remote add/, 'and how to fix it');
  // --remote URL works without a configured remote.
  const viaUrl = ok(t, run(['restore', clone, 'HEAD~2', '/b', '--to', join(dir, 'out5'), '--remote', url]), 'restore --remote URL');
  t.match(viaUrl.stderr, /fetching 6 object/, 'fetches the six still missing');
  t.ok((await readFile(join(dir, 'out5', 'b', 'f3'))).equals(v1.get('/b/f3') as Buffer), 'byte-identical');
  const full = JSON.parse(ok(t, run(['verify', clone, '--full', '--json']), 'verify after fetching everything').out) as { notFetched: number };
  t.equal(full.notFetched, 0, 'nothing is left unfetched');

  // mount --snapshot in a fresh clone: the view's missing objects are fetched at mount.
  const fuseReason = fuseAvailable();
  await t.test('mount --snapshot of an unfetched snapshot', { skip: fuseReason === null ? false : `FUSE unavailable: ${fuseReason}` }, async (t) => {
    const clone2 = join(dir, 'clone2');
    ok(t, run(['clone', url, clone2]), 'second clone');
    const mnt = join(dir, 'mnt');
    await mkdir(mnt);
    // Without a remote, nothing is fetched before mounting (no second unlock): the daemon names what is missing.
    const clone3 = join(dir, 'clone3');
    ok(t, run(['clone', url, clone3]), 'third clone');
    ok(t, run(['remote', 'remove', clone3, 'origin']), 'remote remove');
    const lacking = run(['mount', clone3, mnt, '--snapshot', 'HEAD~1']);
    t.not(lacking.status, 0, 'mount --snapshot of a snapshot whose objects are not here, with no remote, fails');
    t.match(lacking.stderr, /not stored locally/, 'says why');
    t.match(lacking.stderr, /dvfs fetch REPO SNAPSHOT --remote URL/, 'and how to fix it');
    const m = ok(t, run(['mount', clone2, mnt, '--snapshot', 'HEAD~1']), 'mount --snapshot');
    t.match(m.stderr, /fetching 8 object/, 'fetches only the 8 objects HEAD lacks');
    try {
      let sameView = 0;
      for (const [p, data] of v2) if ((await readFile(join(mnt, p))).equals(data)) sameView++;
      t.equal(sameView, v2.size, 'the snapshot view reads byte-identical files');
    } finally {
      ok(t, run(['umount', mnt]), 'umount');
    }
  });
});

t.test('a push killed half-way resumes and sends only the rest', async (t) => {
  const { dir, env, run } = await workspace(t);
  const repo = join(dir, 'repo');
  ok(t, run(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  const src = join(dir, 'src');
  await mkdir(src);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 160; i++) {
    const data = randomBytes(20_000 + i * 37);
    files.set(`/d/f${i}`, data);
    await writeFile(join(src, `f${i}`), data);
  }
  ok(t, run(['put', repo, src, '/d']), 'put');
  ok(t, run(['commit', repo, '-m', 'data']), 'commit');

  // The whole push, for scale, to a remote of its own.
  const full = JSON.parse(ok(t, run(['push', repo, `file://${join(dir, 'full')}`, '--pack-size', '64KiB', '--json']), 'a whole push').out) as PushJson;
  t.ok(full.checkpoints >= 4, `the push wrote index checkpoints along the way (${full.checkpoints})`);

  const url = `file://${join(dir, 'remote')}`;
  const killed = spawnCli(['push', repo, url, '--pack-size', '64KiB'], { ...env, DVFS_FAILPOINT: 'push:checkpoint-2' });
  const k = await killed.exited;
  t.equal(k.signal, 'SIGKILL', 'the push died at its second checkpoint');

  const resumed = JSON.parse(ok(t, run(['push', repo, url, '--json']), 'the resumed push').out) as PushJson;
  t.ok(resumed.skipped > 0, `blobs indexed before the kill are skipped (${resumed.skipped})`);
  t.ok(resumed.bytesSent < full.bytesSent * 0.85, `only the rest is sent (${resumed.bytesSent} of ${full.bytesSent} bytes)`);
  t.ok(resumed.bytesSent > 0, 'and the rest is sent');
  const again = JSON.parse(ok(t, run(['push', repo, url, '--json']), 'a third push').out) as PushJson;
  t.equal(again.bytesSent, 0, 'then nothing is left to send');

  const clone = join(dir, 'clone');
  ok(t, run(['clone', url, clone]), 'clone of the resumed push');
  t.equal(await identicalFiles(run, clone, join(dir, 'out'), files), files.size, 'every file is byte-identical');
  ok(t, run(['verify', clone, '--full']), 'the clone verifies');
});

const swiftReason = swiftAvailable();
t.test('Swift going down mid-push: a clear error, then a later push completes', { skip: swiftReason === null ? false : `OpenStack Swift unavailable: ${swiftReason}` }, async (t) => {
  const swift = await startSwift(t);
  const { dir, env, run } = await workspace(t);
  const bucket = `dvfs-${randomBytes(4).toString('hex')}`;
  await swift.client().send(new CreateBucketCommand({ Bucket: bucket }));
  const s3env = { AWS_ACCESS_KEY_ID: swift.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.secretAccessKey };
  const url = `s3://${bucket}?endpoint=${encodeURIComponent(swift.endpoint)}&region=${swift.region}`;
  const repo = join(dir, 'repo');
  ok(t, run(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  const src = join(dir, 'src');
  await mkdir(src);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 120; i++) {
    const data = randomBytes(16_000 + i * 41);
    files.set(`/d/f${i}`, data);
    await writeFile(join(src, `f${i}`), data);
  }
  ok(t, run(['put', repo, src, '/d']), 'put');
  ok(t, run(['commit', repo, '-m', 'data']), 'commit');

  const p = spawnCli(['push', repo, url, '--pack-size', '64KiB'], { ...env, ...s3env, DVFS_FAILPOINT: 'push:checkpoint-1:stop' });
  await waitStopped(p.pid);
  await swift.proxyDown();
  process.kill(p.pid, 'SIGCONT');
  const failed = await p.exited;
  t.not(failed.code, 0, 'the push fails while Swift is down');
  t.equal(failed.signal, null, 'with an exit status, not a crash');
  t.match(failed.stderr, /127\.0\.0\.1|ECONNREFUSED|connect/i, `the error says what failed: ${failed.stderr.trim().slice(0, 300)}`);
  t.notMatch(failed.stderr, /at .*\.js:\d+/, 'no stack trace');

  await swift.proxyUp();
  const resumed = JSON.parse(ok(t, run(['push', repo, url, '--json'], s3env), 'the push once Swift is back').out) as PushJson;
  t.ok(resumed.skipped > 0, `it resumes after the checkpoint (${resumed.skipped} blobs skipped)`);
  const clone = join(dir, 'clone');
  ok(t, run(['clone', url, clone], s3env), 'clone');
  t.equal(await identicalFiles(run, clone, join(dir, 'out'), files, s3env), files.size, 'every file is byte-identical');
});
