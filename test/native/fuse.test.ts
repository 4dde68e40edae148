// A dvfs-native tree mounted through the FUSE frontend, driven by ordinary tools in child processes (the
// daemon runs in this process, so the test itself never blocks on the mount).
import t from 'tap';
import { execFile, spawnSync } from 'node:child_process';
import { accessSync, constants as fsc, existsSync } from 'node:fs';
import { mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { Frontend } from '../../daemon/fuse/frontend.js';
import { mountFuse, type MountedFuse } from '../../daemon/fuse/mount.js';
import { specialFiles } from '../../daemon/fuse/special-files.js';
import { CHUNK_OVERHEAD, HEADER_BYTES } from '../../daemon/native/content.js';
import { createNativeVolume, openNativeVolume, type NativeTree } from '../../daemon/native/tree.js';
import { CHEAP, PASSWORD, tempDir } from './native-helpers.js';

const run = promisify(execFile);

function fuseUnavailable(): string | null {
  if (process.platform !== 'linux') return 'FUSE tests need Linux';
  if (!existsSync('/dev/fuse')) return '/dev/fuse does not exist';
  try {
    accessSync('/dev/fuse', fsc.R_OK | fsc.W_OK);
  } catch {
    return '/dev/fuse is not accessible to this user';
  }
  if (spawnSync('fusermount', ['-V']).error && spawnSync('fusermount3', ['-V']).error) return 'no fusermount';
  return null;
}

async function sh(script: string): Promise<string> {
  const { stdout } = await run('sh', ['-c', script], { encoding: 'utf8', timeout: 30_000 });
  return stdout;
}

async function shFails(script: string): Promise<string> {
  try {
    await run('sh', ['-c', script], { encoding: 'utf8', timeout: 30_000 });
  } catch (e) {
    return String((e as { stderr?: string }).stderr ?? e);
  }
  throw new Error(`expected failure: ${script}`);
}

const skip = fuseUnavailable();

t.test('mounted dvfs-native volume', { skip: skip ?? false }, async (t) => {
  const dir = await tempDir(t, 'dvfs-native-fuse-');
  const root = join(dir, 'cipher');
  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  const logLines: string[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void logLines.push(s) });

  let mounted: MountedFuse | null = null;
  let tree: NativeTree | null = null;
  const mount = async (fresh: NativeTree): Promise<void> => {
    tree = fresh;
    const frontend = new Frontend(fresh, { readOnly: false, xattr: true, logger, special: specialFiles() });
    mounted = await mountFuse(mnt, frontend.operations(), { fsname: 'dvfs-native-test' });
  };
  const unmount = async (): Promise<void> => {
    await mounted?.unmount();
    mounted = null;
    tree?.dispose();
    tree = null;
  };
  t.teardown(unmount);

  await mount(await createNativeVolume(root, PASSWORD, CHEAP));
  const m = (p: string): string => `'${join(mnt, p)}'`;

  t.equal(await sh(`mkdir -p ${m('a/b')} && printf hello > ${m('a/b/f.txt')} && cat ${m('a/b/f.txt')}`), 'hello', 'mkdir -p, write, read');
  await sh(`printf ' more' >> ${m('a/b/f.txt')}`);
  t.equal(await sh(`cat ${m('a/b/f.txt')}`), 'hello more', 'append');
  await sh(`head -c 3000000 /dev/urandom > '${dir}/src' && cp '${dir}/src' ${m('big')}`);
  t.equal(await sh(`cmp '${dir}/src' ${m('big')} && echo same`), 'same\n', '3 MB copy reads back');
  await sh(`truncate -s 10000 ${m('a/b/f.txt')}`);
  t.equal(await sh(`stat -c %s ${m('a/b/f.txt')}`), '10000\n', 'truncate up');
  await sh(`truncate -s 5 ${m('a/b/f.txt')}`);
  t.equal(await sh(`cat ${m('a/b/f.txt')}`), 'hello', 'truncate down');
  await sh(`printf x | dd of=${m('sparse')} bs=1 seek=100000 conv=notrunc 2>/dev/null`);
  t.equal(await sh(`stat -c %s ${m('sparse')} && head -c 100000 ${m('sparse')} | tr -d '\\0' | wc -c`), '100001\n0\n', 'write past EOF: zeros before');

  await sh(`mv ${m('a')} ${m('z')}`);
  t.equal(await sh(`cat ${m('z/b/f.txt')}`), 'hello', 'renamed directory keeps its subtree');
  t.equal(await sh(`ls -A ${m('')} | sort | tr '\\n' ' '`), 'big sparse z ', 'listing hides the format files');
  await sh(`ln -s ../target ${m('z/link')} && ln ${m('z/b/f.txt')} ${m('hard')}`);
  t.equal(await sh(`readlink ${m('z/link')}`), '../target\n', 'symlink');
  t.equal(await sh(`cat ${m('hard')}`), 'hello', 'hard link');
  await sh(`mkdir ${m('e')} && rmdir ${m('e')}`);
  t.match(await shFails(`rmdir ${m('z')}`), /not empty/i, 'rmdir of a non-empty directory: ENOTEMPTY');
  await sh(`mkdir ${m('e2')} && mv -T ${m('z/b')} ${m('e2')}`);
  t.equal(await sh(`cat ${m('e2/f.txt')}`), 'hello', 'directory renamed over an empty directory');
  const longest = 'n'.repeat(151);
  await sh(`touch ${m(longest)}`);
  t.match(await shFails(`touch ${m(`${longest}x`)}`), /too long/i, '152-byte name: ENAMETOOLONG');
  await sh(`rm -r ${m('z')} ${m(longest)}`);
  t.equal(await sh(`ls -A ${m('')} | sort | tr '\\n' ' '`), 'big e2 hard sparse ', 'rm -r');

  // Tamper with chunk 5 of 'big' behind the mount's back, then remount (no page cache).
  const bigRaw = (await (tree as NativeTree | null)!.locate('big')).rawPath;
  await unmount();
  const h = await open(bigRaw, 'r+');
  const pos = HEADER_BYTES + 5 * (4096 + CHUNK_OVERHEAD) + 100;
  const b = Buffer.alloc(1);
  await h.read(b, 0, 1, pos);
  b[0] = b[0]! ^ 0x01;
  await h.write(b, 0, 1, pos);
  await h.close();
  await mount(await openNativeVolume(root, PASSWORD));
  t.equal(await sh(`head -c 20480 ${m('big')} | cmp - '${dir}/src' -n 20480 && echo ok`), 'ok\n', 'chunks before the damage still read');
  t.match(await shFails(`cat ${m('big')} > /dev/null`), /Input\/output error/, 'reading the damaged chunk: EIO');
  const logged = logLines.map((l) => JSON.parse(l) as { msg?: string; block?: number; cipherPath?: string }).filter((l) => /integrity/.test(l.msg ?? ''));
  const rawName = bigRaw.slice(root.length + 1);
  t.ok(logged.some((l) => l.block === 5 && l.cipherPath === rawName), 'integrity error logged with the chunk index and the ciphertext name');
  t.notOk(logLines.some((l) => l.includes('big')), 'the log does not name the plaintext file');

  // No plaintext at rest.
  await sh(`printf 'MARKER-%s\\n' $(seq 1 500) > ${m('marked-MARKER-name')}`);
  await unmount();
  t.equal(await sh(`grep -rl MARKER '${root}' || true`), '', 'no plaintext marker in the ciphertext directory');
  t.equal((await readFile(join(root, '.dvfs-native.json'), 'utf8')).includes('MARKER'), false);
  await writeFile(join(dir, 'done'), '');
});
