/**
 * Conflicts between submissions: a stage owns the volume paths it writes (its outputs). Two stages of one
 * repository whose outputs overlap — one path equal to, or inside, the other — must not be queued or run at
 * the same time: one would commit over the other's results. A job counts as active while its stage job or
 * its finalize job is still in SLURM's queue, or while it has no recorded result and SLURM has not been asked
 * yet (a submission in progress).
 */
import { isQueued, type QueuedJob } from './client.js';
import type { JobEntry } from './registry.js';

/** An entry still without a job id this long after its submission was abandoned by a crashed submitter. */
const SUBMIT_GRACE_MS = 10 * 60_000;

/** Normalised volume path: no leading/trailing slash, no '.' components ('' is the whole volume). */
export function normaliseOutput(p: string): string {
  return p
    .split('/')
    .filter((c) => c !== '' && c !== '.')
    .join('/');
}

/** Whether two owned paths overlap (equal, or one contains the other). */
export function outputsOverlap(a: string, b: string): boolean {
  if (a === '' || b === '' || a === b) return true;
  return a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

export interface Conflict {
  entry: JobEntry;
  /** The job id to name: the stage job if queued, else its finalize job. */
  jobId: string;
  paths: [mine: string, theirs: string][];
}

/** Whether SLURM still has the entry's stage or finalize job (submitted but not yet finished). */
export function entryActive(entry: JobEntry, queue: readonly QueuedJob[]): boolean {
  if (entry.result !== null) return false;
  // being submitted right now, unless the submitter died before sbatch answered
  if (entry.jobId === null) return Date.now() - Date.parse(entry.submittedAt) < SUBMIT_GRACE_MS;
  return isQueued(queue, entry.jobId) || isQueued(queue, entry.finalizeJobId);
}

/** Active entries whose outputs overlap `outputs`. */
export function findConflicts(outputs: readonly string[], entries: readonly JobEntry[], queue: readonly QueuedJob[]): Conflict[] {
  const conflicts: Conflict[] = [];
  for (const entry of entries) {
    if (!entryActive(entry, queue)) continue;
    const paths: [string, string][] = [];
    for (const mine of outputs) for (const theirs of entry.outputs) if (outputsOverlap(mine, theirs)) paths.push([mine, theirs]);
    if (paths.length === 0) continue;
    const jobId = isQueued(queue, entry.jobId) ? entry.jobId : entry.finalizeJobId;
    conflicts.push({ entry, jobId: jobId ?? '(being submitted)', paths });
  }
  return conflicts;
}
