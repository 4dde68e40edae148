// Load: 16 mounts of one repository (16 sessions) each write their own files, then 16 `dvfs commit --session`
// processes start at once. Every commit succeeds (they serialize on the repository lock), the history is one
// line of 16 snapshots, one per session, and every snapshot restores byte-identical to what the sessions
// committed up to it had written.
import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuseAvailable, initRepo, mountDvfs, workspace, type DvfsMount } from '../helpers/mount.js';
import { rng } from '../helpers/rng.js';
import { dvfsAsync, treeHashes } from './load-helpers.js';
import { createHash } from 'node:crypto';

const SESSIONS = 16;

interface LogEntry {
  id: string;
  parents: string[];
  message: string;
}

/** Writes session k's files through its mount; returns relative path → SHA-256 of what was written. */
function writeSessionFiles(m: DvfsMount, k: number): Map<string, string> {
  const r = rng(9000 + k);
  const written = new Map<string, string>();
  const put = (rel: string, data: Buffer): void => {
    writeFileSync(join(m.mnt, rel), data);
    written.set(rel, createHash('sha256').update(data).digest('hex'));
  };
  mkdirSync(join(m.mnt, `s${k}`, 'deep', 'er'), { recursive: true });
  for (let f = 0; f < 12; f++) put(`s${k}/file${f}.bin`, r.bytes(f === 0 ? 0 : r.int(70_000)));
  put(`s${k}/deep/er/note.txt`, Buffer.from(`session ${k}\n`));
  put(`top-${k}.txt`, Buffer.from(`written by session ${k}\n`.repeat(k + 1)));
  return written;
}

const skip = fuseAvailable();

t.test(`${SESSIONS} concurrent commits of ${SESSIONS} sessions into one repository`, { skip: skip ?? false }, async (t) => {
  const ws = workspace(t, 'commits16');
  const repo = initRepo(ws, 'repo');
  const mounts: DvfsMount[] = [];
  for (let k = 0; k < SESSIONS; k++) {
    const mnt = join(ws.dir, `mnt${k}`);
    mkdirSync(mnt);
    mounts.push(mountDvfs(ws, repo, mnt, { xattr: false }));
  }
  const written = mounts.map((m, k) => writeSessionFiles(m, k));
  const sessionOf = mounts.map((m) => String(m.status()['session']));
  t.equal(new Set(sessionOf).size, SESSIONS, `${SESSIONS} mounts are ${SESSIONS} distinct sessions`);

  const results = await Promise.all(sessionOf.map((id, k) => dvfsAsync(['commit', repo, '--session', id, '--json', '-m', `session ${k}`], ws.env)));
  results.forEach((r, k) => t.equal(r.status, 0, `commit of session ${k} succeeds ${r.stderr.trim().slice(0, 400)}`));
  const reports = results.map((r) => JSON.parse(r.out) as { snapshot: string | null; nothingToCommit: boolean; added: number });
  reports.forEach((r, k) => t.ok(!r.nothingToCommit && r.added >= 16, `session ${k} committed its ${r.added} entries`));

  for (const m of mounts) await m.umount();

  const log = ws.cli(['log', repo, '--json']);
  t.equal(log.status, 0, 'dvfs log works');
  const history = (JSON.parse(log.out) as { snapshots: LogEntry[] }).snapshots.reverse();
  t.equal(history.length, SESSIONS, `history holds exactly ${SESSIONS} snapshots`);
  t.same(history[0]?.parents, [], 'the oldest snapshot has no parent');
  for (let i = 1; i < history.length; i++) t.same(history[i]?.parents, [history[i - 1]?.id], `snapshot ${i} has the one before as its only parent`);
  t.same(history.map((h) => h.message).sort(), Array.from({ length: SESSIONS }, (_, k) => `session ${k}`).sort(), 'one snapshot per session');
  t.same(new Set(reports.map((r) => r.snapshot)), new Set(history.map((h) => h.id)), 'every commit reported the snapshot the history holds');

  // Snapshot i holds what the sessions committed up to it wrote, and nothing else.
  const expected = new Map<string, string>();
  for (const [i, snap] of history.entries()) {
    const k = Number(/^session (\d+)$/.exec(snap.message)?.[1]);
    for (const [p, h] of written[k] ?? []) expected.set(p, h);
    const out = join(ws.dir, `restore-${i}`);
    const r = ws.cli(['restore', repo, snap.id, '--to', out]);
    t.equal(r.status, 0, `restore of snapshot ${i} (session ${k}) ${r.stderr.trim().slice(0, 300)}`);
    t.same(treeHashes(out), new Map([...expected].sort(([a], [b]) => (a < b ? -1 : 1))), `snapshot ${i} restores byte-identical (${expected.size} files)`);
  }

  const v = ws.cli(['verify', repo, '--full']);
  t.equal(v.status, 0, `dvfs verify --full passes ${v.stderr.trim().slice(0, 400)}`);
});
