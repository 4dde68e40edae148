/**
 * The dvfs variant: one repository (encfs mode, standard preset) per run; every stage is a SLURM job
 * submitted with `dvfs slurm submit --profile mount-profiles/iterative-sim.yaml --after <previous stage job>`,
 * all stages queued at once as a linear chain, each writing its payload through the job's dvfs mount and
 * committed by its finalize job; then one `dvfs push` to Swift.
 *
 * Times come from the jobs' own records: stage = the stage job's run record (mount, writer, unmount), write =
 * the writer's report in the job's output, commit = the `dvfs slurm finish` time the finalize job prints.
 *
 * check() is the self-check: every job completed with a snapshot, `dvfs verify --full` (every snapshot and
 * every object decrypts and hashes back), `dvfs verify --remote` (every blob of the pushed history is on Swift
 * and opens), and a clone of the remote restored and compared byte for byte with the regenerated payload.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SlurmCluster } from '../../test/helpers/slurm.js';
import type { SwiftServer } from '../../test/helpers/swift.js';
import { removeTree } from '../lib/peers.js';
import { run, type RunResult } from '../lib/proc.js';
import { PAYLOAD_JS } from './annex-pipeline.js';
import type { PodmanStageImage } from './podman-image.js';
import { checkStagePayload } from './payload-check.js';
import type { StageSpec } from './payload.js';
import { dvfsRemoteUrl, s3Env } from './services.js';
import { parseWriterReport, stageDir, writerArgs, type Pipeline, type StageTimes } from './variant.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'cli', 'dvfs.js');
export const PROFILE = join(ROOT, 'mount-profiles', 'iterative-sim.yaml');
const TIMEOUT_MS = 4 * 3600 * 1000;

export interface DvfsOptions {
  dir: string;
  slurm: SlurmCluster;
  swift: SwiftServer;
  bucket: string;
  passwordFile: string;
  /** With --engine podman: the image holding node and the writer, and podman's environment (podman-image.ts). */
  podman: PodmanStageImage | null;
  log: (line: string) => void;
}

interface Submitted {
  entry: string;
  jobId: string;
  finalizeJobId: string;
}

interface StatusRow {
  entry: string;
  stage: string;
  jobId: string | null;
  state: string;
  exitCode: number | null;
  snapshot: string | null;
}

export class DvfsPipeline implements Pipeline {
  readonly variant = 'dvfs';
  readonly repo: string;
  private readonly logs: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly url: string;
  private facts: Record<string, number | string | boolean> = {};

  constructor(private readonly o: DvfsOptions) {
    this.repo = join(o.dir, 'repo');
    this.logs = join(o.dir, 'job-logs');
    this.env = { ...s3Env(o.swift, o.slurm.env), ...(o.podman?.env ?? {}), DVFS_PASSWORD_FILE: o.passwordFile, DVFS_NO_PROGRESS: '1' };
    this.url = dvfsRemoteUrl(o.swift, o.bucket);
  }

  private dvfs(args: string[], timeoutMs = TIMEOUT_MS, okCodes = [0]): Promise<RunResult> {
    return run(process.execPath, [CLI, ...args], { env: this.env, timeoutMs, cwd: this.o.dir, okCodes });
  }

  /** `dvfs verify ARGS --json` (exit 1 means problems, which it lists); throws naming them. */
  private async verify(args: string[]): Promise<void> {
    const r = await this.dvfs(['verify', this.repo, ...args, '--json'], TIMEOUT_MS, [0, 1]);
    const problems = (JSON.parse(r.stdout) as { problems?: unknown[] }).problems ?? [];
    if (r.code !== 0 || problems.length > 0) throw new Error(`dvfs verify ${args.join(' ')}: ${JSON.stringify(problems).slice(0, 400)}`);
  }

  async prepare(): Promise<void> {
    mkdirSync(this.logs, { recursive: true });
    await this.dvfs(['init', this.repo, '--mode', 'encfs', '--preset', 'standard'], 120_000);
  }

  /** The stage's command as the job runs it: inside the mount (its working directory), or in the container. */
  private command(spec: StageSpec): string[] {
    const after = spec.stage > 1 ? stageDir(spec.stage - 1) : null;
    if (this.o.podman !== null) return ['/usr/local/bin/node', '/opt/iterative-sim/payload.js', ...writerArgs(spec, stageDir(spec.stage), after)];
    return [process.execPath, PAYLOAD_JS, ...writerArgs(spec, stageDir(spec.stage), after)];
  }

  private stageLog(stage: number): string {
    return join(this.logs, `stage-${stage}.out`);
  }

  async runStages(specs: StageSpec[]): Promise<StageTimes[]> {
    const t0 = performance.now();
    const jobs: Submitted[] = [];
    for (const spec of specs) {
      const prev = jobs.at(-1);
      const args = ['slurm', 'submit', this.repo, '--profile', PROFILE, '--stage', `sim-${spec.stage}`, '--output', stageDir(spec.stage), '--json'];
      if (prev !== undefined) args.push('--after', prev.jobId);
      if (this.o.podman !== null) args.push('--engine', 'podman', '--image', this.o.podman.image);
      args.push(`--sbatch-arg=--output=${this.stageLog(spec.stage)}`, '--', ...this.command(spec));
      const s = JSON.parse((await this.dvfs(args, 120_000)).stdout) as Submitted;
      jobs.push(s);
    }
    this.o.log(`dvfs: ${jobs.length} stages submitted (jobs ${jobs.map((j) => j.jobId).join(' ')}); waiting for the chain`);
    await this.o.slurm.drain(
      jobs.flatMap((j) => [j.jobId, j.finalizeJobId]),
      TIMEOUT_MS,
    );
    this.facts['pipelineWallSeconds'] = (performance.now() - t0) / 1000;
    const rows = (JSON.parse((await this.dvfs(['slurm', 'status', this.repo, '--json'])).stdout) as { jobs: StatusRow[] }).jobs;
    return specs.map((spec, i) => {
      const job = jobs[i] as Submitted;
      const row = rows.find((r) => r.entry === job.entry);
      if (row === undefined || row.state !== 'completed' || row.snapshot === null) {
        throw new Error(`dvfs stage ${spec.stage} (job ${job.jobId}) did not complete with a snapshot: ${JSON.stringify(row ?? 'no record')}; job output ${this.stageLog(spec.stage)}:\n${this.tail(this.stageLog(spec.stage))}`);
      }
      return { stage: this.stageSeconds(job.entry), write: parseWriterReport(readFileSync(this.stageLog(spec.stage), 'utf8'), `dvfs stage ${spec.stage}`).writeSeconds, commit: this.finishSeconds(job) };
    });
  }

  private tail(path: string): string {
    try {
      return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-15).join('\n');
    } catch (e) {
      return `(${(e as Error).message})`;
    }
  }

  /** The stage job's own record: start to end of mount, writer, unmount. */
  private stageSeconds(entry: string): number {
    const rec = JSON.parse(readFileSync(join(this.repo, '.dvfs', 'slurm', 'runs', entry, '0.json'), 'utf8')) as { startedAt: string; finishedAt: string | null };
    if (rec.finishedAt === null) throw new Error(`dvfs: the run record of ${entry} has no end`);
    return (Date.parse(rec.finishedAt) - Date.parse(rec.startedAt)) / 1000;
  }

  /**
   * What the finalize job's `dvfs slurm finish` took, as it prints it: "(W s; process P s, C s CPU)" — the
   * whole process from its start (P) when given, else the finish itself (W).
   */
  private finishSeconds(job: Submitted): number {
    const path = join(this.repo, '.dvfs', 'slurm', 'logs', `finish-${job.finalizeJobId}.out`);
    const text = readFileSync(path, 'utf8');
    const m = /finished: completed.*\((\d+(?:\.\d+)?) s(?:; process (\d+(?:\.\d+)?) s)?[;,)]/.exec(text);
    if (m === null) throw new Error(`dvfs: ${path} does not say the stage was finished as completed: ${text.trim().slice(-300)}`);
    return Number(m[2] ?? m[1]);
  }

  async push(): Promise<number> {
    const r = await this.dvfs(['push', this.repo, this.url, '--json']);
    const summary = JSON.parse(r.stdout) as Record<string, unknown>;
    for (const [k, v] of Object.entries(summary)) if (typeof v === 'number') this.facts[`push.${k}`] = v;
    return r.seconds;
  }

  /** The self-check; throws naming what failed. Returns the payload bytes compared. */
  async check(specs: StageSpec[]): Promise<number> {
    await this.verify(['--full']);
    await this.verify(['--remote', this.url]);
    const clone = join(this.o.dir, 'clone');
    const out = join(this.o.dir, 'restored');
    await this.dvfs(['clone', this.url, clone]);
    const history = JSON.parse((await this.dvfs(['log', clone, '--json'])).stdout) as { snapshots: unknown[] };
    if (history.snapshots.length !== specs.length) throw new Error(`the clone has ${history.snapshots.length} snapshots, expected one per stage (${specs.length})`);
    await this.dvfs(['restore', clone, 'HEAD', 'sim', '--to', out]);
    let bytes = 0;
    for (const spec of specs) bytes += await checkStagePayload(join(out, stageDir(spec.stage)), spec);
    await removeTree(clone);
    await removeTree(out);
    return bytes;
  }

  notes(): Record<string, number | string | boolean> {
    return { ...this.facts };
  }

  async dispose(): Promise<void> {
    await removeTree(this.o.dir, true).catch(() => undefined);
  }
}
