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

/** The finalize job ids the given `--after` references stand for (a job id, or the newest entry of a stage). */
function resolveAfter(refs: readonly string[], entries: readonly JobEntry[]): string[] {
  return refs.map((ref) => {
    const byId = [...entries].reverse().find((e) => e.jobId === ref || e.finalizeJobId === ref);
    const byStage = [...entries].reverse().find((e) => e.stage === ref);
    const found = byId ?? byStage;
    if (found === undefined) {
      if (/^\d+$/.test(ref)) return ref; // a job outside dvfs: wait for it as it is
      throw new DvfsError('E_NOTFOUND', `--after ${ref}: no job or stage of that name in this repository`, { hint: 'see dvfs slurm status REPO' });
    }
    if (found.finalizeJobId === null) throw new DvfsError('E_BUSY', `--after ${ref}: that stage is still being submitted`, { hint: 'try again in a moment' });
    return found.finalizeJobId;
  });
}

export async function submitStage(req: SubmitRequest): Promise<Submitted> {
  if (req.command.length === 0) throw new DvfsError('E_USAGE', 'no stage command given', { hint: 'usage: dvfs slurm submit REPO [options] -- CMD [ARGS...]' });
  const profile = await profileOf(req);
  const outputs = [...new Set((req.outputs.length > 0 ? req.outputs : (profile?.layout.writes ?? [])).map(normaliseOutput))];
  const resources = profile === null ? req.resources : profileResources(profile.slurm, req.resources);
  const entry: JobEntry = {
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
  const overridden: string[] = [];
  await withRegistry(req.repo, 'submit', async () => {
    const entries = await listEntries(req.repo);
    const queue = outputs.length > 0 || req.after.length > 0 ? await queuedJobs() : [];
    const conflicts = outputs.length > 0 ? findConflicts(outputs, entries, queue) : [];
    for (const c of conflicts) {
      const what = `job ${c.jobId} (stage ${c.entry.stage}) owns ${c.paths.map(([, theirs]) => theirs || '/').join(', ')}`;
      if (!req.force) {
        throw new DvfsError('E_CONFLICT', `outputs of stage ${entry.stage} overlap a queued or running job: ${what}`, {
          path: req.repo,
          hint: `wait for job ${c.jobId}, cancel it (dvfs slurm cancel REPO ${c.jobId}), or submit with --force`,
        });
      }
      overridden.push(what);
    }
    entry.after = resolveAfter(req.after, entries);
    await saveEntry(req.repo, entry);
  });

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
  await updateEntry(req.repo, entry.entry, 'submit', (e) => ({ ...e, jobId, finalizeJobId }));
  return { entry: entry.entry, stage: entry.stage, jobId, finalizeJobId, overridden };
}

async function recordSubmitFailure(entry: JobEntry, why: string): Promise<void> {
  await updateEntry(entry.repo, entry.entry, 'submit failed', (e) => ({
    ...e,
    jobId: entry.jobId,
    result: { state: 'lost', exitCode: null, snapshot: null, keptSessions: [], discardedSessions: [], slurm: null, finishedAt: new Date().toISOString(), by: `submit: ${why}` },
  })).catch(() => undefined);
}
