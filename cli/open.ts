/** Opening the repository or EncFS volume a command names, with the password the user gave. */
import { DvfsError } from '../daemon/errors.js';
import type { Repository } from '../daemon/repo/repository.js';
import type { CryptoTree } from '../daemon/vfs/crypto-tree.js';
import type { PlainView } from '../daemon/vfs/plain-view.js';
import type { OptionSpec } from './args.js';
import type { CommandContext } from './command.js';
import { requireCredential, UNLOCK_OPTIONS, wipeCredential } from './unlock.js';

export const CODEC_OPTION: OptionSpec = {
  name: 'codec',
  type: 'string',
  value: 'NAME',
  choices: ['auto', 'native', 'typescript'],
  env: 'DVFS_CODEC',
  description: 'block codec implementation (default auto: native when built)',
};

export const VOLUME_OPTIONS: OptionSpec[] = [...UNLOCK_OPTIONS, CODEC_OPTION];

export function positional(ctx: CommandContext, index: number, what: string, usage: string): string {
  const v = ctx.args.positionals[index];
  if (v === undefined) throw new DvfsError('E_USAGE', `missing ${what}`, { hint: `usage: ${usage}` });
  return v;
}

export interface OpenedRepo {
  repo: Repository;
  tree: CryptoTree;
  view: PlainView;
}

/** Locates the repository, reads the password or identity and opens its tree (any format) with a plaintext view. */
export async function openRepoView(ctx: CommandContext, repoPath: string): Promise<OpenedRepo> {
  // The format stacks load only here: commands that never open a tree start faster without them.
  const [{ locateRepository }, { openTree }, { PlainView }, { quietLog }] = await Promise.all([
    import('../daemon/repo/repository.js'),
    import('../daemon/repo/open-tree.js'),
    import('../daemon/vfs/plain-view.js'),
    import('../daemon/quiet-log.js'),
  ]);
  const repo = await locateRepository(repoPath);
  const credential = await requireCredential(ctx.args, (m) => ctx.note(m));
  const codec = ctx.args.strings.get('codec')?.[0] as 'auto' | 'native' | 'typescript' | undefined;
  try {
    const tree = await openTree(repo, credential, quietLog, codec === undefined ? {} : { codec });
    return { repo, tree, view: new PlainView(tree) };
  } finally {
    wipeCredential(credential);
  }
}

/** Normalises a volume path given on the command line ('/a/b', 'a/b/', '.') to 'a/b' ('' = root). */
export function volumePath(p: string): string {
  const parts = p.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new DvfsError('E_USAGE', `path '${p}' must not contain '..'`);
  return parts.join('/');
}
