import { EncfsVolume } from '../../daemon/encfs/volume.js';
import { locateRepository, openVolume } from '../../daemon/repo/repository.js';
import { optionString } from '../args.js';
import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { readPasswordFile } from '../password.js';
import { CODEC_OPTION, positional } from '../open.js';
import { PASSWORD_OPTION } from '../password.js';

const usage = 'dvfs info REPO [--password-file FILE] [--json]';

export const infoCommand: Command = {
  name: 'info',
  summary: 'describe a repository or EncFS volume (checks the password when one is given)',
  usage,
  options: [PASSWORD_OPTION, CODEC_OPTION],
  async run(ctx) {
    const repo = await locateRepository(positional(ctx, 0, 'REPO', usage));
    const config = await EncfsVolume.readConfig(repo.encfsRoot);
    const passwordFile = optionString(ctx.args, 'password-file');
    let unlocked: { codec: string } | null = null;
    if (passwordFile !== undefined) {
      const volume = await openVolume(repo, await readPasswordFile(passwordFile, (m) => ctx.note(m)));
      unlocked = { codec: volume.content.blocks.name };
    }
    const info = {
      root: repo.root,
      kind: repo.kind,
      mode: 'encfs',
      id: repo.meta?.id ?? null,
      encfsRoot: repo.encfsRoot,
      encfs: {
        creator: config.creator,
        subVersion: config.subVersion,
        cipher: `${config.cipherAlg.name} ${config.cipherAlg.major}.${config.cipherAlg.minor}`,
        keySize: config.keySize,
        blockSize: config.blockSize,
        nameCodec: `${config.nameAlg.name} ${config.nameAlg.major}.${config.nameAlg.minor}`,
        uniqueIV: config.uniqueIV,
        chainedNameIV: config.chainedNameIV,
        externalIVChaining: config.externalIVChaining,
        blockMACBytes: config.blockMACBytes,
        blockMACRandBytes: config.blockMACRandBytes,
        allowHoles: config.allowHoles,
        kdfIterations: config.kdfIterations,
      },
      unlocked: unlocked !== null,
      codec: unlocked?.codec ?? null,
    };
    if (ctx.json) return printJson(ctx.out, info);
    const e = info.encfs;
    const lines = [
      `repository:  ${info.root} (${info.kind === 'dvfs' ? 'dvfs repository' : 'stock EncFS volume'})`,
      `encfsRoot:   ${info.encfsRoot}`,
      `cipher:      ${e.cipher}, ${e.keySize}-bit key, ${e.blockSize}-byte blocks`,
      `names:       ${e.nameCodec}${e.chainedNameIV ? ', chained IVs' : ''}`,
      `contents:    ${e.uniqueIV ? 'per-file IV header' : 'no per-file IV'}${e.externalIVChaining ? ', external IV chaining' : ''}` +
        `${e.blockMACBytes ? `, ${e.blockMACBytes}-byte block MACs` : ''}${e.blockMACRandBytes ? ` + ${e.blockMACRandBytes} random bytes` : ''}` +
        `${e.allowHoles ? ', holes allowed' : ''}`,
      `kdf:         PBKDF2-HMAC-SHA1, ${e.kdfIterations} iterations`,
      `created by:  ${e.creator || '(unknown)'}`,
      unlocked ? `password:    ok (codec: ${unlocked.codec})` : 'password:    not checked (give --password-file)',
    ];
    ctx.out.write(lines.join('\n') + '\n');
  },
};
