/**
 * The SLURM test fixture (test/fixtures/slurm/cluster.sh, test/helpers/slurm.ts) against a REAL slurmctld,
 * slurmd and munged: the node comes up idle, a batch job runs and completes, a failing job reports its exit
 * code, and stopping leaves no daemon of the cluster behind.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { slurmAvailable, startSlurm } from '../helpers/slurm.js';

const unavailable = slurmAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING SLURM fixture tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `SLURM unavailable: ${unavailable}`;

/** Live processes whose command line mentions `needle`. */
function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const state = /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
      if (cmd.includes(needle) && state !== 'Z') found.push(`${pid}: ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

t.test('a single-node cluster runs batch jobs and stops cleanly', { skip }, async (t) => {
  const cluster = await startSlurm(t);
  const state = (await cluster.client('sinfo', ['-h', '-o', '%T'])).trim();
  t.equal(state, 'idle', 'the node is idle after start');

  const out = join(cluster.base, 'job-%j.out');
  const ok = (await cluster.client('sbatch', ['--parsable', '-o', out, '--wrap', 'echo "ran in $SLURM_JOB_ID"'])).trim();
  const failing = (await cluster.client('sbatch', ['--parsable', '-o', out, '--wrap', 'exit 7'])).trim();
  t.match(ok, /^\d+$/, 'sbatch --parsable prints the job id');
  await cluster.drain([ok, failing]);

  t.same(await cluster.job(ok), { state: 'COMPLETED', exitCode: '0:0', reason: 'None' }, 'the job completed');
  t.equal(readFileSync(join(cluster.base, `job-${ok}.out`), 'utf8'), `ran in ${ok}\n`, 'the job ran its command');
  const failed = await cluster.job(failing);
  t.equal(failed?.state, 'FAILED', 'a job exiting non-zero is FAILED');
  t.equal(failed?.exitCode, '7:0', 'with its exit code');

  await cluster.stop();
  t.notOk(existsSync(cluster.base), 'the state directory is gone');
  t.same(processesMentioning(cluster.base), [], 'no process of the cluster is left');
});
