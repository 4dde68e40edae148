/**
 * dvfs commit (being written: the signature is fixed so the daemon can be wired against it).
 */
import { DvfsError } from '../errors.js';
import type { SessionJournal } from '../journal/journal.js';
import type { Provenance } from '../store/manifest-schema.js';
import type { Versioning } from './context.js';

export interface CommitRequest {
  message?: string;
  author?: string;
  provenance?: Provenance;
  /** Keep this session's version of paths another session changed since the common base. */
  force?: boolean;
}

/** What a running mount tells commit (absent after unmount). */
export interface LiveMount {
  /** Plaintext paths ('/a/b') of files open for writing right now: left for the next commit. */
  openForWrite(): Set<string>;
  /** Called once working files were linked into the store: every open file must re-check before writing. */
  filesLinked(): void;
}

export interface CommitReport {
  snapshot: string | null;
  parent: string | null;
  session: string | null;
  nothingToCommit: boolean;
  added: number;
  changed: number;
  removed: number;
  renamed: number;
  files: number;
  bytes: number;
  filesHashed: number;
  bytesHashed: number;
  objectsAdded: number;
  bytesStored: number;
  leftOpen: number;
  seconds: number;
}

export async function commitJournal(_v: Versioning, _journal: SessionJournal, _request: CommitRequest, _live?: LiveMount): Promise<CommitReport> {
  throw new DvfsError('E_UNSUPPORTED', 'commit is not available yet');
}
