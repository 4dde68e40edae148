import { readHead } from '../../daemon/store/refs.js';
import { diffTrees, type DiffEntry } from '../../daemon/versioning/diff.js';
import { resolveSnapshot, SnapshotReader } from '../../daemon/versioning/snapshot-walk.js';
import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { openStore, versionedRepo } from '../versioning.js';

const usage = 'dvfs diff REPO [A [B]] [--json]';
const MARK: Record<DiffEntry['status'], string> = { added: 'A', changed: 'M', removed: 'D' };

export const diffCommand: Command = {
  name: 'diff',
  summary: 'list the paths that differ between two snapshots (default: HEAD~1 and HEAD; one given: it and HEAD)',
  usage,
  details: 'Uncommitted changes of the working tree are shown by dvfs status REPO.',
  options: [...VOLUME_OPTIONS],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const a = ctx.args.positionals[1] ?? 'HEAD~1';
    const b = ctx.args.positionals[2] ?? 'HEAD';
    const v = await openStore(ctx, repo);
    try {
      const head = await readHead(repo.root);
      const left = await resolveSnapshot(v.manifests, head, a);
      const right = await resolveSnapshot(v.manifests, head, b);
      const entries = await diffTrees(new SnapshotReader(v.manifests), left.snapshot.tree, right.snapshot.tree);
      if (ctx.json) return printJson(ctx.out, { from: left.id, to: right.id, entries });
      for (const e of entries) ctx.out.write(`${MARK[e.status]} ${e.path}${e.kind === 'dir' ? '/' : ''}${e.what && !e.what.includes('content') ? ` (${e.what.join(', ')})` : ''}\n`);
    } finally {
      v.close();
    }
  },
};
