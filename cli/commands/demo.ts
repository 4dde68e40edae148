/**
 * The quick-start job: an end-to-end run on the embedded defaults, printing each dvfs command it runs.
 * Today: create an EncFS-mode repository, put a file without a mount, mount it and let a stage write
 * through the mount, commit (while mounted and after), look at the history and restore an old version,
 * push to a local-directory remote and clone it back,
 * list and read everything back, check that no plaintext reached the disk (working tree and .dvfs), and
 * have stock `encfs` mount the tree and read identical bytes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DvfsError } from '../../daemon/errors.js';
import type { Command, CommandContext } from '../command.js';

const usage = 'dvfs demo [DIR] [--keep]';
const CLI = fileURLToPath(new URL('../../../cli/dvfs.js', import.meta.url));
const MARKER = 'DVFS-DEMO-PLAINTEXT-MARKER';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function walkFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walkFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

class Demo {
  constructor(
    private readonly ctx: CommandContext,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  say(text: string): void {
    this.ctx.out.write(`\n== ${text}\n`);
  }

  /** Runs `dvfs ARGS`, echoing the command and its output; returns stdout. */
  dvfs(args: string[], opts: { quiet?: boolean } = {}): Buffer {
    this.ctx.out.write(`$ dvfs ${args.join(' ')}\n`);
    const r = spawnSync(process.execPath, [CLI, ...args], { env: this.env, maxBuffer: 1 << 30 });
    if (r.status !== 0) {
      throw new DvfsError('E_IO', `demo step failed: dvfs ${args.join(' ')}: ${r.stderr.toString().trim()}`);
    }
    if (!opts.quiet) this.ctx.out.write(r.stdout);
    if (r.stderr.length > 0) process.stderr.write(r.stderr);
    return r.stdout;
  }
}

function stockEncfsReason(): string | null {
  if (spawnSync('encfs', ['--version']).error) return 'stock encfs is not installed (apt-get install encfs)';
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing';
  return null;
}

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run the end-to-end example on the embedded defaults (quick start)',
  usage,
  details: 'Works in DIR (default: a new temporary directory, removed afterwards unless --keep).',
  options: [{ name: 'keep', type: 'boolean', description: 'keep the demo directory' }],
  async run(ctx) {
    const base = ctx.args.positionals[0] ? resolve(ctx.args.positionals[0]) : await mkdtemp(join(tmpdir(), 'dvfs-demo-'));
    await mkdir(base, { recursive: true });
    const passwordFile = join(base, 'password');
    await writeFile(passwordFile, randomBytes(18).toString('base64'), { mode: 0o600 });
    const env = { ...process.env, DVFS_PASSWORD_FILE: passwordFile };
    const demo = new Demo(ctx, env);
    const repo = join(base, 'repo');
    const input = join(base, 'input');
    let failures = 0;
    try {
      demo.say('1. Create an EncFS-compatible repository (the password comes from a 0600 file, never argv)');
      demo.dvfs(['init', repo, '--mode', 'encfs', '--preset', 'standard']);
      demo.dvfs(['info', repo]);

      const files: Record<string, Buffer> = {
        'README.txt': Buffer.from(`simulation results ${MARKER}\n`),
        'results/run-1/params.json': Buffer.from(JSON.stringify({ steps: 1000, seed: 42, note: MARKER }) + '\n'),
        'results/run-1/field.bin': Buffer.concat([randomBytes(1 << 20), Buffer.from(MARKER)]),
        'results/données.csv': Buffer.from(`t,value\n0,1.0\n1,2.5\n# ${MARKER}\n`),
      };
      await mkdir(input, { recursive: true });
      for (const [path, data] of Object.entries(files)) {
        await mkdir(join(input, path, '..'), { recursive: true });
        await writeFile(join(input, path), data);
      }
      demo.say('2. Put a file into it without mounting (works on login nodes without FUSE)');
      demo.dvfs(['put', repo, join(input, 'README.txt'), '/']);

      const mnt = join(base, 'mnt');
      if (existsSync('/dev/fuse')) {
        demo.say('3. Mount it and let a stage write its outputs through the mount (plaintext only in memory)');
        demo.dvfs(['mount', repo, mnt]);
        try {
          const stage = `mkdir -p results/run-1 && cp ${join(input, 'results/run-1')}/* results/run-1/ && cp '${join(input, 'results/données.csv')}' results/ && ls -lR results`;
          ctx.out.write(`$ (cd ${mnt} && sh -c "${stage}")\n`);
          ctx.out.write(execFileSync('sh', ['-c', stage], { cwd: mnt }));
          demo.dvfs(['status', mnt]);
          demo.say('3b. Commit while mounted: the daemon hashed everything as it was written, so nothing is read back');
          demo.dvfs(['commit', repo, '-m', 'run 1 outputs']);
          const rerun = `echo '{"steps": 2000, "seed": 43}' > results/run-1/params.json`;
          ctx.out.write(`$ (cd ${mnt} && sh -c "${rerun}")\n`);
          execFileSync('sh', ['-c', rerun], { cwd: mnt });
        } finally {
          demo.dvfs(['umount', mnt]);
        }
      } else {
        demo.say('3. (no /dev/fuse here: putting the stage outputs without a mount)');
        demo.dvfs(['put', repo, join(input, 'results'), '/results']);
        demo.dvfs(['commit', repo, '-m', 'run 1 outputs']);
        await writeFile(join(base, 'params2.json'), '{"steps": 2000, "seed": 43}\n');
        demo.dvfs(['put', repo, join(base, 'params2.json'), 'results/run-1/params.json']);
      }

      demo.say('3c. Commit the second run after unmounting (its session journal is replayed), then look at the history');
      demo.dvfs(['status', repo]);
      demo.dvfs(['commit', repo, '-m', 'run 2: more steps']);
      demo.dvfs(['log', repo]);
      demo.dvfs(['diff', repo]);
      const restored = join(base, 'restored');
      demo.dvfs(['restore', repo, 'HEAD~1', '--to', restored]);
      const back = await readFile(join(restored, 'results/run-1/params.json'));
      const sameAsFirst = sha256(back) === sha256(files['results/run-1/params.json'] as Buffer);
      if (!sameAsFirst) failures++;
      ctx.out.write(`   ${sameAsFirst ? 'ok  ' : 'FAIL'} restoring HEAD~1 brings back the first params.json\n`);
      demo.dvfs(['verify', repo, '--full']);
      files['results/run-1/params.json'] = Buffer.from('{"steps": 2000, "seed": 43}\n');

      demo.say('3d. Push the ciphertext to a remote (the embedded default: a local directory) and clone it back');
      const remote = `file://${join(base, 'remote')}`;
      demo.dvfs(['remote', 'add', repo, 'origin', remote]);
      demo.dvfs(['push', repo]);
      const cloned = join(base, 'clone');
      demo.dvfs(['clone', remote, cloned]);
      const fromClone = demo.dvfs(['cat', cloned, 'results/run-1/field.bin'], { quiet: true });
      const cloneOk = sha256(fromClone) === sha256(files['results/run-1/field.bin'] as Buffer);
      if (!cloneOk) failures++;
      ctx.out.write(`   ${cloneOk ? 'ok  ' : 'FAIL'} the clone reads results/run-1/field.bin byte for byte\n`);

      demo.say('4. List and read back through dvfs (no mount needed)');
      demo.dvfs(['ls', repo, '--recursive']);
      for (const [path, data] of Object.entries(files)) {
        const got = demo.dvfs(['cat', repo, path], { quiet: true });
        const ok = sha256(got) === sha256(data);
        if (!ok) failures++;
        ctx.out.write(`   ${ok ? 'ok  ' : 'FAIL'} ${path}: ${got.length} bytes, sha256 ${sha256(got).slice(0, 16)}…\n`);
      }

      demo.say('5. Only ciphertext reached the disk');
      const raw = [...(await walkFiles(repo)), ...(await walkFiles(join(base, 'remote'))), ...(await walkFiles(join(base, 'clone')))];
      let leaks = 0;
      for (const f of raw) if ((await readFile(f)).includes(MARKER)) leaks++;
      if (leaks > 0) failures++;
      ctx.out.write(`   scanned ${raw.length} files under ${repo}, the remote and the clone (ciphertext, config, journals, index, mount logs, packs): ${leaks === 0 ? 'no plaintext marker found' : `${leaks} files contain plaintext!`}\n`);
      ctx.out.write(`   e.g. ${raw.map((f) => f.slice(repo.length + 1)).filter((f) => f.startsWith('tree/')).slice(0, 3).join('\n        ')}\n`);

      demo.say('6. Stock encfs mounts the same tree and reads identical bytes');
      const reason = stockEncfsReason();
      if (reason) {
        ctx.out.write(`   skipped: ${reason}\n`);
      } else {
        const encfsMnt = join(base, 'encfs-mount');
        await mkdir(encfsMnt, { recursive: true });
        ctx.out.write(`$ encfs --stdinpass ${join(repo, 'tree')} ${encfsMnt}\n`);
        execFileSync('encfs', ['--stdinpass', join(repo, 'tree'), encfsMnt], { input: await readFile(passwordFile), stdio: ['pipe', 'inherit', 'inherit'] });
        try {
          for (const [path, data] of Object.entries(files)) {
            const got = await readFile(join(encfsMnt, path));
            const ok = sha256(got) === sha256(data);
            if (!ok) failures++;
            ctx.out.write(`   ${ok ? 'ok  ' : 'FAIL'} encfs reads ${path} (${got.length} bytes)\n`);
          }
        } finally {
          const um = spawnSync('fusermount', ['-u', encfsMnt]);
          if (um.error || um.status !== 0) spawnSync('umount', [encfsMnt]);
        }
      }
      demo.say(failures === 0 ? 'demo finished: all checks passed' : `demo finished with ${failures} failed checks`);
      return failures === 0 ? 0 : 1;
    } finally {
      if (!ctx.args.flags.has('keep') && !ctx.args.positionals[0]) await rm(base, { recursive: true, force: true });
      else ctx.out.write(`(kept ${base})\n`);
    }
  },
};
