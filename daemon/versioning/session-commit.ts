/**
 * Committing sessions whose daemon is gone (unmounted, crashed, or a `dvfs put` / `dvfs restore`): their
 * journals are opened here — no daemon holds them — and committed together as one snapshot, oldest first;
 * each is deleted once everything in it is in a snapshot.
 */
import { SessionJournal } from '../journal/journal.js';
import { recoverSession, removeSession, saveSessionInfo, type SessionListing } from '../journal/sessions.js';
import { commitJournals, type CommitReport, type CommitRequest } from './commit.js';
import type { Versioning } from './context.js';

export async function commitEndedSessions(v: Versioning, listings: readonly SessionListing[], request: CommitRequest): Promise<CommitReport> {
  const journals: SessionJournal[] = [];
  try {
    for (const listing of listings) journals.push(listing.orphaned ? await recoverSession(listing) : await SessionJournal.open(listing.journalDir));
    const report = await commitJournals(v, journals, request);
    for (const [i, journal] of journals.entries()) {
      const listing = listings[i] as SessionListing;
      listing.info = await saveSessionInfo(listing.dir, journal);
    }
    return report;
  } finally {
    for (const j of journals) await j.close().catch(() => undefined);
    for (const listing of listings) if (listing.info.state === 'committed') await removeSession(listing).catch(() => undefined);
  }
}
