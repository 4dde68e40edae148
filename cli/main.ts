/**
 * dvfs command-line entry point: dispatches to a command, prints help, and turns every failure into one
 * line on stderr with a non-zero exit code (2 for usage errors, 1 otherwise) — never a stack trace unless
 * DVFS_DEBUG=1.
 */
import { readFileSync } from 'node:fs';
import { DvfsError, isNodeError } from '../daemon/errors.js';
import { COMMON_OPTIONS, formatOptions, parseArgs } from './args.js';
import type { Command, CommandContext } from './command.js';

/**
 * Commands are loaded when used: a command's module pulls in only what it needs (a no-change commit must
 * not pay for the FUSE and crypto stacks at start-up).
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  init: async () => (await import('./commands/init.js')).initCommand,
  info: async () => (await import('./commands/info.js')).infoCommand,
  ls: async () => (await import('./commands/ls.js')).lsCommand,
  cat: async () => (await import('./commands/cat.js')).catCommand,
  put: async () => (await import('./commands/put.js')).putCommand,
  mount: async () => (await import('./commands/mount.js')).mountCommand,
  umount: async () => (await import('./commands/umount.js')).umountCommand,
  status: async () => (await import('./commands/status.js')).statusCommand,
  commit: async () => (await import('./commands/commit.js')).commitCommand,
  log: async () => (await import('./commands/log.js')).logCommand,
  show: async () => (await import('./commands/show.js')).showCommand,
  diff: async () => (await import('./commands/diff.js')).diffCommand,
  restore: async () => (await import('./commands/restore.js')).restoreCommand,
  verify: async () => (await import('./commands/verify.js')).verifyCommand,
  gc: async () => (await import('./commands/gc.js')).gcCommand,
  doctor: async () => (await import('./commands/doctor.js')).doctorCommand,
  remote: async () => (await import('./commands/remote.js')).remoteCommand,
  key: async () => (await import('./commands/key.js')).keyCommand,
  push: async () => (await import('./commands/push.js')).pushCommand,
  clone: async () => (await import('./commands/clone.js')).cloneCommand,
  pull: async () => (await import('./commands/pull.js')).pullCommand,
  fetch: async () => (await import('./commands/fetch.js')).fetchCommand,
  run: async () => (await import('./commands/run.js')).runCommand,
  rerun: async () => (await import('./commands/rerun.js')).rerunCommand,
  profile: async () => (await import('./commands/profile.js')).profileCommand,
  demo: async () => (await import('./commands/demo.js')).demoCommand,
  slurm: async () => (await import('./commands/slurm.js')).slurmCommand,
};

async function loadCommand(name: string): Promise<Command | undefined> {
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  return load ? load() : undefined;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function topHelp(): Promise<string> {
  const commands = await Promise.all(Object.values(COMMANDS).map((load) => load()));
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return [
    'dvfs: encrypted, versioned workspaces for HPC workflow stages',
    '',
    'usage: dvfs COMMAND [ARGS] [--json] [--help]',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Passwords are read from files (--password-file or DVFS_PASSWORD_FILE), never from the command line.',
    "Run 'dvfs COMMAND --help' for a command's options.",
    '',
  ].join('\n');
}

function commandHelp(c: Command): string {
  return [`usage: ${c.usage}`, '', c.summary, ...(c.details ? ['', c.details] : []), '', 'options:', formatOptions([...c.options, ...COMMON_OPTIONS]), ''].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const target = name === 'help' && rest[0] !== undefined ? await loadCommand(rest[0]) : undefined;
    process.stdout.write(target ? commandHelp(target) : await topHelp());
    return 0;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`dvfs ${version()}\n`);
    return 0;
  }
  const command = await loadCommand(name);
  if (!command) {
    throw new DvfsError('E_USAGE', `unknown command '${name}'`, { hint: "run 'dvfs --help' for the list" });
  }
  const args = parseArgs(rest, [...command.options, ...COMMON_OPTIONS]);
  if (args.flags.has('help')) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  const ctx: CommandContext = {
    args,
    json: args.flags.has('json'),
    note: (m) => process.stderr.write(m.endsWith('\n') ? m : `${m}\n`),
    out: process.stdout,
  };
  const code = await command.run(ctx);
  return typeof code === 'number' ? code : 0;
}

function report(e: unknown): number {
  if (process.env['DVFS_DEBUG'] === '1') console.error(e);
  if (e instanceof DvfsError) {
    process.stderr.write(`dvfs: ${e.oneLine()}\n`);
    return e.code === 'E_USAGE' ? 2 : 1;
  }
  if (isNodeError(e)) {
    const path = e.path === undefined ? '' : `${e.path}: `;
    process.stderr.write(`dvfs: ${path}${e.code}: ${e.message.replace(/^[A-Z]+: /, '')}\n`);
    return 1;
  }
  process.stderr.write(`dvfs: internal error: ${e instanceof Error ? e.message : String(e)} (set DVFS_DEBUG=1 for details)\n`);
  return 1;
}

process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = report(e);
  },
);
