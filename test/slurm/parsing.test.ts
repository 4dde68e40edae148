/**
 * The pure parts of the SLURM integration: parsing what SLURM's clients print, array sizes, output overlap,
 * the job comment, sbatch arguments and the batch scripts (quoting), and how task states combine.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { isQueued, parseSbatchId, parseScontrolLine, parseSqueue } from '../../daemon/slurm/client.js';
import { findConflicts, outputsOverlap } from '../../daemon/slurm/conflicts.js';
import { arrayTaskCount, overallState } from '../../daemon/slurm/finish.js';
import { exactPattern } from '../../daemon/slurm/fanout.js';
import { processCost } from '../../daemon/slurm/process-cost.js';
import type { JobEntry } from '../../daemon/slurm/registry.js';
import { parseGlob } from '../../daemon/stage/glob.js';
import { finalizeJob, jobComment, parseJobComment, shellQuote, stageJob } from '../../daemon/slurm/sbatch.js';

const entry = (over: Partial<JobEntry> = {}): JobEntry => ({
  entry: '20261122T000000Z-abcd0123',
  repo: '/scratch/my proj',
  stage: 'train it',
  command: ['python', 'train.py', "it's"],
  outputs: ['model'],
  profile: null,
  message: null,
  engine: null,
  image: null,
  inputs: [],
  glob: null,
  passwordFile: '/home/u/.pw',
  identityFile: null,
  array: null,
  after: [],
  jobId: '41',
  finalizeJobId: '42',
  submittedAt: new Date().toISOString(),
  submitHost: 'login1',
  cancelRequested: false,
  claim: null,
  result: null,
  ...over,
});

t.test('SLURM client output', async (t) => {
  t.equal(parseSbatchId('123\n'), '123');
  t.equal(parseSbatchId('77;cluster\n'), '77', 'federated form');
  t.throws(() => parseSbatchId('sbatch: error: whatever\n'), /no job id/);
  t.same(parseSqueue('12|12|RUNNING\n13_[1-3]|13|PENDING\n13_0|14|RUNNING\n\n'), [
    { id: '12', jobId: '12', state: 'RUNNING' },
    { id: '13_[1-3]', jobId: '13', state: 'PENDING' },
    { id: '13_0', jobId: '14', state: 'RUNNING' },
  ]);
  const q = parseSqueue('13_[1-3]|13|PENDING\n20|20|COMPLETING\n');
  t.ok(isQueued(q, '13'), 'an array with pending tasks is queued');
  t.notOk(isQueued(q, '1'), 'no prefix confusion');
  t.notOk(isQueued(q, null));
  const line = 'JobId=26 ArrayJobId=26 ArrayTaskId=2 JobName=x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:01';
  t.same(parseScontrolLine(line), { jobId: '26', arrayJobId: '26', arrayTaskId: '2', state: 'FAILED', exitCode: '3:0', reason: 'NonZeroExitCode' });
  t.equal(parseScontrolLine('garbage'), null);
});

t.test('array sizes', async (t) => {
  t.equal(arrayTaskCount('0-3'), 4);
  t.equal(arrayTaskCount('1,5,7-9%2'), 5);
  t.equal(arrayTaskCount('0-10:5'), 3);
  t.equal(arrayTaskCount('7'), 1);
  t.equal(arrayTaskCount('a-b'), null);
  t.equal(arrayTaskCount('5-1'), null);
});

t.test('owned outputs and conflicts', async (t) => {
  t.ok(outputsOverlap('model', 'model'));
  t.ok(outputsOverlap('model/w', 'model'));
  t.ok(outputsOverlap('model', 'model/w'));
  t.ok(outputsOverlap('', 'x'), 'the whole volume overlaps everything');
  t.notOk(outputsOverlap('model', 'modelling'));
  const queue = parseSqueue('41|41|RUNNING\n');
  t.match(findConflicts(['model/x'], [entry()], queue), [{ jobId: '41', paths: [['model/x', 'model']] }]);
  t.same(findConflicts(['data'], [entry()], queue), [], 'disjoint outputs');
  t.same(findConflicts(['model'], [entry({ result: { state: 'completed', exitCode: 0, snapshot: null, keptSessions: [], discardedSessions: [], slurm: null, finishedAt: '', by: 'finish' } })], queue), [], 'finished jobs own nothing');
  t.same(findConflicts(['model'], [entry()], []), [], 'a job SLURM no longer has owns nothing');
  t.match(findConflicts(['model'], [entry()], parseSqueue('42|42|PENDING\n')), [{ jobId: '42' }], 'a pending finalize job still owns the outputs');
});

t.test('job comment', async (t) => {
  const c = jobComment('20261122T000000Z-abcd0123', '/scratch/a:b c');
  t.same(parseJobComment(c), { entry: '20261122T000000Z-abcd0123', repo: '/scratch/a:b c' });
  t.equal(parseJobComment(undefined), null);
  t.equal(parseJobComment('vault=/x'), null);
  t.equal(parseJobComment('dvfs:../x:/r'), null, 'no path components in entry names');
});

t.test('sbatch arguments and scripts', async (t) => {
  const s = stageJob(entry({ array: '0-3' }), { partition: 'gpu', time: '01:00:00', extra: ['--mem=4G'] }, ['9', '10']);
  t.same(s.args, [
    '--parsable',
    '--job-name=dvfs-train_it',
    '--comment=dvfs:20261122T000000Z-abcd0123:/scratch/my proj',
    '--no-requeue',
    '--partition=gpu',
    '--time=01:00:00',
    '--array=0-3',
    '--dependency=afterok:9:10',
    '--kill-on-invalid-dep=yes',
    '--mem=4G',
  ]);
  t.match(s.script, /^#!\/bin\/sh\n/);
  const f = finalizeJob(entry(), { partition: 'gpu' }, '41');
  t.ok(f.args.includes('--dependency=afterany:41'), 'the finalize job runs whatever happens to the stage');
  t.ok(f.args.includes('--partition=gpu'));
  t.match(f.script, / --stage-job 41 /, 'the finalize job knows its stage job even before the submit has recorded it');
  t.match(f.script, /'--password-file' '\/home\/u\/\.pw'|--password-file \/home\/u\/\.pw/, 'the finalize job unlocks with the password file');
  const byIdentity = finalizeJob(entry({ passwordFile: null, identityFile: '/home/u/.config/dvfs/identity' }), {}, '41');
  t.match(byIdentity.script, /--identity'? '?\/home\/u\/\.config\/dvfs\/identity/, 'or with the identity file');
  t.notMatch(byIdentity.script, /password/, 'and then names no password file');
  // the scripts survive the shell: run the exec line with echo instead
  const words = JSON.parse(execFileSync('sh', ['-c', s.script.split('\n')[2]!.replace(/^exec \S+/, 'exec node -e "console.log(JSON.stringify(process.argv.slice(1)))"')], { encoding: 'utf8' })) as string[];
  t.same(words.slice(-4), ['stage', '/scratch/my proj', '--entry', '20261122T000000Z-abcd0123'], 'paths with spaces arrive intact');
  t.equal(shellQuote("it's"), `'it'\\''s'`);
  t.equal(shellQuote('/plain/path-1.2'), '/plain/path-1.2');
});

t.test('combined state of tasks', async (t) => {
  t.equal(overallState(['completed', 'completed']), 'completed');
  t.equal(overallState(['completed', 'failed']), 'failed');
  t.equal(overallState(['failed', 'cancelled', 'completed']), 'cancelled');
  t.equal(overallState([]), 'lost');
});

t.test('a --glob match as a pattern that matches it alone', async (t) => {
  t.equal(exactPattern('data/run-1/a.csv'), 'data/run-1/a.csv', 'a plain path is its own pattern');
  t.equal(exactPattern('data/a*b?[c].txt'), 'data/a[*]b[?][[]c].txt', 'metacharacters become one-character sets');
  t.same(parseGlob(exactPattern('x/[y]*')), ['x', '[[]y][*]'], 'and the result is a valid pattern');
});

t.test('what a process cost', async (t) => {
  const c = processCost();
  t.ok(Date.parse(c.processStartedAt) <= Date.now(), 'started in the past');
  t.ok(c.wallSeconds > 0, 'wall time since the start');
  if (process.platform === 'linux') t.ok(c.cpuSeconds !== null && c.cpuSeconds > 0, `CPU seconds from /proc/self/stat (${c.cpuSeconds})`);
  else t.equal(c.cpuSeconds, null, 'no CPU time off Linux');
});
