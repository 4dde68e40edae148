// A stage never writes plaintext to disk: its mountpoint is immutable while nothing is mounted on it, and
// when the daemon is killed mid-stage the stage is stopped, recorded as failed, and nothing it wrote (or
// tried to write, even by a process that escaped the stop) lands anywhere in the clear.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { guardedMountpoint, removeAbandonedStageDirs } from '../../daemon/stage/mountpoint.js';
import { CLI_PATH } from '../helpers/cli.js';
import { fuseAvailable, processAlive, waitFor } from '../helpers/mount.js';
import { stageRepo } from './stage-helpers.js';

const MARKER = 'PLAINTEXT-MARKER-7f3a91';

function filesBelow(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** Why the immutable flag cannot be tested under tmpdir(), or false. */
function chattrUnsupported(): string | false {
  const dir = mkdtempSync(join(tmpdir(), 'dvfs-chattr-probe-'));
  try {
    const r = spawnSync('chattr', ['+i', dir], { encoding: 'utf8' });
    if (r.status !== 0) return `chattr +i does not work under ${tmpdir()}: ${r.error?.message ?? r.stderr.trim()}`;
    spawnSync('chattr', ['-i', dir]);
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

t.test('the guarded mountpoint refuses writes while nothing is mounted on it', { skip: chattrUnsupported() }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dvfs-guard-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const g = await guardedMountpoint(dir, 'run1');
  t.ok(g.guarded, 'the mountpoint is immutable');
  t.throws(() => writeFileSync(join(g.path, 'leak'), MARKER), { code: 'EPERM' }, 'creating a file in the bare mountpoint fails');
  await g.release();
  t.notOk(existsSync(g.path), 'released: the directory is gone');
  // A dvfs run killed before releasing leaves an immutable directory: the next run removes it.
  const left = await guardedMountpoint(dir, 'run2');
  writeFileSync(join(dir, 'stages', 'run2', 'owner'), '999999999\n');
  const mine = await guardedMountpoint(dir, 'run3');
  t.same(await removeAbandonedStageDirs(dir), [join(dir, 'stages', 'run2')], 'only the directory whose owner is gone');
  t.notOk(existsSync(left.path));
  t.ok(existsSync(mine.path), 'a live run\'s directory stays');
  await mine.release();
});

t.test('a stage directory is never taken for abandoned while it is being made, nor when it is another host\'s', { skip: chattrUnsupported() }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dvfs-guard-owner-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const stages = join(dir, 'stages');
  // the states another job's cleaner can see: a staging directory before its owner file is written, one whose
  // owner is gone, and a stage directory of a job on another node (a repository on a shared filesystem)
  mkdirSync(join(stages, `.new-${process.pid}-run1`, 'mnt'), { recursive: true });
  mkdirSync(join(stages, '.new-999999999-run2', 'mnt'), { recursive: true });
  writeFileSync(join(stages, '.new-999999999-run2', 'owner'), `999999999 ${hostname()}\n`);
  mkdirSync(join(stages, 'run3', 'mnt'), { recursive: true });
  writeFileSync(join(stages, 'run3', 'owner'), '999999999 another-node.example\n');
  t.same(await removeAbandonedStageDirs(dir), [join(stages, '.new-999999999-run2')], 'only the staging directory of a dead owner on this host');
  t.same(readdirSync(stages).sort(), [`.new-${process.pid}-run1`, 'run3'], 'the one being made and the other node\'s stay');

  // A cleaner running in a loop (another job starting) while this process makes stage directories.
  const cleaner = spawn(process.execPath, ['--input-type=module', '-e', `
    const { removeAbandonedStageDirs } = await import(${JSON.stringify(new URL('../../daemon/stage/mountpoint.js', import.meta.url).href)});
    const end = Date.now() + 4000;
    let removed = 0;
    while (Date.now() < end) removed += (await removeAbandonedStageDirs(${JSON.stringify(dir)})).length;
    console.log(removed);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  let removedByCleaner = '';
  cleaner.stdout.setEncoding('utf8').on('data', (d: string) => (removedByCleaner += d));
  const cleanerDone = new Promise<void>((r) => cleaner.on('close', () => r()));
  await sleep(300);
  const made: Awaited<ReturnType<typeof guardedMountpoint>>[] = [];
  const lost: string[] = [];
  for (let i = 0; i < 150; i++) {
    try {
      const g = await guardedMountpoint(dir, `burst${i}`);
      if (!g.guarded || !existsSync(g.path)) lost.push(`burst${i}: ${g.problem ?? 'gone'}`);
      made.push(g);
    } catch (e) {
      lost.push(`burst${i}: ${(e as Error).message}`);
    }
  }
  await cleanerDone;
  t.same(lost, [], 'every stage directory made beside the cleaner is there, guarded, with its owner');
  t.equal(removedByCleaner.trim(), '0', 'the cleaner removed none of them');
  for (const g of made) await g.release();
});

t.test('releasing a guarded mountpoint under a writer that outlived the stage leaves nothing writable', { skip: chattrUnsupported() }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dvfs-guard-race-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const g = await guardedMountpoint(dir, 'run1');
  // A writer hammering the mountpoint by path (as a process that escaped a dead stage would) while it is released.
  const writer = spawn('sh', ['-c', `i=0; end=$(( $(date +%s) + 3 )); while [ $(date +%s) -lt $end ]; do echo ${MARKER} > '${g.path}/w'$i 2>/dev/null; i=$((i+1)); done`], { stdio: 'ignore' });
  const done = new Promise<void>((r) => writer.on('close', () => r()));
  await sleep(300);
  await g.release();
  await done;
  const left = filesBelow(dir).filter((f) => {
    try {
      return readFileSync(f).includes(MARKER);
    } catch {
      return false;
    }
  });
  t.same(left, [], 'no file the writer made survives, and none was made after the release');
  t.notOk(existsSync(g.path), 'the mountpoint is gone');
  t.same(readdirSync(join(dir, 'stages')), [], 'and so is its stage directory (renamed away, then removed)');
});

t.test('killing the daemon mid-stage leaves no plaintext on disk', { skip: fuseAvailable() ?? false }, async (t) => {
  const { ws, repo } = stageRepo(t, 'stage-leak');
  const progress = join(ws.dir, 'progress');
  const escapee = join(ws.dir, 'escapee.pid');
  const errors = join(ws.dir, 'escapee.err');
  // The stage writes marker files in a loop; a second writer escapes the stop (own session) and keeps
  // writing by absolute path into the mountpoint after the mount is gone.
  const script = [
    `setsid sh -c 'echo $$ > ${escapee}; i=0; while [ $i -lt 400 ]; do { echo ${MARKER}-escapee-$i > "$DVFS_MOUNT/e$i"; } 2>>${errors}; i=$((i+1)); sleep 0.05; done' &`,
    `i=0; while :; do echo ${MARKER}-$i > f$i; echo $i > ${progress}; i=$((i+1)); sleep 0.02; done`,
  ].join('\n');
  const child = spawn(process.execPath, [CLI_PATH, 'run', repo, '--json', '--', 'sh', '-c', script], { env: { ...process.env, ...ws.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  t.teardown(() => {
    if (existsSync(escapee)) {
      try {
        process.kill(Number(readFileSync(escapee, 'utf8')), 'SIGKILL');
      } catch {
        // finished
      }
    }
  });
  await waitFor('the stage to write 20 files', () => existsSync(progress) && Number(readFileSync(progress, 'utf8')) >= 20, 60_000);
  const stagesDir = join(repo, '.dvfs', 'run', 'stages');
  const [runId] = readdirSync(stagesDir);
  const mnt = join(stagesDir, runId as string, 'mnt');
  const status = ws.cli(['status', mnt, '--json']);
  t.equal(status.status, 0, status.stderr);
  const daemonPid = (JSON.parse(status.out) as { pid: number }).pid;
  process.kill(daemonPid, 'SIGKILL');
  const code = await exited;
  t.not(code, 0, 'dvfs run reports the failure');
  const result = JSON.parse(out) as { status: string; error: string | null; sessionId: string };
  t.equal(result.status, 'failed');
  t.equal(result.error, 'the mount daemon died mid-stage');
  t.match(err, /the mount daemon died mid-stage/);
  t.notOk(processAlive(daemonPid));
  // Let the escaped writer try for a while after the mount is gone.
  await sleep(1500);
  const leaked = [...filesBelow(ws.dir), ...filesBelow(mnt)].filter((f) => {
    try {
      return readFileSync(f).includes(MARKER);
    } catch {
      return false;
    }
  });
  t.same(leaked, [], 'no file anywhere in the workspace (repository, .dvfs, mountpoint) holds the marker in the clear');
  const escapeeErrors = existsSync(errors) ? readFileSync(errors, 'utf8') : '';
  const reasons = new Set(escapeeErrors.split('\n').filter((l) => l.trim() !== '').map((l) => l.slice(l.lastIndexOf(': ') + 2).trim()));
  t.ok(reasons.size > 0, 'the escaped writer\'s writes failed');
  const allowed = ['Transport endpoint is not connected', 'Software caused connection abort', 'Operation not permitted', 'Directory nonexistent', 'No such file or directory'];
  t.same([...reasons].filter((r) => !allowed.includes(r)), [], `every failure is ENOTCONN, ECONNABORTED, EPERM (immutable mountpoint) or ENOENT (mountpoint removed): ${[...reasons].join('; ')}`);
  const st = ws.cli(['status', repo]);
  t.match(st.out, new RegExp(result.sessionId), 'the session the daemon left is there for the next commit');
  const commit = ws.cli(['commit', repo, '--json']);
  t.equal(commit.status, 0, `the orphaned session is recovered by dvfs commit: ${commit.stderr}`);
  t.equal(spawnSync('grep', ['-rl', MARKER, ws.dir]).stdout.length, 0, 'grep finds no marker below the workspace after the commit either');
});
