/**
 * The stage job on the compute node (`dvfs slurm stage REPO --entry E`, written into the batch script by
 * submit): run the stage exactly as `dvfs run --defer-commit` does (daemon/stage/runner.ts: profile,
 * container, mount, stage record sealed next to the session, unmount, no commit) and record how it ended in
 * the task's run record — what finish trusts most, because SLURM forgets jobs and sacct needs slurmdbd.
 *
 * SIGTERM (scancel, time limit; SLURM sends it KillWait seconds before SIGKILL) and SIGINT are caught from
 * the start so the job never dies before its record is written; while the command runs, the stage runner
 * forwards them to it and then unmounts. The job exits with the command's status (128+N for signal N), so
 * SLURM's own state agrees with the record.
 */
import { constants, hostname } from 'node:os';
import { entryNotFound, readEntry, saveRun, type JobEntry, type RunRecord } from './registry.js';
import type { Credential } from '../keys/unlock.js';
import { processCost } from './process-cost.js';

export interface StageOutcome {
  run: RunRecord;
  /** The exit status for the batch job. */
  exitCode: number;
}

function signalNumber(name: string): number {
  return (constants.signals as Record<string, number | undefined>)[name] ?? 15;
}

/** The task this process is: the array task id, or '0' for a plain job. */
export function currentTask(env: NodeJS.ProcessEnv = process.env): { task: string; arrayTaskId: number | null } {
  const raw = env['SLURM_ARRAY_TASK_ID'];
  const n = Number(raw);
  if (raw !== undefined && raw !== '' && Number.isSafeInteger(n)) return { task: String(n), arrayTaskId: n };
  return { task: '0', arrayTaskId: null };
}

function runRequestOptions(entry: JobEntry): { profile?: string; engine?: JobEntry['engine'] & string; image?: string; inputs: string[]; outputs: string[]; glob?: string; message?: string } {
  return {
    inputs: entry.inputs,
    outputs: entry.requestOutputs ?? entry.outputs,
    ...(entry.profile === null ? {} : { profile: entry.profile }),
    ...(entry.engine === null ? {} : { engine: entry.engine }),
    ...(entry.image === null ? {} : { image: entry.image }),
    ...(entry.glob === null ? {} : { glob: entry.glob }),
    ...(entry.message === null ? {} : { message: entry.message }),
  };
}

export async function runSlurmStage(repoRoot: string, entryName: string, credential: Credential, note: (m: string) => void): Promise<StageOutcome> {
  const entry = await readEntry(repoRoot, entryName);
  if (entry === null) throw entryNotFound(repoRoot, entryName);
  const { task, arrayTaskId } = currentTask();
  const jobId = process.env['SLURM_JOB_ID'] ?? null;
  const run: RunRecord = {
    task,
    slurmJobId: jobId,
    arrayTaskId,
    host: hostname(),
    sessions: [],
    state: 'running',
    startedAt: new Date().toISOString(),
    finishedAt: null,
    exitCode: null,
    signal: null,
    error: null,
  };
  let stopSignal: NodeJS.Signals | null = null;
  const onSignal = (signal: NodeJS.Signals): void => {
    stopSignal ??= signal;
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await saveRun(repoRoot, entry.entry, run);
    note(`dvfs: stage ${entry.stage} (job ${jobId ?? '?'}, task ${task}) starts on ${run.host}`);
    const { runStage } = await import('../stage/runner.js');
    const results = await runStage({
      repo: repoRoot,
      command: entry.command,
      credential,
      deferCommit: true,
      force: false,
      stageStdout: 'inherit',
      note,
      ...runRequestOptions(entry),
    });
    run.sessions = results.flatMap((r) => (r.sessionId === null ? [] : [r.sessionId]));
    const failed = results.find((r) => r.status === 'failed');
    const killed = failed?.error ? /killed by (SIG[A-Z0-9]+)/.exec(failed.error)?.[1] : undefined;
    run.signal = stopSignal ?? killed ?? null;
    if (failed === undefined) run.exitCode = 0;
    else run.exitCode = failed.exitCode !== null && failed.exitCode > 0 ? failed.exitCode : killed !== undefined ? 128 + signalNumber(killed) : 1;
    if (failed?.error) run.error = failed.error;
  } catch (e) {
    run.error = e instanceof Error ? e.message : String(e);
    run.exitCode = stopSignal !== null ? 128 + signalNumber(stopSignal) : 1;
    run.signal = stopSignal;
  } finally {
    run.state = 'ended';
    run.finishedAt = new Date().toISOString();
    run.cost = processCost();
    await saveRun(repoRoot, entry.entry, run);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  return { run, exitCode: run.exitCode ?? 1 };
}
