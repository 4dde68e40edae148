// kill -9 in the middle of `dvfs commit`, at random moments over many seeds: the repository stays consistent
// (verify --full passes, HEAD is the old or the new snapshot, never something else), the previous snapshot
// is intact, and re-running commit completes with exactly the snapshot an uninterrupted commit makes.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI_PATH, dvfs, REPO_ROOT, type CliResult } from '../helpers/cli.js';
import { rng } from '../helpers/rng.js';

const SEEDS = Number(process.env['DVFS_CRASH_SEEDS'] ?? 24);

function ok(r: CliResult, what: string): CliResult {
  if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr}`);
  return r;
}

const head = async (repo: string): Promise<string> => (await readFile(join(repo, '.dvfs', 'HEAD'), 'utf8')).trim();

t.test('commit survives kill -9 at random points', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-crash-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'pw');
  await writeFile(pw, 'crash test password\n', { mode: 0o600 });
  const env = { DVFS_PASSWORD_FILE: pw, DVFS_NO_PROGRESS: '1' };
  const run = (args: string[]): CliResult => dvfs(args, { env });
  const template = join(dir, 'template');
  ok(run(['init', template, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  const r = rng(20261122);
  const src1 = join(dir, 'one');
  const src2 = join(dir, 'two');
  await mkdir(join(src1, 'a'), { recursive: true });
  await mkdir(join(src2, 'b'), { recursive: true });
  for (let i = 0; i < 150; i++) await writeFile(join(src1, 'a', `f${i}`), r.bytes(1 + r.int(20_000)));
  for (let i = 0; i < 300; i++) await writeFile(join(src2, 'b', `g${i}`), r.bytes(1 + r.int(20_000)));
  ok(run(['put', template, src1, '/one']), 'put one');
  ok(run(['commit', template, '-m', 'base']), 'base commit');
  const base = await head(template);
  // Two ended sessions (300 new files and a directory; one more file), committed together under fire.
  ok(run(['put', template, src2, '/two']), 'put two');
  await writeFile(join(dir, 'three'), 'the third session');
  ok(run(['put', template, join(dir, 'three'), '/three.txt']), 'put three');

  // The reference: an uninterrupted commit of a copy.
  const copy = (to: string): void => {
    const c = spawnSync('cp', ['-a', template, to]);
    if (c.status !== 0) throw new Error(`cp failed: ${c.stderr.toString()}`);
  };
  const ref = join(dir, 'ref');
  copy(ref);
  const started = Date.now();
  const refReport = JSON.parse(ok(run(['commit', ref, '-m', 'under fire', '--json']), 'reference commit').out) as { snapshot: string; files: number };
  const duration = Date.now() - started;
  t.equal(refReport.files, 451, 'reference snapshot holds every file');
  const refTree = (JSON.parse(run(['show', ref, 'HEAD', '--json']).out) as { tree: string }).tree;
  t.comment(`an uninterrupted commit takes ${duration} ms (process start included)`);

  // Every window of a commit, hit exactly (DVFS_FAILPOINT makes the process SIGKILL itself there).
  const check = async (t: Test, work: string, what: string): Promise<void> => {
    const v = run(['verify', work, '--full']);
    t.equal(v.status, 0, `${what}: verify --full passes after the crash (${v.stderr.trim()}${v.out.trim()})`);
    const again = run(['commit', work, '-m', 'under fire', '--json']);
    t.equal(again.status, 0, `${what}: re-running commit completes (${again.stderr.trim()})`);
    const snap = JSON.parse(run(['show', work, 'HEAD', '--json']).out) as { tree: string; parents: string[] };
    t.equal(snap.tree, refTree, `${what}: the result equals an uninterrupted commit`);
    t.same(snap.parents, [base], `${what}: the previous snapshot is its parent (one new snapshot, not two)`);
    const baseFiles = (JSON.parse(run(['show', work, base, '--json']).out) as { stats: { files: number } }).stats.files;
    t.equal(baseFiles, 150, `${what}: the previous snapshot is intact`);
    const after = JSON.parse(run(['commit', work, '--json']).out) as { nothingToCommit: boolean };
    t.equal(after.nothingToCommit, true, `${what}: nothing left to commit`);
    const sessions = run(['status', work, '--json']);
    t.same((JSON.parse(sessions.out) as { sessions: unknown[] }).sessions, [], `${what}: no session left uncommitted`);
  };
  for (const point of ['commit:after-apply', 'commit:after-snapshot', 'commit:after-index', 'commit:after-head', 'commit:between-journal-marks']) {
    const work = join(dir, point.replace(/\W/g, '-'));
    copy(work);
    const r = dvfs(['commit', work, '-m', 'under fire'], { env: { ...env, DVFS_FAILPOINT: point } });
    t.not(r.status, 0, `${point}: the commit was killed there`);
    const h = await head(work);
    const moved = point === 'commit:after-head' || point === 'commit:between-journal-marks';
    t.ok(moved ? h !== base && /^[0-9a-f]{64}$/.test(h) : h === base, `${point}: HEAD is ${moved ? 'the new' : 'still the old'} snapshot`);
    await check(t, work, point);
    await rm(work, { recursive: true, force: true });
  }

  const outcomes = { old: 0, new: 0 };
  for (let seed = 1; seed <= SEEDS; seed++) {
    const work = join(dir, `seed-${seed}`);
    copy(work);
    // Spread over the whole run, start-up included, and a bit past its usual end.
    const delay = Math.round(duration * (0.2 + rng(seed).int(1000) / 1000));
    const child = spawn(process.execPath, [CLI_PATH, 'commit', work, '-m', 'under fire', '--json'], { env: { ...process.env, ...env }, cwd: REPO_ROOT, stdio: 'ignore' });
    const exited = new Promise((res) => child.once('exit', res));
    await Promise.race([exited, new Promise((res) => setTimeout(res, delay))]);
    child.kill('SIGKILL');
    await exited;
    const h = await head(work);
    t.ok(h === base || /^[0-9a-f]{64}$/.test(h), `seed ${seed} (kill after ${delay} ms): HEAD is a snapshot id`);
    if (h === base) outcomes.old++;
    else outcomes.new++;
    const v = run(['verify', work, '--full']);
    t.equal(v.status, 0, `seed ${seed}: verify --full passes after the crash (${v.stderr.trim()}${v.out.trim()})`);
    const again = run(['commit', work, '-m', 'under fire', '--json']);
    t.equal(again.status, 0, `seed ${seed}: re-running commit completes (${again.stderr.trim()})`);
    const tree = (JSON.parse(run(['show', work, 'HEAD', '--json']).out) as { tree: string; parents: string[] });
    t.equal(tree.tree, refTree, `seed ${seed}: the result equals an uninterrupted commit`);
    t.same(tree.parents, [base], `seed ${seed}: the previous snapshot is its parent (one new snapshot, not two)`);
    const baseTree = (JSON.parse(run(['show', work, base, '--json']).out) as { stats: { files: number } }).stats.files;
    t.equal(baseTree, 150, `seed ${seed}: the previous snapshot is intact`);
    const after = JSON.parse(run(['commit', work, '--json']).out) as { nothingToCommit: boolean };
    t.equal(after.nothingToCommit, true, `seed ${seed}: nothing left to commit`);
    await rm(work, { recursive: true, force: true });
  }
  t.comment(`HEAD after the kill: old ${outcomes.old} times, new ${outcomes.new} times`);
});
