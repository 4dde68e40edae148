/**
 * The control-socket protocol: one JSON object per line each way. Requests name an `op`; replies carry
 * `ok` and either the result or an `error` string. Anything malformed gets an error reply, never a crash.
 */
export type CtlOp = 'status' | 'flush' | 'unmount';

export interface CtlRequest {
  op: CtlOp;
  /** unmount only: detach even while files are open (their processes then get ENOTCONN). */
  force?: boolean;
}

export type CtlReply = { ok: true; [key: string]: unknown } | { ok: false; error: string; busy?: boolean };

/** A handler's refusal because the mount is in use (the reply carries `busy: true`). */
export class CtlBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CtlBusyError';
  }
}

/** A request line is at most this long; longer input is refused and the connection closed. */
export const MAX_LINE = 64 * 1024;

const OPS: readonly CtlOp[] = ['status', 'flush', 'unmount'];

export function parseRequest(line: string): CtlRequest | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: 'request is not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'request must be a JSON object' };
  const op = (value as Record<string, unknown>)['op'];
  if (typeof op !== 'string' || !OPS.includes(op as CtlOp)) return { error: `unknown op ${JSON.stringify(op)}; known: ${OPS.join(', ')}` };
  const force = (value as Record<string, unknown>)['force'];
  if (force !== undefined && typeof force !== 'boolean') return { error: 'force must be a boolean' };
  return force === undefined ? { op: op as CtlOp } : { op: op as CtlOp, force };
}
