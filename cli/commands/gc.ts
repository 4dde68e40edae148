import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { collect } from '../../daemon/store/gc.js';
import { withRepoLock } from '../../daemon/store/lock.js';
import { readHead } from '../../daemon/store/refs.js';
import { FROZEN_DIR } from '../../daemon/versioning/working-files.js';
import type { Command } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { Progress } from '../progress.js';
import { openStore, versionedRepo } from '../versioning.js';

const usage = 'dvfs gc REPO [--dry-run] [--json]';

/** `.dvfs/frozen` names whose working file was replaced (copy-on-write) mark nothing any more. */
async function cleanFrozen(dir: string, dryRun: boolean): Promise<number> {
  let n = 0;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const p = join(dir, name);
    if ((await stat(p)).nlink > 1) continue;
    if (!dryRun) await rm(p, { force: true });
    n++;
  }
  return n;
}

export const gcCommand: Command = {
  name: 'gc',
  summary: 'delete objects and manifests no snapshot reaches (left by interrupted commits)',
  usage,
  details: 'Every snapshot in the history of HEAD is kept. Runs under the repository lock.',
  options: [...VOLUME_OPTIONS, { name: 'dry-run', type: 'boolean', description: 'only report what would be deleted' }],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const dryRun = ctx.args.flags.has('dry-run');
    const v = await openStore(ctx, repo);
    try {
      const report = await withRepoLock(repo.root, { purpose: 'gc', waitMs: 60_000 }, async () => {
        const head = await readHead(repo.root);
        const progress = new Progress('gc');
        const r = await collect(repo.root, v.manifests, v.objects, head === null ? [] : [head], { dryRun, onProgress: (d, t) => progress.update(d, t) });
        progress.done();
        return { ...r, frozen: await cleanFrozen(join(v.metaDir, FROZEN_DIR), dryRun) };
      });
      if (ctx.json) return printJson(ctx.out, report);
      const verb = dryRun ? 'would delete' : 'deleted';
      ctx.out.write(
        `${verb} ${report.objects.count} object(s) (${humanBytes(report.objects.bytes)}, ${humanBytes(report.objects.bytesFreed)} freed) and ${report.manifests.count} manifest(s) (${humanBytes(report.manifests.bytes)}); ` +
          `${report.tempFiles} temporary file(s), ${report.frozen} stale copy-on-write marker(s); kept ${report.unreferenced.reachable.snapshots} snapshot(s)\n`,
      );
    } finally {
      v.close();
    }
  },
};
