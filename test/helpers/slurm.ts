/**
 * A REAL single-node SLURM cluster (Debian slurm-wlm + munge) for tests, started by
 * test/fixtures/slurm/cluster.sh with its config, state and logs in a fresh temp directory, on two free
 * loopback ports, so test files running in parallel each get their own cluster.
 *
 * - {@link slurmAvailable} says why SLURM cannot run here (for a loud skip), or null.
 * - {@link startSlurm} starts it (well under a second) and registers its stop on `t`'s teardown; later
 *   calls in the same process get the same running cluster back.
 * - If the test process dies without its teardown, the script's watchdog stops the cluster.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const SLURM_SCRIPT = fileURLToPath(new URL('../../../test/fixtures/slurm/cluster.sh', import.meta.url));

const run = promisify(execFile);
const SBIN = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface SlurmOptions {
  /** CPUs the node declares (default 8: short jobs run side by side on a 2-core machine). */
  cpus?: number;
  /** slurm.conf lines appended to the generated config (Prolog=..., Epilog=...). */
  extraConf?: string;
}

export interface SlurmCluster {
  base: string;
  conf: string;
  /** Environment for SLURM clients and for dvfs commands that call them. */
  env: NodeJS.ProcessEnv;
  /** State and exit code of a job as `scontrol show job -o` reports them (null when purged/unknown). */
  job(id: string): Promise<{ state: string; exitCode: string; reason: string } | null>;
  /** Waits until `squeue` lists none of these jobs (or any job, when none is given). */
  drain(ids?: string[], timeoutMs?: number): Promise<void>;
  /** Runs a SLURM client command (sbatch, squeue...) with the cluster's environment. */
  client(cmd: string, args: string[]): Promise<string>;
  logTail(name: 'slurmctld' | 'slurmd' | 'munged', lines?: number): string;
  stop(): Promise<void>;
}

function which(cmd: string): boolean {
  const dirs = [...(process.env['PATH'] ?? '').split(':'), ...SBIN];
  return dirs.some((d) => d !== '' && existsSync(join(d, cmd)));
}

/** Why a SLURM cluster cannot be started here (a reason for a loud skip), or null when it can. */
export function slurmAvailable(): string | null {
  if (process.platform !== 'linux') return `SLURM tests need Linux (platform is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'SLURM tests need root (the test cluster runs SlurmUser=root)';
  const missing = ['slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'munged', 'mungekey'].filter((c) => !which(c));
  if (missing.length > 0) return `cannot run SLURM: missing ${missing.join(', ')} (Debian packages slurm-wlm munge; run test/setup.sh as root)`;
  return null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

let running: Promise<SlurmCluster> | null = null;

async function launch(options: SlurmOptions): Promise<SlurmCluster> {
  const base = mkdtempSync(join(tmpdir(), 'dvfs-slurm-'));
  chmodSync(base, 0o755);
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: [process.env['PATH'] ?? '', ...SBIN].join(':') };
  const scriptEnv: NodeJS.ProcessEnv = {
    ...env,
    DVFS_SLURM_CTLD_PORT: String(await freePort()),
    DVFS_SLURM_SLURMD_PORT: String(await freePort()),
    DVFS_SLURM_CPUS: String(options.cpus ?? 8),
    DVFS_SLURM_OWNER_PID: String(process.pid),
  };
  if (options.extraConf !== undefined) {
    const extra = join(base, 'extra.conf');
    writeFileSync(extra, options.extraConf);
    scriptEnv['DVFS_SLURM_EXTRA_CONF'] = extra;
  }
  const started = spawnSync('bash', [SLURM_SCRIPT, 'start', base], { env: scriptEnv, encoding: 'utf8', timeout: 120_000 });
  if (started.status !== 0) {
    spawnSync('bash', [SLURM_SCRIPT, 'stop', base], { env: scriptEnv, stdio: 'ignore', timeout: 60_000 });
    rmSync(base, { recursive: true, force: true });
    throw new Error(`cluster.sh start failed (exit ${started.status}):\n${started.stderr}`);
  }
  const conf = join(base, 'etc', 'slurm.conf');
  env['SLURM_CONF'] = conf;
  let stopping: Promise<void> | null = null;
  const cluster: SlurmCluster = {
    base,
    conf,
    env,
    async client(cmd, args) {
      return (await run(cmd, args, { env, encoding: 'utf8' })).stdout;
    },
    async job(id) {
      let line: string;
      try {
        line = await cluster.client('scontrol', ['show', 'job', '-o', id]);
      } catch {
        return null;
      }
      const field = (k: string): string => new RegExp(`(?:^| )${k}=(\\S*)`).exec(line)?.[1] ?? '';
      return { state: field('JobState'), exitCode: field('ExitCode'), reason: field('Reason') };
    },
    async drain(ids, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const listed = (await cluster.client('squeue', ['-h', '-o', '%i %A'])).split('\n').flatMap((l) => l.trim().split(' ')).filter(Boolean);
        const left = ids === undefined ? listed : ids.filter((id) => listed.includes(id));
        if (left.length === 0) return;
        if (Date.now() > deadline) throw new Error(`jobs still queued after ${timeoutMs} ms: ${left.join(' ')}`);
        await sleep(200);
      }
    },
    logTail(name, lines = 40) {
      try {
        return readFileSync(join(base, 'log', `${name}.log`), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch (e) {
        return `(no log: ${String(e)})`;
      }
    },
    stop() {
      stopping ??= (async () => {
        await run('bash', [SLURM_SCRIPT, 'stop', base], { env: scriptEnv });
        rmSync(base, { recursive: true, force: true });
        running = null;
      })();
      return stopping;
    },
  };
  return cluster;
}

/** Starts a cluster (or returns this process's running one) and stops it when `t` ends. */
export async function startSlurm(t: TeardownHost, options: SlurmOptions = {}): Promise<SlurmCluster> {
  if (running !== null) {
    const current = await running.catch(() => null);
    if (current !== null) return current;
  }
  const starting = launch(options);
  running = starting;
  starting.catch(() => {
    running = null;
  });
  const cluster = await starting;
  t.teardown(() => cluster.stop());
  return cluster;
}
