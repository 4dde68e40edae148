// The repository lock: exclusive between processes (a child node process holds it), waiting, stale locks of
// dead processes / reused pids / an earlier boot broken with a note, remote and fresh-but-unreadable locks
// respected, and mutual exclusion among many contenders (also while breaking one stale lock).
import t from 'tap';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { link, mkdir, readdir, readFile, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DvfsError } from '../../daemon/errors.js';
import { acquireRepoLock, lockPath, readLockInfo, withRepoLock, type LockInfo } from '../../daemon/store/lock.js';
import { fuseAvailable, quickMount } from '../helpers/mount.js';
import { errorOf, tempDir, tempRepo } from './store-helpers.js';

const LOCK_MODULE = fileURLToPath(new URL('../../daemon/store/lock.js', import.meta.url));

const CHILD = `
  const { acquireRepoLock } = await import(${JSON.stringify(LOCK_MODULE)});
  const [root, mode] = process.argv.slice(1);
  if (mode === 'hold') {
    const lock = await acquireRepoLock(root, { purpose: 'child-snapshot' });
    process.stdout.write('locked\\n');
    process.stdin.once('data', async () => {
      await lock.release();
      process.stdout.write('released\\n');
      process.exit(0);
    });
  } else {
    try {
      const lock = await acquireRepoLock(root, { purpose: 'child-try', waitMs: 100 });
      await lock.release();
      process.stdout.write(JSON.stringify({ acquired: true }));
    } catch (e) {
      process.stdout.write(JSON.stringify({ acquired: false, code: e.code, message: e.message, hint: e.hint }));
    }
  }
`;

function child(root: string, mode: 'hold' | 'try'): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['--input-type=module', '-e', CHILD, root, mode]);
}

function line(p: ChildProcessWithoutNullStreams, want: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      if (buf.includes(want)) {
        p.stdout.off('data', onData);
        resolve();
      }
    };
    p.stdout.on('data', onData);
    p.once('exit', (code) => reject(new Error(`child exited (${code}) before saying ${want}: ${buf}`)));
  });
}

function output(p: ChildProcessWithoutNullStreams): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    p.stdout.on('data', (d: Buffer) => (buf += d.toString()));
    p.once('close', () => resolve(buf));
  });
}

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

t.test('exclusive between processes', async (t) => {
  const { root } = await tempRepo(t);
  const holder = child(root, 'hold');
  t.teardown(() => void holder.kill());
  await line(holder, 'locked');
  const info = await readLockInfo(root);
  t.match(info, { pid: holder.pid, host: hostname(), purpose: 'child-snapshot' }, 'lock file names the holder');

  const started = Date.now();
  const e = await errorOf(acquireRepoLock(root, { purpose: 'parent', waitMs: 150 }));
  t.ok(Date.now() - started >= 140, 'waited before giving up');
  t.ok(e instanceof DvfsError && e.code === 'E_EXISTS', 'refused while the child holds it');
  if (e instanceof DvfsError) {
    t.match(e.message, `pid ${holder.pid} on ${hostname()}`);
    t.match(e.message, 'purpose: child-snapshot');
    t.match(e.hint ?? '', /wait for it to finish/);
  }

  // The child lets go while we wait.
  const waiting = acquireRepoLock(root, { purpose: 'parent', waitMs: 10_000 });
  await sleep(50);
  holder.stdin.write('go\n');
  const lock = await waiting;
  t.equal(lock.brokeStale, undefined, 'a released lock is not "stale"');
  t.equal((await readLockInfo(root))?.pid, process.pid);

  // And now the other way round.
  const tryer = child(root, 'try');
  const r = JSON.parse(await output(tryer)) as { acquired: boolean; code?: string; message?: string };
  t.equal(r.acquired, false, 'a child cannot take it from us');
  t.equal(r.code, 'E_EXISTS');
  t.match(r.message ?? '', `pid ${process.pid}`);
  t.match(r.message ?? '', 'purpose: parent');
  await lock.release();
  const tryer2 = child(root, 'try');
  t.same(JSON.parse(await output(tryer2)), { acquired: true }, 'released: the child gets it');
});

t.test('within one process', async (t) => {
  const { root } = await tempRepo(t);
  const a = await acquireRepoLock(root, { purpose: 'a' });
  await t.rejects(acquireRepoLock(root, { purpose: 'b' }), DvfsError, 'not re-entrant');
  await a.release();
  await a.release();
  const e = await errorOf(withRepoLock(root, { purpose: 'c' }, async () => Promise.reject(new Error('boom'))));
  t.match(e, { message: 'boom' });
  t.equal(await readLockInfo(root), null, 'withRepoLock released after a throw');
  t.equal(await withRepoLock(root, { purpose: 'd' }, async (l) => l.info.purpose), 'd');

  // Release leaves a lock that is no longer ours alone.
  const mine = await acquireRepoLock(root, { purpose: 'mine' });
  await unlink(lockPath(root));
  await writeFile(lockPath(root), JSON.stringify({ pid: process.pid, host: hostname(), startedAt: 'x', purpose: 'someone else' }));
  await mine.release();
  t.equal((await readLockInfo(root))?.purpose, 'someone else');
  await unlink(lockPath(root));

  const notRepo = await errorOf(acquireRepoLock(join(await tempDir(t), 'nothing'), { purpose: 'x' }));
  t.ok(notRepo instanceof DvfsError && notRepo.code === 'E_NOTFOUND', 'no .dvfs: E_NOTFOUND');
});

t.test('stale locks are broken with a note', async (t) => {
  const { root } = await tempRepo(t);
  const base: LockInfo = { pid: deadPid(), host: hostname(), startedAt: '2024-01-01T00:00:00.000Z', purpose: 'snapshot' };
  const plant = (info: object | string): Promise<void> => writeFile(lockPath(root), typeof info === 'string' ? info : JSON.stringify(info));

  await plant(base);
  let lock = await acquireRepoLock(root, { purpose: 'after crash' });
  t.match(lock.brokeStale, `pid ${base.pid} on ${hostname()}`, 'dead pid');
  t.match(lock.brokeStale, 'that process is gone');
  t.equal((await readLockInfo(root))?.purpose, 'after crash');
  await lock.release();

  await plant({ ...base, pid: process.pid, pidStart: '1' });
  lock = await acquireRepoLock(root, { purpose: 'x' });
  t.match(lock.brokeStale, 'its pid now belongs to another process', 'reused pid');
  await lock.release();

  const boot = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim();
  if (boot !== '') {
    await plant({ ...base, pid: process.pid, bootId: '00000000-0000-0000-0000-000000000000' });
    lock = await acquireRepoLock(root, { purpose: 'x' });
    t.match(lock.brokeStale, 'rebooted', 'earlier boot');
    await lock.release();
  }

  await plant('{"pid": 12');
  const old = new Date(Date.now() - 60_000);
  await utimes(lockPath(root), old, old);
  lock = await acquireRepoLock(root, { purpose: 'x' });
  t.match(lock.brokeStale, 'unreadable lock file', 'old unreadable lock');
  await lock.release();

  // Not broken: a lock being written right now, and any lock from another host.
  await plant('');
  await t.rejects(acquireRepoLock(root, { purpose: 'x', waitMs: 50 }), { code: 'E_EXISTS', message: /being written/ }, 'fresh unreadable lock');
  await plant({ ...base, host: 'some-other-node' });
  const e = await errorOf(acquireRepoLock(root, { purpose: 'x' }));
  t.ok(e instanceof DvfsError && e.code === 'E_EXISTS', 'remote lock respected');
  if (e instanceof DvfsError) {
    t.match(e.message, 'on some-other-node');
    t.match(e.hint ?? '', `no dvfs process is running on some-other-node any more, remove ${lockPath(root)}`);
  }
});

t.test('the lock file is never seen empty or half-written, and waiters killed mid-wait leave nothing behind', async (t) => {
  const { root } = await tempRepo(t);
  // A reader in another process, as a contender inspecting the holder would read it.
  const reader = spawn(process.execPath, ['-e', `
    const { readFileSync } = require('node:fs');
    const end = Date.now() + 3000;
    let whole = 0, torn = 0;
    while (Date.now() < end) {
      let text;
      try { text = readFileSync(${JSON.stringify(lockPath(root))}, 'utf8'); } catch { continue; }
      try { JSON.parse(text); whole++; } catch { torn++; }
    }
    process.stdout.write(JSON.stringify({ whole, torn }));
  `]);
  const seen = output(reader as ChildProcessWithoutNullStreams);
  await sleep(200);
  for (let i = 0; i < 300; i++) await (await acquireRepoLock(root, { purpose: `round ${i}` })).release();
  const { whole, torn } = JSON.parse(await seen) as { whole: number; torn: number };
  t.ok(whole > 0, `the reader saw the lock (${whole} reads)`);
  t.equal(torn, 0, 'and never an empty or half-written one');

  // What a contender SIGKILLed while waiting leaves: its written lock beside the real one.
  const dir = join(root, '.dvfs');
  const dead = `lock.new-${hostname()}-${deadPid()}-0123456789ab`;
  const live = `lock.new-${hostname()}-${process.ppid}-0123456789ab`;
  const remote = 'lock.new-another-node-4242-0123456789ab';
  for (const name of [dead, live, remote]) await writeFile(join(dir, name), '{}');
  await (await acquireRepoLock(root, { purpose: 'after a killed waiter' })).release();
  t.same((await readdir(dir)).sort(), [live, remote].sort(), 'the next holder removes the dead waiter\'s file, not a live one\'s or another host\'s');
});

t.test('on a filesystem without hard links (a dvfs paranoia mount answers link with EPERM) the lock still works', { skip: fuseAvailable() ?? false }, async (t) => {
  const m = quickMount(t, 'paranoia', { label: 'lock-nolinks' });
  const root = join(m.mnt, 'repo');
  await mkdir(join(root, '.dvfs'), { recursive: true });
  await writeFile(join(root, 'probe'), '');
  t.match(await errorOf(link(join(root, 'probe'), join(root, 'probe2'))), { code: 'EPERM' }, 'this filesystem refuses hard links');
  const lock = await acquireRepoLock(root, { purpose: 'no links' });
  t.equal((await readLockInfo(root))?.purpose, 'no links', 'the lock was made and names its holder');
  const e = await errorOf(acquireRepoLock(root, { purpose: 'second', waitMs: 50 }));
  t.ok(e instanceof DvfsError && e.code === 'E_EXISTS', 'and is exclusive');
  await lock.release();
  t.same((await readdir(join(root, '.dvfs'))).sort(), [], 'released, nothing left beside it');
});

t.test('mutual exclusion among contenders', async (t) => {
  const { root } = await tempRepo(t);
  for (let round = 0; round < 3; round++) {
    // Start from a stale lock so that all contenders also race to break it.
    await writeFile(lockPath(root), JSON.stringify({ pid: deadPid(), host: hostname(), startedAt: 'x', purpose: 'crashed' }));
    let inside = 0;
    let maxInside = 0;
    let broke = 0;
    const runs = Array.from({ length: 8 }, (_, i) =>
      withRepoLock(root, { purpose: `contender ${i}`, waitMs: 10_000 }, async (lock) => {
        if (lock.brokeStale !== undefined) broke++;
        inside++;
        maxInside = Math.max(maxInside, inside);
        await sleep(2);
        inside--;
      }),
    );
    await Promise.all(runs);
    t.equal(maxInside, 1, `round ${round}: never two holders at once`);
    t.equal(broke, 1, `round ${round}: the stale lock was broken exactly once`);
    t.equal(await readLockInfo(root), null, `round ${round}: all released`);
  }
  t.same((await readdir(join(root, '.dvfs'))).sort(), [], 'no breaker or aside files left');
});
