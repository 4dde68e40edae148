/**
 * Committing stage runs: applying a stage's commit policy to the session its run left behind.
 *
 * `dvfs run` commits its run right away through commitStageSessions; `dvfs run --defer-commit` leaves the
 * ended session with its sealed stage record (record.ts), and a later `dvfs commit REPO` or the SLURM
 * finalize job commits it. For the latter, the library entry point is:
 *
 *   commitDeferredStages(repoPath: string, options: DeferredCommitOptions): Promise<StageCommitOutcome[]>
 *
 *   - repoPath: the dvfs repository (REPO, not the tree);
 *   - options.credential: a password or an identity (daemon/keys/unlock.ts; not kept, not wiped here);
 *   - options.sessions: only these session ids (as `dvfs run --json` printed in sessionId); default all
 *     ended sessions that carry a stage record, oldest first;
 *   - options.codec, options.author, options.force (as dvfs commit --force), options.note (messages).
 *   Returns one outcome per stage session: its decision (committed / kept / discarded), the snapshot id
 *   (committed only), the stage's status, exit code and identity. Throws DvfsError (E_CONFLICT when a
 *   session conflicts, E_BUSY when another commit holds the lock past its wait).
 *
 * The decision: commit when the policy is `always`, or `on-success` and the stage did not fail; the stage
 * record becomes the snapshot's provenance (a run that changed nothing is still recorded as a snapshot).
 * Otherwise a failed stage whose on_failure is `discard` has its declared outputs put back as HEAD has them
 * and its session dropped; in every other case (`keep`, `cancel-dependents`, policy `never`) the changes
 * stay in the working tree as an ordinary uncommitted session (a later plain commit records them without
 * stage provenance), and the stage record is dropped. After a commit, a profile's push policy pushes HEAD
 * to the named remote (a failed push is reported, the commit stands).
 */
import { rm } from 'node:fs/promises';
import { DvfsError } from '../errors.js';
import { listSessions, removeSession, type SessionListing } from '../journal/sessions.js';
import { quietLog } from '../quiet-log.js';
import { openTree } from '../repo/open-tree.js';
import { locateRepository } from '../repo/repository.js';
import { readHead } from '../store/refs.js';
import type { Provenance, StageStatus, TaskProvenance } from '../store/manifest-schema.js';
import { openVersioning, requireVersionedRepo, type Versioning } from '../versioning/context.js';
import { restoreToTree } from '../versioning/restore.js';
import type { CommitReport } from '../versioning/commit.js';
import { commitEndedSessions } from '../versioning/session-commit.js';
import { dropStageRecord, hasStageRecord, loadStageRecord, type StageRecord } from './record.js';
import { outputsPresent } from './identity.js';
import type { Credential } from '../keys/unlock.js';

export interface DeferredCommitOptions {
  credential: Credential;
  sessions?: readonly string[];
  codec?: 'auto' | 'native' | 'typescript';
  author?: string;
  force?: boolean;
  note?: (message: string) => void;
}

export type StageDecision = 'committed' | 'kept' | 'discarded';

export interface StageCommitOutcome {
  sessionId: string;
  decision: StageDecision;
  snapshot: string | null;
  status: StageStatus | null;
  exitCode: number | null;
  identity: string | null;
  /** Set when the profile's push policy named a remote: pushed, or why not. */
  push?: { remote: string; ok: boolean; error?: string };
  /** The commit's report (committed only). */
  report?: CommitReport;
}

export interface StageCommitOptions {
  /**
   * Commit every session whose policy says so in one snapshot (the tasks of an array job): the first record's
   * message and provenance, with `tasks` listing each task's index, status and exit status.
   */
  together?: boolean;
  author?: string;
  force?: boolean;
  note?: (message: string) => void;
}

function shouldCommit(record: StageRecord): boolean {
  const status = record.provenance.stage?.status;
  return record.commit === 'always' || (record.commit === 'on-success' && status !== 'failed');
}

async function pushAfterCommit(v: Versioning, remote: string): Promise<{ remote: string; ok: boolean; error?: string }> {
  try {
    const [{ resolveRemote }, { push }] = await Promise.all([import('../transfer/remotes.js'), import('../transfer/push.js')]);
    await push(v, await resolveRemote(v.repo.root, remote));
    return { remote, ok: true };
  } catch (e) {
    return { remote, ok: false, error: e instanceof DvfsError ? e.oneLine() : e instanceof Error ? e.message : String(e) };
  }
}

/** Applies each session's stage record (see the module header); `listings` are ended sessions, oldest first. */
export async function commitStageSessions(v: Versioning, listings: readonly SessionListing[], options: StageCommitOptions = {}): Promise<StageCommitOutcome[]> {
  const outcomes: StageCommitOutcome[] = [];
  const records = new Map<string, StageRecord>();
  for (const listing of listings) records.set(listing.id, await loadStageRecord(v, listing.dir, listing.id));
  const joint = options.together === true ? listings.filter((l) => shouldCommit(records.get(l.id) as StageRecord)) : [];
  if (joint.length > 0) outcomes.push(...(await commitJointly(v, joint, records, options)));
  for (const listing of listings) {
    if (joint.includes(listing)) continue;
    const record = records.get(listing.id) as StageRecord;
    const stage = record.provenance.stage;
    const base = { sessionId: listing.id, status: stage?.status ?? null, exitCode: record.provenance.exitStatus ?? null, identity: stage?.identity ?? null };
    if (shouldCommit(record)) {
      const report = await commitEndedSessions(v, [listing], {
        message: record.message,
        provenance: record.provenance,
        allowEmpty: true,
        ...(options.author === undefined ? {} : { author: options.author }),
        ...(options.force === undefined ? {} : { force: options.force }),
      });
      const outcome: StageCommitOutcome = { ...base, decision: 'committed', snapshot: report.snapshot, report };
      if (record.push !== null) {
        outcome.push = await pushAfterCommit(v, record.push);
        if (!outcome.push.ok) options.note?.(`dvfs: stage committed, but the push to '${record.push}' failed: ${outcome.push.error ?? ''}`);
      }
      outcomes.push(outcome);
      continue;
    }
    if (stage?.status === 'failed' && record.onFailure === 'discard') {
      await putOutputsBack(v, stage.outputs);
      await removeSession({ ...listing, info: { ...listing.info } }, { force: true });
      options.note?.(`dvfs: stage failed (exit ${record.provenance.exitStatus ?? '?'}); its outputs were put back as HEAD has them (on_failure: discard)`);
      outcomes.push({ ...base, decision: 'discarded', snapshot: null });
      continue;
    }
    await dropStageRecord(listing.dir);
    options.note?.(
      stage?.status === 'failed'
        ? `dvfs: stage failed (exit ${record.provenance.exitStatus ?? '?'}); not committed (commit: ${record.commit}), its changes are kept uncommitted (on_failure: ${record.onFailure})`
        : `dvfs: not committed (commit: ${record.commit}); the changes stay uncommitted in session ${listing.id}`,
    );
    outcomes.push({ ...base, decision: 'kept', snapshot: null });
  }
  return outcomes;
}

/**
 * A discarded stage's outputs as HEAD has them: restored where HEAD holds them, removed where it does not
 * (an output the failed stage created; restoring it from HEAD would fail, leaving the finish undone).
 */
async function putOutputsBack(v: Versioning, outputs: readonly string[]): Promise<void> {
  const head = await readHead(v.repo.root);
  const inHead: string[] = [];
  for (const p of outputs) {
    if (head !== null && (await outputsPresent(v, head, [p]))) inHead.push(`/${p}`);
    else await removeFromTree(v, `/${p}`);
  }
  if (head !== null && inHead.length > 0) await restoreToTree(v, v.tree, head, inHead);
}

async function removeFromTree(v: Versioning, path: string): Promise<void> {
  let raw: string;
  try {
    raw = (await v.tree.locate(path)).rawPath;
  } catch {
    return; // its directory is not there either: nothing to remove
  }
  await rm(raw, { recursive: true, force: true });
}

/** One snapshot for the sessions of several tasks (StageCommitOptions.together). */
async function commitJointly(v: Versioning, listings: readonly SessionListing[], records: ReadonlyMap<string, StageRecord>, options: StageCommitOptions): Promise<StageCommitOutcome[]> {
  const first = records.get((listings[0] as SessionListing).id) as StageRecord;
  const tasks: TaskProvenance[] = listings.map((l, i) => {
    const p = (records.get(l.id) as StageRecord).provenance;
    const task: TaskProvenance = { arrayIndex: p.arrayIndex ?? i, session: l.id };
    if (p.stage?.status !== undefined) task.status = p.stage.status;
    if (p.exitStatus !== undefined) task.exitStatus = p.exitStatus;
    return task;
  });
  const provenance: Provenance = { ...first.provenance, tasks };
  delete provenance.arrayIndex;
  const report = await commitEndedSessions(v, listings, {
    message: listings.length > 1 ? `${first.message} (${listings.length} tasks)` : first.message,
    provenance,
    allowEmpty: true,
    ...(options.author === undefined ? {} : { author: options.author }),
    ...(options.force === undefined ? {} : { force: options.force }),
  });
  let push: StageCommitOutcome['push'];
  if (first.push !== null) {
    push = await pushAfterCommit(v, first.push);
    if (!push.ok) options.note?.(`dvfs: stage committed, but the push to '${first.push}' failed: ${push.error ?? ''}`);
  }
  return listings.map((l) => {
    const r = records.get(l.id) as StageRecord;
    const outcome: StageCommitOutcome = {
      sessionId: l.id,
      decision: 'committed',
      snapshot: report.snapshot,
      status: r.provenance.stage?.status ?? null,
      exitCode: r.provenance.exitStatus ?? null,
      identity: r.provenance.stage?.identity ?? null,
      report,
    };
    if (push !== undefined) outcome.push = push;
    return outcome;
  });
}

/** Ended sessions of the repository that carry a stage record, oldest first. */
export async function deferredStageSessions(repoRoot: string): Promise<SessionListing[]> {
  return (await listSessions(repoRoot)).filter((s) => s.info.state !== 'committed' && (s.info.state === 'finished' || s.orphaned) && hasStageRecord(s.dir));
}

/** Commits the deferred stage runs of a repository (see the module header for the contract). */
export async function commitDeferredStages(repoPath: string, options: DeferredCommitOptions): Promise<StageCommitOutcome[]> {
  const repo = await locateRepository(repoPath);
  requireVersionedRepo(repo);
  let pending = await deferredStageSessions(repo.root);
  if (options.sessions !== undefined) {
    const wanted = new Set(options.sessions);
    const missing = [...wanted].filter((id) => !pending.some((p) => p.id === id));
    if (missing.length > 0) throw new DvfsError('E_NOTFOUND', `no ended stage session ${missing.join(', ')} with a stage record`, { path: repo.root, hint: 'see the sessions with: dvfs status REPO' });
    pending = pending.filter((p) => wanted.has(p.id));
  }
  if (pending.length === 0) return [];
  const tree = await openTree(repo, options.credential, quietLog, options.codec === undefined ? {} : { codec: options.codec });
  const v = openVersioning(repo, tree);
  try {
    return await commitStageSessions(v, pending, { ...(options.author === undefined ? {} : { author: options.author }), ...(options.force === undefined ? {} : { force: options.force }), ...(options.note ? { note: options.note } : {}) });
  } finally {
    v.close();
    tree.dispose?.();
  }
}
