/**
 * Remote storage backends: a flat key -> bytes store (a directory, an S3 bucket), with no cryptography and no
 * knowledge of the remote layout (FORMAT.md): the layers above (pack.ts, blob.ts, repository.ts) decide what
 * the keys and bytes are.
 *
 * Keys are `/`-separated relative names ("data/ab/cd…", "index/…", "config"). Every implementation:
 *
 * - put() makes a whole object appear at once or not at all (never a partial object under its key), and
 *   replaces an existing one;
 * - get()/getRange() read it back; head() says whether it exists and its size; list() yields every key under a
 *   prefix; delete() removes keys (missing ones are not an error);
 * - putLarge() is the path for big bodies: S3 uploads them in parallel parts (multipart upload); a backend
 *   without parts streams them like put();
 * - reports failures as the typed errors below, so callers (and the retry wrapper) can tell "not there" from
 *   "try again" from "give up".
 *
 * Bodies are bytes or a stream. A stream given as a function (StreamFactory) can be opened again, so a failed
 * upload of it can be retried; a bare AsyncIterable/Readable can be consumed only once and is never retried.
 */
import { setTimeout as sleepMs } from 'node:timers/promises';
import { DvfsError, type DvfsErrorCode, type DvfsErrorOptions } from '../errors.js';

/** Opens a fresh stream of the body each time it is called (so an upload can be retried). */
export type StreamFactory = () => AsyncIterable<Uint8Array>;
/** An upload body: bytes, a reopenable stream, or a one-shot stream (e.g. a Readable). */
export type Body = Uint8Array | StreamFactory | AsyncIterable<Uint8Array>;

export interface ObjectInfo {
  /** The key relative to the backend's root. */
  key: string;
  size: number;
}

/** See Backend.putLarge(). */
export type PartSent = (part: Uint8Array) => void;

export interface Backend {
  /** Where the data lives, for messages: the remote URL (never with secrets). */
  readonly location: string;
  /** Stores `body` (exactly `size` bytes) under `key`, atomically, replacing what was there. */
  put(key: string, body: Body, size: number): Promise<void>;
  /**
   * Like put(), for large bodies: uploaded in (parallel) parts where the backend has them. `sent`, when given,
   * is called with each part the backend is done with for good (uploaded), so that the body's producer can
   * reuse its buffer; a backend that does not cut parts never calls it.
   */
  putLarge(key: string, body: Body, size: number, sent?: PartSent): Promise<void>;
  /** The whole object (NotFoundError when missing). */
  get(key: string): Promise<Buffer>;
  /**
   * The bytes [offset, offset + length) of an object, fewer only when the object ends first (an offset at or
   * past the end gives an empty buffer). NotFoundError when the object is missing.
   */
  getRange(key: string, offset: number, length: number): Promise<Buffer>;
  /** Size of an object, or null when there is none. */
  head(key: string): Promise<number | null>;
  /** Every key starting with `prefix` (a plain string prefix, not only a directory), in no promised order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deletes the keys; keys that do not exist are skipped silently. */
  delete(keys: readonly string[]): Promise<void>;
  /** Releases connections. The backend must not be used afterwards. */
  close(): Promise<void>;
}

// ------------------------------------------------------------------------------------------------ errors

export type BackendErrorKind = 'notfound' | 'transient' | 'permanent';

export interface BackendErrorOptions extends DvfsErrorOptions {
  /** The key concerned, when there is one. */
  key?: string;
  /** HTTP status, when the failure came from a server. */
  status?: number;
}

/** A backend operation failed; `kind` says whether it is worth retrying. */
export abstract class BackendError extends DvfsError {
  abstract readonly kind: BackendErrorKind;
  readonly key: string | undefined;
  readonly status: number | undefined;

  constructor(code: DvfsErrorCode, message: string, options: BackendErrorOptions = {}) {
    super(code, message, options);
    this.key = options.key;
    this.status = options.status;
  }
}

/** The key does not exist (an answer, not a failure: never retried). */
export class NotFoundError extends BackendError {
  readonly kind = 'notfound';
  constructor(message: string, options: BackendErrorOptions = {}) {
    super('E_NOTFOUND', message, options);
    this.name = 'NotFoundError';
  }
}

/** Might work if tried again: 5xx, throttling, connection resets and refusals, timeouts. */
export class TransientError extends BackendError {
  readonly kind = 'transient';
  /** Set when a retry loop already gave up on it: an outer retry loop rethrows it at once. */
  readonly exhausted: boolean;
  constructor(message: string, options: BackendErrorOptions & { exhausted?: boolean } = {}) {
    super('E_IO', message, options);
    this.name = 'TransientError';
    this.exhausted = options.exhausted ?? false;
  }
}

/** Will fail again: bad credentials, missing bucket, refused request, full disk, a body of the wrong size. */
export class PermanentError extends BackendError {
  readonly kind = 'permanent';
  constructor(message: string, options: BackendErrorOptions & { code?: DvfsErrorCode } = {}) {
    super(options.code ?? 'E_IO', message, options);
    this.name = 'PermanentError';
  }
}

export function isBackendError(e: unknown): e is BackendError {
  return e instanceof BackendError;
}

export function isNotFound(e: unknown): e is NotFoundError {
  return e instanceof NotFoundError;
}

export function isTransient(e: unknown): e is TransientError {
  return e instanceof TransientError;
}

// ------------------------------------------------------------------------------------------------ keys

const KEY_MAX_BYTES = 1024;

/**
 * Checks a backend key: non-empty, at most 1024 UTF-8 bytes (the S3 limit), `/`-separated segments that are
 * non-empty and not `.` or `..`, no NUL and no backslash. Returns the key; throws E_USAGE naming the problem.
 */
export function checkKey(key: string): string {
  const bad = (why: string): never => {
    throw new DvfsError('E_USAGE', `invalid backend key ${JSON.stringify(key.slice(0, 120))}: ${why}`);
  };
  if (typeof key !== 'string' || key.length === 0) bad('empty');
  if (Buffer.byteLength(key, 'utf8') > KEY_MAX_BYTES) bad(`longer than ${KEY_MAX_BYTES} bytes`);
  if (key.includes('\0')) bad('contains NUL');
  if (key.includes('\\')) bad('contains a backslash');
  for (const seg of key.split('/')) {
    if (seg === '') bad('empty path segment (leading, trailing or doubled "/")');
    if (seg === '.' || seg === '..') bad(`"${seg}" segment`);
  }
  return key;
}

/** Checks a getRange() request (E_USAGE for a negative or fractional offset or length). */
export function checkRange(key: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new PermanentError(`GET ${key}: invalid range offset ${offset} length ${length}`, { code: 'E_USAGE', key });
  }
}

// ------------------------------------------------------------------------------------------------ bodies

/** true when a failed upload of `body` can be started again. */
export function isReplayable(body: Body): boolean {
  return body instanceof Uint8Array || typeof body === 'function';
}

/** The chunks of a body (opening a StreamFactory). */
export function bodyChunks(body: Body): AsyncIterable<Uint8Array> {
  if (body instanceof Uint8Array) {
    return (async function* () {
      yield body;
    })();
  }
  if (typeof body === 'function') return body();
  return body;
}

/** Collects a body into one buffer, refusing more than `size` bytes and checking it is exactly `size`. */
export async function collectBody(body: Body, size: number, where: string): Promise<Buffer> {
  if (body instanceof Uint8Array) {
    if (body.length !== size) throw wrongSize(where, size, body.length);
    return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.length);
  }
  const out = Buffer.allocUnsafe(size);
  let n = 0;
  for await (const chunk of bodyChunks(body)) {
    if (n + chunk.length > size) throw wrongSize(where, size, n + chunk.length, true);
    out.set(chunk, n);
    n += chunk.length;
  }
  if (n !== size) throw wrongSize(where, size, n);
  return out;
}

/** Re-cuts a stream into buffers of exactly `size` bytes (the last one shorter, never empty). */
export function rechunk(chunks: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  return cut(chunks, size, false);
}

/**
 * Upload parts from a stream: like rechunk(), except that bytes of a chunk that start on a part boundary are
 * not copied: a view of `size` bytes of it is a part, and a rest of `size` to `2 size` bytes is a part as it
 * is. Every part but the last has `size` to `2 size` bytes.
 */
export function partsOf(chunks: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  return cut(chunks, size, true);
}

async function* cut(chunks: AsyncIterable<Uint8Array>, size: number, views: boolean): AsyncGenerator<Uint8Array> {
  let buf: Buffer | null = null;
  let n = 0;
  for await (const chunk of chunks) {
    let off = 0;
    while (off < chunk.length) {
      if (views && n === 0 && chunk.length - off >= size) {
        const whole = chunk.length - off < 2 * size;
        const end = whole ? chunk.length : off + size;
        yield off === 0 && whole ? chunk : chunk.subarray(off, end);
        off = end;
        continue;
      }
      buf ??= Buffer.allocUnsafe(size);
      const take = Math.min(size - n, chunk.length - off);
      buf.set(chunk.subarray(off, off + take), n);
      n += take;
      off += take;
      if (n === size) {
        yield buf;
        buf = null;
        n = 0;
      }
    }
  }
  if (buf !== null && n > 0) yield buf.subarray(0, n);
}

export function wrongSize(where: string, expected: number, got: number, atLeast = false): PermanentError {
  return new PermanentError(`upload of ${where}: the body has ${atLeast ? 'at least ' : ''}${got} bytes, not the ${expected} announced`, {
    code: 'E_USAGE',
  });
}

// ------------------------------------------------------------------------------------------------ retry

export interface RetryPolicy {
  /** Attempts in all (1 = no retry). */
  attempts: number;
  /** Delay scale before the first retry; doubles with every further one. */
  baseDelayMs: number;
  /** Cap of the (pre-jitter) delay. */
  maxDelayMs: number;
  /** Uniform [0, 1) source for the jitter (tests make it deterministic). */
  random?: () => number;
  /** How to wait (tests make it instant). */
  sleep?: (ms: number) => Promise<void>;
  /** Called before each wait. */
  onRetry?: (info: { what: string; attempt: number; delayMs: number; error: TransientError }) => void;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 250, maxDelayMs: 15_000 };

/**
 * Delay before retry number `retry` (1 for the first): half of min(max, base * 2^(retry-1)) plus a uniform
 * random part of the other half ("equal jitter"), so clients that failed together spread out but never hammer.
 */
export function backoffDelay(retry: number, policy: RetryPolicy): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, retry - 1));
  const r = (policy.random ?? Math.random)();
  return Math.round(ceiling / 2 + (ceiling / 2) * r);
}

/**
 * Runs `fn` until it succeeds, retrying only TransientErrors, at most `policy.attempts` times in all, with
 * jittered exponential backoff. Any other error is rethrown at once. When the attempts run out, the last
 * TransientError is rethrown with "(gave up after N attempts)" appended and marked `exhausted`, so that
 * nested retry loops (a multipart part inside a retried upload) do not multiply their attempts.
 */
export async function withRetry<T>(what: string, fn: (attempt: number) => Promise<T>, policy: RetryPolicy = DEFAULT_RETRY): Promise<T> {
  const attempts = Math.max(1, Math.floor(policy.attempts));
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (!(e instanceof TransientError) || e.exhausted) throw e;
      if (attempt >= attempts) {
        if (attempts === 1) throw e;
        throw new TransientError(`${e.message} (gave up after ${attempts} attempts)`, {
          exhausted: true,
          cause: e,
          ...(e.key === undefined ? {} : { key: e.key }),
          ...(e.status === undefined ? {} : { status: e.status }),
          ...(e.path === undefined ? {} : { path: e.path }),
          ...(e.hint === undefined ? {} : { hint: e.hint }),
        });
      }
      const delayMs = backoffDelay(attempt, policy);
      policy.onRetry?.({ what, attempt, delayMs, error: e });
      await (policy.sleep ?? ((ms: number) => sleepMs(ms)))(delayMs);
    }
  }
}

/**
 * A backend whose operations are retried under a RetryPolicy. Uploads of one-shot streams are attempted once
 * (they cannot be replayed); a listing that fails is restarted from the beginning.
 */
export class RetryingBackend implements Backend {
  readonly location: string;

  constructor(
    readonly inner: Backend,
    readonly policy: RetryPolicy = DEFAULT_RETRY,
  ) {
    this.location = inner.location;
  }

  put(key: string, body: Body, size: number): Promise<void> {
    if (!isReplayable(body)) return this.inner.put(key, body, size);
    return withRetry(`PUT ${key}`, () => this.inner.put(key, body, size), this.policy);
  }

  putLarge(key: string, body: Body, size: number, sent?: PartSent): Promise<void> {
    if (!isReplayable(body)) return this.inner.putLarge(key, body, size, sent);
    return withRetry(`PUT ${key}`, () => this.inner.putLarge(key, body, size, sent), this.policy);
  }

  get(key: string): Promise<Buffer> {
    return withRetry(`GET ${key}`, () => this.inner.get(key), this.policy);
  }

  getRange(key: string, offset: number, length: number): Promise<Buffer> {
    return withRetry(`GET ${key} [${offset}+${length}]`, () => this.inner.getRange(key, offset, length), this.policy);
  }

  head(key: string): Promise<number | null> {
    return withRetry(`HEAD ${key}`, () => this.inner.head(key), this.policy);
  }

  /** Collects the whole listing (retrying it from the start on a transient failure), then yields it. */
  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    const items = await withRetry(
      `LIST ${prefix}`,
      async () => {
        const got: ObjectInfo[] = [];
        for await (const item of this.inner.list(prefix)) got.push(item);
        return got;
      },
      this.policy,
    );
    yield* items;
  }

  delete(keys: readonly string[]): Promise<void> {
    return withRetry(`DELETE ${keys.length} key(s)`, () => this.inner.delete(keys), this.policy);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
