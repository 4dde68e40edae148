/**
 * Stage overhead benchmark: what `dvfs run` adds around a trivial command (mount, engine start, unmount,
 * commit), per engine, and what a reuse costs. One fresh repository in a temp directory.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/stage.js [--runs N] [--image-rootfs DIR]
 *   (bubblewrap runs when bwrap is installed and --image-rootfs names a root filesystem)
 *
 * Reported: median seconds of `dvfs run --force` writing one file (engines none and bubblewrap), of a
 * second identical `dvfs run` (a reuse: no mount), and of the bare command for reference. No target is set
 * yet; the numbers are for comparing changes. Everything is removed at the end.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from './lib/report.js';

const CLI = fileURLToPath(new URL('../../cli/dvfs.js', import.meta.url));

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, 'image-rootfs': { type: 'string' } } });
const runs = Number(values.runs);
const dir = mkdtempSync(join(tmpdir(), 'dvfs-bench-stage-'));
const env = { ...process.env, DVFS_PASSWORD_FILE: join(dir, 'pw'), DVFS_STATE_DIR: join(dir, 'state'), XDG_RUNTIME_DIR: dir };
writeFileSync(join(dir, 'pw'), 'bench password\n', { mode: 0o600 });
const repo = join(dir, 'repo');

function dvfs(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`dvfs ${args.join(' ')}: ${r.stderr}`);
  return (performance.now() - t0) / 1000;
}

function timed(what: string, fn: (i: number) => number): void {
  const xs = Array.from({ length: runs }, (_, i) => fn(i));
  console.log(`${what.padEnd(34)} median ${median(xs)?.toFixed(3)} s  (runs: ${xs.map((x) => x.toFixed(2)).join(' ')})`);
}

try {
  dvfs(['init', repo, '--mode', 'encfs', '--preset', 'standard', '--kdf-iterations', '1000']);
  timed('bare command (sh -c true)', () => {
    const t0 = performance.now();
    spawnSync('sh', ['-c', 'true']);
    return (performance.now() - t0) / 1000;
  });
  timed('dvfs run --engine none --force', (i) => dvfs(['run', repo, '--force', '--output', 'o', '--', 'sh', '-c', `mkdir -p o && echo ${i} > o/f`]));
  dvfs(['run', repo, '--output', 'r', '--', 'sh', '-c', 'mkdir -p r && echo 1 > r/f']);
  timed('dvfs run (reuse, no mount)', () => dvfs(['run', repo, '--output', 'r', '--', 'sh', '-c', 'mkdir -p r && echo 1 > r/f']));
  const rootfs = values['image-rootfs'];
  if (rootfs && spawnSync('sh', ['-c', 'command -v bwrap'], { stdio: 'ignore' }).status === 0) {
    timed('dvfs run --engine bubblewrap --force', (i) => dvfs(['run', repo, '--engine', 'bubblewrap', '--image', rootfs, '--force', '--output', 'b', '--', 'sh', '-c', `mkdir -p b && echo ${i} > b/f`]));
  } else console.log('bubblewrap: skipped (give --image-rootfs DIR, e.g. made by test/fixtures/containers/rootfs.sh, and install bubblewrap)');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
