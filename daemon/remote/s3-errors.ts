/**
 * Maps what @aws-sdk/client-s3 throws to the backend's typed errors. Works on the shape of the error (name,
 * code, $metadata.httpStatusCode, $retryable), so it needs no SDK import and tests can feed it plain objects.
 *
 *   404 / NoSuchKey / NotFound                               -> NotFoundError
 *   NoSuchBucket, NoSuchUpload                               -> PermanentError (with a hint)
 *   InvalidPart (completing a multipart upload)              -> TransientError (upload it all again)
 *   408, 429, 5xx except 501; RequestTimeout, SlowDown,
 *   Throttling*, InternalError, ServiceUnavailable; $retryable -> TransientError
 *   connection errors: ECONNRESET, ECONNREFUSED, ETIMEDOUT, EPIPE, EAI_AGAIN, socket hang up, TimeoutError …
 *                                                            -> TransientError
 *   a 2xx answer whose XML does not parse (cut off, garbage)  -> TransientError (message on one line)
 *   403 (AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId …), other 4xx, 501, ENOTFOUND (DNS),
 *   anything unknown                                         -> PermanentError
 */
import { BackendError, NotFoundError, PermanentError, TransientError, type BackendErrorOptions } from './backend.js';

const TRANSIENT_NAMES = new Set([
  'RequestTimeout',
  'RequestTimeoutException',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'TransactionInProgressException',
  'RequestLimitExceeded',
  'BandwidthLimitExceeded',
  'LimitExceededException',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
  'PriorRequestNotComplete',
  'EC2ThrottledException',
]);

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENOBUFS',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

const CREDENTIAL_NAMES = new Set(['AccessDenied', 'SignatureDoesNotMatch', 'InvalidAccessKeyId', 'InvalidToken', 'ExpiredToken', 'AuthorizationHeaderMalformed']);

interface ErrorShape {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  $retryable?: unknown;
  $response?: { statusCode?: unknown };
  cause?: unknown;
}

function shape(e: unknown): ErrorShape {
  return typeof e === 'object' && e !== null ? (e as ErrorShape) : {};
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** HTTP status of an SDK error, when it has one. */
export function httpStatusOf(e: unknown): number | undefined {
  const s = shape(e);
  const st = s.$metadata?.httpStatusCode ?? s.$response?.statusCode;
  return typeof st === 'number' && Number.isInteger(st) && st > 0 ? st : undefined;
}

/** A network-level error code found on the error or its causes. */
function networkCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    const s = shape(cur);
    const code = str(s.code);
    if (code !== undefined && (TRANSIENT_CODES.has(code) || code === 'ENOTFOUND')) return code;
    if (typeof s.message === 'string' && /socket hang up/i.test(s.message)) return 'ECONNRESET';
    cur = s.cause;
  }
  return undefined;
}

export interface S3ErrorContext {
  /** "GET", "PUT", "HEAD", "LIST", "DELETE", "MULTIPART" … */
  op: string;
  /** The backend key (relative to the remote's prefix), when there is one. */
  key?: string;
  /** Where keys live, for the message: s3://BUCKET[/PREFIX] (no query). */
  location: string;
}

/** Maps one error thrown by an S3 call to a BackendError (BackendErrors pass through unchanged). */
export function mapS3Error(e: unknown, ctx: S3ErrorContext): BackendError {
  if (e instanceof BackendError) return e;
  const s = shape(e);
  const status = httpStatusOf(e);
  const name = str(s.name) ?? str(s.code) ?? 'Error';
  // The SDK's deserialization failures span lines and point at a field of the error object: one line, plainly.
  const raw = str(s.message) ?? String(e);
  const garbled = /Deserialization error/i.test(raw) || (status !== undefined && status >= 200 && status < 300);
  const message = raw
    .replace(/\s*Deserialization error: to see the raw response[^]*$/i, ' (the answer is not valid S3 XML)')
    .replace(/\s+/g, ' ')
    .trim();
  const where = `${ctx.op} ${ctx.location}${ctx.key === undefined ? '' : `/${ctx.key}`}`;
  const text = `${where}: ${status === undefined ? '' : `${status} `}${name}${message === name ? '' : `: ${message}`}`;
  const opts: BackendErrorOptions = { cause: e, ...(ctx.key === undefined ? {} : { key: ctx.key }), ...(status === undefined ? {} : { status }) };

  if (name === 'NoSuchBucket') return new PermanentError(text, { ...opts, code: 'E_NOTFOUND', hint: 'create the bucket (container) first, or fix the bucket name' });
  if (name === 'NoSuchUpload') return new PermanentError(text, { ...opts, hint: 'the multipart upload was aborted or expired; upload again' });
  // Completing a multipart upload whose parts the server stored differently than it answered (a part's ETag
  // came back wrong): sending the whole upload again can work, so a retry loop with a replayable body does.
  if (name === 'InvalidPart') return new TransientError(text, { ...opts, hint: 'a part was answered with an ETag that does not match what the server stored; the upload is sent again' });
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return new NotFoundError(`${where}: no such object`, opts);
  if (CREDENTIAL_NAMES.has(name) || status === 401 || status === 403) {
    return new PermanentError(text, { ...opts, code: 'E_PASSWORD', hint: 'check the S3 credentials and region (on Swift the region must equal s3api location)' });
  }
  if (name === 'RequestTimeTooSkewed') return new PermanentError(text, { ...opts, hint: "the local clock is off; fix it (NTP)" });
  // A success status whose body does not parse (cut off, garbage): a proxy or server hiccup, worth retrying.
  if (TRANSIENT_NAMES.has(name) || s.$retryable !== undefined || garbled) return new TransientError(text, opts);
  if (status !== undefined) {
    if (status === 408 || status === 429 || (status >= 500 && status !== 501)) return new TransientError(text, opts);
    return new PermanentError(text, opts);
  }
  const code = networkCode(e);
  if (code === 'ENOTFOUND') return new PermanentError(text, { ...opts, hint: 'the endpoint host name does not resolve; check endpoint=' });
  if (code !== undefined) {
    const hint = code === 'ECONNREFUSED' ? 'is the S3 server running at the endpoint?' : undefined;
    return new TransientError(text, { ...opts, ...(hint === undefined ? {} : { hint }) });
  }
  return new PermanentError(text, opts);
}
