/**
 * `dvfs run`: one stage (or one per --glob match) from profile to snapshot.
 *
 * For each run: expand the profile's placeholders, compute the stage identity (identity.ts) and, unless
 * forced, reuse a committed run with the same identity whose outputs HEAD still holds (a new snapshot
 * records the reuse). Otherwise mount the repository on a guarded mountpoint (mountpoint.ts), start the
 * command in the engine (engines.ts) only once the mount answers, watch the daemon (if it dies the stage is
 * stopped and recorded as failed), retry per the failure policy, unmount, seal the stage record next to the
 * session (record.ts), and — unless the commit is deferred — apply the commit policy (deferred.ts).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { DvfsError } from '../errors.js';
import { listSessions, newSessionId, sessionDir } from '../journal/sessions.js';
import { cleanStale, launchDaemon, stopDaemon } from '../mount/launcher.js';
import { isMounted, processAlive } from '../mount/mountinfo.js';
import { runDirFor, type MountRecord } from '../mount/records.js';
import { loadProfile } from '../profile/load.js';
import { expandPlaceholders, type PlaceholderValues } from '../profile/placeholders.js';
import type { EngineName, Profile } from '../profile/schema.js';
import type { Credential } from '../keys/unlock.js';
import { keysOfTree, wipeTreeKeys } from '../keys/tree-keys.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import { quietLog } from '../quiet-log.js';
import { openTree } from '../repo/open-tree.js';
import { locateRepository, type Repository } from '../repo/repository.js';
import type { ObjectId } from '../store/content-hash.js';
import type { Provenance, StageProvenance } from '../store/manifest-schema.js';
import { readHead } from '../store/refs.js';
import { openVersioning, requireVersionedRepo, type Versioning } from '../versioning/context.js';
import type { StageDecision } from './deferred.js';
import { ENGINE_PROGRAMS, engineInvocation, type EngineInvocation } from './engines.js';
import { committedStages, inputIds, outputsPresent, provenanceInputs, stageIdentity, workingFileIds, type CommittedStage } from './identity.js';
import { imageDigest } from './image-digest.js';
import { guardedMountpoint, removeAbandonedStageDirs } from './mountpoint.js';
import { saveStageRecord } from './record.js';
import { slurmProvenance } from './slurm-env.js';

export interface RunRequest {
  repo: string;
  /** Profile name or file (default: the shipped `local`). */
  profile?: string;
  engine?: EngineName;
  image?: string;
  /** Replace the profile's layout.reads / layout.writes. */
  inputs?: string[];
  outputs?: string[];
  glob?: string;
  force?: boolean;
  deferCommit?: boolean;
  command: string[];
  message?: string;
  /** Unlocks the repository: a password or an identity (the caller keeps and wipes it). */
  credential: Credential;
  codec?: 'auto' | 'native' | 'typescript';
  /** Where the stage's stdout goes: this process's stdout, or its stderr (keeps --json output clean). */
  stageStdout: 'inherit' | 'stderr';
  note(message: string): void;
}

export interface StageResult {
  status: 'ran' | 'reused' | 'failed';
  exitCode: number | null;
  /** The snapshot holding this run (null: deferred, not committed, or a deferred reuse). */
  snapshot: string | null;
  identity: string;
  image: string | null;
  imageDigest: string | null;
  sessionId: string | null;
  engine: EngineName;
  profile: string;
  /** The path a --glob matched (null without --glob). */
  input: string | null;
  inputs: string[];
  outputs: string[];
  attempts: number;
  /** What became of the run's changes: committed, kept (uncommitted), discarded, deferred, or reused. */
  decision: StageDecision | 'deferred' | 'reused';
  /** The profile's push policy after the commit: pushed, or why not (null: no push). */
  push: { remote: string; ok: boolean; error?: string } | null;
  reusedFrom: string | null;
  startedAt: string;
  finishedAt: string;
  error: string | null;
}

interface Context {
  req: RunRequest;
  repo: Repository;
  /** The unlocked tree: the mount daemon gets its keys and does not unlock again. */
  tree: CryptoTree;
  v: Versioning;
  profile: Profile;
  profileDigest: string;
  imageDigest: string | null;
  /** Whether sessions held uncommitted changes when the run began (inputs then come from the working tree). */
  uncommitted: boolean;
  /** Committed runs by identity (read from history once, kept up to date by this process's commits). */
  committed: Map<ObjectId, CommittedStage> | null;
}

function overridesOf(req: RunRequest): { [k: string]: unknown } {
  const container: { [k: string]: unknown } = {};
  if (req.engine !== undefined) container['engine'] = req.engine;
  if (req.image !== undefined) container['image'] = req.image;
  const layout: { [k: string]: unknown } = {};
  if (req.inputs !== undefined && req.inputs.length > 0) layout['reads'] = req.inputs;
  if (req.outputs !== undefined && req.outputs.length > 0) layout['writes'] = req.outputs;
  return { container, layout };
}

function repoPath(p: string): string {
  return p.split('/').filter((c) => c !== '' && c !== '.').join('/');
}

interface ProcessOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  daemonDied: boolean;
  spawnError: string | null;
}

/** Stops a container by name (docker/podman keep running when their client is killed). */
function stopContainer(ctx: Context, name: string): void {
  const engine = ctx.profile.container.engine;
  if (engine !== 'docker' && engine !== 'podman') return;
  spawnSync(ENGINE_PROGRAMS[engine], [...ctx.profile.container.engineArgs, 'kill', name], { stdio: 'ignore', timeout: 30_000 });
}

/** Runs the engine process; stops it if the mount daemon dies meanwhile. */
function runProcess(ctx: Context, inv: EngineInvocation, daemonPid: number, name: string): Promise<ProcessOutcome> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    let daemonDied = false;
    try {
      child = spawn(inv.file, inv.args, {
        cwd: inv.cwd ?? process.cwd(),
        env: { ...process.env, ...inv.env },
        stdio: ['inherit', ctx.req.stageStdout === 'stderr' ? process.stderr : 'inherit', 'inherit'],
        detached: true,
      });
    } catch (e) {
      resolve({ code: null, signal: null, daemonDied, spawnError: e instanceof Error ? e.message : String(e) });
      return;
    }
    const killGroup = (signal: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    };
    const forward = (signal: NodeJS.Signals): void => {
      stopContainer(ctx, name);
      killGroup(signal);
    };
    const onInt = (): void => forward('SIGINT');
    const onTerm = (): void => forward('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    const watch = setInterval(() => {
      if (daemonDied || processAlive(daemonPid)) return;
      daemonDied = true;
      ctx.req.note('dvfs: the mount daemon died mid-stage; stopping the stage (its writes fail, nothing reaches the disk in the clear)');
      stopContainer(ctx, name);
      killGroup('SIGKILL');
    }, 100);
    let spawnError: string | null = null;
    child.on('error', (e) => {
      spawnError = (e as NodeJS.ErrnoException).code === 'ENOENT' ? `${inv.file}: command not found` : e.message;
    });
    child.on('close', (code, signal) => {
      clearInterval(watch);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve({ code, signal, daemonDied, spawnError });
    });
  });
}

async function reuse(ctx: Context, base: Provenance, stage: StageProvenance, found: ObjectId, result: StageResult): Promise<StageResult> {
  const now = new Date().toISOString();
  const done: StageResult = { ...result, status: 'reused', exitCode: 0, decision: 'reused', reusedFrom: found, finishedAt: now, attempts: 0 };
  if (ctx.req.deferCommit) return done;
  const { commitUnchanged } = await import('../versioning/commit.js');
  const report = await commitUnchanged(ctx.v, {
    message: ctx.req.message ?? `reuse of stage ${ctx.profile.name} (${found.slice(0, 12)})`,
    provenance: { ...base, exitStatus: 0, startedAt: result.startedAt, finishedAt: now, reusedFrom: found, stage: { ...stage, status: 'reused', attempts: 0 } },
  });
  return { ...done, snapshot: report.snapshot };
}

async function runOne(ctx: Context, match: string | null): Promise<StageResult> {
  const { req, profile, v } = ctx;
  const runId = newSessionId();
  const values: PlaceholderValues = { stage: profile.name, run: runId, job_id: process.env['SLURM_JOB_ID'] ?? 'local', ...(match === null ? {} : { input: match }) };
  const inputs = [...new Set([...profile.layout.reads.map((p, i) => repoPath(expandPlaceholders(p, values, `layout.reads[${i}]`))), ...(match === null ? [] : [match])])];
  const outputs = profile.layout.writes.map((p, i) => repoPath(expandPlaceholders(p, values, `layout.writes[${i}]`)));
  const command = req.command.map((a, i) => expandPlaceholders(a, values, `command argument ${i + 1}`));
  const engine = profile.container.engine;
  const head = await readHead(ctx.repo.root);
  const committedIds = await inputIds(v, head, inputs);
  const ids = ctx.uncommitted ? await workingFileIds(v, committedIds) : committedIds;
  const identity = stageIdentity(v, { command, engine, image: profile.container.image, imageDigest: ctx.imageDigest, profile: profile.name, profileDigest: ctx.profileDigest, inputs: ids });
  const startedAt = new Date().toISOString();
  const base: Provenance = {
    command,
    ...slurmProvenance(),
    ...(profile.container.image === null ? {} : { image: profile.container.image }),
    ...(ctx.imageDigest === null ? {} : { imageDigest: ctx.imageDigest }),
    profile: profile.name,
    inputs: provenanceInputs(head, ids, committedIds),
    host: hostname(),
  };
  const stage: StageProvenance = { identity, status: 'ran', engine, attempts: 0, outputs, profileDigest: ctx.profileDigest, ...(req.glob === undefined ? {} : { glob: req.glob }) };
  const result: StageResult = {
    status: 'ran',
    exitCode: null,
    snapshot: null,
    identity,
    image: profile.container.image,
    imageDigest: ctx.imageDigest,
    sessionId: null,
    engine,
    profile: profile.name,
    input: match,
    inputs,
    outputs,
    attempts: 0,
    decision: 'deferred',
    push: null,
    reusedFrom: null,
    startedAt,
    finishedAt: startedAt,
    error: null,
  };
  if (req.force !== true && head !== null) {
    ctx.committed ??= await committedStages(v, head);
    const found = ctx.committed.get(identity);
    if (found && (await outputsPresent(v, head, found.outputs))) return remember(ctx, identity, await reuse(ctx, base, stage, found.snapshot, result));
    if (found) req.note(`dvfs: stage ${identity.slice(0, 12)} ran before (${found.snapshot.slice(0, 12)}), but HEAD lacks some of its outputs: running it again`);
  }

  for (const dir of await removeAbandonedStageDirs(runDirFor(ctx.repo))) req.note(`dvfs: removed the stage directory ${dir} left by a dvfs run that is gone`);
  const guard = await guardedMountpoint(runDirFor(ctx.repo), runId);
  if (!guard.guarded) req.note(`dvfs: warning: cannot make the mountpoint immutable (${guard.problem}); writes after a daemon crash could reach ${guard.path}`);
  let record: MountRecord | null = null;
  let outcome: ProcessOutcome = { code: null, signal: null, daemonDied: false, spawnError: null };
  let attempts = 0;
  try {
    const keys = keysOfTree(ctx.tree);
    try {
      record = await launchDaemon({ repo: ctx.repo.root, mountpoint: guard.path, readOnly: profile.mount.readOnly, allowOther: profile.mount.allowOther, xattr: profile.mount.xattr }, keys);
    } finally {
      wipeTreeKeys(keys);
    }
    if (!isMounted(guard.path)) throw new DvfsError('E_IO', 'the daemon reported the mount ready, but it is not in the mount table', { path: guard.path });
    result.sessionId = record.session;
    const name = `dvfs-stage-${runId.toLowerCase()}`;
    const inv = engineInvocation({ ...profile.container, image: profile.container.image, mountpoint: guard.path, command, name, env: { ...profile.container.env, DVFS_RUN: runId, DVFS_STAGE: profile.name, ...(match === null ? {} : { DVFS_INPUT: match }) } });
    for (;;) {
      attempts++;
      outcome = await runProcess(ctx, inv, record.pid, name);
      if (outcome.code === 0 || outcome.daemonDied || outcome.spawnError !== null || attempts > profile.failure.retry) break;
      req.note(`dvfs: stage exited with ${outcome.code ?? outcome.signal}; retrying (${attempts}/${profile.failure.retry})`);
    }
  } finally {
    if (record !== null && processAlive(record.pid)) {
      await stopDaemon(record, { force: true }).catch((e: unknown) => req.note(`dvfs: stopping the mount daemon: ${e instanceof Error ? e.message : String(e)}`));
    }
    try {
      cleanStale(guard.path);
    } catch (e) {
      req.note(`dvfs: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (isMounted(guard.path)) req.note(`dvfs: warning: ${guard.path} is still mounted; left in place`);
    else await guard.release();
  }
  const finishedAt = new Date().toISOString();
  const failed = outcome.code !== 0;
  const error = outcome.daemonDied ? 'the mount daemon died mid-stage' : outcome.spawnError ?? (outcome.signal ? `killed by ${outcome.signal}` : null);
  // A command that could not be started exits 127, as a shell says it.
  const exitCode = outcome.spawnError !== null ? 127 : outcome.code;
  Object.assign(result, { status: failed ? 'failed' : 'ran', exitCode, attempts, finishedAt, error });
  if (record === null || record.session === null) return { ...result, decision: 'kept' };
  const provenance: Provenance = {
    ...base,
    exitStatus: exitCode ?? -1,
    startedAt,
    finishedAt,
    stage: { ...stage, status: failed ? 'failed' : 'ran', attempts, ...(error === null ? {} : { error }) },
  };
  const message = req.message ?? `stage ${profile.name}${match === null ? '' : ` on ${match}`}: ${failed ? `failed (exit ${exitCode ?? error})` : 'ran'}`;
  await saveStageRecord(v, sessionDir(ctx.repo.root, record.session), record.session, { provenance, commit: profile.commit, onFailure: profile.failure.onFailure, push: profile.push, message });
  if (req.deferCommit) return result;
  const listing = (await listSessions(ctx.repo.root)).find((s) => s.id === record?.session);
  if (!listing) throw new DvfsError('E_NOTFOUND', `the stage's session ${record.session} is gone`, { path: ctx.repo.root });
  const { commitStageSessions } = await import('./deferred.js');
  const [decided] = await commitStageSessions(v, [listing], { note: req.note });
  return remember(ctx, identity, { ...result, decision: decided?.decision ?? 'kept', snapshot: decided?.snapshot ?? null, push: decided?.push ?? null });
}

/** Notes a run this process committed, so a later match of the same fan-out can reuse it. */
function remember(ctx: Context, identity: ObjectId, r: StageResult): StageResult {
  if (ctx.committed && r.snapshot !== null && r.decision !== 'deferred' && (r.status === 'ran' || r.status === 'reused')) ctx.committed.set(identity, { snapshot: r.snapshot as ObjectId, outputs: r.outputs });
  return r;
}

/** Runs a stage (or, with --glob, one per match). See the module header. */
export async function runStage(req: RunRequest): Promise<StageResult[]> {
  const repo = await locateRepository(req.repo);
  requireVersionedRepo(repo);
  const { profile, digest } = await loadProfile(req.profile, { repoRoot: repo.root, overrides: overridesOf(req) });
  if (profile.encryption !== 'inherit' && profile.encryption !== repo.format) {
    throw new DvfsError('E_CONFIG', `profile ${profile.name} expects a ${profile.encryption} repository, this one is ${repo.format}`, { path: profile.source, hint: 'use a profile made for this repository, or encryption: inherit' });
  }
  if (req.command.length === 0) throw new DvfsError('E_USAGE', 'no command to run', { hint: 'give it after --: dvfs run REPO -- CMD ARGS...' });
  const digestOfImage = await imageDigest(profile.container.engine, profile.container.image, profile.container.engineArgs);
  const tree = await openTree(repo, req.credential, quietLog, req.codec === undefined ? {} : { codec: req.codec });
  const v = openVersioning(repo, tree);
  try {
    const uncommitted = (await listSessions(repo.root)).filter((s) => s.info.state !== 'committed').length;
    if (uncommitted > 0) req.note(`dvfs: note: ${uncommitted} session(s) hold uncommitted changes: input files are hashed from the working tree, input directories taken from HEAD`);
    const ctx: Context = { req, repo, tree, v, profile, profileDigest: digest, imageDigest: digestOfImage, uncommitted: uncommitted > 0, committed: null };
    if (req.glob === undefined) return [await runOne(ctx, null)];
    const head = await readHead(repo.root);
    if (head === null) throw new DvfsError('E_NOTFOUND', 'no snapshot yet: --glob matches committed paths', { path: repo.root, hint: 'commit the inputs first (dvfs commit REPO)' });
    const [{ globSnapshot }, { SnapshotReader }] = await Promise.all([import('./glob.js'), import('../versioning/snapshot-walk.js')]);
    const matches = await globSnapshot(new SnapshotReader(v.manifests), (await v.manifests.getSnapshot(head)).tree, req.glob);
    if (matches.length === 0) req.note(`dvfs: --glob '${req.glob}' matches nothing in HEAD (${head.slice(0, 12)})`);
    const results: StageResult[] = [];
    for (const match of matches) results.push(await runOne(ctx, match));
    return results;
  } finally {
    v.close();
    tree.dispose?.();
  }
}
