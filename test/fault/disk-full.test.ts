// Disk full: the repository on a small tmpfs.
// - Writes through the mount hit ENOSPC (never a daemon crash); files written and closed before stay intact.
// - `dvfs commit` on the full disk (while mounted: the daemon commits) fails with one clear line and HEAD
//   unchanged, or succeeds with a snapshot that verifies; after space is freed, a commit succeeds and every
//   file restores byte-identical.
// - `dvfs clone` / `dvfs pull` into a full disk fail cleanly: no half clone left, the pulled-into repository
//   keeps its HEAD and verifies; with room again, the same pull completes.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { mkdir, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readHead } from '../../daemon/store/refs.js';
import type { CliResult } from '../helpers/cli.js';
import { fuseAvailable, initRepo, mountDvfs, processAlive, workspace, type Workspace } from '../helpers/mount.js';
import { cleanFailure, sameTree } from './fault-cli.js';
import { mountSmallFs, smallFsUnavailable, type SmallFs } from './small-fs.js';

const MiB = 1024 * 1024;
const skipReason = smallFsUnavailable() ?? fuseAvailable();
const skip = skipReason === null ? false : `disk-full tests cannot run: ${skipReason}`;

function failedCleanly(t: Test, r: CliResult, what: string, mustName: (string | RegExp)[] = []): void {
  const why = cleanFailure({ status: r.status, signal: null, stdout: r.out, stderr: r.stderr, hung: false, ms: 0 }, mustName);
  t.equal(why, null, `${what} fails with one clear line (${r.stderr.trim().slice(0, 300)})`);
}

function ok(t: Test, r: CliResult, what: string): CliResult {
  t.equal(r.status, 0, `${what} (${r.stderr.trim().slice(0, 300)})`);
  return r;
}

/** Writes `data` to `path` through the mount; returns the error code of the first failing call, or null. */
function writeThrough(path: string, data: Buffer, chunk = 256 * 1024): string | null {
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'unknown';
  }
  let code: string | null = null;
  try {
    for (let off = 0; off < data.length; off += chunk) writeSync(fd, data.subarray(off, Math.min(data.length, off + chunk)));
  } catch (e) {
    code = (e as NodeJS.ErrnoException).code ?? 'unknown';
  }
  try {
    closeSync(fd);
  } catch (e) {
    code ??= (e as NodeJS.ErrnoException).code ?? 'unknown';
  }
  return code;
}

/** Mounts a tmpfs in the workspace and unmounts it (after `before`) at the end of the test body. */
async function withSmallFs(ws: Workspace, bytes: number, body: (fs: SmallFs) => Promise<void>, before: () => Promise<void> = async () => undefined): Promise<void> {
  const fs = mountSmallFs(join(ws.dir, 'small'), bytes);
  try {
    await body(fs);
  } finally {
    await before();
    fs.unmount();
  }
}

t.test('writes and commit on a full disk', { skip }, async (t) => {
  const ws = workspace(t, 'diskfull');
  let unmountDvfs: () => Promise<void> = async () => undefined;
  await withSmallFs(
    ws,
    12 * MiB,
    async (small) => {
      const repo = initRepo(ws, 'small/repo');
      const m = mountDvfs(ws, repo, join(ws.dir, 'mnt'), { xattr: false });
      unmountDvfs = async () => {
        if (processAlive(m.pid)) await m.umount();
      };
      // Files written and closed before the disk fills.
      const kept = new Map<string, Buffer>();
      await mkdir(join(m.mnt, 'kept'));
      for (let i = 0; i < 4; i++) kept.set(`kept/k${i}.bin`, randomBytes(150_000 + i * 1000));
      for (const [p, data] of kept) writeFileSync(join(m.mnt, p), data);
      ok(t, ws.cli(['commit', repo, '-m', 'before the disk filled', '--json']), 'a first commit (while mounted)');
      const head1 = await readHead(repo);
      t.ok(head1, 'HEAD exists');

      // Fill it through the mount.
      const code = writeThrough(join(m.mnt, 'huge.bin'), randomBytes(24 * MiB));
      t.comment('fault injected: disk-full during writes through the mount');
      t.equal(code, 'ENOSPC', 'a write past the end of the disk fails with ENOSPC through the mount');
      t.ok(processAlive(m.pid), 'the daemon is alive');
      ok(t, ws.cli(['status', m.mnt, '--json']), 'dvfs status answers');
      for (const [p, data] of kept) t.ok(readFileSync(join(m.mnt, p)).equals(data), `${p} reads back intact on the full disk`);
      // More small writes on the full disk: an error or success, never a crash.
      const small1 = writeThrough(join(m.mnt, 'kept', 'late.txt'), randomBytes(200_000));
      t.ok(small1 === null || small1 === 'ENOSPC', `a further write gives ENOSPC or works (${small1})`);
      // Whatever is left, fill the rest directly so that commit has no room at all.
      small.fill(join(small.dir, 'filler'));

      t.comment('fault injected: disk-full during commit');
      const c = ws.cli(['commit', repo, '-m', 'on a full disk', '--json']);
      t.ok(processAlive(m.pid), 'the daemon survived a commit on a full disk');
      if (c.status === 0) {
        t.comment('commit on the full disk succeeded (it found room); the snapshot must verify');
      } else {
        failedCleanly(t, c, 'commit on a full disk', [repo]);
        t.match(c.stderr, /no space left.*df -h/, 'saying the disk is full and what to do');
        t.equal(await readHead(repo), head1, 'HEAD is unchanged after the failed commit');
      }

      // Free space: remove the filler and the huge file; the next commit succeeds.
      await unlink(join(small.dir, 'filler'));
      await unlink(join(m.mnt, 'huge.bin')).catch(() => undefined);
      kept.set('after.bin', randomBytes(300_000));
      writeFileSync(join(m.mnt, 'after.bin'), kept.get('after.bin') as Buffer);
      const late = readFileSync(join(m.mnt, 'kept', 'late.txt'), { flag: 'r' });
      kept.set('kept/late.txt', late); // whatever the mount holds for it now is what must be committed
      ok(t, ws.cli(['commit', repo, '-m', 'after freeing space']), 'commit after freeing space');
      t.not(await readHead(repo), head1, 'HEAD moved');
      await m.umount();
      ok(t, ws.cli(['verify', repo, '--full']), 'dvfs verify --full passes');
      const out = join(ws.dir, 'restored');
      ok(t, ws.cli(['restore', repo, 'HEAD', '--to', out]), 'restore HEAD');
      t.equal(await sameTree(out, kept), null, 'HEAD restores byte-identical');
      const out1 = join(ws.dir, 'restored1');
      ok(t, ws.cli(['restore', repo, head1 ?? 'HEAD', '--to', out1]), 'restore the first snapshot');
      t.equal(await sameTree(out1, new Map([...kept].filter(([p]) => p.startsWith('kept/k')))), null, 'the first snapshot restores byte-identical');
    },
    () => unmountDvfs(),
  );
});

t.test('clone and pull into a full disk', { skip }, async (t) => {
  const ws = workspace(t, 'diskfull-pull');
  // The source repository and its remote live on the ordinary disk.
  const src = initRepo(ws, 'src');
  const remote = `file://${join(ws.dir, 'remote')}`;
  const v1 = new Map<string, Buffer>([['a/one.bin', randomBytes(200_000)], ['a/two.txt', Buffer.from('two\n')]]);
  const put = async (files: ReadonlyMap<string, Buffer>, label: string): Promise<void> => {
    const dir = join(ws.dir, `in-${label}`);
    for (const [p, data] of files) {
      await mkdir(join(dir, p, '..'), { recursive: true });
      await writeFile(join(dir, p), data);
    }
    ok(t, ws.cli(['put', src, dir, `/${label}`]), `put ${label}`);
    ok(t, ws.cli(['commit', src, '-m', label]), `commit ${label}`);
    ok(t, ws.cli(['push', src, remote]), `push ${label}`);
  };
  const prefixed = (label: string, files: ReadonlyMap<string, Buffer>): [string, Buffer][] => [...files].map(([p, d]) => [`${label}/${p}`, d]);
  await put(v1, 'v1');

  await withSmallFs(ws, 3 * MiB, async (small) => {
    // A clone that cannot fit: a 5 MiB snapshot into 3 MiB.
    const big = new Map<string, Buffer>([['big.bin', randomBytes(5 * MiB)]]);
    const bigSrc = initRepo(ws, 'bigsrc');
    await writeFile(join(ws.dir, 'big.bin'), big.get('big.bin') as Buffer);
    ok(t, ws.cli(['put', bigSrc, join(ws.dir, 'big.bin'), '/big.bin']), 'put big');
    ok(t, ws.cli(['commit', bigSrc]), 'commit big');
    const bigRemote = `file://${join(ws.dir, 'bigremote')}`;
    ok(t, ws.cli(['push', bigSrc, bigRemote]), 'push big');
    const target = join(small.dir, 'clone-big');
    t.comment('fault injected: disk-full during clone');
    const cf = ws.cli(['clone', bigRemote, target]);
    failedCleanly(t, cf, 'clone into a full disk', [target]);
    t.match(cf.stderr, /no space left.*df -h/, 'saying the disk is full and what to do');
    t.notOk(existsSync(target), 'no half clone is left under the target name');
    t.same(readdirSync(small.dir).filter((n) => n.includes('dvfs-clone')), [], 'and no staging directory');

    // A clone that fits, then a pull that does not.
    const clone = join(small.dir, 'clone');
    ok(t, ws.cli(['clone', remote, clone]), 'clone of the small history fits');
    const head1 = await readHead(clone);
    const v2 = new Map<string, Buffer>([['b/large.bin', randomBytes(4 * MiB)]]);
    await put(v2, 'v2');
    t.comment('fault injected: disk-full during pull');
    const pf = ws.cli(['pull', clone]);
    failedCleanly(t, pf, 'pull into a full disk', [clone]);
    t.match(pf.stderr, /no space left.*df -h/, 'saying the disk is full and what to do');
    t.equal(await readHead(clone), head1, 'HEAD of the clone is unchanged after the failed pull');
    ok(t, ws.cli(['verify', clone]), 'the clone verifies after the failed pull');
    const out1 = join(ws.dir, 'out1');
    ok(t, ws.cli(['restore', clone, 'HEAD', '--to', out1]), 'restore of the old HEAD');
    t.equal(await sameTree(out1, new Map(prefixed('v1', v1))), null, 'the old HEAD is intact');

    // Room again: the same pull completes.
    small.resize(16 * MiB);
    ok(t, ws.cli(['pull', clone]), 'pull after the disk grew');
    ok(t, ws.cli(['verify', clone, '--full']), 'the clone verifies in full');
    const out2 = join(ws.dir, 'out2');
    ok(t, ws.cli(['restore', clone, 'HEAD', '--to', out2]), 'restore of the pulled HEAD');
    t.equal(await sameTree(out2, new Map([...prefixed('v1', v1), ...prefixed('v2', v2)])), null, 'the pulled HEAD is byte-identical');
    const commit = JSON.parse(ok(t, ws.cli(['commit', clone, '--json']), 'commit after pull').out) as { nothingToCommit?: boolean };
    t.equal(commit.nothingToCommit, true, 'the working tree is the pulled HEAD');
    await rm(join(small.dir, 'clone'), { recursive: true, force: true });
  });
});
