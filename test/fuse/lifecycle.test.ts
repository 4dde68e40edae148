// The life of a dvfs mount, driven through the real CLI: nothing plaintext at rest (data, names, link
// targets; repository, run directory, logs, state and runtime directories), kill -9 of the daemon during
// writes (fsync'ed data intact; the stale mount detected by `dvfs status`, cleaned by `dvfs mount` and by
// `dvfs umount`), SIGTERM unmounting cleanly, status counters, file modes of the control socket / run
// directory / log / records, logs as JSON lines, refusing to mount over a live mount, and a wrong password.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { rng } from '../helpers/rng.js';
import {
  adoptMount,
  fuseAvailable,
  initRepo,
  isMounted,
  mountCli,
  mountDvfs,
  processAlive,
  quickMount,
  waitFor,
  workspace,
  type DvfsMount,
  type Workspace,
} from '../helpers/mount.js';
import type { CliResult } from '../helpers/cli.js';

const unavailable = fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING dvfs mount lifecycle tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `FUSE unavailable: ${unavailable}`;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function expectOneLineError(t: Test, r: CliResult, pattern: RegExp, what: string): void {
  t.not(r.status, 0, `${what}: exit code ≠ 0`);
  const lines = r.stderr.trim().split('\n').filter((l) => l !== '' && !l.startsWith('dvfs: warning:'));
  t.equal(lines.length, 1, `${what}: one line on stderr (${JSON.stringify(r.stderr.trim())})`);
  t.match(lines[0] ?? '', /^dvfs: /, `${what}: prefixed "dvfs: "`);
  t.notMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
  t.match(r.stderr, pattern, `${what}: says why`);
}

/** Every regular file below `dir` (not following links), and every name (to scan names too). */
function walk(dir: string): { files: string[]; names: string[] } {
  const files: string[] = [];
  const names: string[] = [];
  const rec = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      names.push(p);
      if (e.isDirectory()) rec(p);
      else if (e.isFile()) files.push(p);
      else if (e.isSymbolicLink()) names.push(fs.readlinkSync(p));
    }
  };
  rec(dir);
  return { files, names };
}

/** Places where `marker` occurs (file contents, file names, link targets) below the given roots. */
function findMarker(roots: string[], marker: string): string[] {
  const needle = Buffer.from(marker);
  const hits: string[] = [];
  for (const root of roots) {
    const { files, names } = walk(root);
    for (const n of names) if (n.includes(marker)) hits.push(`name: ${n}`);
    for (const f of files) if (fs.readFileSync(f).includes(needle)) hits.push(`contents: ${f}`);
  }
  return hits;
}

/** Pids of dvfs mount daemons started from workspace `ws` (found by their environment). */
function daemonsOf(ws: Workspace): number[] {
  const pids: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (!fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').includes('daemon-main.js')) continue;
      if (fs.readFileSync(`/proc/${e}/environ`, 'utf8').split('\0').includes(`DVFS_STATE_DIR=${ws.stateDir}`) && processAlive(Number(e))) pids.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function statCode(p: string): string {
  try {
    fs.statSync(p);
    return 'OK';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'ERR';
  }
}

function logLines(m: DvfsMount): Record<string, unknown>[] {
  return fs
    .readFileSync(m.record.log, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('no plaintext at rest: data, names and link targets never reach the repository, logs or state', { skip }, async (t) => {
  for (const preset of ['standard', 'paranoia'] as const) {
    const ws = workspace(t, `life-rest-${preset}`);
    const marker = `PLAINMARK${randomBytes(6).toString('hex')}`;
    const repo = initRepo(ws, 'repo', preset);
    const m = mountDvfs(ws, repo, join(ws.dir, 'mnt'));
    const mnt = m.mnt;
    fs.mkdirSync(join(mnt, `dir-${marker}`));
    fs.writeFileSync(join(mnt, `dir-${marker}`, `file-${marker}.txt`), `${marker}\n`.repeat(20_000));
    fs.writeFileSync(join(mnt, 'tiny'), marker);
    fs.writeFileSync(join(mnt, 'unaligned'), Buffer.concat([randomBytes(1019), Buffer.from(marker), randomBytes(3000)]));
    fs.symlinkSync(`${marker}/target`, join(mnt, `link-${marker}`));
    fs.renameSync(join(mnt, `dir-${marker}`), join(mnt, `renamed-${marker}`));
    const fd = fs.openSync(join(mnt, 'tiny'), 'r+');
    fs.writeSync(fd, marker, 5000);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    t.equal(fs.readFileSync(join(mnt, `renamed-${marker}`, `file-${marker}.txt`), 'utf8').slice(0, marker.length), marker, `${preset}: readable through the mount`);
    t.same(findMarker([repo], marker), [], `${preset}: while mounted, no file or name under the repository holds the marker`);
    await m.umount();
    const hits = findMarker([repo, ws.stateDir, ws.runtimeDir, m.record.runDir], marker);
    t.same(hits, [], `${preset}: after unmount, nothing under the repository (incl. ${m.record.runDir}), the state or the runtime directory holds the marker`);
    t.ok(fs.statSync(m.record.log).size > 0, `${preset}: the log exists and was scanned`);
  }
});

t.test('failing operations on secret-named files leave no plaintext name in the log', { skip }, async (t) => {
  const ws = workspace(t, 'life-logleak');
  const marker = `NAMEMARK${randomBytes(6).toString('hex')}`;
  const repo = initRepo(ws, 'repo', 'paranoia');
  const m = mountDvfs(ws, repo, join(ws.dir, 'mnt'));
  const mnt = m.mnt;
  // 1. a name that is too long to encrypt (a user error dvfs must report, as an errno, and may log)
  const long = `${marker}-${'x'.repeat(176 - marker.length - 1)}`;
  let code = '';
  try {
    fs.writeFileSync(join(mnt, long), 'x');
  } catch (e) {
    code = (e as NodeJS.ErrnoException).code ?? '';
  }
  t.equal(code, 'ENAMETOOLONG', 'the too-long name is refused');
  // 2. an integrity failure: a tampered ciphertext block of a secret-named file reads as EIO
  fs.mkdirSync(join(mnt, `project-${marker}`));
  const victim = join(mnt, `project-${marker}`, `results-${marker}.csv`);
  fs.writeFileSync(victim, randomBytes(10_000));
  await m.umount();
  const raw = walk(m.tree).files.filter((f) => fs.statSync(f).size > 9000);
  t.equal(raw.length, 1, 'found the ciphertext of the victim');
  const fd = fs.openSync(raw[0]!, 'r+');
  fs.writeSync(fd, Buffer.from([0xde, 0xad, 0xbe, 0xef]), 0, 4, 3000);
  fs.closeSync(fd);
  const again = mountDvfs(ws, repo, mnt);
  code = '';
  try {
    fs.readFileSync(victim);
  } catch (e) {
    code = (e as NodeJS.ErrnoException).code ?? '';
  }
  t.equal(code, 'EIO', 'the tampered file reads as EIO');
  t.ok(again.status().integrityErrors > 0, 'status counts the integrity error');
  await again.umount();
  const lines = logLines(again);
  t.ok(lines.some((l) => JSON.stringify(l).includes('ENAMETOOLONG')), 'the log records the ENAMETOOLONG failure');
  t.ok(lines.some((l) => /integrity/i.test(String(l['msg']))), 'the log records the integrity error');
  const leaking = lines.filter((l) => JSON.stringify(l).includes(marker)).map((l) => JSON.stringify(l).slice(0, 300));
  t.same(leaking, [], 'no log line contains the plaintext file or directory name');
  t.same(findMarker([repo], marker), [], 'nothing under the repository (incl. its run directory) holds the plaintext name');
});

/** A child process that appends 64 KiB chunks to FILE, fsyncs after each, and prints "synced N" after each fsync. */
const HOT_WRITER = `
import * as fs from 'node:fs';
const file = process.argv[2];
const fd = fs.openSync(file, 'w');
const CHUNK = 65536;
for (let i = 0; ; i++) {
  const b = Buffer.alloc(CHUNK);
  for (let j = 0; j < CHUNK; j += 8) { b.writeUInt32BE(i, j); b.writeUInt32BE((i * CHUNK + j) / 8, j + 4); }
  try {
    fs.writeSync(fd, b, 0, CHUNK, i * CHUNK);
    fs.fsyncSync(fd);
  } catch (e) {
    process.stdout.write('error ' + e.code + '\\n');
    process.exit(0);
  }
  process.stdout.write('synced ' + (i + 1) * CHUNK + '\\n');
}
`;

t.test('kill -9 of the daemon during writes: fsync’ed data intact; stale mount detected and cleaned', { skip }, async (t) => {
  const m0 = quickMount(t, 'paranoia', { label: 'life-kill' });
  const ws = m0.ws;
  const mnt = m0.mnt;
  const r = rng(2024);
  const synced: Record<string, Buffer> = {};
  for (let i = 0; i < 8; i++) {
    const data = r.bytes(1 + r.int(200_000));
    const fd = fs.openSync(join(mnt, `synced-${i}`), 'w');
    fs.writeSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    synced[`synced-${i}`] = data;
  }
  // an fsync'ed in-place modification of an existing file
  const mod = synced['synced-0']!;
  const patch = r.bytes(Math.min(500, mod.length));
  const fdm = fs.openSync(join(mnt, 'synced-0'), 'r+');
  fs.writeSync(fdm, patch, 0, patch.length, 0);
  fs.fsyncSync(fdm);
  fs.closeSync(fdm);
  patch.copy(mod, 0);

  // a writer in another process, killed under
  const script = join(ws.dir, 'hot-writer.mjs');
  fs.writeFileSync(script, HOT_WRITER);
  const child = spawn(process.execPath, [script, join(mnt, 'hot')], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  await waitFor('the writer to fsync 40 chunks', () => (out.match(/synced/g) ?? []).length >= 40, 30_000);
  process.kill(m0.pid, 'SIGKILL');
  await waitFor('the daemon to die', () => !processAlive(m0.pid));
  await Promise.race([exited, new Promise((res) => setTimeout(res, 10_000))]);
  const syncedHot = Math.max(0, ...[...out.matchAll(/synced (\d+)/g)].map((x) => Number(x[1])));
  t.ok(syncedHot >= 40 * 65536, `the writer had fsync'ed ${syncedHot} bytes before the kill`);
  t.match(out, /error (ENOTCONN|ECONNABORTED|EIO)/, 'the writer then got an error, not a hang');

  t.ok(isMounted(mnt), 'the dead mount is still in the mount table');
  t.equal(statCode(mnt), 'ENOTCONN', 'and answers ENOTCONN');
  expectOneLineError(t, ws.cli(['status', mnt]), /not running|stale/, 'dvfs status on the stale mount');

  // dvfs mount cleans the stale mount and mounts again
  const again = mountCli(ws, m0.repo, mnt);
  t.equal(again.status, 0, `dvfs mount over the stale mount succeeds: ${again.stderr}`);
  t.match(again.stderr, /cleaned up after a killed daemon/, 'and says it cleaned up after the killed daemon');
  t.match(again.stderr, new RegExp(`pid ${m0.pid}`), 'naming the dead daemon');
  const m1 = adoptMount(ws, m0.repo, mnt, again);
  for (const [name, data] of Object.entries(synced)) t.equal(sha(fs.readFileSync(join(mnt, name))), sha(data), `${name} intact after the kill`);
  const fdh = fs.openSync(join(mnt, 'hot'), 'r');
  const hot = Buffer.alloc(syncedHot);
  let got = 0;
  let readErr = '';
  try {
    while (got < syncedHot) {
      const n = fs.readSync(fdh, hot, got, syncedHot - got, got);
      if (n === 0) break;
      got += n;
    }
  } catch (e) {
    readErr = (e as NodeJS.ErrnoException).code ?? String(e);
  }
  fs.closeSync(fdh);
  t.equal(readErr, '', 'the fsync’ed part of the file being written reads without error');
  t.ok(got >= syncedHot, `all ${syncedHot} fsync'ed bytes are there (${got})`);
  let bad = -1;
  for (let j = 0; j < got; j += 8) {
    if (hot.readUInt32BE(j) !== Math.floor(j / 65536) || hot.readUInt32BE(j + 4) !== j / 8) {
      bad = j;
      break;
    }
  }
  t.equal(bad, -1, 'and hold exactly what was written');
  t.equal(m1.status().pid, m1.pid, 'dvfs status answers for the new daemon');

  // kill again: dvfs umount detects and cleans the stale mount
  process.kill(m1.pid, 'SIGKILL');
  await waitFor('the daemon to die', () => !processAlive(m1.pid));
  const u = ws.cli(['umount', mnt]);
  t.equal(u.status, 0, `dvfs umount of a stale mount succeeds: ${u.stderr}`);
  t.match(u.stderr, /cleaned up after a killed daemon.*detached a stale mount/, 'and says it detached the stale mount');
  t.notOk(isMounted(mnt), 'nothing mounted afterwards');
  t.notOk(fs.existsSync(m1.record.socket), 'the dead daemon’s socket is removed');
  t.notOk(fs.existsSync(join(m1.record.runDir, `${m1.record.id}.json`)), 'its record is removed');
  expectOneLineError(t, ws.cli(['status', mnt]), /no dvfs mount/, 'dvfs status after cleaning');
  expectOneLineError(t, ws.cli(['umount', mnt]), /nothing is mounted/, 'a second dvfs umount');
});

t.test('dvfs umount refuses while files are open (nothing lost); --force detaches anyway', { skip }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'life-busy' });
  const fd = fs.openSync(join(m.mnt, 'open'), 'w');
  fs.writeSync(fd, 'still writing');
  const busy = m.ws.cli(['umount', m.mnt]);
  expectOneLineError(t, busy, /busy: 1 open file handle/, 'umount with a file open');
  t.ok(isMounted(m.mnt), 'still mounted');
  t.ok(processAlive(m.pid), 'daemon still running');
  fs.writeSync(fd, ' and more');
  fs.closeSync(fd);
  t.equal(fs.readFileSync(join(m.mnt, 'open'), 'utf8'), 'still writing and more', 'the writer lost nothing');
  const fd2 = fs.openSync(join(m.mnt, 'open'), 'r');
  const forced = m.ws.cli(['umount', m.mnt, '--force']);
  t.equal(forced.status, 0, `umount --force: ${forced.stderr}`);
  await waitFor('the daemon to exit after umount --force', () => !processAlive(m.pid));
  t.notOk(isMounted(m.mnt), 'not mounted any more');
  try {
    fs.closeSync(fd2);
  } catch {
    // the descriptor of a detached mount may already be gone
  }
});

t.test('SIGTERM to the daemon unmounts cleanly', { skip }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'life-term' });
  const data = randomBytes(300_000);
  fs.writeFileSync(join(m.mnt, 'kept'), data);
  process.kill(m.pid, 'SIGTERM');
  await waitFor('the daemon to exit after SIGTERM', () => !processAlive(m.pid));
  t.notOk(isMounted(m.mnt), 'not mounted any more');
  t.equal(statCode(m.mnt), 'OK', 'the mountpoint is a plain directory again (no stale mount)');
  t.notOk(fs.existsSync(m.record.socket), 'control socket removed');
  t.notOk(fs.existsSync(join(m.record.runDir, `${m.record.id}.json`)), 'run record removed');
  expectOneLineError(t, m.ws.cli(['status', m.mnt]), /no dvfs mount/, 'dvfs status afterwards');
  const lines = logLines(m);
  t.ok(lines.some((l) => l['msg'] === 'unmounting' && l['reason'] === 'SIGTERM'), 'the log says it unmounts because of SIGTERM');
  t.equal(lines.at(-1)?.['msg'], 'unmounted', 'the last log line says it unmounted');
  const m2 = mountDvfs(m.ws, m.repo, m.mnt);
  t.equal(sha(fs.readFileSync(join(m2.mnt, 'kept'))), sha(data), 'data written before SIGTERM is there after mounting again');
});

t.test('dvfs status --json counters move', { skip }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'life-status' });
  const s0 = m.status();
  t.equal(s0.pid, m.pid, 'pid');
  t.equal(s0['mountpoint'], m.mnt, 'mountpoint');
  t.equal(s0['readOnly'], false, 'read-write');
  for (const k of ['openFiles', 'openHandles', 'bytesWritten', 'bytesRead', 'errors', 'integrityErrors', 'operations'] as const) t.type(s0[k], 'number', `${k} is a number`);
  fs.writeFileSync(join(m.mnt, 'f'), Buffer.alloc(123_456, 1));
  const s1 = m.status();
  t.ok(s1.bytesWritten >= s0.bytesWritten + 123_456, `bytesWritten grew by the bytes written (${s0.bytesWritten} → ${s1.bytesWritten})`);
  t.ok(s1.operations > s0.operations, 'operations grew');
  fs.readFileSync(join(m.mnt, 'f'));
  const s2 = m.status();
  t.ok(s2.bytesRead >= s1.bytesRead + 123_456, `bytesRead grew by the bytes read (${s1.bytesRead} → ${s2.bytesRead})`);
  const fd = fs.openSync(join(m.mnt, 'f'), 'r');
  const fd2 = fs.openSync(join(m.mnt, 'f'), 'r');
  const s3 = m.status();
  t.equal(s3.openFiles, 1, 'one open file');
  t.equal(s3.openHandles, 2, 'two handles');
  fs.closeSync(fd);
  fs.closeSync(fd2);
  await waitFor('handles to be released', () => m.status().openHandles === 0, 5000);
  t.equal(m.status().openFiles, 0, 'no open file after close');
  // a real failure (not a lookup miss) counts as an error
  try {
    fs.writeFileSync(join(m.mnt, 'y'.repeat(200)), 'x');
  } catch {
    // ENAMETOOLONG
  }
  const s4 = m.status();
  t.ok(s4.errors > s2.errors, `errors grew after a failed operation (${s2.errors} → ${s4.errors})`);
  t.equal(s4.integrityErrors, 0, 'no integrity errors');
});

t.test('file modes: control socket 0600, run directory 0700; no core dumps; logs are JSON lines', { skip }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'life-modes' });
  fs.writeFileSync(join(m.mnt, 'f'), 'x');
  const sock = fs.statSync(m.record.socket);
  t.ok(sock.isSocket(), 'the control socket is a socket');
  t.equal(sock.mode & 0o777, 0o600, 'control socket mode 0600');
  t.equal(fs.statSync(join(m.record.socket, '..')).mode & 0o777, 0o700, 'its directory is 0700');
  t.equal(fs.statSync(m.record.runDir).mode & 0o777, 0o700, 'run directory 0700');
  t.equal(fs.statSync(m.record.log).mode & 0o777, 0o600, 'log file 0600');
  t.equal(fs.statSync(join(m.record.runDir, `${m.record.id}.json`)).mode & 0o777, 0o600, 'run record 0600');
  const index = fs.readdirSync(join(m.ws.stateDir, 'mounts'));
  t.equal(index.length, 1, 'one index entry in the state directory');
  t.equal(fs.statSync(join(m.ws.stateDir, 'mounts', index[0]!)).mode & 0o777, 0o600, 'index entry 0600');
  t.equal(fs.statSync(join(m.ws.stateDir, 'mounts')).mode & 0o777, 0o700, 'state index directory 0700');
  const core = /^Max core file size\s+(\S+)\s+(\S+)/m.exec(fs.readFileSync(`/proc/${m.pid}/limits`, 'utf8'));
  t.same(core?.slice(1, 3), ['0', '0'], 'the daemon cannot dump core (RLIMIT_CORE 0, soft and hard)');
  await m.umount();
  const text = fs.readFileSync(m.record.log, 'utf8');
  const lines = text.split('\n').filter((l) => l !== '');
  t.ok(lines.length >= 3, 'mounted, unmounting, unmounted logged');
  const bad = lines.filter((l) => {
    try {
      const o = JSON.parse(l) as Record<string, unknown>;
      return typeof o['level'] !== 'number' || typeof o['time'] !== 'number' || typeof o['msg'] !== 'string';
    } catch {
      return true;
    }
  });
  t.same(bad, [], 'every log line is a JSON object with level, time and msg');
  t.ok(text.endsWith('\n'), 'the log ends with a complete line');
});

t.test('mounting over a live mount is refused with one clear line; the live mount is untouched', { skip }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'life-double' });
  fs.writeFileSync(join(m.mnt, 'f'), 'still here');
  const r = mountCli(m.ws, m.repo, m.mnt);
  expectOneLineError(t, r, /already mounted/, 'dvfs mount of the same repository again');
  t.match(r.stderr, new RegExp(m.mnt.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), 'naming the mountpoint');
  const other = initRepo(m.ws, 'other', 'standard');
  expectOneLineError(t, mountCli(m.ws, other, m.mnt), /already mounted/, 'dvfs mount of another repository there');
  const entries = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === m.mnt);
  t.equal(entries.length, 1, 'still exactly one mount at the mountpoint');
  t.equal(fs.readFileSync(join(m.mnt, 'f'), 'utf8'), 'still here', 'the live mount still works');
  const s = m.status();
  t.equal(s.pid, m.pid, 'dvfs status still reaches the original daemon (its socket and record were not clobbered)');
  t.same(daemonsOf(m.ws), [m.pid], 'no extra daemon process left behind');
});

t.test('a wrong password: one-line error, non-zero exit, nothing mounted, nothing left behind', { skip }, async (t) => {
  const ws = workspace(t, 'life-badpw');
  const repo = initRepo(ws, 'repo', 'standard');
  const mnt = join(ws.dir, 'mnt');
  const wrong = join(ws.dir, 'wrong-password');
  fs.writeFileSync(wrong, 'not the password\n', { mode: 0o600 });
  const r = mountCli(ws, repo, mnt, { env: { DVFS_PASSWORD_FILE: wrong } });
  expectOneLineError(t, r, /password/i, 'dvfs mount with a wrong password');
  t.notOk(isMounted(mnt), 'nothing mounted');
  t.same(daemonsOf(ws), [], 'no daemon left running');
  expectOneLineError(t, ws.cli(['status', mnt]), /no dvfs mount/, 'dvfs status afterwards');
  const runDir = join(repo, '.dvfs', 'run');
  const records = fs.existsSync(runDir) ? fs.readdirSync(runDir).filter((f) => f.endsWith('.json')) : [];
  t.same(records, [], 'no run record');
  t.same(fs.existsSync(join(ws.stateDir, 'mounts')) ? fs.readdirSync(join(ws.stateDir, 'mounts')) : [], [], 'no index entry');
  // and the right password still works afterwards
  const m = mountDvfs(ws, repo, mnt);
  fs.writeFileSync(join(m.mnt, 'ok'), 'ok');
  t.equal(fs.readFileSync(join(m.mnt, 'ok'), 'utf8'), 'ok', 'the right password mounts');
});
