// Running node-gyp without network access: against this Node's own headers, with whichever node-gyp is
// at hand (npx, npm's bundled one, or node_modules/.bin). Shared by native/build.mjs and
// native/fuse-native-fix.mjs.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

/** Where this Node's headers are, so node-gyp never tries to download them. */
export function nodeDir() {
  const fromEnv = process.env.npm_config_nodedir;
  if (fromEnv && existsSync(join(fromEnv, 'include', 'node', 'node_api.h'))) return fromEnv;
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, 'include', 'node', 'node_api.h'))) return prefix;
  return null;
}

/** node-gyp commands to try, in order: [command, leading args, label]. */
export function nodeGypCandidates() {
  const list = [];
  const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
  list.push([npx, ['--no-install', 'node-gyp'], 'npx --no-install node-gyp']);
  // npm's own node-gyp: npm names it in the environment of lifecycle scripts; otherwise look next to npm.
  const bundled = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  for (const js of bundled) {
    if (js && existsSync(js) && !list.some((c) => c[1][0] === js)) list.push([process.execPath, [js], js]);
  }
  const local = join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'node-gyp.cmd' : 'node-gyp');
  if (existsSync(local)) list.push([local, [], local]);
  return list;
}

/** `node-gyp rebuild` in `cwd`; ok when it exits 0 and `product` exists. */
export function runNodeGyp(cwd, product, verbose = false) {
  const dir = nodeDir();
  const gypArgs = ['rebuild', ...(dir ? [`--nodedir=${dir}`] : [])];
  const log = [];
  for (const [cmd, pre, label] of nodeGypCandidates()) {
    const r = spawnSync(cmd, [...pre, ...gypArgs], {
      cwd,
      encoding: 'utf8',
      stdio: verbose ? 'inherit' : 'pipe',
      env: { ...process.env, npm_config_nodedir: dir ?? process.env.npm_config_nodedir ?? '' },
      shell: process.platform === 'win32',
    });
    log.push(`$ ${label} ${gypArgs.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`);
    if (r.status === 0 && existsSync(product)) return { ok: true, log };
    log.push(`(exit status ${r.status ?? r.signal ?? 'spawn error'})`);
  }
  return { ok: false, log };
}

