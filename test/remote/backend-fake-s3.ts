// An in-memory S3 server behind the SDK's request-handler interface, for testing S3Backend without a network:
// PutObject (checks Content-MD5 like Swift), GetObject with Range, HeadObject, ListObjectsV2 with pagination,
// DeleteObjects (requires Content-MD5 like Swift 2.30), and multipart create/part/complete/abort (parts but
// the last must be >= 5 MiB). `fault` injects failures per request; `requests` records every request.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { S3ClientConfig } from '@aws-sdk/client-s3';
import { S3Backend, type S3BackendOptions } from '../../daemon/remote/s3-backend.js';
import { parseRemoteUrl, type S3RemoteUrl } from '../../daemon/remote/url.js';

export interface FakeRequest {
  method: string;
  path: string;
  query: Record<string, string | string[] | null>;
  headers: Record<string, string>;
  body?: unknown;
}

interface FakeResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: Readable;
}

export type Fault = { status: number; code: string } | { networkCode: string } | null;

const MIN_PART = 5 * 1024 * 1024;

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function xmlUnescape(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

function md5(buf: Uint8Array): Buffer {
  return createHash('md5').update(buf).digest();
}

export class FakeS3 {
  readonly objects = new Map<string, Buffer>();
  readonly uploads = new Map<string, { key: string; parts: Map<number, Buffer> }>();
  readonly requests: FakeRequest[] = [];
  /** Called for every request; a non-null answer fails it. */
  fault: (req: FakeRequest) => Fault = () => null;
  /** Largest page ListObjectsV2 returns. */
  pageSize = 1000;
  /** Answer ranged GETs with the whole object (200, no Content-Range), as some servers do. */
  ignoreRange = false;
  private nextUpload = 1;

  constructor(readonly bucket: string) {}

  /** The request handler to give the SDK (S3ClientConfig.requestHandler). */
  handler(): { handle(req: FakeRequest): Promise<{ response: FakeResponse }>; updateHttpClientConfig(): void; httpHandlerConfigs(): Record<string, never> } {
    return {
      handle: async (req) => ({ response: await this.serve(req) }),
      updateHttpClientConfig: () => undefined,
      httpHandlerConfigs: () => ({}),
    };
  }

  private reply(statusCode: number, body: string | Buffer = '', headers: Record<string, string> = {}): FakeResponse {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    return { statusCode, headers: { 'content-length': String(buf.length), ...headers }, body: Readable.from(buf.length === 0 ? [] : [buf]) };
  }

  private error(statusCode: number, code: string, message = code): FakeResponse {
    return this.reply(statusCode, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message></Error>`, {
      'content-type': 'application/xml',
    });
  }

  private async bodyOf(req: FakeRequest): Promise<Buffer> {
    const b = req.body;
    if (b === undefined || b === null) return Buffer.alloc(0);
    if (typeof b === 'string') return Buffer.from(b);
    if (b instanceof Uint8Array) return Buffer.from(b);
    const parts: Buffer[] = [];
    for await (const c of b as AsyncIterable<Uint8Array>) parts.push(Buffer.from(c));
    return Buffer.concat(parts);
  }

  private q(req: FakeRequest, name: string): string | undefined {
    const v = req.query[name];
    if (v === undefined || v === null) return v === null ? '' : undefined;
    return Array.isArray(v) ? v[0] : v;
  }

  private async serve(req: FakeRequest): Promise<FakeResponse> {
    this.requests.push({ method: req.method, path: req.path, query: { ...req.query }, headers: { ...req.headers } });
    const fault = this.fault(req);
    if (fault !== null) {
      if ('networkCode' in fault) throw Object.assign(new Error(`fake ${fault.networkCode}`), { code: fault.networkCode });
      return this.error(fault.status, fault.code);
    }
    const segs = req.path.split('/').slice(1).map(decodeURIComponent);
    if (segs[0] !== this.bucket) return this.error(404, 'NoSuchBucket', 'The specified bucket does not exist');
    const key = segs.slice(1).join('/');
    const body = await this.bodyOf(req);
    const h = (name: string): string | undefined => {
      const k = Object.keys(req.headers).find((x) => x.toLowerCase() === name);
      return k === undefined ? undefined : req.headers[k];
    };
    if (/aws-chunked/.test(h('content-encoding') ?? '')) return this.error(501, 'NotImplemented', 'aws-chunked is not supported');
    const contentMd5 = h('content-md5');
    if (contentMd5 !== undefined && contentMd5 !== md5(body).toString('base64')) return this.error(400, 'BadDigest');
    const uploadId = this.q(req, 'uploadId');

    if (req.method === 'PUT' && uploadId !== undefined) {
      const up = this.uploads.get(uploadId);
      if (up === undefined) return this.error(404, 'NoSuchUpload');
      const n = Number(this.q(req, 'partNumber'));
      up.parts.set(n, body);
      return this.reply(200, '', { etag: `"${md5(body).toString('hex')}"` });
    }
    if (req.method === 'PUT') {
      this.objects.set(key, body);
      return this.reply(200, '', { etag: `"${md5(body).toString('hex')}"` });
    }
    if (req.method === 'POST' && this.q(req, 'uploads') !== undefined) {
      const id = `upload-${this.nextUpload++}`;
      this.uploads.set(id, { key, parts: new Map() });
      return this.reply(
        200,
        `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>${this.bucket}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`,
      );
    }
    if (req.method === 'POST' && uploadId !== undefined) {
      const up = this.uploads.get(uploadId);
      if (up === undefined) return this.error(404, 'NoSuchUpload');
      const numbers = [...body.toString().matchAll(/<PartNumber>(\d+)<\/PartNumber>/g)].map((m) => Number(m[1]));
      const parts: Buffer[] = [];
      for (const [i, n] of numbers.entries()) {
        const p = up.parts.get(n);
        if (p === undefined || (i > 0 && n <= (numbers[i - 1] ?? 0))) return this.error(400, 'InvalidPart');
        if (i < numbers.length - 1 && p.length < MIN_PART) return this.error(400, 'EntityTooSmall');
        parts.push(p);
      }
      this.objects.set(up.key, Buffer.concat(parts));
      this.uploads.delete(uploadId);
      return this.reply(200, `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Key>${xmlEscape(up.key)}</Key><ETag>"x-${numbers.length}"</ETag></CompleteMultipartUploadResult>`);
    }
    if (req.method === 'DELETE' && uploadId !== undefined) {
      this.uploads.delete(uploadId);
      return this.reply(204);
    }
    if (req.method === 'POST' && this.q(req, 'delete') !== undefined) {
      if (contentMd5 === undefined) return this.error(400, 'InvalidRequest', 'Missing required header for this request: Content-MD5');
      for (const m of body.toString().matchAll(/<Key>([^<]*)<\/Key>/g)) this.objects.delete(xmlUnescape(m[1] ?? ''));
      return this.reply(200, '<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>');
    }
    if (req.method === 'GET' && this.q(req, 'list-type') === '2') {
      const prefix = this.q(req, 'prefix') ?? '';
      const all = [...this.objects.keys()].filter((k) => k.startsWith(prefix)).sort();
      const start = Number(this.q(req, 'continuation-token') ?? '0');
      const max = Math.min(this.pageSize, Number(this.q(req, 'max-keys') ?? '1000'));
      const page = all.slice(start, start + max);
      const truncated = start + max < all.length;
      const contents = page.map((k) => `<Contents><Key>${xmlEscape(k)}</Key><Size>${this.objects.get(k)?.length ?? 0}</Size></Contents>`).join('');
      return this.reply(
        200,
        `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>${this.bucket}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><IsTruncated>${truncated}</IsTruncated>${contents}${truncated ? `<NextContinuationToken>${start + max}</NextContinuationToken>` : ''}</ListBucketResult>`,
      );
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      const obj = this.objects.get(key);
      if (obj === undefined) return req.method === 'HEAD' ? this.reply(404) : this.error(404, 'NoSuchKey', 'The specified key does not exist.');
      const range = h('range');
      if (req.method === 'GET' && range !== undefined && !this.ignoreRange) {
        const m = /^bytes=(\d+)-(\d+)$/.exec(range);
        if (m === null) return this.error(400, 'InvalidArgument');
        const a = Number(m[1]);
        const b = Math.min(Number(m[2]), obj.length - 1);
        if (a >= obj.length) return this.error(416, 'InvalidRange');
        return this.reply(206, obj.subarray(a, b + 1), { 'content-range': `bytes ${a}-${b}/${obj.length}` });
      }
      if (req.method === 'HEAD') return { statusCode: 200, headers: { 'content-length': String(obj.length) }, body: Readable.from([]) };
      return this.reply(200, obj);
    }
    return this.error(405, 'MethodNotAllowed');
  }
}

/**
 * An S3Backend for `url` whose requests `fake` answers, with test credentials and fast part retries. The SDK
 * types its request handler far wider than the fake implements: the one cast for that is here.
 */
export function fakeS3Backend(fake: FakeS3, url: string, options: Omit<S3BackendOptions, 'credentials' | 'requestHandler'> = {}): S3Backend {
  return new S3Backend(parseRemoteUrl(url) as S3RemoteUrl, {
    credentials: { accessKeyId: 'test:tester', secretAccessKey: 'testing' },
    requestHandler: fake.handler() as unknown as S3ClientConfig['requestHandler'],
    partRetry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
    ...options,
  });
}
