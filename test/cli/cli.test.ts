// The CLI without FUSE: init, info, ls, cat, put on dvfs repositories, with --json and --help, and bad
// input answered by one line naming the file and the cause, a non-zero exit, no stack trace, nothing written.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { dvfs, REPO_ROOT } from '../helpers/cli.js';
import { rng } from '../helpers/rng.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

async function workspace(t: { teardown(fn: () => unknown): void }): Promise<{ dir: string; pw: string; env: NodeJS.ProcessEnv }> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'pw');
  await writeFile(pw, 'correct horse battery staple\n', { mode: 0o600 });
  return { dir, pw, env: { DVFS_PASSWORD_FILE: pw } };
}

async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) out.push(join(e.parentPath ?? e.path, e.name));
  return out.sort();
}

function expectOneLineError(t: Test, r: ReturnType<typeof dvfs>, pattern: RegExp, what: string): void {
  t.not(r.status, 0, `${what}: exit code ≠ 0`);
  // Warnings (e.g. a native codec that could not be built) are separate lines; the error itself is one line.
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('dvfs: warning:'));
  t.equal(lines.length, 1, `${what}: one line on stderr (${r.stderr.trim()})`);
  t.match(lines[0], /^dvfs: /, `${what}: prefixed`);
  t.notMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
  t.match(r.stderr, pattern, `${what}: names the cause`);
}

t.test('init, put, ls, cat, info round trip with --json', async (t) => {
  const { dir, env } = await workspace(t);
  const repo = join(dir, 'repo');
  const init = dvfs(['init', repo, '--mode', 'encfs', '--kdf-iterations', '2000', '--json'], { env });
  t.equal(init.status, 0, init.stderr);
  const initJson = JSON.parse(init.out) as { encfsRoot: string };
  t.equal(initJson.encfsRoot, join(repo, 'tree'));
  const info = JSON.parse(dvfs(['info', repo, '--json'], { env }).out) as Record<string, unknown> & { encfs: Record<string, unknown> };
  t.equal(info['encfsRoot'], join(repo, 'tree'), 'info --json names the EncFS directory as encfsRoot');
  t.equal(info['unlocked'], true, 'password checked');
  t.match(info.encfs, { cipher: 'ssl/aes 3.0', keySize: 192, blockSize: 1024, nameCodec: 'nameio/block 4.0', kdfIterations: 2000 });

  const src = join(dir, 'src');
  await mkdir(join(src, 'sub', 'deeper'), { recursive: true });
  const r = rng(42);
  const files: Record<string, Buffer> = {
    'a.txt': Buffer.from('alpha\n'),
    'sub/b.bin': r.bytes(1024 * 1024 + 7),
    'sub/deeper/empty': Buffer.alloc(0),
    'sub/ünïcödé name.txt': Buffer.from('unicode\n'),
  };
  for (const [p, d] of Object.entries(files)) await writeFile(join(src, p), d);
  await symlink('b.bin', join(src, 'sub', 'link'));
  const put = dvfs(['put', repo, src, 'imported', '--json'], { env });
  t.equal(put.status, 0, put.stderr);
  t.match(JSON.parse(put.out), { dest: 'imported', files: 4, symlinks: 1, bytes: 1024 * 1024 + 7 + 6 + 8 });

  const ls = JSON.parse(dvfs(['ls', repo, 'imported', '-R', '--json'], { env }).out) as { entries: { path: string; type: string; size: number; target?: string }[] };
  const byPath = new Map(ls.entries.map((e) => [e.path, e]));
  for (const [p, d] of Object.entries(files)) {
    t.equal(byPath.get(`imported/${p}`)?.size, d.length, `ls size of ${p}`);
    const cat = dvfs(['cat', repo, `imported/${p}`], { env });
    t.equal(cat.status, 0);
    t.equal(sha(cat.stdout), sha(d), `cat ${p}`);
  }
  t.match(byPath.get('imported/sub/link'), { type: 'symlink', target: 'b.bin' });
  const human = dvfs(['ls', repo, 'imported/sub'], { env });
  t.match(human.out, /ünïcödé name\.txt/);

  // put into an existing directory puts inside it; a single file to a new name renames it
  t.equal(dvfs(['put', repo, join(src, 'a.txt'), 'imported/sub/'], { env }).status, 0);
  t.equal(dvfs(['cat', repo, 'imported/sub/a.txt'], { env }).out, 'alpha\n');
  t.equal(dvfs(['put', repo, join(src, 'a.txt'), 'x/y/renamed.txt'], { env }).status, 0, 'missing parents are created');
  t.equal(dvfs(['cat', repo, 'x/y/renamed.txt'], { env }).out, 'alpha\n');
});

t.test('--help everywhere, npx dvfs --help inside the checkout', async (t) => {
  const top = dvfs(['--help']);
  t.equal(top.status, 0);
  for (const cmd of ['init', 'info', 'ls', 'cat', 'put', 'demo']) {
    t.match(top.out, new RegExp(`\\n  ${cmd} `), `top help lists ${cmd}`);
    const h = dvfs([cmd, '--help']);
    t.equal(h.status, 0, `${cmd} --help exits 0`);
    t.match(h.out, new RegExp(`usage: dvfs ${cmd}`), `${cmd} --help shows usage`);
  }
  const npx = spawnSync('npx', ['--no-install', 'dvfs', '--help'], { cwd: REPO_ROOT, encoding: 'utf8' });
  t.equal(npx.status, 0, npx.stderr);
  t.match(npx.stdout, /usage: dvfs COMMAND/);
  const unknown = dvfs(['frobnicate']);
  t.equal(unknown.status, 2);
  t.match(unknown.stderr, /unknown command 'frobnicate'/);
});

t.test('bad input: one-line errors, exit ≠ 0, nothing written', async (t) => {
  const { dir, pw, env } = await workspace(t);
  const repo = join(dir, 'repo');
  t.equal(dvfs(['init', repo, '--preset', 'paranoia', '--kdf-iterations', '1000'], { env }).status, 0);
  const src = join(dir, 'data.bin');
  await writeFile(src, rng(3).bytes(50_000));
  t.equal(dvfs(['put', repo, src, 'data.bin'], { env }).status, 0);
  const before = await listTree(repo);

  const wrong = join(dir, 'wrong');
  await writeFile(wrong, 'not the password\n', { mode: 0o600 });
  expectOneLineError(t, dvfs(['put', repo, src, 'other.bin'], { env: { DVFS_PASSWORD_FILE: wrong } }), /wrong password/, 'wrong password');
  expectOneLineError(t, dvfs(['cat', repo, 'data.bin'], { env: { DVFS_PASSWORD_FILE: join(dir, 'nope') } }), /nope: password file does not exist/, 'missing password file');
  expectOneLineError(t, dvfs(['ls', repo], { env: { DVFS_PASSWORD_FILE: '' } }), /no password given/, 'no password');
  expectOneLineError(t, dvfs(['ls', join(dir, 'nothing-here')], { env }), /nothing-here: no such repository/, 'missing repository');
  expectOneLineError(t, dvfs(['cat', repo, 'missing.txt'], { env }), /missing\.txt: no such file or directory/, 'missing file');
  expectOneLineError(t, dvfs(['cat', repo, ''], { env }), /is a directory/, 'cat of a directory');
  expectOneLineError(t, dvfs(['put', repo, join(dir, 'no-src'), 'x'], { env }), /no-src: source does not exist/, 'missing source');
  expectOneLineError(t, dvfs(['init', repo, '--kdf-iterations', '1000'], { env }), /already exists/, 'init over a repository');
  expectOneLineError(t, dvfs(['ls', repo, '--bogus'], { env }), /unknown option --bogus/, 'unknown option');
  t.same(await listTree(repo), before, 'nothing was written by any failed command');

  // Tampered ciphertext: an integrity error naming the file and block.
  const tree = join(repo, 'tree');
  const [cipherName] = (await readdir(tree)).filter((n) => !n.startsWith('.'));
  const raw = await readFile(join(tree, cipherName as string));
  raw[8 + 20 * 1024 + 3] = (raw[8 + 20 * 1024 + 3] as number) ^ 0x40;
  await writeFile(join(tree, cipherName as string), raw);
  const tampered = dvfs(['cat', repo, 'data.bin'], { env });
  expectOneLineError(t, tampered, /data\.bin: block 20 failed its MAC check/, 'tampered block');
  t.equal(tampered.stdout.length, 0, 'no plaintext printed for a tampered file');
  // Truncated ciphertext
  await writeFile(join(tree, cipherName as string), raw.subarray(0, 8 + 1024 * 3 + 4));
  expectOneLineError(t, dvfs(['cat', repo, 'data.bin'], { env }), /data\.bin: ciphertext ends inside a block header/, 'truncated ciphertext');

  // Corrupt and missing configs, unsupported cipher
  const cfg = join(tree, '.encfs6.xml');
  const xml = await readFile(cfg, 'utf8');
  await writeFile(cfg, xml.replace('ssl/aes', 'ssl/twofish'));
  expectOneLineError(t, dvfs(['ls', repo], { env }), /\.encfs6\.xml:\d+: unsupported cipher 'ssl\/twofish'/, 'unsupported cipher');
  await writeFile(cfg, xml.slice(0, 300));
  expectOneLineError(t, dvfs(['ls', repo], { env }), /\.encfs6\.xml:\d+: not valid XML/, 'corrupt config');
  await rm(cfg);
  expectOneLineError(t, dvfs(['ls', repo], { env }), /\.encfs6\.xml: no EncFS config here/, 'missing config');
  await writeFile(cfg, xml);
  t.equal(dvfs(['ls', repo], { env }).status, 0, 'works again once the config is back');
  await chmod(pw, 0o644);
  const loose = dvfs(['ls', repo], { env });
  t.match(loose.stderr, /readable by others/, 'warns about a world-readable password file');
  t.ok((await stat(pw)).mode & 0o044, 'and leaves the file alone');
});

t.test('works on a plain EncFS volume directory too', async (t) => {
  const { dir, env } = await workspace(t);
  const repo = join(dir, 'repo');
  t.equal(dvfs(['init', repo, '--kdf-iterations', '1000'], { env }).status, 0);
  await writeFile(join(dir, 'f'), 'plain volume\n');
  const volume = join(repo, 'tree');
  t.equal(dvfs(['put', volume, join(dir, 'f'), 'f'], { env }).status, 0);
  t.equal(dvfs(['cat', volume, 'f'], { env }).out, 'plain volume\n');
  const info = JSON.parse(dvfs(['info', volume, '--json'], { env }).out) as { kind: string; encfsRoot: string };
  t.same({ kind: info.kind, encfsRoot: info.encfsRoot }, { kind: 'encfs-volume', encfsRoot: volume });
});
