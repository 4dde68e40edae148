// Mount profiles: the shipped ones load; bad ones are refused with FILE:LINE:COL and the key at fault;
// repository defaults, the profile and the command line merge in that order; the slurm section is typed.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import { listProfiles, loadProfile } from '../../daemon/profile/load.js';
import { parseYaml } from '../../daemon/profile/yaml-source.js';
import { expandPlaceholders } from '../../daemon/profile/placeholders.js';
import { pathsOverlap } from '../../daemon/profile/schema.js';
import { dvfs } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'dvfs-profile-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

async function refusal(t: Test, name: string, text: string): Promise<string> {
  const p = file(name, text);
  try {
    await loadProfile(p, { repoRoot: null });
  } catch (e) {
    t.type(e, DvfsError);
    return (e as DvfsError).oneLine();
  }
  t.fail(`${name} was accepted`);
  return '';
}

t.test('the shipped profiles load, with typed slurm sections', async (t) => {
  const all = await listProfiles(null);
  t.same(all.map((p) => p.name), ['iterative-sim', 'local', 'ml-training', 'preprocessing', 'simulation']);
  t.same(all.filter((p) => p.error !== null), [], 'every shipped profile is valid');
  const { profile: sim } = await loadProfile('simulation', { repoRoot: null });
  t.equal(sim.container.engine, 'sarus');
  t.same(sim.slurm, { partition: 'normal', nodes: 4, ntasks: 64, time: '12:00:00', extraArgs: ['--constraint=mc', '--exclusive'] });
  t.same(sim.layout, { reads: ['params/{stage}'], writes: ['sim/{job_id}'] });
  t.equal(sim.failure.onFailure, 'cancel-dependents');
  const { profile: ml } = await loadProfile('ml-training', { repoRoot: null });
  t.equal(ml.commit, 'always');
  t.equal(ml.push, 'cscs');
  const { profile: local, digest } = await loadProfile(undefined, { repoRoot: null });
  t.equal(local.name, 'local', 'no profile given: local');
  t.equal(local.container.engine, 'none');
  t.equal(local.slurm.partition, null);
  t.match(digest, /^[0-9a-f]{64}$/);
});

t.test('invalid profiles get clear errors naming file:line', async (t) => {
  const engine = await refusal(t, 'engine.yaml', 'description: x\ncontainer:\n  engine: lxc\n  image: a\n');
  t.match(engine, /engine\.yaml:3:\d+: container\.engine: must be one of: docker, podman, bubblewrap, sarus, apptainer, none \(got "lxc"\)/);
  const image = await refusal(t, 'image.yaml', 'container:\n  engine: docker\n  target: /data\n');
  t.match(image, /image\.yaml:\d+:\d+: container\.image: engine docker needs an image/);
  const overlap = await refusal(t, 'overlap.yaml', 'layout:\n  writes:\n    - results\n    - results/run1\n');
  t.match(overlap, /overlap\.yaml:4:\d+: layout\.writes\.1: owned path "results\/run1" overlaps owned path "results"/);
  const readsOwn = await refusal(t, 'reads-own.yaml', 'layout:\n  reads: [out]\n  writes: [out]\n');
  t.match(readsOwn, /layout\.reads\.0: read path "out" overlaps owned path "out"/);
  const yaml = await refusal(t, 'bad.yaml', 'description: fine\ncontainer:\n  engine: [docker\n');
  t.match(yaml, /bad\.yaml:\d+:\d+: bad YAML/);
  const flow = await refusal(t, 'flow.yaml', 'layout:\n  writes: [sim/{job_id}]\n');
  t.match(flow, /flow\.yaml:2:\d+: bad YAML/, 'an unquoted {placeholder} in a flow list is a YAML error, located');
  const unknownKey = await refusal(t, 'key.yaml', 'comit: always\n');
  t.match(unknownKey, /key\.yaml:1:\d+: comit: unknown key/);
  const placeholder = await refusal(t, 'ph.yaml', 'layout:\n  writes: ["out/{user}"]\n');
  t.match(placeholder, /unknown placeholder \{user\}/);
  const time = await refusal(t, 'time.yaml', 'slurm:\n  time: soon\n');
  t.match(time, /time\.yaml:2:\d+: slurm\.time: "soon" is not a SLURM time/);
  const nodes = await refusal(t, 'nodes.yaml', 'slurm:\n  nodes: 0\n');
  t.match(nodes, /slurm\.nodes: must be a whole number in 1\.\.100000/);
  const policy = await refusal(t, 'policy.yaml', 'commit: sometimes\nfailure:\n  on_failure: panic\n');
  t.match(policy, /policy\.yaml:1:\d+: commit: must be one of: on-success, always, never/);
  t.match(policy, /policy\.yaml:3:\d+: failure\.on_failure: must be one of: keep, discard, cancel-dependents/, 'every problem is reported at once');
  const dup = await refusal(t, 'dup.yaml', 'commit: always\ncommit: never\n');
  t.match(dup, /dup\.yaml:2:\d+: bad YAML/, 'duplicate keys are refused');
  await t.rejects(loadProfile('no-such-profile', { repoRoot: null }), /no profile named 'no-such-profile'/);
});

t.test('repository defaults < profile < command line', async (t) => {
  const repo = join(dir, 'repo');
  mkdirSync(join(repo, '.dvfs', 'profiles'), { recursive: true });
  writeFileSync(join(repo, '.dvfs', 'profiles', 'defaults.yaml'), 'container:\n  env:\n    SITE: cscs\n  target: /scratch\nslurm:\n  partition: debug\n  time: "00:10:00"\n');
  writeFileSync(join(repo, '.dvfs', 'profiles', 'mine.yaml'), 'container:\n  engine: podman\n  image: localhost/x\n  env:\n    STAGE: mine\nslurm:\n  time: "01:00:00"\n');
  const { profile } = await loadProfile('mine', { repoRoot: repo });
  t.same(profile.container.env, { SITE: 'cscs', STAGE: 'mine' }, 'mappings merge key by key');
  t.equal(profile.container.target, '/scratch', 'from the repository defaults');
  t.equal(profile.slurm.partition, 'debug');
  t.equal(profile.slurm.time, '01:00:00', 'the profile overrides the defaults');
  const cli = await loadProfile('mine', { repoRoot: repo, overrides: { container: { engine: 'docker' }, layout: { writes: ['out'] } } });
  t.equal(cli.profile.container.engine, 'docker', 'the command line overrides the profile');
  t.equal(cli.profile.container.image, 'localhost/x');
  t.same(cli.profile.layout.writes, ['out']);
  const { profile: shipped } = await loadProfile('local', { repoRoot: repo });
  t.equal(shipped.slurm.partition, 'debug', 'repository defaults apply to shipped profiles too');
  writeFileSync(join(repo, '.dvfs', 'profiles', 'defaults.yaml'), 'slurm:\n  nodes: 0\n');
  await t.rejects(loadProfile('local', { repoRoot: repo }), /defaults\.yaml:2:\d+: slurm\.nodes: must be a whole number/, 'a problem from the defaults names the defaults file');
});

t.test('placeholders, overlap rules, yaml locations', async (t) => {
  t.equal(expandPlaceholders('sim/{job_id}/{stage}', { job_id: '12', stage: 'sim' }, 'x'), 'sim/12/sim');
  t.throws(() => expandPlaceholders('{input}', {}, 'layout.reads[0]'), /layout\.reads\[0\] uses \{input\}, which has no value here/);
  t.ok(pathsOverlap('a/b', 'a/b/c'));
  t.ok(pathsOverlap('a/b', 'a/b'));
  t.notOk(pathsOverlap('a/b', 'a/bc'));
  t.ok(pathsOverlap('runs/{run}', 'runs/x'), 'a placeholder may expand to anything');
  t.notOk(pathsOverlap('runs/{run}', 'models/x'));
  const src = parseYaml('a:\n  b:\n    - x\n    - y\n', 'f.yaml');
  t.equal(src.locate(['a', 'b', 1]), 'f.yaml:4:7');
  t.equal(src.locate(['a', 'zz']), 'f.yaml:2:3', 'a missing key is located at its nearest parent');
});

t.test('dvfs profile list / show / validate', async (t) => {
  const list = dvfs(['profile', 'list', '--json']);
  t.equal(list.status, 0, list.stderr);
  t.same((JSON.parse(list.out) as { name: string }[]).map((p) => p.name), ['iterative-sim', 'local', 'ml-training', 'preprocessing', 'simulation']);
  const show = dvfs(['profile', 'show', 'preprocessing']);
  t.equal(show.status, 0, show.stderr);
  t.match(show.out, /engine: sarus/);
  t.match(show.out, /on_failure: discard/);
  const good = dvfs(['profile', 'validate', 'simulation', 'local']);
  t.equal(good.status, 0);
  const bad = dvfs(['profile', 'validate', file('v.yaml', 'container:\n  engine: lxc\n')]);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /v\.yaml:2:\d+: container\.engine/);
});
