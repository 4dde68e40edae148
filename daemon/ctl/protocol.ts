/**
 * The control-socket protocol: one JSON object per line each way. Requests name an `op`; replies carry
 * `ok` and either the result or an `error` string. Anything malformed gets an error reply, never a crash:
 * field types are checked here, and a field the op does not take is refused (a typo must not be ignored —
 * `{"op":"commit","mesage":...}` would otherwise commit without the message).
 */
import { checkProvenance, SchemaError, type Provenance } from '../store/manifest-schema.js';

export type CtlOp = 'status' | 'flush' | 'unmount' | 'commit' | 'changes';

export interface CtlRequest {
  op: CtlOp;
  /** unmount: detach even while files are open (their processes then get ENOTCONN). commit: see CommitRequest.force. */
  force?: boolean;
  /** commit only. */
  message?: string;
  /** commit only. */
  author?: string;
  /** commit only: checked like a snapshot's provenance. */
  provenance?: Provenance;
}

/**
 * `code` / `path` / `hint`: a DvfsError's, so the client can raise the same error (a commit conflict stays E_CONFLICT).
 * `busy`: see CtlBusyError.
 */
export type CtlReply = { ok: true; [key: string]: unknown } | { ok: false; error: string; busy?: boolean; code?: string; path?: string; hint?: string };

/** A handler's refusal because the mount is in use (the reply carries `busy: true`). */
export class CtlBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CtlBusyError';
  }
}

/** A request line is at most this long; longer input is refused and the connection closed. */
export const MAX_LINE = 64 * 1024;

/** The fields each op takes besides `op`. */
const FIELDS: Readonly<Record<CtlOp, readonly string[]>> = {
  status: [],
  flush: [],
  changes: [],
  unmount: ['force'],
  commit: ['message', 'author', 'force', 'provenance'],
};

const OPS = Object.keys(FIELDS) as CtlOp[];

/** Longest commit message / author accepted (the snapshot schema's own limits are checked by commit). */
const MAX_TEXT = 16 * 1024;

function text(v: unknown, name: string): string | { error: string } {
  if (typeof v !== 'string') return { error: `${name} must be a string` };
  if (v.length > MAX_TEXT) return { error: `${name} is longer than ${MAX_TEXT} characters` };
  if (v.includes('\0')) return { error: `${name} must not contain NUL` };
  return v;
}

export function parseRequest(line: string): CtlRequest | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: 'request is not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'request must be a JSON object' };
  const fields = value as Record<string, unknown>;
  const op = fields['op'];
  if (typeof op !== 'string' || !OPS.includes(op as CtlOp)) return { error: `unknown op ${JSON.stringify(op)}; known: ${OPS.join(', ')}` };
  const known = FIELDS[op as CtlOp];
  for (const key of Object.keys(fields)) {
    if (key !== 'op' && !known.includes(key)) return { error: `op ${op} takes no field ${JSON.stringify(key.slice(0, 64))}${known.length ? `; it takes: ${known.join(', ')}` : ''}` };
  }
  const request: CtlRequest = { op: op as CtlOp };
  const force = fields['force'];
  if (force !== undefined) {
    if (typeof force !== 'boolean') return { error: 'force must be a boolean' };
    request.force = force;
  }
  for (const name of ['message', 'author'] as const) {
    if (fields[name] === undefined) continue;
    const t = text(fields[name], name);
    if (typeof t !== 'string') return t;
    request[name] = t;
  }
  if (fields['provenance'] !== undefined) {
    try {
      request.provenance = checkProvenance(fields['provenance']);
    } catch (e) {
      if (e instanceof SchemaError) return { error: `bad provenance: ${e.message}` };
      throw e;
    }
  }
  return request;
}
