/**
 * `--engine podman`: a local image for the dvfs stages, built with no registry — the test suite's busybox root
 * filesystem (test/fixtures/containers/rootfs.sh) plus this host's `node` with the shared libraries it loads
 * (from ldd) and the payload writer at /opt/iterative-sim/payload.js (it imports only node: modules) — and
 * the podman configuration these machines need (podman-env.sh: runc, cgroupfs, storage under DIR), which
 * the stage jobs inherit through sbatch's exported environment.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from '../lib/proc.js';
import { PAYLOAD_JS } from './annex-pipeline.js';

const CONTAINERS = fileURLToPath(new URL('../../../test/fixtures/containers/', import.meta.url));
export const IMAGE = 'localhost/dvfs-iterative-sim:latest';

export interface PodmanStageImage {
  image: string;
  /** CONTAINERS_CONF and CONTAINERS_STORAGE_CONF for every podman call, the jobs' included. */
  env: Record<string, string>;
}

function keyValues(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m !== null) out[m[1] as string] = m[2] as string;
  }
  return out;
}

/** The absolute paths of the shared libraries `binary` loads, the dynamic loader included. */
async function sharedLibraries(binary: string): Promise<string[]> {
  const r = await run('ldd', [binary], { timeoutMs: 30_000 });
  return [...r.stdout.matchAll(/(\/[^\s)]+)/g)].map((m) => m[1] as string);
}

export async function podmanImage(dir: string, log: (line: string) => void): Promise<PodmanStageImage> {
  mkdirSync(dir, { recursive: true });
  const env = keyValues((await run('bash', [join(CONTAINERS, 'podman-env.sh'), join(dir, 'podman')], { timeoutMs: 60_000 })).stdout);
  const rootfs = (await run('bash', [join(CONTAINERS, 'rootfs.sh'), dir], { timeoutMs: 120_000 })).stdout.trim().split('\n').at(-1) as string;
  const node = process.execPath;
  for (const file of [node, ...(await sharedLibraries(node))]) {
    const target = join(rootfs, file === node ? '/usr/local/bin/node' : file);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(file, target);
  }
  mkdirSync(join(rootfs, 'opt', 'iterative-sim'), { recursive: true });
  copyFileSync(PAYLOAD_JS, join(rootfs, 'opt', 'iterative-sim', 'payload.js'));
  const tar = join(dir, 'image.tar');
  await run('tar', ['-C', rootfs, '-cf', tar, '.'], { timeoutMs: 300_000 });
  const penv = { ...process.env, ...env };
  await run('podman', ['import', '--change', 'CMD ["/bin/sh"]', tar, IMAGE], { timeoutMs: 300_000, env: penv });
  const probe = await run('podman', ['run', '--rm', '--pull=never', '--network=none', IMAGE, '/usr/local/bin/node', '-e', 'process.stdout.write(process.version)'], { timeoutMs: 120_000, env: penv });
  log(`podman image ${IMAGE} built (node ${probe.stdout.trim()} inside)`);
  return { image: IMAGE, env };
}
