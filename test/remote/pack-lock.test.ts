// Remote locks: shared locks coexist, exclusive ones exclude everything, stale ones are ignored, refresh and
// release work, a lock that appears while acquiring makes the newcomer withdraw, and a tampered lock is an
// integrity error.
import t from 'tap';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Body, ObjectInfo } from '../../daemon/remote/backend.js';
import { FileBackend } from '../../daemon/remote/file-backend.js';
import { deriveRemoteKeys, wipeRemoteKeys } from '../../daemon/remote/keys.js';
import { RemoteIntegrityError } from '../../daemon/remote/layout.js';
import { listLocks, lockKey, RemoteLock, removeStaleLocks, sealLock } from '../../daemon/remote/lock.js';
import { RemoteRepository } from '../../daemon/remote/repository.js';
import { errorOf, repoKeys, tempRemote } from './pack-helpers.js';

t.test('shared, exclusive, stale, refresh, release', async (t) => {
  const keys = repoKeys(t);
  const remote = await tempRemote(t);
  const repo = await RemoteRepository.init(remote, keys);
  t.teardown(() => repo.close());
  const rk = deriveRemoteKeys(keys);
  t.teardown(() => wipeRemoteKeys(rk));

  const a = await repo.lock({ purpose: 'push' });
  const b = await repo.lock({ purpose: 'push' });
  t.equal((await listLocks(remote, rk)).length, 2, 'two shared locks');
  const e = await errorOf(repo.lock({ exclusive: true, purpose: 'gc' }));
  t.match(e, { code: 'E_BUSY', message: /is locked by push on .* \(pid \d+, since / });
  t.equal((await listLocks(remote, rk)).length, 2, 'the refused lock left nothing behind');
  await a.release();
  await b.release();
  await a.release();
  t.equal((await listLocks(remote, rk)).length, 0, 'released');

  const x = await repo.lock({ exclusive: true, purpose: 'gc' });
  t.match(await errorOf(repo.lock({ purpose: 'push' })), { code: 'E_BUSY', message: /locked exclusively by gc/ });
  t.match(await errorOf(repo.lock({ exclusive: true })), { code: 'E_BUSY' });

  // An hour later, without refreshes, the exclusive lock is stale.
  const later = () => Date.now() + 60 * 60 * 1000;
  const y = await repo.lock({ purpose: 'push', now: later });
  await y.release();
  await x.refresh();
  t.match(await errorOf(repo.lock({ purpose: 'push', now: () => Date.now() + 10 * 60 * 1000 })), { code: 'E_BUSY' }, 'refreshed: not stale after 10 minutes');
  t.same(await removeStaleLocks(remote, rk), [], 'nothing stale now');
  t.same(await removeStaleLocks(remote, rk, { now: later }), [x.name], 'stale an hour later');
  t.equal((await listLocks(remote, rk)).length, 0);
  await x.release();

  const z = await repo.lock({ purpose: 'push' });
  const t0 = (await listLocks(remote, rk))[0]?.time;
  z.keepFresh(20);
  await new Promise((r) => setTimeout(r, 120));
  const t1 = (await listLocks(remote, rk))[0]?.time;
  t.ok(t0 !== undefined && t1 !== undefined && Date.parse(t1) > Date.parse(t0), `kept fresh: ${t0} -> ${t1}`);
  await z.release();
  t.equal((await listLocks(remote, rk)).length, 0, 'released, refreshing stopped');
  await new Promise((r) => setTimeout(r, 60));
  t.equal((await listLocks(remote, rk)).length, 0, 'no refresh after release');
});

t.test('a conflicting lock written meanwhile makes the newcomer withdraw', async (t) => {
  const keys = repoKeys(t);
  const file = await tempRemote(t);
  const rk = deriveRemoteKeys(keys);
  t.teardown(() => wipeRemoteKeys(rk));
  // A backend on which, right after our lock is written, another host's exclusive lock appears.
  class Racy extends FileBackend {
    raced = false;
    override async put(key: string, body: Body, size: number): Promise<void> {
      await super.put(key, body, size);
      if (key.startsWith('locks/') && !this.raced) {
        this.raced = true;
        const name = 'cd'.repeat(32);
        const data = sealLock(rk, name, { exclusive: true, purpose: 'gc', host: 'other', pid: 1, time: new Date().toISOString() });
        await super.put(lockKey(name), data, data.length);
      }
    }
  }
  const racy = new Racy(file.root, { fsync: false });
  t.match(await errorOf(RemoteLock.acquire(racy, rk, { purpose: 'push' })), { code: 'E_BUSY', message: /exclusively by gc on other/ });
  const left = await listLocks(racy, rk);
  t.same(left.map((l) => l.host), ['other'], 'our lock was withdrawn');
});

t.test('a tampered lock is an integrity error', async (t) => {
  const keys = repoKeys(t);
  const remote = await tempRemote(t);
  const rk = deriveRemoteKeys(keys);
  t.teardown(() => wipeRemoteKeys(rk));
  const l = await RemoteLock.acquire(remote, rk);
  const path = join((remote as FileBackend).root, lockKey(l.name));
  const buf = await readFile(path);
  buf[30] = (buf[30] ?? 0) ^ 1;
  await writeFile(path, buf);
  const e = await errorOf(RemoteLock.acquire(remote, rk));
  t.ok(e instanceof RemoteIntegrityError, 'RemoteIntegrityError');
  t.match((e as Error).message, /lock: authentication failed/);
});

t.test('taking a lock costs one put and one list: no look before writing, its own lock not read back', async (t) => {
  const keys = repoKeys(t);
  const file = await tempRemote(t);
  const rk = deriveRemoteKeys(keys);
  t.teardown(() => wipeRemoteKeys(rk));
  class Counting extends FileBackend {
    calls: string[] = [];
    override put(key: string, body: Body, size: number): Promise<void> {
      this.calls.push(`put ${key.split('/')[0] ?? ''}`);
      return super.put(key, body, size);
    }
    override get(key: string): Promise<Buffer> {
      this.calls.push(`get ${key.split('/')[0] ?? ''}`);
      return super.get(key);
    }
    override list(prefix: string): AsyncGenerator<ObjectInfo> {
      this.calls.push(`list ${prefix}`);
      return super.list(prefix);
    }
  }
  const counting = new Counting(file.root, { fsync: false });
  const first = await RemoteLock.acquire(counting, rk, { purpose: 'push' });
  t.same(counting.calls, ['put locks', 'list locks/'], 'alone: a put and a list');
  counting.calls = [];
  const second = await RemoteLock.acquire(counting, rk, { purpose: 'push' });
  t.same(counting.calls, ['put locks', 'list locks/', 'get locks'], 'beside another lock: that one is read (to check it), ours is not');
  t.same((await listLocks(counting, rk)).map((l) => l.name).sort(), [first.name, second.name].sort(), 'both shared locks are there');
  await first.release();
  await second.release();
});
