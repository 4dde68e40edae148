/**
 * Test helpers for real dvfs FUSE mounts made with the real CLI (`dvfs init`, `dvfs mount`, `dvfs umount`).
 *
 * - {@link workspace} makes a temp directory with a password file and an environment (DVFS_PASSWORD_FILE,
 *   DVFS_STATE_DIR, XDG_RUNTIME_DIR all inside it), so records and sockets never pile up elsewhere.
 * - {@link mountDvfs} mounts and remembers the mount; the workspace's teardown (which runs also when the test
 *   failed or threw) unmounts every remembered mount with `dvfs umount`, falls back to a lazy detach and
 *   SIGKILL when that does not work, and then FAILS the test if anything was left mounted or a daemon was
 *   still running. The directory is removed only when nothing is mounted below it.
 * - {@link fuseAvailable} says why FUSE tests cannot run here (for a loud skip), or null.
 */
import { processAlive } from '../../daemon/mount/mountinfo.js';
import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants as fsc, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI_PATH, dvfs, type CliResult } from './cli.js';
import { encfsAvailable, isMounted, mountsUnder } from './stock-encfs.js';

export type Preset = 'standard' | 'paranoia';

export const TEST_PASSWORD = 'fuse test password ✓';

export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface Workspace {
  /** The temp directory (removed at teardown). */
  dir: string;
  pwFile: string;
  password: string;
  /** Environment for every dvfs CLI call of this workspace. */
  env: NodeJS.ProcessEnv;
  stateDir: string;
  runtimeDir: string;
  /** Runs the CLI with this workspace's environment (plus `extraEnv`). */
  cli(args: string[], extraEnv?: NodeJS.ProcessEnv): CliResult;
  /** Mountpoints mounted through this workspace (unmounted at teardown). */
  readonly mounts: Map<string, DvfsMount>;
}

export interface MountRecordJson {
  id: string;
  pid: number;
  mountpoint: string;
  repo: string;
  tree: string;
  socket: string;
  log: string;
  runDir: string;
  readOnly: boolean;
}

export interface DvfsMount {
  ws: Workspace;
  repo: string;
  /** The EncFS volume directory (REPO/tree). */
  tree: string;
  mnt: string;
  /** The daemon's record as `dvfs mount --json` printed it. */
  record: MountRecordJson;
  pid: number;
  /** `dvfs status MNT --json`, parsed; throws if the command failed. */
  status(): Record<string, unknown> & { pid: number; openFiles: number; openHandles: number; bytesWritten: number; bytesRead: number; errors: number; integrityErrors: number; operations: number };
  /** `dvfs umount MNT`; throws (with stderr) if it failed or the mount / daemon is still there after it. */
  umount(): Promise<void>;
}

/** Why FUSE mounts cannot be tested here, or null. */
export function fuseAvailable(): string | null {
  if (process.platform !== 'linux') return `FUSE tests need Linux (platform is ${process.platform})`;
  if (!existsSync('/dev/fuse')) return '/dev/fuse does not exist (no FUSE in this kernel/container)';
  try {
    accessSync('/dev/fuse', fsc.R_OK | fsc.W_OK);
  } catch {
    return '/dev/fuse is not readable and writable by this user';
  }
  if (!existsSync(CLI_PATH.replace(/cli\/dvfs\.js$/, 'dist/cli/main.js'))) return 'dvfs is not built (npm run build)';
  const probe = spawnSync('fusermount', ['-V'], { encoding: 'utf8' });
  if (probe.error && spawnSync('fusermount3', ['-V']).error) return 'neither fusermount nor fusermount3 is installed (apt-get install fuse3)';
  return null;
}

/** Why the stock encfs cannot be used, or null (re-exported for the interop tests). */
export { encfsAvailable, isMounted };

export { processAlive };

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

function lazyDetach(mnt: string): void {
  for (const [cmd, args] of [
    ['fusermount', ['-uz', mnt]],
    ['fusermount3', ['-uz', mnt]],
    ['umount', ['-l', mnt]],
  ] as const) {
    spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 });
    if (!isMounted(mnt)) return;
  }
}

/**
 * A fresh workspace. Its teardown unmounts everything mounted through it (and anything else mounted below
 * its directory), and throws — failing the test — when something had to be forced or is still left.
 */
export function workspace(t: TeardownHost, label = 'fuse'): Workspace {
  const dir = mkdtempSync(join(tmpdir(), `dvfs-test-${label.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
  const pwFile = join(dir, 'password');
  writeFileSync(pwFile, TEST_PASSWORD + '\n', { mode: 0o600 });
  const stateDir = join(dir, 'state');
  const runtimeDir = join(dir, 'xdg');
  mkdirSync(runtimeDir, { mode: 0o700 });
  const env: NodeJS.ProcessEnv = { DVFS_PASSWORD_FILE: pwFile, DVFS_STATE_DIR: stateDir, XDG_RUNTIME_DIR: runtimeDir, DVFS_LOG_LEVEL: 'info' };
  const mounts = new Map<string, DvfsMount>();
  const ws: Workspace = {
    dir,
    pwFile,
    password: TEST_PASSWORD,
    env,
    stateDir,
    runtimeDir,
    mounts,
    cli: (args, extraEnv = {}) => dvfs(args, { env: { ...env, ...extraEnv } }),
  };
  t.teardown(async () => {
    const problems: string[] = [];
    for (const m of mounts.values()) {
      if (isMounted(m.mnt) || processAlive(m.pid)) {
        const r = ws.cli(['umount', m.mnt]);
        if (r.status !== 0) problems.push(`dvfs umount ${m.mnt} failed in teardown: ${r.stderr.trim()}`);
      }
      try {
        await waitFor(`daemon ${m.pid} to exit`, () => !processAlive(m.pid), 10_000);
      } catch {
        problems.push(`daemon pid ${m.pid} of ${m.mnt} still running after umount; killed it`);
        try {
          process.kill(m.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
    }
    for (const mp of mountsUnder(dir)) {
      problems.push(`${mp} was still mounted at teardown; detached it lazily`);
      lazyDetach(mp);
    }
    const still = mountsUnder(dir);
    if (still.length > 0) {
      // never rm -rf through a live mount
      throw new Error(`mount teardown: left ${dir} in place, still mounted: ${still.join(', ')}; ${problems.join('; ')}`);
    }
    rmSync(dir, { recursive: true, force: true });
    if (problems.length > 0) throw new Error(`mount teardown: ${problems.join('; ')}`);
  });
  return ws;
}

/** `dvfs init` of an EncFS-mode repository (fast KDF); returns the repository path. */
export function initRepo(ws: Workspace, name: string, preset: Preset = 'standard'): string {
  const repo = join(ws.dir, name);
  const r = ws.cli(['init', repo, '--mode', 'encfs', '--preset', preset, '--kdf-iterations', '1000']);
  if (r.status !== 0) throw new Error(`dvfs init ${repo} failed (${r.status}): ${r.stderr}`);
  return repo;
}

export interface MountOptions {
  readOnly?: boolean;
  allowOther?: boolean;
  /** Pass --xattr (default true here). */
  xattr?: boolean;
  /** Extra environment for the mount command (and so the daemon). */
  env?: NodeJS.ProcessEnv;
}

/** Runs `dvfs mount REPO MNT --json` and returns the raw CLI result (for tests of failing mounts). */
export function mountCli(ws: Workspace, repo: string, mnt: string, opts: MountOptions = {}): CliResult {
  const args = ['mount', repo, mnt, '--json'];
  if (opts.readOnly) args.push('--read-only');
  if (opts.allowOther) args.push('--allow-other');
  // The suite exercises the whole operation set, extended attributes included (opt-in for users).
  if (opts.xattr !== false) args.push('--xattr');
  return ws.cli(args, opts.env);
}

/** Mounts `repo` at `mnt` with the real CLI; the workspace's teardown unmounts it. Throws if it failed. */
export function mountDvfs(ws: Workspace, repo: string, mnt: string, opts: MountOptions = {}): DvfsMount {
  const r = mountCli(ws, repo, mnt, opts);
  if (r.status !== 0) throw new Error(`dvfs mount ${repo} ${mnt} failed (${r.status}): ${r.stderr}`);
  return adoptMount(ws, repo, mnt, r);
}

/** Registers a mount made by `dvfs mount --json` (whose result is `r`) with the workspace. */
export function adoptMount(ws: Workspace, repo: string, mnt: string, r: CliResult): DvfsMount {
  const record = JSON.parse(r.out) as MountRecordJson;
  if (!isMounted(mnt)) throw new Error(`dvfs mount said it mounted ${mnt}, but it is not in the mount table`);
  const m: DvfsMount = {
    ws,
    repo,
    tree: join(repo, 'tree'),
    mnt,
    record,
    pid: record.pid,
    status() {
      const s = ws.cli(['status', mnt, '--json']);
      if (s.status !== 0) throw new Error(`dvfs status ${mnt} failed (${s.status}): ${s.stderr}`);
      return JSON.parse(s.out) as ReturnType<DvfsMount['status']>;
    },
    async umount() {
      const u = ws.cli(['umount', mnt]);
      if (u.status !== 0) throw new Error(`dvfs umount ${mnt} failed (${u.status}): ${u.stderr}`);
      if (isMounted(mnt)) throw new Error(`dvfs umount ${mnt} exited 0 but it is still mounted`);
      await waitFor(`daemon ${record.pid} to exit after umount`, () => !processAlive(record.pid), 10_000);
    },
  };
  ws.mounts.set(`${mnt}#${record.pid}`, m);
  return m;
}

export interface QuickMount extends DvfsMount {
  preset: Preset;
}

/** A workspace, a fresh repository of `preset` and a mount of it at WS/mnt, all torn down with `t`. */
export function quickMount(t: TeardownHost, preset: Preset = 'standard', opts: MountOptions & { label?: string } = {}): QuickMount {
  const ws = workspace(t, opts.label ?? preset);
  const repo = initRepo(ws, 'repo', preset);
  const m = mountDvfs(ws, repo, join(ws.dir, 'mnt'), opts);
  return Object.assign(m, { preset });
}

/** Makes the workspace directory traversable by others (for tests that drop privileges); /tmp already is. */
export function openUp(ws: Workspace): void {
  chmodSync(ws.dir, 0o755);
}
