/**
 * SLURM benchmark: what `dvfs slurm submit` + its finalize job cost per job over a bare `sbatch` of the same
 * command, and whether 50 jobs submitted at once are all committed, on a real single-node cluster started
 * from test/fixtures/slurm/cluster.sh (as root; slurm-wlm, munge, FUSE).
 *
 *   node dist/bench/slurm.js [--jobs N] [--burst N] [--cpus N] [--kdf-iterations N] [--json] [--out FILE] [--md FILE] [--no-save]
 *   npm run bench:slurm -- [OPTIONS]      (builds the checkout first)
 *
 * Per job (--jobs, default 20, run one after the other, bare and dvfs alternating, same command `true`):
 *   bare   `sbatch --parsable --wrap true`, until squeue no longer lists the job
 *   dvfs   `dvfs slurm submit REPO -- true`, until squeue lists neither the stage nor the finalize job
 * and the pieces of dvfs's overhead that are its own work, not SLURM's scheduling:
 *   submit      wall time of the `dvfs slurm submit` process minus that of `sbatch` (it runs sbatch twice)
 *   in-job      the stage job's dvfs process from its start (Node start-up included) to its end: mount, the
 *               stage runner, unmount, as the job's own run record says — the command itself is `true`
 *   finalize    the finalize job's `dvfs slurm finish` process from its start (as it reports itself)
 * each also in CPU seconds (user + system, children included: sbatch for submit, the mount daemon for the
 * stage job), which a machine busy with other work inflates far less than wall time.
 * The end-to-end difference (dvfs minus bare) is dominated by SLURM scheduling the dependent finalize job
 * (slurmctld schedules on a 1 s tick here), so it is reported but the target (under 0.3 s per job, against
 * 0.5-1.5 s for the DataLad SLURM extension) applies to dvfs's own work: submit + in-job + finalize.
 * Burst (--burst, default 50): that many submits at once (4 submitters in parallel), then until every job is
 * finished: all committed (one snapshot each, a linear history) and the wall time to the last commit.
 *
 * The repositories unlock with a password whose PBKDF2 runs --kdf-iterations (default 1000, so that the
 * figures show dvfs's own work; `dvfs init`'s default, about a million, costs ~0.4 CPU s per unlock).
 *
 * Results go to bench/results/slurm-<YYYY-MM-DD>.{json,md} unless --no-save. The cluster and every file are
 * removed at the end (the cluster's watchdog also stops it if this process is killed).
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { loud, makeLog } from './lib/log.js';
import { hostInfo, median } from './lib/report.js';

const exec = promisify(execFile);
const log = makeLog('slurm');
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLUSTER_SCRIPT = join(ROOT, 'test', 'fixtures', 'slurm', 'cluster.sh');
const DVFS = join(ROOT, 'cli', 'dvfs.js');
const SBIN = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const { values: opts } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20' },
    burst: { type: 'string', default: '50' },
    cpus: { type: 'string', default: '8' },
    'kdf-iterations': { type: 'string', default: '1000' },
    json: { type: 'boolean', default: false },
    out: { type: 'string' },
    md: { type: 'string' },
    'no-save': { type: 'boolean', default: false },
  },
});

interface Env {
  dir: string;
  cluster: string;
  repo: string;
  env: NodeJS.ProcessEnv;
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, (performance.now() - t0) / 1000];
}

async function cmd(env: Env, file: string, args: string[]): Promise<string> {
  return (await exec(file, args, { env: env.env, cwd: env.dir, encoding: 'utf8', maxBuffer: 64 << 20 })).stdout;
}

async function dvfs(env: Env, args: string[]): Promise<string> {
  return cmd(env, process.execPath, [DVFS, ...args]);
}

async function queued(env: Env): Promise<Set<string>> {
  const out = await cmd(env, 'squeue', ['-h', '-o', '%A']);
  return new Set(out.split('\n').map((l) => l.trim()).filter(Boolean));
}

/** Polls squeue every 20 ms until none of `ids` is listed. */
async function gone(env: Env, ids: string[], timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const q = await queued(env);
    if (!ids.some((id) => q.has(id))) return;
    if (Date.now() > deadline) throw new Error(`jobs ${ids.join(' ')} still queued after ${timeoutMs / 1000} s`);
    await sleep(20);
  }
}

function startCluster(): Env {
  const dir = mkdtempSync(join(tmpdir(), 'dvfs-bench-slurm-'));
  chmodSync(dir, 0o755);
  const cluster = join(dir, 'cluster');
  const base: NodeJS.ProcessEnv = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:${SBIN}` };
  const r = spawnSync('bash', [CLUSTER_SCRIPT, 'start', cluster], {
    env: { ...base, DVFS_SLURM_CPUS: opts.cpus, DVFS_SLURM_OWNER_PID: String(process.pid), DVFS_SLURM_CTLD_PORT: '17917', DVFS_SLURM_SLURMD_PORT: '17918' },
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot start the SLURM cluster: ${r.stderr}`);
  }
  const password = join(dir, 'password');
  writeFileSync(password, 'bench password\n', { mode: 0o600 });
  const env = { ...base, SLURM_CONF: join(cluster, 'etc', 'slurm.conf'), DVFS_PASSWORD_FILE: password };
  return { dir, cluster, repo: join(dir, 'repo'), env };
}

function stopCluster(env: Env): void {
  spawnSync('bash', [CLUSTER_SCRIPT, 'stop', env.cluster], { env: env.env, stdio: 'ignore' });
  rmSync(env.dir, { recursive: true, force: true });
}

interface Sample {
  bare: number;
  sbatch: number;
  dvfs: number;
  submit: number;
  inJob: number;
  finalize: number;
  submitCpu: number;
  inJobCpu: number;
  finalizeCpu: number;
}

const USER_HZ = 100;

/** CPU seconds of this process's children that have ended (cutime + cstime of /proc/self/stat). */
function childrenCpu(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) / USER_HZ;
}

async function newRepo(env: Env, name: string): Promise<string> {
  const repo = join(env.dir, name);
  await dvfs(env, ['init', repo, '--mode', 'encfs', '--kdf-iterations', opts['kdf-iterations']]);
  return repo;
}

interface RunRecordLite {
  startedAt: string;
  finishedAt: string | null;
  cost?: { processStartedAt: string; cpuSeconds: number | null };
}

async function onePair(env: Env, repo: string): Promise<Sample> {
  const [bareId, bare] = await timed(async () => {
    const cpu0 = childrenCpu();
    const [out, sbatch] = await timed(() => cmd(env, 'sbatch', ['--parsable', '-o', '/dev/null', '--wrap', 'true']));
    const sbatchCpu = childrenCpu() - cpu0;
    const id = out.trim();
    await gone(env, [id]);
    return { id, sbatch, sbatchCpu };
  });
  const [sub, total] = await timed(async () => {
    const cpu0 = childrenCpu();
    const [out, submit] = await timed(() => dvfs(env, ['slurm', 'submit', repo, '--json', '--', 'true']));
    const submitCpu = childrenCpu() - cpu0;
    const s = JSON.parse(out) as { entry: string; jobId: string; finalizeJobId: string };
    await gone(env, [s.jobId, s.finalizeJobId]);
    return { ...s, submit, submitCpu };
  });
  const runDir = join(repo, '.dvfs', 'slurm', 'runs', sub.entry);
  const run = JSON.parse(readFileSync(join(runDir, '0.json'), 'utf8')) as RunRecordLite;
  const inJob = run.finishedAt === null || run.cost === undefined ? NaN : (Date.parse(run.finishedAt) - Date.parse(run.cost.processStartedAt)) / 1000;
  const finishOut = readFileSync(join(repo, '.dvfs', 'slurm', 'logs', `finish-${sub.finalizeJobId}.out`), 'utf8');
  const finishCost = /process (\d+\.\d+) s, (\d+\.\d+) s CPU/.exec(finishOut);
  if (!/finished: completed/.test(finishOut)) throw new Error(`job ${sub.jobId} did not complete: ${finishOut}`);
  return {
    bare,
    sbatch: bareId.sbatch,
    dvfs: total,
    submit: sub.submit - bareId.sbatch,
    inJob,
    finalize: Number(finishCost?.[1] ?? NaN),
    // the submit runs sbatch twice: what two bare sbatch calls cost is SLURM's, not dvfs's
    submitCpu: sub.submitCpu - 2 * bareId.sbatchCpu,
    inJobCpu: run.cost?.cpuSeconds ?? NaN,
    finalizeCpu: Number(finishCost?.[2] ?? NaN),
  };
}

interface BurstResult {
  jobs: number;
  submitSeconds: number;
  wallToLastCommit: number;
  completed: number;
  snapshots: number;
  linear: boolean;
  /** Jobs that did not complete: their status row and the finalize job's output. */
  problems: string[];
}

async function burst(env: Env, repo: string, n: number): Promise<BurstResult> {
  const t0 = performance.now();
  const ids: string[] = [];
  let next = 0;
  const submitter = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      const out = await dvfs(env, ['slurm', 'submit', repo, '--json', '--stage', `b${i}`, '--output', `b/${i}`, '--', 'sh', '-c', `mkdir -p b && echo ${i} > b/${i}`]);
      const s = JSON.parse(out) as { jobId: string; finalizeJobId: string };
      ids.push(s.jobId, s.finalizeJobId);
    }
  };
  await Promise.all([submitter(), submitter(), submitter(), submitter()]);
  const submitSeconds = (performance.now() - t0) / 1000;
  log(`burst: ${n} submitted in ${submitSeconds.toFixed(2)} s; waiting for the commits`);
  await gone(env, ids);
  const wallToLastCommit = (performance.now() - t0) / 1000;
  const status = JSON.parse(await dvfs(env, ['slurm', 'status', repo, '--json'])) as { jobs: { state: string; finalizeJobId: string | null }[] };
  const problems = status.jobs
    .filter((j) => j.state !== 'completed')
    .map((j) => {
      let out = '(no finalize output)';
      try {
        out = readFileSync(join(repo, '.dvfs', 'slurm', 'logs', `finish-${j.finalizeJobId ?? ''}.out`), 'utf8');
      } catch {
        // the finalize job never ran
      }
      return `${JSON.stringify(j)}\n${out}`;
    });
  const history = JSON.parse(await dvfs(env, ['log', repo, '--json'])) as { snapshots: { id: string; parents: string[] }[] };
  const snaps = history.snapshots;
  const linear = snaps.every((s, i) => (i === snaps.length - 1 ? s.parents.length === 0 : s.parents.length === 1 && s.parents[0] === snaps[i + 1]?.id));
  return { jobs: n, submitSeconds, wallToLastCommit, completed: status.jobs.filter((j) => j.state === 'completed').length, snapshots: snaps.length, linear, problems };
}

function fmt(x: number | null): string {
  return x === null || Number.isNaN(x) ? '-' : x.toFixed(3);
}

function markdown(report: { date: string; host: ReturnType<typeof hostInfo>; load: number[]; samples: Sample[]; medians: Record<keyof Sample | 'overhead' | 'ownWork' | 'ownCpu', number | null>; burst: BurstResult; targetMet: boolean }): string {
  const m = report.medians;
  return [
    `# SLURM benchmark (${report.date})`,
    '',
    `Host: ${report.host.hostname}, ${report.host.cpus} CPUs (${report.host.cpuModel}), kernel ${report.host.kernel}, node ${report.host.node}. Single-node slurm-wlm 22.05 cluster from test/fixtures/slurm/cluster.sh (${opts.cpus} CPUs declared, batch_sched_delay=0: slurmctld schedules on a 1 s tick). Password unlock: PBKDF2 with ${opts['kdf-iterations']} iterations. Load average (1 min) sampled before each job: ${Math.min(...report.load).toFixed(1)} to ${Math.max(...report.load).toFixed(1)} — wall times grow with it, CPU times hardly.`,
    '',
    `## Per job: median of ${report.samples.length} (seconds)`,
    '',
    '| measure | median |',
    '|---|---|',
    `| bare \`sbatch --wrap true\`, submit to gone from squeue | ${fmt(m.bare)} |`,
    `| \`dvfs slurm submit -- true\`, submit to stage and finalize gone (committed) | ${fmt(m.dvfs)} |`,
    `| end-to-end difference (mostly SLURM scheduling the dependent finalize job) | ${fmt(m.overhead)} |`,
    `| sbatch process | ${fmt(m.sbatch)} |`,
    `| dvfs submit process minus sbatch process | ${fmt(m.submit)} |`,
    `| in the stage job: the dvfs process from its start (Node start-up, mount, stage runner, unmount; command \`true\`) | ${fmt(m.inJob)} |`,
    `| finalize job: the \`dvfs slurm finish\` process from its start (commit, record) | ${fmt(m.finalize)} |`,
    `| **dvfs's own work per job** (submit + in-job + finalize) | **${fmt(m.ownWork)}** (target < 0.3: ${report.targetMet ? 'met' : 'NOT met'}) |`,
    '',
    `CPU seconds (user + system) of dvfs's processes per job, median: submit ${fmt(m.submitCpu)} (two sbatch calls taken out), stage job ${fmt(m.inJobCpu)} (dvfs process, mount daemon, the command), finalize ${fmt(m.finalizeCpu)}; **total ${fmt(m.ownCpu)}**.`,
    '',
    `## Burst: ${report.burst.jobs} jobs submitted at once (4 parallel submitters)`,
    '',
    `Submitted in ${report.burst.submitSeconds.toFixed(2)} s; last commit after ${report.burst.wallToLastCommit.toFixed(2)} s; ${report.burst.completed}/${report.burst.jobs} completed, ${report.burst.snapshots} snapshots, history ${report.burst.linear ? 'linear' : 'NOT linear'}.`,
    '',
    ...(report.burst.problems.length === 0 ? [] : ['Jobs that did not complete (status row, finalize output):', '', '```', ...report.burst.problems, '```', '']),
  ].join('\n');
}

async function main(): Promise<void> {
  const jobs = Number(opts.jobs);
  const n = Number(opts.burst);
  const env = startCluster();
  const stop = (): void => {
    stopCluster(env);
    process.exit(130);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    log(`cluster up (${opts.cpus} CPUs); warm-up job`);
    const warm = (await cmd(env, 'sbatch', ['--parsable', '-o', '/dev/null', '--wrap', 'true'])).trim();
    await gone(env, [warm]);
    const repo = await newRepo(env, 'repo');
    const samples: Sample[] = [];
    const load: number[] = [];
    for (let i = 0; i < jobs; i++) {
      load.push(loadavg()[0] ?? 0);
      const s = await onePair(env, repo);
      samples.push(s);
      log(`job ${i + 1}/${jobs}: bare ${s.bare.toFixed(2)} s, dvfs ${s.dvfs.toFixed(2)} s (submit +${s.submit.toFixed(3)}, in-job ${s.inJob.toFixed(3)}, finalize ${s.finalize.toFixed(3)}; CPU ${(s.submitCpu + s.inJobCpu + s.finalizeCpu).toFixed(2)} s)`);
    }
    const pick = (k: keyof Sample): number | null => median(samples.map((s) => s[k]));
    const ownWork = median(samples.map((s) => s.submit + s.inJob + s.finalize));
    const medians = {
      bare: pick('bare'),
      dvfs: pick('dvfs'),
      sbatch: pick('sbatch'),
      submit: pick('submit'),
      inJob: pick('inJob'),
      finalize: pick('finalize'),
      submitCpu: pick('submitCpu'),
      inJobCpu: pick('inJobCpu'),
      finalizeCpu: pick('finalizeCpu'),
      ownCpu: median(samples.map((s) => s.submitCpu + s.inJobCpu + s.finalizeCpu)),
      overhead: median(samples.map((s) => s.dvfs - s.bare)),
      ownWork,
    };
    log(`burst of ${n}`);
    const b = await burst(env, await newRepo(env, 'burst'), n);
    const date = new Date().toISOString().slice(0, 10);
    const report = { date, host: hostInfo(), load, samples, medians, burst: b, targetMet: ownWork !== null && ownWork < 0.3 };
    const md = markdown(report);
    if (!opts['no-save']) {
      const dir = join(ROOT, 'bench', 'results');
      mkdirSync(dir, { recursive: true });
      writeFileSync(opts.out ?? join(dir, `slurm-${date}.json`), JSON.stringify(report, null, 2) + '\n');
      writeFileSync(opts.md ?? join(dir, `slurm-${date}.md`), md);
    }
    process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : md);
    if (b.completed !== n || b.snapshots !== n || !b.linear) loud(`burst: ${b.completed}/${n} completed, ${b.snapshots} snapshots, linear ${b.linear}\n${b.problems.join('\n')}`);
  } finally {
    stopCluster(env);
  }
}

main().catch((e: unknown) => {
  loud(`slurm benchmark failed: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
