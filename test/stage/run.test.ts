// dvfs run with engine none (the command runs on the host, in a real FUSE mount): provenance, reuse by
// identity, --glob fan-out rerunning only changed matches, failure and commit policies, retries,
// --defer-commit committed later by dvfs commit and by the library call, rerun.
import t from 'tap';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commitDeferredStages } from '../../daemon/stage/deferred.js';
import { fuseAvailable } from '../helpers/mount.js';
import { parseGlobRun, parseRun, showJson, stageRepo } from './stage-helpers.js';

const skip = fuseAvailable();

function profileFile(dir: string, name: string, yaml: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

/** Every regular file below `dir`, recursively. */
function filesBelow(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

t.test('a stage runs in the mount, records provenance, and an identical second run is a reuse', { skip: skip ?? false }, async (t) => {
  const { ws, repo, commitFiles } = stageRepo(t, 'stage-run');
  const cmd = ['sh', '-c', 'mkdir -p out && cat raw/a/t1 raw/b/t1 > out/all && echo "$PWD|$DVFS_MOUNT" > out/where'];
  const first = parseRun(t, ws.cli(['run', repo, '--input', 'raw', '--output', 'out', '--json', '--', ...cmd], { SLURM_JOB_ID: '4242', SLURM_ARRAY_TASK_ID: '7' }), 'first run');
  t.equal(first.status, 'ran');
  t.equal(first.exitCode, 0);
  t.equal(first.decision, 'committed');
  t.match(first.snapshot, /^[0-9a-f]{64}$/);
  t.match(first.identity, /^[0-9a-f]{64}$/);
  t.match(first.sessionId, /^\d{8}T\d{9}Z-[0-9a-f]{8}$/);
  t.equal(first.image, null);
  t.equal(first.imageDigest, null);
  t.equal(ws.cli(['cat', repo, 'out/all']).out, 'alpha\nbeta\n', 'the stage read its inputs and wrote through the mount');
  const [pwd, mountEnv] = ws.cli(['cat', repo, 'out/where']).out.trim().split('|');
  t.equal(pwd, mountEnv, 'the command ran with the mount as its working directory and DVFS_MOUNT set to it');
  t.match(mountEnv, /\/\.dvfs\/run\/stages\/[^/]+\/mnt$/);

  const shown = showJson(ws, repo, 'HEAD');
  t.equal(shown.id, first.snapshot);
  t.same(shown.provenance.command, cmd);
  t.equal(shown.provenance.exitStatus, 0);
  t.equal(shown.provenance.profile, 'local');
  t.equal(shown.provenance.jobId, '4242');
  t.equal(shown.provenance.arrayIndex, 7);
  t.equal(shown.provenance.stage?.identity, first.identity);
  t.equal(shown.provenance.stage?.status, 'ran');
  t.same(shown.provenance.stage?.outputs, ['out']);
  t.equal(shown.provenance.inputs?.[0]?.path, 'raw');
  t.match(shown.provenance.inputs?.[0]?.object, /^[0-9a-f]{64}$/, 'the input is recorded with its content id');
  t.ok(shown.provenance.startedAt && shown.provenance.finishedAt && shown.provenance.host);
  const text = ws.cli(['show', repo, 'HEAD']).out;
  t.match(text, /stage:\s+ran in none, identity [0-9a-f]{16}/, 'dvfs show prints the stage');
  t.match(text, /slurm job:\s+4242 \(array index 7\)/);

  const second = parseRun(t, ws.cli(['run', repo, '--input', 'raw', '--output', 'out', '--json', '--', ...cmd]), 'second run');
  t.equal(second.status, 'reused', 'same command, profile and inputs: reused');
  t.equal(second.identity, first.identity);
  t.equal(second.reusedFrom, first.snapshot);
  t.equal(second.sessionId, null, 'nothing was mounted');
  const reuse = showJson(ws, repo, 'HEAD');
  t.equal(reuse.id, second.snapshot, 'the reuse is a new snapshot');
  t.equal(reuse.provenance.reusedFrom, first.snapshot);
  t.equal(reuse.provenance.stage?.status, 'reused');

  const forced = parseRun(t, ws.cli(['run', repo, '--input', 'raw', '--output', 'out', '--force', '--json', '--', ...cmd]), 'forced run');
  t.equal(forced.status, 'ran', '--force runs it again');
  t.equal(forced.identity, first.identity);

  commitFiles({ 'raw/b/t1': 'beta 2\n' }, 'new input');
  const changed = parseRun(t, ws.cli(['run', repo, '--input', 'raw', '--output', 'out', '--json', '--', ...cmd]), 'run on changed input');
  t.equal(changed.status, 'ran', 'a changed input changes the identity: it runs');
  t.not(changed.identity, first.identity);
  t.equal(ws.cli(['cat', repo, 'out/all']).out, 'alpha\nbeta 2\n');

  const otherCmd = parseRun(t, ws.cli(['run', repo, '--input', 'raw', '--output', 'out', '--json', '--', 'sh', '-c', 'cat raw/a/t1 > out/all']), 'other command');
  t.equal(otherCmd.status, 'ran', 'another command is another identity');

  const leaks = filesBelow(join(repo, '.dvfs')).filter((f) => {
    const b = readFileSync(f);
    return b.includes('raw/a/t1') || b.includes('alpha') || b.includes('cat raw');
  });
  t.same(leaks, [], 'no file under .dvfs names an input or holds the command or content in the clear');
});

t.test('--glob fans out; a changed input reruns only its match', { skip: skip ?? false }, async (t) => {
  const { ws, repo, commitFiles } = stageRepo(t, 'stage-glob', { 'raw/a/t1': 'A\n', 'raw/b/t1': 'B\n', 'raw/c/t1': 'C\n', 'raw/c/other': 'x\n' });
  const args = ['run', repo, '--glob', 'raw/*/t1', '--output', 'counts', '--json', '--', 'sh', '-c', 'mkdir -p counts && wc -c < "{input}" > "counts/$(basename $(dirname {input}))"'];
  const one = parseGlobRun(t, ws.cli(args), 'first fan-out');
  t.equal(one.runs.length, 3, 'one run per match');
  t.same(one.runs.map((r) => r.input), ['raw/a/t1', 'raw/b/t1', 'raw/c/t1']);
  t.equal(one.ran, 3);
  t.equal(ws.cli(['cat', repo, 'counts/b']).out.trim(), '2');
  const two = parseGlobRun(t, ws.cli(args), 'second fan-out');
  t.equal(two.reused, 3, 'nothing changed: every match is reused');
  commitFiles({ 'raw/b/t1': 'BBBB\n' }, 'change b');
  const three = parseGlobRun(t, ws.cli(args), 'after changing b');
  t.same(
    three.runs.map((r) => [r.input, r.status]),
    [
      ['raw/a/t1', 'reused'],
      ['raw/b/t1', 'ran'],
      ['raw/c/t1', 'reused'],
    ],
    'only the changed match runs',
  );
  t.equal(ws.cli(['cat', repo, 'counts/b']).out.trim(), '5');
  const none = ws.cli(['run', repo, '--glob', 'nothing/*', '--json', '--', 'true']);
  t.equal(none.status, 0);
  t.equal(parseGlobRun(t, none, 'empty glob').runs.length, 0);
  t.match(none.stderr, /matches nothing/);
});

t.test('a failing command is recorded as failed and committed or not per policy; retries', { skip: skip ?? false }, async (t) => {
  const { ws, repo } = stageRepo(t, 'stage-fail');
  const fail = ['sh', '-c', 'mkdir -p res && echo partial > res/p && exit 3'];
  const onSuccess = ws.cli(['run', repo, '--output', 'res', '--json', '--', ...fail]);
  t.equal(onSuccess.status, 3, 'dvfs run exits with the command\'s status');
  const r1 = parseRun(t, onSuccess, 'on-success, failing');
  t.equal(r1.status, 'failed');
  t.equal(r1.exitCode, 3);
  t.equal(r1.decision, 'kept', 'commit: on-success does not commit a failure; on_failure keep leaves the changes');
  t.equal(r1.snapshot, null);
  t.match(onSuccess.stderr, /not committed/);
  const status = ws.cli(['status', repo]).out;
  t.match(status, /A \/res\/p/, 'the failed run\'s writes are kept, uncommitted');

  const always = profileFile(ws.dir, 'always', 'commit: always\nfailure:\n  on_failure: keep\n');
  const r2 = parseRun(t, ws.cli(['run', repo, '--profile', always, '--output', 'res2', '--json', '--', 'sh', '-c', 'mkdir res2 && echo x > res2/x && exit 3']), 'always, failing');
  t.equal(r2.status, 'failed');
  t.equal(r2.decision, 'committed', 'commit: always commits a failure');
  const shown = showJson(ws, repo, 'HEAD');
  t.equal(shown.id, r2.snapshot);
  t.equal(shown.provenance.exitStatus, 3);
  t.equal(shown.provenance.stage?.status, 'failed');
  t.equal(shown.provenance.profile, 'always');

  const discard = profileFile(ws.dir, 'discard', 'commit: on-success\nfailure:\n  on_failure: discard\n');
  const r3 = parseRun(t, ws.cli(['run', repo, '--profile', discard, '--output', 'res2', '--json', '--', 'sh', '-c', 'echo clobbered > res2/x && exit 4']), 'discard, failing');
  t.equal(r3.decision, 'discarded');
  t.equal(ws.cli(['cat', repo, 'res2/x']).out, 'x\n', 'on_failure discard put the output back as HEAD has it');

  const retry = profileFile(ws.dir, 'retry', 'failure:\n  retry: 2\n');
  const flaky = ['sh', '-c', 'mkdir -p flaky; n=$(cat flaky/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > flaky/n; [ $n -ge 3 ]'];
  const r4 = parseRun(t, ws.cli(['run', repo, '--profile', retry, '--output', 'flaky', '--json', '--', ...flaky]), 'flaky with retry 2');
  t.equal(r4.status, 'ran', 'succeeded on the third attempt');
  t.equal(r4.attempts, 3);
  t.equal(ws.cli(['cat', repo, 'flaky/n']).out, '3\n');
  t.equal(showJson(ws, repo, 'HEAD').provenance.stage?.attempts, 3);

  const noRetry = profileFile(ws.dir, 'noretry', 'failure:\n  retry: 1\n');
  const r5 = parseRun(t, ws.cli(['run', repo, '--profile', noRetry, '--json', '--', 'sh', '-c', 'exit 5']), 'always failing with retry 1');
  t.equal(r5.attempts, 2, 'one retry, then it gives up');
  t.equal(r5.exitCode, 5);
});

t.test('--defer-commit: recorded next to the session; dvfs commit and commitDeferredStages commit it', { skip: skip ?? false }, async (t) => {
  const { ws, repo } = stageRepo(t, 'stage-defer');
  const env = { SLURM_JOB_ID: '900', SLURM_ARRAY_TASK_ID: '2' };
  const d1 = parseRun(t, ws.cli(['run', repo, '--output', 'd1', '--defer-commit', '--json', '--', 'sh', '-c', 'mkdir d1 && echo one > d1/f'], env), 'deferred run 1');
  t.equal(d1.status, 'ran');
  t.equal(d1.decision, 'deferred');
  t.equal(d1.snapshot, null, 'not committed');
  const head = showJson(ws, repo, 'HEAD').id;
  const commit = ws.cli(['commit', repo, '--json']);
  t.equal(commit.status, 0, commit.stderr);
  const after = showJson(ws, repo, 'HEAD');
  t.not(after.id, head, 'a plain dvfs commit committed the deferred stage');
  t.equal(after.provenance.stage?.identity, d1.identity, 'with the stage record as provenance');
  t.equal(after.provenance.jobId, '900');
  t.equal(after.provenance.arrayIndex, 2);

  const d2 = parseRun(t, ws.cli(['run', repo, '--output', 'd2', '--defer-commit', '--json', '--', 'sh', '-c', 'mkdir -p d2 && echo two > d2/f']), 'deferred run 2');
  const d3 = parseRun(t, ws.cli(['run', repo, '--output', 'd3', '--defer-commit', '--json', '--', 'sh', '-c', 'mkdir d3 && exit 3']), 'deferred failing run');
  t.equal(d3.status, 'failed');
  const outcomes = await commitDeferredStages(repo, { password: Buffer.from(ws.password), sessions: [d2.sessionId as string, d3.sessionId as string] });
  t.same(
    outcomes.map((o) => [o.sessionId, o.decision, o.status, o.exitCode]),
    [
      [d2.sessionId, 'committed', 'ran', 0],
      [d3.sessionId, 'kept', 'failed', 3],
    ],
    'the library call applies each stage\'s commit policy',
  );
  t.equal(showJson(ws, repo, 'HEAD').id, outcomes[0]?.snapshot);
  t.same(await commitDeferredStages(repo, { password: Buffer.from(ws.password) }), [], 'nothing deferred is left');
  await t.rejects(commitDeferredStages(repo, { password: Buffer.from(ws.password), sessions: ['20200101T000000000Z-00000000'] }), /no ended stage session/);

  const rerun = ws.cli(['rerun', repo, outcomes[0]?.snapshot as string, '--json']);
  const again = parseRun(t, rerun, 'rerun');
  t.equal(again.status, 'ran', 'rerun runs the recorded stage again');
  t.equal(again.identity, d2.identity, 'with the same identity (same command, profile, inputs)');
  t.same(showJson(ws, repo, 'HEAD').provenance.command, ['sh', '-c', 'mkdir -p d2 && echo two > d2/f']);
  const notStage = ws.cli(['rerun', repo, 'HEAD~20']);
  t.not(notStage.status, 0);
});

t.test('uncommitted input files count from the working tree', { skip: skip ?? false }, async (t) => {
  const { ws, repo } = stageRepo(t, 'stage-working');
  const cmd = ['sh', '-c', 'mkdir -p o && cat raw/a/t1 > o/a'];
  const first = parseRun(t, ws.cli(['run', repo, '--input', 'raw/a/t1', '--output', 'o', '--json', '--', ...cmd]), 'first');
  t.equal(first.status, 'ran');
  const src = join(ws.dir, 'changed');
  writeFileSync(src, 'alpha, changed but not committed\n');
  t.equal(ws.cli(['put', repo, src, 'raw/a/t1']).status, 0);
  const second = ws.cli(['run', repo, '--input', 'raw/a/t1', '--output', 'o', '--json', '--', ...cmd]);
  const r = parseRun(t, second, 'after an uncommitted change of the input');
  t.equal(r.status, 'ran', 'the changed (uncommitted) input file changes the identity');
  t.not(r.identity, first.identity);
  t.match(second.stderr, /input files are hashed from the working tree/);
  t.equal(ws.cli(['cat', repo, 'o/a']).out, 'alpha, changed but not committed\n');
});

t.test('push policy: a committed stage is pushed to the named remote', { skip: skip ?? false }, async (t) => {
  const { ws, repo } = stageRepo(t, 'stage-push');
  const remote = join(ws.dir, 'remote');
  const add = ws.cli(['remote', 'add', repo, 'origin', `file://${remote}`]);
  t.equal(add.status, 0, add.stderr);
  const pushing = profileFile(ws.dir, 'pushing', 'push: origin\n');
  const r = parseRun(t, ws.cli(['run', repo, '--profile', pushing, '--output', 'p', '--json', '--', 'sh', '-c', 'mkdir p && echo pushed > p/f']), 'run with push');
  t.equal(r.decision, 'committed');
  t.same(r.push, { remote: 'origin', ok: true });
  const clone = join(ws.dir, 'clone');
  const c = ws.cli(['clone', `file://${remote}`, clone]);
  t.equal(c.status, 0, c.stderr);
  t.equal(ws.cli(['cat', clone, 'p/f']).out, 'pushed\n', 'the clone of the remote has the stage\'s output');
  const bad = profileFile(ws.dir, 'badpush', 'push: nowhere\n');
  const r2 = ws.cli(['run', repo, '--profile', bad, '--output', 'q', '--json', '--', 'sh', '-c', 'mkdir q && echo q > q/f']);
  t.equal(r2.status, 0, 'a failed push does not fail the stage');
  t.equal(parseRun(t, r2, 'bad push').push?.ok, false);
  t.match(r2.stderr, /push to 'nowhere' failed/);
});

t.test('usage errors', { skip: skip ?? false }, async (t) => {
  const { ws, repo } = stageRepo(t, 'stage-usage');
  const noCmd = ws.cli(['run', repo]);
  t.equal(noCmd.status, 2);
  t.match(noCmd.stderr, /no command to run/);
  const badEngine = ws.cli(['run', repo, '--engine', 'lxc', '--', 'true']);
  t.equal(badEngine.status, 2);
  t.match(badEngine.stderr, /--engine must be one of/);
  const noImage = ws.cli(['run', repo, '--engine', 'podman', '--', 'true']);
  t.equal(noImage.status, 1);
  t.match(noImage.stderr, /container\.image: engine podman needs an image/);
  const missing = ws.cli(['run', repo, '--json', '--', 'no-such-command-dvfs']);
  t.equal(missing.status, 127, 'a command that cannot start exits 127');
  t.match(parseRun(t, missing, 'missing command').error, /command not found/);
  const help = ws.cli(['run', '--help']);
  t.match(help.out, /--defer-commit/);
});
