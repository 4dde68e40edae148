import { DvfsError } from '../../daemon/errors.js';
import type { ObjectId } from '../../daemon/store/content-hash.js';
import { readHead } from '../../daemon/store/refs.js';
import { verifySnapshot, type VerifyProblem } from '../../daemon/store/verify.js';
import type { Versioning } from '../../daemon/versioning/context.js';
import { resolveSnapshot } from '../../daemon/versioning/snapshot-walk.js';
import { readObject } from '../../daemon/versioning/working-files.js';
import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { Progress } from '../progress.js';
import { openStore, versionedRepo } from '../versioning.js';

const usage = 'dvfs verify REPO [SNAPSHOT] [--full] [--remote NAME|URL] [--json]';

export const verifyCommand: Command = {
  name: 'verify',
  summary: 'check that every snapshot (and with --full every object) is intact; exits 1 on any problem',
  usage,
  details: [
    'Checks HEAD and all its history (or one SNAPSHOT and its history): every manifest is read, authenticated',
    'and re-hashed, every object referenced must exist. --full also decrypts every object and checks that its',
    'plaintext hashes back to its id (catches flipped bytes, and objects changed in place behind dvfs\'s back).',
  ].join('\n'),
  options: [
    ...VOLUME_OPTIONS,
    { name: 'full', type: 'boolean', description: 'also decrypt and re-hash every object' },
    { name: 'remote', type: 'string', value: 'NAME', description: "check a remote instead: every blob of HEAD's history is there and opens under its seal" },
  ],
  async run(ctx) {
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const full = ctx.args.flags.has('full');
    const remoteArg = ctx.args.strings.get('remote')?.[0];
    const v = await openStore(ctx, repo);
    try {
      if (remoteArg !== undefined) {
        const [{ resolveRemote }, { verifyRemote }] = await Promise.all([import('../../daemon/transfer/remotes.js'), import('../../daemon/transfer/verify-remote.js')]);
        const progress = new Progress('verify');
        const r = await verifyRemote(v, await resolveRemote(repo.root, remoteArg), (d, t) => progress.update(d, t, 'blobs'));
        progress.done();
        if (ctx.json) printJson(ctx.out, r);
        else {
          for (const p of r.problems) ctx.out.write(`${p.kind}: ${p.type} ${p.id}: ${p.message}\n`);
          ctx.out.write(`${r.problems.length === 0 ? 'ok' : `${r.problems.length} problem(s)`}: ${r.checked.manifests} manifest(s), ${r.checked.objects} object(s) on ${r.remote} open under their seals\n`);
        }
        return r.problems.length === 0 ? 0 : 1;
      }
      const head = await readHead(repo.root);
      const ref = ctx.args.positionals[1];
      if (head === null && ref === undefined) {
        if (ctx.json) return printJson(ctx.out, { snapshot: null, checked: null, problems: [] });
        ctx.out.write('no snapshots yet: nothing to verify\n');
        return 0;
      }
      // HEAD is taken as it is: reading it is part of what verify checks (and reports).
      const id = ref === undefined ? (head as ObjectId) : (await resolveSnapshot(v.manifests, head, ref)).id;
      const progress = new Progress('verify');
      const total = head === null ? 0 : (await v.manifests.getSnapshot(id).catch(() => null))?.stats.files ?? 0;
      let decoded = 0;
      const decodeObject = async (objectId: ObjectId): Promise<void> => {
        const got = await readObject(v, objectId);
        progress.update(++decoded, Math.max(total, decoded), 'objects');
        if (got.id !== objectId) throw new DvfsError('E_INTEGRITY', 'its plaintext does not hash back to its id');
      };
      const report = await verifySnapshot(v.manifests, v.objects, id, { full, decodeObject, history: true });
      progress.done();
      const { problems, notFetched } = await separateNotFetched(v, id, report.problems);
      if (ctx.json) printJson(ctx.out, { ...report, problems, notFetched });
      else {
        for (const p of problems) ctx.out.write(`${p.kind}: ${p.id}${p.path ? ` (${p.path})` : ''}: ${p.message}\n`);
        const c = report.checked;
        ctx.out.write(`${problems.length === 0 ? 'ok' : `${problems.length} problem(s)`}: ${c.snapshots} snapshot(s), ${c.trees} tree(s), ${c.objects} object(s) checked${full ? `, ${c.decoded} decrypted and re-hashed` : ''}\n`);
        if (notFetched > 0) ctx.out.write(`${notFetched} object(s) of older snapshots are not fetched (they stay on the remote: dvfs fetch REPO SNAPSHOT brings them, dvfs verify REPO --remote NAME checks them there)\n`);
      }
      return problems.length === 0 ? 0 : 1;
    } finally {
      v.close();
    }
  },
};

/**
 * A clone holds only the objects of the snapshots it checked out; older snapshots' objects stay on its remote
 * until fetched. In a repository with a remote, an object missing here that the verified snapshot itself does
 * not need is such an object, not damage. Everything else stays a problem.
 */
async function separateNotFetched(v: Versioning, snapshot: ObjectId, all: readonly VerifyProblem[]): Promise<{ problems: VerifyProblem[]; notFetched: number }> {
  const missing = all.filter((p) => p.kind === 'missing-object');
  if (missing.length === 0) return { problems: [...all], notFetched: 0 };
  const [{ readRemotes }, { objectsUnder }] = await Promise.all([import('../../daemon/transfer/remotes.js'), import('../../daemon/transfer/fetch.js')]);
  if (Object.keys(await readRemotes(v.repo.root)).length === 0) return { problems: [...all], notFetched: 0 };
  const needed = await objectsUnder(v, snapshot).catch(() => new Set<ObjectId>());
  const problems = all.filter((p) => p.kind !== 'missing-object' || needed.has(p.id));
  return { problems, notFetched: new Set(missing.filter((p) => !needed.has(p.id)).map((p) => p.id)).size };
}
