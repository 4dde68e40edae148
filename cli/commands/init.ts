import { DvfsError } from '../../daemon/errors.js';
import { initRepository } from '../../daemon/repo/repository.js';
import { optionInt, optionString } from '../args.js';
import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { PASSWORD_OPTION, requirePassword } from '../password.js';
import { positional } from '../open.js';

const usage = 'dvfs init REPO --mode encfs [--preset standard|paranoia] --password-file FILE';

export const initCommand: Command = {
  name: 'init',
  summary: 'create a repository (its working tree is an EncFS volume in encfs mode)',
  usage,
  details:
    'The ciphertext tree is created at REPO/tree with its .encfs6.xml; stock encfs can mount it directly.\n' +
    'The PBKDF2 iteration count is timed like encfs does (500 ms standard, 3 s paranoia) unless --kdf-iterations is given.',
  options: [
    { name: 'mode', type: 'string', value: 'MODE', choices: ['encfs'], description: 'on-disk format (default encfs)' },
    { name: 'preset', type: 'string', value: 'NAME', choices: ['standard', 'paranoia'], description: 'EncFS preset (default standard)' },
    { name: 'kdf-iterations', type: 'string', value: 'N', description: 'PBKDF2 iterations instead of timing them' },
    PASSWORD_OPTION,
  ],
  async run(ctx) {
    const repoPath = positional(ctx, 0, 'REPO', usage);
    if (ctx.args.positionals.length > 1) throw new DvfsError('E_USAGE', 'too many arguments', { hint: `usage: ${usage}` });
    const password = await requirePassword(ctx.args, (m) => ctx.note(m));
    const preset = (optionString(ctx.args, 'preset') ?? 'standard') as 'standard' | 'paranoia';
    const kdfIterations = optionInt(ctx.args, 'kdf-iterations');
    if (kdfIterations === 0) throw new DvfsError('E_USAGE', '--kdf-iterations must be at least 1');
    const started = Date.now();
    const repo = await initRepository(repoPath, password, {
      mode: 'encfs',
      preset,
      ...(kdfIterations === undefined ? {} : { kdfIterations }),
    });
    if (ctx.json) printJson(ctx.out, { root: repo.root, mode: 'encfs', preset, encfsRoot: repo.encfsRoot, seconds: (Date.now() - started) / 1000 });
    else ctx.out.write(`created ${repo.root} (encfs mode, ${preset} preset); EncFS volume at ${repo.encfsRoot}\n`);
  },
};
