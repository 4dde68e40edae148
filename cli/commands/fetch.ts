import { readHead } from '../../daemon/store/refs.js';
import { resolveSnapshot } from '../../daemon/versioning/snapshot-walk.js';
import type { Command } from '../command.js';
import { ensureObjects, FETCH_REMOTE_OPTION } from '../fetching.js';
import { humanBytes, printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { openStore, versionedRepo } from '../versioning.js';

const usage = 'dvfs fetch REPO [SNAPSHOT [PATH...]] [--remote NAME|URL] [--json]';

export const fetchCommand: Command = {
  name: 'fetch',
  summary: 'download the objects a snapshot needs (below PATHs) that are not stored locally',
  usage,
  details: [
    'A clone holds only the objects of HEAD; restore and mount --snapshot fetch what they need by themselves.',
    'fetch does it ahead of time (e.g. on a login node before a job runs on a node without network). SNAPSHOT',
    'defaults to HEAD; PATHs (default: all) limit it to those files and directories. Nothing is decrypted.',
  ].join('\n'),
  options: [...VOLUME_OPTIONS, FETCH_REMOTE_OPTION],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const ref = ctx.args.positionals[1] ?? 'HEAD';
    const paths = ctx.args.positionals.slice(2);
    const v = await openStore(ctx, repo);
    try {
      const snap = await resolveSnapshot(v.manifests, await readHead(repo.root), ref);
      const r = await ensureObjects(ctx, v, snap.id, paths);
      if (ctx.json) return printJson(ctx.out, r);
      ctx.out.write(
        r.fetched === 0
          ? `all ${r.needed} object(s) of ${snap.id.slice(0, 12)}${paths.length ? ' below the paths given' : ''} are stored locally\n`
          : `fetched ${r.fetched} object(s) (${humanBytes(r.bytes)}) of ${snap.id.slice(0, 12)} from ${r.remote}; ${r.present} were here already; ${r.seconds.toFixed(2)} s\n`,
      );
    } finally {
      v.close();
    }
  },
};
