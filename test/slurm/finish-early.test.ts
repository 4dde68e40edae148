/**
 * A finalize job that starts before its submit has recorded the job ids (seen on a loaded machine: the stage
 * job ran and ended, and its finalize job ran, while the submit still waited for the repository lock to
 * record them). The finalize job passes its stage job id, so it finishes the entry instead of calling it
 * "still being submitted" and leaving it uncommitted. No SLURM needed: the stage runs by hand (real FUSE
 * mount), and finish's SLURM cross-check is absent, as it is when the accounting is.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ensureRegistry, newEntryName, saveEntry, type JobEntry } from '../../daemon/slurm/registry.js';
import { dvfs } from '../helpers/cli.js';
import { fuseAvailable } from '../helpers/mount.js';

const unavailable = fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING the early finalize test: ${unavailable}\n`);

t.test('a finalize job that runs before the submit recorded the ids still commits', { skip: unavailable ?? false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dvfs-finish-early-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const password = join(dir, 'password');
  writeFileSync(password, 'early finish password\n');
  chmodSync(password, 0o600);
  // no SLURM here: the SLURM commands are not found, as on a machine without a controller
  const env = { DVFS_PASSWORD_FILE: password, PATH: '/usr/bin:/bin', SLURM_JOB_ID: '77' };
  const run = (args: string[]) => dvfs(args, { env, cwd: dir });
  const root = join(dir, 'repo');
  t.equal(run(['init', root, '--mode', 'encfs', '--kdf-iterations', '1000']).status, 0, 'init');
  const entry: JobEntry = {
    entry: newEntryName(),
    repo: root,
    stage: 'early',
    command: ['sh', '-c', 'echo early > early.txt'],
    outputs: [],
    profile: null,
    engine: null,
    image: null,
    inputs: [],
    glob: null,
    message: null,
    passwordFile: password,
    identityFile: null,
    array: null,
    after: [],
    jobId: null, // what the submit has not recorded yet
    finalizeJobId: null,
    submittedAt: new Date().toISOString(),
    submitHost: hostname(),
    cancelRequested: false,
    claim: null,
    result: null,
  };
  await ensureRegistry(root);
  await saveEntry(root, entry);
  const stage = run(['slurm', 'stage', root, '--entry', entry.entry]);
  t.equal(stage.status, 0, `the stage job ran (${stage.stderr.trim()})`);

  const blind = run(['slurm', 'finish', root, '--entry', entry.entry]);
  t.equal(blind.status, 1, 'without the stage job id the entry looks still being submitted');
  t.match(blind.out, /still being submitted/, 'and says so');

  const finish = run(['slurm', 'finish', root, '--entry', entry.entry, '--stage-job', '77']);
  t.equal(finish.status, 0, `with it (as the finalize job's script passes it) the entry is finished (${finish.stderr.trim()})`);
  t.match(finish.out, /77 early: finished: completed \(exit 0\), snapshot [0-9a-f]{12}/, 'completed and committed under the stage job id');
  const status = JSON.parse(run(['slurm', 'status', root, '--json']).out) as { jobs: { jobId: string; state: string; snapshot: string | null }[] };
  t.match(status.jobs, [{ jobId: '77', state: 'completed', snapshot: /^[0-9a-f]+$/ }], 'the entry records the job id and the result');
  t.equal(run(['cat', root, 'early.txt']).out, 'early\n', 'what the stage wrote is committed');
});
