/**
 * The stage job on the compute node (`dvfs slurm stage REPO --entry E`, written into the batch script by
 * submit): mount the repository, run the stage command inside the mount, unmount, and record how it ended
 * in the task's run record — what finish trusts most, because SLURM forgets jobs and sacct needs slurmdbd.
 *
 * SIGTERM (scancel, time limit; SLURM sends it KillWait seconds before SIGKILL) and SIGINT are handled from
 * the start: the command gets the signal, and once it is gone the mount is unmounted (forcibly: a killed
 * command may leave files open) and the record says which signal stopped it. The job exits with the
 * command's status (128+N for a signal), so SLURM's own state agrees with the record.
 *
 * Until `dvfs run --defer-commit` exists (issue 7) this runs the stage itself, with no container.
 */
import { spawn } from 'node:child_process';
import { mkdir, rmdir } from 'node:fs/promises';
import { constants, hostname } from 'node:os';
import { join } from 'node:path';
import { DvfsError } from '../errors.js';
import { launchDaemon, stopDaemon } from '../mount/launcher.js';
import type { MountRecord } from '../mount/records.js';
import { entryNotFound, readEntry, saveRun, type RunRecord } from './registry.js';

export interface StageOutcome {
  run: RunRecord;
  /** The exit status for the batch job. */
  exitCode: number;
}

function signalNumber(name: NodeJS.Signals): number {
  return constants.signals[name] ?? 15;
}

/** The task this process is: the array task id, or '0' for a plain job. */
export function currentTask(env: NodeJS.ProcessEnv = process.env): { task: string; arrayTaskId: number | null } {
  const raw = env['SLURM_ARRAY_TASK_ID'];
  const n = Number(raw);
  if (raw !== undefined && raw !== '' && Number.isSafeInteger(n)) return { task: String(n), arrayTaskId: n };
  return { task: '0', arrayTaskId: null };
}

export async function runStage(repoRoot: string, entryName: string, password: Buffer, note: (m: string) => void): Promise<StageOutcome> {
  const entry = await readEntry(repoRoot, entryName);
  if (entry === null) throw entryNotFound(repoRoot, entryName);
  const { task, arrayTaskId } = currentTask();
  const jobId = process.env['SLURM_JOB_ID'] ?? null;
  const mountpoint = join(entry.mountRoot, `dvfs-${entry.entry}-${task}`);
  const run: RunRecord = {
    task,
    slurmJobId: jobId,
    arrayTaskId,
    host: hostname(),
    session: null,
    mountpoint,
    state: 'running',
    startedAt: new Date().toISOString(),
    finishedAt: null,
    exitCode: null,
    signal: null,
    error: null,
  };

  // Signals first (a scancel during the mount must still end in a record and an unmount).
  let stopSignal: NodeJS.Signals | null = null;
  let child: ReturnType<typeof spawn> | null = null;
  const onSignal = (signal: NodeJS.Signals): void => {
    stopSignal ??= signal;
    child?.kill(signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  let record: MountRecord | null = null;
  try {
    await mkdir(mountpoint, { recursive: true, mode: 0o700 });
    record = await launchDaemon({ repo: repoRoot, mountpoint, readOnly: false, allowOther: false }, password);
    run.session = record.session;
    await saveRun(repoRoot, entry.entry, run);
    if (stopSignal === null) {
      note(`dvfs: stage ${entry.stage} (job ${jobId ?? '?'}, task ${task}) runs in ${mountpoint}`);
      const [cmd, ...args] = entry.command as [string, ...string[]];
      const env = { ...process.env, DVFS_MOUNT: mountpoint, DVFS_STAGE: entry.stage };
      const spawned = spawn(cmd, args, { cwd: mountpoint, env, stdio: ['ignore', 'inherit', 'inherit'] });
      child = spawned;
      const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
        spawned.once('error', (e) => {
          run.error = `cannot run ${cmd}: ${e.message}`;
          resolve({ code: 127, signal: null });
        });
        spawned.once('exit', (code, signal) => resolve({ code, signal }));
      });
      run.exitCode = ended.signal !== null ? 128 + signalNumber(ended.signal) : (ended.code ?? 1);
      run.signal = stopSignal ?? ended.signal;
    } else {
      run.exitCode = 128 + signalNumber(stopSignal);
      run.signal = stopSignal;
    }
  } catch (e) {
    run.error = e instanceof Error ? e.message : String(e);
    run.exitCode ??= e instanceof DvfsError && e.code === 'E_PASSWORD' ? 2 : 1;
    if (stopSignal !== null) run.signal = stopSignal;
  } finally {
    child = null;
    if (record !== null) {
      try {
        await stopDaemon(record, { force: true });
      } catch (e) {
        run.error = [run.error, `unmount: ${e instanceof Error ? e.message : String(e)}`].filter(Boolean).join('; ');
      }
      await rmdir(mountpoint).catch(() => undefined);
    }
    run.state = 'ended';
    run.finishedAt = new Date().toISOString();
    await saveRun(repoRoot, entry.entry, run);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
  return { run, exitCode: run.exitCode ?? 1 };
}
