/**
 * The control-socket protocol: one JSON object per line each way. Requests name an `op`; replies carry
 * `ok` and either the result or an `error` string. Anything malformed gets an error reply, never a crash.
 */
export type CtlOp = 'status' | 'flush' | 'unmount';

export interface CtlRequest {
  op: CtlOp;
}

export type CtlReply = { ok: true; [key: string]: unknown } | { ok: false; error: string };

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
  return { op: op as CtlOp };
}
