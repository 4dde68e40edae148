// Randomized model test: one seeded sequence of thousands of filesystem operations (create, write at random
// offsets and past EOF, append, truncate, rename, unlink, mkdir, rmdir, symlink, chmod, and reads; plus a
// small pool of long-lived file descriptors that keep files open across renames and path truncations) is
// applied in lockstep to a directory inside a dvfs mount and to a plain directory on the local disk. Every
// operation's outcome (value or errno) must match, touched files are read back after each step, and the
// whole trees (names, types, modes, sizes, contents, link targets) are compared periodically.
//
// Reproduce a failure with DVFS_MODEL_SEED=<seed printed in the message>; DVFS_MODEL_OPS sets the count.
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { rng, type Rng } from '../helpers/rng.js';
import { fuseAvailable, mountDvfs, quickMount } from '../helpers/mount.js';

const unavailable = fuseAvailable();
if (unavailable !== null) console.error(`\n!!! SKIPPING dvfs FUSE model tests: ${unavailable}\n`);
const skip = unavailable === null ? false : `FUSE unavailable: ${unavailable}`;

const OPS = Number(process.env['DVFS_MODEL_OPS'] ?? 5000);
const BASE_SEED = Number(process.env['DVFS_MODEL_SEED'] ?? 20261122);
const FULL_COMPARE_EVERY = 100;
const MAX_FDS = 4;
const NAMES = ['a', 'b', 'c', 'dd'];
const LINK_TARGETS = ['a', 'b', 'dd/c', 'missing', '/nonexistent/x'];
const MODES = [0o600, 0o644, 0o640, 0o755, 0o700, 0o444];

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex').slice(0, 16);

type Outcome = string; // 'OK:<value>' or an errno code

function attempt(fn: () => string | number | void): Outcome {
  try {
    const v = fn();
    return v === undefined ? 'OK' : `OK:${v}`;
  } catch (e) {
    const c = (e as NodeJS.ErrnoException).code;
    if (typeof c !== 'string') throw e;
    return c;
  }
}

interface Entry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: number;
  size?: number;
  hash?: string;
  target?: string;
}

/** Names, types, modes, sizes, content hashes and link targets of every entry below `root`. */
function snapshot(root: string): Record<string, Entry> {
  const out: Record<string, Entry> = {};
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(join(root, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const full = join(root, r);
      const st = fs.lstatSync(full);
      const mode = st.mode & 0o7777;
      if (st.isDirectory()) {
        out[r] = { type: 'dir', mode };
        walk(r);
      } else if (st.isFile()) out[r] = { type: 'file', mode, size: st.size, hash: sha(fs.readFileSync(full)) };
      else if (st.isSymbolicLink()) out[r] = { type: 'symlink', mode: 0, target: fs.readlinkSync(full) };
      else out[r] = { type: 'other', mode };
    }
  };
  walk('');
  return out;
}

interface OpenPair {
  plain: number;
  dvfs: number;
  flags: string;
  path: string;
}

interface Step {
  desc: string;
  run(root: string): Outcome;
  /** A path whose contents to compare after the step. */
  check?: string;
}

class Model {
  private readonly fds: OpenPair[] = [];
  readonly history: string[] = [];
  opCounts = new Map<string, number>();
  errnoCounts = new Map<string, number>();

  constructor(
    private readonly r: Rng,
    readonly plainRoot: string,
    readonly dvfsRoot: string,
  ) {}

  /** Existing paths of the plain tree (the reference), by type. */
  private existing(): { files: string[]; dirs: string[]; all: string[] } {
    const files: string[] = [];
    const dirs: string[] = [];
    const all: string[] = [];
    const walk = (rel: string): void => {
      for (const e of fs.readdirSync(join(this.plainRoot, rel), { withFileTypes: true })) {
        const r = rel === '' ? e.name : `${rel}/${e.name}`;
        all.push(r);
        if (e.isDirectory()) {
          dirs.push(r);
          walk(r);
        } else if (e.isFile()) files.push(r);
      }
    };
    walk('');
    return { files, dirs, all };
  }

  private randomPath(): string {
    const depth = 1 + (this.r.int(10) < 5 ? 0 : this.r.int(10) < 7 ? 1 : 2);
    const parts: string[] = [];
    for (let i = 0; i < depth; i++) parts.push(this.r.pick(NAMES));
    return parts.join('/');
  }

  /** Mostly an existing path of the wanted kind, sometimes any random (possibly invalid) path. */
  private path(kind: 'file' | 'dir' | 'any' | 'new'): string {
    if (kind !== 'new' && this.r.int(10) < 8) {
      const ex = this.existing();
      const pool = kind === 'file' ? ex.files : kind === 'dir' ? ex.dirs : ex.all;
      if (pool.length > 0) return this.r.pick(pool);
    }
    if (kind === 'new' && this.r.int(10) < 7) {
      const dirs = this.existing().dirs;
      if (dirs.length > 0 && this.r.int(3) > 0) return `${this.r.pick(dirs)}/${this.r.pick(NAMES)}`;
    }
    return this.randomPath();
  }

  private data(): Buffer {
    const k = this.r.int(10);
    const n = k < 3 ? this.r.int(100) : k < 8 ? this.r.int(5000) : this.r.int(70_000);
    return this.r.bytes(n);
  }

  /** Closes (in both trees) every pooled fd open on the file now at plain path `rel`. */
  private closeFdsOn(rel: string): void {
    let ino: number;
    try {
      ino = fs.lstatSync(join(this.plainRoot, rel)).ino;
    } catch {
      return;
    }
    for (let i = this.fds.length - 1; i >= 0; i--) {
      const p = this.fds[i]!;
      if (fs.fstatSync(p.plain).ino === ino) {
        fs.closeSync(p.plain);
        fs.closeSync(p.dvfs);
        this.fds.splice(i, 1);
        this.history.push(`  (closed fd pair on ${p.path} before it is replaced/removed)`);
      }
    }
  }

  closeAll(): void {
    for (const p of this.fds.splice(0)) {
      for (const fd of [p.plain, p.dvfs]) if (fd !== undefined) attempt(() => fs.closeSync(fd));
    }
  }

  /** Picks the next random operation. Returns null when the picked op is not possible now (e.g. no fd). */
  next(): Step | null {
    const r = this.r;
    const k = r.int(100);
    const P = (rel: string, root: string): string => join(root, rel);
    if (k < 10) {
      const p = this.path(r.int(3) === 0 ? 'file' : 'new');
      const d = this.data();
      const excl = r.int(4) === 0;
      return { desc: `writeFile${excl ? '(wx)' : ''} ${p} ${d.length}B`, check: p, run: (root) => attempt(() => fs.writeFileSync(P(p, root), d, { flag: excl ? 'wx' : 'w' })) };
    }
    if (k < 24) {
      const p = this.path('file');
      const d = this.data();
      let size = 0;
      try {
        size = fs.statSync(join(this.plainRoot, p)).size;
      } catch {
        // missing: the op reports the errno
      }
      const off = r.int(4) === 0 ? size + r.int(20_000) : r.int(size + 1);
      return {
        desc: `pwrite ${p} @${off} ${d.length}B`,
        check: p,
        run: (root) =>
          attempt(() => {
            const fd = fs.openSync(P(p, root), 'r+');
            try {
              return fs.writeSync(fd, d, 0, d.length, off);
            } finally {
              fs.closeSync(fd);
            }
          }),
      };
    }
    if (k < 29) {
      const p = this.path('file');
      const d = this.data();
      return { desc: `append ${p} ${d.length}B`, check: p, run: (root) => attempt(() => fs.appendFileSync(P(p, root), d)) };
    }
    if (k < 37) {
      const p = this.path('file');
      const n = r.int(4) === 0 ? r.int(200_000) : r.int(5000);
      return { desc: `truncate ${p} ${n}`, check: p, run: (root) => attempt(() => fs.truncateSync(P(p, root), n)) };
    }
    if (k < 45) {
      const p = this.path(r.int(6) === 0 ? 'any' : 'file');
      const off = r.int(3) === 0 ? r.int(80_000) : 0;
      const len = r.int(3) === 0 ? r.int(10_000) : 1 << 20;
      return {
        desc: `read ${p} @${off} ${len}`,
        run: (root) =>
          attempt(() => {
            const fd = fs.openSync(P(p, root), 'r');
            try {
              const b = Buffer.alloc(Math.min(len, 1 << 20));
              const n = fs.readSync(fd, b, 0, b.length, off);
              return `${n}:${sha(b.subarray(0, n))}`;
            } finally {
              fs.closeSync(fd);
            }
          }),
      };
    }
    if (k < 53) {
      const src = this.path(r.int(3) === 0 ? 'dir' : 'any');
      const dst = r.int(3) === 0 ? this.path('any') : this.path('new');
      this.closeFdsOn(dst);
      return { desc: `rename ${src} → ${dst}`, check: dst, run: (root) => attempt(() => fs.renameSync(P(src, root), P(dst, root))) };
    }
    if (k < 58) {
      const p = this.path(r.int(5) === 0 ? 'any' : 'file');
      this.closeFdsOn(p);
      return { desc: `unlink ${p}`, run: (root) => attempt(() => fs.unlinkSync(P(p, root))) };
    }
    if (k < 64) {
      const p = this.path('new');
      return { desc: `mkdir ${p}`, run: (root) => attempt(() => fs.mkdirSync(P(p, root))) };
    }
    if (k < 68) {
      const p = this.path('dir');
      return { desc: `rmdir ${p}`, run: (root) => attempt(() => fs.rmdirSync(P(p, root))) };
    }
    if (k < 70) {
      const p = this.path('new');
      const target = r.pick(LINK_TARGETS);
      return { desc: `symlink ${p} → ${target}`, run: (root) => attempt(() => fs.symlinkSync(target, P(p, root))) };
    }
    if (k < 72) {
      const p = this.path('any');
      return { desc: `readlink ${p}`, run: (root) => attempt(() => fs.readlinkSync(P(p, root))) };
    }
    if (k < 75) {
      const p = this.path('any');
      const mode = r.pick(MODES);
      return { desc: `chmod ${p} ${mode.toString(8)}`, run: (root) => attempt(() => fs.chmodSync(P(p, root), mode)) };
    }
    if (k < 79) {
      const p = this.path('any');
      return {
        desc: `stat ${p}`,
        run: (root) =>
          attempt(() => {
            const st = fs.statSync(P(p, root));
            return `${st.isDirectory() ? 'd' : st.isFile() ? `f${st.size}` : 'o'}:${(st.mode & 0o7777).toString(8)}`;
          }),
      };
    }
    if (k < 82) {
      const p = r.int(4) === 0 ? '' : this.path('dir');
      return { desc: `readdir ${p || '/'}`, run: (root) => attempt(() => fs.readdirSync(P(p, root)).sort().join(',')) };
    }
    // long-lived fds
    if (k < 86) {
      if (this.fds.length >= MAX_FDS) return null;
      const p = this.path('file');
      const flags = r.pick(['r', 'r+', 'r+', 'a']);
      const pair: Partial<OpenPair> = { flags, path: p };
      return {
        desc: `open ${p} '${flags}' (kept)`,
        run: (root) =>
          attempt(() => {
            const fd = fs.openSync(P(p, root), flags);
            if (root === this.plainRoot) pair.plain = fd;
            else {
              pair.dvfs = fd;
              this.fds.push(pair as OpenPair);
            }
          }),
      };
    }
    if (this.fds.length === 0) return null;
    const pair = r.pick(this.fds);
    const idx = this.fds.indexOf(pair);
    const fdOf = (root: string): number => (root === this.plainRoot ? pair.plain : pair.dvfs);
    if (k < 92) {
      const d = this.data().subarray(0, 20_000);
      const size = fs.fstatSync(pair.plain).size;
      const off = r.int(4) === 0 ? size + r.int(10_000) : r.int(size + 1);
      return { desc: `fd#${idx}(${pair.path},'${pair.flags}') pwrite @${off} ${d.length}B`, run: (root) => attempt(() => fs.writeSync(fdOf(root), d, 0, d.length, off)) };
    }
    if (k < 95) {
      const off = r.int(fs.fstatSync(pair.plain).size + 100);
      const len = 1 + r.int(20_000);
      return {
        desc: `fd#${idx}(${pair.path}) pread @${off} ${len}`,
        run: (root) =>
          attempt(() => {
            const b = Buffer.alloc(len);
            const n = fs.readSync(fdOf(root), b, 0, len, off);
            return `${n}:${sha(b.subarray(0, n))}`;
          }),
      };
    }
    if (k < 97) {
      const n = r.int(30_000);
      return { desc: `fd#${idx}(${pair.path}) ftruncate ${n}`, run: (root) => attempt(() => fs.ftruncateSync(fdOf(root), n)) };
    }
    if (k < 98) {
      return { desc: `fd#${idx}(${pair.path}) fstat`, run: (root) => attempt(() => `${fs.fstatSync(fdOf(root)).size}`) };
    }
    if (k < 99) {
      return { desc: `fd#${idx}(${pair.path}) fsync`, run: (root) => attempt(() => fs.fsyncSync(fdOf(root))) };
    }
    return {
      desc: `fd#${idx}(${pair.path}) close`,
      run: (root) =>
        attempt(() => {
          fs.closeSync(fdOf(root));
          if (root !== this.plainRoot) this.fds.splice(this.fds.indexOf(pair), 1);
        }),
    };
  }
}

/** Reads a file in both trees: equal outcome (contents hash or errno) or a description of the difference. */
function compareFile(plainRoot: string, dvfsRoot: string, rel: string): string | null {
  const read = (root: string): string => attempt(() => sha(fs.readFileSync(join(root, rel))) + `/${fs.statSync(join(root, rel)).size}`);
  const a = read(plainRoot);
  const b = read(dvfsRoot);
  return a === b ? null : `contents of ${rel}: plain ${a}, dvfs ${b}`;
}

function diffSnapshots(a: Record<string, Entry>, b: Record<string, Entry>): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = JSON.stringify(a[k]);
    const y = JSON.stringify(b[k]);
    if (x !== y) out.push(`${k}: plain ${x ?? 'absent'} / dvfs ${y ?? 'absent'}`);
  }
  return out;
}

async function runModel(t: Test, preset: 'standard' | 'paranoia', seed: number): Promise<void> {
  const m = quickMount(t, preset, { label: `model-${preset}` });
  const plainRoot = join(m.ws.dir, 'plain');
  const dvfsRoot = join(m.mnt, 'model');
  fs.mkdirSync(plainRoot);
  fs.mkdirSync(dvfsRoot);
  const model = new Model(rng(seed), plainRoot, dvfsRoot);
  const tag = (i: number): string => `[${preset}, seed ${seed} (DVFS_MODEL_SEED=${seed}), op #${i}]`;
  const recent = (): string => model.history.slice(-25).join('\n');
  const started = Date.now();
  let done = 0;
  let failed = false;
  try {
    for (let i = 0; done < OPS; i++) {
      const step = model.next();
      if (step === null) continue;
      model.history.push(`#${i} ${step.desc}`);
      const name = step.desc.split(' ')[0]!.replace(/^fd#\d+\(.*\)$/, 'fd');
      model.opCounts.set(name, (model.opCounts.get(name) ?? 0) + 1);
      const a = step.run(plainRoot);
      const b = step.run(dvfsRoot);
      done++;
      if (!a.startsWith('OK')) model.errnoCounts.set(a, (model.errnoCounts.get(a) ?? 0) + 1);
      if (a !== b) {
        t.fail(`${tag(i)} ${step.desc}: plain → ${a}, dvfs → ${b}`, { recentOps: recent() });
        failed = true;
        break;
      }
      if (step.check !== undefined) {
        const diff = compareFile(plainRoot, dvfsRoot, step.check);
        if (diff !== null) {
          t.fail(`${tag(i)} after ${step.desc}: ${diff}`, { recentOps: recent() });
          failed = true;
          break;
        }
      }
      if (done % FULL_COMPARE_EVERY === 0 || done === OPS) {
        const diffs = diffSnapshots(snapshot(plainRoot), snapshot(dvfsRoot));
        if (diffs.length > 0) {
          t.fail(`${tag(i)} full tree compare after ${done} ops: ${diffs.length} differences`, { differences: diffs.slice(0, 20), recentOps: recent() });
          failed = true;
          break;
        }
      }
    }
  } finally {
    model.closeAll();
  }
  const secs = (Date.now() - started) / 1000;
  t.comment(`${preset}: ${done} ops in ${secs.toFixed(1)} s; ops ${JSON.stringify(Object.fromEntries(model.opCounts))}; errnos ${JSON.stringify(Object.fromEntries(model.errnoCounts))}`);
  if (failed) return;
  t.equal(done, OPS, `${tag(done)} all ${OPS} operations gave identical results in dvfs and on the plain disk`);
  // the error paths were really exercised
  for (const e of ['ENOENT', 'EEXIST', 'ENOTDIR', 'EISDIR', 'ENOTEMPTY']) t.ok((model.errnoCounts.get(e) ?? 0) > 0, `${tag(done)} sequence exercised ${e}`);
  // after closing every fd and remounting, the tree is still identical (nothing lived only in the daemon)
  const s = m.status();
  t.equal(s.integrityErrors, 0, `${tag(done)} no integrity errors`);
  t.equal(s.openHandles, 0, `${tag(done)} every handle released`);
  await m.umount();
  const again = mountDvfs(m.ws, m.repo, m.mnt);
  t.same(diffSnapshots(snapshot(plainRoot), snapshot(join(again.mnt, 'model'))), [], `${tag(done)} tree identical after unmount + mount`);
}

t.test(`standard preset: ${OPS} random ops in lockstep with a plain directory`, { skip }, (t) => runModel(t, 'standard', BASE_SEED));
t.test(`paranoia preset: ${OPS} random ops in lockstep with a plain directory`, { skip }, (t) => runModel(t, 'paranoia', BASE_SEED + 1));
