import { DvfsError } from '../../daemon/errors.js';
import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { positional } from '../open.js';
import { versionedRepo } from '../versioning.js';

const usage = 'dvfs remote add REPO NAME URL | dvfs remote list REPO | dvfs remote remove REPO NAME';

export const remoteCommand: Command = {
  name: 'remote',
  summary: 'name the remotes a repository pushes to (file:///path, s3://BUCKET?endpoint=...)',
  usage,
  details: 'URLs hold no secrets: S3 credentials come from the AWS_* environment or a 0600 file (&credentials=FILE).',
  options: [],
  async run(ctx) {
    const sub = positional(ctx, 0, 'add, list or remove', usage);
    const repo = await versionedRepo(positional(ctx, 1, 'REPO', usage));
    const remotes = await import('../../daemon/transfer/remotes.js');
    if (sub === 'add') {
      const url = await remotes.addRemote(repo.root, positional(ctx, 2, 'NAME', usage), positional(ctx, 3, 'URL', usage));
      if (ctx.json) return printJson(ctx.out, { name: ctx.args.positionals[2], url });
      ctx.out.write(`${ctx.args.positionals[2]} → ${url}\n`);
    } else if (sub === 'list') {
      const all = await remotes.readRemotes(repo.root);
      if (ctx.json) return printJson(ctx.out, all);
      for (const [name, url] of Object.entries(all)) ctx.out.write(`${name}\t${url}\n`);
    } else if (sub === 'remove') {
      await remotes.removeRemote(repo.root, positional(ctx, 2, 'NAME', usage));
    } else {
      throw new DvfsError('E_USAGE', `unknown subcommand ${JSON.stringify(sub)}`, { hint: `usage: ${usage}` });
    }
  },
};
