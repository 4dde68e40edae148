/**
 * Talking to SLURM through its client commands (sbatch, squeue, scontrol, scancel), as every site has them;
 * no REST daemon or accounting database is assumed. Parsers for their output are pure functions.
 */
import { execFile } from 'node:child_process';
import { DvfsError, isNodeError } from '../errors.js';

export interface ClientResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs a SLURM client; a missing command or unreachable controller becomes a DvfsError naming the fix. */
export function slurmClient(cmd: string, args: readonly string[], input?: string): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 }, (error, stdout, stderr) => {
      if (error && isNodeError(error) && error.code === 'ENOENT') {
        reject(new DvfsError('E_NOTFOUND', `SLURM command '${cmd}' not found`, { hint: 'run this on a SLURM login or compute node (Debian package slurm-wlm), with the SLURM commands on PATH' }));
        return;
      }
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ stdout, stderr, code });
    });
    // A client that does not read stdin (squeue) may exit before the write: that EPIPE is no error.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** Like {@link slurmClient} but a non-zero exit is an error quoting SLURM's message. */
export async function slurmChecked(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await slurmClient(cmd, args, input);
  if (r.code !== 0) {
    const why = r.stderr.trim().split('\n').pop() ?? '';
    const hint = /Could not establish a configuration source|fetch_config/.test(r.stderr)
      ? 'set SLURM_CONF to the cluster\'s slurm.conf'
      : `see '${cmd} --help'`;
    throw new DvfsError('E_IO', `${cmd} failed (exit ${r.code}): ${why}`, { hint });
  }
  return r.stdout;
}

/** A job id from `sbatch --parsable` output ("123" or "123;cluster"). */
export function parseSbatchId(stdout: string): string {
  const id = stdout.trim().split('\n').pop()?.split(';')[0]?.trim() ?? '';
  if (!/^\d+$/.test(id)) throw new DvfsError('E_IO', `sbatch printed no job id: ${JSON.stringify(stdout.slice(0, 200))}`);
  return id;
}

export interface QueuedJob {
  /** `%i`: "123", "123_4" (array task), "123_[5-9]" (pending array tasks). */
  id: string;
  /** `%A`: the job id (array master id for array tasks). */
  jobId: string;
  /** `%T`: PENDING, RUNNING, COMPLETING, ... */
  state: string;
}

/** `squeue -h -o '%i|%A|%T'` lines. */
export function parseSqueue(stdout: string): QueuedJob[] {
  const jobs: QueuedJob[] = [];
  for (const line of stdout.split('\n')) {
    const [id, jobId, state] = line.trim().split('|');
    if (id && jobId && state) jobs.push({ id, jobId, state });
  }
  return jobs;
}

/** Jobs SLURM still has queued, running or completing (every user's unless `user` is given). */
export async function queuedJobs(): Promise<QueuedJob[]> {
  return parseSqueue(await slurmChecked('squeue', ['-h', '-o', '%i|%A|%T', '-t', 'PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED,REQUEUED,RESIZING']));
}

/** Whether any of `ids` (job or array ids) is among the queued jobs. */
export function isQueued(queue: readonly QueuedJob[], id: string | null): boolean {
  if (id === null) return false;
  return queue.some((q) => q.jobId === id || q.id === id || q.id.startsWith(`${id}_`));
}

export interface ControlJob {
  jobId: string;
  arrayJobId: string | null;
  arrayTaskId: string | null;
  state: string;
  /** "code:signal", e.g. "3:0", "0:15". */
  exitCode: string;
  reason: string;
}

/** Fields of one `scontrol show job -o` line (key=value, values without spaces except the last ones). */
export function parseScontrolLine(line: string): ControlJob | null {
  const field = (k: string): string | null => new RegExp(`(?:^|\\s)${k}=(\\S*)`).exec(line)?.[1] ?? null;
  const jobId = field('JobId');
  const state = field('JobState');
  if (jobId === null || state === null) return null;
  const arrayJobId = field('ArrayJobId');
  const arrayTaskId = field('ArrayTaskId');
  return { jobId, arrayJobId, arrayTaskId, state, exitCode: field('ExitCode') ?? '', reason: field('Reason') ?? '' };
}

/** What slurmctld still remembers of a job (one line per array task), [] once it is purged. */
export async function controlJobs(id: string): Promise<ControlJob[]> {
  const r = await slurmClient('scontrol', ['show', 'job', '-o', id]);
  if (r.code !== 0) return []; // "Invalid job id specified": purged after MinJobAge, or never known
  return r.stdout.split('\n').map(parseScontrolLine).filter((j): j is ControlJob => j !== null);
}

export async function cancelJobs(ids: readonly string[]): Promise<void> {
  if (ids.length > 0) await slurmChecked('scancel', ids);
}
