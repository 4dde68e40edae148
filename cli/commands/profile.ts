import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { DvfsError } from '../../daemon/errors.js';
import { listProfiles, loadProfile } from '../../daemon/profile/load.js';
import { profileDocument } from '../../daemon/profile/schema.js';
import type { Command, CommandContext } from '../command.js';
import { printJson } from '../format.js';
import { positional } from '../open.js';

const usage = 'dvfs profile list [--repo REPO] | show NAME [--repo REPO] | validate NAME|FILE... [--repo REPO]';

async function repoRoot(ctx: CommandContext): Promise<string | null> {
  const repo = ctx.args.strings.get('repo')?.[0];
  if (repo === undefined) return null;
  const { locateRepository } = await import('../../daemon/repo/repository.js');
  return (await locateRepository(resolve(repo))).root;
}

export const profileCommand: Command = {
  name: 'profile',
  summary: 'list, show and validate mount profiles (stage layout, engine, SLURM options, policies)',
  usage,
  details: [
    'list: every profile REPO (REPO/.dvfs/profiles/) and dvfs (mount-profiles/) offer, and whether it loads.',
    'show: the profile as a stage gets it (repository defaults, the profile, built-in defaults merged).',
    'validate: checks profiles (names or files); every problem is reported as FILE:LINE:COL: key: problem.',
  ].join('\n'),
  options: [{ name: 'repo', type: 'string', value: 'REPO', description: "also the repository's profiles and its defaults.yaml" }],
  async run(ctx) {
    const action = positional(ctx, 0, 'ACTION (list, show or validate)', usage);
    const root = await repoRoot(ctx);
    if (action === 'list') {
      const all = await listProfiles(root);
      if (ctx.json) return printJson(ctx.out, all);
      const width = Math.max(8, ...all.map((p) => p.name.length)) + 2;
      for (const p of all) ctx.out.write(`${p.name.padEnd(width)}${p.error ? `INVALID: ${p.error.split('\n')[0]}` : p.description}\n`);
      return;
    }
    if (action === 'show') {
      const { profile, digest } = await loadProfile(positional(ctx, 1, 'NAME', usage), { repoRoot: root });
      if (ctx.json) return printJson(ctx.out, { ...profile, digest });
      ctx.out.write(`# ${profile.source} (sha256 ${digest.slice(0, 16)}...)\n${stringify(profileDocument(profile))}`);
      return;
    }
    if (action === 'validate') {
      const names = ctx.args.positionals.slice(1);
      if (names.length === 0) throw new DvfsError('E_USAGE', 'validate needs profile names or files', { hint: `usage: ${usage}` });
      const results: { profile: string; ok: boolean; error: string | null }[] = [];
      for (const name of names) {
        try {
          await loadProfile(name, { repoRoot: root });
          results.push({ profile: name, ok: true, error: null });
        } catch (e) {
          if (!(e instanceof DvfsError)) throw e;
          results.push({ profile: name, ok: false, error: e.oneLine() });
        }
      }
      if (ctx.json) printJson(ctx.out, results);
      else for (const r of results) (r.ok ? ctx.out : process.stderr).write(r.ok ? `${r.profile}: ok\n` : `dvfs: ${r.error}\n`);
      return results.every((r) => r.ok) ? 0 : 1;
    }
    throw new DvfsError('E_USAGE', `unknown profile action '${action}'`, { hint: `usage: ${usage}` });
  },
};
