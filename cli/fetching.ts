/**
 * Objects a command needs that are not stored locally (a clone holds only HEAD's objects) come from a remote:
 * `--remote NAME|URL`, else the repository's `origin`. Shared by fetch, restore and mount --snapshot.
 */
import { DvfsError } from '../daemon/errors.js';
import type { ObjectId } from '../daemon/store/object-id.js';
import type { FetchReport } from '../daemon/transfer/fetch.js';
import type { Versioning } from '../daemon/versioning/context.js';
import type { OptionSpec } from './args.js';
import type { CommandContext } from './command.js';
import { Progress } from './progress.js';

export const FETCH_REMOTE_OPTION: OptionSpec = {
  name: 'remote',
  type: 'string',
  value: 'NAME|URL',
  description: 'where objects not stored locally come from (default: origin)',
};

/** Fetches what `snapshot` needs below `paths` and is not stored locally; quiet and offline when nothing is missing. */
export async function ensureObjects(ctx: CommandContext, v: Versioning, snapshot: ObjectId, paths: readonly string[]): Promise<FetchReport> {
  const [{ fetchSnapshotObjects }, { readRemotes, resolveRemote, DEFAULT_REMOTE }] = await Promise.all([
    import('../daemon/transfer/fetch.js'),
    import('../daemon/transfer/remotes.js'),
  ]);
  const given = ctx.args.strings.get(FETCH_REMOTE_OPTION.name)?.[0];
  const progress = new Progress('fetch');
  try {
    return await fetchSnapshotObjects(
      v,
      async (missing) => {
        if (given === undefined && (await readRemotes(v.repo.root))[DEFAULT_REMOTE] === undefined) {
          throw new DvfsError('E_NOTFOUND', `${missing} object(s) of snapshot ${snapshot.slice(0, 12)} are not stored locally, and the repository has no remote to fetch them from`, {
            path: v.repo.root,
            hint: `name one with --remote URL, or add it: dvfs remote add REPO ${DEFAULT_REMOTE} URL`,
          });
        }
        const url = await resolveRemote(v.repo.root, given);
        if (!ctx.json) ctx.note(`dvfs: fetching ${missing} object(s) of ${snapshot.slice(0, 12)} from ${url}`);
        return url;
      },
      snapshot,
      paths,
      (p) => progress.updateBytes({ items: p.objects, totalItems: p.totalObjects, bytes: p.bytes, totalBytes: 0 }),
    );
  } finally {
    progress.done();
  }
}

/**
 * `mount --snapshot REF`: the view is assembled from local objects, so the missing ones come down first.
 * Only where they can come from (`--remote`, or an origin: a clone): elsewhere every object is local, and
 * unlocking here as well as in the mount daemon would double the key derivation for nothing.
 */
export async function prefetchSnapshot(ctx: CommandContext, repoPath: string, ref: string): Promise<void> {
  const [{ openStore, versionedRepo }, { readHead }, { resolveSnapshot }, { readRemotes, DEFAULT_REMOTE }] = await Promise.all([
    import('./versioning.js'),
    import('../daemon/store/refs.js'),
    import('../daemon/versioning/snapshot-walk.js'),
    import('../daemon/transfer/remotes.js'),
  ]);
  const repo = await versionedRepo(repoPath);
  if (ctx.args.strings.get(FETCH_REMOTE_OPTION.name) === undefined && (await readRemotes(repo.root))[DEFAULT_REMOTE] === undefined) return;
  const v = await openStore(ctx, repo);
  try {
    const snap = await resolveSnapshot(v.manifests, await readHead(repo.root), ref);
    await ensureObjects(ctx, v, snap.id, []);
  } finally {
    v.close();
  }
}
