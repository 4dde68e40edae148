// S3 responses that lie: push, clone, fetch, verify --remote and pull against a local S3 server
// (test/helpers/bad-s3-server.ts) that answers a seeded share of requests wrongly — 500/503, resets, stalled
// bodies, truncated bodies, short Content-Lengths, bodies of other objects, wrong ETags, garbage XML.
// Every command either completes correctly (the round trip is checked byte for byte) or fails with one clear
// line naming the remote, within a test-side time bound; the local repositories verify afterwards, and the
// same command completes once the server behaves.
//
// DVFS_FAULT_SEEDS (default 3) seeds, from DVFS_FAULT_SEED (default random); the seed is in every message.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadS3Server, FAULT_KINDS } from '../helpers/bad-s3-server.js';
import { rng, type Rng } from '../helpers/rng.js';
import { cleanFailure, faultSeeds, runDvfs, sameTree, type RunResult } from './fault-cli.js';

const RATE = 0.12;
/** A lying command must end within this (the client's idle timeout is 2 s, retries back off up to ~8 s). */
const COMMAND_BOUND_MS = 150_000;

async function writeFiles(dir: string, files: ReadonlyMap<string, Buffer>): Promise<void> {
  for (const [p, data] of files) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), data);
  }
}

/**
 * The next version: the previous files plus a new directory LABEL of small files and a few above the 64 KiB
 * pack size (sent as large blobs). Returns every file (path -> bytes) and the new directory's files.
 */
function version(r: Rng, previous: ReadonlyMap<string, Buffer>, label: string): { all: Map<string, Buffer>; added: Map<string, Buffer> } {
  const added = new Map<string, Buffer>();
  for (let i = 0; i < 12; i++) added.set(`d${r.int(3)}/f${i}.txt`, Buffer.concat([Buffer.from(`${label} ${i}\n`), r.bytes(r.int(6000))]));
  for (let i = 0; i < 2; i++) added.set(`big/${i}.bin`, r.bytes(70_000 + r.int(200_000)));
  const all = new Map(previous);
  for (const [p, data] of added) all.set(`${label}/${p}`, data);
  return { all, added };
}

/** Puts version `label` into the repository (as /LABEL) and commits it. */
async function commitVersion(c: Ctx, repo: string, label: string, added: ReadonlyMap<string, Buffer>): Promise<void> {
  const src = join(c.dir, `src-${label}`);
  await writeFiles(src, added);
  await honest(c, `put ${label}`, ['put', repo, src, `/${label}`]);
  await honest(c, `commit ${label}`, ['commit', repo, '-m', label]);
}

interface Ctx {
  t: Test;
  seed: number;
  server: BadS3Server;
  env: NodeJS.ProcessEnv;
  url: string;
  dir: string;
}

/** Runs a command while the server lies; asserts it either worked or failed cleanly. Returns whether it worked. */
async function lying(c: Ctx, what: string, args: string[]): Promise<{ ok: boolean; r: RunResult }> {
  c.server.misbehave({ seed: c.seed * 7919 + what.length * 31 + args.length, rate: RATE });
  const before = c.server.injectedTotal;
  const r = await runDvfs(args, { env: c.env, timeoutMs: COMMAND_BOUND_MS });
  c.server.behave();
  const lies = c.server.injectedTotal - before;
  c.t.comment(`seed ${c.seed}: ${what}: ${lies} lie(s), ${r.status === 0 ? 'completed' : `failed: ${r.stderr.trim().slice(0, 200)}`}`);
  if (r.status === 0) return { ok: true, r };
  const why = cleanFailure(r, ['s3://faults', c.server.endpoint]);
  c.t.equal(why, null, `seed ${c.seed}: ${what} under ${lies} lie(s) failed cleanly (${r.stderr.trim().slice(0, 300)})`);
  return { ok: false, r };
}

/** Runs a command while the server is honest; it must work. */
async function honest(c: Ctx, what: string, args: string[]): Promise<RunResult> {
  c.server.behave();
  const r = await runDvfs(args, { env: c.env, timeoutMs: COMMAND_BOUND_MS });
  c.t.equal(r.status, 0, `seed ${c.seed}: ${what} (${r.stderr.trim().slice(0, 400)})`);
  return r;
}

/** `dvfs restore REPO SNAPSHOT --to DIR` of the repo's snapshot compared with `expected`. */
async function checkSnapshot(c: Ctx, repo: string, snapshot: string, expected: ReadonlyMap<string, Buffer>, what: string): Promise<void> {
  const out = join(c.dir, `plain-${randomBytes(4).toString('hex')}`);
  await honest(c, `restore ${snapshot} of ${what}`, ['restore', repo, snapshot, '--to', out]);
  c.t.equal(await sameTree(out, expected), null, `seed ${c.seed}: ${what} ${snapshot} is byte-identical to what was committed`);
  await rm(out, { recursive: true, force: true });
}

async function noStagingLeft(c: Ctx, target: string): Promise<void> {
  await c.t.rejects(stat(target), `seed ${c.seed}: a failed clone leaves no ${target}`);
  c.t.same((await readdir(c.dir)).filter((n) => n.includes('dvfs-clone')), [], `seed ${c.seed}: and no staging directory`);
}

/** A temp directory (removed at teardown) with a password file, and the environment the commands run in. */
async function context(t: Test, server: BadS3Server, seed: number, prefix: string): Promise<Ctx> {
  const dir = await mkdtemp(join(tmpdir(), `dvfs-s3lies-${prefix}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'pw');
  await writeFile(pw, 'lying server password\n', { mode: 0o600 });
  const env = { DVFS_PASSWORD_FILE: pw, DVFS_STATE_DIR: join(dir, 'state'), AWS_ACCESS_KEY_ID: 'fault', AWS_SECRET_ACCESS_KEY: 'tests-only' };
  return { t, seed, server, env, url: server.url(prefix), dir };
}

async function oneSeed(t: Test, server: BadS3Server, seed: number): Promise<void> {
  const c = await context(t, server, seed, `seed-${seed}`);
  const dir = c.dir;
  const r = rng(seed);
  const repo = join(dir, 'repo');
  await honest(c, 'init', ['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']);

  // Two versions pushed under lies (the second push is incremental).
  const v1 = version(r, new Map(), 'v1');
  await commitVersion(c, repo, 'v1', v1.added);
  if (!(await lying(c, 'push v1', ['push', repo, c.url, '--pack-size', '64KiB'])).ok) await honest(c, 'push v1 again', ['push', repo, c.url, '--pack-size', '64KiB']);
  const v2 = version(r, v1.all, 'v2');
  await commitVersion(c, repo, 'v2', v2.added);
  if (!(await lying(c, 'push v2', ['push', repo, c.url])).ok) await honest(c, 'push v2 again', ['push', repo, c.url]);
  await honest(c, 'verify the pushing repository', ['verify', repo]);
  await honest(c, 'verify --remote (honest)', ['verify', repo, '--remote', c.url]);

  // verify --remote under lies: passes, or fails cleanly — never claims a problem the remote does not have
  // without saying which blob.
  const vr = await runLyingVerify(c, repo);
  if (vr !== null) t.equal(vr, null, `seed ${seed}: verify --remote under lies`);

  // Clone (HEAD's objects only), then fetch the older snapshot's objects.
  const clone = join(dir, 'clone');
  if (!(await lying(c, 'clone', ['clone', c.url, clone])).ok) {
    await noStagingLeft(c, clone);
    await honest(c, 'clone again', ['clone', c.url, clone]);
  }
  await checkSnapshot(c, clone, 'HEAD', v2.all, 'the clone');
  if (!(await lying(c, 'fetch HEAD~1', ['fetch', clone, 'HEAD~1'])).ok) await honest(c, 'fetch again', ['fetch', clone, 'HEAD~1']);
  await honest(c, 'verify --full of the clone', ['verify', clone, '--full']);
  await checkSnapshot(c, clone, 'HEAD~1', v1.all, 'the clone');

  // A third version arrives by pull.
  const v3 = version(r, v2.all, 'v3');
  await commitVersion(c, repo, 'v3', v3.added);
  await honest(c, 'push v3', ['push', repo, c.url]);
  const pulled = await lying(c, 'pull', ['pull', clone, c.url]);
  await honest(c, 'verify the clone after pull', ['verify', clone]);
  if (!pulled.ok) await honest(c, 'pull again', ['pull', clone, c.url]);
  await checkSnapshot(c, clone, 'HEAD', v3.all, 'the clone after pull');
  await honest(c, 'verify --full of the clone after pull', ['verify', clone, '--full']);
  // The working tree of the clone is HEAD: nothing to commit.
  const st = await honest(c, 'commit after pull', ['commit', clone, '--json']);
  t.match(st.stdout, /"nothingToCommit":\s*true/, `seed ${seed}: the pulled working tree is the pulled HEAD`);
}

/** Runs `verify --remote` under lies; null when it passed or failed cleanly, else what was wrong. */
async function runLyingVerify(c: Ctx, repo: string): Promise<string | null> {
  c.server.misbehave({ seed: c.seed * 104729, rate: RATE });
  const r = await runDvfs(['verify', repo, '--remote', c.url, '--json'], { env: c.env, timeoutMs: COMMAND_BOUND_MS });
  c.server.behave();
  if (r.status === 0) return null;
  if (r.hung) return 'hung';
  // verify reports problems as JSON on stdout (exit 1): each must name its blob.
  if (r.stdout.trim().startsWith('{')) {
    const problems = (JSON.parse(r.stdout) as { problems: { kind: string; id?: string; message?: string }[] }).problems;
    return problems.length === 0 ? 'exit status not 0 without a problem listed' : `${problems.length} problem(s) reported on an intact remote: ${JSON.stringify(problems[0])}`;
  }
  return cleanFailure(r, ['s3://faults', c.server.endpoint]);
}

t.test('dvfs against an S3 server that lies', async (t) => {
  const server = await BadS3Server.start('faults');
  t.teardown(() => server.stop());
  for (const seed of faultSeeds(3)) {
    await t.test(`seed ${seed}`, (t) => oneSeed(t, server, seed));
  }
  t.ok(server.injectedTotal > 0, `lies were told: ${FAULT_KINDS.map((k) => `${k} ${server.injected[k]}`).join(', ')}`);
  t.comment(`requests ${server.requests}, lies ${JSON.stringify(server.injected)}`);
});

t.test('garbage and cut-off listings', async (t) => {
  // Listings are few per command (index files, locks), so they rarely draw a lie above: here half of them lie.
  const server = await BadS3Server.start('faults');
  t.teardown(() => server.stop());
  const seed = faultSeeds(1)[0] as number;
  const c = await context(t, server, seed, `lists-${seed}`);
  const { dir, env } = c;
  const repo = join(dir, 'repo');
  await honest(c, 'init', ['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']);
  const v1 = version(rng(seed), new Map(), 'v1');
  await commitVersion(c, repo, 'v1', v1.added);
  await honest(c, 'push', ['push', repo, c.url, '--pack-size', '64KiB']);
  for (let i = 0; i < 6; i++) {
    const target = join(dir, `clone${i}`);
    server.misbehave({ seed: seed * 31 + i, rate: 0.5, kinds: ['garbageXml', 'truncated'] });
    const r = await runDvfs(['clone', c.url, target], { env, timeoutMs: COMMAND_BOUND_MS });
    server.behave();
    if (r.status === 0) await checkSnapshot(c, target, 'HEAD', v1.all, `clone ${i}`);
    else {
      t.equal(cleanFailure(r, ['s3://faults', server.endpoint]), null, `seed ${seed}: clone ${i} under bad listings failed cleanly (${r.stderr.trim().slice(0, 300)})`);
      await noStagingLeft(c, target);
    }
  }
  t.comment(`requests ${server.requests}, lies ${JSON.stringify(server.injected)}`);
  t.ok(server.injected.garbageXml > 0, `garbage listings were sent (${server.injected.garbageXml}; cut-off ${server.injected.truncated})`);
});

t.test('multipart uploads under lies', async (t) => {
  // Files above the remote's large-object threshold are blobs of their own; above the multipart cutoff (5 MiB
  // here, through the URL) they go up in 5 MiB parts. A third of the requests lie.
  const server = await BadS3Server.start('faults');
  t.teardown(() => server.stop());
  for (const seed of faultSeeds(2)) {
    await t.test(`seed ${seed}`, async (t) => {
      const c = await context(t, server, seed, `multipart-${seed}`);
      const url = `${c.url}&multipartCutoff=5MiB&partSize=5MiB`;
      const r = rng(seed);
      const repo = join(c.dir, 'repo');
      await honest(c, 'init', ['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']);
      const files = new Map<string, Buffer>([
        ['big/a.bin', r.bytes(11 * 2 ** 20 + r.int(2 ** 20))],
        ['big/b.bin', r.bytes(6 * 2 ** 20 + r.int(2 ** 20))],
        ['small.txt', Buffer.from(`seed ${seed}\n`)],
      ]);
      await commitVersion(c, repo, 'v1', files);
      const completedBefore = server.multipartCompleted;
      server.misbehave({ seed: seed * 6007, rate: 0.33 });
      const before = server.injectedTotal;
      const lied = await runDvfs(['push', repo, url], { env: c.env, timeoutMs: COMMAND_BOUND_MS });
      server.behave();
      const lies = server.injectedTotal - before;
      t.comment(`seed ${seed}: push under ${lies} lie(s): ${lied.status === 0 ? 'completed' : lied.stderr.trim().slice(0, 200)}`);
      t.ok(lies > 0, `seed ${seed}: the server lied (${lies})`);
      if (lied.status !== 0) {
        t.equal(cleanFailure(lied, ['s3://faults', server.endpoint]), null, `seed ${seed}: a failed multipart push failed cleanly`);
        await honest(c, 'push again', ['push', repo, url]);
      }
      t.ok(server.multipartCompleted - completedBefore >= 2, `seed ${seed}: both large files went up as multipart uploads (${server.multipartCompleted - completedBefore} completed)`);
      const clone = join(c.dir, 'clone');
      await honest(c, 'clone', ['clone', url, clone]);
      const all = new Map([...files].map(([p, d]) => [`v1/${p}`, d]));
      await checkSnapshot(c, clone, 'HEAD', all, 'the clone of multipart blobs');
      await honest(c, 'verify --remote', ['verify', repo, '--remote', url]);
    });
  }
});
