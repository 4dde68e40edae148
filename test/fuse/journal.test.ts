// Sessions in the mount daemon: a writable mount of a dvfs repository records every change in a session journal
// (opaque paths on disk), the control socket lists the changes (`changes`, plaintext paths) and validates
// requests, the hash recorded for a file written front to back is the store's keyed content hash, and unmount
// finishes the session. Read-only mounts and bare volumes run no session.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { ctlChanges, ctlRequest, type ChangesReply } from '../../daemon/ctl/client.js';
import { DvfsError } from '../../daemon/errors.js';
import { SessionJournal } from '../../daemon/journal/journal.js';
import { listSessions, readSessionInfo } from '../../daemon/journal/sessions.js';
import { silentLogger } from '../../daemon/log.js';
import { openTree } from '../../daemon/repo/open-tree.js';
import { locateRepository } from '../../daemon/repo/repository.js';
import { hashBuffer } from '../../daemon/store/content-hash.js';
import { openVersioning, type Versioning } from '../../daemon/versioning/context.js';
import { fuseAvailable, initRepo, mountDvfs, workspace, type DvfsMount, type Workspace } from '../helpers/mount.js';

const unavailable = fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING dvfs session journal FUSE tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `FUSE unavailable: ${unavailable}`;

/** Every regular file below `dir`. */
function filesBelow(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesBelow(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Files below `dir` whose raw bytes or whose own name contain one of `needles`, as "file: needle". */
function leaks(dir: string, needles: string[]): string[] {
  const hits: string[] = [];
  for (const f of filesBelow(dir)) {
    const bytes = fs.readFileSync(f);
    for (const n of needles) {
      if (bytes.includes(Buffer.from(n)) || f.includes(n)) hits.push(`${f}: ${n}`);
    }
  }
  return hits;
}

async function versioningOf(ws: Workspace, repo: string): Promise<Versioning> {
  const r = await locateRepository(repo);
  return openVersioning(r, await openTree(r, Buffer.from(ws.password), silentLogger()));
}

const line = (e: ChangesReply['entries'][number]): string => `${e.status} ${e.kind} ${e.path}${e.origin !== null && e.origin !== e.path ? ` <- ${e.origin}` : ''}${e.dirty ? ' dirty' : ''}`;

/** The error a ctl request is refused with (its message), or 'OK'. */
async function refusal(m: DvfsMount, op: 'changes' | 'commit' | 'status', extra: Record<string, unknown>): Promise<string> {
  try {
    await ctlRequest(m.record.socket, op, 10_000, extra as never);
    return 'OK';
  } catch (e) {
    return e instanceof DvfsError ? e.message : String(e);
  }
}

t.test('a mount records its changes: opaque on disk, plaintext over the socket, finished at unmount', { skip }, async (t) => {
  const ws = workspace(t, 'journal');
  const repo = initRepo(ws, 'repo', 'standard');
  const mnt = join(ws.dir, 'mnt');
  // Long random names: LevelDB compresses blocks, but a name's first occurrence is stored literally.
  const tag = randomBytes(10).toString('hex');
  const N = {
    keep: `keep-${tag}-unchanged.txt`,
    chmod: `chmod-${tag}-mode-only.txt`,
    gone: `gone-${tag}-to-be-unlinked.txt`,
    moveFrom: `move-${tag}-before.txt`,
    moveTo: `move-${tag}-after.txt`,
    dir: `dir-${tag}-made-in-session`,
    stream: `stream-${tag}-sequential.bin`,
    random: `random-${tag}-out-of-order.bin`,
    small: `small-${tag}-created.txt`,
    renamed: `renamed-${tag}-target.txt`,
    victim: `victim-${tag}-created-and-removed.txt`,
    link: `link-${tag}-symbolic`,
    target: `target-${tag}-of-the-link`,
  };

  // A first session lays down the start tree; the second one is the one examined.
  let m = mountDvfs(ws, repo, mnt);
  const first = String(m.status()['session']);
  for (const n of [N.keep, N.chmod, N.gone, N.moveFrom]) fs.writeFileSync(join(mnt, n), `contents of ${n}\n`);
  await m.umount();

  m = mountDvfs(ws, repo, mnt);
  const st = m.status();
  t.match(st['session'], /^\d{8}T\d{9}Z-[0-9a-f]{8}$/, 'status names the session');
  t.not(st['session'], first, 'a new session per mount');
  t.equal(m.record.socket.length > 0, true, 'the record has a control socket');

  fs.chmodSync(join(mnt, N.chmod), 0o600);
  fs.unlinkSync(join(mnt, N.gone));
  fs.renameSync(join(mnt, N.moveFrom), join(mnt, N.moveTo));
  fs.mkdirSync(join(mnt, N.dir));
  // written front to back in pieces: hashed while written
  const streamed = randomBytes(3 * 128 * 1024 + 777);
  const fd = fs.openSync(join(mnt, N.dir, N.stream), 'w');
  for (let at = 0; at < streamed.length; at += 100_000) fs.writeSync(fd, streamed, at, Math.min(100_000, streamed.length - at), at);
  fs.closeSync(fd);
  // written out of order: dirty (commit hashes it)
  const rfd = fs.openSync(join(mnt, N.random), 'w');
  fs.writeSync(rfd, Buffer.from('tail'), 0, 4, 5000);
  fs.writeSync(rfd, Buffer.from('head'), 0, 4, 0);
  fs.closeSync(rfd);
  fs.writeFileSync(join(mnt, N.small), 'small');
  fs.renameSync(join(mnt, N.small), join(mnt, N.dir, N.renamed));
  fs.writeFileSync(join(mnt, N.victim), 'short-lived');
  fs.unlinkSync(join(mnt, N.victim));
  fs.symlinkSync(N.target, join(mnt, N.link));

  const changes = await ctlChanges(m.record.socket);
  t.equal(changes.session, st['session'], 'the reply names the session');
  t.equal(changes.baseSnapshot, null, 'nothing committed yet: no base snapshot');
  t.same(changes.entries.map(line).sort(), [
    `added dir /${N.dir}`,
    `added file /${N.dir}/${N.renamed}`,
    `added file /${N.dir}/${N.stream}`,
    `added file /${N.random} dirty`,
    `added symlink /${N.link}`,
    // Paths of the start tree that were only renamed or had their mode changed: the journal never saw what
    // they are (commit looks), hence kind `unknown`.
    `changed unknown /${N.chmod}`,
    `removed unknown /${N.gone}`,
    `renamed unknown /${N.moveTo} <- /${N.moveFrom}`,
  ].sort(), 'every change, with plaintext paths');
  t.same(changes.counts, { added: 5, changed: 1, renamed: 1, removed: 1, dirty: 1 }, 'counts');

  const v = await versioningOf(ws, repo);
  t.teardown(() => {
    v.close();
    v.tree.dispose?.();
  });
  const streamEntry = changes.entries.find((e) => e.path === `/${N.dir}/${N.stream}`);
  t.equal(streamEntry?.hash, hashBuffer(v.keys.contentHash, streamed), 'a file written front to back is recorded with its keyed BLAKE2b content hash');
  t.equal(streamEntry?.size, streamed.length, 'and its size');
  t.equal(changes.entries.find((e) => e.path === `/${N.dir}/${N.renamed}`)?.hash, hashBuffer(v.keys.contentHash, Buffer.from('small')), 'a file renamed after writing keeps its hash at the new path');

  const names = Object.values(N);
  t.same(leaks(join(repo, '.dvfs'), names), [], 'while mounted (journal flushed by `changes`), no file under .dvfs holds a plaintext name');

  // requests are validated
  t.match(await refusal(m, 'changes', { force: true }), /takes no field "force"/, 'a field the op does not take is refused');
  t.match(await refusal(m, 'commit', { mesage: 'typo' }), /takes no field "mesage"/, 'a misspelt commit field is refused');
  t.match(await refusal(m, 'commit', { message: 42 }), /message must be a string/, 'a message of the wrong type is refused');
  t.match(await refusal(m, 'commit', { author: ['x'] }), /author must be a string/, 'an author of the wrong type is refused');
  t.match(await refusal(m, 'commit', { force: 'yes' }), /force must be a boolean/, 'force must be a boolean');
  t.match(await refusal(m, 'commit', { provenance: { command: 'not a list' } }), /bad provenance/, 'provenance is checked like a snapshot’s');
  t.match(await refusal(m, 'commit', { provenance: { bogus: 1 } }), /bad provenance/, 'unknown provenance fields are refused');
  t.equal(await refusal(m, 'status', {}), 'OK', 'the socket still answers after the refusals');

  await m.umount();
  t.same(leaks(join(repo, '.dvfs'), names), [], 'after unmount, no file under .dvfs (journals, session files, logs) holds a plaintext name');

  // The exited daemon may be a zombie for a moment, which sessions.ts's pid check (kill 0) still counts alive.
  let sessions = await listSessions(repo);
  for (const until = Date.now() + 5000; sessions.some((s) => s.liveness !== 'dead') && Date.now() < until; sessions = await listSessions(repo)) {
    await new Promise((r) => setTimeout(r, 50));
  }
  t.same(sessions.map((s) => s.id), [first, changes.session], 'both sessions are listed, oldest first');
  for (const s of sessions) {
    t.equal(s.info.state, 'finished', `session ${s.id} is finished`);
    t.equal(s.liveness, 'dead', 'its daemon is gone');
    t.notOk(s.orphaned, 'it ended cleanly');
  }
  const info = await readSessionInfo(sessions[1]!.dir);
  t.equal(info.mountpoint, mnt, 'session.json names the mountpoint');
  t.ok(info.finishedAt !== null, 'and when it finished');

  // The finished journal holds the same changes, in opaque paths that decode to the plaintext ones.
  const journal = await SessionJournal.open(sessions[1]!.journalDir);
  try {
    const summary = await journal.summary();
    t.ok(summary.entries.every((e) => !names.some((n) => e.path.includes(n))), 'journal paths are opaque');
    const decoded = summary.entries.map((e) => ({ ...e, path: v.paths.decodePath(e.path), origin: e.origin === null ? null : v.paths.decodePath(e.origin) }));
    t.same(decoded.map(line).sort(), changes.entries.map(line).sort(), 'and decode to what `changes` replied');
  } finally {
    await journal.close();
  }
});

t.test('commit over the control socket: serialised; files it links are copied before they change; open writers are left', { skip }, async (t) => {
  const ws = workspace(t, 'journal-commit');
  const repo = initRepo(ws, 'repo', 'standard');
  const m = mountDvfs(ws, repo, join(ws.dir, 'mnt'));
  const data = randomBytes(200_000);
  fs.writeFileSync(join(m.mnt, 'linked.bin'), data);
  fs.writeFileSync(join(m.mnt, 'writing.bin'), 'being written');
  // Open across the commit: one handle read-only (commit takes the file), one file open for writing (left).
  const reader = fs.openSync(join(m.mnt, 'linked.bin'), 'r');
  const writer = fs.openSync(join(m.mnt, 'writing.bin'), 'r+');
  const [a, b] = await Promise.all([
    ctlRequest(m.record.socket, 'commit', 120_000, { message: 'first', author: 'test' }),
    ctlRequest(m.record.socket, 'commit', 120_000, { message: 'second', author: 'test' }),
  ]);
  const made = [a, b].filter((r) => typeof r['snapshot'] === 'string' && r['nothingToCommit'] !== true);
  t.equal(made.length, 1, 'two concurrent commits: one makes the snapshot');
  t.ok([a, b].some((r) => r['nothingToCommit'] === true), 'the other, serialised after it, finds nothing left');
  t.equal(made[0]?.['leftOpen'], 1, 'the file open for writing is left for the next commit');
  const after = await ctlChanges(m.record.socket);
  t.notOk(after.entries.some((e) => e.path === '/linked.bin'), 'the file open read-only was committed');
  t.equal(after.baseSnapshot, made[0]?.['snapshot'], 'changes are now relative to the new snapshot');

  const v = await versioningOf(ws, repo);
  const raw = (await v.tree.locate('linked.bin')).rawPath;
  v.close();
  v.tree.dispose?.();
  const linkedIno = fs.statSync(raw).ino;
  t.ok(fs.statSync(raw).nlink > 1, 'commit linked the working file into the store');
  const storeFiles = filesBelow(join(repo, '.dvfs'));
  const before = new Map(storeFiles.map((f) => [f, fs.readFileSync(f)]));
  // written through a new handle after the commit: the read-only handle from before must see it too
  const fd = fs.openSync(join(m.mnt, 'linked.bin'), 'r+');
  fs.writeSync(fd, Buffer.from('CHANGED'), 0, 7, 100);
  fs.closeSync(fd);
  const expected = Buffer.from(data);
  Buffer.from('CHANGED').copy(expected, 100);
  const viaReader = Buffer.alloc(data.length);
  fs.readSync(reader, viaReader, 0, data.length, 0);
  t.same(viaReader, expected, 'the handle opened before the commit reads the change');
  t.not(fs.statSync(raw).ino, linkedIno, 'the working file was re-encrypted into a new inode');
  const linkedNow = storeFiles.filter((f) => fs.statSync(f).ino === linkedIno);
  t.ok(linkedNow.length > 0, 'the store still holds the old ciphertext');
  t.same(linkedNow.filter((f) => !fs.readFileSync(f).equals(before.get(f)!)), [], 'unchanged');
  fs.closeSync(reader);
  fs.writeSync(writer, Buffer.from('!'), 0, 1, 13);
  fs.closeSync(writer);
  const changes = await ctlChanges(m.record.socket);
  t.ok(changes.entries.some((e) => e.path === '/linked.bin' && e.status === 'changed'), 'the change after the commit is uncommitted');
  t.ok(changes.entries.some((e) => e.path === '/writing.bin'), 'so is the write through the handle that was open for writing');
  await m.umount();
});

t.test('read-only mounts and bare volumes run no session', { skip }, async (t) => {
  const ws = workspace(t, 'journal-none');
  const repo = initRepo(ws, 'repo', 'standard');
  const ro = mountDvfs(ws, repo, join(ws.dir, 'ro'), { readOnly: true });
  t.equal(ro.status()['session'], null, 'read-only: no session');
  t.match(await refusal(ro, 'changes', {}), /records no changes \(read-only mount\)/, 'read-only: `changes` is refused');
  await ro.umount();
  const bare = mountDvfs(ws, join(repo, 'tree'), join(ws.dir, 'bare'));
  t.equal(bare.status()['session'], null, 'bare volume: no session');
  fs.writeFileSync(join(bare.mnt, 'f'), 'x');
  t.match(await refusal(bare, 'commit', {}), /records no changes \(bare volume/, 'bare volume: `commit` is refused');
  await bare.umount();
  t.same(await listSessions(repo), [], 'no session was created');
});

t.test('a committed file left open for writing still counts in the next snapshot', { skip }, async (t) => {
  const ws = workspace(t, 'journal-left-open');
  const repo = initRepo(ws, 'repo', 'standard');
  const m = mountDvfs(ws, repo, join(ws.dir, 'mnt'));
  fs.writeFileSync(join(m.mnt, 'kept.bin'), 'first version');
  fs.writeFileSync(join(m.mnt, 'other.bin'), 'other');
  const first = await ctlRequest(m.record.socket, 'commit', 120_000, { message: 'first', author: 'test' });
  t.equal(first['files'], 2, 'two files committed');
  // Changed and still open during the next commit: left for later, but its committed version stays.
  const writer = fs.openSync(join(m.mnt, 'kept.bin'), 'r+');
  fs.writeSync(writer, Buffer.from('SECOND'), 0, 6, 0);
  fs.writeFileSync(join(m.mnt, 'new.bin'), 'new');
  const second = await ctlRequest(m.record.socket, 'commit', 120_000, { message: 'second', author: 'test' });
  fs.closeSync(writer);
  t.equal(second['leftOpen'], 1, 'the open file is left for the next commit');
  t.equal(second['files'], 3, 'the snapshot counts it (its committed version) with the two others');
});

t.test('a replaced file left open during a commit, and never written again, is in the next snapshot', { skip }, async (t) => {
  // Replaced (removed, then made anew and closed) before the commit's summary, and open for writing (but not
  // written) while the commit ran: that commit removes the old entry and leaves the new file for the next
  // one, marking every record of it as committed. Closing an unwritten handle records nothing, so the next
  // commit lost the file unless the first one carried it over (found by test/load/fio under load).
  const ws = workspace(t, 'journal-replaced-open');
  const repo = initRepo(ws, 'repo', 'standard');
  const m = mountDvfs(ws, repo, join(ws.dir, 'mnt'));
  const f = join(m.mnt, 'replaced.bin');
  fs.writeFileSync(f, 'first version');
  fs.writeFileSync(join(m.mnt, 'other.bin'), 'other');
  const first = await ctlRequest(m.record.socket, 'commit', 120_000, { message: 'first', author: 'test' });
  t.equal(first['files'], 2, 'two files committed');
  fs.unlinkSync(f);
  fs.writeFileSync(f, 'second version, written and closed');
  const idle = fs.openSync(f, 'r+');
  const second = await ctlRequest(m.record.socket, 'commit', 120_000, { message: 'second', author: 'test' });
  t.equal(second['leftOpen'], 1, 'the open file is left for the next commit');
  fs.closeSync(idle);
  const third = await ctlRequest(m.record.socket, 'commit', 120_000, { message: 'third', author: 'test' });
  t.equal(third['nothingToCommit'], false, 'the next commit has the left file to commit');
  t.equal(third['files'], 2, 'and the snapshot holds both files');
  await m.umount();
  const out = join(ws.dir, 'restored');
  const rs = ws.cli(['restore', repo, 'HEAD', '--to', out]);
  t.equal(rs.status, 0, `restore HEAD ${rs.stderr.trim().slice(0, 300)}`);
  t.equal(fs.readFileSync(join(out, 'replaced.bin'), 'utf8'), 'second version, written and closed', 'the replaced file has its new content');
  t.equal(fs.readFileSync(join(out, 'other.bin'), 'utf8'), 'other');
});
