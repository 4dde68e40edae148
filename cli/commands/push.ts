import { DvfsError } from '../../daemon/errors.js';
import { parseByteSize } from '../../daemon/util/size.js';
import type { Command } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { Progress } from '../progress.js';
import { openStore, versionedRepo } from '../versioning.js';

const usage = 'dvfs push REPO [REMOTE|URL] [--connections N] [--pack-size SIZE] [--json]';

export const pushCommand: Command = {
  name: 'push',
  summary: 'upload the ciphertext of HEAD\'s history that a remote lacks (packed, sealed; resumable)',
  usage,
  details: [
    'REMOTE is a name from dvfs remote add (default origin) or a URL: file:///path, or',
    's3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT&region=R (credentials from the AWS_* environment or',
    'a 0600 file named by &credentials=FILE). Only ciphertext leaves: objects and manifests go up in sealed',
    'packs with a sealed index; the volume config (password-wrapped key) with a MAC. An interrupted push',
    '(killed, or the remote gone) resumes where its last index checkpoint left it: run it again.',
  ].join('\n'),
  options: [
    ...VOLUME_OPTIONS,
    { name: 'connections', type: 'string', value: 'N', description: 'parallel uploads (default 4)' },
    { name: 'pack-size', type: 'string', value: 'SIZE', description: 'pack size of a new remote, e.g. 16MiB (default 32MiB; an existing remote keeps its own)' },
  ],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const { resolveRemote } = await import('../../daemon/transfer/remotes.js');
    const url = await resolveRemote(repo.root, ctx.args.positionals[1]);
    const connArg = ctx.args.strings.get('connections')?.[0];
    const connections = connArg === undefined ? undefined : Number(connArg);
    if (connections !== undefined && (!Number.isSafeInteger(connections) || connections < 1 || connections > 64)) {
      throw new DvfsError('E_USAGE', '--connections must be an integer in 1..64');
    }
    const packArg = ctx.args.strings.get('pack-size')?.[0];
    const packSize = packArg === undefined ? undefined : parseByteSize(packArg);
    if (packSize === null || (packSize !== undefined && (packSize < 1024 || packSize > 1024 ** 3))) {
      throw new DvfsError('E_USAGE', `--pack-size ${packArg ?? ''} is not a size in 1KiB..1GiB`, { hint: 'write e.g. --pack-size 16MiB' });
    }
    const v = await openStore(ctx, repo);
    const progress = new Progress('push');
    try {
      const { push } = await import('../../daemon/transfer/push.js');
      const r = await push(v, url, {
        ...(connections === undefined ? {} : { connections }),
        ...(packSize === undefined ? {} : { packSize }),
        onProgress: (p) => progress.updateBytes({ items: p.blobs, totalItems: p.totalBlobs, bytes: p.bytes, totalBytes: p.totalBytes }, 'blobs'),
      });
      progress.done();
      if (ctx.json) return printJson(ctx.out, r);
      ctx.out.write(
        `pushed ${r.snapshot.slice(0, 12)} to ${r.remote}: ${r.objects} object(s), ${r.manifests} manifest(s) in ${r.packs} pack(s) + ${r.largeBlobs} large blob(s), ${humanBytes(r.bytesSent)}; ${r.skipped} already there; ${r.seconds.toFixed(2)} s\n`,
      );
    } finally {
      progress.done();
      v.close();
    }
  },
};
