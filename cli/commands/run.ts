import { DvfsError } from '../../daemon/errors.js';
import { ENGINES, type EngineName } from '../../daemon/profile/schema.js';
import type { StageResult } from '../../daemon/stage/runner.js';
import type { Command, CommandContext } from '../command.js';
import { printJson } from '../format.js';
import { CODEC_OPTION, positional } from '../open.js';
import { requireCredential, UNLOCK_OPTIONS, wipeCredential } from '../unlock.js';

const usage =
  'dvfs run REPO [--profile P] [--engine E] [--image I] [--input PATH]... [--output PATH]... [--glob PAT] [--force] [--defer-commit] [--json] -- CMD...';

/** One line per run for people. */
export function describeRun(r: StageResult): string {
  const what = r.input === null ? '' : ` ${r.input}:`;
  const id = r.identity.slice(0, 12);
  if (r.status === 'reused') return `${what} reused stage ${id} from ${r.reusedFrom?.slice(0, 12)}${r.snapshot ? ` (snapshot ${r.snapshot.slice(0, 12)})` : ''}`.trim();
  const head = r.status === 'ran' ? `ran stage ${id}` : `stage ${id} failed (${r.error ?? `exit ${r.exitCode}`})`;
  const after =
    r.decision === 'committed' ? `snapshot ${r.snapshot?.slice(0, 12)}` : r.decision === 'deferred' ? `commit deferred, session ${r.sessionId}` : `${r.decision}, not committed`;
  return `${what} ${head} in ${r.engine}${r.attempts > 1 ? ` after ${r.attempts} attempts` : ''}: ${after}`.trim();
}

/** Exit status of dvfs run: 0 when every run ran or was reused, else the first failed command's status (or 1). */
export function runExitCode(results: readonly StageResult[]): number {
  const failed = results.find((r) => r.status === 'failed');
  if (!failed) return 0;
  return failed.exitCode !== null && failed.exitCode > 0 && failed.exitCode < 256 ? failed.exitCode : 1;
}

export async function runFromContext(ctx: CommandContext, command: string[], extra: { force?: boolean } = {}): Promise<number> {
  const repo = positional(ctx, 0, 'REPO', usage);
  const engine = ctx.args.strings.get('engine')?.[0] as EngineName | undefined;
  const credential = await requireCredential(ctx.args, (m) => ctx.note(m));
  const { runStage } = await import('../../daemon/stage/runner.js');
  const str = (name: string): string | undefined => ctx.args.strings.get(name)?.[0];
  const profile = str('profile');
  const image = str('image');
  const glob = str('glob');
  const message = str('message');
  const codec = str('codec') as 'auto' | 'native' | 'typescript' | undefined;
  try {
    const results = await runStage({
      repo,
      command,
      credential,
      inputs: ctx.args.strings.get('input') ?? [],
      outputs: ctx.args.strings.get('output') ?? [],
      force: extra.force ?? ctx.args.flags.has('force'),
      deferCommit: ctx.args.flags.has('defer-commit'),
      stageStdout: ctx.json ? 'stderr' : 'inherit',
      note: (m) => ctx.note(m),
      ...(profile === undefined ? {} : { profile }),
      ...(engine === undefined ? {} : { engine }),
      ...(image === undefined ? {} : { image }),
      ...(glob === undefined ? {} : { glob }),
      ...(message === undefined ? {} : { message }),
      ...(codec === undefined ? {} : { codec }),
    });
    if (ctx.json) {
      if (glob === undefined) printJson(ctx.out, results[0]);
      else printJson(ctx.out, { glob, ran: results.filter((r) => r.status === 'ran').length, reused: results.filter((r) => r.status === 'reused').length, failed: results.filter((r) => r.status === 'failed').length, runs: results });
    } else for (const r of results) ctx.out.write(describeRun(r) + '\n');
    return runExitCode(results);
  } finally {
    wipeCredential(credential);
  }
}

export const RUN_OPTIONS = [
  ...UNLOCK_OPTIONS,
  CODEC_OPTION,
  { name: 'profile', type: 'string', value: 'P', description: 'mount profile: a name (REPO/.dvfs/profiles, then mount-profiles/) or a .yaml file (default: local)' },
  { name: 'engine', type: 'string', value: 'E', choices: ENGINES, description: "container engine (overrides the profile's)" },
  { name: 'image', type: 'string', value: 'I', description: 'image: docker/podman/sarus reference, apptainer .sif, bubblewrap root filesystem directory' },
  { name: 'input', type: 'string', value: 'PATH', repeatable: true, description: "repository path the stage reads (replaces the profile's layout.reads)" },
  { name: 'output', type: 'string', value: 'PATH', repeatable: true, description: "repository path the stage owns (replaces the profile's layout.writes)" },
  { name: 'message', short: 'm', type: 'string', value: 'MSG', description: 'snapshot message (default: says which stage ran)' },
] as const satisfies readonly import('../args.js').OptionSpec[];

export const runCommand: Command = {
  name: 'run',
  summary: 'run a workflow stage in its container on a mount of the repository, record its provenance, commit',
  usage,
  details: [
    'Mounts REPO on a guarded mountpoint, runs CMD there (engine none) or in the profile\'s container with the',
    'mount bound at the profile\'s target, working directory = the mount, DVFS_MOUNT = its path as CMD sees it;',
    'then unmounts and commits per the profile\'s commit policy, with the provenance (command, exit status,',
    'image and digest, profile, inputs and their content ids, host, times, SLURM job).',
    'A stage whose identity (command, image digest, profile, content ids of its inputs in HEAD) has a committed',
    'run whose outputs HEAD still holds is reused instead of run (--force runs it anyway). --glob fans out one',
    'run per committed path matching PAT ({input} in the profile and CMD is the match).',
    '--defer-commit leaves the run uncommitted with its stage record; dvfs commit REPO commits it later.',
    'Exit status: 0 when the stage ran or was reused, else the failed command\'s exit status.',
  ].join('\n'),
  options: [
    ...RUN_OPTIONS,
    { name: 'glob', type: 'string', value: 'PAT', description: 'one run per committed path matching PAT (e.g. raw/*/t1); only the matches without a committed result run' },
    { name: 'force', type: 'boolean', description: 'run even when a committed run with the same identity exists' },
    { name: 'defer-commit', type: 'boolean', description: 'record the run next to its session but do not commit (dvfs commit REPO does, later)' },
  ],
  async run(ctx) {
    if (ctx.args.rest.length === 0) throw new DvfsError('E_USAGE', 'no command to run', { hint: `usage: ${usage}` });
    if (ctx.args.positionals.length > 1) throw new DvfsError('E_USAGE', `unexpected argument '${ctx.args.positionals[1]}' (the command goes after --)`, { hint: `usage: ${usage}` });
    return runFromContext(ctx, ctx.args.rest);
  },
};
