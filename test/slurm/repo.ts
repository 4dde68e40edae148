/**
 * A dvfs repository for SLURM job tests: a fresh EncFS-format repository with a 0600 password file, the real
 * CLI run with the cluster's environment, and waiting for jobs through what the CLI itself reports.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { dvfs, type CliResult } from '../helpers/cli.js';
import type { SlurmCluster, TeardownHost } from '../helpers/slurm.js';

export interface Submitted {
  entry: string;
  stage: string;
  jobId: string;
  finalizeJobId: string;
}

export interface StatusRow {
  entry: string;
  stage: string;
  jobId: string;
  finalizeJobId: string;
  state: string;
  exitCode: number | null;
  snapshot: string | null;
  keptSessions: string[];
  slurm: { state: string; exitCode: string } | null;
}

export interface LogEntry {
  id: string;
  parents: string[];
  message: string;
  provenance: { jobId?: string; arrayIndex?: number; exitStatus?: number; command?: string[]; profile?: string; image?: string; imageDigest?: string; tasks?: Array<{ arrayIndex: number; status?: string; exitStatus?: number; session?: string }> };
}

export interface JobRepo {
  dir: string;
  root: string;
  /** A profile file like the shipped local one but `commit: always` (failed and cancelled stages are committed too). */
  alwaysProfile: string;
  env: NodeJS.ProcessEnv;
  run(args: string[]): CliResult;
  /** `dvfs slurm submit ROOT --json` with the given options and command; throws with stderr on failure. */
  submit(options: string[], command: string[]): Submitted;
  status(): StatusRow[];
  log(): LogEntry[];
  /** Waits until SLURM has none of these jobs queued (pass finalize ids: they end last). */
  settle(jobIds: string[], timeoutMs?: number): Promise<void>;
  /**
   * Everything the repository and SLURM recorded about these rows' jobs, for a failed assertion: the row, the
   * job's own run records, the stage job's output, the finalize job's log and the end of slurmctld's log.
   */
  explain(rows: StatusRow[]): string;
  /** Waits until the entry's state is `state` (as `dvfs slurm status` says). */
  until(entry: string, pred: (row: StatusRow) => boolean, timeoutMs?: number): Promise<StatusRow>;
}

export const FINAL_STATES = ['completed', 'failed', 'cancelled', 'timeout', 'node_fail', 'lost'];

export function makeJobRepo(t: TeardownHost, cluster: SlurmCluster): JobRepo {
  const dir = mkdtempSync(join(tmpdir(), 'dvfs-slurm-repo-'));
  const submitted: string[] = [];
  // jobs still queued would write into the directory while it is removed
  t.teardown(async () => {
    await cluster.drain(submitted, 60_000).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, 'slurm test password\n');
  chmodSync(passwordFile, 0o600);
  const root = join(dir, 'repo');
  const alwaysProfile = join(dir, 'always.yaml');
  writeFileSync(alwaysProfile, 'description: commit whatever happens\ncontainer:\n  engine: none\ncommit: always\nfailure:\n  retry: 0\n  on_failure: keep\npush: none\n');
  const env = { ...cluster.env, DVFS_PASSWORD_FILE: passwordFile };
  const run = (args: string[]): CliResult => dvfs(args, { env, cwd: dir });
  const init = run(['init', root, '--mode', 'encfs', '--kdf-iterations', '1000']);
  if (init.status !== 0) throw new Error(`dvfs init failed: ${init.stderr}`);
  // --json goes before the options (a submit's command follows `--`)
  const json = <T>(args: string[]): T => {
    const r = run([...args.slice(0, 3), '--json', ...args.slice(3)]);
    if (r.status !== 0) throw new Error(`dvfs ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.out) as T;
  };
  const repo: JobRepo = {
    dir,
    root,
    alwaysProfile,
    env,
    run,
    submit: (options, command) => {
      const s = json<Submitted>(['slurm', 'submit', root, ...options, '--', ...command]);
      submitted.push(s.jobId, s.finalizeJobId);
      return s;
    },
    status: () => json<{ jobs: StatusRow[] }>(['slurm', 'status', root]).jobs,
    log: () => {
      const r = run(['log', root, '--json']);
      if (r.status !== 0) throw new Error(`dvfs log failed: ${r.stderr}`);
      const v = JSON.parse(r.out) as LogEntry[] | { snapshots: LogEntry[] };
      return Array.isArray(v) ? v : v.snapshots;
    },
    settle: (jobIds, timeoutMs) => cluster.drain(jobIds, timeoutMs),
    explain(rows) {
      const slurm = join(root, '.dvfs', 'slurm');
      const text = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8').trim() : '(none)');
      const parts = rows.map((row) => {
        const runs = join(slurm, 'runs', row.entry);
        const records = existsSync(runs) ? readdirSync(runs).map((f) => `run record ${f}: ${text(join(runs, f))}`) : ['no run record'];
        return [
          `row: ${JSON.stringify(row)}`,
          ...records,
          `stage job output (slurm-${row.jobId}.out): ${text(join(dir, `slurm-${row.jobId}.out`))}`,
          `finalize job log: ${text(join(slurm, 'logs', `finish-${row.finalizeJobId}.out`))}`,
        ].join('\n');
      });
      return [...parts, `slurmctld:\n${cluster.logTail('slurmctld', 40)}`].join('\n\n');
    },
    async until(entry, pred, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const row = repo.status().find((r) => r.entry === entry);
        if (row !== undefined && pred(row)) return row;
        if (Date.now() > deadline) throw new Error(`entry ${entry} did not get there within ${timeoutMs} ms: ${JSON.stringify(row)}\n${cluster.logTail('slurmctld', 15)}`);
        await sleep(250);
      }
    },
  };
  return repo;
}
