/**
 * `dvfs slurm epilog` installed as slurmd's Epilog on a REAL cluster (run as root with no PATH, as slurmd
 * does): it commits the job's sessions before the finalize job runs (which then finds nothing to do), and on
 * errors it logs and exits 0, so the node is never drained.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CLI_PATH, dvfs } from '../helpers/cli.js';
import { fuseAvailable } from '../helpers/mount.js';
import { slurmAvailable, startSlurm } from '../helpers/slurm.js';
import { FINAL_STATES, makeJobRepo } from './repo.js';

const unavailable = slurmAvailable() ?? fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING SLURM epilog tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `SLURM epilog tests cannot run: ${unavailable}`;

t.test('dvfs slurm epilog outside SLURM does nothing and exits 0', async (t) => {
  const env: NodeJS.ProcessEnv = { SLURM_JOB_ID: '7', SLURM_JOB_COMMENT: 'not ours' };
  const r = dvfs(['slurm', 'epilog', '--json'], { env });
  t.equal(r.status, 0, 'exit 0');
  t.match(JSON.parse(r.out), { ours: false, jobId: '7', error: null }, 'a job without a dvfs comment is not ours');
});

t.test('epilog as slurmd Epilog', { skip }, async (t) => {
  const hookDir = mkdtempSync(join(tmpdir(), 'dvfs-slurm-hook-'));
  t.teardown(() => rmSync(hookDir, { recursive: true, force: true }));
  chmodSync(hookDir, 0o755);
  const epilog = join(hookDir, 'epilog.sh');
  // what a site installs: absolute paths (slurmd gives hooks no PATH)
  writeFileSync(epilog, `#!/bin/sh\nexec ${process.execPath} ${CLI_PATH} slurm epilog\n`);
  chmodSync(epilog, 0o755);
  const cluster = await startSlurm(t, { cpus: 4, extraConf: `Epilog=${epilog}\n` });
  const nodeState = async (): Promise<string> => (await cluster.client('sinfo', ['-h', '-o', '%T'])).trim();

  t.test('the epilog commits the job; the finalize job finds it finished', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const s = repo.submit(['--stage', 'hooked'], ['sh', '-c', 'echo via-epilog > e.txt']);
    const row = await repo.until(s.entry, (r) => FINAL_STATES.includes(r.state));
    await repo.settle([s.finalizeJobId]);
    t.equal(row.state, 'completed', 'completed');
    const entry = JSON.parse(readFileSync(join(repo.root, '.dvfs', 'slurm', 'jobs', `${s.entry}.json`), 'utf8')) as { result: { by: string } };
    t.equal(entry.result.by, 'epilog', 'the epilog recorded the result');
    const finalizeOut = readFileSync(join(repo.root, '.dvfs', 'slurm', 'logs', `finish-${s.finalizeJobId}.out`), 'utf8');
    t.match(finalizeOut, /already finished: completed/, 'the finalize job had nothing left to do');
    t.equal(repo.log().length, 1, 'one snapshot, not two');
    t.equal(repo.run(['cat', repo.root, 'e.txt']).out, 'via-epilog\n', 'with the stage output');
    const hooksLog = readFileSync(join(repo.root, '.dvfs', 'slurm', 'logs', 'hooks.log'), 'utf8');
    t.match(hooksLog, new RegExp(`epilog job ${s.jobId} entry ${s.entry}: finished: completed`), 'hooks.log says what the epilog did');
    t.equal((await cluster.job(s.finalizeJobId))?.state, 'COMPLETED', 'the finalize job succeeded (the stage completed)');
    t.equal(await nodeState(), 'idle', 'the node is idle, not drained');
  });

  t.test('an epilog that hits an error logs it and exits 0: the node is not drained', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const jobs = join(repo.root, '.dvfs', 'slurm', 'jobs');
    mkdirSync(jobs, { recursive: true });
    mkdirSync(join(repo.root, '.dvfs', 'slurm', 'logs'), { recursive: true });
    writeFileSync(join(jobs, 'broken-1.json'), '{ this is not json');
    const id = (await cluster.client('sbatch', ['--parsable', `--comment=dvfs:broken-1:${repo.root}`, '-o', '/dev/null', '--wrap', 'true'])).trim();
    await cluster.drain([id]);
    t.equal((await cluster.job(id))?.state, 'COMPLETED', 'the job completed');
    t.equal(await nodeState(), 'idle', 'the node is still idle (a failing epilog would drain it)');
    const hooksLog = readFileSync(join(repo.root, '.dvfs', 'slurm', 'logs', 'hooks.log'), 'utf8');
    t.match(hooksLog, new RegExp(`epilog job ${id} entry broken-1: ERROR corrupt job entry`), 'the error is in hooks.log');
  });
});
