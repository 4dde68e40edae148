/**
 * A lying S3 server for fault tests: a real node:http server on 127.0.0.1 that speaks enough of the S3 REST
 * API (path-style; PutObject, GetObject with Range, HeadObject, ListObjectsV2 with continuation tokens,
 * DeleteObject(s), multipart create/part/complete/abort) to back a real `dvfs push`/`clone`/`pull`/`fetch`/
 * `verify --remote` through @aws-sdk/client-s3. Signatures are not checked.
 *
 * Its store is honest: what a PUT sent is what is kept. Its answers are not: with {@link BadS3Server.misbehave}
 * every request draws from a seeded RNG, and with probability `rate` gets one of the misbehaviours below that
 * fits the request. {@link BadS3Server.injected} counts what was done, per kind.
 *
 *   status500 / status503  an InternalError / ServiceUnavailable answer (nothing done for a write)
 *   reset                  the connection is destroyed, before or (for writes) after the write took effect
 *   slowBody               headers and half the body, then nothing until the client gives up (for a
 *                          write: it takes effect, the answer never comes)
 *   truncated              a GET body cut short under the full Content-Length, then the connection drops
 *   wrongLength            a GET/HEAD whose Content-Length is smaller than the object (the body that fits it
 *                          looks complete); the connection is closed after it
 *   otherObject            a GET answered with the bytes of a different object
 *   wrongEtag              an ETag that is not the body's MD5 (PUT, part upload, GET, HEAD)
 *   garbageXml             a 200 listing (or multipart answer) whose XML is garbage or cut off
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { rng, type Rng } from './rng.js';

export const FAULT_KINDS = ['status500', 'status503', 'reset', 'slowBody', 'truncated', 'wrongLength', 'otherObject', 'wrongEtag', 'garbageXml'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

type Op = 'put' | 'get' | 'head' | 'list' | 'delete' | 'deleteMany' | 'createUpload' | 'uploadPart' | 'complete' | 'abort';

/** Which misbehaviours make sense for which operation. */
const FITS: Record<FaultKind, readonly Op[]> = {
  status500: ['put', 'get', 'head', 'list', 'delete', 'deleteMany', 'createUpload', 'uploadPart', 'complete', 'abort'],
  status503: ['put', 'get', 'head', 'list', 'delete', 'deleteMany', 'createUpload', 'uploadPart', 'complete', 'abort'],
  reset: ['put', 'get', 'head', 'list', 'delete', 'deleteMany', 'createUpload', 'uploadPart', 'complete'],
  slowBody: ['put', 'get', 'list', 'uploadPart', 'complete'],
  truncated: ['get', 'list'],
  wrongLength: ['get', 'head'],
  otherObject: ['get'],
  wrongEtag: ['put', 'uploadPart', 'get', 'head'],
  garbageXml: ['list', 'createUpload', 'complete'],
};

export interface Misbehaviour {
  seed: number;
  /** Probability in [0, 1] that a request misbehaves. */
  rate: number;
  /** Only these kinds (default: all). */
  kinds?: readonly FaultKind[];
}

interface Upload {
  key: string;
  parts: Map<number, Buffer>;
}

const LIST_PAGE = 50;

function md5hex(b: Uint8Array): string {
  return createHash('md5').update(b).digest('hex');
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function xmlUnescape(s: string): string {
  return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
}

function tagValues(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => xmlUnescape(m[1] ?? ''));
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export class BadS3Server {
  readonly objects = new Map<string, Buffer>();
  private readonly uploads = new Map<string, Upload>();
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private random: Rng | null = null;
  private rate = 0;
  private kinds: readonly FaultKind[] = FAULT_KINDS;
  /** Misbehaviours done since the server started, per kind. */
  readonly injected: Record<FaultKind, number> = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  /** Requests answered (or dropped) since the server started. */
  requests = 0;
  /** Multipart uploads completed (the object stored) since the server started. */
  multipartCompleted = 0;
  port = 0;

  private constructor(readonly bucket: string) {
    this.server = createServer((req, res) => {
      this.requests++;
      this.serve(req, res).catch((e: unknown) => {
        if (!res.headersSent) this.error(res, 500, 'InternalError', e instanceof Error ? e.message : String(e));
        else res.destroy();
      });
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** Starts a server for one bucket on a free 127.0.0.1 port. */
  static async start(bucket = 'faults'): Promise<BadS3Server> {
    const s = new BadS3Server(bucket);
    await new Promise<void>((resolve) => s.server.listen(0, '127.0.0.1', resolve));
    const addr = s.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('the bad S3 server has no TCP address');
    s.port = addr.port;
    return s;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A dvfs remote URL for the bucket under `prefix`, with the given idle timeout. */
  url(prefix: string, timeoutSeconds = 2): string {
    return `s3://${this.bucket}/${prefix}?endpoint=${encodeURIComponent(this.endpoint)}&region=us-east-1&timeout=${timeoutSeconds}`;
  }

  /** From now on, requests misbehave as `m` says (a fresh RNG from its seed). */
  misbehave(m: Misbehaviour): void {
    this.random = rng(m.seed);
    this.rate = m.rate;
    this.kinds = m.kinds ?? FAULT_KINDS;
  }

  /** From now on every answer is honest. */
  behave(): void {
    this.random = null;
    this.rate = 0;
  }

  /** Total misbehaviours done. */
  get injectedTotal(): number {
    return Object.values(this.injected).reduce((a, b) => a + b, 0);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private draw(op: Op): FaultKind | null {
    const r = this.random;
    if (r === null || this.rate <= 0) return null;
    if (r.int(1_000_000) >= this.rate * 1_000_000) return null;
    const fitting = this.kinds.filter((k) => FITS[k].includes(op));
    if (fitting.length === 0) return null;
    const kind = r.pick(fitting);
    this.injected[kind]++;
    return kind;
  }

  private coin(): boolean {
    return (this.random?.int(2) ?? 0) === 1;
  }

  private send(res: ServerResponse, status: number, body: Buffer | string, headers: Record<string, string> = {}): void {
    const buf = typeof body === 'string' ? Buffer.from(body) : body;
    res.writeHead(status, { 'content-length': String(buf.length), ...headers });
    res.end(buf);
  }

  private error(res: ServerResponse, status: number, code: string, message = code): void {
    this.send(res, status, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${xmlEscape(message)}</Message><RequestId>${randomUUID()}</RequestId></Error>`, {
      'content-type': 'application/xml',
    });
  }

  /** Headers and the first half of `body`, then silence until the client hangs up. */
  private stall(res: ServerResponse, status: number, body: Buffer, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-length': String(body.length), ...headers });
    res.write(body.subarray(0, Math.floor(body.length / 2)));
    res.on('close', () => res.destroy());
  }

  /** Answers a fault that needs no knowledge of the operation; true when it did. */
  private generic(kind: FaultKind | null, res: ServerResponse): boolean {
    if (kind === 'status500') this.error(res, 500, 'InternalError', 'We encountered an internal error. Please try again.');
    else if (kind === 'status503') this.error(res, 503, 'ServiceUnavailable', 'Please reduce your request rate.');
    else if (kind === 'reset') res.socket?.destroy();
    else return false;
    return true;
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://x');
    const segments = u.pathname.split('/').slice(1);
    const bucket = decodeURIComponent(segments[0] ?? '');
    const key = segments.slice(1).map(decodeURIComponent).join('/');
    const q = u.searchParams;
    const method = req.method ?? 'GET';
    const body = await readBody(req);
    if (bucket !== this.bucket) return this.error(res, 404, 'NoSuchBucket', `no bucket ${bucket}`);
    if (key === '') {
      if (method === 'GET' && q.get('list-type') === '2') return this.list(res, q, this.draw('list'));
      if (method === 'POST' && q.has('delete')) return this.deleteMany(res, body, this.draw('deleteMany'));
      if (method === 'HEAD' || method === 'PUT') return this.send(res, 200, '');
      return this.error(res, 501, 'NotImplemented', `${method} on the bucket`);
    }
    if (method === 'PUT' && q.has('uploadId')) return this.uploadPart(res, q, key, body, this.draw('uploadPart'));
    if (method === 'PUT') return this.put(res, key, body, this.draw('put'));
    if (method === 'POST' && q.has('uploads')) return this.createUpload(res, key, this.draw('createUpload'));
    if (method === 'POST' && q.has('uploadId')) return this.complete(res, q, key, body, this.draw('complete'));
    if (method === 'DELETE' && q.has('uploadId')) {
      if (this.generic(this.draw('abort'), res)) return;
      this.uploads.delete(q.get('uploadId') ?? '');
      return this.send(res, 204, '');
    }
    if (method === 'DELETE') {
      if (this.generic(this.draw('delete'), res)) return;
      this.objects.delete(key);
      return this.send(res, 204, '');
    }
    if (method === 'HEAD') return this.head(res, key, this.draw('head'));
    if (method === 'GET') return this.get(res, key, req.headers.range, this.draw('get'));
    return this.error(res, 501, 'NotImplemented', method);
  }

  private checkMd5(req: Buffer, res: ServerResponse, header: string | string[] | undefined): boolean {
    if (typeof header !== 'string') return true;
    if (createHash('md5').update(req).digest('base64') === header) return true;
    this.error(res, 400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
    return false;
  }

  private put(res: ServerResponse, key: string, body: Buffer, kind: FaultKind | null): void {
    if (kind === 'status500' || kind === 'status503') return void this.generic(kind, res);
    if (!this.checkMd5(body, res, res.req.headers['content-md5'])) return;
    if (kind === 'reset' && this.coin()) return void res.socket?.destroy(); // before it took effect
    this.objects.set(key, body);
    if (kind === 'reset') return void res.socket?.destroy(); // after
    if (kind === 'slowBody') return void res.on('close', () => res.destroy());
    const etag = kind === 'wrongEtag' ? md5hex(Buffer.from(randomUUID())) : md5hex(body);
    this.send(res, 200, '', { etag: `"${etag}"` });
  }

  private pickOther(key: string): Buffer | null {
    const others = [...this.objects.keys()].filter((k) => k !== key);
    if (others.length === 0 || this.random === null) return null;
    return this.objects.get(this.random.pick(others)) ?? null;
  }

  private get(res: ServerResponse, key: string, range: string | undefined, kind: FaultKind | null): void {
    if (this.generic(kind, res)) return;
    let obj = this.objects.get(key);
    if (obj === undefined) return this.error(res, 404, 'NoSuchKey', `no key ${key}`);
    if (kind === 'otherObject') obj = this.pickOther(key) ?? obj;
    let status = 200;
    let data = obj;
    const headers: Record<string, string> = { etag: `"${kind === 'wrongEtag' ? md5hex(Buffer.from(randomUUID())) : md5hex(obj)}"`, 'content-type': 'application/octet-stream' };
    const m = range === undefined ? null : /^bytes=(\d+)-(\d*)$/.exec(range);
    if (m !== null) {
      const start = Number(m[1]);
      const end = Math.min(m[2] === '' ? obj.length - 1 : Number(m[2]), obj.length - 1);
      if (start >= obj.length) return this.error(res, 416, 'InvalidRange', 'The requested range is not satisfiable');
      data = obj.subarray(start, end + 1);
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${obj.length}`;
    }
    if (kind === 'slowBody') return this.stall(res, status, data, headers);
    if (kind === 'truncated') {
      res.writeHead(status, { ...headers, 'content-length': String(data.length) });
      res.write(data.subarray(0, Math.floor(data.length / 2)));
      setImmediate(() => res.socket?.destroy());
      return;
    }
    if (kind === 'wrongLength' && data.length > 1) {
      const shown = 1 + (this.random?.int(data.length - 1) ?? 0);
      res.writeHead(status, { ...headers, 'content-length': String(shown), connection: 'close' });
      res.end(data.subarray(0, shown));
      return;
    }
    this.send(res, status, data, headers);
  }

  private head(res: ServerResponse, key: string, kind: FaultKind | null): void {
    if (this.generic(kind, res)) return;
    const obj = this.objects.get(key);
    if (obj === undefined) {
      res.writeHead(404, { 'content-length': '0' });
      return void res.end();
    }
    const size = kind === 'wrongLength' ? (this.random?.int(obj.length * 2 + 1) ?? obj.length) : obj.length;
    const etag = kind === 'wrongEtag' ? md5hex(Buffer.from(randomUUID())) : md5hex(obj);
    res.writeHead(200, { 'content-length': String(size), etag: `"${etag}"` });
    res.end();
  }

  private list(res: ServerResponse, q: URLSearchParams, kind: FaultKind | null): void {
    if (this.generic(kind, res)) return;
    const prefix = q.get('prefix') ?? '';
    const after = q.get('continuation-token');
    const start = after === null ? '' : Buffer.from(after, 'base64url').toString();
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(prefix) && k > start).sort();
    const page = keys.slice(0, LIST_PAGE);
    const truncated = keys.length > page.length;
    const contents = page
      .map((k) => `<Contents><Key>${xmlEscape(k)}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"${md5hex(this.objects.get(k) ?? Buffer.alloc(0))}"</ETag><Size>${this.objects.get(k)?.length ?? 0}</Size><StorageClass>STANDARD</StorageClass></Contents>`)
      .join('');
    const next = truncated ? `<NextContinuationToken>${Buffer.from(page[page.length - 1] ?? '').toString('base64url')}</NextContinuationToken>` : '';
    const xml = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${this.bucket}</Name><Prefix>${xmlEscape(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${LIST_PAGE}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${contents}${next}</ListBucketResult>`;
    const headers = { 'content-type': 'application/xml' };
    if (kind === 'garbageXml') return this.send(res, 200, this.garbage(xml), headers);
    if (kind === 'slowBody') return this.stall(res, 200, Buffer.from(xml), headers);
    if (kind === 'truncated') {
      res.writeHead(200, { ...headers, 'content-length': String(xml.length) });
      res.write(xml.slice(0, Math.floor(xml.length / 2)));
      setImmediate(() => res.socket?.destroy());
      return;
    }
    this.send(res, 200, xml, headers);
  }

  /** Garbage in place of `xml`: cut off, random bytes, or well-formed but not a listing. */
  private garbage(xml: string): Buffer {
    const r = this.random;
    const choice = r?.int(3) ?? 0;
    if (choice === 0) return Buffer.from(xml.slice(0, 1 + (r?.int(xml.length - 1) ?? 0)));
    if (choice === 1) return r?.bytes(1 + r.int(400)) ?? Buffer.from('\u0000');
    return Buffer.from('<?xml version="1.0"?><Unexpected><Contents><Key></Key><Size>-5</Size></Contents><IsTruncated>maybe</IsTruncated></Unexpected>');
  }

  private deleteMany(res: ServerResponse, body: Buffer, kind: FaultKind | null): void {
    if (kind === 'status500' || kind === 'status503') return void this.generic(kind, res);
    for (const k of tagValues(body.toString(), 'Key')) this.objects.delete(k);
    if (kind === 'reset') return void res.socket?.destroy();
    this.send(res, 200, '<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>', {
      'content-type': 'application/xml',
    });
  }

  private createUpload(res: ServerResponse, key: string, kind: FaultKind | null): void {
    if (this.generic(kind, res)) return;
    const id = randomUUID();
    this.uploads.set(id, { key, parts: new Map() });
    const xml = `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${this.bucket}</Bucket><Key>${xmlEscape(key)}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`;
    this.send(res, 200, kind === 'garbageXml' ? this.garbage(xml) : Buffer.from(xml), { 'content-type': 'application/xml' });
  }

  private uploadPart(res: ServerResponse, q: URLSearchParams, key: string, body: Buffer, kind: FaultKind | null): void {
    if (kind === 'status500' || kind === 'status503') return void this.generic(kind, res);
    const upload = this.uploads.get(q.get('uploadId') ?? '');
    if (upload === undefined || upload.key !== key) return this.error(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    if (!this.checkMd5(body, res, res.req.headers['content-md5'])) return;
    if (kind === 'reset' && this.coin()) return void res.socket?.destroy();
    upload.parts.set(Number(q.get('partNumber')), body);
    if (kind === 'reset') return void res.socket?.destroy();
    if (kind === 'slowBody') return void res.on('close', () => res.destroy());
    const etag = kind === 'wrongEtag' ? md5hex(Buffer.from(randomUUID())) : md5hex(body);
    this.send(res, 200, '', { etag: `"${etag}"` });
  }

  private complete(res: ServerResponse, q: URLSearchParams, key: string, body: Buffer, kind: FaultKind | null): void {
    if (kind === 'status500' || kind === 'status503') return void this.generic(kind, res);
    const id = q.get('uploadId') ?? '';
    const upload = this.uploads.get(id);
    if (upload === undefined || upload.key !== key) return this.error(res, 404, 'NoSuchUpload', 'The specified upload does not exist.');
    const text = body.toString();
    const numbers = tagValues(text, 'PartNumber').map(Number);
    const etags = tagValues(text, 'ETag').map((e) => e.replace(/"/g, ''));
    const parts: Buffer[] = [];
    for (let i = 0; i < numbers.length; i++) {
      const part = upload.parts.get(numbers[i] as number);
      if (part === undefined || md5hex(part) !== etags[i]) return this.error(res, 400, 'InvalidPart', `part ${numbers[i]} was not uploaded or its ETag does not match`);
      parts.push(part);
    }
    if (kind === 'reset' && this.coin()) return void res.socket?.destroy();
    this.objects.set(key, Buffer.concat(parts));
    this.uploads.delete(id);
    this.multipartCompleted++;
    if (kind === 'reset') return void res.socket?.destroy();
    const xml = `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${this.bucket}</Bucket><Key>${xmlEscape(key)}</Key><ETag>"${md5hex(Buffer.concat(parts))}-${parts.length}"</ETag></CompleteMultipartUploadResult>`;
    if (kind === 'slowBody') return this.stall(res, 200, Buffer.from(xml), { 'content-type': 'application/xml' });
    this.send(res, 200, kind === 'garbageXml' ? this.garbage(xml) : Buffer.from(xml), { 'content-type': 'application/xml' });
  }
}
