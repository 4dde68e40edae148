// DVFS_CPU_PROFILE: the daemon's profiler writes one .cpuprofile per SIGUSR2, each a V8 profile that names
// the functions that ran since the previous one.
import t from 'tap';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../daemon/log.js';
import { startCpuProfiling } from '../../daemon/util/cpu-profile.js';

function busyProfiledWork(): number {
  let x = 0;
  for (let i = 0; i < 3_000_000; i++) x = (x * 31 + i) % 1_000_003;
  return x;
}

async function waitForFiles(dir: string, n: number): Promise<string[]> {
  for (let i = 0; i < 200; i++) {
    const names = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile')).sort();
    if (names.length >= n) return names;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${n} profiles in ${dir}`);
}

t.test('SIGUSR2 writes a profile and starts the next', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-cpuprof-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const out = join(dir, 'profiles');
  startCpuProfiling(createLogger({ file: join(dir, 'log'), level: 'warn' }), out);
  busyProfiledWork();
  process.kill(process.pid, 'SIGUSR2');
  const first = await waitForFiles(out, 1);
  t.match(first[0], new RegExp(`^daemon-${process.pid}-1\\.cpuprofile$`));
  const profile = JSON.parse(await readFile(join(out, first[0] as string), 'utf8')) as { nodes: { callFrame: { functionName: string } }[]; samples: number[] };
  t.ok(profile.samples.length > 0, 'samples taken');
  t.ok(profile.nodes.some((n) => n.callFrame.functionName === 'busyProfiledWork'), 'the busy function is in the profile');
  process.kill(process.pid, 'SIGUSR2');
  t.equal((await waitForFiles(out, 2)).length, 2, 'a second signal writes a second profile');
  process.removeAllListeners('SIGUSR2');
});

t.test('without DVFS_CPU_PROFILE nothing starts', (t) => {
  const before = process.listenerCount('SIGUSR2');
  startCpuProfiling(createLogger({ level: 'warn' }), '');
  t.equal(process.listenerCount('SIGUSR2'), before);
  t.end();
});
