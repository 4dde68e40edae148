// Load: 8 concurrent fio writer processes (sequential, random, unaligned and mixed read/write jobs, every
// block carrying a crc32c or md5 header that fio checks itself) against one dvfs mount, round after round
// for DVFS_FIO_SECONDS (default 60), with a `dvfs commit` in the middle of each round. Then the mount is
// unmounted and mounted again, fio re-reads the last round's files with --verify_only (it regenerates what
// each block must hold), every file hashes as before the unmount, a commit succeeds and `dvfs verify --full`
// passes.
import t, { type Test } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuseAvailable, initRepo, mountDvfs, workspace, type DvfsMount } from '../helpers/mount.js';
import { treeHashes } from './load-helpers.js';

const SECONDS = Number(process.env['DVFS_FIO_SECONDS'] ?? '60');

/** The eight jobs: fio runs each as its own process, all at once. */
const JOBS: Record<string, Record<string, string>> = {
  'seq-1m': { rw: 'write', bs: '1m', size: '48m', verify: 'crc32c' },
  'seq-4k': { rw: 'write', bs: '4k', size: '8m', verify: 'md5' },
  'rand-4k': { rw: 'randwrite', bs: '4k', size: '16m', verify: 'crc32c' },
  'rand-range': { rw: 'randwrite', bsrange: '512-128k', size: '16m', verify: 'md5' },
  'rand-3k': { rw: 'randwrite', bs: '3k', size: '12m', verify: 'crc32c' },
  'randrw-mix': { rw: 'randrw', bsrange: '4k-64k', rwmixread: '30', size: '16m', verify: 'crc32c' },
  'seq-rw-mix': { rw: 'rw', bs: '64k', size: '16m', verify: 'md5' },
  'rand-fsync': { rw: 'randwrite', bs: '16k', size: '16m', fsync: '8', verify: 'crc32c' },
};

function fioAvailable(): string | null {
  const r = spawnSync('fio', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'fio is not installed (apt-get install fio; test/setup.sh installs it)';
  return null;
}

/** A job file writing into `dir`; the same round number gives the same data (fio's seeds are fixed). */
function jobFile(dir: string, round: number): string {
  const lines = ['[global]', `directory=${dir}`, 'ioengine=psync', 'verify_fatal=1', 'verify_dump=0', 'verify_state_save=0', 'randrepeat=1', `randseed=${1000 + round}`, 'group_reporting=0'];
  for (const [name, opts] of Object.entries(JOBS)) {
    lines.push('', `[${name}]`, ...Object.entries(opts).map(([k, v]) => `${k}=${v}`));
  }
  return `${lines.join('\n')}\n`;
}

interface FioJob {
  jobname: string;
  error: number;
  read: { io_bytes: number };
  write: { io_bytes: number };
}

interface FioRun {
  status: number | null;
  stderr: string;
  jobs: FioJob[];
}

/** Runs fio on a job file (without blocking the test, so a commit can run meanwhile). */
function fio(jobPath: string, extra: string[], cwd: string): Promise<FioRun> {
  return new Promise((resolve, reject) => {
    const child = spawn('fio', [jobPath, '--output-format=json', ...extra], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (status) => {
      // fio prints notes before the JSON document on stdout.
      const start = out.indexOf('{');
      let jobs: FioJob[] = [];
      try {
        jobs = (JSON.parse(out.slice(start)) as { jobs: FioJob[] }).jobs;
      } catch {
        err += `\n(fio printed no JSON report: ${out.slice(0, 400)})`;
      }
      resolve({ status, stderr: err, jobs });
    });
  });
}

function checkRun(t: Test, r: FioRun, what: string, mustWrite: boolean): void {
  t.equal(r.status, 0, `${what}: fio exits 0 ${r.stderr.trim().slice(0, 600)}`);
  t.equal(r.jobs.length, Object.keys(JOBS).length, `${what}: fio reports all ${Object.keys(JOBS).length} jobs`);
  const bad = r.jobs.filter((j) => j.error !== 0 || j.read.io_bytes === 0 || (mustWrite && j.write.io_bytes === 0));
  t.same(bad.map((j) => `${j.jobname}: error ${j.error}, read ${j.read.io_bytes}, written ${j.write.io_bytes}`), [], `${what}: every job ran without error and read its blocks back`);
}

function commit(t: Test, m: DvfsMount, message: string): void {
  const r = m.ws.cli(['commit', m.repo, '--json', '-m', message]);
  t.equal(r.status, 0, `dvfs commit (${message}) succeeds ${r.stderr.trim().slice(0, 400)}`);
}

const skip = fuseAvailable() ?? fioAvailable();

t.test(`8 concurrent fio writers for ${SECONDS} s against a mount, read back verified after a remount`, { skip: skip ?? false }, async (t) => {
  if (!Number.isFinite(SECONDS) || SECONDS <= 0) throw new Error(`DVFS_FIO_SECONDS must be a positive number of seconds, not '${process.env['DVFS_FIO_SECONDS'] ?? ''}'`);
  const ws = workspace(t, 'fio');
  const repo = initRepo(ws, 'repo');
  const mnt = join(ws.dir, 'mnt');
  mkdirSync(mnt);
  let m = mountDvfs(ws, repo, mnt, { xattr: false });
  const data = join(mnt, 'fio');
  mkdirSync(data);

  const deadline = Date.now() + SECONDS * 1000;
  let round = 0;
  let jobPath = '';
  do {
    round++;
    jobPath = join(ws.dir, `round-${round}.fio`);
    writeFileSync(jobPath, jobFile(data, round));
    const running = fio(jobPath, [], ws.dir);
    // A commit while eight writers are at work: files open for writing are left for the next one.
    commit(t, m, `during round ${round}`);
    checkRun(t, await running, `round ${round}`, true);
  } while (Date.now() < deadline);
  t.ok(round >= 1, `${round} round(s) of 8 concurrent fio jobs ran`);

  const before = treeHashes(data);
  t.equal(before.size, Object.keys(JOBS).length, 'one data file per job');
  await m.umount();
  m = mountDvfs(ws, repo, mnt, { xattr: false });

  checkRun(t, await fio(jobPath, ['--verify_only'], ws.dir), `after remount, fio --verify_only of round ${round}`, false);
  t.same(treeHashes(data), before, 'every file hashes after the remount as before it');

  commit(t, m, 'after the load');
  await m.umount();
  const out = join(ws.dir, 'restored');
  const rs = ws.cli(['restore', repo, 'HEAD', 'fio', '--to', out]);
  t.equal(rs.status, 0, `dvfs restore HEAD fio --to DIR ${rs.stderr.trim().slice(0, 400)}`);
  t.same(treeHashes(join(out, 'fio')), before, 'the committed snapshot holds exactly the bytes fio verified');
  const v = ws.cli(['verify', repo, '--full', '--json']);
  t.equal(v.status, 0, `dvfs verify --full passes ${v.stderr.trim().slice(0, 600)}`);
  const report = JSON.parse(v.out) as { problems: unknown[] };
  t.same(report.problems, [], 'verify reports no problem');
});
