/**
 * The mount sessions of a repository: `REPO/.dvfs/sessions/<id>/` holds a session's change journal
 * (`journal/`, a LevelDB) and `session.json`, a small readable mirror of who made it and where it stands.
 * The mirror is what listing reads: a live daemon holds its journal's LevelDB lock, so other processes
 * (`dvfs status`, `dvfs commit`) learn a session's state from session.json and liveness from its pid.
 *
 * Ids sort by start time (`20250101T120000123Z-1a2b3c4d`), so a plain listing is the order sessions began
 * and the order their journals must be replayed. Directories are 0700 and files 0600, like the run records.
 */
import { processAlive } from '../mount/mountinfo.js';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { DvfsError, isNodeError } from '../errors.js';
// Listing sessions must stay cheap (dvfs commit / status start with it): LevelDB loads only to open a journal.
import type { SessionJournal, JournalOptions, JournalState, SessionMeta } from './journal.js';

export const SESSIONS_DIR = 'sessions';
export const SESSION_FILE = 'session.json';
export const JOURNAL_DIR = 'journal';

export interface SessionInfo extends SessionMeta {
  state: JournalState;
  finishedAt: string | null;
  committedSeq: number;
  snapshotId: string | null;
  updatedAt: string;
}

/**
 * A listed session. `liveness`: whether its daemon still runs — `alive`/`dead` by pid on this host,
 * `unknown` for a session started on another host (a repository on a shared filesystem).
 */
export interface SessionListing {
  id: string;
  dir: string;
  journalDir: string;
  info: SessionInfo;
  liveness: 'alive' | 'dead' | 'unknown';
  /** Open by its own account, but its daemon is gone: it ended without finishing (crash, kill -9). */
  orphaned: boolean;
}

export function sessionsDir(repoRoot: string): string {
  return join(repoRoot, '.dvfs', SESSIONS_DIR);
}

export function sessionDir(repoRoot: string, id: string): string {
  return join(sessionsDir(repoRoot), id);
}

const ID_RE = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;

/** A fresh session id: UTC start time to the millisecond, then 32 random bits. */
export function newSessionId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('.', '');
  return `${stamp}-${randomBytes(4).toString('hex')}`;
}

/** Whether a process with this pid exists (on this host). */
export function pidAlive(pid: number): boolean {
  // processAlive sees through zombies: a daemon killed with SIGKILL stays one until a (sub)reaper collects it.
  return Number.isInteger(pid) && pid > 0 && processAlive(pid);
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, path);
}

export interface NewSession {
  repoId: string;
  mountpoint: string;
  baseSnapshot: string | null;
  /** Defaults: this host, this process. */
  host?: string;
  pid?: number;
  startedAt?: Date;
}

/** Creates a session with a fresh id: its directory, session.json and an empty open journal. */
export async function createSession(repoRoot: string, spec: NewSession, options: JournalOptions = {}): Promise<{ listing: SessionListing; journal: SessionJournal }> {
  const started = spec.startedAt ?? new Date();
  const id = newSessionId(started);
  const dir = sessionDir(repoRoot, id);
  await mkdir(sessionsDir(repoRoot), { recursive: true, mode: 0o700 });
  await mkdir(dir, { mode: 0o700 }); // fails (EEXIST) rather than share a directory
  const meta: SessionMeta = {
    sessionId: id,
    repoId: spec.repoId,
    mountpoint: spec.mountpoint,
    startedAt: started.toISOString(),
    baseSnapshot: spec.baseSnapshot,
    host: spec.host ?? hostname(),
    pid: spec.pid ?? process.pid,
  };
  const { SessionJournal } = await import('./journal.js');
  const journal = await SessionJournal.create(join(dir, JOURNAL_DIR), meta, options);
  const info = infoOf(journal);
  await writeJsonAtomic(join(dir, SESSION_FILE), info);
  return { listing: { id, dir, journalDir: join(dir, JOURNAL_DIR), info, liveness: 'alive', orphaned: false }, journal };
}

function infoOf(journal: SessionJournal): SessionInfo {
  const s = journal.stateRecord;
  return {
    ...journal.info,
    state: s.state,
    finishedAt: s.finishedAt,
    committedSeq: s.committedSeq,
    snapshotId: s.snapshotId,
    updatedAt: new Date().toISOString(),
  };
}

/** Rewrites session.json from the journal's state (after finish(), markCommitted(), recovery). */
export async function saveSessionInfo(dir: string, journal: SessionJournal): Promise<SessionInfo> {
  const info = infoOf(journal);
  await writeJsonAtomic(join(dir, SESSION_FILE), info);
  return info;
}

export async function readSessionInfo(dir: string): Promise<SessionInfo> {
  const file = join(dir, SESSION_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') throw new DvfsError('E_NOTFOUND', 'no session here', { path: dir });
    throw e;
  }
  try {
    const info = JSON.parse(text) as SessionInfo;
    if (typeof info.sessionId !== 'string' || typeof info.pid !== 'number' || typeof info.state !== 'string') throw new Error('fields missing');
    return info;
  } catch (e) {
    throw new DvfsError('E_CONFIG', `unreadable session file: ${(e as Error).message}`, { path: file });
  }
}

function listingOf(repoRoot: string, id: string, info: SessionInfo): SessionListing {
  const dir = sessionDir(repoRoot, id);
  const liveness = info.host !== hostname() ? 'unknown' : pidAlive(info.pid) ? 'alive' : 'dead';
  return { id, dir, journalDir: join(dir, JOURNAL_DIR), info, liveness, orphaned: info.state === 'open' && liveness === 'dead' };
}

/**
 * Every session of the repository, oldest first. A directory without a readable session.json (a create
 * that crashed half-way) is skipped; pass `onSkip` to hear about it.
 */
export async function listSessions(repoRoot: string, onSkip?: (dir: string, e: unknown) => void): Promise<SessionListing[]> {
  let names: string[];
  try {
    names = await readdir(sessionsDir(repoRoot));
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') return [];
    throw e;
  }
  const out: SessionListing[] = [];
  for (const id of names.filter((n) => ID_RE.test(n)).sort()) {
    try {
      out.push(listingOf(repoRoot, id, await readSessionInfo(sessionDir(repoRoot, id))));
    } catch (e) {
      onSkip?.(sessionDir(repoRoot, id), e);
    }
  }
  return out;
}

/**
 * Sessions whose changes are not all in a snapshot and whose daemon is gone: finished ones and orphaned
 * ones (open, daemon dead), oldest first — what `dvfs commit` of an unmounted repository must replay.
 * Sessions of another host with state `open` are not included (they may still be running).
 */
export async function pendingSessions(repoRoot: string): Promise<SessionListing[]> {
  return (await listSessions(repoRoot)).filter((s) => s.info.state === 'finished' || s.orphaned);
}

/**
 * Opens an orphaned session's journal and finishes it (records after the last flush before the crash are
 * lost with the daemon; everything flushed is there). Returns the journal, open, state `finished` (or
 * `committed` when there was nothing left to commit).
 */
export async function recoverSession(listing: SessionListing, options: JournalOptions = {}): Promise<SessionJournal> {
  if (!listing.orphaned) throw new DvfsError('E_USAGE', 'not an orphaned session', { path: listing.dir });
  const { SessionJournal } = await import('./journal.js');
  const journal = await SessionJournal.open(listing.journalDir, options);
  try {
    await journal.finish();
    listing.info = await saveSessionInfo(listing.dir, journal);
    listing.orphaned = false;
  } catch (e) {
    await journal.close().catch(() => undefined);
    throw e;
  }
  return journal;
}

/**
 * Deletes a session once its records are committed. Refuses a session whose daemon may still run, and
 * (unless `force`) one with uncommitted records: without its journal, only a full rescan finds its changes.
 */
export async function removeSession(listing: SessionListing, opts: { force?: boolean } = {}): Promise<void> {
  if (listing.info.state === 'open' && listing.liveness !== 'dead') {
    throw new DvfsError('E_USAGE', 'the session may still be running', { path: listing.dir, hint: 'unmount it first' });
  }
  if (listing.info.state !== 'committed' && !opts.force) {
    throw new DvfsError('E_USAGE', 'the session has uncommitted changes', { path: listing.dir, hint: 'commit first' });
  }
  await rm(listing.dir, { recursive: true, force: true });
}
