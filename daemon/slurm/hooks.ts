/**
 * Site hooks: `dvfs slurm prolog` / `dvfs slurm epilog`, installed by an admin as slurmd's Prolog/Epilog.
 * slurmd runs them as root with no PATH or HOME and only SLURM_* variables; a hook that exits non-zero
 * drains the node (and, for the prolog, requeues the job held). So these never fail: every problem is logged
 * (to the repository's `.dvfs/slurm/logs/hooks.log`, or stderr, which slurmd keeps in its log) and they exit 0.
 *
 * A job is ours when its comment is `dvfs:<entry>:<repo>` (set by submit). The epilog detaches the mounts
 * the job left on this node and, once every task of the entry has ended, finishes the entry (commit per
 * policy, state recorded) — the finalize job that runs afterwards then finds the work done. The prolog only
 * checks that the entry exists and says so in the log (the stage job mounts for itself).
 */
import { appendFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Versioning } from '../versioning/context.js';
import { detachLeftoverMounts, finishJobs } from './finish.js';
import { listRuns, logsDir, readEntry, type JobEntry } from './registry.js';
import { parseJobComment } from './sbatch.js';

export interface HookContext {
  env: NodeJS.ProcessEnv;
  /** Opens the store with the password or identity file the entry names. */
  openStore: (entry: JobEntry, repoRoot: string) => Promise<Versioning>;
}

export interface HookReport {
  ours: boolean;
  jobId: string | null;
  entry: string | null;
  actions: string[];
  error: string | null;
}

async function log(repoRoot: string | null, line: string): Promise<void> {
  const text = `${new Date().toISOString()} ${hostname()} ${line}\n`;
  if (repoRoot !== null) {
    try {
      await appendFile(join(logsDir(repoRoot), 'hooks.log'), text, { mode: 0o600 });
      return;
    } catch {
      // fall through to stderr
    }
  }
  process.stderr.write(`dvfs: ${text}`);
}

async function runHook(kind: 'prolog' | 'epilog', ctx: HookContext): Promise<HookReport> {
  const jobId = ctx.env['SLURM_JOB_ID'] ?? ctx.env['SLURM_JOBID'] ?? null;
  const ours = parseJobComment(ctx.env['SLURM_JOB_COMMENT']);
  const report: HookReport = { ours: ours !== null, jobId, entry: ours?.entry ?? null, actions: [], error: null };
  if (ours === null) return report;
  try {
    const entry = await readEntry(ours.repo, ours.entry);
    if (entry === null) {
      report.actions.push('no such entry (removed, or another cluster)');
    } else if (kind === 'prolog') {
      report.actions.push(`job ${jobId} of stage ${entry.stage} starts`);
    } else {
      const runs = await listRuns(ours.repo, ours.entry);
      const detached = await detachLeftoverMounts(ours.repo, runs, jobId ?? undefined);
      for (const id of detached) report.actions.push(`detached the mount of session ${id}`);
      const outcomes = await finishJobs(ours.repo, {
        entry: ours.entry,
        by: 'epilog',
        openStore: () => ctx.openStore(entry, ours.repo),
      });
      for (const o of outcomes) {
        if (o.status === 'pending') report.actions.push(`not finished: ${o.why}`);
        else report.actions.push(`${o.status === 'already' ? 'already finished' : 'finished'}: ${o.result.state}, snapshot ${o.result.snapshot ?? 'none'}`);
      }
    }
  } catch (e) {
    report.error = e instanceof Error ? e.message : String(e);
  }
  await log(ours.repo, `${kind} job ${jobId} entry ${ours.entry}: ${[...report.actions, ...(report.error ? [`ERROR ${report.error}`] : [])].join('; ') || 'nothing to do'}`).catch(() => undefined);
  return report;
}

export function runProlog(ctx: HookContext): Promise<HookReport> {
  return runHook('prolog', ctx);
}

export function runEpilog(ctx: HookContext): Promise<HookReport> {
  return runHook('epilog', ctx);
}
