// The engines' command lines, as generated: what runs for docker, podman, bubblewrap, sarus, apptainer and
// none (sarus and apptainer are not installable on these machines, so their argv is the test).
import t from 'tap';
import { engineInvocation, type StageLaunch } from '../../daemon/stage/engines.js';

const base: StageLaunch = {
  engine: 'none',
  image: null,
  mountpoint: '/repo/.dvfs/run/stages/r1/mnt',
  target: '/data',
  binds: [{ source: '/scratch/ref', target: '/ref', readOnly: true }],
  env: { OMP_NUM_THREADS: '8' },
  engineArgs: [],
  runArgs: [],
  command: ['python', 'sim.py', '--steps', '10'],
  name: 'dvfs-stage-r1',
};

t.test('sarus', async (t) => {
  const inv = engineInvocation({ ...base, engine: 'sarus', image: 'load/library/sim:1.0', runArgs: ['--mpi'] });
  t.equal(inv.file, 'sarus');
  t.same(inv.args, [
    'run',
    '--mount=type=bind,source=/repo/.dvfs/run/stages/r1/mnt,destination=/data',
    '--mount=type=bind,source=/scratch/ref,destination=/ref,readonly',
    '--workdir=/data',
    '--mpi',
    'load/library/sim:1.0',
    'python',
    'sim.py',
    '--steps',
    '10',
  ]);
  t.same(inv.env, { OMP_NUM_THREADS: '8', DVFS_MOUNT: '/data' }, 'sarus passes the caller\'s environment in: the variables ride on the sarus process');
  t.equal(inv.mountInside, '/data');
});

t.test('apptainer', async (t) => {
  const inv = engineInvocation({ ...base, engine: 'apptainer', image: '/images/sim.sif', engineArgs: ['--quiet'] });
  t.equal(inv.file, 'apptainer');
  t.same(inv.args, [
    '--quiet',
    'exec',
    '--bind',
    '/repo/.dvfs/run/stages/r1/mnt:/data,/scratch/ref:/ref:ro',
    '--pwd',
    '/data',
    '--env',
    'OMP_NUM_THREADS=8',
    '--env',
    'DVFS_MOUNT=/data',
    '/images/sim.sif',
    'python',
    'sim.py',
    '--steps',
    '10',
  ]);
  t.throws(() => engineInvocation({ ...base, engine: 'apptainer', image: 'x.sif', mountpoint: '/a,b' }), /apptainer --bind cannot carry/);
});

t.test('docker and podman', async (t) => {
  for (const engine of ['docker', 'podman'] as const) {
    const inv = engineInvocation({ ...base, engine, image: 'localhost/bb:latest', engineArgs: engine === 'podman' ? ['--root', '/s'] : [] });
    t.equal(inv.file, engine);
    t.same(inv.args, [
      ...(engine === 'podman' ? ['--root', '/s'] : []),
      'run',
      '--rm',
      '--pull=never',
      '--name=dvfs-stage-r1',
      '--network=none',
      '--mount=type=bind,source=/repo/.dvfs/run/stages/r1/mnt,destination=/data',
      '--mount=type=bind,source=/scratch/ref,destination=/ref,readonly',
      '--workdir=/data',
      '--env=OMP_NUM_THREADS=8',
      '--env=DVFS_MOUNT=/data',
      'localhost/bb:latest',
      'python',
      'sim.py',
      '--steps',
      '10',
    ]);
  }
  const net = engineInvocation({ ...base, engine: 'docker', image: 'x', runArgs: ['--network=host'] });
  t.notOk(net.args.includes('--network=none'), 'run_args choosing a network replace the default none');
  t.throws(() => engineInvocation({ ...base, engine: 'docker', image: 'x', mountpoint: '/a,b=c' }), /--mount syntax cannot carry/);
  t.throws(() => engineInvocation({ ...base, engine: 'podman' }), /engine podman needs an image/);
});

t.test('bubblewrap and none', async (t) => {
  const bw = engineInvocation({ ...base, engine: 'bubblewrap', image: '/rootfs' });
  t.equal(bw.file, 'bwrap');
  t.same(bw.args.slice(0, 12), ['--ro-bind', '/rootfs', '/', '--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp', '--bind', '/repo/.dvfs/run/stages/r1/mnt', '/data']);
  t.ok(bw.args.includes('--die-with-parent') && bw.args.includes('--unshare-net') && bw.args.includes('--clearenv'));
  const dash = bw.args.indexOf('--');
  t.same(bw.args.slice(dash + 1), base.command);
  t.same(bw.args.slice(dash - 2, dash), ['--chdir', '/data']);
  t.throws(() => engineInvocation({ ...base, engine: 'bubblewrap', image: 'relative/rootfs' }), /must be an absolute path/);
  const host = engineInvocation(base);
  t.equal(host.file, 'python');
  t.same(host.args, ['sim.py', '--steps', '10']);
  t.equal(host.cwd, base.mountpoint, 'engine none runs in the mount');
  t.same(host.env, { OMP_NUM_THREADS: '8', DVFS_MOUNT: base.mountpoint });
  t.throws(() => engineInvocation({ ...base, command: [] }), /no command to run/);
});
