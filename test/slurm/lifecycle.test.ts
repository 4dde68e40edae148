/**
 * The SLURM job lifecycle against a REAL single-node cluster and real FUSE mounts: `dvfs slurm submit` runs
 * the stage inside a mount on the node and its finalize job commits; failures, chains, conflicts, scancel,
 * arrays and 20 concurrent jobs end in a complete, linear history.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mountsUnder } from '../../daemon/mount/mountinfo.js';
import { join } from 'node:path';
import t from 'tap';
import { dvfs } from '../helpers/cli.js';
import { fuseAvailable } from '../helpers/mount.js';
import { slurmAvailable, startSlurm } from '../helpers/slurm.js';
import { FINAL_STATES, makeJobRepo, type JobRepo } from './repo.js';

const unavailable = slurmAvailable() ?? fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING SLURM lifecycle tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `SLURM job tests cannot run: ${unavailable}`;

const bwrapMissing = ['/usr/bin/bwrap', '/usr/bin/busybox'].every(existsSync) ? false : 'bubblewrap container test needs /usr/bin/bwrap and a static /usr/bin/busybox (Debian packages bubblewrap busybox-static)';
if (bwrapMissing !== false) console.error(`\n!!! SKIPPING ${bwrapMissing}\n`);

const final = (row: { state: string }): boolean => FINAL_STATES.includes(row.state);

/** The plaintext of a committed file (`dvfs cat` of the working tree after commit). */
function cat(repo: JobRepo, path: string): string {
  const r = repo.run(['cat', repo.root, path]);
  return r.status === 0 ? r.out : `(dvfs cat failed: ${r.stderr.trim()})`;
}

t.test('SLURM job lifecycle', { skip }, async (t) => {
  const cluster = await startSlurm(t, { cpus: 8 });

  t.test('submit: the stage runs in a mount on the node, the finalize job commits with the job id', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const s = repo.submit(['--stage', 'prep', '--output', 'results'], ['sh', '-c', 'mkdir -p results && echo "from $SLURM_JOB_ID" > results/out.txt && test "$PWD" = "$DVFS_MOUNT"']);
    t.match(s, { stage: 'prep', jobId: /^\d+$/, finalizeJobId: /^\d+$/ }, 'submit returns both job ids at once');
    const row = await repo.until(s.entry, final);
    t.equal(row.state, 'completed', 'the stage completed');
    t.equal(row.exitCode, 0, 'exit code 0');
    t.match(row.slurm, { state: 'COMPLETED', exitCode: '0:0' }, 'SLURM agrees (cross-check)');
    const log = repo.log();
    t.equal(log.length, 1, 'one snapshot');
    t.equal(log[0]?.id, row.snapshot, 'status names the committed snapshot');
    t.equal(log[0]?.provenance.jobId, s.jobId, 'the snapshot records the job id');
    t.same(log[0]?.provenance.command?.slice(0, 2), ['sh', '-c'], 'and the command (the stage record of dvfs run)');
    t.equal(cat(repo, 'results/out.txt'), `from ${s.jobId}\n`, 'the stage wrote through the mount');
    t.same(mountsUnder(repo.dir), [], 'the job unmounted');

    const again = repo.run(['slurm', 'finish', repo.root]);
    t.equal(again.status, 0, 'finish again succeeds');
    t.match(again.out, /nothing to finish/, 'and has nothing to do (idempotent)');
    t.equal(repo.log().length, 1, 'no second snapshot');
  });

  t.test('a stage in a container (bubblewrap): the snapshot records the image digest; the profile\'s slurm section reaches sbatch', { skip: bwrapMissing }, async (t) => {
    const repo = makeJobRepo(t, cluster);
    const rootfs = join(repo.dir, 'rootfs');
    // a minimal root filesystem: static busybox, and the mountpoints bubblewrap binds over
    for (const d of ['bin', 'proc', 'dev', 'tmp', 'work']) mkdirSync(join(rootfs, d), { recursive: true });
    copyFileSync('/usr/bin/busybox', join(rootfs, 'bin', 'busybox'));
    chmodSync(join(rootfs, 'bin', 'busybox'), 0o755);
    for (const tool of ['sh', 'echo', 'cat', 'test', 'mkdir']) symlinkSync('busybox', join(rootfs, 'bin', tool));
    const profile = join(repo.dir, 'boxed.yaml');
    writeFileSync(
      profile,
      ['description: busybox in bubblewrap', 'layout:', '  writes: [boxed]', 'container:', '  engine: bubblewrap', `  image: ${rootfs}`, '  target: /work', 'slurm:', '  time: "00:10:00"', '  ntasks: 1', 'commit: on-success', 'push: none', ''].join('\n'),
    );
    const s = repo.submit(['--profile', profile], ['sh', '-c', 'mkdir -p boxed && echo "in $DVFS_MOUNT" > boxed/c.txt && test -x /bin/busybox && test ! -e /usr/bin/node']);
    t.equal(s.stage, 'boxed', 'the stage is named after the profile');
    const line = await cluster.client('scontrol', ['show', 'job', '-o', s.jobId]);
    t.match(line, /TimeLimit=00:10:00/, 'the profile\'s slurm.time is the job\'s time limit');
    const refused = repo.run(['slurm', 'submit', repo.root, '--output', 'boxed/x', '--', 'true']);
    // the stage job, or its finalize job if the stage already ended (both belong to the stage)
    t.match(refused.stderr, new RegExp(`job (${s.jobId}|${s.finalizeJobId}) \\(stage boxed\\) owns boxed`), 'the profile\'s layout.writes are the owned outputs');
    const row = await repo.until(s.entry, final);
    t.equal(row.state, 'completed', 'completed');
    t.equal(cat(repo, 'boxed/c.txt'), 'in /work\n', 'the container saw the mount at the profile\'s target');
    const snap = repo.log()[0];
    t.equal(snap?.provenance.image, rootfs, 'the snapshot records the image');
    t.match(snap?.provenance.imageDigest, /^sha256:[0-9a-f]{64}$/, 'and its digest');
    t.equal(snap?.provenance.jobId, s.jobId, 'and the job id');
  });

  t.test('a failing stage is recorded as failed and its follower is cancelled, not left pending', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const bad = repo.submit(['--stage', 'bad', '--profile', repo.alwaysProfile], ['sh', '-c', 'echo partial > partial.txt; exit 3']);
    const next = repo.submit(['--stage', 'next', '--after', 'bad'], ['sh', '-c', 'echo never > next.txt']);
    await repo.settle([bad.finalizeJobId, next.jobId, next.finalizeJobId]);
    const rows = repo.status();
    t.match(rows.find((r) => r.stage === 'bad'), { state: 'failed', exitCode: 3, slurm: { state: 'FAILED', exitCode: '3:0' } }, 'the failure and its exit code are recorded');
    t.match(rows.find((r) => r.stage === 'next'), { state: 'cancelled', exitCode: null, snapshot: null }, 'the follower was cancelled');
    t.equal((await cluster.job(next.jobId))?.reason, 'DependencyNeverSatisfied', 'SLURM cancelled it because the dependency failed');
    const log = repo.log();
    t.equal(log.length, 1, 'the failed stage was committed (profile policy commit: always)');
    t.equal(log[0]?.provenance.exitStatus, 3, 'with its exit status');
    t.equal(cat(repo, 'partial.txt'), 'partial\n', 'its partial output is in the snapshot');
  });

  t.test('the profile decides: a failed stage under commit: on-success stays uncommitted, recorded as kept', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const s = repo.submit(['--stage', 'flaky'], ['sh', '-c', 'echo half > half.txt; exit 2']);
    const row = await repo.until(s.entry, final);
    t.match(row, { state: 'failed', exitCode: 2, snapshot: null }, 'failed, not committed');
    t.equal(row.keptSessions.length, 1, 'its session is kept uncommitted (on_failure: keep)');
    t.equal(repo.log().length, 0, 'no snapshot');
    t.match(repo.run(['status', repo.root]).out, new RegExp(row.keptSessions[0] ?? 'x'), 'dvfs status lists the kept session');
  });

  t.test('two chained stages: the second sees the first one\'s committed output; history is linear', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const a = repo.submit(['--stage', 'a', '--output', 'a'], ['sh', '-c', 'mkdir a && echo 1 > a/x']);
    const b = repo.submit(['--stage', 'b', '--output', 'b', '--after', a.jobId], ['sh', '-c', 'mkdir b && cat a/x a/x > b/y']);
    await repo.until(b.entry, final);
    t.same(repo.status().map((r) => r.state), ['completed', 'completed'], 'both completed');
    t.equal(cat(repo, 'b/y'), '1\n1\n', 'b read a\'s output');
    const log = repo.log();
    t.same(log.map((l) => l.provenance.jobId), [b.jobId, a.jobId], 'b is committed after a');
    t.same(log[0]?.parents, [log[1]?.id], 'b\'s snapshot has a\'s as parent');
  });

  t.test('a submit whose outputs overlap a queued or running job is refused with its id; --force overrides', async (t) => {
    const repo = makeJobRepo(t, cluster);
    // runs until released, however slow the machine is between the submits below
    const release = join(repo.dir, 'release');
    const first = repo.submit(['--stage', 'long', '--output', 'model'], ['sh', '-c', `until [ -e ${release} ]; do sleep 0.2; done`]);
    const refused = repo.run(['slurm', 'submit', repo.root, '--output', 'model/weights', '--', 'true']);
    t.equal(refused.status, 1, 'refused');
    t.match(refused.stderr, new RegExp(`job ${first.jobId} \\(stage long\\) owns model`), 'naming the other job and the path');
    t.match(refused.stderr, /--force/, 'and the way out');
    const elsewhere = repo.submit(['--stage', 'other', '--output', 'modelling'], ['true']);
    t.ok(elsewhere.jobId, 'a path that only shares a prefix string is no conflict');
    const forced = repo.run(['slurm', 'submit', repo.root, '--output', 'model', '--force', '--json', '--', 'true']);
    t.equal(forced.status, 0, '--force submits anyway');
    t.match(forced.stderr, /warning: --force/, 'with a warning');
    writeFileSync(release, '');
    await repo.settle([first.finalizeJobId, elsewhere.finalizeJobId, (JSON.parse(forced.out) as { finalizeJobId: string }).finalizeJobId]);
    const after = repo.run(['slurm', 'submit', repo.root, '--output', 'model', '--json', '--', 'true']);
    t.equal(after.status, 0, 'once the job is finished the outputs are free again');
    if (after.status === 0) await repo.settle([(JSON.parse(after.out) as { finalizeJobId: string }).finalizeJobId]);
  });

  t.test('scancel mid-run: the job records the signal, finish commits what it wrote, state cancelled', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const s = repo.submit(['--stage', 'slow', '--profile', repo.alwaysProfile], ['sh', '-c', 'echo started > progress.txt; sleep 120']);
    // the stage has written through its mount (dvfs cat reads the ciphertext working tree)
    for (let i = 0; i < 600 && cat(repo, 'progress.txt') !== 'started\n'; i++) await new Promise((r) => setTimeout(r, 100));
    t.equal(cat(repo, 'progress.txt'), 'started\n', 'the stage is running and has written');
    const c = repo.run(['slurm', 'cancel', repo.root, 'slow', '--json']);
    t.equal(c.status, 0, 'dvfs slurm cancel');
    t.match(JSON.parse(c.out), { cancelled: [{ jobId: s.jobId }] }, 'cancelled the stage job');
    const row = await repo.until(s.entry, final);
    t.equal(row.state, 'cancelled', 'recorded as cancelled');
    t.equal(row.exitCode, 143, 'the stage command got SIGTERM (128+15)');
    t.equal(cat(repo, 'progress.txt'), 'started\n', 'what it wrote before the cancel is committed (commit: always)');
    t.same(mountsUnder(repo.dir), [], 'the mount is gone');
  });

  t.test('cancel while pending: the stage never runs, its finalize job records it as cancelled', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const first = repo.submit(['--stage', 'first'], ['sleep', '4']);
    const waiting = repo.submit(['--stage', 'waiting', '--after', 'first'], ['sh', '-c', 'echo ran > waiting.txt']);
    t.match(repo.status().find((r) => r.stage === 'waiting'), { state: 'pending' }, 'the follower is pending');
    const c = repo.run(['slurm', 'cancel', repo.root, 'waiting', '--json']);
    t.match(JSON.parse(c.out), { cancelled: [{ jobId: waiting.jobId }] }, 'dvfs slurm cancel STAGE');
    const row = await repo.until(waiting.entry, final);
    t.match(row, { state: 'cancelled', exitCode: null, snapshot: null }, 'recorded as cancelled, nothing committed');
    t.equal((await repo.until(first.entry, final)).state, 'completed', 'the first stage is unaffected');
    t.equal(repo.run(['cat', repo.root, 'waiting.txt']).status, 1, 'the cancelled stage never ran');
  });

  t.test('a job killed hard (its dvfs process SIGKILLed): finish unmounts the mount it left and commits what it wrote', async (t) => {
    const repo = makeJobRepo(t, cluster);
    // the stage command kills the `dvfs slurm stage` process that runs it; the mount daemon outlives it
    const s = repo.submit(['--stage', 'crash'], ['sh', '-c', 'echo before-crash > crash.txt; kill -9 $PPID; sleep 1']);
    const row = await repo.until(s.entry, final);
    t.not(row.state, 'completed', `not completed (${row.state})`);
    t.match(row.slurm, { state: 'FAILED' }, 'SLURM saw the job fail');
    t.ok(row.snapshot, 'a snapshot was made');
    t.equal(cat(repo, 'crash.txt'), 'before-crash\n', 'with what the stage wrote before the crash');
    t.same(mountsUnder(repo.dir), [], 'the leftover mount was unmounted');
    const snap = repo.log()[0];
    t.equal(snap?.provenance.jobId, s.jobId, 'the snapshot names the job');
  });

  t.test("a collaborator's job unlocks with an identity alone (no password file anywhere)", async (t) => {
    const repo = makeJobRepo(t, cluster);
    const idFile = join(repo.dir, 'bob.id');
    const asBob = { ...cluster.env, DVFS_PASSWORD_FILE: '', DVFS_IDENTITY: idFile, DVFS_KEY_KDF: '1:8192', XDG_CONFIG_HOME: join(repo.dir, 'config') };
    const gen = dvfs(['key', 'gen', '--out', idFile, '--name', 'bob'], { env: asBob, cwd: repo.dir });
    t.equal(gen.status, 0, `key gen (${gen.stderr.trim()})`);
    t.equal(repo.run(['key', 'add', repo.root, gen.out.trim()]).status, 0, 'the password holder adds bob');
    const sub = dvfs(['slurm', 'submit', repo.root, '--json', '--stage', 'bobs', '--output', 'bob', '--', 'sh', '-c', 'mkdir -p bob && echo "by bob" > bob/f'], { env: asBob, cwd: repo.dir });
    t.equal(sub.status, 0, `bob submits with his identity (${sub.stderr.trim()})`);
    const s = JSON.parse(sub.out) as { entry: string; jobId: string; finalizeJobId: string };
    const row = await repo.until(s.entry, final);
    t.equal(row.state, 'completed', 'the stage ran on the node, unlocked by the identity');
    t.equal(repo.log()[0]?.provenance.jobId, s.jobId, 'and the finalize job committed it');
    t.equal(cat(repo, 'bob/f'), 'by bob\n', 'with what the stage wrote');
    const noKey = dvfs(['slurm', 'submit', repo.root, '--', 'true'], { env: { ...asBob, DVFS_IDENTITY: join(repo.dir, 'missing.id') }, cwd: repo.dir });
    t.not(noKey.status, 0, 'a submit with neither a password nor a readable identity is refused before anything is queued');
  });

  t.test('an array job: one session per task, committed together with every task index', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const s = repo.submit(['--stage', 'sweep', '--array', '0-3'], ['sh', '-c', 'echo "task $SLURM_ARRAY_TASK_ID" > "t$SLURM_ARRAY_TASK_ID.txt"']);
    const row = await repo.until(s.entry, final);
    t.equal(row.state, 'completed', 'all tasks completed');
    const log = repo.log();
    t.equal(log.length, 1, 'one snapshot for the four tasks');
    t.equal(log[0]?.provenance.jobId, s.jobId, 'under the array job id');
    const tasks = log[0]?.provenance.tasks ?? [];
    t.same(tasks.map((x) => x.arrayIndex).sort(), [0, 1, 2, 3], 'with each task index');
    t.ok(tasks.every((x) => x.status === 'ran' && x.exitStatus === 0 && typeof x.session === 'string'), 'each task ran, exit 0, with its session');
    for (const i of [0, 1, 2, 3]) t.equal(cat(repo, `t${i}.txt`), `task ${i}\n`, `task ${i}'s output is in it`);
    const runs = readdirSync(join(repo.root, '.dvfs', 'slurm', 'runs', s.entry)).sort();
    t.same(runs, ['0.json', '1.json', '2.json', '3.json'], 'each task recorded its own run');
  });

  t.test('20 jobs submitted at once: all committed, history linear and complete', async (t) => {
    const repo = makeJobRepo(t, cluster);
    const subs = Array.from({ length: 20 }, (_, i) => repo.submit(['--stage', `j${i}`, '--output', `out/${i}`], ['sh', '-c', `mkdir -p out && echo ${i} > out/${i}`]));
    await repo.settle(subs.map((s) => s.finalizeJobId), 300_000);
    const rows = repo.status();
    t.equal(rows.length, 20, 'a status row per job');
    const other = rows.filter((r) => r.state !== 'completed');
    t.same(other.map((r) => `${r.stage}: ${r.state}`), [], 'all 20 completed', other.length > 0 ? { diagnostic: true, explained: repo.explain(other) } : {});
    const log = repo.log();
    t.equal(log.length, 20, '20 snapshots');
    t.same(new Set(log.map((l) => l.provenance.jobId)), new Set(subs.map((s) => s.jobId)), 'one per job');
    for (let i = 0; i < log.length - 1; i++) t.same(log[i]?.parents, [log[i + 1]?.id], `snapshot ${i} follows the next older one`);
    t.same(log.at(-1)?.parents, [], 'down to the first');
    const ls = repo.run(['ls', repo.root, 'out']);
    t.equal(ls.out.trim().split('\n').length, 20, 'every output is in the working tree');
    t.notOk(existsSync(join(repo.root, '.dvfs', 'lock')), 'no repository lock left behind');
  });
});
