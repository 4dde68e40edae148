import { resolve } from 'node:path';
import { hostname } from 'node:os';
import { createSession, saveSessionInfo } from '../../daemon/journal/sessions.js';
import { readHead } from '../../daemon/store/refs.js';
import { restoreToDirectory, restoreToTree, type RestoreStats } from '../../daemon/versioning/restore.js';
import { resolveSnapshot } from '../../daemon/versioning/snapshot-walk.js';
import type { Command } from '../command.js';
import { ensureObjects, FETCH_REMOTE_OPTION } from '../fetching.js';
import { humanBytes, printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { Progress } from '../progress.js';
import { openStore, refuseIfBusy, versionedRepo } from '../versioning.js';

const usage = 'dvfs restore REPO SNAPSHOT [PATH...] [--to DIR] [--force] [--remote NAME|URL] [--json]';

export const restoreCommand: Command = {
  name: 'restore',
  summary: 'bring back files of a snapshot: into the working tree, or decrypted into a plain directory',
  usage,
  details: [
    'Without --to, the working tree (unmounted) is made to match the snapshot at each PATH (default: all of',
    'it; entries the snapshot does not have are removed there). The restore is recorded like a mount session,',
    'so the next dvfs commit records it, without hashing anything. With --to DIR, plaintext copies are written',
    'below DIR (existing files are kept unless --force). Objects not stored locally (a clone holds only',
    "HEAD's) are fetched first from --remote or origin: only those below the PATHs.",
  ].join('\n'),
  options: [
    ...VOLUME_OPTIONS,
    FETCH_REMOTE_OPTION,
    { name: 'to', type: 'string', value: 'DIR', description: 'decrypt into this plain directory instead of the working tree' },
    { name: 'force', type: 'boolean', description: 'overwrite existing files in DIR; restore into a working tree with uncommitted changes' },
  ],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const ref = positional(ctx, 1, 'SNAPSHOT', usage);
    const paths = ctx.args.positionals.slice(2);
    const to = ctx.args.strings.get('to')?.[0];
    const force = ctx.args.flags.has('force');
    if (to === undefined) await refuseIfBusy(repo, { force, forceHint: ', or pass --force (the restore may overwrite them)', mountedHint: 'unmount it first, or restore a copy with --to DIR' });
    const v = await openStore(ctx, repo);
    const progress = new Progress('restore');
    let stats: RestoreStats;
    let id: string;
    try {
      const head = await readHead(repo.root);
      const snap = await resolveSnapshot(v.manifests, head, ref);
      id = snap.id;
      await ensureObjects(ctx, v, snap.id, paths);
      const onProgress = (files: number, bytes: number): void => progress.update(files, snap.snapshot.stats.files, humanBytes(bytes));
      if (to !== undefined) {
        stats = await restoreToDirectory(v, snap.id, paths, resolve(to), { overwrite: force, onProgress });
      } else {
        const { listing, journal } = await createSession(repo.root, { repoId: repo.meta?.id ?? '', mountpoint: `(restore of ${snap.id.slice(0, 12)})`, baseSnapshot: head, host: hostname() });
        try {
          stats = await restoreToTree(v, v.tree, snap.id, paths, { journal, onProgress });
        } finally {
          await journal.finish();
          await saveSessionInfo(listing.dir, journal);
          await journal.close();
        }
      }
    } finally {
      progress.done();
      v.close();
    }
    if (ctx.json) return printJson(ctx.out, { snapshot: id, to: to === undefined ? null : resolve(to), ...stats });
    ctx.out.write(
      `restored ${stats.files} file(s) (${humanBytes(stats.bytes)}), ${stats.dirs} dir(s), ${stats.symlinks} symlink(s) from ${id.slice(0, 12)}` +
        (to === undefined ? `; ${stats.unchanged} already matched, ${stats.removed} removed; commit to record it\n` : ` into ${resolve(to)}\n`),
    );
  },
};
