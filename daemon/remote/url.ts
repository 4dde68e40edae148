/**
 * Remote URLs.
 *
 *   file:///ABSOLUTE/PATH                 a directory (a bare absolute path "/ABSOLUTE/PATH" means the same)
 *   s3://BUCKET[/PREFIX][?PARAMS]         an S3 bucket, optionally under a key prefix
 *
 * S3 parameters (each at most once):
 *
 *   endpoint=http(s)://HOST[:PORT]   the S3 server (default: AWS, from the region); no path, query or credentials
 *   region=R                         SigV4 region (default: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1);
 *                                    on Swift it must equal s3api's `location`
 *   profile=NAME                     section of the credentials file (default: AWS_PROFILE, else "default")
 *   credentials=/ABSOLUTE/PATH       a credentials file (INI, like ~/.aws/credentials; must be mode 0600)
 *   connections=N                    parallel requests (1..64)
 *   partSize=N[KiB|MiB|GiB]          multipart part size (5 MiB..5 GiB)
 *   multipartCutoff=N[KiB|MiB|GiB]   bodies larger than this go up as multipart uploads (5 MiB..5 GiB,
 *                                    default 64 MiB)
 *   timeout=SECONDS                  give up on a request whose connection stays idle this long (1..3600,
 *                                    default 120); the request is then retried like any transient failure
 *
 * Secrets never go in the URL: "s3://KEY:SECRET@bucket" is refused. Every error names what is wrong and how
 * to write it instead (RemoteUrlError, E_USAGE).
 */
import { isAbsolute, normalize } from 'node:path';
import { DvfsError } from '../errors.js';
import { parseByteSize } from '../util/size.js';

export interface FileRemoteUrl {
  scheme: 'file';
  /** Absolute, normalized path of the directory. */
  path: string;
}

export interface S3RemoteUrl {
  scheme: 's3';
  bucket: string;
  /** Key prefix without leading or trailing "/" ("" for the bucket's root). */
  prefix: string;
  endpoint?: string;
  region?: string;
  profile?: string;
  credentials?: string;
  connections?: number;
  partSize?: number;
  /** Bodies larger than this are multipart uploads. */
  multipartCutoff?: number;
  /** Idle timeout of one request, in seconds. */
  timeout?: number;
}

export type RemoteUrl = FileRemoteUrl | S3RemoteUrl;

export const S3_PARAMS = ['endpoint', 'region', 'profile', 'credentials', 'connections', 'partSize', 'multipartCutoff', 'timeout'] as const;
export const MAX_TIMEOUT_SECONDS = 3600;
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
export const MAX_CONNECTIONS = 64;

const FORM = 'file:///ABSOLUTE/PATH or s3://BUCKET[/PREFIX]?endpoint=http://HOST:PORT&region=REGION';

export class RemoteUrlError extends DvfsError {
  readonly url: string;
  constructor(url: string, why: string, hint?: string) {
    super('E_USAGE', `remote URL ${JSON.stringify(url)}: ${why}`, hint === undefined ? {} : { hint });
    this.name = 'RemoteUrlError';
    this.url = url;
  }
}

function decode(url: string, part: string, what: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new RemoteUrlError(url, `bad percent-encoding in the ${what}`, 'write "%" as %25');
  }
}

function parseFile(url: string): FileRemoteUrl {
  const rest = url.slice('file://'.length);
  if (rest.includes('?')) throw new RemoteUrlError(url, 'file URLs take no query ("?…")', 'percent-encode a "?" in the path as %3F');
  if (rest.includes('#')) throw new RemoteUrlError(url, 'file URLs take no fragment ("#…")', 'percent-encode a "#" in the path as %23');
  const slash = rest.indexOf('/');
  const host = slash < 0 ? rest : rest.slice(0, slash);
  if (host !== '' && host !== 'localhost') {
    throw new RemoteUrlError(url, `file URL names host "${host}"; only local paths are supported`, 'write file:///ABSOLUTE/PATH (three slashes)');
  }
  if (slash < 0) throw new RemoteUrlError(url, 'file URL has no path', 'write file:///ABSOLUTE/PATH');
  return filePath(url, decode(url, rest.slice(slash), 'path'));
}

function filePath(url: string, path: string): FileRemoteUrl {
  if (path.includes('\0')) throw new RemoteUrlError(url, 'path contains NUL');
  if (!isAbsolute(path)) throw new RemoteUrlError(url, 'path is not absolute', 'write file:///ABSOLUTE/PATH');
  let p = normalize(path);
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  if (p === '/') throw new RemoteUrlError(url, 'the filesystem root cannot be a remote', 'name a directory: file:///srv/dvfs-remote');
  return { scheme: 'file', path: p };
}

const BUCKET_RE = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;
const REGION_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
const PROFILE_RE = /^[A-Za-z0-9._+@-]{1,64}$/;

function parseSize(url: string, name: string, value: string): number {
  const n = parseByteSize(value);
  if (n === null) throw new RemoteUrlError(url, `${name}=${value} is not a size`, `write e.g. ${name}=16MiB`);
  return n;
}

function parseS3(url: string): S3RemoteUrl {
  const m = /^s3:\/\/([^/?#]*)([^?#]*)(\?[^#]*)?(#.*)?$/.exec(url);
  if (m === null) throw new RemoteUrlError(url, 'malformed', `write ${FORM}`);
  const authority = m[1] ?? '';
  const pathPart = m[2] ?? '';
  const query = m[3];
  if (m[4] !== undefined) throw new RemoteUrlError(url, 'S3 URLs take no fragment ("#…")');
  if (authority.includes('@')) {
    throw new RemoteUrlError(
      url,
      'credentials do not go in the URL',
      'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or use a 0600 credentials file (credentials=/PATH)',
    );
  }
  if (authority === '') throw new RemoteUrlError(url, 'no bucket name after s3://', `write ${FORM}`);
  if (authority.includes(':')) {
    throw new RemoteUrlError(url, `"${authority}" looks like HOST:PORT, but s3:// takes a bucket name`, 'put the server in ?endpoint=http://HOST:PORT');
  }
  const bucket = decode(url, authority, 'bucket name');
  if (!BUCKET_RE.test(bucket) || bucket.includes('..')) {
    throw new RemoteUrlError(
      url,
      `invalid bucket name "${bucket}"`,
      'bucket names are 3..63 characters: lowercase letters, digits, ".", "-", "_", starting and ending with a letter or digit',
    );
  }
  let prefix = '';
  if (pathPart !== '' && pathPart !== '/') {
    const raw = pathPart.replace(/^\//, '').replace(/\/$/, '');
    const segs = raw.split('/').map((s) => decode(url, s, 'prefix'));
    for (const s of segs) {
      if (s === '') throw new RemoteUrlError(url, 'empty segment ("//") in the prefix');
      if (s === '.' || s === '..') throw new RemoteUrlError(url, `"${s}" segment in the prefix`);
      if (s.includes('\0') || s.includes('/')) throw new RemoteUrlError(url, 'prefix segment contains NUL or an encoded "/"');
    }
    prefix = segs.join('/');
    if (Buffer.byteLength(prefix, 'utf8') > 512) throw new RemoteUrlError(url, 'prefix longer than 512 bytes');
  }
  const out: S3RemoteUrl = { scheme: 's3', bucket, prefix };
  if (query === undefined || query === '?') return out;
  const seen = new Set<string>();
  for (const pair of query.slice(1).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decode(url, eq < 0 ? pair : pair.slice(0, eq), 'query');
    const value = eq < 0 ? '' : decode(url, pair.slice(eq + 1), 'query');
    if (!(S3_PARAMS as readonly string[]).includes(name)) {
      throw new RemoteUrlError(url, `unknown parameter "${name}"`, `known parameters: ${S3_PARAMS.join(', ')}`);
    }
    if (seen.has(name)) throw new RemoteUrlError(url, `parameter "${name}" given twice`);
    seen.add(name);
    if (value === '') throw new RemoteUrlError(url, `parameter "${name}" has no value`, `write ${name}=VALUE`);
    switch (name as (typeof S3_PARAMS)[number]) {
      case 'endpoint':
        out.endpoint = parseEndpoint(url, value);
        break;
      case 'region':
        if (!REGION_RE.test(value)) throw new RemoteUrlError(url, `invalid region "${value}"`, 'regions are lowercase letters, digits and "-" (e.g. us-east-1)');
        out.region = value;
        break;
      case 'profile':
        if (!PROFILE_RE.test(value)) throw new RemoteUrlError(url, `invalid profile name "${value}"`);
        out.profile = value;
        break;
      case 'credentials':
        if (!isAbsolute(value)) throw new RemoteUrlError(url, `credentials=${value} is not an absolute path`);
        out.credentials = normalize(value);
        break;
      case 'connections': {
        const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
        if (!Number.isSafeInteger(n) || n < 1 || n > MAX_CONNECTIONS) throw new RemoteUrlError(url, `connections=${value} is not an integer in 1..${MAX_CONNECTIONS}`);
        out.connections = n;
        break;
      }
      case 'partSize': {
        const n = parseSize(url, 'partSize', value);
        if (n < MIN_PART_SIZE || n > MAX_PART_SIZE) throw new RemoteUrlError(url, `partSize=${value} is outside 5MiB..5GiB (the S3 limits)`);
        out.partSize = n;
        break;
      }
      case 'multipartCutoff': {
        const n = parseSize(url, 'multipartCutoff', value);
        if (n < MIN_PART_SIZE || n > MAX_PART_SIZE) throw new RemoteUrlError(url, `multipartCutoff=${value} is outside 5MiB..5GiB (one PUT's S3 limit)`);
        out.multipartCutoff = n;
        break;
      }
      case 'timeout': {
        const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
        if (!Number.isSafeInteger(n) || n < 1 || n > MAX_TIMEOUT_SECONDS) throw new RemoteUrlError(url, `timeout=${value} is not a whole number of seconds in 1..${MAX_TIMEOUT_SECONDS}`);
        out.timeout = n;
        break;
      }
    }
  }
  return out;
}

function parseEndpoint(url: string, value: string): string {
  let ep: URL;
  try {
    ep = new URL(value);
  } catch {
    throw new RemoteUrlError(url, `endpoint "${value}" is not a URL`, 'write endpoint=http://HOST:PORT');
  }
  if (ep.protocol !== 'http:' && ep.protocol !== 'https:') {
    throw new RemoteUrlError(url, `endpoint "${value}" must be http:// or https://`, 'write endpoint=http://HOST:PORT');
  }
  if (ep.username !== '' || ep.password !== '') throw new RemoteUrlError(url, 'credentials do not go in the endpoint URL');
  if (ep.pathname !== '/' || ep.search !== '' || ep.hash !== '') {
    throw new RemoteUrlError(url, `endpoint "${value}" has a path, query or fragment`, 'the bucket goes after s3://, the prefix after the bucket');
  }
  return `${ep.protocol}//${ep.host}`;
}

/** Parses a remote URL (RemoteUrlError naming what is wrong). */
export function parseRemoteUrl(text: string): RemoteUrl {
  const url = text.trim();
  if (url === '') throw new RemoteUrlError(text, 'empty', `write ${FORM}`);
  if (url.startsWith('/')) return filePath(url, url);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1];
  if (scheme === undefined) throw new RemoteUrlError(url, 'no scheme and not an absolute path', `write ${FORM}`);
  const lower = scheme.toLowerCase();
  if (lower === 'file') {
    if (!url.slice(5).startsWith('//')) throw new RemoteUrlError(url, 'file URL must start with file://', 'write file:///ABSOLUTE/PATH');
    return parseFile('file' + url.slice(4));
  }
  if (lower === 's3') {
    if (!url.slice(3).startsWith('//')) throw new RemoteUrlError(url, 'S3 URL must start with s3://', `write ${FORM}`);
    return parseS3('s3' + url.slice(2));
  }
  if (lower === 'swift') {
    throw new RemoteUrlError(url, 'the native Swift API is not supported', 'use its S3 API: s3://CONTAINER?endpoint=http://PROXY:PORT&region=REGION');
  }
  throw new RemoteUrlError(url, `unsupported scheme "${scheme}:"`, `write ${FORM}`);
}

function encodePath(s: string): string {
  return s
    .split('/')
    .map((seg) => encodeURIComponent(seg))
    .join('/');
}

/** The canonical text of a remote URL (parseRemoteUrl(formatRemoteUrl(u)) equals u). */
export function formatRemoteUrl(u: RemoteUrl): string {
  if (u.scheme === 'file') return `file://${encodePath(u.path)}`;
  let s = `s3://${encodeURIComponent(u.bucket)}`;
  if (u.prefix !== '') s += `/${encodePath(u.prefix)}`;
  const q: string[] = [];
  if (u.endpoint !== undefined) q.push(`endpoint=${encodeURIComponent(u.endpoint)}`);
  if (u.region !== undefined) q.push(`region=${encodeURIComponent(u.region)}`);
  if (u.profile !== undefined) q.push(`profile=${encodeURIComponent(u.profile)}`);
  if (u.credentials !== undefined) q.push(`credentials=${encodeURIComponent(u.credentials)}`);
  if (u.connections !== undefined) q.push(`connections=${u.connections}`);
  if (u.partSize !== undefined) q.push(`partSize=${u.partSize}`);
  if (u.multipartCutoff !== undefined) q.push(`multipartCutoff=${u.multipartCutoff}`);
  if (u.timeout !== undefined) q.push(`timeout=${u.timeout}`);
  return q.length === 0 ? s : `${s}?${q.join('&')}`;
}
