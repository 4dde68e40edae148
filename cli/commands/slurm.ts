/**
 * `dvfs slurm submit|status|finish|cancel|prolog|epilog` — stages as SLURM jobs: the mount lives on the node
 * where the stage runs, and the commit happens when the job ends (finalize job or site epilog), with the
 * job's own record of how it ended. `dvfs slurm stage` is what the batch script runs on the node.
 */
import { resolve } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import type { FinishOutcome } from '../../daemon/slurm/finish.js';
import type { EngineName } from '../../daemon/profile/schema.js';
import type { JobEntry } from '../../daemon/slurm/registry.js';
import type { Versioning } from '../../daemon/versioning/context.js';
import { optionString, type OptionSpec } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { printJson } from '../format.js';
import { CODEC_OPTION, positional } from '../open.js';
import { PASSWORD_OPTION } from '../password.js';
import { IDENTITY_OPTION, identityPath, requireCredential, wipeCredential } from '../unlock.js';
import { RUN_OPTIONS } from './run.js';

const usage = [
  'dvfs slurm submit REPO [--stage NAME] [--output PATH]... [--after JOB|STAGE]... [--array SPEC] [--sbatch-arg ARG]... [--force] -- CMD [ARGS...]',
  '       dvfs slurm status REPO [JOB|STAGE] [--json]',
  '       dvfs slurm finish REPO [--entry E]',
  '       dvfs slurm cancel REPO [JOB|STAGE]',
  '       dvfs slurm prolog | epilog        (as slurmd Prolog/Epilog; never fail the node)',
].join('\n');

const OPTIONS: OptionSpec[] = [
  PASSWORD_OPTION,
  CODEC_OPTION,
  ...RUN_OPTIONS.filter((o) => o.name !== PASSWORD_OPTION.name && o.name !== CODEC_OPTION.name && o.name !== 'message'),
  { name: 'glob', type: 'string', value: 'PAT', description: 'one stage job per path of HEAD the pattern matches that has no committed result yet ({input} is the match)' },
  { name: 'stage', type: 'string', value: 'NAME', description: 'stage name (default: the profile, else the command name)' },
  { name: 'after', type: 'string', value: 'JOB|STAGE', repeatable: true, description: 'run after this job or stage has completed and been committed (afterok)' },
  { name: 'array', type: 'string', value: 'SPEC', description: 'array job (sbatch --array); one session per task, committed together' },
  { name: 'sbatch-arg', type: 'string', value: 'ARG', repeatable: true, description: 'extra sbatch argument for the stage job, e.g. --sbatch-arg=--mem=4G' },
  { name: 'partition', type: 'string', value: 'NAME', description: 'SLURM partition (profile slurm.partition)' },
  { name: 'nodes', type: 'string', value: 'N', description: 'nodes (profile slurm.nodes)' },
  { name: 'ntasks', type: 'string', value: 'N', description: 'tasks (profile slurm.ntasks)' },
  { name: 'time', type: 'string', value: 'LIMIT', description: 'time limit (profile slurm.time)' },
  { name: 'message', short: 'm', type: 'string', value: 'MSG', description: 'snapshot message (default: stage, job id and state)' },
  { name: 'force', type: 'boolean', description: 'submit even when the outputs overlap those of a queued or running job' },
  { name: 'entry', type: 'string', value: 'E', description: 'the registry entry (what the batch scripts pass)' },
  { name: 'stage-job', type: 'string', value: 'ID', description: 'finish: the entry\'s stage job id (what the finalize job passes, in case the submit has not recorded it yet)' },
];

type UnlockFiles = Pick<JobEntry, 'passwordFile' | 'identityFile'>;

/**
 * The file the jobs unlock with, as the command line gives it: --password-file (DVFS_PASSWORD_FILE) wins, else
 * --identity (DVFS_IDENTITY, default ~/.config/dvfs/identity when it exists); null when neither is given.
 */
async function unlockFilesOf(ctx: CommandContext): Promise<UnlockFiles | null> {
  const password = optionString(ctx.args, PASSWORD_OPTION.name);
  if (password !== undefined) return { passwordFile: resolve(password), identityFile: null };
  const identity = await identityPath(ctx.args);
  return identity === null ? null : { passwordFile: null, identityFile: resolve(identity) };
}

/** ctx's arguments with the unlock options replaced by `files` (what a job's entry names). */
function argsWith(ctx: CommandContext, files: UnlockFiles): CommandContext['args'] {
  const strings = new Map(ctx.args.strings);
  strings.delete(PASSWORD_OPTION.name);
  strings.delete(IDENTITY_OPTION.name);
  if (files.passwordFile !== null) strings.set(PASSWORD_OPTION.name, [files.passwordFile]);
  if (files.identityFile !== null) strings.set(IDENTITY_OPTION.name, [files.identityFile]);
  return { ...ctx.args, strings };
}

/** The store opened with the password or identity the command line gives, else the one `files` names. */
async function openStoreWith(ctx: CommandContext, files: UnlockFiles, repoRoot: string): Promise<Versioning> {
  const { openStore, versionedRepo } = await import('../versioning.js');
  return openStore({ ...ctx, args: argsWith(ctx, (await unlockFilesOf(ctx)) ?? files) }, await versionedRepo(repoRoot));
}

const NO_UNLOCK_HINT = 'use --password-file FILE (DVFS_PASSWORD_FILE) or --identity FILE (DVFS_IDENTITY); the jobs read the same file on the node';

function resourcesOf(ctx: CommandContext): import('../../daemon/slurm/sbatch.js').SlurmResources {
  const r: import('../../daemon/slurm/sbatch.js').SlurmResources = { extra: ctx.args.strings.get('sbatch-arg') ?? [] };
  for (const k of ['partition', 'nodes', 'ntasks', 'time'] as const) {
    const v = optionString(ctx.args, k);
    if (v !== undefined) r[k] = v;
  }
  return r;
}

async function submit(ctx: CommandContext, repoRoot: string): Promise<number> {
  const command = ctx.args.rest.length > 0 ? ctx.args.rest : ctx.args.positionals.slice(2);
  if (command.length === 0) throw new DvfsError('E_USAGE', 'no stage command given', { hint: 'put it after --: dvfs slurm submit REPO -- CMD [ARGS...]' });
  const files = await unlockFilesOf(ctx);
  if (files === null) throw new DvfsError('E_USAGE', 'no password given, and no identity', { hint: NO_UNLOCK_HINT });
  const credential = await requireCredential(argsWith(ctx, files), (m) => ctx.note(m)); // fail now, not on the node
  const glob = optionString(ctx.args, 'glob');
  if (glob === undefined) wipeCredential(credential);
  const { submitStage, submitFanout } = await import('../../daemon/slurm/submit.js');
  const req = {
    repo: repoRoot,
    stage: optionString(ctx.args, 'stage') ?? null,
    command,
    outputs: ctx.args.strings.get('output') ?? [],
    inputs: ctx.args.strings.get('input') ?? [],
    profile: optionString(ctx.args, 'profile') ?? null,
    engine: (optionString(ctx.args, 'engine') ?? null) as EngineName | null,
    image: optionString(ctx.args, 'image') ?? null,
    glob: glob ?? null,
    message: optionString(ctx.args, 'message') ?? null,
    ...files,
    array: optionString(ctx.args, 'array') ?? null,
    after: ctx.args.strings.get('after') ?? [],
    resources: resourcesOf(ctx),
    force: ctx.args.flags.has('force'),
  };
  if (glob !== undefined) {
    let f: Awaited<ReturnType<typeof submitFanout>>;
    try {
      f = await submitFanout({ ...req, glob }, credential);
    } finally {
      wipeCredential(credential);
    }
    for (const o of f.overridden) ctx.note(`dvfs: warning: --force: ${o}`);
    if (ctx.json) printJson(ctx.out, f);
    else {
      for (const j of f.jobs) ctx.out.write(`submitted stage ${j.stage} on ${j.input}: job ${j.jobId}, finalize job ${j.finalizeJobId} (entry ${j.entry})\n`);
      for (const k of f.skipped) ctx.out.write(`skipped ${k.input}: committed result in snapshot ${k.snapshot.slice(0, 12)}\n`);
      if (f.jobs.length === 0 && f.skipped.length === 0) ctx.out.write(`--glob '${glob}' matches nothing in HEAD: nothing submitted\n`);
    }
    return 0;
  }
  const s = await submitStage(req);
  for (const o of s.overridden) ctx.note(`dvfs: warning: --force: ${o}`);
  if (ctx.json) printJson(ctx.out, s);
  else ctx.out.write(`submitted stage ${s.stage}: job ${s.jobId}, finalize job ${s.finalizeJobId} (entry ${s.entry})\n`);
  return 0;
}

interface StatusRow {
  entry: string;
  stage: string;
  /** The path a --glob matched (one job of a fan-out), else null. */
  input: string | null;
  jobId: string | null;
  finalizeJobId: string | null;
  state: string;
  exitCode: number | null;
  snapshot: string | null;
  /** Sessions the profile's policy left uncommitted. */
  keptSessions: string[];
  slurm: { state: string; exitCode: string } | null;
  outputs: string[];
  submittedAt: string;
  finishedAt: string | null;
}

function selects(e: JobEntry, ref: string | undefined): boolean {
  return ref === undefined || e.jobId === ref || e.finalizeJobId === ref || e.stage === ref || e.entry === ref;
}

async function status(ctx: CommandContext, repoRoot: string): Promise<number> {
  const ref = ctx.args.positionals[2];
  const [{ listEntries, listRuns }, { queuedJobs }, { pendingReason }] = await Promise.all([
    import('../../daemon/slurm/registry.js'),
    import('../../daemon/slurm/client.js'),
    import('../../daemon/slurm/finish.js'),
  ]);
  const entries = (await listEntries(repoRoot)).filter((e) => selects(e, ref));
  if (ref !== undefined && entries.length === 0) throw new DvfsError('E_NOTFOUND', `no job or stage ${ref} in this repository`, { hint: 'dvfs slurm status REPO lists them all' });
  const queue = entries.some((e) => e.result === null) ? await queuedJobs() : [];
  const rows: StatusRow[] = [];
  for (const e of entries) {
    let state: string;
    let exitCode: number | null = null;
    if (e.result !== null) {
      state = e.result.state;
      exitCode = e.result.exitCode;
    } else {
      const runs = await listRuns(repoRoot, e.entry);
      const why = pendingReason(e, runs, queue);
      const queued = queue.find((q) => q.jobId === e.jobId);
      state = why === null ? 'ended (not yet finished)' : queued !== undefined ? queued.state.toLowerCase() : why;
      const codes = runs.flatMap((r) => (r.exitCode === null ? [] : [r.exitCode]));
      if (codes.length > 0) exitCode = Math.max(...codes);
    }
    rows.push({
      entry: e.entry,
      stage: e.stage,
      input: e.input ?? null,
      jobId: e.jobId,
      finalizeJobId: e.finalizeJobId,
      state,
      exitCode,
      snapshot: e.result?.snapshot ?? null,
      keptSessions: e.result?.keptSessions ?? [],
      slurm: e.result?.slurm ?? null,
      outputs: e.outputs,
      submittedAt: e.submittedAt,
      finishedAt: e.result?.finishedAt ?? null,
    });
  }
  if (ctx.json) {
    printJson(ctx.out, { jobs: rows });
    return 0;
  }
  if (rows.length === 0) ctx.out.write('no SLURM jobs recorded for this repository\n');
  for (const r of rows) {
    ctx.out.write(
      `${(r.jobId ?? '-').padEnd(8)} ${(r.input === null ? r.stage : `${r.stage} ${r.input}`).padEnd(16)} ${r.state.padEnd(12)} exit ${r.exitCode ?? '-'}  snapshot ${r.snapshot?.slice(0, 12) ?? '-'}  (finalize ${r.finalizeJobId ?? '-'}, entry ${r.entry})\n`,
    );
  }
  return 0;
}

function describeOutcome(o: FinishOutcome): string {
  const head = `${o.entry.jobId ?? '-'} ${o.entry.stage}`;
  if (o.status === 'pending') return `${head}: not finished (${o.why})`;
  const r = o.result;
  const kept = [
    r.keptSessions.length > 0 ? `, session(s) ${r.keptSessions.join(', ')} kept uncommitted` : '',
    r.discardedSessions.length > 0 ? `, session(s) ${r.discardedSessions.join(', ')} discarded` : '',
  ].join('');
  return `${head}: ${o.status === 'already' ? 'already finished' : 'finished'}: ${r.state}${r.exitCode === null ? '' : ` (exit ${r.exitCode})`}, snapshot ${r.snapshot?.slice(0, 12) ?? 'none'}${kept}`;
}

async function finish(ctx: CommandContext, repoRoot: string): Promise<number> {
  const only = optionString(ctx.args, 'entry');
  const started = performance.now();
  const { finishJobs } = await import('../../daemon/slurm/finish.js');
  const { readEntry, listEntries } = await import('../../daemon/slurm/registry.js');
  const stageJobId = optionString(ctx.args, 'stage-job');
  const outcomes = await finishJobs(repoRoot, {
    by: 'finish',
    ...(only === undefined ? {} : { entry: only }),
    ...(stageJobId === undefined ? {} : { stageJobId }),
    note: (m) => ctx.note(m),
    openStore: async () => {
      const entry = only !== undefined ? await readEntry(repoRoot, only) : (await listEntries(repoRoot)).at(-1);
      const files = (await unlockFilesOf(ctx)) ?? entry ?? null;
      if (files === null) throw new DvfsError('E_USAGE', 'no password given, and no identity', { hint: NO_UNLOCK_HINT });
      return openStoreWith(ctx, files, repoRoot);
    },
  });
  const seconds = (performance.now() - started) / 1000;
  const { processCost } = await import('../../daemon/slurm/process-cost.js');
  const cost = processCost();
  const costText = `${seconds.toFixed(2)} s; process ${cost.wallSeconds.toFixed(2)} s${cost.cpuSeconds === null ? '' : `, ${cost.cpuSeconds.toFixed(2)} s CPU`}`;
  if (ctx.json) printJson(ctx.out, { seconds, cost, jobs: outcomes.map((o) => ({ entry: o.entry.entry, stage: o.entry.stage, jobId: o.entry.jobId, status: o.status, ...(o.status === 'pending' ? { why: o.why } : { result: o.result }) })) });
  else if (outcomes.length === 0) ctx.out.write('nothing to finish: every recorded job is finished\n');
  else for (const o of outcomes) ctx.out.write(`${describeOutcome(o)} (${costText})\n`);
  // The finalize job's exit status drives its followers' afterok: success only for a completed stage.
  if (only !== undefined) return outcomes.every((o) => o.status !== 'pending' && o.result.state === 'completed') ? 0 : 1;
  return 0;
}

async function cancel(ctx: CommandContext, repoRoot: string): Promise<number> {
  const ref = ctx.args.positionals[2];
  const [{ listEntries, updateEntry }, { queuedJobs, isQueued, cancelJobs }] = await Promise.all([import('../../daemon/slurm/registry.js'), import('../../daemon/slurm/client.js')]);
  const queue = await queuedJobs();
  const targets = (await listEntries(repoRoot)).filter((e) => selects(e, ref) && e.result === null && isQueued(queue, e.jobId));
  if (ref !== undefined && targets.length === 0) throw new DvfsError('E_NOTFOUND', `no queued or running job or stage ${ref} in this repository`, { hint: 'see dvfs slurm status REPO' });
  for (const e of targets) await updateEntry(repoRoot, e.entry, 'cancel', (x) => ({ ...x, cancelRequested: true }));
  // Only the stage jobs: their finalize jobs (afterany) still run, record the state and commit per policy.
  await cancelJobs(targets.map((e) => e.jobId as string));
  const cancelled = targets.map((e) => ({ entry: e.entry, stage: e.stage, jobId: e.jobId, finalizeJobId: e.finalizeJobId }));
  if (ctx.json) printJson(ctx.out, { cancelled });
  else if (cancelled.length === 0) ctx.out.write('no queued or running jobs to cancel\n');
  else for (const c of cancelled) ctx.out.write(`cancelled job ${c.jobId} (stage ${c.stage}); its finalize job ${c.finalizeJobId} records the outcome\n`);
  return 0;
}

async function stage(ctx: CommandContext, repoRoot: string): Promise<number> {
  const entryName = optionString(ctx.args, 'entry');
  if (entryName === undefined) throw new DvfsError('E_USAGE', 'dvfs slurm stage needs --entry E (it is what the batch script of dvfs slurm submit runs)');
  // The mount daemon's start-up (Node, its modules) overlaps this process's loading of the stage runner.
  (await import('../../daemon/mount/launcher.js')).prespawnDaemon();
  const { readEntry, entryNotFound } = await import('../../daemon/slurm/registry.js');
  const entry = await readEntry(repoRoot, entryName);
  if (entry === null) throw entryNotFound(repoRoot, entryName);
  const credential = await requireCredential(argsWith(ctx, (await unlockFilesOf(ctx)) ?? entry), (m) => ctx.note(m));
  const { runSlurmStage } = await import('../../daemon/slurm/stage.js');
  let outcome: Awaited<ReturnType<typeof runSlurmStage>>;
  try {
    outcome = await runSlurmStage(repoRoot, entryName, credential, (m) => ctx.note(m));
  } finally {
    wipeCredential(credential);
  }
  if (outcome.run.error !== null) ctx.note(`dvfs: stage ${entry.stage}: ${outcome.run.error}`);
  if (ctx.json) printJson(ctx.out, outcome.run);
  return outcome.exitCode;
}

async function hook(ctx: CommandContext, kind: 'prolog' | 'epilog'): Promise<number> {
  try {
    const { runEpilog, runProlog } = await import('../../daemon/slurm/hooks.js');
    const report = await (kind === 'prolog' ? runProlog : runEpilog)({
      env: process.env,
      openStore: (entry, repoRoot) => openStoreWith({ ...ctx, note: () => undefined }, entry, repoRoot),
    });
    if (ctx.json) printJson(ctx.out, report);
  } catch (e) {
    // Never fail the node: slurmd drains it on a non-zero exit.
    process.stderr.write(`dvfs slurm ${kind}: ${e instanceof Error ? e.message : String(e)}\n`);
  }
  return 0;
}

export const slurmCommand: Command = {
  name: 'slurm',
  summary: 'run stages as SLURM jobs: submit, status, finish, cancel, prolog/epilog hooks',
  usage,
  details: [
    'submit: queues the stage job (on the node: mount REPO, run CMD inside the mount, unmount, record the exit',
    '  status) and a finalize job (afterany) that commits per policy and records the final state; returns',
    '  at once with both job ids. --after chains stages (afterok on the other stage\'s finalize job; a failed',
    '  stage cancels its followers). The password or identity file must be readable on the nodes.',
    'status: per job: stage, state, exit code, committed snapshot. finish: commits every ended job not yet',
    '  committed (idempotent; what the finalize job runs). cancel: scancel the stage jobs (their finalize',
    '  jobs still record the outcome). prolog/epilog: for slurm.conf Prolog=/Epilog= (see README); the epilog',
    '  unmounts and commits the job\'s sessions and always exits 0.',
  ].join('\n'),
  options: OPTIONS,
  async run(ctx) {
    const sub = positional(ctx, 0, 'subcommand (submit, status, finish, cancel, prolog, epilog)', usage);
    if (sub === 'prolog' || sub === 'epilog') return hook(ctx, sub);
    const actions: Record<string, (ctx: CommandContext, repoRoot: string) => Promise<number>> = { submit, status, finish, cancel, stage };
    const action = Object.hasOwn(actions, sub) ? actions[sub] : undefined;
    if (action === undefined) throw new DvfsError('E_USAGE', `unknown subcommand '${sub}'`, { hint: `usage: ${usage}` });
    // .dvfs/repo.json read directly (no session machinery loaded: submit and status stay quick); anything
    // else goes through versionedRepo, which says what the path is instead
    const path = positional(ctx, 1, 'REPO', usage);
    const { readDvfsRepository } = await import('../../daemon/repo/layout.js');
    const repo = (await readDvfsRepository(path)) ?? (await (await import('../versioning.js')).versionedRepo(path));
    return action(ctx, repo.root);
  },
};
