/**
 * The filesystems the mount benchmark compares, each behind one interface: create a fresh volume in a
 * directory, mount it, unmount it (cleanly, or by force during cleanup), and name its daemon process.
 *
 *   dvfs       `dvfs init --mode encfs --preset standard` + `dvfs mount` (detached daemon)
 *   encfs      stock `encfs --standard --stdinpass` (password on stdin)
 *   gocryptfs  `gocryptfs -init -scryptn 10 -passfile F`, then `gocryptfs -passfile F RAW MNT`
 *   plain      a directory on the same filesystem: the ceiling
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError, isMounted, killQuietly, mountsUnder, pidsNaming, processAlive, run, sleep, waitFor, type RunResult } from './proc.js';

export type PeerName = 'dvfs' | 'encfs' | 'gocryptfs' | 'plain';
export const ALL_PEERS: PeerName[] = ['dvfs', 'encfs', 'gocryptfs', 'plain'];

export interface VolumeContext {
  /** Absolute path of the dvfs launcher (cli/dvfs.js). */
  dvfsCli: string;
  /** Environment for dvfs commands (DVFS_STATE_DIR points into the benchmark's temp dir). */
  dvfsEnv: NodeJS.ProcessEnv;
  password: string;
  mountTimeoutMs: number;
  log: (line: string) => void;
}

export abstract class Volume {
  readonly pwFile: string;
  /** Whether the volume is mounted now (as far as this object knows). */
  mounted = false;
  protected pid: number | null = null;

  constructor(
    readonly peer: PeerName,
    /** The volume's own directory: raw tree, mountpoint and password file live below it. */
    readonly dir: string,
    protected readonly ctx: VolumeContext,
  ) {
    mkdirSync(dir, { recursive: true });
    this.pwFile = join(dir, 'password');
    writeFileSync(this.pwFile, `${ctx.password}\n`, { mode: 0o600 });
  }

  /** Where the workloads read and write (the mountpoint, or the plain directory). */
  abstract get data(): string;
  get isFuse(): boolean {
    return true;
  }
  /** Creates the volume and mounts it. */
  abstract create(): Promise<void>;
  protected abstract doMount(): Promise<void>;
  protected abstract doUnmount(): Promise<void>;
  /** Looks the daemon pid up (after a mount). */
  protected abstract findPid(): Promise<number | null>;

  daemonPid(): number | null {
    return this.pid;
  }

  /** Mounts and returns the wall time the mount command took. */
  async mount(): Promise<number> {
    if (!this.isFuse) return 0;
    const t0 = performance.now();
    await this.doMount();
    if (!(await waitFor(() => isMounted(this.data), this.ctx.mountTimeoutMs))) {
      throw new Error(`${this.peer}: ${this.data} is not mounted after the mount command returned`);
    }
    this.mounted = true;
    const seconds = (performance.now() - t0) / 1000;
    this.pid = await this.findPid();
    return seconds;
  }

  async unmount(): Promise<void> {
    if (!this.isFuse || !this.mounted) return;
    const pid = this.pid;
    await this.doUnmount();
    if (!(await waitFor(() => !isMounted(this.data), 30_000))) throw new Error(`${this.peer}: ${this.data} is still mounted after unmounting`);
    this.mounted = false;
    // The daemon flushes and exits after the kernel lets go; wait for it so the next step starts clean.
    if (pid !== null && !(await waitFor(() => !processAlive(pid), 60_000))) {
      throw new Error(`${this.peer}: daemon pid ${pid} did not exit within 60 s of the unmount`);
    }
    this.pid = null;
  }

  async remount(): Promise<number> {
    await this.unmount();
    return this.mount();
  }

  /**
   * Cleanup path: unmount by any means (clean unmount, then lazy detach) and kill the daemon if it is still
   * there. Never throws; says what it did.
   */
  async forceUnmount(): Promise<void> {
    if (!this.isFuse) return;
    const pid = this.pid;
    if (isMounted(this.data)) {
      try {
        await this.doUnmountForCleanup();
      } catch (e) {
        this.ctx.log(`cleanup: ${this.peer}: clean unmount of ${this.data} failed (${(e as Error).message}); detaching it`);
      }
      await waitFor(() => !isMounted(this.data), 5_000);
    }
    for (const mp of mountsUnder(this.dir)) await lazyUnmount(mp);
    const pids = new Set<number>(pidsNaming(this.dir));
    if (pid !== null) pids.add(pid);
    for (const p of pids) {
      if (!processAlive(p)) continue;
      if (await waitFor(() => !processAlive(p), 5_000)) continue;
      this.ctx.log(`cleanup: ${this.peer}: killing daemon pid ${p}`);
      killQuietly(p);
    }
    this.mounted = false;
    this.pid = null;
  }

  protected async doUnmountForCleanup(): Promise<void> {
    await fuseUnmount(this.data, true);
  }
}

/** Unmounts a FUSE mount: fusermount -u, fusermount3 -u, umount; retries a busy mount for a while. */
export async function fuseUnmount(mountpoint: string, duringAbort = false): Promise<void> {
  const attempts: Array<[string, string[]]> = [
    ['fusermount', ['-u', mountpoint]],
    ['fusermount3', ['-u', mountpoint]],
    ['umount', [mountpoint]],
  ];
  let last = '';
  for (let round = 0; round < 10; round++) {
    for (const [cmd, args] of attempts) {
      try {
        await run(cmd, args, { timeoutMs: 60_000, duringAbort });
      } catch (e) {
        last = (e as Error).message;
      }
      if (!isMounted(mountpoint)) return;
    }
    await sleep(500);
  }
  throw new Error(`cannot unmount ${mountpoint}: ${last}`);
}

export async function lazyUnmount(mountpoint: string): Promise<void> {
  for (const [cmd, args] of [
    ['fusermount', ['-uz', mountpoint]],
    ['fusermount3', ['-uz', mountpoint]],
    ['umount', ['-l', mountpoint]],
  ] as Array<[string, string[]]>) {
    if (!isMounted(mountpoint)) return;
    try {
      await run(cmd, args, { timeoutMs: 30_000, duringAbort: true });
    } catch {
      /* try the next way */
    }
  }
}

/** Detaches everything mounted at or below `dir`, deepest first. */
export async function lazyUnmountAll(dir: string): Promise<void> {
  for (const mp of mountsUnder(dir)) await lazyUnmount(mp);
}

/** A dvfs repository (encfs mode, standard preset) mounted through the CLI. */
export class DvfsVolume extends Volume {
  readonly repo = join(this.dir, 'repo');
  readonly mnt = join(this.dir, 'mnt');
  /** Time limit of a clean `dvfs umount` (it flushes what the daemon still holds). */
  protected unmountTimeoutMs = 180_000;
  get data(): string {
    return this.mnt;
  }
  protected cli(args: string[], timeoutMs: number, duringAbort = false): Promise<RunResult> {
    return run(process.execPath, [this.ctx.dvfsCli, ...args], { timeoutMs, env: this.ctx.dvfsEnv, duringAbort });
  }
  /** Extra `dvfs init` flags. */
  protected initArgs(): string[] {
    return [];
  }
  async create(): Promise<void> {
    mkdirSync(this.mnt, { recursive: true });
    await this.cli(['init', this.repo, '--mode', 'encfs', '--preset', 'standard', ...this.initArgs(), '--password-file', this.pwFile], 120_000);
    await this.mount();
  }
  protected async doMount(): Promise<void> {
    // DVFS_BENCH_MOUNT_ARGS: extra `dvfs mount` flags to measure an option (e.g. --no-xattr) side by side.
    const extra = (process.env['DVFS_BENCH_MOUNT_ARGS'] ?? '').split(' ').filter((a) => a.length > 0);
    await this.cli(['mount', this.repo, this.mnt, '--password-file', this.pwFile, ...extra], this.ctx.mountTimeoutMs);
  }
  protected async doUnmount(): Promise<void> {
    await this.cli(['umount', this.mnt], this.unmountTimeoutMs);
  }
  protected override async doUnmountForCleanup(): Promise<void> {
    try {
      await this.cli(['umount', this.mnt], 60_000, true);
    } catch (e) {
      if (isMounted(this.mnt)) throw e;
    }
  }
  protected async findPid(): Promise<number | null> {
    const pid = (await this.status())['pid'];
    if (typeof pid !== 'number') throw new Error(`dvfs status ${this.mnt} --json has no pid`);
    return pid;
  }
  /** The daemon's own view (pid, open files, bytes, errors). */
  async status(): Promise<Record<string, unknown>> {
    const r = await this.cli(['status', this.mnt, '--json'], 30_000);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }
}

/** A stock FUSE filesystem: ciphertext in raw/, mounted at mnt/ by a daemon whose program is `program`. */
abstract class StockFuseVolume extends Volume {
  readonly raw = join(this.dir, 'raw');
  readonly mnt = join(this.dir, 'mnt');
  protected abstract readonly program: string;
  get data(): string {
    return this.mnt;
  }
  protected makeDirs(): void {
    mkdirSync(this.raw, { recursive: true });
    mkdirSync(this.mnt, { recursive: true });
  }
  protected async doUnmount(): Promise<void> {
    await fuseUnmount(this.mnt);
  }
  protected async findPid(): Promise<number | null> {
    return findDaemon(this.mnt, this.program);
  }
}

class EncfsVolume extends StockFuseVolume {
  protected readonly program = 'encfs';
  async create(): Promise<void> {
    this.makeDirs();
    // Creating a volume also mounts it.
    await run('encfs', ['--standard', '--stdinpass', this.raw, this.mnt], { timeoutMs: this.ctx.mountTimeoutMs, input: `${this.ctx.password}\n` });
    if (!(await waitFor(() => isMounted(this.mnt), this.ctx.mountTimeoutMs))) throw new Error(`encfs: ${this.mnt} is not mounted after creating the volume`);
    this.mounted = true;
    this.pid = await this.findPid();
  }
  protected async doMount(): Promise<void> {
    await run('encfs', ['--stdinpass', this.raw, this.mnt], { timeoutMs: this.ctx.mountTimeoutMs, input: `${this.ctx.password}\n` });
  }
}

class GocryptfsVolume extends StockFuseVolume {
  protected readonly program = 'gocryptfs';
  async create(): Promise<void> {
    this.makeDirs();
    await run('gocryptfs', ['-init', '-q', '-scryptn', '10', '-passfile', this.pwFile, this.raw], { timeoutMs: 120_000 });
    await this.mount();
  }
  protected async doMount(): Promise<void> {
    await run('gocryptfs', ['-q', '-passfile', this.pwFile, this.raw, this.mnt], { timeoutMs: this.ctx.mountTimeoutMs });
  }
}

class PlainVolume extends Volume {
  readonly plain = join(this.dir, 'plain');
  get data(): string {
    return this.plain;
  }
  override get isFuse(): boolean {
    return false;
  }
  async create(): Promise<void> {
    mkdirSync(this.plain, { recursive: true });
  }
  protected async doMount(): Promise<void> {}
  protected async doUnmount(): Promise<void> {}
  protected async findPid(): Promise<number | null> {
    return null;
  }
}

/** The daemon serving `mountpoint` (a daemonised child may take a moment to show up under its own pid). */
async function findDaemon(mountpoint: string, program: string): Promise<number | null> {
  let pids: number[] = [];
  await waitFor(() => (pids = pidsNaming(mountpoint, program)).length > 0, 5_000);
  // gocryptfs re-executes itself in the background; the newest matching process is the daemon.
  return pids.length > 0 ? Math.max(...pids) : null;
}

export function newVolume(peer: PeerName, dir: string, ctx: VolumeContext): Volume {
  switch (peer) {
    case 'dvfs':
      return new DvfsVolume(peer, dir, ctx);
    case 'encfs':
      return new EncfsVolume(peer, dir, ctx);
    case 'gocryptfs':
      return new GocryptfsVolume(peer, dir, ctx);
    case 'plain':
      return new PlainVolume(peer, dir, ctx);
  }
}

export function isDvfsVolume(v: Volume): v is DvfsVolume {
  return v instanceof DvfsVolume;
}

export { CommandError };
