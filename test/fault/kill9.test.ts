// kill -9 at random points, over DVFS_FAULT_SEEDS seeds (default 2; DVFS_FAULT_SEED picks the first):
// - of the mount daemon while a process writes through the mount: `dvfs mount` cleans the stale mount and
//   mounts again, files written, fsync'ed and closed before the kill read back intact and are committed by
//   the next commit, committed snapshots restore byte-identical;
// - of `dvfs commit` (at a failpoint of the commit, or after a random delay): HEAD is the old or the new
//   snapshot, `dvfs verify` passes, the lock the dead commit held is taken over by the next commit, which
//   completes and records every change;
// - of `dvfs push` (at an index checkpoint, or after a random delay): the local repository verifies,
//   `verify --remote` passes or names exactly the blobs missing, the next push completes and a clone of it is
//   byte-identical.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readHead } from '../../daemon/store/refs.js';
import { isMounted } from '../helpers/stock-encfs.js';
import { adoptMount, fuseAvailable, initRepo, mountCli, mountDvfs, processAlive, waitFor, workspace, type Workspace } from '../helpers/mount.js';
import { rng, type Rng } from '../helpers/rng.js';
import { faultSeeds, runDvfs, sameTree, type RunResult } from './fault-cli.js';

const seeds = faultSeeds(2);
const COMMIT_FAILPOINTS = ['commit:after-apply', 'commit:after-snapshot', 'commit:after-index', 'commit:after-head'] as const;
const fuseSkip = fuseAvailable();

function ok(t: Test, r: { status: number | null; stderr: string }, what: string): void {
  t.equal(r.status, 0, `${what} (${r.stderr.trim().slice(0, 300)})`);
}

function files(r: Rng, label: string, count: number, maxBytes: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) out.set(`${label}/d${i % 4}/f${i}.bin`, r.bytes(1 + r.int(maxBytes)));
  return out;
}

async function putFiles(t: Test, ws: Workspace, repo: string, label: string, fs: ReadonlyMap<string, Buffer>): Promise<void> {
  const dir = join(ws.dir, `in-${label}`);
  for (const [p, data] of fs) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), data);
  }
  ok(t, await runDvfs(['put', repo, join(dir, label), `/${label}`], { env: ws.env }), `put ${label}`);
}

/** `dvfs restore REPO SNAPSHOT --to DIR` compared with `expected`. */
async function restoresTo(t: Test, ws: Workspace, repo: string, snapshot: string, expected: ReadonlyMap<string, Buffer>, what: string): Promise<void> {
  const out = join(ws.dir, `restored-${Math.random().toString(36).slice(2)}`);
  ok(t, await runDvfs(['restore', repo, snapshot, '--to', out], { env: ws.env }), `restore ${what}`);
  t.equal(await sameTree(out, expected), null, `${what} restores byte-identical`);
}

/** Runs a command and SIGKILLs it after `delayMs` (if it is still running); the result says how it ended. */
async function killedAfter(args: string[], env: NodeJS.ProcessEnv, delayMs: number): Promise<RunResult> {
  let pid = 0;
  const p = runDvfs(args, { env, onSpawn: (n) => (pid = n) });
  const timer = setTimeout(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already ended
    }
  }, delayMs);
  const r = await p;
  clearTimeout(timer);
  return r;
}

function describe(r: RunResult): string {
  return r.signal === 'SIGKILL' ? 'killed' : r.status === 0 ? 'completed before the kill' : `failed: ${r.stderr.trim()}`;
}

/** A workspace with a repository whose first snapshot holds `count` random files (returned as v1). */
async function committedRepo(t: Test, r: Rng, label: string, count: number, maxBytes: number): Promise<{ ws: Workspace; repo: string; v1: Map<string, Buffer> }> {
  const ws = workspace(t, label);
  const repo = initRepo(ws, 'repo');
  const v1 = files(r, 'v1', count, maxBytes);
  await putFiles(t, ws, repo, 'v1', v1);
  ok(t, await runDvfs(['commit', repo, '-m', 'v1'], { env: ws.env }), 'commit v1');
  return { ws, repo, v1 };
}

t.test('kill -9 of dvfs commit', async (t) => {
  for (const seed of seeds) {
    await t.test(`seed ${seed}`, async (t) => {
      const r = rng(seed);
      const { ws, repo, v1 } = await committedRepo(t, r, `kill9-commit-${seed}`, 20, 20_000);
      const head1 = await readHead(repo);
      const v2 = files(r, 'v2', 40, 150_000);
      await putFiles(t, ws, repo, 'v2', v2);
      const useFailpoint = r.int(2) === 0;
      const point = r.pick(COMMIT_FAILPOINTS);
      const delay = 50 + r.int(1200);
      const how = useFailpoint ? `at failpoint ${point}` : `after ${delay} ms`;
      const k = useFailpoint
        ? await runDvfs(['commit', repo, '-m', 'v2'], { env: { ...ws.env, DVFS_FAILPOINT: point } })
        : await killedAfter(['commit', repo, '-m', 'v2'], ws.env, delay);
      t.comment(`seed ${seed}: commit killed ${how}: ${describe(k)}`);
      t.ok(k.signal === 'SIGKILL' || k.status === 0, `seed ${seed}: the commit was killed or completed (${describe(k)})`);
      const head = await readHead(repo);
      t.ok(head === head1 || (head !== null && head !== head1), `seed ${seed}: HEAD is the old or a new snapshot`);
      const lockLeft = existsSync(join(repo, '.dvfs', 'lock'));
      ok(t, await runDvfs(['verify', repo], { env: ws.env }), `seed ${seed}: dvfs verify after the kill ${how}`);
      await restoresTo(t, ws, repo, head1 ?? 'HEAD', v1, `seed ${seed}: the snapshot committed before the kill`);
      // The next commit takes over a lock the dead commit left, and records everything.
      const next = await runDvfs(['commit', repo, '-m', 'v2 again', '--json'], { env: ws.env });
      ok(t, next, `seed ${seed}: the next commit completes${lockLeft ? ' (taking over the dead commit\'s lock)' : ''}`);
      t.notOk(existsSync(join(repo, '.dvfs', 'lock')), `seed ${seed}: no lock is left behind`);
      t.not(await readHead(repo), head1, `seed ${seed}: HEAD moved past v1`);
      await restoresTo(t, ws, repo, 'HEAD', new Map([...v1, ...v2]), `seed ${seed}: HEAD after the next commit`);
      ok(t, await runDvfs(['verify', repo, '--full'], { env: ws.env }), `seed ${seed}: dvfs verify --full`);
      const again = await runDvfs(['commit', repo, '--json'], { env: ws.env });
      t.match(again.stdout, /"nothingToCommit":\s*true/, `seed ${seed}: nothing left to commit`);
    });
  }
});

t.test('the repository lock held by a dead process', async (t) => {
  const ws = workspace(t, 'kill9-lock');
  const repo = initRepo(ws, 'repo');
  const v1 = files(rng(seeds[0] as number), 'v1', 5, 5000);
  await putFiles(t, ws, repo, 'v1', v1);
  const k = await runDvfs(['commit', repo, '-m', 'v1'], { env: { ...ws.env, DVFS_FAILPOINT: 'commit:after-apply' } });
  t.equal(k.signal, 'SIGKILL', 'the commit died holding the lock');
  const lockFile = join(repo, '.dvfs', 'lock');
  t.ok(existsSync(lockFile), 'its lock file is left');
  const holder = JSON.parse(readFileSync(lockFile, 'utf8')) as { pid: number };
  t.notOk(processAlive(holder.pid), `the lock names pid ${holder.pid}, which is dead`);
  const doctor = await runDvfs(['doctor', repo, '--json'], { env: ws.env });
  t.match(doctor.stdout, /lock/i, 'dvfs doctor reports the lock');
  const next = await runDvfs(['commit', repo, '-m', 'v1 again'], { env: ws.env });
  ok(t, next, 'the next commit takes the lock over and completes');
  t.notOk(existsSync(lockFile), 'and releases it');
  await restoresTo(t, ws, repo, 'HEAD', v1, 'HEAD');
});

t.test('kill -9 of dvfs push', async (t) => {
  for (const seed of seeds) {
    await t.test(`seed ${seed}`, async (t) => {
      const r = rng(seed);
      const { ws, repo, v1 } = await committedRepo(t, r, `kill9-push-${seed}`, 60, 60_000);
      const url = `file://${join(ws.dir, 'remote')}`;
      const useFailpoint = r.int(2) === 0;
      const point = `push:checkpoint-${1 + r.int(3)}`;
      const delay = 100 + r.int(1500);
      const how = useFailpoint ? `at failpoint ${point}` : `after ${delay} ms`;
      const args = ['push', repo, url, '--pack-size', '64KiB'];
      const k = useFailpoint ? await runDvfs(args, { env: { ...ws.env, DVFS_FAILPOINT: point } }) : await killedAfter(args, ws.env, delay);
      t.comment(`seed ${seed}: push killed ${how}: ${describe(k)}`);
      t.ok(k.signal === 'SIGKILL' || k.status === 0, `seed ${seed}: the push was killed or completed (${describe(k)})`);
      ok(t, await runDvfs(['verify', repo], { env: ws.env }), `seed ${seed}: the local repository verifies after the kill ${how}`);
      const vr = await runDvfs(['verify', repo, '--remote', url, '--json'], { env: ws.env });
      if (vr.status === 0) t.pass(`seed ${seed}: verify --remote passes`);
      else if (vr.stdout.trim().startsWith('{')) {
        const problems = (JSON.parse(vr.stdout) as { problems: { kind: string; id: string }[] }).problems;
        t.ok(problems.length > 0 && problems.every((p) => p.kind === 'missing' && /^[0-9a-f]{64}$/.test(p.id)), `seed ${seed}: verify --remote names exactly the ${problems.length} blob(s) not pushed yet, all missing, none corrupt`);
      } else t.match(vr.stderr.trim(), /^dvfs: .*no dvfs remote|^dvfs: .*no snapshot/, `seed ${seed}: verify --remote says the remote is not there yet (${vr.stderr.trim()})`);
      const resumed = await runDvfs(['push', repo, url, '--json'], { env: ws.env });
      ok(t, resumed, `seed ${seed}: the next push completes`);
      const vr2 = await runDvfs(['verify', repo, '--remote', url, '--json'], { env: ws.env });
      ok(t, vr2, `seed ${seed}: verify --remote passes after it`);
      const clone = join(ws.dir, 'clone');
      ok(t, await runDvfs(['clone', url, clone], { env: ws.env }), `seed ${seed}: clone`);
      await restoresTo(t, ws, clone, 'HEAD', v1, `seed ${seed}: the clone's HEAD`);
    });
  }
});

/** A writer through the mount: writes files, fsyncs and closes each, then logs its name and length. */
const WRITER = `
const fs = require('node:fs');
const crypto = require('node:crypto');
const [dir, log, seed] = process.argv.slice(1);
let x = Number(seed) >>> 0 || 1;
const next = () => ((x = (x * 1103515245 + 12345) >>> 0), x);
fs.mkdirSync(dir, { recursive: true });
for (let i = 0; ; i++) {
  const data = crypto.randomBytes(1000 + (next() % 200000));
  const name = 'w' + i + '.bin';
  const fd = fs.openSync(dir + '/' + name, 'w');
  fs.writeSync(fd, data);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.appendFileSync(log, name + ' ' + crypto.createHash('sha256').update(data).digest('hex') + '\\n');
}
`;

t.test('kill -9 of the mount daemon during writes', { skip: fuseSkip === null ? false : `FUSE unavailable: ${fuseSkip}` }, async (t) => {
  for (const seed of seeds) {
    await t.test(`seed ${seed}`, async (t) => {
      const r = rng(seed);
      const ws = workspace(t, `kill9-daemon-${seed}`);
      const repo = initRepo(ws, 'repo');
      const mnt = join(ws.dir, 'mnt');
      const m = mountDvfs(ws, repo, mnt, { xattr: false });
      const v1 = files(r, 'v1', 10, 30_000);
      for (const [p, data] of v1) {
        await mkdir(join(mnt, p, '..'), { recursive: true });
        await writeFile(join(mnt, p), data);
      }
      ok(t, await runDvfs(['commit', repo, '-m', 'v1'], { env: ws.env }), 'commit v1 (mounted)');
      const head1 = await readHead(repo);
      const log = join(ws.dir, 'written.log');
      await writeFile(log, '');
      const writer = spawn(process.execPath, ['-e', WRITER, join(mnt, 'w'), log, String(seed)], { stdio: 'ignore' });
      const writerDone = new Promise<void>((resolve) => writer.on('close', () => resolve()));
      // Kill at a random moment once the writer is under way (it has closed its first file).
      await waitFor('the writer to close its first file', () => readFileSync(log, 'utf8').length > 0, 30_000);
      const delay = r.int(1500);
      await sleep(delay);
      process.kill(m.pid, 'SIGKILL');
      await waitFor('the daemon to die', () => !processAlive(m.pid), 10_000);
      await Promise.race([writerDone, sleep(10_000)]);
      if (writer.exitCode === null && writer.signalCode === null) writer.kill('SIGKILL');
      await writerDone;
      const written = readFileSync(log, 'utf8').split('\n').filter((l) => l !== '').map((l) => l.split(' ') as [string, string]);
      t.comment(`seed ${seed}: daemon killed ${delay} ms after the writer's first file; ${written.length} file(s) were written, fsync'ed and closed before`);

      // dvfs mount cleans up the stale mount and mounts again.
      const again = mountCli(ws, repo, mnt, { xattr: false });
      ok(t, { status: again.status, stderr: again.stderr }, `seed ${seed}: dvfs mount over the stale mount`);
      if (again.status !== 0) return;
      const m2 = adoptMount(ws, repo, mnt, again);
      const { createHash } = await import('node:crypto');
      let intact = 0;
      for (const [name, sha] of written) {
        const data = readFileSync(join(mnt, 'w', name));
        if (createHash('sha256').update(data).digest('hex') === sha) intact++;
        else t.fail(`seed ${seed}: w/${name} (fsync'ed and closed before the kill) reads back wrong`);
      }
      t.equal(intact, written.length, `seed ${seed}: every file closed before the kill is intact`);
      for (const [p, data] of v1) t.ok(readFileSync(join(mnt, p)).equals(data), `seed ${seed}: ${p} (committed) reads back intact`);
      await m2.umount();
      t.notOk(isMounted(mnt), 'unmounted');

      // The next commit records what the dead daemon's session wrote.
      ok(t, await runDvfs(['commit', repo, '-m', 'after the crash'], { env: ws.env }), `seed ${seed}: commit after the crash`);
      ok(t, await runDvfs(['verify', repo, '--full'], { env: ws.env }), `seed ${seed}: dvfs verify --full`);
      await restoresTo(t, ws, repo, head1 ?? 'HEAD', v1, `seed ${seed}: the snapshot committed before the crash`);
      const out = join(ws.dir, 'after');
      ok(t, await runDvfs(['restore', repo, 'HEAD', '--to', out], { env: ws.env }), `seed ${seed}: restore HEAD`);
      let committed = 0;
      for (const [name, sha] of written) {
        const p = join(out, 'w', name);
        if (existsSync(p) && createHash('sha256').update(readFileSync(p)).digest('hex') === sha) committed++;
      }
      t.equal(committed, written.length, `seed ${seed}: HEAD holds every file closed before the kill, byte-identical`);
      // And the repository mounts, takes writes and commits again.
      const m3 = mountDvfs(ws, repo, mnt, { xattr: false });
      await writeFile(join(mnt, 'later.txt'), 'after recovery\n');
      ok(t, await runDvfs(['commit', repo, '-m', 'later'], { env: ws.env }), `seed ${seed}: commit on the new mount`);
      await m3.umount();
    });
  }
});
