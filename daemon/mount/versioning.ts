/**
 * The versioning side of a writable mount of a dvfs repository: a session (`REPO/.dvfs/sessions/<id>/`) whose
 * journal records every change made through the mount — with opaque paths, as nothing under `.dvfs` may name a
 * file in the clear —, the change recorder the frontend feeds, and what the control socket's `changes` and
 * `commit` do with the journal.
 */
import { DvfsError } from '../errors.js';
import type { CtlRequest } from '../ctl/protocol.js';
import type { SessionJournal } from '../journal/journal.js';
import { ChangeRecorder } from '../journal/recorder.js';
import { createSession, removeSession, saveSessionInfo, type SessionListing } from '../journal/sessions.js';
import type { Logger } from '../log.js';
import type { Repository } from '../repo/repository.js';
import { ContentHasher } from '../store/content-hash.js';
import { readHead } from '../store/refs.js';
import { explainNoSpace } from '../util/no-space.js';
// the commit machinery (index, tree builder, rescan: ~40 modules) loads on the first commit request, not at mount
import type { CommitRequest, LiveMount } from '../versioning/commit.js';
import { openVersioning, type Versioning } from '../versioning/context.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';

/** One change in the `changes` reply (plaintext paths: the socket is the user's own, mode 0600). */
export interface ChangeEntry {
  path: string;
  status: 'added' | 'changed' | 'renamed' | 'removed';
  origin: string | null;
  kind: 'file' | 'dir' | 'symlink' | 'unknown';
  dirty: boolean;
  hash: string | null;
  size: number | null;
}

/** An error's kind for the log (never its message: commit errors may name plaintext paths). */
const kindOf = (e: unknown): string => (e instanceof DvfsError ? e.code : e instanceof Error ? e.name : 'error');

export class MountVersioning {
  /** Commits run one at a time: each waits for the one before (whatever its outcome). */
  private commits: Promise<unknown> = Promise.resolve();
  private ending: Promise<void> | null = null;

  private constructor(
    private readonly v: Versioning,
    private readonly listing: SessionListing,
    private readonly journal: SessionJournal,
    readonly recorder: ChangeRecorder,
    private readonly logger: Logger,
  ) {}

  /** Opens versioning for `tree` (the mount's working tree) and starts a session of `mountpoint`. */
  static async start(repo: Repository, tree: CryptoTree, mountpoint: string, logger: Logger): Promise<MountVersioning> {
    const v = openVersioning(repo, tree);
    try {
      if (repo.meta === null) throw new DvfsError('E_CONFIG', 'the repository has no metadata', { path: repo.root });
      const { listing, journal } = await createSession(
        repo.root,
        { repoId: repo.meta.id, mountpoint, baseSnapshot: await readHead(repo.root) },
        // Records stay pending and the next flush retries; an fsync or commit then fails loudly.
        { onError: (e) => logger.error({ err: kindOf(e) }, 'change journal: a background write failed') },
      );
      // Hashes taken while files are written must equal what commit computes from disk: the same keyed hash.
      const recorder = new ChangeRecorder(
        journal,
        () => new ContentHasher(v.keys.contentHash),
        (p) => v.paths.encodePath(p),
      );
      logger.info({ session: listing.id, baseSnapshot: listing.info.baseSnapshot }, 'session started: changes are recorded in its journal');
      return new MountVersioning(v, listing, journal, recorder, logger);
    } catch (e) {
      v.close();
      throw e;
    }
  }

  get id(): string {
    return this.listing.id;
  }

  /** The uncommitted changes, as `changes` replies them. */
  async changes(): Promise<Record<string, unknown>> {
    await this.recorder.flush();
    const summary = await this.journal.summary();
    const decode = (p: string): string => this.v.paths.decodePath(p);
    const entries: ChangeEntry[] = summary.entries.map((e) => ({
      path: decode(e.path),
      status: e.status,
      origin: e.origin === null ? null : decode(e.origin),
      kind: e.kind,
      dirty: e.dirty,
      hash: e.hash,
      size: e.size,
    }));
    const state = this.journal.stateRecord;
    return {
      session: this.id,
      // What the changes are relative to: the last snapshot this session committed, else the session's base.
      baseSnapshot: state.snapshotId ?? this.journal.info.baseSnapshot,
      counts: summary.counts,
      entries,
    };
  }

  /** Commits the journal (one commit at a time); the reply is the commit report. */
  commit(request: CtlRequest, live: LiveMount): Promise<Record<string, unknown>> {
    const run = async (): Promise<Record<string, unknown>> => {
      if (this.ending) throw new DvfsError('E_BUSY', 'the mount is unmounting; commit after it ended (dvfs commit REPO)');
      const commitRequest: CommitRequest = { log: this.logger };
      if (request.message !== undefined) commitRequest.message = request.message;
      if (request.author !== undefined) commitRequest.author = request.author;
      if (request.force !== undefined) commitRequest.force = request.force;
      if (request.provenance !== undefined) commitRequest.provenance = request.provenance;
      await this.recorder.flush();
      try {
        const { commitJournal } = await import('../versioning/commit.js');
        const report = await commitJournal(this.v, this.journal, commitRequest, live);
        this.logger.info({ session: this.id, snapshot: report.snapshot, files: report.files, added: report.added, changed: report.changed, removed: report.removed, leftOpen: report.leftOpen }, 'commit');
        return { ...report };
      } catch (e) {
        this.logger.warn({ session: this.id, err: kindOf(e) }, 'commit failed');
        throw e;
      } finally {
        await this.saveInfo();
      }
    };
    const explained = (): Promise<Record<string, unknown>> =>
      run().catch((e: unknown) => {
        throw explainNoSpace(e, this.v.repo.root, 'commit');
      });
    const p = this.commits.then(explained, explained);
    this.commits = p.catch(() => undefined);
    return p;
  }

  /**
   * The mount ended (after the frontend closed its files, so their last records are in): the journal is
   * finished, session.json says so, and the keys are wiped. Waits for a commit in progress.
   */
  end(): Promise<void> {
    this.ending ??= (async () => {
      await this.commits;
      try {
        await this.journal.finish();
        await this.saveInfo();
        this.logger.info({ session: this.id, state: this.journal.state, records: this.journal.lastSeq }, 'session finished');
      } finally {
        await this.journal.close().catch((e: unknown) => this.logger.error({ err: kindOf(e) }, 'change journal: close failed'));
        this.v.close();
      }
    })();
    return this.ending;
  }

  /** The mount never came up: the (empty) session is removed again. */
  async abandon(): Promise<void> {
    await this.end();
    try {
      await removeSession(this.listing);
    } catch (e) {
      this.logger.warn({ session: this.id, err: kindOf(e) }, 'could not remove the session of a failed mount');
    }
  }

  private async saveInfo(): Promise<void> {
    try {
      this.listing.info = await saveSessionInfo(this.listing.dir, this.journal);
    } catch (e) {
      this.logger.error({ session: this.id, err: kindOf(e) }, 'could not update session.json');
    }
  }
}
