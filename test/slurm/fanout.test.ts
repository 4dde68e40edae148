/**
 * `dvfs slurm submit --glob` against a REAL single-node cluster and real FUSE mounts: one stage job per
 * match of HEAD that has no committed result, a conflict of any match refusing the whole submit, and a
 * later submit of the same stage submitting only the new match.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { mountsUnder } from '../../daemon/mount/mountinfo.js';
import { fuseAvailable } from '../helpers/mount.js';
import { slurmAvailable, startSlurm } from '../helpers/slurm.js';
import { FINAL_STATES, makeJobRepo, type JobRepo, type Submitted } from './repo.js';

const unavailable = slurmAvailable() ?? fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING SLURM --glob tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `SLURM job tests cannot run: ${unavailable}`;

interface Fanout {
  jobs: (Submitted & { input: string })[];
  skipped: { input: string; snapshot: string }[];
}

/** Upper-cases the matched file into out/<match>. */
const UPPER = ['sh', '-c', 'mkdir -p "out/$(dirname "$DVFS_INPUT")" && tr a-z A-Z < "$DVFS_INPUT" > "out/$DVFS_INPUT"'];
const GLOB = ['--stage', 'upper', '--glob', 'data/*.txt', '--output', 'out/{input}'];

function addInputs(repo: JobRepo, files: Record<string, string>): void {
  const src = join(repo.dir, 'inputs');
  mkdirSync(src, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    writeFileSync(join(src, name), text);
    const put = repo.run(['put', repo.root, join(src, name), `data/${name}`]);
    if (put.status !== 0) throw new Error(`dvfs put failed: ${put.stderr}`);
  }
  const commit = repo.run(['commit', repo.root, '-m', 'inputs']);
  if (commit.status !== 0) throw new Error(`dvfs commit failed: ${commit.stderr}`);
}

/** Finalize jobs of every fan-out submitted, so the test waits for them before its repository goes. */
const fannedOut: string[] = [];

function fanout(repo: JobRepo): Fanout {
  const r = repo.run(['slurm', 'submit', repo.root, '--json', ...GLOB, '--', ...UPPER]);
  if (r.status !== 0) throw new Error(`submit --glob failed (${r.status}): ${r.stderr}`);
  const f = JSON.parse(r.out) as Fanout;
  fannedOut.push(...f.jobs.map((j) => j.finalizeJobId));
  return f;
}

function cat(repo: JobRepo, path: string): string {
  const r = repo.run(['cat', repo.root, path]);
  return r.status === 0 ? r.out : `(dvfs cat failed: ${r.stderr.trim()})`;
}

t.test('submit --glob: one job per match without a committed result', { skip }, async (t) => {
  const cluster = await startSlurm(t, { cpus: 8 });
  const repo = makeJobRepo(t, cluster);
  addInputs(repo, { 'a.txt': 'alpha\n', 'b.txt': 'beta\n', 'c.txt': 'gamma\n' });

  // a running job owns one match's output: the whole fan-out is refused, naming it
  const release = join(repo.dir, 'release');
  const holder = repo.submit(['--stage', 'holder', '--output', 'out/data/b.txt'], ['sh', '-c', `until [ -e ${release} ]; do sleep 0.2; done`]);
  const refused = repo.run(['slurm', 'submit', repo.root, ...GLOB, '--', ...UPPER]);
  t.equal(refused.status, 1, 'a match whose outputs overlap a running job is refused');
  t.match(refused.stderr, new RegExp(`stage upper on data/b.txt overlap .*job ${holder.jobId} \\(stage holder\\) owns out/data/b.txt`), 'naming the match and the other job');
  t.same(repo.status().map((r) => r.stage), ['holder'], 'and nothing of the fan-out was submitted');
  writeFileSync(release, '');
  await repo.settle([holder.finalizeJobId]);

  const first = fanout(repo);
  t.same(first.jobs.map((j) => j.input), ['data/a.txt', 'data/b.txt', 'data/c.txt'], 'one job per match');
  t.equal(new Set(first.jobs.map((j) => j.jobId)).size, 3, 'three separate stage jobs');
  t.same(first.skipped, [], 'nothing committed yet, nothing skipped');
  await repo.settle(first.jobs.map((j) => j.finalizeJobId), 240_000);
  const rows = repo.status().filter((r) => r.stage === 'upper');
  t.same(rows.map((r) => r.state), ['completed', 'completed', 'completed'], 'all three completed');
  t.ok(rows.every((r) => FINAL_STATES.includes(r.state) && r.snapshot !== null), 'each committed its own snapshot');
  t.equal(cat(repo, 'out/data/a.txt'), 'ALPHA\n', 'each ran on its own match (a)');
  t.equal(cat(repo, 'out/data/c.txt'), 'GAMMA\n', 'each ran on its own match (c)');
  const log = repo.log();
  t.same(new Set(log.slice(0, 3).map((l) => l.provenance.jobId)), new Set(first.jobs.map((j) => j.jobId)), 'three snapshots with the jobs\' ids');

  addInputs(repo, { 'd.txt': 'delta\n' });
  const second = fanout(repo);
  t.same(second.jobs.map((j) => j.input), ['data/d.txt'], 'the same stage again: only the new match is submitted');
  t.same(second.skipped.map((s) => s.input), ['data/a.txt', 'data/b.txt', 'data/c.txt'], 'the others are skipped');
  t.ok(second.skipped.every((s) => rows.some((r) => r.snapshot === s.snapshot)), 'each naming the snapshot of its committed result');
  const next = repo.submit(['--stage', 'after-upper', '--after', 'upper'], ['true']);
  const dependency = await cluster.client('scontrol', ['show', 'job', '-o', next.jobId]);
  t.match(dependency, new RegExp(`afterok:${second.jobs[0]?.finalizeJobId ?? 'x'}`), '--after STAGE waits for the newest fan-out of that stage');
  await repo.settle([...second.jobs.map((j) => j.finalizeJobId), next.finalizeJobId], 240_000);
  t.equal(cat(repo, 'out/data/d.txt'), 'DELTA\n', 'the new match ran');

  const third = fanout(repo);
  t.same(third.jobs, [], 'every match has a committed result: nothing submitted');
  t.equal(third.skipped.length, 4, 'all four skipped');
  await repo.settle(fannedOut, 240_000);
  t.same(mountsUnder(repo.dir), [], 'nothing left mounted');
});
