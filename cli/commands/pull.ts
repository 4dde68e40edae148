import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { Progress } from '../progress.js';
import { openStore, refuseIfBusy, versionedRepo } from '../versioning.js';

const usage = 'dvfs pull REPO [REMOTE|URL] [--json]';

export const pullCommand: Command = {
  name: 'pull',
  summary: "bring a remote's newer snapshots and make the (unmounted) working tree match its HEAD",
  usage,
  details: 'Fast-forward only: refused when the local history has snapshots the remote lacks, or uncommitted changes.',
  options: [...VOLUME_OPTIONS],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    await refuseIfBusy(repo, { mountedHint: 'unmount it first' });
    const { resolveRemote } = await import('../../daemon/transfer/remotes.js');
    const url = await resolveRemote(repo.root, ctx.args.positionals[1]);
    const { adoptRemoteKeyring } = await import('../../daemon/keys/remote-epochs.js');
    if (await adoptRemoteKeyring(repo.root, url)) ctx.note('dvfs: took the newer key slots from the remote');
    const v = await openStore(ctx, repo);
    const progress = new Progress('pull');
    try {
      const { pull } = await import('../../daemon/transfer/pull.js');
      const r = await pull(v, url, (d, t) => progress.update(d, t, 'objects'));
      progress.done();
      if (ctx.json) return printJson(ctx.out, r);
      ctx.out.write(r.upToDate ? `already up to date (${r.to.slice(0, 12)})\n` : `pulled ${r.from?.slice(0, 12) ?? '(nothing)'} → ${r.to.slice(0, 12)} from ${r.remote}: ${r.objects} object(s), ${r.files} file(s) placed, ${r.removed} removed; ${r.seconds.toFixed(2)} s\n`);
    } finally {
      progress.done();
      v.close();
    }
  },
};
