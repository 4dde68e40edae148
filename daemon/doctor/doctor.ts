/**
 * `dvfs doctor`: finds what crashes leave in and next to a repository (stale mounts, a dead holder's lock,
 * orphaned sessions, temporary files, views of dead daemons, init/clone staging directories) and, asked to,
 * repairs what is safe. Store temp files are removed only under the repository lock and while no daemon
 * serves the repository (a live writer's in-flight file looks the same). Session journals are never touched.
 */
import { DvfsError } from '../errors.js';
import { listSessions } from '../journal/sessions.js';
import { acquireRepoLock, type RepoLock } from '../store/lock.js';
import { deadViews, orphanedSessions, staleLock, staleMounts, stagingDirs, tempFiles, type Check } from './checks.js';
import { summarize, type DoctorReport } from './findings.js';

export async function diagnose(repoRoot: string, runDir: string): Promise<Check[]> {
  return [
    ...(await staleMounts(runDir)),
    ...(await staleLock(repoRoot)),
    ...(await orphanedSessions(repoRoot)),
    ...(await tempFiles(repoRoot)),
    ...(await deadViews(repoRoot)),
    ...(await stagingDirs(repoRoot)),
  ];
}

/** Sessions whose daemon runs on this host right now. */
async function liveDaemons(repoRoot: string): Promise<number> {
  let n = 0;
  for (const s of await listSessions(repoRoot)) if (s.liveness === 'alive' && s.info.state === 'open') n++;
  return n;
}

async function takeLock(repoRoot: string): Promise<RepoLock | string> {
  try {
    return await acquireRepoLock(repoRoot, { purpose: 'doctor --repair', waitMs: 5_000 });
  } catch (e) {
    if (e instanceof DvfsError && e.code === 'E_EXISTS') return `the repository is locked by a live process (${e.message})`;
    throw e;
  }
}

export async function doctor(repoRoot: string, runDir: string, options: { repair: boolean }): Promise<DoctorReport> {
  const checks = await diagnose(repoRoot, runDir);
  if (!options.repair) return summarize(repoRoot, checks.map((c) => c.finding));

  // Mounts first: a dead daemon's session then counts as ended, not live.
  for (const c of checks) if (c.finding.kind === 'stale-mount') await runRepair(c);
  const lock = await takeLock(repoRoot); // breaks a stale lock on the way
  try {
    const busy = typeof lock === 'string' ? lock : (await liveDaemons(repoRoot)) > 0 ? 'a mount daemon serves the repository (its in-flight files look the same)' : null;
    for (const c of checks) {
      switch (c.finding.kind) {
        case 'stale-mount':
          break;
        case 'stale-lock':
          c.finding.repaired = typeof lock === 'string' ? lock : true;
          break;
        case 'orphaned-session':
          c.finding.repaired = 'never repaired: it holds uncommitted changes';
          break;
        case 'temp-files':
          if (busy !== null) c.finding.repaired = `left alone: ${busy}`;
          else await runRepair(c);
          break;
        default:
          await runRepair(c);
      }
    }
  } finally {
    if (typeof lock !== 'string') await lock.release();
  }
  return summarize(repoRoot, checks.map((c) => c.finding));
}

async function runRepair(c: Check): Promise<void> {
  if (!c.repair) {
    c.finding.repaired = 'no safe repair';
    return;
  }
  try {
    await c.repair();
    c.finding.repaired = true;
  } catch (e) {
    c.finding.repaired = `repair failed: ${e instanceof Error ? e.message : String(e)}`;
  }
}
