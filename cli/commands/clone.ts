import type { Command } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { requireCredential, wipeCredential } from '../unlock.js';
import { Progress } from '../progress.js';

const usage = 'dvfs clone URL DIR [--password-file FILE | --identity FILE] [--json]';

export const cloneCommand: Command = {
  name: 'clone',
  summary: 'make a working repository in DIR from a remote (file:///path or s3://...)',
  usage,
  details: 'Unlocks with the repository password or with a member\'s identity (its key slot travels with the remote); the remote is recorded as origin. History comes along (manifests); the objects of HEAD are downloaded and placed in the working tree.',
  options: [...VOLUME_OPTIONS],
  async run(ctx) {
    const url = positional(ctx, 0, 'URL', usage);
    const dir = positional(ctx, 1, 'DIR', usage);
    const credential = await requireCredential(ctx.args, (m) => ctx.note(m));
    const [{ clone }, { silentLogger }] = await Promise.all([import('../../daemon/transfer/clone.js'), import('../../daemon/log.js')]);
    const progress = new Progress('clone');
    try {
      const r = await clone(url, dir, credential, silentLogger(), (d, t) => progress.update(d, t, 'objects'));
      progress.done();
      if (ctx.json) return printJson(ctx.out, r);
      ctx.out.write(`cloned ${r.remote} into ${r.repo}: HEAD ${r.snapshot.slice(0, 12)}, ${r.files} file(s), ${humanBytes(r.bytes)}; ${r.manifests} manifest(s), ${r.objects} object(s) downloaded; ${r.seconds.toFixed(2)} s\n`);
    } finally {
      progress.done();
      wipeCredential(credential);
    }
  },
};
