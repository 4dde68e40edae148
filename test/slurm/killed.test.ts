/**
 * Jobs SLURM itself kills, against a REAL single-node cluster and real FUSE mounts: a stage that runs past
 * its time limit ends TIMEOUT, a stage on a node set DOWN ends NODE_FAIL. In both the stage process gets
 * SIGTERM, stops the command, unmounts and records it; `finish` records SLURM's state, commits or discards
 * per the profile, and the stages chained after it are cancelled instead of left pending.
 *
 * The cluster runs with OverTimeLimit=0 and KillWait=5, so a job with `--time 1` (SLURM's minimum, one
 * minute) is stopped between 60 and about 90 s after it starts (slurmctld checks time limits every 30 s).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { mountsUnder } from '../../daemon/mount/mountinfo.js';
import { fuseAvailable } from '../helpers/mount.js';
import { slurmAvailable, startSlurm, type SlurmCluster } from '../helpers/slurm.js';
import { FINAL_STATES, makeJobRepo, type JobRepo, type StatusRow } from './repo.js';

const unavailable = slurmAvailable() ?? fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING SLURM killed-job tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `SLURM job tests cannot run: ${unavailable}`;

const final = (row: { state: string }): boolean => FINAL_STATES.includes(row.state);

function cat(repo: JobRepo, path: string): string {
  const r = repo.run(['cat', repo.root, path]);
  return r.status === 0 ? r.out : `(dvfs cat failed: ${r.stderr.trim()})`;
}

/** Waits until the stage has written `path` through its mount with `content`. */
async function written(repo: JobRepo, path: string, content: string): Promise<boolean> {
  for (let i = 0; i < 600; i++) {
    if (cat(repo, path) === content) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

/** A profile that discards a failed stage's outputs (commit only on success). */
function discardProfile(repo: JobRepo): string {
  const file = join(repo.dir, 'discard.yaml');
  writeFileSync(file, 'description: keep nothing of a failed stage\ncontainer:\n  engine: none\ncommit: on-success\nfailure:\n  retry: 0\n  on_failure: discard\npush: none\n');
  return file;
}

/** What a stage SLURM stopped shows once finished: SLURM's state, SIGTERM's exit status, its output committed. */
function checkKilled(t: Test, repo: JobRepo, row: StatusRow, state: string, file: string, content: string): void {
  t.equal(row.state, state, `recorded as ${state}`);
  t.match(row.slurm, { state: state.toUpperCase() }, 'SLURM agrees');
  t.equal(row.exitCode, 143, 'the stage command got SIGTERM (128+15) and the job recorded it');
  t.ok(row.snapshot, 'committed (profile commit: always)');
  t.equal(cat(repo, file), content, 'with what the stage wrote before it was stopped');
}

async function nodeOf(cluster: SlurmCluster, jobId: string): Promise<string> {
  return (await cluster.client('squeue', ['-h', '-j', jobId, '-o', '%N'])).trim();
}

t.test('jobs killed by SLURM', { skip }, async (t) => {
  const cluster = await startSlurm(t, { cpus: 8, extraConf: 'OverTimeLimit=0\nKillWait=5\n' });

  t.test('node failure: state node_fail, the session committed per policy, the follower cancelled, nothing mounted', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const s = repo.submit(['--stage', 'doomed', '--profile', repo.alwaysProfile], ['sh', '-c', 'echo before-failure > doomed.txt; sleep 600']);
    const next = repo.submit(['--stage', 'next', '--after', 'doomed'], ['sh', '-c', 'echo never > next.txt']);
    t.ok(await written(repo, 'doomed.txt', 'before-failure\n'), 'the stage runs and has written through its mount');
    const node = await nodeOf(cluster, s.jobId);
    t.match(node, /\S/, `the stage runs on node ${node}`);
    await cluster.client('scontrol', ['update', `nodename=${node}`, 'state=down', 'reason=dvfs-test']);
    // ReturnToService=2 brings a responding node back by itself; resume it in case it is still down
    await cluster.client('scontrol', ['update', `nodename=${node}`, 'state=resume']).catch(() => undefined);
    const row = await repo.until(s.entry, final, 180_000);
    checkKilled(t, repo, row, 'node_fail', 'doomed.txt', 'before-failure\n');
    const followerRow = await repo.until(next.entry, final, 120_000);
    t.match(followerRow, { state: 'cancelled', snapshot: null }, 'the follower was cancelled, not left pending');
    t.not(cat(repo, 'next.txt'), 'never\n', 'and never ran');
    t.equal((await cluster.job(s.jobId))?.state, 'NODE_FAIL', 'the stage was not requeued (it would run again over its own record)');
    t.same(mountsUnder(repo.dir), [], 'nothing left mounted');
  });

  t.test('time limit: state timeout; commit: always keeps the partial output, on_failure: discard drops it', { timeout: 400_000 }, async (t) => {
    const repo = makeJobRepo(t, cluster);
    t.equal(repo.run(['commit', repo.root, '-m', 'start']).status, 0, 'a first snapshot (what a discard puts back)');
    // both at once: the time limit costs a minute and a half
    const kept = repo.submit(['--stage', 'slow', '--time', '1', '--output', 'slow', '--profile', repo.alwaysProfile], ['sh', '-c', 'mkdir -p slow && echo partial > slow/part.txt; sleep 600']);
    const dropped = repo.submit(['--stage', 'slower', '--time', '1', '--output', 'slower', '--profile', discardProfile(repo)], ['sh', '-c', 'mkdir -p slower && echo partial > slower/part.txt; sleep 600']);
    const next = repo.submit(['--stage', 'next', '--after', 'slow'], ['sh', '-c', 'echo never > next.txt']);
    const line = await cluster.client('scontrol', ['show', 'job', '-o', kept.jobId]);
    t.match(line, /TimeLimit=00:01:00/, '--time reached sbatch');
    const row = await repo.until(kept.entry, final, 240_000);
    checkKilled(t, repo, row, 'timeout', 'slow/part.txt', 'partial\n');
    const droppedRow = await repo.until(dropped.entry, final, 240_000);
    t.equal(droppedRow.state, 'timeout', 'the other stage timed out too');
    t.equal(droppedRow.snapshot, null, 'nothing committed for it (commit: on-success)');
    t.not(cat(repo, 'slower/part.txt'), 'partial\n', 'its partial output was discarded (on_failure: discard)');
    const followerRow = await repo.until(next.entry, final, 120_000);
    t.match(followerRow, { state: 'cancelled', snapshot: null }, 'the follower of the timed-out stage was cancelled');
    t.same(mountsUnder(repo.dir), [], 'nothing left mounted');
  });
});
