#!/usr/bin/env node
// fuse-native 2.2.6 hands `utimens` the access time twice (the modification time is lost), turns
// UTIME_NOW / UTIME_OMIT into nonsense times, and does not tell libfuse it understands UTIME_OMIT (so libfuse
// drops `touch -m` / `touch -a`). Run by `npm install` / `npm run build`, this script builds
// fuse-native's binding from its own C source with those two spots corrected, into
// node_modules/fuse-native/build/Release/fuse.node — which fuse-native's loader (node-gyp-build) prefers
// over its prebuilt binary. Omitted times arrive as OMIT_MS and are kept by dvfs; "now" arrives as now.
//
// Never fails the install: if the source is not the one we know or the build fails, one warning line is
// printed and fuse-native's prebuilt binary stays in use (utimens then sets both times to the access time).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNodeGyp } from './gyp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '..', 'package.json'));
const warn = (why) => process.stderr.write(`dvfs: warning: fuse-native utimens fix not applied (${why}); mtime follows atime on utimens\n`);

/** Changes whenever the fix changes, so an older fixed build is rebuilt. */
const FIX_VERSION = 'dvfs utimens fix 2 (mtime argument, UTIME_NOW/OMIT, flag_utime_omit_ok)\n';

/** Sentinel for UTIME_OMIT, in milliseconds (2^48 - 1, far beyond any real time). */
const OMIT_MS = '281474976710655ULL';

const UTIMENS_REGISTRATION = 'if (implemented[op_utimens]) ops.utimens = fuse_native_utimens;';
// libfuse 2.9 drops a setattr that changes only one of atime/mtime unless the filesystem says it understands
// UTIME_OMIT; fuse-native never says so.
const OMIT_OK = `${UTIMENS_REGISTRATION}\n  ops.flag_utime_omit_ok = 1;`;
const BUGGY_ARGV = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)';
const FIXED_ARGV = 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)';
const BUGGY_CONVERT = `static uint64_t timespec_to_uint64 (const struct timespec* ts) {
  uint64_t ms = (ts->tv_sec * 1000) + (ts->tv_nsec / 1000000);
  return ms;
}`;
const FIXED_CONVERT = `static uint64_t timespec_to_uint64 (const struct timespec* ts) {
  if (ts->tv_nsec == UTIME_OMIT) return ${OMIT_MS};
  if (ts->tv_nsec == UTIME_NOW) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return ((uint64_t) now.tv_sec * 1000) + (now.tv_nsec / 1000000);
  }
  uint64_t ms = ((uint64_t) ts->tv_sec * 1000) + (ts->tv_nsec / 1000000);
  return ms;
}`;

function main() {
  if (process.env.DVFS_NO_NATIVE === '1') return;
  let pkgDir;
  try {
    pkgDir = dirname(require.resolve('fuse-native/package.json'));
  } catch {
    return warn('fuse-native is not installed');
  }
  const product = join(pkgDir, 'build', 'Release', 'fuse.node');
  const marker = join(pkgDir, 'build', 'Release', '.dvfs-utimens-fix');
  const source = readFileSync(join(pkgDir, 'fuse-native.c'), 'utf8');
  if (existsSync(marker) && readFileSync(marker, 'utf8') === FIX_VERSION && existsSync(product)) return;
  if (!source.includes(BUGGY_ARGV) || !source.includes(BUGGY_CONVERT) || !source.includes(UTIMENS_REGISTRATION)) {
    return warn('fuse-native.c is not the 2.2.6 source this fix knows');
  }
  const work = join(here, 'build', 'fuse-native-fixed');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  for (const f of ['binding.gyp', 'semaphore.h']) copyFileSync(join(pkgDir, f), join(work, f));
  const fixed = source.replace(BUGGY_ARGV, FIXED_ARGV).replace(BUGGY_CONVERT, FIXED_CONVERT).replace(UTIMENS_REGISTRATION, OMIT_OK);
  writeFileSync(join(work, 'fuse-native.c'), fixed.includes('#include <time.h>') ? fixed : `#include <time.h>\n${fixed}`);
  const built = join(work, 'build', 'Release', 'fuse.node');
  const { ok, log } = runNodeGyp(work, built);
  if (!ok) {
    writeFileSync(join(here, 'build', 'fuse-native-fix.log'), log.join('\n'));
    return warn(`node-gyp failed, see ${join(here, 'build', 'fuse-native-fix.log')}`);
  }
  mkdirSync(dirname(product), { recursive: true });
  copyFileSync(built, product);
  // fuse-native's binding links libfuse.so from its prebuilds directory; node-gyp's copy step put one
  // beside our build, keep it next to the binding too.
  const lib = join(work, 'build', 'Release', 'libfuse.so');
  if (existsSync(lib)) copyFileSync(lib, join(dirname(product), 'libfuse.so'));
  const load = spawnSync(process.execPath, ['-e', "require('fuse-native')"], { cwd: join(here, '..'), encoding: 'utf8' });
  if (load.status !== 0) {
    rmSync(product, { force: true });
    return warn(`the rebuilt binding does not load: ${(load.stderr || '').trim().split('\n')[0]}`);
  }
  writeFileSync(marker, FIX_VERSION);
  process.stdout.write('dvfs: built fuse-native with the utimens fix\n');
}

try {
  main();
} catch (e) {
  warn(String(e instanceof Error ? e.message : e).split('\n')[0]);
}
process.exitCode = 0;
