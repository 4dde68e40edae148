/**
 * Finishing jobs (`dvfs slurm finish`, the finalize job, the epilog): for every entry whose stage has ended,
 * detach mounts its job left behind on this host, decide the final state from the job's own run records
 * (SLURM's `scontrol show job` as a cross-check and for jobs that never recorded anything), commit its
 * sessions per the failure policy — all array tasks together, one snapshot — and record the result.
 *
 * Idempotent and safe to run concurrently: an entry is claimed under the repository lock before anything
 * is committed (a claim of a dead process is taken over), and an entry with a result is never touched again.
 * Commits of different entries serialize on the repository lock inside the commit itself.
 */
import { readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { hostname } from 'node:os';
import { listSessions } from '../journal/sessions.js';
import { stopDaemon } from '../mount/launcher.js';
import { processAlive } from '../mount/mountinfo.js';
import { findRecord } from '../mount/records.js';
import { META_DIR } from '../repo/layout.js';
import { removeStageDir } from '../stage/mountpoint.js';
import type { Provenance } from '../store/manifest-schema.js';
import type { Versioning } from '../versioning/context.js';
import { controlJobs, queuedJobs, type ControlJob, type QueuedJob } from './client.js';
import { listEntries, listRuns, readEntry, updateEntry, type FinalState, type JobEntry, type JobResult, type RunRecord } from './registry.js';

/** Commit lock wait: a long commit of another job may hold the repository. */
const COMMIT_LOCK_WAIT_MS = 30 * 60_000;

export interface FinishOptions {
  /** Only this entry (the finalize job and the epilog name theirs). */
  entry?: string;
  /**
   * The entry's stage job id, as the finalize job knows it from its script: on a busy machine the stage job
   * can end and its finalize job start before the submit has recorded the ids in the entry.
   */
  stageJobId?: string;
  /** Who finishes: 'finish' or 'epilog' (recorded in the result). */
  by: string;
  /** Opens the repository's store (with the password) when there is something to commit. */
  openStore: () => Promise<Versioning>;
  note?: (message: string) => void;
}

export type FinishOutcome =
  | { entry: JobEntry; status: 'finished'; result: JobResult }
  | { entry: JobEntry; status: 'already'; result: JobResult }
  | { entry: JobEntry; status: 'pending'; why: string };

/** How many tasks an `--array` spec makes ("0-3" → 4, "1,5,7-9%2" → 5), null when it cannot tell. */
export function arrayTaskCount(spec: string): number | null {
  let n = 0;
  for (const part of spec.replace(/%\d+$/, '').split(',')) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part.trim());
    if (m === null) return null;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    const step = m[3] === undefined ? 1 : Number(m[3]);
    if (to < from || step < 1) return null;
    n += Math.floor((to - from) / step) + 1;
  }
  return n;
}

/** Whether every task of the entry has recorded its end (then SLURM's queue has nothing to add). */
export function allTasksEnded(entry: JobEntry, runs: readonly RunRecord[]): boolean {
  const expected = entry.array === null ? 1 : arrayTaskCount(entry.array);
  return expected !== null && runs.filter((r) => r.state === 'ended').length >= expected;
}

/** Why the entry's stage has not ended yet, or null when finish may handle it. */
export function pendingReason(entry: JobEntry, runs: readonly RunRecord[], queue: readonly QueuedJob[]): string | null {
  if (entry.jobId === null) return 'still being submitted';
  if (allTasksEnded(entry, runs)) return null;
  // Still queued or running (COMPLETING is the epilog of an ended job: not pending).
  const live = queue.filter((q) => (q.jobId === entry.jobId || q.id.startsWith(`${entry.jobId}_`)) && q.state !== 'COMPLETING');
  if (live.length > 0) return `job ${entry.jobId} is ${live[0]?.state.toLowerCase()}`;
  return null;
}

const SLURM_STATES: Record<string, FinalState> = {
  COMPLETED: 'completed',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
  TIMEOUT: 'timeout',
  NODE_FAIL: 'node_fail',
  OUT_OF_MEMORY: 'failed',
  BOOT_FAIL: 'node_fail',
  DEADLINE: 'timeout',
  PREEMPTED: 'cancelled',
};

/** The state of one task: its own record first, SLURM for what the record cannot know. */
function taskState(run: RunRecord | undefined, slurm: ControlJob | undefined, cancelRequested: boolean): FinalState {
  const slurmState = slurm === undefined ? undefined : SLURM_STATES[slurm.state];
  if (run === undefined || run.state !== 'ended') {
    // Never started, or killed before it could record its end (SIGKILL, node failure).
    if (slurmState !== undefined && slurmState !== 'completed') return slurmState;
    return cancelRequested ? 'cancelled' : 'lost';
  }
  if (run.exitCode === 0 && run.error === null) return 'completed';
  if (run.signal !== null) {
    // Stopped by a signal: SLURM knows why (time limit, node failure, scancel); a plain failure otherwise.
    if (slurmState === 'timeout' || slurmState === 'node_fail') return slurmState;
    if (cancelRequested || slurmState === 'cancelled') return 'cancelled';
  }
  return 'failed';
}

const SEVERITY: FinalState[] = ['completed', 'failed', 'timeout', 'cancelled', 'node_fail', 'lost'];

export function overallState(states: readonly FinalState[]): FinalState {
  if (states.length === 0) return 'lost';
  return states.reduce((worst, s) => (SEVERITY.indexOf(s) > SEVERITY.indexOf(worst) ? s : worst), 'completed');
}

function matchSlurm(jobs: readonly ControlJob[], run: RunRecord | undefined, task: string, isArray: boolean): ControlJob | undefined {
  if (run?.slurmJobId) {
    const byId = jobs.find((j) => j.jobId === run.slurmJobId);
    if (byId) return byId;
  }
  return isArray ? jobs.find((j) => j.arrayTaskId === task) : jobs[0];
}

/** SLURM_JOB_ID in a process's environment (a mount daemon started inside a job inherits it), or null. */
function jobOfProcess(pid: number): string | null {
  try {
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    return env.find((kv) => kv.startsWith('SLURM_JOB_ID='))?.slice('SLURM_JOB_ID='.length) ?? null;
  } catch {
    return null;
  }
}

/**
 * Unmounts what the entry's jobs left mounted on this host (a stage killed before it could unmount: SIGKILL
 * after KillWait, an OOM kill). Mount daemons are recognised by the SLURM_JOB_ID they inherited from the job.
 * Returns the sessions of the mounts it detached (now ended, ready to commit).
 */
export async function detachLeftoverMounts(repoRoot: string, runs: readonly RunRecord[], onlyJob?: string): Promise<string[]> {
  const jobs = new Set(runs.filter((r) => r.state !== 'ended' && r.host === hostname() && r.slurmJobId !== null).map((r) => r.slurmJobId as string));
  if (onlyJob !== undefined) for (const j of [...jobs]) if (j !== onlyJob) jobs.delete(j);
  if (jobs.size === 0) return [];
  const detached: string[] = [];
  for (const s of await listSessions(repoRoot)) {
    if (s.info.state !== 'open' || s.liveness !== 'alive') continue;
    const job = jobOfProcess(s.info.pid);
    if (job === null || !jobs.has(job)) continue;
    const record = findRecord(s.info.mountpoint);
    if (record === null || !processAlive(record.pid)) continue;
    await stopDaemon(record, { force: true });
    await releaseStageMountpoint(repoRoot, s.info.mountpoint);
    detached.push(s.id);
  }
  return detached;
}

/**
 * Removes a stage's guarded mountpoint (`REPO/.dvfs/run/stages/<run>/mnt`, immutable while unmounted; see
 * daemon/stage/mountpoint.ts) that its killed stage process could not release, once nothing is mounted there.
 */
async function releaseStageMountpoint(repoRoot: string, mountpoint: string): Promise<void> {
  const stages = join(repoRoot, META_DIR, 'run', 'stages'); // runDirFor(repo) of a dvfs repository, + stages/
  if (dirname(dirname(mountpoint)) !== stages || basename(mountpoint) !== 'mnt') return;
  await removeStageDir(dirname(mountpoint));
}

async function claim(repoRoot: string, entryName: string, stageJobId: string | null): Promise<JobEntry | null> {
  let mine = false;
  const entry = await updateEntry(repoRoot, entryName, 'finish', (e) => {
    if (e.result !== null) return null;
    if (e.claim !== null && e.claim.host === hostname() && e.claim.pid !== process.pid && processAlive(e.claim.pid)) return null;
    if (e.claim !== null && e.claim.host !== hostname()) return null; // cannot tell if it is alive: leave it
    mine = true;
    return { ...e, jobId: e.jobId ?? stageJobId, claim: { pid: process.pid, host: hostname(), at: new Date().toISOString() } };
  });
  return mine ? entry : null;
}

function provenanceOf(entry: JobEntry, runs: readonly RunRecord[], exitCode: number | null): Provenance {
  const p: Provenance = { command: entry.command };
  if (entry.jobId !== null) p.jobId = entry.jobId;
  if (exitCode !== null) p.exitStatus = exitCode;
  if (entry.profile !== null) p.profile = entry.profile;
  const hosts = [...new Set(runs.map((r) => r.host))];
  if (hosts.length > 0) p.host = hosts.join(',');
  const starts = runs.map((r) => r.startedAt).sort();
  const ends = runs.flatMap((r) => (r.finishedAt === null ? [] : [r.finishedAt])).sort();
  if (starts[0] !== undefined) p.startedAt = starts[0];
  const last = ends.at(-1);
  if (last !== undefined) p.finishedAt = last;
  const only = runs.length === 1 ? runs[0] : undefined;
  if (entry.array !== null && only?.arrayTaskId !== null && only?.arrayTaskId !== undefined) p.arrayIndex = only.arrayTaskId;
  return p;
}

interface Committed {
  snapshot: string | null;
  keptSessions: string[];
  discardedSessions: string[];
}

/**
 * Commits the sessions: those with a sealed stage record per their profile's policy (as `dvfs commit`
 * would), those without one (a stage killed before it sealed its record) as one snapshot with the job's
 * provenance, so nothing a job wrote is lost.
 */
async function commitSessions(repoRoot: string, entry: JobEntry, runs: RunRecord[], state: FinalState, exitCode: number | null, ids: Set<string>, options: FinishOptions): Promise<Committed> {
  const done: Committed = { snapshot: null, keptSessions: [], discardedSessions: [] };
  const listings = (await listSessions(repoRoot)).filter((s) => ids.has(s.id) && (s.info.state === 'finished' || s.orphaned));
  if (listings.length === 0) return done;
  const [{ hasStageRecord }, { commitStageSessions }, { commitEndedSessions }] = await Promise.all([
    import('../stage/record.js'),
    import('../stage/deferred.js'),
    import('../versioning/session-commit.js'),
  ]);
  const v = await options.openStore();
  try {
    const bare = listings.filter((l) => !hasStageRecord(l.dir));
    if (bare.length > 0) {
      const message = entry.message ?? `${entry.stage}: SLURM job ${entry.jobId ?? '?'} ${state}${exitCode !== null && exitCode !== 0 ? ` (exit ${exitCode})` : ''}`;
      const report = await commitEndedSessions(v, bare, { message, provenance: provenanceOf(entry, runs, exitCode), lockWaitMs: COMMIT_LOCK_WAIT_MS });
      if (!report.nothingToCommit) done.snapshot = report.snapshot;
    }
    const staged = listings.filter((l) => hasStageRecord(l.dir));
    const note = options.note ?? (() => undefined);
    for (const o of staged.length > 0 ? await commitStageSessions(v, staged, { note, together: entry.array !== null }) : []) {
      if (o.decision === 'committed') done.snapshot = o.snapshot;
      else if (o.decision === 'kept') done.keptSessions.push(o.sessionId);
      else done.discardedSessions.push(o.sessionId);
    }
  } finally {
    v.close();
  }
  return done;
}

async function finishOne(repoRoot: string, claimed: JobEntry, runs: RunRecord[], options: FinishOptions): Promise<JobResult> {
  const detached = await detachLeftoverMounts(repoRoot, runs);
  if (detached.length > 0) options.note?.(`dvfs: detached ${detached.length} mount(s) left by job ${claimed.jobId}`);
  const slurmJobs = claimed.jobId === null ? [] : await controlJobs(claimed.jobId).catch(() => []);
  const isArray = claimed.array !== null;
  const tasks = new Set(runs.map((r) => r.task));
  if (isArray) for (const j of slurmJobs) if (j.arrayTaskId !== null && /^\d+$/.test(j.arrayTaskId)) tasks.add(j.arrayTaskId);
  if (tasks.size === 0) tasks.add('0');
  const states = [...tasks].map((task) => {
    const run = runs.find((r) => r.task === task);
    return taskState(run, matchSlurm(slurmJobs, run, task, isArray), claimed.cancelRequested);
  });
  const state = overallState(states);
  const codes = runs.flatMap((r) => (r.exitCode === null ? [] : [r.exitCode]));
  const exitCode = codes.length === 0 ? null : Math.max(...codes);
  const ids = new Set([...runs.flatMap((r) => r.sessions), ...detached]);
  const committed = await commitSessions(repoRoot, claimed, runs, state, exitCode, ids, options);
  const first = slurmJobs[0];
  return {
    state,
    exitCode,
    ...committed,
    slurm: first === undefined ? null : { state: isArray ? [...new Set(slurmJobs.map((j) => j.state))].join(',') : first.state, exitCode: first.exitCode },
    finishedAt: new Date().toISOString(),
    by: options.by,
  };
}

/** Finishes every ended, unfinished entry (or the one named); reports each entry it looked at. */
export async function finishJobs(repoRoot: string, options: FinishOptions): Promise<FinishOutcome[]> {
  const entries = options.entry === undefined ? await listEntries(repoRoot) : [await readEntry(repoRoot, options.entry)].filter((e): e is JobEntry => e !== null);
  if (options.entry !== undefined && entries.length === 0) {
    const { entryNotFound } = await import('./registry.js');
    throw entryNotFound(repoRoot, options.entry);
  }
  // SLURM's queue, asked once and only when a job's own records cannot tell that it has ended
  let queue: QueuedJob[] | null = null;
  const outcomes: FinishOutcome[] = [];
  for (const recorded of entries) {
    const entry = recorded.jobId === null && options.stageJobId !== undefined && recorded.entry === options.entry ? { ...recorded, jobId: options.stageJobId } : recorded;
    if (entry.result !== null) {
      if (options.entry !== undefined) outcomes.push({ entry, status: 'already', result: entry.result });
      continue;
    }
    const runs = await listRuns(repoRoot, entry.entry);
    const why = pendingReason(entry, runs, allTasksEnded(entry, runs) ? [] : (queue ??= await queuedJobs()));
    if (why !== null) {
      outcomes.push({ entry, status: 'pending', why });
      continue;
    }
    const claimed = await claim(repoRoot, entry.entry, entry.jobId);
    if (claimed === null) {
      const now = await readEntry(repoRoot, entry.entry);
      if (now?.result) outcomes.push({ entry: now, status: 'already', result: now.result });
      else outcomes.push({ entry, status: 'pending', why: `being finished by ${now?.claim?.pid ?? '?'}@${now?.claim?.host ?? '?'}` });
      continue;
    }
    let result: JobResult;
    try {
      result = await finishOne(repoRoot, claimed, runs, options);
    } catch (e) {
      await updateEntry(repoRoot, entry.entry, 'finish failed', (x) => ({ ...x, claim: null })).catch(() => undefined);
      throw e;
    }
    const saved = await updateEntry(repoRoot, entry.entry, 'finish', (x) => ({ ...x, claim: null, result }));
    outcomes.push({ entry: saved, status: 'finished', result });
  }
  return outcomes;
}
