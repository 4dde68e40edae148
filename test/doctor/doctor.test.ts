// dvfs doctor against real leftovers: a lock of a dead process, temp files in both stores, a view of a dead
// daemon, a clone staging directory, and a mount whose daemon was killed with SIGKILL (stale FUSE mount and
// an orphaned session, which must be reported and kept until dvfs commit commits it).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fuseAvailable, initRepo, isMounted, processAlive, quickMount, waitFor, workspace } from '../helpers/mount.js';
import type { CliResult } from '../helpers/cli.js';
import type { DoctorReport } from '../../daemon/doctor/findings.js';

/** The pid of a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

function report(r: CliResult): DoctorReport {
  return JSON.parse(r.out) as DoctorReport;
}

const kinds = (r: DoctorReport): string[] => r.findings.map((f) => f.kind).sort();

t.test('leftovers of dead processes are found, and --repair removes them', async (t) => {
  const ws = workspace(t, 'doctor');
  const repo = initRepo(ws, 'repo');
  const clean = ws.cli(['doctor', repo, '--json']);
  t.equal(clean.status, 0, `a fresh repository is healthy (${clean.stderr.trim()})`);
  t.same(report(clean).findings, [], 'no findings');

  const dead = deadPid();
  const meta = join(repo, '.dvfs');
  writeFileSync(join(meta, 'lock'), JSON.stringify({ pid: dead, host: hostname(), startedAt: new Date().toISOString(), purpose: 'commit' }) + '\n');
  for (const store of ['objects', 'manifests']) {
    mkdirSync(join(meta, store, 'tmp'), { recursive: true });
    writeFileSync(join(meta, store, 'tmp', `partial-${store}`), 'half written');
  }
  const deadView = join(meta, 'views', `0123456789abcdef-${dead}`);
  const liveView = join(meta, 'views', `0123456789abcdef-${process.pid}`);
  mkdirSync(deadView, { recursive: true });
  mkdirSync(liveView, { recursive: true });
  const staging = join(ws.dir, `other.dvfs-clone-${dead}`);
  mkdirSync(join(staging, '.dvfs'), { recursive: true });
  const notOurs = join(ws.dir, `notes.dvfs-clone-${dead}`); // no .dvfs inside: not dvfs staging
  mkdirSync(notOurs);

  const found = ws.cli(['doctor', repo, '--json']);
  t.equal(found.status, 1, 'exit status 1 while something needs attention');
  const before = report(found);
  t.same(kinds(before), ['dead-view', 'staging-dir', 'stale-lock', 'temp-files', 'temp-files'], 'every leftover found, nothing else');
  t.ok(before.findings.every((f) => f.repaired === undefined), 'nothing repaired without --repair');
  t.ok(existsSync(join(meta, 'lock')) && existsSync(deadView) && existsSync(staging), 'and nothing removed');
  t.match(before.findings.find((f) => f.kind === 'stale-lock')?.problem ?? '', new RegExp(`pid ${dead}`), 'the lock finding names the dead pid');

  const human = ws.cli(['doctor', repo]);
  t.match(human.out, /stale-lock: .*lock\n.*\n\s+fix: .*\[repairable\]/, 'a readable report');

  const fixed = ws.cli(['doctor', repo, '--repair', '--json']);
  t.equal(fixed.status, 0, `--repair fixes everything (${fixed.stderr.trim()})`);
  const after = report(fixed);
  t.equal(after.repaired, 5, 'five repaired');
  t.notOk(existsSync(join(meta, 'lock')), 'the stale lock is gone');
  t.notOk(existsSync(join(meta, 'objects', 'tmp', 'partial-objects')) || existsSync(join(meta, 'manifests', 'tmp', 'partial-manifests')), 'temp files are gone');
  t.notOk(existsSync(deadView), 'the dead view is gone');
  t.ok(existsSync(liveView), 'the view of a live process stays');
  t.notOk(existsSync(staging), 'the staging directory is gone');
  t.ok(existsSync(notOurs), 'a directory that only looks like staging stays');
  t.same(report(ws.cli(['doctor', repo, '--json'])).findings, [], 'healthy afterwards');
});

const unavailable = fuseAvailable();
const skip = unavailable === null ? false : `needs FUSE, unavailable because ${unavailable}`;

t.test('a mount daemon killed with SIGKILL: stale mount repaired, orphaned session kept for dvfs commit', { skip }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'doctor-mount' });
  writeFileSync(join(m.mnt, 'result.txt'), 'computed before the crash\n');
  process.kill(m.pid, 'SIGKILL');
  await waitFor('the daemon to die', () => !processAlive(m.pid));
  t.ok(isMounted(m.mnt), 'the dead mount is still in the mount table');

  const found = report(m.ws.cli(['doctor', m.repo, '--json']));
  t.same(kinds(found), ['orphaned-session', 'stale-mount'], 'stale mount and orphaned session found');
  const session = found.findings.find((f) => f.kind === 'orphaned-session');
  t.match(session?.fix ?? '', /dvfs commit/, 'the session finding says dvfs commit commits it');

  const fixed = m.ws.cli(['doctor', m.repo, '--repair', '--json']);
  t.equal(fixed.status, 1, 'the orphaned session still needs attention');
  const after = report(fixed);
  t.equal(after.findings.find((f) => f.kind === 'stale-mount')?.repaired, true, 'the stale mount is repaired');
  t.notOk(isMounted(m.mnt), 'and detached');
  t.match(String(after.findings.find((f) => f.kind === 'orphaned-session')?.repaired), /never/, 'the session is not touched');
  t.ok(session && existsSync(session.path), 'its journal is still there');

  const commit = m.ws.cli(['commit', m.repo, '-m', 'after the crash', '--json']);
  t.equal(commit.status, 0, `dvfs commit commits the orphaned session (${commit.stderr.trim()})`);
  t.equal(m.ws.cli(['cat', m.repo, '/result.txt']).out, 'computed before the crash\n', 'the file written before the crash is in the working tree');
  const last = m.ws.cli(['doctor', m.repo, '--json']);
  t.equal(last.status, 0, `healthy afterwards (${last.out.trim()})`);
});
