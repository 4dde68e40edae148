// Real container runs writing through the mount: bubblewrap, podman (runc, storage in a temp dir) and docker
// (dockerd started by hand), each with a busybox image built locally with no registry
// (test/fixtures/containers). The provenance records the engine's image digest; a second identical run is
// a reuse; a failing command's exit status comes through the engine.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/cli.js';
import { fuseAvailable } from '../helpers/mount.js';
import { parseRun, showJson, stageRepo } from './stage-helpers.js';

const FIXTURES = join(REPO_ROOT, 'test', 'fixtures', 'containers');
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

function sh(script: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync('bash', [join(FIXTURES, script), ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 300_000 });
  if (r.status !== 0) throw new Error(`${script} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function envLines(text: string): Record<string, string> {
  return Object.fromEntries(text.trim().split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** Engine state lives outside the workspace (overlay mounts below it would fail the workspace's mount check). */
function engineDir(t: Test, label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `dvfs-engine-${label}-`));
  t.teardown(() => {
    for (const line of spawnSync('grep', ['-F', ` ${dir}/`, '/proc/self/mountinfo'], { encoding: 'utf8' }).stdout.split('\n').reverse()) {
      const mp = line.split(' ')[4];
      if (mp) spawnSync('umount', ['-l', mp], { stdio: 'ignore' });
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

const fuse = fuseAvailable();
const busybox = has('busybox') ? null : 'busybox-static is not installed (apt-get install busybox-static; test/setup.sh does)';
const STAGE = ['sh', '-c', 'mkdir -p out && cat raw/a/t1 raw/b/t1 > out/all && echo "$(pwd)|$DVFS_MOUNT" > out/where'];

/** The common checks: ran in the container, wrote through the mount, digest recorded, second run reused. */
function checkEngine(t: Test, engine: string, image: string, expectedDigest: RegExp | string, env: NodeJS.ProcessEnv = {}): void {
  const { ws, repo } = stageRepo(t, `stage-${engine}`);
  const first = parseRun(t, ws.cli(['run', repo, '--engine', engine, '--image', image, '--input', 'raw', '--output', 'out', '--json', '--', ...STAGE], env), `${engine} run`);
  t.equal(first.status, 'ran', `${engine}: the stage ran`);
  t.equal(first.engine, engine);
  t.equal(ws.cli(['cat', repo, 'out/all']).out, 'alpha\nbeta\n', `${engine}: the container read the inputs and wrote through the mount`);
  t.equal(ws.cli(['cat', repo, 'out/where']).out, '/data|/data\n', `${engine}: working directory and DVFS_MOUNT are the mount's path inside`);
  if (typeof expectedDigest === 'string') t.equal(first.imageDigest, expectedDigest, `${engine}: the image digest is the engine's image id`);
  else t.match(first.imageDigest, expectedDigest);
  const shown = showJson(ws, repo, 'HEAD');
  t.equal(shown.provenance.imageDigest, first.imageDigest, 'the snapshot records the image digest');
  t.equal(shown.provenance.image, image);
  t.equal(shown.provenance.stage?.engine, engine);
  const second = parseRun(t, ws.cli(['run', repo, '--engine', engine, '--image', image, '--input', 'raw', '--output', 'out', '--json', '--', ...STAGE], env), `${engine} second run`);
  t.equal(second.status, 'reused', `${engine}: an identical second run is a reuse`);
  t.equal(second.reusedFrom, first.snapshot);
  const failing = ws.cli(['run', repo, '--engine', engine, '--image', image, '--json', '--', 'sh', '-c', 'exit 3'], env);
  t.equal(failing.status, 3, `${engine}: the command's exit status comes through`);
  t.equal(parseRun(t, failing, `${engine} failing`).status, 'failed');
}

t.test('bubblewrap', { skip: fuse ?? busybox ?? (has('bwrap') ? false : 'bubblewrap is not installed (apt-get install bubblewrap)') }, async (t) => {
  const dir = engineDir(t, 'bwrap');
  const rootfs = sh('rootfs.sh', [dir]).trim();
  checkEngine(t, 'bubblewrap', rootfs, /^sha256:[0-9a-f]{64}$/);
});

t.test('podman', { skip: fuse ?? busybox ?? (has('podman') && has('runc') ? false : 'podman or runc is not installed (apt-get install podman runc)') }, async (t) => {
  const dir = engineDir(t, 'podman');
  sh('rootfs.sh', [dir]);
  const env = envLines(sh('podman-env.sh', [join(dir, 'podman')]));
  const image = 'localhost/dvfs-test-bb:latest';
  const imp = spawnSync('podman', ['import', '--change', 'CMD ["/bin/sh"]', join(dir, 'busybox-rootfs.tar'), image], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (imp.status !== 0) throw new Error(`podman import: ${imp.stderr}`);
  const id = spawnSync('podman', ['image', 'inspect', '--format', '{{.Id}}', image], { encoding: 'utf8', env: { ...process.env, ...env } }).stdout.trim();
  t.teardown(() => void spawnSync('podman', ['rmi', '-f', image], { stdio: 'ignore', env: { ...process.env, ...env } }));
  checkEngine(t, 'podman', image, `sha256:${id.replace(/^sha256:/, '')}`, env);
});

t.test('docker', { skip: fuse ?? busybox ?? (has('dockerd') && has('docker') ? false : 'docker is not installed (apt-get install docker.io)') }, async (t) => {
  const dir = engineDir(t, 'docker');
  sh('rootfs.sh', [dir]);
  const env = envLines(sh('dockerd.sh', ['start', join(dir, 'd')]));
  t.teardown(() => void sh('dockerd.sh', ['stop', join(dir, 'd')]));
  const image = 'localhost/dvfs-test-bb:latest';
  const imp = spawnSync('docker', ['import', '-c', 'CMD ["/bin/sh"]', join(dir, 'busybox-rootfs.tar'), image], { encoding: 'utf8', env: { ...process.env, ...env } });
  if (imp.status !== 0) throw new Error(`docker import: ${imp.stderr}`);
  checkEngine(t, 'docker', image, imp.stdout.trim(), env);
});
