/**
 * Entry point of a detached mount daemon (spawned by `dvfs mount`). It reads its launch request — the
 * session spec and the password or identity seed — as one JSON line on stdin (never argv), logs to the mount's log file,
 * and tells the launcher on stdout `READY <record>` or `FAILED <message>`, after which it writes nothing
 * to stdout/stderr again.
 */
import { DvfsError } from '../errors.js';
import { createLogger } from '../log.js';
import { Identity } from '../keys/identity.js';
import type { Credential } from '../keys/unlock.js';
import { decodeTreeKeys, type TreeKeys } from '../keys/tree-keys.js';
import type { KeyHandoff } from './launcher.js';
import { prepareSession, startSession, type SessionSpec } from './session.js';
import { startCpuProfiling } from '../util/cpu-profile.js';

interface LaunchRequest extends SessionSpec {
  key: KeyHandoff;
}

/** The credential handed over by the launcher; the request's copy is blanked. */
function credentialOf(request: LaunchRequest): Credential | TreeKeys {
  const key = request.key;
  request.key = { kind: 'password', password: '' };
  if (key.kind === 'keys') return decodeTreeKeys(key);
  if (key.kind === 'password') return { kind: 'password', password: Buffer.from(key.password, 'base64') };
  const seed = Buffer.from(key.seed, 'base64');
  try {
    return { kind: 'identity', identity: Identity.fromSeed(seed), name: key.name };
  } finally {
    seed.fill(0);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function tell(line: string): void {
  try {
    process.stdout.write(line + '\n');
  } catch {
    // the launcher is gone; nothing to tell
  }
}

async function main(): Promise<void> {
  const request = JSON.parse(await readStdin()) as LaunchRequest;
  const credential = credentialOf(request);
  const spec: SessionSpec = {
    repo: request.repo,
    mountpoint: request.mountpoint,
    readOnly: request.readOnly,
    allowOther: request.allowOther,
    xattr: request.xattr ?? false,
    ...(request.snapshot === undefined ? {} : { snapshot: request.snapshot }),
  };
  const prepared = await prepareSession(spec);
  const logger = createLogger({ file: prepared.run.log, name: 'dvfs-mount' });
  process.on('uncaughtException', (e) => logger.error({ err: e.message, stack: e.stack }, 'uncaught exception (daemon keeps serving)'));
  process.on('unhandledRejection', (e) => logger.error({ err: e instanceof Error ? e.message : String(e) }, 'unhandled rejection (daemon keeps serving)'));
  let session;
  try {
    session = await startSession(spec, credential, logger, prepared);
  } catch (e) {
    logger.error({ err: e instanceof Error ? e.message : String(e) }, 'mount failed');
    throw e;
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void session.shutdown(signal));
  process.on('SIGHUP', () => undefined);
  startCpuProfiling(logger);
  tell(`READY ${JSON.stringify(session.record)}`);
  process.stdout.on('error', () => undefined);
  process.stderr.on('error', () => undefined);
  await session.done;
  // Exit as soon as the log is on disk: whoever unmounted waits for this process to be gone.
  const exit = (): never => process.exit(0);
  logger.flush(exit);
  setTimeout(exit, 50);
}

main().catch((e: unknown) => {
  const failure =
    e instanceof DvfsError
      ? { code: e.code, message: e.message, path: e.path, hint: e.hint }
      : { code: 'E_IO', message: e instanceof Error ? e.message : String(e) };
  tell(`FAILED ${JSON.stringify(failure)}`);
  process.exit(1);
});
