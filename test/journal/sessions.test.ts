// Sessions of a repository: creating them with fresh ids, listing them oldest first with their liveness,
// finding what commit must replay (finished and orphaned sessions), recovering and removing them.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SessionJournal } from '../../daemon/journal/journal.js';
import {
  createSession,
  listSessions,
  newSessionId,
  pendingSessions,
  pidAlive,
  recoverSession,
  removeSession,
  saveSessionInfo,
  sessionsDir,
} from '../../daemon/journal/sessions.js';
import { tempDir } from './helpers.js';

/** The pid of a process that has exited (and been reaped). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

t.test('ids sort by start time', async (t) => {
  const a = newSessionId(new Date('2025-03-04T05:06:07.008Z'));
  t.match(a, /^20250304T050607008Z-[0-9a-f]{8}$/);
  const b = newSessionId(new Date('2025-03-04T05:06:07.009Z'));
  t.ok(a < b);
  t.ok(pidAlive(process.pid));
  t.notOk(pidAlive(deadPid()));
  t.notOk(pidAlive(-1));
});

t.test('create, list, finish, orphan, other host, recover, remove', async (t) => {
  const repo = await tempDir(t, 'sessions');
  t.same(await listSessions(repo), [], 'no sessions directory yet');

  const live = await createSession(repo, { repoId: 'R', mountpoint: '/mnt/a', baseSnapshot: 'snap0', startedAt: new Date('2025-01-01T00:00:01Z') });
  t.teardown(() => live.journal.close());
  t.equal((await stat(live.listing.dir)).mode & 0o777, 0o700);
  t.equal((await stat(join(live.listing.dir, 'session.json'))).mode & 0o777, 0o600);
  live.journal.write('/x', { hash: 'h', size: 1, created: true });

  const dead = deadPid();
  const crashed = await createSession(repo, { repoId: 'R', mountpoint: '/mnt/b', baseSnapshot: 'snap0', pid: dead, startedAt: new Date('2025-01-01T00:00:02Z') });
  crashed.journal.write('/y', { hash: null, size: 5 });
  await crashed.journal.flush();
  await crashed.journal.close(); // the dead daemon's LevelDB lock went with it

  const done = await createSession(repo, { repoId: 'R', mountpoint: '/mnt/c', baseSnapshot: null, startedAt: new Date('2025-01-01T00:00:03Z') });
  done.journal.write('/z', { hash: 'hz', size: 2, created: true });
  await done.journal.finish();
  await saveSessionInfo(done.listing.dir, done.journal);
  await done.journal.close();

  const remote = await createSession(repo, { repoId: 'R', mountpoint: '/mnt/d', baseSnapshot: null, host: 'some-other-node', pid: dead, startedAt: new Date('2025-01-01T00:00:04Z') });
  await remote.journal.close();

  // A half-made session directory (no session.json) and a stray file are skipped.
  await mkdir(join(sessionsDir(repo), '20250101T000000000Z-deadbeef'));
  await writeFile(join(sessionsDir(repo), 'README'), 'x');
  const skipped: string[] = [];
  const all = await listSessions(repo, (dir) => skipped.push(dir));
  t.equal(skipped.length, 1);
  t.same(
    all.map((s) => [s.info.mountpoint, s.info.state, s.liveness, s.orphaned]),
    [
      ['/mnt/a', 'open', 'alive', false],
      ['/mnt/b', 'open', 'dead', true],
      ['/mnt/c', 'finished', 'alive', false],
      ['/mnt/d', 'open', 'unknown', false],
    ],
    'oldest first, with liveness',
  );
  t.match(all[0]?.info, { repoId: 'R', baseSnapshot: 'snap0', pid: process.pid, sessionId: live.listing.id });

  const pending = await pendingSessions(repo);
  t.same(
    pending.map((s) => s.info.mountpoint),
    ['/mnt/b', '/mnt/c'],
    'commit replays the orphaned and the finished session',
  );

  // Recovering the orphan: everything it flushed is there; it is finished now.
  const orphan = pending[0];
  if (!orphan) throw new Error('unreachable');
  const j = await recoverSession(orphan);
  t.equal(j.state, 'finished');
  t.same((await j.summary()).entries.map((e) => `${e.status} ${e.path} ${e.dirty}`), ['changed /y true']);
  await j.markCommitted(j.lastSeq, 'snap1');
  await saveSessionInfo(orphan.dir, j);
  await j.close();
  t.equal(JSON.parse(await readFile(join(orphan.dir, 'session.json'), 'utf8')).state, 'committed');

  const again = await listSessions(repo);
  const byMount = (m: string) => again.find((s) => s.info.mountpoint === m) as NonNullable<(typeof again)[number]>;
  await t.rejects(removeSession(byMount('/mnt/a')), { code: 'E_USAGE' }, 'a live session stays');
  await t.rejects(removeSession(byMount('/mnt/c')), { code: 'E_USAGE' }, 'uncommitted records stay');
  await t.rejects(removeSession(byMount('/mnt/d')), { code: 'E_USAGE' }, 'a session of another host may be running');
  await removeSession(byMount('/mnt/b'));
  await removeSession(byMount('/mnt/c'), { force: true });
  t.same(
    (await listSessions(repo)).map((s) => s.info.mountpoint),
    ['/mnt/a', '/mnt/d'],
  );
  await t.rejects(SessionJournal.open(join(byMount('/mnt/b').dir, 'journal')), { code: 'E_NOTFOUND' });
});
