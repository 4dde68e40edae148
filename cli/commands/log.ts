import { readHead, history } from '../../daemon/store/refs.js';
import type { Command } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { openStore, versionedRepo } from '../versioning.js';

const usage = 'dvfs log REPO [-n N] [--json]';

export const logCommand: Command = {
  name: 'log',
  summary: 'list snapshots, newest first',
  usage,
  options: [...VOLUME_OPTIONS, { name: 'limit', short: 'n', type: 'string', value: 'N', description: 'show at most N snapshots' }],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const limitArg = ctx.args.strings.get('limit')?.[0];
    const limit = limitArg === undefined ? Infinity : Number(limitArg);
    const head = await readHead(repo.root);
    const v = await openStore(ctx, repo);
    try {
      const entries = [];
      for await (const e of history(v.manifests, head, { limit })) entries.push(e);
      if (ctx.json) return printJson(ctx.out, { head, snapshots: entries.map((e) => ({ id: e.id, ...e.snapshot })) });
      if (entries.length === 0) ctx.out.write('no snapshots yet (make one with: dvfs commit REPO)\n');
      for (const { id, snapshot: s } of entries) {
        const job = s.provenance.jobId ? ` job ${s.provenance.jobId}${s.provenance.arrayIndex !== undefined ? `_${s.provenance.arrayIndex}` : ''}` : '';
        ctx.out.write(`${id.slice(0, 12)}  ${s.time}  ${s.author}${job}  ${s.stats.files} files, ${humanBytes(s.stats.bytes)} (+${s.stats.added} ~${s.stats.changed} -${s.stats.removed})  ${s.message}\n`);
      }
    } finally {
      v.close();
    }
  },
};
