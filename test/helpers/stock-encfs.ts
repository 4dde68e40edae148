/**
 * Test helpers that drive the REAL stock `encfs` binary (EncFS 1.9.5) so that
 * dvfs can be checked against volumes written and read by the reference
 * implementation.
 *
 * - Passwords are always fed through stdin (`--stdinpass`), never argv.
 * - Every external command runs with a timeout, so a hung mount fails the
 *   test instead of hanging the run.
 * - Leftover mounts (from a crashed earlier test) are unmounted before a
 *   mount point is reused, and mounts whose daemon died are swept from the
 *   temp directory the first time {@link tmpDir} is used.
 */
import { spawn, spawnSync } from 'node:child_process'
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs'
import { canonicalMountPath, isMounted, listMounts, mountsUnder, processAlive } from '../../daemon/mount/mountinfo.js'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export type StockPreset = 'standard' | 'paranoia'

export interface StockMountOptions {
  /** FUSE mount options, passed as `-- -o a,b,c`. */
  fuseOptions?: string[]
  /** Extra encfs options placed before the directories (e.g. `--reverse`). */
  extraArgs?: string[]
  /** How long encfs may take to mount (key derivation included). */
  timeoutMs?: number
}

export interface UnmountOptions {
  /** Total time to keep retrying while the mount point is busy. */
  timeoutMs?: number
  /** If a normal unmount keeps failing, detach lazily instead of throwing. */
  lazyFallback?: boolean
}

/** Anything with tap's `teardown` (a tap `Test`, or the root `t`). */
export interface TeardownHost {
  teardown(fn: () => unknown): void
}

/** Name of the file EncFS stores its V6 configuration in. */
export const ENCFS_CONFIG_NAME = '.encfs6.xml'

const MOUNT_TIMEOUT_MS = 60_000
const CREATE_TIMEOUT_MS = 120_000
const UNMOUNT_TIMEOUT_MS = 10_000
const DAEMON_EXIT_TIMEOUT_MS = 10_000
const TMP_PREFIX = 'dvfs-test-'

/** Full path of an executable found on PATH, or null. */
export function findExecutable(name: string): string | null {
  const dirs = (process.env['PATH'] ?? '').split(path.delimiter)
  for (const extra of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (!dirs.includes(extra)) dirs.push(extra)
  }
  for (const dir of dirs) {
    if (dir === '') continue
    const candidate = path.join(dir, name)
    try {
      accessSync(candidate, fsConstants.X_OK)
      if (statSync(candidate).isFile()) return candidate
    } catch {
      // not here
    }
  }
  return null
}

function encfsBinary(): string | null {
  const override = process.env['DVFS_STOCK_ENCFS']
  if (override !== undefined && override !== '') return override
  return findExecutable('encfs')
}

function unmountCommands(mountDir: string, lazy: boolean): string[][] {
  const cmds: string[][] = []
  const flag = lazy ? '-uz' : '-u'
  for (const tool of ['fusermount3', 'fusermount']) {
    const bin = findExecutable(tool)
    if (bin !== null) cmds.push([bin, flag, mountDir])
  }
  const umount = findExecutable('umount')
  if (umount !== null && (process.getuid?.() === 0 || cmds.length === 0)) {
    cmds.push(lazy ? [umount, '-l', mountDir] : [umount, mountDir])
  }
  return cmds
}

/**
 * Whether the stock encfs can be used here. Returns null when it can,
 * otherwise a human-readable reason suitable for a loud skip message.
 */
export function encfsAvailable(): string | null {
  if (process.platform !== 'linux') return `stock encfs tests need Linux (platform is ${process.platform})`
  const bin = encfsBinary()
  if (bin === null) return 'stock encfs binary not found on PATH (install the Debian "encfs" package; see test/setup.sh)'
  try {
    accessSync(bin, fsConstants.X_OK)
  } catch {
    return `stock encfs binary ${bin} is not executable`
  }
  if (!existsSync('/dev/fuse')) return '/dev/fuse does not exist (no FUSE support in this kernel/container)'
  try {
    accessSync('/dev/fuse', fsConstants.R_OK | fsConstants.W_OK)
  } catch {
    return '/dev/fuse is not readable and writable by this user'
  }
  if (unmountCommands('/nonexistent', false).length === 0) {
    return 'no fusermount3/fusermount/umount found to unmount FUSE filesystems (install "fuse3")'
  }
  return null
}

/** `encfs --version` output, e.g. "encfs version 1.9.5", or null if unavailable. */
export function stockEncfsVersion(): string | null {
  const bin = encfsBinary()
  if (bin === null) return null
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 })
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim()
  return text === '' ? null : (text.split('\n')[0] ?? null)
}

// ---------------------------------------------------------------------------
// mount table

export { isMounted, listMounts, mountsUnder } from '../../daemon/mount/mountinfo.js'
export type { MountEntry } from '../../daemon/mount/mountinfo.js'
const canonical = canonicalMountPath

// ---------------------------------------------------------------------------
// running encfs

function sanitizedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env['ENCFS6_CONFIG'] // would redirect encfs to another config file
  return env
}

/** Pids of live encfs processes whose command line names `mountDir`. */
function encfsDaemonPids(mountDir: string): number[] {
  const target = canonical(mountDir)
  const pids: number[] = []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return pids
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue
    let argv: string[]
    try {
      argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0')
    } catch {
      continue
    }
    if (path.basename(argv[0] ?? '') !== 'encfs') continue
    if (argv.slice(1).some((a) => a !== '' && !a.startsWith('-') && canonical(a) === target)) pids.push(Number(e))
  }
  return pids
}

async function runEncfs(args: string[], password: string, mountDir: string, timeoutMs: number): Promise<void> {
  const bin = encfsBinary()
  if (bin === null) throw new Error('stock encfs binary not found')
  // encfs daemonizes and its background half may keep inherited fds open,
  // so its output goes to a file rather than a pipe we would wait on.
  const logDir = mkdtempSync(path.join(os.tmpdir(), 'dvfs-encfs-log-'))
  const logPath = path.join(logDir, 'encfs.log')
  const fd = openSync(logPath, 'w')
  const readLog = (): string => {
    try {
      return readFileSync(logPath, 'utf8').trim()
    } catch {
      return ''
    }
  }
  const describe = `encfs ${args.join(' ')}`
  try {
    const child = spawn(bin, args, { stdio: ['pipe', fd, fd], env: sanitizedEnv() })
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', reject)
      child.once('exit', (code, signal) => resolve({ code, signal }))
    })
    child.stdin?.on('error', () => {
      // encfs may exit before reading the password (e.g. bad arguments)
    })
    child.stdin?.end(`${password}\n`)
    const deadline = Date.now() + timeoutMs
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs)
    })
    const result = await Promise.race([exited, timedOut])
    if (timer !== undefined) clearTimeout(timer)
    if (result === 'timeout') {
      child.kill('SIGKILL')
      await unmountStock(mountDir, { lazyFallback: true }).catch(() => undefined)
      throw new Error(`${describe}: timed out after ${timeoutMs} ms\n${readLog()}`)
    }
    if (result.code !== 0) {
      throw new Error(`${describe}: exited with ${result.code ?? result.signal}\n${readLog()}`)
    }
    while (!isMounted(mountDir)) {
      if (Date.now() > deadline) {
        throw new Error(`${describe}: exited 0 but ${mountDir} did not appear in the mount table\n${readLog()}`)
      }
      await sleep(50)
    }
  } finally {
    closeSync(fd)
    rmSync(logDir, { recursive: true, force: true })
  }
}

async function prepareMountPoint(mountDir: string): Promise<void> {
  if (isMounted(mountDir)) await unmountStock(mountDir, { lazyFallback: true })
  mkdirSync(mountDir, { recursive: true })
}

function checkAbsolute(...dirs: string[]): void {
  for (const d of dirs) {
    if (!path.isAbsolute(d)) throw new Error(`stock-encfs helpers need absolute paths, got ${JSON.stringify(d)}`)
  }
}

function fuseArgs(opts: StockMountOptions | undefined): string[] {
  const o = opts?.fuseOptions ?? []
  return o.length > 0 ? ['--', '-o', o.join(',')] : []
}

/**
 * Create a new stock EncFS volume in `rawDir` with `--standard` or
 * `--paranoia` and mount it on `mountDir`. The volume stays mounted.
 */
export async function createStockVolume(
  rawDir: string,
  mountDir: string,
  password: string,
  preset: StockPreset,
  opts?: StockMountOptions,
): Promise<void> {
  checkAbsolute(rawDir, mountDir)
  if (existsSync(path.join(rawDir, ENCFS_CONFIG_NAME))) {
    throw new Error(`${rawDir} already contains ${ENCFS_CONFIG_NAME}; refusing to create a volume over it`)
  }
  mkdirSync(rawDir, { recursive: true })
  await prepareMountPoint(mountDir)
  const args = [`--${preset}`, '--stdinpass', ...(opts?.extraArgs ?? []), rawDir, mountDir, ...fuseArgs(opts)]
  await runEncfs(args, password, mountDir, opts?.timeoutMs ?? CREATE_TIMEOUT_MS)
}

/** Mount an existing stock EncFS volume (password via stdin). */
export async function mountStock(
  rawDir: string,
  mountDir: string,
  password: string,
  opts?: StockMountOptions,
): Promise<void> {
  checkAbsolute(rawDir, mountDir)
  if (!existsSync(path.join(rawDir, ENCFS_CONFIG_NAME)) && process.env['ENCFS6_CONFIG'] === undefined) {
    throw new Error(`${rawDir} has no ${ENCFS_CONFIG_NAME}; not an EncFS V6 volume`)
  }
  await prepareMountPoint(mountDir)
  const args = ['--stdinpass', ...(opts?.extraArgs ?? []), rawDir, mountDir, ...fuseArgs(opts)]
  await runEncfs(args, password, mountDir, opts?.timeoutMs ?? MOUNT_TIMEOUT_MS)
}

function tryCommand(cmd: string[]): { ok: boolean; output: string } {
  const [bin, ...args] = cmd
  if (bin === undefined) return { ok: false, output: 'empty command' }
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 10_000 })
  const output = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim()
  return { ok: r.status === 0, output }
}

/**
 * Unmount a FUSE mount (stock encfs or anything else). No-op if `mountDir`
 * is not mounted. Retries while the mount point is busy, then waits briefly
 * for the encfs daemon of that mount to exit so its writes are complete.
 */
export async function unmountStock(mountDir: string, opts?: UnmountOptions): Promise<void> {
  const timeoutMs = opts?.timeoutMs ?? UNMOUNT_TIMEOUT_MS
  const target = canonical(mountDir)
  const daemons = encfsDaemonPids(target)
  const deadline = Date.now() + timeoutMs
  let lastError = ''
  while (isMounted(target)) {
    let done = false
    for (const cmd of unmountCommands(target, false)) {
      const r = tryCommand(cmd)
      if (r.ok || !isMounted(target)) {
        done = true
        break
      }
      lastError = `${cmd.join(' ')}: ${r.output}`
    }
    if (done) break
    if (Date.now() > deadline) {
      if (opts?.lazyFallback) {
        for (const cmd of unmountCommands(target, true)) {
          if (tryCommand(cmd).ok || !isMounted(target)) break
        }
        if (!isMounted(target)) break
      }
      throw new Error(`could not unmount ${target} within ${timeoutMs} ms: ${lastError}`)
    }
    await sleep(/busy/i.test(lastError) ? 200 : 100)
  }
  const exitDeadline = Date.now() + DAEMON_EXIT_TIMEOUT_MS
  while (daemons.some((pid) => processAlive(pid)) && Date.now() < exitDeadline) {
    await sleep(25)
  }
}


/** Mount, run `fn` with the mount directory, and always unmount afterwards. */
export async function withStockMount<T>(
  rawDir: string,
  mountDir: string,
  password: string,
  fn: (mountDir: string) => T | Promise<T>,
  opts?: StockMountOptions,
): Promise<T> {
  await mountStock(rawDir, mountDir, password, opts)
  try {
    return await fn(mountDir)
  } finally {
    await unmountStock(mountDir, { lazyFallback: true })
  }
}

// ---------------------------------------------------------------------------
// temp dirs

let staleSweepDone = false

/**
 * Lazily detach FUSE mounts in earlier tmpDir() directories whose daemon is
 * gone (stat fails with ENOTCONN), e.g. left by a test process that was
 * killed. Live mounts of concurrently running tests are left alone.
 */
export function sweepStaleMounts(): string[] {
  let root: string
  try {
    root = realpathSync(os.tmpdir())
  } catch {
    return []
  }
  const swept: string[] = []
  for (const m of listMounts()) {
    if (!m.fstype.startsWith('fuse')) continue
    const rel = path.relative(root, m.mountpoint)
    if (rel.startsWith('..') || !rel.startsWith(TMP_PREFIX)) continue
    try {
      statSync(m.mountpoint)
      continue
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOTCONN') continue
    }
    for (const cmd of unmountCommands(m.mountpoint, true)) {
      if (tryCommand(cmd).ok) {
        swept.push(m.mountpoint)
        break
      }
    }
  }
  return swept
}

/**
 * A fresh temporary directory, removed when test `t` ends. Anything still
 * mounted below it is unmounted first (so a failing test cannot leave
 * mounts behind).
 */
export function tmpDir(t: TeardownHost, label = ''): string {
  if (!staleSweepDone) {
    staleSweepDone = true
    sweepStaleMounts()
  }
  const safe = label.replace(/[^A-Za-z0-9_.-]/g, '_')
  const dir = mkdtempSync(path.join(os.tmpdir(), `${TMP_PREFIX}${safe}${safe === '' ? '' : '-'}`))
  t.teardown(async () => {
    const errors: string[] = []
    for (const mp of mountsUnder(dir)) {
      try {
        await unmountStock(mp, { lazyFallback: true })
      } catch (err) {
        errors.push(String(err))
      }
    }
    if (errors.length > 0) {
      // never rm -rf through a live mount: that would delete through FUSE
      throw new Error(`tmpDir cleanup: left ${dir} in place: ${errors.join('; ')}`)
    }
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}
