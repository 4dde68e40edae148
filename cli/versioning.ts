/** What the versioning commands share: finding the repository, its live mounts, and opening its store. */
import { DvfsError } from '../daemon/errors.js';
import { listSessions, type SessionListing } from '../daemon/journal/sessions.js';
import { findRecord, type MountRecord } from '../daemon/mount/records.js';
import { processAlive } from '../daemon/mount/mountinfo.js';
import type { Repository } from '../daemon/repo/repository.js';
import type { Versioning } from '../daemon/versioning/context.js';
import { readDvfsRepository } from '../daemon/repo/layout.js';
import type { CommandContext } from './command.js';
import { requireCredential, wipeCredential } from './unlock.js';

/**
 * The dvfs repository at `path`. Reads `.dvfs/repo.json` itself (no format code loaded: a commit that only
 * talks to a running daemon must start fast); anything else goes through locateRepository's full checks.
 */
export async function versionedRepo(path: string): Promise<Repository> {
  const dvfs = await readDvfsRepository(path);
  if (dvfs) return dvfs;
  // Not a dvfs repository: the full lookup says what it is instead (a bare volume, nothing at all).
  const [{ locateRepository }, { requireVersionedRepo }] = await Promise.all([import('../daemon/repo/repository.js'), import('../daemon/versioning/context.js')]);
  const repo = await locateRepository(path);
  requireVersionedRepo(repo);
  return repo;
}

/** Opens the repository's tree and store with the user's password or identity; `close()` releases both. */
export async function openStore(ctx: CommandContext, repo: Repository): Promise<Versioning> {
  const credential = await requireCredential(ctx.args, (m) => ctx.note(m));
  const codec = ctx.args.strings.get('codec')?.[0] as 'auto' | 'native' | 'typescript' | undefined;
  const [{ openTree }, { quietLog }, { openVersioning }, { epochKeysOf }] = await Promise.all([
    import('../daemon/repo/open-tree.js'),
    import('../daemon/quiet-log.js'),
    import('../daemon/versioning/context.js'),
    import('../daemon/keys/epoch-keys.js'),
  ]);
  let tree;
  try {
    tree = await openTree(repo, credential, quietLog, codec === undefined ? {} : { codec });
  } finally {
    wipeCredential(credential);
  }
  const v = openVersioning(repo, tree);
  const close = v.close;
  const epochs = epochKeysOf(tree);
  v.close = () => {
    close();
    epochs?.wipe();
    tree.dispose?.();
  };
  return v;
}

export interface LiveSession {
  listing: SessionListing;
  record: MountRecord;
}

/** Sessions whose mount daemon runs on this host, with the record that says how to reach it. */
export async function liveSessions(repo: Repository): Promise<{ live: LiveSession[]; ended: SessionListing[]; foreign: SessionListing[] }> {
  const live: LiveSession[] = [];
  const ended: SessionListing[] = [];
  const foreign: SessionListing[] = [];
  for (const s of await listSessions(repo.root)) {
    if (s.info.state === 'committed') continue;
    if (s.info.state === 'finished' || s.orphaned) {
      ended.push(s);
      continue;
    }
    if (s.liveness === 'unknown') {
      foreign.push(s);
      continue;
    }
    const record = findRecord(s.info.mountpoint);
    if (record && record.pid === s.info.pid && processAlive(record.pid)) live.push({ listing: s, record });
    else foreign.push(s);
  }
  return { live, ended, foreign };
}

/**
 * Refuses work that rewrites the working tree behind the daemon (restore, pull): while the repository is
 * mounted, and (unless `force`) while ended sessions hold changes that are not committed yet.
 */
export async function refuseIfBusy(repo: Repository, options: { force?: boolean; forceHint?: string; mountedHint: string }): Promise<void> {
  const { live, ended } = await liveSessions(repo);
  if (live.length > 0) {
    throw new DvfsError('E_BUSY', `the repository is mounted at ${live.map((l) => l.record.mountpoint).join(', ')}`, { hint: options.mountedHint });
  }
  if (ended.length > 0 && !options.force) {
    throw new DvfsError('E_BUSY', `${ended.length} session(s) have uncommitted changes`, { hint: `commit them first (dvfs commit REPO)${options.forceHint ?? ''}` });
  }
}

export function sessionNotFound(id: string): DvfsError {
  return new DvfsError('E_NOTFOUND', `no uncommitted session ${id}`, { hint: 'see the sessions with: dvfs status REPO' });
}
