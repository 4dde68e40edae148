import { readFile } from 'node:fs/promises';
import { ctlCommit } from '../../daemon/ctl/client.js';
import { DvfsError } from '../../daemon/errors.js';
import { readHead } from '../../daemon/store/refs.js';
import { slurmProvenance } from '../../daemon/stage/slurm-env.js';
import type { Provenance } from '../../daemon/store/manifest-schema.js';
import type { CommitReport, CommitRequest } from '../../daemon/versioning/commit.js';
import type { Versioning } from '../../daemon/versioning/context.js';
import type { Command, CommandContext } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { Progress } from '../progress.js';
import { liveSessions, openStore, sessionNotFound, versionedRepo } from '../versioning.js';

const usage = 'dvfs commit REPO [-m MESSAGE] [--session ID | --all] [--rescan] [--force] [--json]';

async function readProvenance(file: string | undefined): Promise<Provenance> {
  // SLURM's environment fills in what the user did not give (a commit in an epilogue or a job step).
  const fromEnv: Provenance = slurmProvenance();
  if (file === undefined) return fromEnv;
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (e) {
    throw new DvfsError('E_USAGE', `cannot read provenance: ${(e as Error).message}`, { path: file, hint: 'give a JSON object like {"command":["python","train.py"],"image":"..."}' });
  }
  const { checkProvenance } = await import('../../daemon/store/manifest-schema.js');
  try {
    return checkProvenance({ ...fromEnv, ...(value as object) });
  } catch (e) {
    throw new DvfsError('E_USAGE', `bad provenance: ${(e as Error).message}`, { path: file });
  }
}

function describe(r: CommitReport): string {
  if (r.nothingToCommit) return `nothing to commit${r.session ? ` in session ${r.session}` : ''} (HEAD ${r.snapshot?.slice(0, 12) ?? 'empty'})`;
  return [
    `snapshot ${r.snapshot?.slice(0, 12)}${r.session ? ` (session ${r.session})` : ' (rescan)'}: ${r.added} added, ${r.changed} changed, ${r.renamed} renamed, ${r.removed} removed`,
    `  ${r.filesHashed} file(s) hashed, ${humanBytes(r.bytesHashed)} (${r.filesRehashed} read back, ${humanBytes(r.bytesRehashed)}); ${r.objectsAdded} new object(s), ${humanBytes(r.bytesStored)}; ${r.files} files, ${humanBytes(r.bytes)} in the snapshot; ${r.seconds.toFixed(2)} s`,
    ...(r.leftOpen > 0 ? [`  ${r.leftOpen} file(s) still open for writing were left for the next commit`] : []),
    ...(r.skipped > 0 ? [`  ${r.skipped} special file(s) (fifos, sockets) are not versioned`] : []),
  ].join('\n');
}

function total(reports: CommitReport[], head: string | null, seconds: number): Record<string, unknown> {
  const sum = (k: keyof CommitReport): number => reports.reduce((n, r) => n + (typeof r[k] === 'number' ? (r[k] as number) : 0), 0);
  const last = reports.filter((r) => !r.nothingToCommit).at(-1);
  return {
    // The snapshot this command made (HEAD may have moved on meanwhile: another session's commit); else HEAD.
    snapshot: last?.snapshot ?? head,
    nothingToCommit: reports.every((r) => r.nothingToCommit),
    added: sum('added'),
    changed: sum('changed'),
    renamed: sum('renamed'),
    removed: sum('removed'),
    files: last?.files ?? 0,
    bytes: last?.bytes ?? 0,
    filesHashed: sum('filesHashed'),
    bytesHashed: sum('bytesHashed'),
    filesRehashed: sum('filesRehashed'),
    bytesRehashed: sum('bytesRehashed'),
    objectsAdded: sum('objectsAdded'),
    objectsLinked: sum('objectsLinked'),
    bytesStored: sum('bytesStored'),
    trees: sum('trees'),
    leftOpen: sum('leftOpen'),
    skipped: sum('skipped'),
    seconds,
    commits: reports,
  };
}

export const commitCommand: Command = {
  name: 'commit',
  summary: 'record what changed as a snapshot (asks running mounts over their control socket)',
  usage,
  details: [
    'By default every uncommitted session is committed, oldest first, one snapshot each: running mounts',
    'commit their own journal (no password needed), ended ones are replayed here. Nothing is re-hashed',
    'that was hashed while it was written. --rescan also compares the whole working tree with the last',
    'snapshot by stat, to find changes made behind dvfs\'s back (stock encfs, copies into the ciphertext).',
    'SLURM_JOB_ID / SLURM_ARRAY_TASK_ID go into the provenance; --provenance FILE adds a JSON record',
    '(command, exitStatus, image, imageDigest, profile, inputs...).',
  ].join('\n'),
  options: [
    ...VOLUME_OPTIONS,
    { name: 'message', short: 'm', type: 'string', value: 'MSG', description: 'what this snapshot is' },
    { name: 'author', type: 'string', value: 'NAME', description: 'who made it (default user@host)' },
    { name: 'session', type: 'string', value: 'ID', description: 'commit only this session' },
    { name: 'all', type: 'boolean', description: 'commit every ended (unmounted) session, not running ones' },
    { name: 'rescan', type: 'boolean', description: 'also find changes made behind dvfs\'s back (stat comparison)' },
    { name: 'force', type: 'boolean', description: "keep this session's version of paths another session committed meanwhile" },
    { name: 'provenance', type: 'string', value: 'FILE', description: 'JSON provenance record to store with the snapshot' },
  ],
  async run(ctx: CommandContext) {
    const started = performance.now();
    const repo = await versionedRepo(positional(ctx, 0, 'REPO', usage));
    const only = ctx.args.strings.get('session')?.[0];
    const all = ctx.args.flags.has('all');
    if (only !== undefined && all) throw new DvfsError('E_USAGE', '--session and --all exclude each other');
    const message = ctx.args.strings.get('message')?.[0];
    const author = ctx.args.strings.get('author')?.[0];
    const provenance = await readProvenance(ctx.args.strings.get('provenance')?.[0]);
    const force = ctx.args.flags.has('force');
    const request: CommitRequest = { provenance, force, ...(message === undefined ? {} : { message }), ...(author === undefined ? {} : { author }) };

    const { live, ended: allEnded, foreign } = await liveSessions(repo);
    let running = all ? [] : live;
    let ended = allEnded;
    if (only !== undefined) {
      running = running.filter((l) => l.listing.id === only);
      ended = ended.filter((e) => e.id === only);
      if (running.length + ended.length === 0) throw sessionNotFound(only);
    }
    if (foreign.length > 0 && !ctx.json) ctx.note(`note: ${foreign.length} session(s) run on other hosts or are unreachable; commit them there`);

    const head = await readHead(repo.root);
    const rescan = ctx.args.flags.has('rescan') || (head === null && running.length + ended.length === 0);
    let v: Versioning | null = null;
    const reports: CommitReport[] = [];
    const progress = new Progress('commit');
    const onProgress = (d: number, t: number): void => progress.update(d, t, 'files');
    try {
      // Ended sessions first (they are older than any running one's latest changes), merged into one snapshot.
      // Runs of dvfs run --defer-commit: each is its own snapshot, per its profile's commit policy.
      const { hasStageRecord } = await import('../../daemon/stage/record.js');
      const staged = ended.filter((e) => hasStageRecord(e.dir));
      ended = ended.filter((e) => !hasStageRecord(e.dir));
      if (staged.length > 0) {
        v ??= await openStore(ctx, repo);
        const { commitStageSessions } = await import('../../daemon/stage/deferred.js');
        const outcomes = await commitStageSessions(v, staged, { force, note: (m) => ctx.note(m), ...(author === undefined ? {} : { author }) });
        for (const o of outcomes) if (o.report) reports.push(o.report);
      }
      if (ended.length > 0) {
        v ??= await openStore(ctx, repo);
        const { commitEndedSessions } = await import('../../daemon/versioning/session-commit.js');
        reports.push(await commitEndedSessions(v, ended, { ...request, onProgress }));
        progress.done();
      }
      for (const l of running) {
        reports.push(await ctlCommit(l.record.socket, 24 * 3600_000, { message, author, force, provenance }));
      }
      if (rescan) {
        v ??= await openStore(ctx, repo);
        const { commitRescan } = await import('../../daemon/versioning/commit.js');
        reports.push(await commitRescan(v, { ...request, onProgress }));
        progress.done();
      }
    } finally {
      v?.close();
    }
    const finalHead = await readHead(repo.root);
    const seconds = (performance.now() - started) / 1000;
    if (ctx.json) return printJson(ctx.out, total(reports, finalHead, seconds));
    if (reports.length === 0) ctx.out.write(`nothing to commit (HEAD ${finalHead?.slice(0, 12) ?? 'empty'})\n`);
    for (const r of reports) ctx.out.write(describe(r) + '\n');
  },
};
