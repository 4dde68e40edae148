// dvfs run unlocks with a personal identity alone (no password anywhere in its environment), as a SLURM job
// of a collaborator does: the stage mounts, runs, and commits.
import t from 'tap';
import { join } from 'node:path';
import { fuseAvailable } from '../helpers/mount.js';
import { fails, keyWorkspace, ok } from '../keys/keys-helpers.js';

const skip = fuseAvailable();

t.test('dvfs run with --identity only', { skip: skip ?? false }, async (t) => {
  const ws = await keyWorkspace(t, 'run');
  const repo = join(ws.dir, 'repo');
  const alice = join(ws.dir, 'alice.id');
  const stranger = join(ws.dir, 'stranger.id');
  const alicePub = ok(t, ws.as(alice, ['key', 'gen', '--out', alice, '--name', 'alice']), 'key gen').out.trim();
  ok(t, ws.as(stranger, ['key', 'gen', '--out', stranger, '--name', 'mallory']), 'another key gen');
  ok(t, ws.withPassword(['init', repo, '--mode', 'encfs', '--kdf-iterations', '1000']), 'init');
  ok(t, ws.withPassword(['key', 'add', repo, alicePub]), 'alice gets a slot');
  const r = ok(t, ws.as(alice, ['run', repo, '--output', 'out', '--json', '--', 'sh', '-c', 'mkdir -p out && echo "by alice" > out/f']), 'run as alice');
  const res = JSON.parse(r.out) as { status: string; snapshot: string | null };
  t.equal(res.status, 'ran');
  t.ok(res.snapshot, 'and committed');
  t.equal(ok(t, ws.as(alice, ['cat', repo, 'out/f']), 'cat as alice').out, 'by alice\n', 'the stage wrote through the mount');
  fails(t, ws.as(stranger, ['run', repo, '--', 'true']), /slot|fingerprint/i, 'an identity without a slot cannot run a stage');
});
