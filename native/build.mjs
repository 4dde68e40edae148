#!/usr/bin/env node
// Builds the dvfs native block codec (native/build/Release/dvfs_native.node) with node-gyp, against this
// Node's own headers and its bundled OpenSSL. Run by `npm install` and `npm run build`.
//
// This script never fails: when the addon cannot be built it prints one warning line and exits 0, and dvfs
// uses the TypeScript codec (same bytes, slower). The node-gyp output of a failed build is kept in
// native/build/build.log.
//
//   DVFS_NO_NATIVE=1   skip the build
//   --force            rebuild even when the .node is newer than its sources
//   --verbose          show node-gyp's output
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNodeGyp } from './gyp.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = dirname(here);
const addon = join(here, 'build', 'Release', 'dvfs_native.node');
const logFile = join(here, 'build', 'build.log');
const args = new Set(process.argv.slice(2));
const verbose = args.has('--verbose');
const ABI_VERSION = 1;

const say = (line) => process.stdout.write(`dvfs: ${line}\n`);
const warn = (reason) =>
  process.stderr.write(
    `dvfs: warning: the native codec could not be built (${reason}); dvfs will use the TypeScript codec\n`,
  );

function newestSource() {
  const files = [join(here, 'binding.gyp'), fileURLToPath(import.meta.url)];
  const src = join(here, 'src');
  if (existsSync(src)) for (const f of readdirSync(src)) files.push(join(src, f));
  return Math.max(...files.filter((f) => existsSync(f)).map((f) => statSync(f).mtimeMs));
}

// Loads the addon in a child process (a .node file cannot be reloaded in-process once replaced) and runs a
// round trip. Prints nothing on success, the reason on failure.
const SMOKE = `
const [addon, abi] = process.argv.slice(1);
try {
  const mod = require(addon);
  if (mod === null || typeof mod !== 'object' || mod.abiVersion !== Number(abi) || typeof mod.Codec !== 'function') {
    throw new Error(addon + ' does not export the expected interface');
  }
  const codec = new mod.Codec('aes', Buffer.alloc(24, 1), Buffer.alloc(16, 2), 3, 1024, 8, 0, true);
  const plain = Buffer.from('dvfs native codec self-test');
  const back = codec.decode(codec.encode(plain, 0, 0n, null), 0, 0n);
  if (!back.plain.equals(plain) || back.badBlock !== -1) throw new Error('the addon failed its self-test');
} catch (e) {
  process.stdout.write(String(e && e.message ? e.message : e).split('\\n')[0]);
  process.exitCode = 1;
}
`;

/** Returns null when the built addon loads and works, else why not. */
function smokeTest() {
  const r = spawnSync(process.execPath, ['-e', SMOKE, addon, String(ABI_VERSION)], { encoding: 'utf8' });
  if (r.status === 0) return null;
  return `cannot load the addon: ${(r.stdout || r.stderr || String(r.error ?? r.signal)).split('\n')[0]}`;
}

function main() {
  if (process.env.DVFS_NO_NATIVE === '1') {
    say('DVFS_NO_NATIVE=1: not building the native codec');
    return;
  }
  if (!args.has('--force') && existsSync(addon) && statSync(addon).mtimeMs > newestSource() && smokeTest() === null) {
    return; // up to date
  }
  const started = Date.now();
  const { ok, log } = runNodeGyp(here, addon, verbose);
  if (!ok) {
    try {
      mkdirSync(dirname(logFile), { recursive: true });
      writeFileSync(logFile, log.join('\n'));
      warn(`node-gyp failed, see ${logFile}`);
    } catch {
      warn('node-gyp failed');
    }
    return;
  }
  const problem = smokeTest();
  if (problem !== null) {
    warn(problem);
    return;
  }
  say(`built the native codec in ${((Date.now() - started) / 1000).toFixed(1)}s`);
}

try {
  main();
} catch (e) {
  warn(String(e instanceof Error ? e.message : e).split('\n')[0]);
}
process.exitCode = 0;
