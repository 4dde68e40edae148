/**
 * A REAL single-node OpenStack Swift (proxy with tempauth + s3api) for tests that talk S3, started by
 * test/fixtures/swift/swift.sh on free 127.0.0.1 ports with its state in a fresh temp directory.
 *
 * - {@link swiftAvailable} says why Swift cannot run here (for a loud skip), or null.
 * - {@link startSwift} starts it (a few seconds) and registers its stop on `t`'s teardown. Starting is
 *   meant to happen once per test file: pass the root `t`, and later calls in the same process get the
 *   same running Swift back.
 * - {@link SwiftServer.client} is an S3Client set up the way Swift 2.30's s3api needs (see
 *   {@link swiftS3Client}).
 * - Teardown stops every process swift.sh recorded and deletes the state directory. If the test process
 *   dies without its teardown (killed on a timeout), swift.sh's watchdog stops the Swift within a second
 *   or two, and the next {@link startSwift} deletes the directory it left.
 */
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants as fsc, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The start/stop script (compiled helpers live in dist/test/helpers; the script is not compiled). */
export const SWIFT_SCRIPT = fileURLToPath(new URL('../../../test/fixtures/swift/swift.sh', import.meta.url));

/** Debian's python3; only it has the swift modules (a pyenv/venv python3 on PATH does not). */
const SWIFT_PYTHON = '/usr/bin/python3';
const STATE_PREFIX = 'dvfs-swift-';
const OWNER_FILE = 'owner';
const START_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 60_000;

export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface SwiftServer {
  /** S3 endpoint, `http://127.0.0.1:PORT` (the proxy; the native Swift API is on the same port). */
  endpoint: string;
  /** s3api `location`: clients must sign with exactly this region. */
  region: string;
  /** tempauth user `test:tester` (account admin). */
  accessKeyId: string;
  secretAccessKey: string;
  /** Native Swift API: `GET` it with `X-Auth-User`/`X-Auth-Key` for a token. */
  authUrl: string;
  /** swift.sh's state directory (config, rings, data under srv/, logs under log/); deleted at stop. */
  stateDir: string;
  /** Ports by daemon: proxy, account, container, object, memcached. */
  ports: Record<string, number>;
  /** Milliseconds `swift.sh start` took. */
  startMs: number;
  /** A new S3Client for this Swift ({@link swiftS3Client}); destroyed at stop. */
  client(overrides?: Partial<S3ClientConfig>): S3Client;
  /** Last lines of one daemon's log (`proxy`, `account`, `container`, `object`, `memcached`). */
  logTail(name: string, lines?: number): string;
  /** Stops only the proxy (the endpoint then refuses connections, as in an outage). */
  proxyDown(): Promise<void>;
  /** Starts the proxy again on its port and waits until S3 answers. */
  proxyUp(): Promise<void>;
  /** Stops every Swift process and deletes the state directory; idempotent. */
  stop(): Promise<void>;
  readonly stopped: boolean;
}

/** Full path of an executable on PATH (plus the sbin/bin dirs), or null. */
function findExecutable(name: string): string | null {
  const dirs = (process.env['PATH'] ?? '').split(delimiter);
  for (const extra of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (!dirs.includes(extra)) dirs.push(extra);
  }
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsc.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

let availability: string | null | undefined;

/**
 * Why a Swift cannot be started here (a reason for a loud skip), or null when it can. The Debian packages
 * it needs are installed by test/setup.sh when it runs as root.
 */
export function swiftAvailable(): string | null {
  if (availability !== undefined) return availability;
  availability = checkAvailable();
  return availability;
}

function checkAvailable(): string | null {
  if (process.platform !== 'linux') return `Swift tests need Linux (platform is ${process.platform})`;
  if (!existsSync(SWIFT_SCRIPT)) return `${SWIFT_SCRIPT} is missing`;
  const missing: string[] = [];
  // command -> Debian package
  const commands: [string, string][] = [
    ['memcached', 'memcached'],
    ['curl', 'curl'],
    ['openssl', 'openssl'],
    ['setsid', 'util-linux'],
    ['base64', 'coreutils'],
    ['bash', 'bash'],
  ];
  for (const [cmd, pkg] of commands) {
    if (findExecutable(cmd) === null) missing.push(`${cmd} (package ${pkg})`);
  }
  if (!existsSync(SWIFT_PYTHON)) {
    missing.push(`${SWIFT_PYTHON} (package python3-swift)`);
  } else {
    const r = spawnSync(SWIFT_PYTHON, ['-c', 'import swift.common.middleware.s3api.s3api, swift.common.ring'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (r.status !== 0) missing.push(`Swift with s3api importable by ${SWIFT_PYTHON} (package python3-swift)`);
  }
  if (missing.length > 0) {
    return `cannot run OpenStack Swift: missing ${missing.join(', ')}; run test/setup.sh as root to install the Debian packages`;
  }
  return null;
}

/**
 * An S3Client configured for Swift 2.30's s3api:
 * - `requestChecksumCalculation: 'WHEN_REQUIRED'`: with the SDK default the SDK sends a streamed body as
 *   `aws-chunked` with a trailing checksum, which s3api rejects (501 NotImplemented), and fails by itself
 *   on a stream of unknown length. Swift ignores `x-amz-checksum-*` anyway.
 * - DeleteObjects gets a Content-MD5 header (and no `x-amz-checksum-*`): s3api insists on Content-MD5,
 *   which this SDK no longer sends (it sends a CRC32 instead, in every checksum mode).
 * - path-style addressing (buckets are not DNS names here), the region s3api expects, short connect and
 *   idle timeouts so that a dead Swift fails a request quickly instead of hanging it.
 */
export function swiftS3Client(
  conn: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string },
  overrides: Partial<S3ClientConfig> = {},
): S3Client {
  const client = new S3Client({
    endpoint: conn.endpoint,
    region: conn.region,
    forcePathStyle: true,
    credentials: { accessKeyId: conn.accessKeyId, secretAccessKey: conn.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: 2_000,
      socketTimeout: 30_000,
      requestTimeout: 120_000,
      throwOnRequestTimeout: true,
    },
    ...overrides,
  });
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'DeleteObjectsCommand') {
        const request = args.request as { headers?: Record<string, string>; body?: unknown };
        const headers = request.headers;
        if (headers !== undefined && (typeof request.body === 'string' || request.body instanceof Uint8Array)) {
          for (const name of Object.keys(headers)) {
            if (/^x-amz-(checksum-|sdk-checksum-algorithm$)/i.test(name)) delete headers[name];
          }
          headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
        }
      }
      return next(args);
    },
    // after the SDK's own checksum middleware (build step, normal priority), before signing (finalize)
    { step: 'build', priority: 'low', name: 'dvfsSwiftDeleteObjectsContentMd5' },
  );
  return client;
}

// ---------------------------------------------------------------------------
// state directories and their owners

/** Start time of a process (field 22 of /proc/PID/stat), or null if there is no such process. */
function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null; // fields[0] is field 3
  } catch {
    return null;
  }
}

function ownerAlive(stateDir: string): boolean {
  let owner: string;
  try {
    owner = readFileSync(join(stateDir, OWNER_FILE), 'utf8').trim();
  } catch {
    return false;
  }
  const [pid, start] = owner.split(' ');
  if (pid === undefined || !/^\d+$/.test(pid)) return false;
  return processStartTime(Number(pid)) === start;
}

function runScript(action: 'start' | 'stop' | 'proxy-down' | 'proxy-up', stateDir: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // the daemons are started with setsid and their output goes to files, so the pipes close when the
    // script exits
    // DVFS_SWIFT_OWNER_PID: swift.sh's watchdog stops this Swift if this process dies without its teardown
    const env = { ...process.env, DVFS_SWIFT_OWNER_PID: String(process.pid) };
    const child = spawn('bash', [SWIFT_SCRIPT, action, stateDir], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`swift.sh ${action} ${stateDir}: no exit within ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Stop the Swift of helper directory `base` (its swift.sh state is BASE/state) and delete `base`. */
function stopSync(base: string): void {
  spawnSync('bash', [SWIFT_SCRIPT, 'stop', join(base, 'state')], { stdio: 'ignore', timeout: STOP_TIMEOUT_MS });
  rmSync(base, { recursive: true, force: true });
  liveBaseDirs.delete(base);
}

/**
 * Stop and delete Swift state directories whose owning test process is gone (it was killed before its
 * teardown ran). Those of live processes, e.g. test files running in parallel, are left alone.
 */
export function sweepStaleSwifts(): string[] {
  const root = tmpdir();
  const swept: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch {
    return swept;
  }
  for (const name of entries) {
    if (!name.startsWith(STATE_PREFIX)) continue;
    const dir = join(root, name);
    if (ownerAlive(dir)) continue;
    // a directory being set up right now may not have its owner file yet
    try {
      if (Date.now() - statSync(dir).mtimeMs < 60_000 && !existsSync(join(dir, OWNER_FILE))) continue;
    } catch {
      continue;
    }
    stopSync(dir);
    swept.push(dir);
  }
  return swept;
}

// ---------------------------------------------------------------------------
// starting and stopping

let running: Promise<SwiftServer> | null = null;
const liveBaseDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // last resort when the teardown did not run (uncaught error, process.exit): stop synchronously
  process.on('exit', () => {
    for (const dir of liveBaseDirs) stopSync(dir);
  });
}

function parseEnv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] !== undefined && m[2] !== undefined) out[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return out;
}

async function launch(): Promise<SwiftServer> {
  sweepStaleSwifts();
  // BASE/owner names this process (for sweepStaleSwifts), BASE/state is swift.sh's. Real path: swift.sh
  // resolves it too, and the daemons' command lines name it.
  const base = realpathSync(mkdtempSync(join(tmpdir(), STATE_PREFIX)));
  writeFileSync(join(base, OWNER_FILE), `${process.pid} ${processStartTime(process.pid) ?? ''}\n`);
  const stateDir = join(base, 'state');
  liveBaseDirs.add(base);
  installExitHook();

  const t0 = performance.now();
  let result: Awaited<ReturnType<typeof runScript>>;
  try {
    result = await runScript('start', stateDir, START_TIMEOUT_MS);
  } catch (err) {
    stopSync(base);
    throw err;
  }
  const startMs = Math.round(performance.now() - t0);
  const env = parseEnv(result.stdout);
  const endpoint = env['SWIFT_S3_ENDPOINT'];
  if (result.code !== 0 || endpoint === undefined) {
    stopSync(base);
    throw new Error(`swift.sh start failed (exit ${result.code}):\n${result.stderr}${result.stdout}`);
  }
  const ports: Record<string, number> = {};
  for (const kv of (env['SWIFT_PORTS'] ?? '').split(' ')) {
    const [k, v] = kv.split('=');
    if (k !== undefined && v !== undefined) ports[k] = Number(v);
  }

  const conn = {
    endpoint,
    region: env['SWIFT_S3_REGION'] ?? 'us-east-1',
    accessKeyId: env['SWIFT_S3_ACCESS_KEY_ID'] ?? 'test:tester',
    secretAccessKey: env['SWIFT_S3_SECRET_ACCESS_KEY'] ?? 'testing',
  };
  const clients: S3Client[] = [];
  let stopping: Promise<void> | null = null;
  const server: SwiftServer = {
    ...conn,
    authUrl: env['SWIFT_AUTH_URL'] ?? `${endpoint}/auth/v1.0`,
    stateDir,
    ports,
    startMs,
    stopped: false,
    client(overrides) {
      const c = swiftS3Client(conn, overrides);
      clients.push(c);
      return c;
    },
    logTail(name, lines = 30) {
      try {
        return readFileSync(join(stateDir, 'log', `${name}.log`), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch (err) {
        return `(no log: ${String(err)})`;
      }
    },
    async proxyDown() {
      const r = await runScript('proxy-down', stateDir, STOP_TIMEOUT_MS);
      if (r.code !== 0) throw new Error(`swift.sh proxy-down failed (exit ${r.code}):\n${r.stderr}`);
    },
    async proxyUp() {
      const r = await runScript('proxy-up', stateDir, START_TIMEOUT_MS);
      if (r.code !== 0) throw new Error(`swift.sh proxy-up failed (exit ${r.code}):\n${r.stderr}`);
    },
    stop() {
      stopping ??= (async () => {
        for (const c of clients.splice(0)) c.destroy();
        const r = await runScript('stop', stateDir, STOP_TIMEOUT_MS);
        if (r.code !== 0) throw new Error(`swift.sh stop failed (exit ${r.code}); state kept in ${stateDir}:\n${r.stderr}`);
        rmSync(base, { recursive: true, force: true });
        liveBaseDirs.delete(base);
        (server as { stopped: boolean }).stopped = true;
        if (running !== null && (await running.catch(() => null)) === server) running = null;
      })();
      return stopping;
    },
  };
  return server;
}

/**
 * Start a Swift (or return the one already running in this process) and stop it when `t` ends. Pass the
 * root tap object so that one Swift serves every subtest of the file.
 */
export async function startSwift(t: TeardownHost): Promise<SwiftServer> {
  if (running !== null) {
    const current = await running.catch(() => null);
    if (current !== null && !current.stopped) return current;
  }
  const starting = launch();
  running = starting;
  starting.catch(() => {
    if (running === starting) running = null;
  });
  const server = await starting;
  t.teardown(() => server.stop());
  return server;
}
