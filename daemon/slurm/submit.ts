/**
 * Submitting a stage: under the repository lock, refuse it when its outputs overlap those of a queued or
 * running job of the repository (unless forced), resolve what it runs after, and record the entry; then
 * sbatch the stage job and its finalize job (afterany) and record their ids. A finalize job that cannot be
 * submitted cancels the stage job again, so no stage ever runs without something to commit it.
 */
import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Profile, SlurmOptions } from '../profile/schema.js';
import { DvfsError } from '../errors.js';
import { cancelJobs, parseSbatchId, queuedJobs, slurmChecked } from './client.js';
import { findConflicts, normaliseOutput } from './conflicts.js';
import { listEntries, newEntryName, saveEntry, updateEntry, withRegistry, type JobEntry } from './registry.js';
import { finalizeJob, stageJob, type SlurmResources } from './sbatch.js';
import type { Credential } from '../keys/unlock.js';

export type SubmitRequest = Pick<JobEntry, 'repo' | 'command' | 'profile' | 'engine' | 'image' | 'inputs' | 'glob' | 'message' | 'passwordFile' | 'identityFile' | 'array'> & {
  /** Stage name (default: the profile's name, else the command's). */
  stage: string | null;
  /** Owned outputs (default: the profile's layout.writes). */
  outputs: string[];
  /** Job ids (stage or finalize) or stage names this stage runs after (afterok). */
  after: string[];
  /** Given on the command line; each field overrides the profile's `slurm:` section. */
  resources: SlurmResources;
  /** Submit even when the outputs overlap an active job's. */
  force: boolean;
};

/**
 * The profile the stage will run with, when it can say anything about the job: a named one, or the
 * repository's profile defaults. Without either, the shipped `local` profile applies on the node, which has
 * no slurm section and owns nothing, so it is not loaded here (that keeps submit fast).
 */
async function profileOf(req: SubmitRequest): Promise<Profile | null> {
  // REPO_PROFILES_DIR/DEFAULTS_FILE of daemon/profile/load.ts, named here so that yaml is not loaded for nothing
  if (req.profile === null && !existsSync(join(req.repo, '.dvfs', 'profiles', 'defaults.yaml'))) return null;
  const { loadProfile } = await import('../profile/load.js');
  return (await loadProfile(req.profile ?? undefined, { repoRoot: req.repo })).profile;
}

/** The profile's `slurm:` section, each field replaced by the command line's when given. */
export function profileResources(fromProfile: SlurmOptions, given: SlurmResources): SlurmResources {
  const r: SlurmResources = { extra: [...fromProfile.extraArgs, ...(given.extra ?? [])] };
  const partition = given.partition ?? fromProfile.partition ?? undefined;
  const nodes = given.nodes ?? (fromProfile.nodes === null ? undefined : String(fromProfile.nodes));
  const ntasks = given.ntasks ?? (fromProfile.ntasks === null ? undefined : String(fromProfile.ntasks));
  const time = given.time ?? fromProfile.time ?? undefined;
  if (partition !== undefined) r.partition = partition;
  if (nodes !== undefined) r.nodes = nodes;
  if (ntasks !== undefined) r.ntasks = ntasks;
  if (time !== undefined) r.time = time;
  return r;
}

export interface Submitted {
  entry: string;
  stage: string;
  jobId: string;
  finalizeJobId: string;
  /** Conflicts overridden by --force. */
  overridden: string[];
}

/**
 * The finalize job ids the given `--after` references stand for: a job id, or the newest entry of a stage —
 * every job of its fan-out when it was submitted with --glob.
 */
function resolveAfter(refs: readonly string[], entries: readonly JobEntry[]): string[] {
  return refs.flatMap((ref) => {
    const byId = [...entries].reverse().find((e) => e.jobId === ref || e.finalizeJobId === ref);
    const byStage = [...entries].reverse().find((e) => e.stage === ref);
    const one = byId ?? byStage;
    if (one === undefined) {
      if (/^\d+$/.test(ref)) return [ref]; // a job outside dvfs: wait for it as it is
      throw new DvfsError('E_NOTFOUND', `--after ${ref}: no job or stage of that name in this repository`, { hint: 'see dvfs slurm status REPO' });
    }
    const group = byId === undefined ? one.group : undefined;
    const found = group === undefined ? [one] : entries.filter((e) => e.group === group);
    return found.map((e) => {
      if (e.finalizeJobId === null) throw new DvfsError('E_BUSY', `--after ${ref}: that stage is still being submitted`, { hint: 'try again in a moment' });
      return e.finalizeJobId;
    });
  });
}

function newEntry(req: SubmitRequest, profile: Profile | null, outputs: string[]): JobEntry {
  return {
    entry: newEntryName(),
    repo: req.repo,
    stage: req.stage ?? profile?.name ?? basename(req.command[0] as string),
    command: req.command,
    outputs,
    profile: req.profile,
    engine: req.engine,
    image: req.image,
    inputs: req.inputs,
    glob: req.glob,
    message: req.message,
    passwordFile: req.passwordFile,
    identityFile: req.identityFile,
    array: req.array,
    after: [],
    jobId: null,
    finalizeJobId: null,
    submittedAt: new Date().toISOString(),
    submitHost: hostname(),
    cancelRequested: false,
    claim: null,
    result: null,
  };
}

/**
 * Under the repository lock: refuses entries whose outputs overlap an active job's (unless forced; the
 * entries of one fan-out do not conflict with each other), resolves --after and records the entries.
 * Returns the conflicts --force overrode.
 */
async function register(req: SubmitRequest, entries: JobEntry[]): Promise<string[]> {
  const overridden: string[] = [];
  await withRegistry(req.repo, 'submit', async () => {
    const existing = await listEntries(req.repo);
    const owning = entries.some((e) => e.outputs.length > 0);
    const queue = owning || req.after.length > 0 ? await queuedJobs() : [];
    const after = resolveAfter(req.after, existing);
    for (const entry of entries) {
      for (const c of entry.outputs.length > 0 ? findConflicts(entry.outputs, existing, queue) : []) {
        const what = `job ${c.jobId} (stage ${c.entry.stage}) owns ${c.paths.map(([, theirs]) => theirs || '/').join(', ')}`;
        if (!req.force) {
          const of = entry.input === undefined ? `stage ${entry.stage}` : `stage ${entry.stage} on ${entry.input}`;
          throw new DvfsError('E_CONFLICT', `outputs of ${of} overlap a queued or running job: ${what}`, {
            path: req.repo,
            hint: `wait for job ${c.jobId}, cancel it (dvfs slurm cancel REPO ${c.jobId}), or submit with --force`,
          });
        }
        overridden.push(what);
      }
      entry.after = after;
    }
    for (const entry of entries) await saveEntry(req.repo, entry);
  });
  return overridden;
}

/** sbatch the entry's stage job and its finalize job; records their ids. */
async function queue(entry: JobEntry, resources: SlurmResources): Promise<{ jobId: string; finalizeJobId: string }> {
  const stage = stageJob(entry, resources, entry.after);
  let jobId: string;
  try {
    jobId = parseSbatchId(await slurmChecked('sbatch', stage.args, stage.script));
  } catch (e) {
    await recordSubmitFailure(entry, 'the stage job could not be submitted');
    throw e;
  }
  const finalize = finalizeJob(entry, resources, jobId);
  let finalizeJobId: string;
  try {
    finalizeJobId = parseSbatchId(await slurmChecked('sbatch', finalize.args, finalize.script));
  } catch (e) {
    await cancelJobs([jobId]).catch(() => undefined);
    await recordSubmitFailure({ ...entry, jobId }, 'the finalize job could not be submitted (the stage job was cancelled)');
    throw e;
  }
  await updateEntry(entry.repo, entry.entry, 'submit', (e) => ({ ...e, jobId, finalizeJobId }));
  return { jobId, finalizeJobId };
}

function usageCheck(req: SubmitRequest): void {
  if (req.command.length === 0) throw new DvfsError('E_USAGE', 'no stage command given', { hint: 'usage: dvfs slurm submit REPO [options] -- CMD [ARGS...]' });
}

export async function submitStage(req: SubmitRequest): Promise<Submitted> {
  usageCheck(req);
  const profile = await profileOf(req);
  const outputs = [...new Set((req.outputs.length > 0 ? req.outputs : (profile?.layout.writes ?? [])).map(normaliseOutput))];
  const resources = profile === null ? req.resources : profileResources(profile.slurm, req.resources);
  const entry = newEntry(req, profile, outputs);
  const overridden = await register(req, [entry]);
  const ids = await queue(entry, resources);
  return { entry: entry.entry, stage: entry.stage, ...ids, overridden };
}

export interface FanoutSubmitted {
  /** One job per match without a committed result. */
  jobs: (Submitted & { input: string })[];
  /** Matches left out: the stage's committed result for them. */
  skipped: { input: string; snapshot: string }[];
  overridden: string[];
}

/**
 * `--glob`: one stage job (and finalize job) per match that has no committed result yet (see fanout.ts);
 * the credential opens the repository to match the pattern against HEAD.
 */
export async function submitFanout(req: SubmitRequest & { glob: string }, credential: Credential): Promise<FanoutSubmitted> {
  usageCheck(req);
  if (req.array !== null) throw new DvfsError('E_USAGE', '--glob and --array do not go together', { hint: '--glob already submits one job per match' });
  const { planFanout } = await import('./fanout.js');
  const plan = await planFanout(req, credential);
  const profile = await profileOf(req);
  const resources = profile === null ? req.resources : profileResources(profile.slurm, req.resources);
  const todo = plan.filter((m) => m.committed === null);
  const group = newEntryName();
  const entries = todo.map((m) => ({ ...newEntry({ ...req, glob: m.pattern }, profile, m.outputs), input: m.path, requestOutputs: req.outputs, group }));
  const overridden = entries.length > 0 ? await register(req, entries) : [];
  const jobs: FanoutSubmitted['jobs'] = [];
  for (const entry of entries) jobs.push({ entry: entry.entry, stage: entry.stage, input: entry.input, ...(await queue(entry, resources)), overridden: [] });
  return { jobs, skipped: plan.flatMap((m) => (m.committed === null ? [] : [{ input: m.path, snapshot: m.committed }])), overridden };
}

async function recordSubmitFailure(entry: JobEntry, why: string): Promise<void> {
  await updateEntry(entry.repo, entry.entry, 'submit failed', (e) => ({
    ...e,
    jobId: entry.jobId,
    result: { state: 'lost', exitCode: null, snapshot: null, keptSessions: [], discardedSessions: [], slurm: null, finishedAt: new Date().toISOString(), by: `submit: ${why}` },
  })).catch(() => undefined);
}
