// The streamed summary (scratch LevelDB, path order) gives exactly the entries of the in-memory replay for
// sessions that only add and change (writes, mkdirs, symlinks, metadata), and falls back to the in-memory
// replay when a session renames, removes, or creates over a path it changed.
import t from 'tap';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionJournal, type SummaryEntry } from '../../daemon/journal/journal.js';
import { summarizeForCommit } from '../../daemon/journal/summary-stream.js';
import { rng } from '../helpers/rng.js';

async function fresh(t: { teardown(fn: () => unknown): void }): Promise<{ dir: string; journal: SessionJournal }> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-sumstream-'));
  const journal = await SessionJournal.create(join(dir, 'j'), { sessionId: 's', repoId: 'r', mountpoint: '/m', startedAt: new Date().toISOString(), baseSnapshot: null, host: 'h', pid: process.pid });
  t.teardown(async () => {
    await journal.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, journal };
}

async function streamed(journal: SessionJournal, scratchDir: string): Promise<{ entries: SummaryEntry[]; inMemory: boolean; counts: object; size: number }> {
  const s = await summarizeForCommit(journal, { streamAbove: 0, scratchDir });
  try {
    const entries: SummaryEntry[] = [];
    for await (const e of s.entries()) entries.push(e);
    return { entries, inMemory: s.inMemory !== null, counts: s.counts, size: s.size };
  } finally {
    await s.close();
  }
}

const hex = (n: number): string => n.toString(16).padStart(64, '0');

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  t.test(`seed ${seed} (rng): random adds and changes, streamed = in memory`, async (t) => {
    const { dir, journal } = await fresh(t);
    const r0 = rng(seed);
    const pick = (n: number): number => r0.int(n);
    // Start-tree directories /s0../s2 (never named by a mkdir), new ones made in the session.
    const dirs = ['/s0', '/s1', '/s2', '/s1/deep'];
    const files: string[] = [];
    for (let i = 0; i < 400; i++) {
      const r = pick(10);
      if (r === 0) {
        const d = `${dirs[pick(dirs.length)] as string}/n${i}`;
        journal.mkdir(d);
        dirs.push(d);
      } else if (r <= 5) {
        const f = `${dirs[pick(dirs.length)] as string}/f${pick(30)}`;
        const known = files.includes(f);
        // A new file is created; an existing one (of the start tree or this session) is written in place.
        journal.write(f, { hash: pick(5) === 0 ? null : hex(i), size: i, ...(known || pick(3) === 0 ? {} : { created: true }) });
        if (!known) files.push(f);
      } else if (r <= 7) {
        const target = pick(2) === 0 && files.length > 0 ? (files[pick(files.length)] as string) : `${dirs[pick(dirs.length)] as string}/old${pick(10)}`;
        journal.meta(target);
      } else if (r === 8) {
        journal.symlink(`${dirs[pick(dirs.length)] as string}/l${i}`);
      } else {
        journal.meta(dirs[pick(dirs.length)] as string);
      }
    }
    journal.meta('/');
    await journal.flush();
    const want = await journal.summary();
    const got = await streamed(journal, join(dir, 'scratch'));
    t.equal(got.inMemory, false, 'streamed from the scratch database');
    t.same(got.entries, want.entries, 'same entries in the same order');
    t.same(got.counts, want.counts, 'same counts');
    t.equal(got.size, want.entries.length);
    t.same(await readdir(dir), ['j'], 'the scratch database is removed at close');
  });
}

t.test('a rename or removal falls back to the in-memory replay', async (t) => {
  const { dir, journal } = await fresh(t);
  journal.mkdir('/a');
  journal.write('/a/f', { hash: hex(1), size: 1, created: true });
  journal.rename('/a/f', '/a/g');
  journal.remove('/old');
  await journal.flush();
  const got = await streamed(journal, join(dir, 'scratch'));
  t.equal(got.inMemory, true);
  t.same(got.entries, (await journal.summary()).entries);
});

t.test('a create over a path the session changed in place falls back (replaced)', async (t) => {
  const { dir, journal } = await fresh(t);
  journal.write('/f', { hash: hex(1), size: 1 });
  journal.write('/f', { hash: hex(2), size: 2, created: true });
  await journal.flush();
  const want = await journal.summary();
  const got = await streamed(journal, join(dir, 'scratch'));
  t.equal(got.inMemory, true);
  t.same(got.entries, want.entries);
  t.equal(want.entries[0]?.replaced, true, 'the replay marks it replaced');
});

t.test('few records stay in memory', async (t) => {
  const { dir, journal } = await fresh(t);
  journal.write('/f', { hash: hex(1), size: 1, created: true });
  await journal.flush();
  const s = await summarizeForCommit(journal, { streamAbove: 10, scratchDir: join(dir, 'scratch') });
  t.not(s.inMemory, null);
  await s.close();
});
