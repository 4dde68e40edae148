import sodium from 'sodium-native';
import { DvfsError } from '../../daemon/errors.js';
import { initRepository } from '../../daemon/repo/repository.js';
import { optionInt, optionString } from '../args.js';
import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { PASSWORD_OPTION, requirePassword } from '../password.js';
import { positional } from '../open.js';

const usage = 'dvfs init REPO [--mode encfs|native] [--preset standard|paranoia] --password-file FILE';

export const initCommand: Command = {
  name: 'init',
  summary: 'create a repository (its working tree is an EncFS volume in encfs mode, authenticated in native mode)',
  usage,
  details:
    'encfs mode: the ciphertext tree at REPO/tree is an EncFS volume with its .encfs6.xml; stock encfs mounts it.\n' +
    'The PBKDF2 iteration count is timed like encfs does (500 ms standard, 3 s paranoia) unless --kdf-iterations is given.\n' +
    'native mode: contents and names are sealed with XChaCha20-Poly1305 (tampering, reordering and truncation are\n' +
    'detected); the password is stretched with Argon2id (--kdf-profile, default moderate).',
  options: [
    { name: 'mode', type: 'string', value: 'MODE', choices: ['encfs', 'native'], description: 'on-disk format (default encfs)' },
    { name: 'preset', type: 'string', value: 'NAME', choices: ['standard', 'paranoia'], description: 'EncFS preset (default standard)' },
    { name: 'kdf-iterations', type: 'string', value: 'N', description: 'encfs mode: PBKDF2 iterations instead of timing them' },
    { name: 'kdf-profile', type: 'string', value: 'NAME', choices: ['min', 'interactive', 'moderate', 'sensitive'], description: 'native mode: Argon2id cost (min is for tests only)' },
    { name: 'chunk-size', type: 'string', value: 'BYTES', description: 'native mode: plaintext bytes per sealed chunk (default 4096)' },
    PASSWORD_OPTION,
  ],
  async run(ctx) {
    const repoPath = positional(ctx, 0, 'REPO', usage);
    if (ctx.args.positionals.length > 1) throw new DvfsError('E_USAGE', 'too many arguments', { hint: `usage: ${usage}` });
    const password = await requirePassword(ctx.args, (m) => ctx.note(m));
    const preset = (optionString(ctx.args, 'preset') ?? 'standard') as 'standard' | 'paranoia';
    const kdfIterations = optionInt(ctx.args, 'kdf-iterations');
    if (kdfIterations === 0) throw new DvfsError('E_USAGE', '--kdf-iterations must be at least 1');
    const mode = (optionString(ctx.args, 'mode') ?? 'encfs') as 'encfs' | 'native';
    const chunkSize = optionInt(ctx.args, 'chunk-size');
    const started = Date.now();
    const repo = await initRepository(repoPath, password, {
      mode,
      preset,
      ...(kdfIterations === undefined ? {} : { kdfIterations }),
      native: { ...argon2Profile(optionString(ctx.args, 'kdf-profile') ?? 'moderate'), ...(chunkSize === undefined ? {} : { chunkSize }) },
    });
    const seconds = (Date.now() - started) / 1000;
    if (ctx.json) printJson(ctx.out, { root: repo.root, mode, preset: mode === 'encfs' ? preset : null, tree: repo.tree, encfsRoot: repo.encfsRoot, seconds });
    else if (mode === 'encfs') ctx.out.write(`created ${repo.root} (encfs mode, ${preset} preset); EncFS volume at ${repo.encfsRoot}\n`);
    else ctx.out.write(`created ${repo.root} (native mode); ciphertext tree at ${repo.tree}\n`);
  },
};

function argon2Profile(name: string): { opslimit: number; memlimit: number } {
  switch (name) {
    case 'min':
      return { opslimit: sodium.crypto_pwhash_OPSLIMIT_MIN, memlimit: sodium.crypto_pwhash_MEMLIMIT_MIN };
    case 'interactive':
      return { opslimit: sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE, memlimit: sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE };
    case 'sensitive':
      return { opslimit: sodium.crypto_pwhash_OPSLIMIT_SENSITIVE, memlimit: sodium.crypto_pwhash_MEMLIMIT_SENSITIVE };
    default:
      return { opslimit: sodium.crypto_pwhash_OPSLIMIT_MODERATE, memlimit: sodium.crypto_pwhash_MEMLIMIT_MODERATE };
  }
}
