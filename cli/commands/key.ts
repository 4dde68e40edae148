import { readFile, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import { optionString, type OptionSpec } from '../args.js';
import type { Command, CommandContext } from '../command.js';
import { printJson } from '../format.js';
import { positional } from '../open.js';
import { readPasswordFile } from '../password.js';
import { identityPath, requireCredential, UNLOCK_OPTIONS, wipeCredential } from '../unlock.js';
import { refuseIfBusy, versionedRepo } from '../versioning.js';

const usage = [
  'dvfs key gen [--out FILE] [--name NAME] [--password-file PASSPHRASE_FILE] [--force]',
  'dvfs key show [--identity FILE]',
  'dvfs key add REPO --name NAME PUBKEY|PUBKEY_FILE',
  'dvfs key list REPO',
  'dvfs key remove REPO NAME',
  'dvfs key rotate REPO',
  'dvfs key passwd REPO --new-password-file FILE',
].join('\n       ');

const options: OptionSpec[] = [
  ...UNLOCK_OPTIONS.map((o) => (o.name === 'password-file' ? { ...o, description: `${o.description}; for key gen: the passphrase protecting the new identity (no env)` } : o)),
  { name: 'out', type: 'string', value: 'FILE', description: 'key gen: where to write the identity (default ~/.config/dvfs/identity)' },
  { name: 'name', type: 'string', value: 'NAME', description: 'key gen: your name in repositories (default: login name); key add: the member\'s name' },
  { name: 'force', type: 'boolean', description: 'key gen: replace an existing identity file (its key is lost)' },
  { name: 'new-password-file', type: 'string', value: 'FILE', description: 'key passwd: file holding the new repository password' },
];

export const keyCommand: Command = {
  name: 'key',
  summary: 'personal identities and key slots: give collaborators access, withdraw it, rotate keys, change the password',
  usage,
  details:
    'Each person makes an identity once (dvfs key gen) and sends its public line to a project owner, who adds it\n' +
    '(dvfs key add). Every command that opens a repository then takes --identity FILE (DVFS_IDENTITY, default\n' +
    '~/.config/dvfs/identity) instead of a password, so batch jobs need no password file. Slots are signed by\n' +
    'whoever added them; the chain ends at the password holder. dvfs key remove withdraws a member; dvfs key\n' +
    'rotate then seals new snapshots and pushes under a new key epoch the removed member never had. Slots and\n' +
    'epochs travel with push, pull and clone. The format and what rotation protects: daemon/keys/FORMAT.md.',
  options,
  async run(ctx) {
    const sub = positional(ctx, 0, 'a subcommand (gen, show, add, list, remove, rotate, passwd)', usage);
    switch (sub) {
      case 'gen':
        return gen(ctx);
      case 'show':
        return show(ctx);
      case 'list':
        return list(ctx);
      case 'add':
      case 'remove':
      case 'rotate':
      case 'passwd':
        return change(ctx, sub);
      default:
        throw new DvfsError('E_USAGE', `unknown subcommand ${JSON.stringify(sub)}`, { hint: `usage: ${usage}` });
    }
  },
};

async function gen(ctx: CommandContext): Promise<void> {
  const [{ Identity, checkMemberName }, { defaultIdentityPath, writeIdentityFile }, { costFromEnv }] = await Promise.all([
    import('../../daemon/keys/identity.js'),
    import('../../daemon/keys/identity-file.js'),
    import('../../daemon/keys/pwhash.js'),
  ]);
  const out = resolve(optionString(ctx.args, 'out') ?? defaultIdentityPath());
  const name = checkMemberName(optionString(ctx.args, 'name') ?? userInfo().username);
  // The passphrase comes only from --password-file on this command line: an exported DVFS_PASSWORD_FILE
  // (a repository password) must not silently become the identity's passphrase.
  const onCommandLine = process.argv.some((a) => a === '--password-file' || a.startsWith('--password-file='));
  const passFile = onCommandLine ? optionString(ctx.args, 'password-file') : undefined;
  const passphrase = passFile === undefined ? undefined : await readPasswordFile(passFile, (m) => ctx.note(m));
  const identity = Identity.generate();
  try {
    await writeIdentityFile(out, identity, name, { ...(passphrase ? { passphrase } : {}), cost: costFromEnv(), overwrite: ctx.args.flags.has('force') });
    const line = identity.publicKey.line(name);
    if (ctx.json) return printJson(ctx.out, { file: out, name, fingerprint: identity.fingerprint, public: line, protected: passphrase !== undefined });
    ctx.note(`wrote ${out} (mode 0600${passphrase ? ', passphrase-protected' : ''}); fingerprint ${identity.fingerprint}. Send this line to a project owner:`);
    ctx.out.write(`${line}\n`);
  } finally {
    identity.destroy();
    passphrase?.fill(0);
  }
}

async function show(ctx: CommandContext): Promise<void> {
  const path = await identityPath(ctx.args);
  if (path === null) throw new DvfsError('E_NOTFOUND', 'no identity', { hint: 'create one with: dvfs key gen' });
  const { readIdentityInfo } = await import('../../daemon/keys/identity-file.js');
  const info = await readIdentityInfo(path);
  const line = info.publicKey.line(info.name);
  if (ctx.json) return printJson(ctx.out, { file: info.path, name: info.name, fingerprint: info.publicKey.fingerprint, public: line, protected: info.protected, createdAt: info.createdAt });
  ctx.out.write(`${line}\n`);
  ctx.note(`${info.name}, fingerprint ${info.publicKey.fingerprint}${info.protected ? ', passphrase-protected' : ''} (${info.path})`);
}

async function list(ctx: CommandContext): Promise<void> {
  const repo = await versionedRepo(positional(ctx, 1, 'REPO', usage));
  const { listMembers } = await import('../../daemon/keys/admin.js');
  const r = await listMembers(repo);
  if (ctx.json) {
    return printJson(ctx.out, r === null ? { epoch: 0, generation: 0, root: null, members: [] } : { ...r, members: r.members.map(({ public: key, ...m }) => ({ ...m, public: key.line(m.name) })) });
  }
  if (r === null) {
    ctx.out.write('no key slots: only the repository password opens it (add members with dvfs key add)\n');
    return;
  }
  ctx.out.write(`key epoch ${r.epoch} (keyring generation ${r.generation})\n`);
  ctx.out.write(`(password)  ${r.root.fingerprint}  epochs ${r.root.epochs.join(',')}\n`);
  for (const m of r.members) ctx.out.write(`${m.name}  ${m.fingerprint}  added by ${m.addedBy} at ${m.addedAt}  epochs ${m.epochs.join(',')}\n`);
}

async function publicKeyArgument(ctx: CommandContext): Promise<string> {
  const rest = ctx.args.positionals.slice(2);
  if (rest.length === 0) throw new DvfsError('E_USAGE', 'missing PUBKEY', { hint: `usage: ${usage}` });
  if (rest.length === 1 && rest[0] !== undefined && (await stat(rest[0]).then((s) => s.isFile(), () => false))) return (await readFile(rest[0], 'utf8')).trim();
  return rest.join(' ');
}

async function change(ctx: CommandContext, sub: 'add' | 'remove' | 'rotate' | 'passwd'): Promise<void> {
  const repo = await versionedRepo(positional(ctx, 1, 'REPO', usage));
  const [admin, { PublicKey }, { silentLogger }] = await Promise.all([import('../../daemon/keys/admin.js'), import('../../daemon/keys/identity.js'), import('../../daemon/log.js')]);
  // Everything is checked before the key is unlocked.
  const pub = sub === 'add' ? PublicKey.parse(await publicKeyArgument(ctx)) : null;
  const memberName = sub === 'add' ? (optionString(ctx.args, 'name') ?? pub?.name ?? null) : sub === 'remove' ? positional(ctx, 2, 'NAME', usage) : null;
  if (sub === 'add' && memberName === null) throw new DvfsError('E_USAGE', 'missing --name NAME for the new member');
  const newPasswordFile = optionString(ctx.args, 'new-password-file');
  if (sub === 'passwd' && newPasswordFile === undefined) throw new DvfsError('E_USAGE', 'missing --new-password-file FILE');
  if (sub === 'rotate') await refuseIfBusy(repo, { mountedHint: 'unmount it first: the mount seals paths under the current epoch', forceHint: '' });
  const credential = await requireCredential(ctx.args, (m) => ctx.note(m));
  let a: Awaited<ReturnType<typeof admin.openKeyAdmin>>;
  try {
    a = await admin.openKeyAdmin(repo, credential, silentLogger());
  } catch (e) {
    wipeCredential(credential);
    throw e;
  }
  try {
    if (sub === 'add' && pub && memberName) {
      const r = await admin.addMember(a, memberName, pub.key);
      if (ctx.json) return printJson(ctx.out, r);
      ctx.out.write(`added ${r.name} (${r.fingerprint}) for key epoch(s) ${r.epochs.join(', ')}, signed by ${r.addedBy}\n`);
    } else if (sub === 'remove' && memberName) {
      const r = await admin.removeMember(a, memberName);
      if (ctx.json) return printJson(ctx.out, r);
      ctx.out.write(`removed ${r.name} (${r.fingerprint}): ${r.slots} slot(s)${r.resigned ? `; ${r.resigned} slot(s) they had added are now signed by you` : ''}\n`);
      ctx.note(`dvfs: ${r.name} may have kept the keys it held: run dvfs key rotate ${repo.root} so that new snapshots and pushes use keys ${r.name} never had`);
    } else if (sub === 'rotate') {
      const r = await admin.rotateEpoch(a);
      if (ctx.json) return printJson(ctx.out, r);
      ctx.out.write(`key epoch ${r.epoch}: sealed to the password holder${r.members.length ? ` and ${r.members.join(', ')}` : ''}; new snapshots and pushes use it\n`);
    } else if (sub === 'passwd' && newPasswordFile !== undefined) {
      const pw = await readPasswordFile(newPasswordFile, (m) => ctx.note(m));
      try {
        const r = await admin.changePassword(a, pw);
        if (ctx.json) return printJson(ctx.out, { changed: true, ...r });
        ctx.out.write(`password changed${r.resealed.length ? `; the password slot holds key epoch(s) ${r.resealed.join(', ')}` : ''}\n`);
      } finally {
        pw.fill(0);
      }
    }
  } finally {
    a.close();
    wipeCredential(credential);
  }
}
