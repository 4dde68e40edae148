// SessionJournal: ordered records across batches and reopen, lifecycle states, the net-effect summary
// (a realistic sequence, renames of directories, swaps; and a randomized model check that applying the
// summary to the start tree gives the tree now), and crash safety under SIGKILL.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { applyPlan } from '../../daemon/journal/apply-plan.js';
import { SessionJournal, type JournalSummary, type SessionMeta, type SummaryEntry } from '../../daemon/journal/journal.js';
import { DvfsError } from '../../daemon/errors.js';
import { rng } from '../helpers/rng.js';
import { sha256, tempDir, TEST_META } from './helpers.js';

const META: SessionMeta = TEST_META;

async function newJournal(t: Test, opts = {}): Promise<{ j: SessionJournal; dir: string }> {
  const dir = join(await tempDir(t, 'journal'), 'j');
  const j = await SessionJournal.create(dir, META, opts);
  t.teardown(() => j.close().catch(() => undefined));
  return { j, dir };
}

async function collect(j: SessionJournal, after = 0): Promise<{ seq: number; op: string; path?: string }[]> {
  const out = [];
  for await (const r of j.records(after)) out.push(r);
  return out;
}

t.test('records come back in order across timer batches, size-triggered batches and reopen', async (t) => {
  const { j, dir } = await newJournal(t, { flushIntervalMs: 1, maxPending: 100 });
  const N = 5000;
  for (let i = 1; i <= N; i++) {
    const seq = j.write(`/d${i % 7}/f${i}`, { hash: i % 3 === 0 ? null : `h${i}`, size: i });
    if (seq !== i) t.fail(`seq ${seq} for record ${i}`);
    if (i % 997 === 0) await new Promise((r) => setTimeout(r, 3)); // let timer batches happen
  }
  j.rename('/d1', '/e1');
  j.remove('/d2/f2');
  j.mkdir('/m');
  j.symlink('/m/l');
  j.meta('/m');
  let recs = await collect(j);
  t.equal(recs.length, N + 5);
  t.ok(recs.every((r, i) => r.seq === i + 1), 'seqs 1..N in order');
  t.same(
    recs.slice(-5).map((r) => r.op),
    ['rename', 'remove', 'mkdir', 'symlink', 'meta'],
  );
  t.same((await collect(j, N)).map((r) => r.seq), [N + 1, N + 2, N + 3, N + 4, N + 5], 'records(afterSeq)');
  await j.close();

  const k = await SessionJournal.open(dir);
  t.teardown(() => k.close());
  t.equal(k.lastSeq, N + 5);
  t.same(k.info, META);
  t.equal(k.state, 'open');
  recs = await collect(k);
  t.equal(recs.length, N + 5);
  t.equal(k.write('/after', { hash: 'x', size: 1 }), N + 6, 'sequence continues after reopen');
  const first = recs[0] as unknown as { path: string; hash: string; size: number; time: number };
  t.match(first, { op: 'write', path: '/d1/f1', hash: 'h1', size: 1 });
  t.type(first.time, 'number');
});

t.test('lifecycle: finish, markCommitted, clearUpTo, and no records after finish', async (t) => {
  const { j, dir } = await newJournal(t);
  for (let i = 0; i < 10; i++) j.write(`/f${i}`, { hash: `h${i}`, size: 1, created: true });
  await j.markCommitted(4, 'snap-a'); // a commit while mounted
  t.equal(j.state, 'open');
  t.equal(j.committedSeq, 4);
  t.equal((await j.summary()).entries.length, 6, 'summary starts after the committed records');
  t.equal((await j.summary(0)).entries.length, 10);
  await j.clearUpTo(4);
  t.same((await collect(j)).map((r) => r.seq), [5, 6, 7, 8, 9, 10]);
  await t.rejects(j.clearUpTo(8), DvfsError, 'uncommitted records cannot be cleared');
  await t.rejects(j.markCommitted(11, 'x'), DvfsError, 'beyond the last record');
  await j.finish();
  t.equal(j.state, 'finished');
  t.throws(() => j.write('/late', { hash: null, size: 0 }), DvfsError);
  await j.markCommitted(10, 'snap-b');
  t.equal(j.state, 'committed');
  await j.close();

  const k = await SessionJournal.open(dir);
  t.teardown(() => k.close());
  t.equal(k.state, 'committed');
  t.match(k.stateRecord, { committedSeq: 10, snapshotId: 'snap-b', clearedSeq: 4 });
  t.equal(k.lastSeq, 10);
  await k.clearUpTo(10);
  t.same(await collect(k), []);
  t.equal(k.lastSeq, 10, 'cleared seqs are not reused');

  const { j: empty } = await newJournal(t);
  await empty.finish();
  t.equal(empty.state, 'committed', 'a session without records has nothing to commit');
});

t.test('create refuses an existing journal, open a missing one', async (t) => {
  const { j, dir } = await newJournal(t);
  await t.rejects(SessionJournal.create(dir, META), { code: 'E_IO' }); // locked by the open one
  await t.rejects(SessionJournal.open(dir), { code: 'E_IO', message: /in use by another process/ });
  await j.close();
  await t.rejects(SessionJournal.create(dir, META), { code: 'E_EXISTS' });
  await t.rejects(SessionJournal.open(join(dir, 'nope')), { code: 'E_NOTFOUND' });
});

const pick = (s: JournalSummary): Record<string, Partial<SummaryEntry>> =>
  Object.fromEntries(s.entries.map((e) => [`${e.status} ${e.path}`, { origin: e.origin, kind: e.kind, content: e.content, meta: e.meta, hash: e.hash, dirty: e.dirty, replaced: e.replaced }]));

t.test('summary of a realistic session', async (t) => {
  const { j } = await newJournal(t);
  // start tree (never listed to the journal): /src/a.c /src/b.c /docs/readme /old.txt /data/x.bin
  j.mkdir('/build');
  j.write('/build/out.o', { hash: null, size: 0, created: true });
  j.write('/build/out.o', { hash: 'H1', size: 10 });
  j.write('/src/a.c', { hash: 'H2', size: 20 });
  j.rename('/src', '/lib', { replaced: false }); // a directory: everything below moves
  j.write('/lib/b.c', { hash: null, size: 30 }); // written out of order
  j.remove('/old.txt');
  j.remove('/docs/readme');
  j.write('/docs/readme', { hash: 'H3', size: 5, created: true }); // rm + create again
  j.write('/.x.bin.tmp', { hash: 'H4', size: 7, created: true });
  j.rename('/.x.bin.tmp', '/data/x.bin', { replaced: true }); // an editor's save
  j.meta('/docs');
  j.write('/scratch', { hash: 'H5', size: 1, created: true });
  j.remove('/scratch'); // created and removed: nothing
  j.mkdir('/newdir');
  j.write('/newdir/f', { hash: 'H6', size: 2, created: true });
  j.rename('/newdir', '/newdir2', { replaced: false });
  j.rename('/lib/a.c', '/a.c', { replaced: false }); // out of the renamed directory
  const s = await j.summary();
  t.same(pick(s), {
    'renamed /a.c': { origin: '/src/a.c', kind: 'file', content: true, meta: false, hash: 'H2', dirty: false, replaced: false },
    'added /build': { origin: null, kind: 'dir', content: true, meta: false, hash: null, dirty: false, replaced: false },
    'added /build/out.o': { origin: null, kind: 'file', content: true, meta: false, hash: 'H1', dirty: false, replaced: false },
    'changed /data/x.bin': { origin: null, kind: 'file', content: true, meta: false, hash: 'H4', dirty: false, replaced: true },
    'changed /docs': { origin: '/docs', kind: 'unknown', content: false, meta: true, hash: null, dirty: false, replaced: false },
    'changed /docs/readme': { origin: null, kind: 'file', content: true, meta: false, hash: 'H3', dirty: false, replaced: true },
    'renamed /lib': { origin: '/src', kind: 'unknown', content: false, meta: false, hash: null, dirty: false, replaced: false },
    'changed /lib/b.c': { origin: '/src/b.c', kind: 'file', content: true, meta: false, hash: null, dirty: true, replaced: false },
    'added /newdir2': { origin: null, kind: 'dir', content: true, meta: false, hash: null, dirty: false, replaced: false },
    'added /newdir2/f': { origin: null, kind: 'file', content: true, meta: false, hash: 'H6', dirty: false, replaced: false },
    'removed /old.txt': { origin: '/old.txt', kind: 'unknown', content: false, meta: false, hash: null, dirty: false, replaced: false },
  });
  t.same(s.counts, { added: 4, changed: 4, renamed: 2, removed: 1, dirty: 1 });
  t.same(
    s.entries.map((e) => e.path),
    ['/a.c', '/build', '/build/out.o', '/data/x.bin', '/docs', '/docs/readme', '/lib', '/lib/b.c', '/newdir2', '/newdir2/f', '/old.txt'],
    'sorted by path, parents first',
  );
  t.equal(s.toSeq, j.lastSeq);
});

t.test('summary: renames that cancel out, swaps, and removal below a renamed directory', async (t) => {
  const { j } = await newJournal(t);
  j.rename('/a', '/b', { replaced: false });
  j.rename('/b', '/a', { replaced: false });
  t.same((await j.summary()).entries, [], 'a → b → a is no change');
  const s0 = j.lastSeq;
  j.rename('/x', '/t', { replaced: false });
  j.rename('/y', '/x', { replaced: false });
  j.rename('/t', '/y', { replaced: false });
  t.same(pick(await j.summary(s0)), {
    'renamed /x': { origin: '/y', kind: 'unknown', content: false, meta: false, hash: null, dirty: false, replaced: false },
    'renamed /y': { origin: '/x', kind: 'unknown', content: false, meta: false, hash: null, dirty: false, replaced: false },
  });
  const s1 = j.lastSeq;
  j.rename('/p', '/q', { replaced: false });
  j.remove('/q/gone');
  j.rename('/q/sub', '/q2', { replaced: false });
  j.remove('/q2/deep/er');
  const s = await j.summary(s1);
  t.same(
    s.entries.map((e) => `${e.status} ${e.path} ${e.origin}`),
    ['removed /p/gone /p/gone', 'removed /p/sub/deep/er /p/sub/deep/er', 'renamed /q /p', 'renamed /q2 /p/sub'],
  );
  t.same(applyPlan(s, '/S'), [
    { op: 'move', from: '/p/sub', to: '/S/1' },
    { op: 'move', from: '/p', to: '/S/0' },
    { op: 'remove', path: '/S/0/gone' },
    { op: 'remove', path: '/S/1/deep/er' },
    { op: 'move', from: '/S/1', to: '/q2' },
    { op: 'move', from: '/S/0', to: '/q' },
  ]);
});

// --- a randomized model: apply(start tree, summary) must equal the tree now ---------------------------

type MNode = { kind: 'file' | 'dir'; content?: string };
type MTree = Map<string, MNode>;

const inside = (p: string, dir: string): boolean => p === dir || p.startsWith(dir === '/' ? '/' : dir + '/');
const joinName = (d: string, n: string): string => (d === '/' ? '' : d) + '/' + n;

function moveSubtree(m: MTree, from: string, to: string): boolean {
  const moving = [...m.entries()].filter(([p]) => inside(p, from));
  if (moving.length === 0) return false;
  for (const p of [...m.keys()]) if (inside(p, to)) m.delete(p);
  for (const [p] of moving) m.delete(p);
  for (const [p, n] of moving) m.set(to + p.slice(from.length), n);
  return true;
}

function removeSubtree(m: MTree, path: string): void {
  for (const p of [...m.keys()]) if (inside(p, path)) m.delete(p);
}

function applySummary(start: MTree, now: MTree, s: JournalSummary): MTree {
  const m: MTree = new Map([...start.entries()].map(([p, n]) => [p, { ...n }]));
  for (const step of applyPlan(s)) {
    if (step.op === 'move') moveSubtree(m, step.from, step.to);
    else if (step.op === 'remove') removeSubtree(m, step.path);
    else {
      const e = step.entry;
      if (e.kind === 'dir') {
        if (!m.has(e.path) || e.origin === null) m.set(e.path, { kind: 'dir' });
      } else if (e.kind === 'file' || e.kind === 'symlink') {
        // dirty (or a symlink): read what is on "disk" now, as commit would
        const content = e.hash ?? now.get(e.path)?.content;
        m.set(e.path, { kind: 'file', content: content ?? 'MISSING' });
      }
    }
  }
  return m;
}

t.test('random sessions: applying the summary to the start tree gives the tree now', async (t) => {
  const { j } = await newJournal(t, { maxPending: 50 });
  const names = ['a', 'b', 'a b', 'ab', 'c'];
  let id = 0;
  let checked = 0;
  const seeds = Number(process.env['DVFS_JOURNAL_MODEL_SEEDS'] ?? 150);
  for (let seed = 1; seed <= seeds; seed++) {
    const r = rng(seed * 104729);
    const start: MTree = new Map([['/', { kind: 'dir' }]]);
    const grow = (dir: string, depth: number): void => {
      for (const n of names) {
        if (r.int(3) === 0) continue;
        const p = joinName(dir, n);
        if (depth < 3 && r.int(2) === 0) {
          start.set(p, { kind: 'dir' });
          grow(p, depth + 1);
        } else start.set(p, { kind: 'file', content: `c${id++}` });
      }
    };
    grow('/', 0);
    const now: MTree = new Map([...start.entries()].map(([p, n]) => [p, { ...n }]));
    const from = j.lastSeq;
    const log: string[] = [];
    const steps = 5 + r.int(40);
    for (let step = 0; step < steps; step++) {
      const all = [...now.keys()];
      const dirs = all.filter((p) => now.get(p)?.kind === 'dir');
      const files = all.filter((p) => now.get(p)?.kind === 'file');
      const nonRoot = all.filter((p) => p !== '/');
      const op = r.int(8);
      if (op === 0 || (op === 1 && files.length === 0)) {
        const p = joinName(r.pick(dirs), r.pick(names));
        if (now.has(p)) continue;
        const c = `c${id++}`;
        now.set(p, { kind: 'file', content: c });
        j.write(p, { hash: c, size: 1, created: true });
        log.push(`create ${p}`);
      } else if (op === 1) {
        const p = r.pick(files);
        const c = `c${id++}`;
        now.set(p, { kind: 'file', content: c });
        j.write(p, { hash: r.int(3) === 0 ? null : c, size: 1 });
        log.push(`write ${p}`);
      } else if (op === 2 && nonRoot.length > 0) {
        const p = r.pick(nonRoot);
        removeSubtree(now, p);
        j.remove(p);
        log.push(`remove ${p}`);
      } else if (op === 3) {
        const p = joinName(r.pick(dirs), r.pick(names));
        if (now.has(p)) continue;
        now.set(p, { kind: 'dir' });
        j.mkdir(p);
        log.push(`mkdir ${p}`);
      } else if (op === 4 || op === 5) {
        if (nonRoot.length === 0) continue;
        const src = r.pick(nonRoot);
        const dst = r.int(3) === 0 ? r.pick(nonRoot) : joinName(r.pick(dirs), r.pick(names));
        if (dst === src || inside(dst, src) || inside(src, dst)) continue;
        const target = now.get(dst);
        const srcKind = now.get(src)?.kind;
        if (target && (target.kind !== srcKind || (target.kind === 'dir' && all.some((p) => p !== dst && inside(p, dst))))) continue;
        moveSubtree(now, src, dst);
        // the frontend says whether it replaced something; sometimes it does not say
        j.rename(src, dst, r.int(4) === 0 ? {} : { replaced: target !== undefined });
        log.push(`rename ${src} ${dst}${target ? ' (replacing)' : ''}`);
      } else if (op === 6) {
        const p = r.pick(all);
        j.meta(p);
        log.push(`meta ${p}`);
      } else {
        const p = joinName(r.pick(dirs), r.pick(names));
        if (now.has(p)) continue;
        const c = `l${id++}`;
        now.set(p, { kind: 'file', content: c });
        j.symlink(p);
        log.push(`symlink ${p}`);
      }
    }
    const s = await j.summary(from);
    const got = applySummary(start, now, s);
    const norm = (m: MTree): string[] => [...m.entries()].map(([p, n]) => `${p} ${n.kind} ${n.content ?? ''}`).sort();
    const same = JSON.stringify(norm(got)) === JSON.stringify(norm(now));
    if (!same) {
      t.fail(`seed ${seed}: summary does not reproduce the tree`, {
        log,
        missing: norm(now).filter((x) => !norm(got).includes(x)),
        extra: norm(got).filter((x) => !norm(now).includes(x)),
        summary: s.entries.map((e) => `${e.status} ${e.path} <- ${e.origin}${e.replaced ? ' R' : ''}`),
      });
      break;
    }
    // every path reported added or changed exists now; every removed path is gone from where it was
    for (const e of s.entries) {
      if (e.status !== 'removed' && !now.has(e.path)) t.fail(`seed ${seed}: ${e.status} ${e.path} does not exist`);
    }
    checked++;
  }
  t.equal(checked, seeds, 'all random sessions reproduce');
});

// --- crash safety ---------------------------------------------------------------------------------------

t.test('kill -9 mid-stream: reopen sees every flushed record and no partial batch', async (t) => {
  const dir = join(await tempDir(t, 'crash'), 'j');
  const GROUP = 400;
  const child = spawn(process.execPath, [fileURLToPath(new URL('./crash-child.js', import.meta.url)), dir, String(GROUP)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let flushed = 0;
  let reports = 0;
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  for await (const line of createInterface({ input: child.stdout })) {
    const m = /^flushed (\d+)$/.exec(line);
    if (!m) continue;
    flushed = Number(m[1]);
    // kill at varying moments: right after a report, and after a short while (mid-batch, likely)
    if (++reports === 25) {
      setTimeout(() => child.kill('SIGKILL'), 3);
    }
  }
  t.equal(await exited, 'SIGKILL');
  t.ok(flushed >= 24 * GROUP, `child flushed ${flushed} records before the kill`);

  const j = await SessionJournal.open(dir);
  t.teardown(() => j.close());
  let n = 0;
  let bad = 0;
  for await (const r of j.records()) {
    n++;
    if (r.seq !== n) bad++;
    const g = Math.floor((r.seq - 1) / GROUP);
    if (r.op !== 'write' || r.path !== `/g${g}/f${r.seq}` || r.hash !== sha256(Buffer.from(String(r.seq))) || r.size !== r.seq) bad++;
  }
  t.equal(bad, 0, 'records are contiguous and intact');
  t.ok(n >= flushed, `${n} records after reopen ≥ ${flushed} flushed`);
  t.equal(n % GROUP, 0, 'whole batches only');
  t.equal(j.lastSeq, n);
  t.equal(j.state, 'open', 'an orphaned session is still open');
  t.comment(`crash test: ${flushed} records flushed when killed, ${n} found after reopen`);
});
