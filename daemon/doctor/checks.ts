/**
 * The leftovers `dvfs doctor` looks for, one function each. Every check only reads; what it finds carries
 * the repair that is safe for it (none for sessions: their journals are uncommitted data).
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isNodeError } from '../errors.js';
import { listSessions } from '../journal/sessions.js';
import { cleanStale } from '../mount/launcher.js';
import { mountState, processAlive } from '../mount/mountinfo.js';
import { removeRecord, type MountRecord } from '../mount/records.js';
import { META_DIR } from '../repo/layout.js';
import { repoLockState } from '../store/lock.js';
import { MANIFESTS_DIR } from '../store/manifests.js';
import { OBJECTS_DIR } from '../store/objects.js';
import { cleanTempDir, listTemp, TMP_DIR } from '../store/shards.js';
import { VIEWS_DIR } from '../versioning/snapshot-view.js';
import type { Finding } from './findings.js';

/** A finding and, when it may be repaired, how. */
export interface Check {
  finding: Finding;
  repair?: () => Promise<void>;
}

async function names(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return [];
    throw e;
  }
}

function parseRecord(text: string): MountRecord | null {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null) return null;
    const r = v as Partial<MountRecord>;
    if (typeof r.pid !== 'number' || typeof r.mountpoint !== 'string' || typeof r.socket !== 'string' || typeof r.runDir !== 'string' || typeof r.id !== 'string') return null;
    return v as MountRecord;
  } catch {
    return null;
  }
}

/** Mount records in the repository's run directory whose daemon is dead (the FUSE mount may still be attached). */
export async function staleMounts(runDir: string): Promise<Check[]> {
  const out: Check[] = [];
  for (const name of await names(runDir)) {
    if (!name.endsWith('.json')) continue;
    const path = join(runDir, name);
    const record = parseRecord(await readFile(path, 'utf8').catch(() => ''));
    if (record === null || processAlive(record.pid)) continue;
    const attached = mountState(record.mountpoint) !== 'not-mounted';
    out.push({
      finding: {
        kind: 'stale-mount',
        path: record.mountpoint,
        problem: `daemon pid ${record.pid} is dead${attached ? ' and its FUSE mount is still attached (ENOTCONN)' : '; its record was left behind'}`,
        fix: attached ? `detach the mount (fusermount -uz) and remove the record ${path}` : `remove the record ${path}`,
        repairable: true,
      },
      repair: async () => {
        const cleaned = cleanStale(record.mountpoint);
        if (!cleaned.cleaned) removeRecord(record); // the per-user index no longer names it: the run record alone
        await rm(path, { force: true });
      },
    });
  }
  return out;
}

/** The repository lock held by a process that is gone. */
export async function staleLock(repoRoot: string): Promise<Check[]> {
  const lock = await repoLockState(repoRoot);
  if (lock.state !== 'stale') return [];
  return [{ finding: { kind: 'stale-lock', path: join(repoRoot, META_DIR, 'lock'), problem: lock.note.replace(/^broke /, 'found '), fix: 'break the lock (the next dvfs command would too)', repairable: true } }];
}

/** Sessions whose daemon died before they were committed: their journals are uncommitted changes, kept. */
export async function orphanedSessions(repoRoot: string): Promise<Check[]> {
  const out: Check[] = [];
  for (const s of await listSessions(repoRoot)) {
    if (!s.orphaned) continue;
    out.push({
      finding: {
        kind: 'orphaned-session',
        path: s.dir,
        problem: `session ${s.id} (mounted at ${s.info.mountpoint}, daemon pid ${s.info.pid}) ended without finishing; its changes are not committed`,
        fix: `dvfs commit ${repoRoot} (commits them; nothing is deleted)`,
        repairable: false,
      },
    });
  }
  return out;
}

/** Leftovers of interrupted writes in the object and manifest stores' tmp/ directories. */
export async function tempFiles(repoRoot: string): Promise<Check[]> {
  const out: Check[] = [];
  for (const store of [OBJECTS_DIR, MANIFESTS_DIR]) {
    const dir = join(repoRoot, META_DIR, store, TMP_DIR);
    const files = await listTemp(dir);
    if (files.length === 0) continue;
    out.push({
      finding: { kind: 'temp-files', path: dir, problem: `${files.length} leftover temporary file(s) of interrupted writes`, fix: 'remove them (under the repository lock)', repairable: true },
      repair: async () => {
        await cleanTempDir(dir);
      },
    });
  }
  return out;
}

/** A trailing "-<pid>" whose process is gone. */
function deadPid(name: string): number | null {
  const pid = Number(/-(\d+)$/.exec(name)?.[1]);
  return Number.isSafeInteger(pid) && pid > 0 && !processAlive(pid) ? pid : null;
}

/** Snapshot views (`.dvfs/views/<id>-<pid>`) of daemons that are gone. */
export async function deadViews(repoRoot: string): Promise<Check[]> {
  const dir = join(repoRoot, META_DIR, VIEWS_DIR);
  const out: Check[] = [];
  for (const name of await names(dir)) {
    const pid = deadPid(name);
    if (pid === null) continue;
    const path = join(dir, name);
    out.push({
      finding: { kind: 'dead-view', path, problem: `snapshot view of process ${pid}, which is gone`, fix: 'remove it (a view holds only links to stored objects)', repairable: true },
      repair: () => rm(path, { recursive: true, force: true }),
    });
  }
  return out;
}

const STAGING = /\.dvfs-(init|clone)-(\d+)$/;

/** `dvfs init` / `dvfs clone` staging directories next to the repository, of processes that are gone. */
export async function stagingDirs(repoRoot: string): Promise<Check[]> {
  const parent = dirname(repoRoot);
  const out: Check[] = [];
  for (const name of await names(parent)) {
    const m = STAGING.exec(name);
    if (!m || name === basename(repoRoot)) continue;
    const pid = deadPid(name);
    if (pid === null) continue;
    const path = join(parent, name);
    // Only what dvfs staged: a directory holding a .dvfs metadata directory.
    const meta = await stat(join(path, META_DIR)).catch(() => null);
    if (!meta?.isDirectory()) continue;
    out.push({
      finding: { kind: 'staging-dir', path, problem: `staging directory of an interrupted dvfs ${m[1]} (process ${pid} is gone)`, fix: 'remove it (it never became a repository)', repairable: true },
      repair: () => rm(path, { recursive: true, force: true }),
    });
  }
  return out;
}
