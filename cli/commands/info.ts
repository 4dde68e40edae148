import { EncfsTree } from '../../daemon/encfs/tree.js';
import { EncfsVolume } from '../../daemon/encfs/volume.js';
import { quietLog } from '../../daemon/quiet-log.js';
import { NATIVE_CONFIG_FILE, readNativeConfig } from '../../daemon/native/config.js';
import { openTree } from '../../daemon/repo/open-tree.js';
import { locateRepository } from '../../daemon/repo/repository.js';
import { join } from 'node:path';
import { optionString } from '../args.js';
import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { CODEC_OPTION, positional } from '../open.js';
import { requireCredential, UNLOCK_OPTIONS, wipeCredential } from '../unlock.js';

const usage = 'dvfs info REPO [--password-file FILE | --identity FILE] [--json]';

export const infoCommand: Command = {
  name: 'info',
  summary: 'describe a repository or volume and its key slots (checks the password or identity when one is given)',
  usage,
  options: [...UNLOCK_OPTIONS, CODEC_OPTION],
  async run(ctx) {
    const repo = await locateRepository(positional(ctx, 0, 'REPO', usage));
    const unlock = optionString(ctx.args, 'password-file') ?? optionString(ctx.args, 'identity');
    let codec: string | null = null;
    if (unlock !== undefined) {
      const credential = await requireCredential(ctx.args, (m) => ctx.note(m));
      const tree = await openTree(repo, credential, quietLog).finally(() => wipeCredential(credential));
      codec = tree instanceof EncfsTree ? tree.volume.content.blocks.name : 'libsodium';
      tree.dispose?.();
    }
    const { listMembers } = await import('../../daemon/keys/admin.js');
    const ring = repo.kind === 'dvfs' ? await listMembers(repo) : null;
    const keySlots = ring === null ? null : { epoch: ring.epoch, members: ring.members.map((m) => m.name) };
    const base = { root: repo.root, kind: repo.kind, mode: repo.format, id: repo.meta?.id ?? null, tree: repo.tree, encfsRoot: repo.encfsRoot, unlocked: codec !== null, codec, keySlots };
    const slotsLine = `key slots:   ${keySlots === null ? 'none (password only)' : `epoch ${keySlots.epoch}; members: ${keySlots.members.join(', ') || '(none)'}`}`;
    if (repo.format === 'native') {
      const c = await readNativeConfig(join(repo.tree, NATIVE_CONFIG_FILE));
      const native = { version: c.version, chunkSize: c.chunkSize, kdf: `${c.kdf.alg} opslimit ${c.kdf.opslimit} memlimit ${c.kdf.memlimit}`, aead: 'XChaCha20-Poly1305 per chunk, names SIV-style' };
      if (ctx.json) return printJson(ctx.out, { ...base, native });
      ctx.out.write(
        [
          `repository:  ${base.root} (${repo.kind === 'dvfs' ? 'dvfs repository' : 'dvfs-native volume'}, native mode)`,
          `tree:        ${base.tree}`,
          `contents:    ${native.aead}, ${native.chunkSize}-byte chunks`,
          `kdf:         ${native.kdf}`,
          codec ? 'password:    ok' : 'password:    not checked (give --password-file)',
          slotsLine,
        ].join('\n') + '\n',
      );
      return;
    }
    const config = await EncfsVolume.readConfig(repo.tree);
    const encfs = {
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
    };
    if (ctx.json) return printJson(ctx.out, { ...base, encfs });
    const e = encfs;
    const lines = [
      `repository:  ${base.root} (${repo.kind === 'dvfs' ? 'dvfs repository' : 'stock EncFS volume'})`,
      `encfsRoot:   ${repo.tree}`,
      `cipher:      ${e.cipher}, ${e.keySize}-bit key, ${e.blockSize}-byte blocks`,
      `names:       ${e.nameCodec}${e.chainedNameIV ? ', chained IVs' : ''}`,
      `contents:    ${e.uniqueIV ? 'per-file IV header' : 'no per-file IV'}${e.externalIVChaining ? ', external IV chaining' : ''}` +
        `${e.blockMACBytes ? `, ${e.blockMACBytes}-byte block MACs` : ''}${e.blockMACRandBytes ? ` + ${e.blockMACRandBytes} random bytes` : ''}` +
        `${e.allowHoles ? ', holes allowed' : ''}`,
      `kdf:         PBKDF2-HMAC-SHA1, ${e.kdfIterations} iterations`,
      `created by:  ${e.creator || '(unknown)'}`,
      codec ? `password:    ok (codec: ${codec})` : 'password:    not checked (give --password-file)',
      slotsLine,
    ];
    ctx.out.write(lines.join('\n') + '\n');
  },
};
