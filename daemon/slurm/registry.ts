/**
 * The SLURM job registry of a repository, `REPO/.dvfs/slurm/`:
 *
 *   jobs/<entry>.json          one submission: stage, command, owned outputs, job ids, policy, and once
 *                              finished its result (state, exit code, snapshot). Written by submit, finish,
 *                              the epilog and cancel, always under the repository lock (read, change, write
 *                              atomically), so concurrent finishers of one repository never lose an update.
 *   runs/<entry>/<task>.json   what the job itself recorded on the node (one file per array task, written
 *                              only by that task, atomically): sessions, start, end, exit status.
 *                              This is the authority on how the stage ended; SLURM is only a cross-check
 *                              (its records are purged after MinJobAge and sacct needs slurmdbd).
 *   logs/                      output of the finalize jobs, and hooks.log (prolog/epilog lines)
 *
 * Entry names are local and unique (time + random), never the SLURM job id alone: job ids restart when a
 * cluster's state is reset, and a stale file keyed by a reused id would be picked up by the wrong job.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
import { META_DIR } from '../repo/layout.js';
import { writeFileAtomic } from '../store/durable.js';
import { withRepoLock } from '../store/lock.js';
import type { EngineName } from '../profile/schema.js';
import type { ProcessCost } from './process-cost.js';

export const SLURM_DIR = 'slurm';
/** How long registry writers wait for the repository lock (a commit of another job may hold it). */
const LOCK_WAIT_MS = 10 * 60_000;

/** How a stage ended: ours from the job's own record, SLURM's names where only SLURM knows. */
export type FinalState = 'completed' | 'failed' | 'cancelled' | 'timeout' | 'node_fail' | 'lost';

export interface JobResult {
  state: FinalState;
  /** The stage command's exit status (128+N for signal N), null when it never ran. */
  exitCode: number | null;
  /** The snapshot holding the stage's changes; null when it changed nothing or was not committed. */
  snapshot: string | null;
  /** Sessions the profile's policy left uncommitted (commit: on-success/never, on_failure: keep). */
  keptSessions: string[];
  /** Sessions the profile's policy discarded (on_failure: discard). */
  discardedSessions: string[];
  /** What SLURM said, when it still knew the job (`scontrol show job`). */
  slurm: { state: string; exitCode: string } | null;
  finishedAt: string;
  /** Who recorded it: `finish` (a finalize job or by hand) or `epilog`. */
  by: string;
}

export interface JobEntry {
  entry: string;
  repo: string;
  stage: string;
  command: string[];
  /** Volume paths the stage owns (writes); submits overlapping a queued or running job are refused. */
  outputs: string[];
  /** What `dvfs run` gets on the node: --profile, --engine, --image, --input, --glob, -m (null: not given). */
  profile: string | null;
  engine: EngineName | null;
  image: string | null;
  inputs: string[];
  glob: string | null;
  message: string | null;
  /**
   * How the jobs unlock the repository on the nodes: a password file, or (a collaborator's jobs, no password
   * anywhere) an identity file. Exactly one is set; both are paths, never secrets.
   */
  passwordFile: string | null;
  identityFile: string | null;
  /** `--array` as given (e.g. "0-3"), null for a single job. */
  array: string | null;
  /** The path a `--glob` matched, when this entry is one job of a fan-out (`glob` then matches it alone). */
  input?: string;
  /** A fan-out job's `--output` as given (placeholders unexpanded: what its stage runs with); `outputs` are its match's. */
  requestOutputs?: string[];
  /** The fan-out this entry belongs to (entries submitted together by one `--glob`): `--after STAGE` waits for all. */
  group?: string;
  /** Job ids this one waits for (afterok on their finalize jobs). */
  after: string[];
  jobId: string | null;
  finalizeJobId: string | null;
  submittedAt: string;
  submitHost: string;
  cancelRequested: boolean;
  /** A finisher working on it (pid@host), so two finishers never commit one session twice. */
  claim: { pid: number; host: string; at: string } | null;
  result: JobResult | null;
}

export type RunState = 'running' | 'ended';

export interface RunRecord {
  task: string;
  slurmJobId: string | null;
  arrayTaskId: number | null;
  host: string;
  /** The sessions the stage left (one per --glob match), each with its sealed stage record. */
  sessions: string[];
  state: RunState;
  startedAt: string;
  finishedAt: string | null;
  exitCode: number | null;
  /** Signal that ended the stage command, or that made the job stop it (SIGTERM from scancel). */
  signal: string | null;
  error: string | null;
  /** What the stage job's dvfs process (with the mount daemon and the command) cost, from its start. */
  cost?: ProcessCost;
}

export function slurmDir(repoRoot: string): string {
  return join(repoRoot, META_DIR, SLURM_DIR);
}

function entryFile(repoRoot: string, entry: string): string {
  return join(slurmDir(repoRoot), 'jobs', `${entry}.json`);
}

function runDir(repoRoot: string, entry: string): string {
  return join(slurmDir(repoRoot), 'runs', entry);
}

export function logsDir(repoRoot: string): string {
  return join(slurmDir(repoRoot), 'logs');
}

export function newEntryName(now = new Date()): string {
  return `${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(4).toString('hex')}`;
}

/** `.dvfs/slurm/{jobs,runs,logs}` (mode 0700: entries name paths and password files). */
export async function ensureRegistry(repoRoot: string): Promise<void> {
  for (const sub of ['jobs', 'runs', 'logs']) await mkdir(join(slurmDir(repoRoot), sub), { recursive: true, mode: 0o700 });
}

async function readJson<T>(path: string, what: string): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return null;
    throw e;
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new DvfsError('E_CONFIG', `corrupt ${what}: ${(e as Error).message}`, { path, hint: 'it is written atomically, so this is outside damage; remove the file to forget the job' });
  }
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, Buffer.from(JSON.stringify(value, null, 2) + '\n'));
}

export async function readEntry(repoRoot: string, entry: string): Promise<JobEntry | null> {
  return readJson<JobEntry>(entryFile(repoRoot, entry), 'job entry');
}

/** Every entry, oldest first. */
export async function listEntries(repoRoot: string): Promise<JobEntry[]> {
  let names: string[];
  try {
    names = await readdir(join(slurmDir(repoRoot), 'jobs'));
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return [];
    throw e;
  }
  const entries: JobEntry[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const e = await readEntry(repoRoot, name.slice(0, -'.json'.length));
    if (e !== null) entries.push(e);
  }
  return entries;
}

/** Runs `fn` under the repository lock with the registry's current entries (for read-check-write). */
export async function withRegistry<T>(repoRoot: string, purpose: string, fn: () => Promise<T>): Promise<T> {
  await ensureRegistry(repoRoot);
  return withRepoLock(repoRoot, { purpose: `slurm: ${purpose}`, waitMs: LOCK_WAIT_MS }, fn);
}

/** Writes a new or changed entry; call inside {@link withRegistry}. */
export async function saveEntry(repoRoot: string, entry: JobEntry): Promise<void> {
  await writeJson(entryFile(repoRoot, entry.entry), entry);
}

/** Re-reads an entry under the lock, applies `change`, and writes it back; returns the new entry. */
export async function updateEntry(repoRoot: string, entry: string, purpose: string, change: (e: JobEntry) => JobEntry | null): Promise<JobEntry> {
  return withRegistry(repoRoot, purpose, async () => {
    const current = await readEntry(repoRoot, entry);
    if (current === null) throw entryNotFound(repoRoot, entry);
    const next = change(current);
    if (next === null) return current;
    await saveEntry(repoRoot, next);
    return next;
  });
}

export function entryNotFound(repoRoot: string, entry: string): DvfsError {
  return new DvfsError('E_NOTFOUND', `no SLURM job entry ${entry} in this repository`, { path: entryFile(repoRoot, entry), hint: 'list them with: dvfs slurm status REPO' });
}

/** The job's own record of one task (written only by that task). */
export async function saveRun(repoRoot: string, entry: string, run: RunRecord): Promise<void> {
  await mkdir(runDir(repoRoot, entry), { recursive: true, mode: 0o700 });
  await writeJson(join(runDir(repoRoot, entry), `${run.task}.json`), run);
}

export async function listRuns(repoRoot: string, entry: string): Promise<RunRecord[]> {
  let names: string[];
  try {
    names = await readdir(runDir(repoRoot, entry));
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return [];
    throw e;
  }
  const runs: RunRecord[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const r = await readJson<RunRecord>(join(runDir(repoRoot, entry), name), 'job run record');
    if (r !== null) runs.push(r);
  }
  return runs;
}

/** The entry a SLURM job id (stage or finalize, or an array task's) belongs to, newest first. */
export function entryOfJob(entries: readonly JobEntry[], jobId: string): JobEntry | undefined {
  return [...entries].reverse().find((e) => e.jobId === jobId || e.finalizeJobId === jobId);
}
