/** Talking to a mount daemon over its control socket. */
import { connect } from 'node:net';
import { DvfsError, type DvfsErrorCode } from '../errors.js';
import type { ChangeEntry } from '../mount/versioning.js';
import type { CommitReport } from '../versioning/commit.js';
import type { CtlOp, CtlRequest } from './protocol.js';

/** Codes a daemon may send back (DvfsError codes); anything else is reported as E_IO. */
const CODES = new Set<string>(['E_USAGE', 'E_CONFIG', 'E_UNSUPPORTED', 'E_INTEGRITY', 'E_NAME', 'E_NAMETOOLONG', 'E_NOTFOUND', 'E_EXISTS', 'E_NOTDIR', 'E_ISDIR', 'E_BUSY', 'E_CONFLICT', 'E_IO']);

function refusal(reply: Record<string, unknown>, op: CtlOp, socketPath: string): DvfsError {
  const error = String(reply['error']);
  if (reply['busy'] === true) return new DvfsError('E_BUSY', error, { path: socketPath });
  const code = reply['code'];
  if (typeof code === 'string' && CODES.has(code)) {
    const path = typeof reply['path'] === 'string' ? reply['path'] : socketPath;
    return new DvfsError(code as DvfsErrorCode, error, { path, ...(typeof reply['hint'] === 'string' ? { hint: reply['hint'] } : {}) });
  }
  return new DvfsError('E_IO', `the mount daemon refused '${op}': ${error}`, { path: socketPath });
}

export function ctlRequest(socketPath: string, op: CtlOp, timeoutMs = 30_000, extra: Omit<CtlRequest, 'op'> = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffered = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DvfsError('E_IO', `the mount daemon did not answer '${op}' within ${timeoutMs / 1000} s`, { path: socketPath }));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify({ ...extra, op }) + '\n'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      let reply: Record<string, unknown>;
      try {
        reply = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
      } catch {
        return reject(new DvfsError('E_IO', 'the mount daemon sent a malformed reply', { path: socketPath }));
      }
      if (reply['ok'] !== true) return reject(refusal(reply, op, socketPath));
      resolve(reply);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new DvfsError('E_IO', `cannot reach the mount daemon (${e.code ?? e.message})`, { path: socketPath }));
    });
  });
}

export interface ChangesReply {
  session: string;
  /** The snapshot the changes are relative to (null: none yet). */
  baseSnapshot: string | null;
  counts: { added: number; changed: number; renamed: number; removed: number; dirty: number };
  entries: ChangeEntry[];
}

/** The uncommitted changes of a mount's session (plaintext paths). */
export async function ctlChanges(socketPath: string, timeoutMs = 120_000): Promise<ChangesReply> {
  const r = await ctlRequest(socketPath, 'changes', timeoutMs);
  if (!isChangesReply(r)) throw new DvfsError('E_IO', "the mount daemon sent a malformed 'changes' reply", { path: socketPath });
  return r;
}

function isChangesReply(r: Record<string, unknown>): r is Record<string, unknown> & ChangesReply {
  const counts = r['counts'];
  return (
    typeof r['session'] === 'string' &&
    (r['baseSnapshot'] === null || typeof r['baseSnapshot'] === 'string') &&
    Array.isArray(r['entries']) &&
    typeof counts === 'object' &&
    counts !== null &&
    ['added', 'changed', 'renamed', 'removed', 'dirty'].every((k) => typeof (counts as Record<string, unknown>)[k] === 'number')
  );
}

const COMMIT_REPORT_COUNTS = [
  'added', 'changed', 'renamed', 'removed', 'files', 'bytes', 'filesHashed', 'bytesHashed', 'filesRehashed', 'bytesRehashed',
  'objectsAdded', 'objectsLinked', 'bytesStored', 'trees', 'leftOpen', 'skipped', 'seconds',
] as const;

function isCommitReport(r: Record<string, unknown>): r is Record<string, unknown> & CommitReport {
  const nullOrString = (k: string): boolean => r[k] === null || typeof r[k] === 'string';
  return nullOrString('snapshot') && nullOrString('parent') && nullOrString('session') && typeof r['nothingToCommit'] === 'boolean' && COMMIT_REPORT_COUNTS.every((k) => typeof r[k] === 'number');
}

/** Asks a mount daemon to commit its session; its report. */
export async function ctlCommit(socketPath: string, timeoutMs: number, extra: Omit<CtlRequest, 'op'>): Promise<CommitReport> {
  const r = await ctlRequest(socketPath, 'commit', timeoutMs, extra);
  delete r['ok'];
  if (!isCommitReport(r)) throw new DvfsError('E_IO', "the mount daemon sent a malformed 'commit' reply", { path: socketPath });
  return r;
}
