// The S3 backend without a network: error mapping (SDK exceptions and network errors to typed errors),
// credentials (environment, 0600 files, refusal of group/world-readable ones), and the backend's requests
// against an in-memory fake S3 (Content-MD5 on puts, parts and DeleteObjects; no aws-chunked; ranges;
// pagination; parallel multipart uploads; abort on failure).
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessDenied, NoSuchBucket, NoSuchKey, NotFound, S3ServiceException, type S3ClientConfig } from '@aws-sdk/client-s3';
import { DvfsError } from '../../daemon/errors.js';
import { NotFoundError, partsOf, PermanentError, rechunk, RetryingBackend, TransientError } from '../../daemon/remote/backend.js';
import { parseIni, readCredentialsFile, resolveS3Credentials } from '../../daemon/remote/credentials.js';
import { needsContentMd5, partSizeFor, S3Backend } from '../../daemon/remote/s3-backend.js';
import { mapS3Error } from '../../daemon/remote/s3-errors.js';
import { parseRemoteUrl, type S3RemoteUrl } from '../../daemon/remote/url.js';
import { FakeS3, fakeS3Backend } from './backend-fake-s3.js';
import { errorOf } from '../helpers/errors.js';

const ctx = { op: 'GET', key: 'data/ab/cd', location: 's3://bkt' };
const meta = (status: number) => ({ httpStatusCode: status, attempts: 1, totalRetryDelay: 0 });


async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-backend-s3-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

t.test('SDK errors map to typed errors', async (t) => {
  const nsk = mapS3Error(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: meta(404) }), ctx);
  t.ok(nsk instanceof NotFoundError, 'NoSuchKey -> NotFound');
  t.equal(nsk.key, 'data/ab/cd');
  t.match(nsk.message, /GET s3:\/\/bkt\/data\/ab\/cd: no such object/);
  t.ok(mapS3Error(new NotFound({ message: 'NotFound', $metadata: meta(404) }), ctx) instanceof NotFoundError, 'HEAD NotFound -> NotFound');

  const bucket = mapS3Error(new NoSuchBucket({ message: 'The specified bucket does not exist', $metadata: meta(404) }), ctx);
  t.ok(bucket instanceof PermanentError, 'NoSuchBucket is permanent, not "not found"');
  t.match(bucket.hint, /create the bucket/);

  const denied = mapS3Error(new AccessDenied({ message: 'Access Denied', $metadata: meta(403) }), ctx);
  t.ok(denied instanceof PermanentError, '403 -> permanent');
  t.equal(denied.code, 'E_PASSWORD');
  t.match(denied.hint, /credentials and region/);

  const svc = (name: string, status: number): S3ServiceException =>
    new S3ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', message: `${name} happened`, $metadata: meta(status) });
  for (const [name, status] of [
    ['ServiceUnavailable', 503],
    ['InternalError', 500],
    ['SlowDown', 503],
    ['BadGateway', 502],
    ['GatewayTimeout', 504],
    ['RequestTimeout', 400],
    ['TooManyRequests', 429],
    ['Unknown', 408],
    ['InvalidPart', 400],
  ] as const) {
    const e = mapS3Error(svc(name, status), ctx);
    t.ok(e instanceof TransientError, `${status} ${name} -> transient`);
    t.equal(e.status, status);
  }
  for (const [name, status] of [
    ['NotImplemented', 501],
    ['InvalidArgument', 400],
    ['EntityTooSmall', 400],
    ['SignatureDoesNotMatch', 403],
    ['MethodNotAllowed', 405],
  ] as const) {
    t.ok(mapS3Error(svc(name, status), ctx) instanceof PermanentError, `${status} ${name} -> permanent`);
  }
  const msg = mapS3Error(svc('ServiceUnavailable', 503), ctx).message;
  t.equal(msg, 'GET s3://bkt/data/ab/cd: 503 ServiceUnavailable: ServiceUnavailable happened', 'message names op, key, status, code');
});

t.test('network errors map to typed errors', async (t) => {
  const net = (code: string, message = `connect ${code}`): Error => Object.assign(new Error(message), { code });
  for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH']) {
    t.ok(mapS3Error(net(code), ctx) instanceof TransientError, `${code} -> transient`);
  }
  t.match(mapS3Error(net('ECONNREFUSED'), ctx).hint, /S3 server running/);
  t.ok(mapS3Error(new Error('outer', { cause: net('ECONNRESET') }), ctx) instanceof TransientError, 'found in the cause chain');
  t.ok(mapS3Error(new Error('socket hang up'), ctx) instanceof TransientError, 'socket hang up');
  t.ok(mapS3Error(Object.assign(new Error('timed out'), { name: 'TimeoutError' }), ctx) instanceof TransientError, 'TimeoutError');
  const dns = mapS3Error(net('ENOTFOUND', 'getaddrinfo ENOTFOUND nohost'), ctx);
  t.ok(dns instanceof PermanentError, 'DNS failure -> permanent');
  t.match(dns.hint, /endpoint host name/);
  t.ok(mapS3Error(new Error('weird'), ctx) instanceof PermanentError, 'unknown -> permanent');
  t.ok(mapS3Error('a string', ctx) instanceof PermanentError, 'non-errors too');
  const already = new TransientError('x');
  t.equal(mapS3Error(already, ctx), already, 'backend errors pass through');
  t.ok(mapS3Error(Object.assign(new Error('throttled'), { $retryable: { throttling: true } }), ctx) instanceof TransientError, '$retryable -> transient');
});

t.test('credentials from the environment', async (t) => {
  const dir = await tempDir(t);
  const env = { AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'SECRET', AWS_SESSION_TOKEN: 'TOK' };
  t.same(await resolveS3Credentials({ env, home: dir }), { credentials: { accessKeyId: 'AKID', secretAccessKey: 'SECRET', sessionToken: 'TOK' }, source: 'environment' });
  const half = await errorOf(resolveS3Credentials({ env: { AWS_ACCESS_KEY_ID: 'AKID' }, home: dir }));
  t.ok(half instanceof DvfsError && half.code === 'E_CONFIG');
  t.match((half as Error).message, /AWS_SECRET_ACCESS_KEY is not set, but AWS_ACCESS_KEY_ID is/);
  const none = await errorOf(resolveS3Credentials({ env: {}, home: dir }));
  t.match(none, { code: 'E_CONFIG', message: 'no S3 credentials found' });
  t.match((none as DvfsError).hint, /AWS_ACCESS_KEY_ID/);
});

t.test('credentials files: 0600 accepted, group/world-accessible refused', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'credentials');
  await writeFile(file, '# comment\n[default]\naws_access_key_id = AK1\naws_secret_access_key = SK1\n\n[profile ci]\naws_access_key_id=AK2\naws_secret_access_key=SK2\naws_session_token=T2\n', {
    mode: 0o600,
  });
  await chmod(file, 0o600);
  t.same(await readCredentialsFile(file, 'default'), { accessKeyId: 'AK1', secretAccessKey: 'SK1' });
  t.same(await readCredentialsFile(file, 'ci'), { accessKeyId: 'AK2', secretAccessKey: 'SK2', sessionToken: 'T2' });
  t.same((await resolveS3Credentials({ file, profile: 'ci', env: { AWS_ACCESS_KEY_ID: 'ENV', AWS_SECRET_ACCESS_KEY: 'ENV' } })).credentials.accessKeyId, 'AK2', 'an explicit file wins over the environment');
  t.same((await resolveS3Credentials({ env: { AWS_SHARED_CREDENTIALS_FILE: file, AWS_PROFILE: 'ci' }, home: dir })).source, `${file} [ci]`, 'AWS_SHARED_CREDENTIALS_FILE and AWS_PROFILE');
  await writeFile(join(dir, 'dummy'), '');
  const awsDir = join(dir, 'home', '.aws');
  await import('node:fs/promises').then((fs) => fs.mkdir(awsDir, { recursive: true }));
  await writeFile(join(awsDir, 'credentials'), '[default]\naws_access_key_id=H\naws_secret_access_key=HS\n', { mode: 0o600 });
  t.equal((await resolveS3Credentials({ env: {}, home: join(dir, 'home') })).credentials.accessKeyId, 'H', '~/.aws/credentials');

  for (const mode of [0o644, 0o640, 0o604, 0o660, 0o620]) {
    await chmod(file, mode);
    const e = await errorOf(readCredentialsFile(file, 'default'));
    t.ok(e instanceof DvfsError && e.code === 'E_CONFIG', `mode ${mode.toString(8)} refused`);
    t.match((e as DvfsError).message, new RegExp(`accessible to group or others \\(mode 0${mode.toString(8)}\\): refusing to use it`));
    t.equal((e as DvfsError).path, file, 'names the file');
    t.equal((e as DvfsError).hint, `run: chmod 600 ${file}`);
    const viaResolve = await errorOf(resolveS3Credentials({ file, env: {} }));
    t.ok(viaResolve instanceof DvfsError && viaResolve.code === 'E_CONFIG', 'resolve refuses it too');
  }
  await chmod(join(awsDir, 'credentials'), 0o644);
  t.match(await errorOf(resolveS3Credentials({ env: {}, home: join(dir, 'home') })), { code: 'E_CONFIG', message: /accessible to group or others/ }, 'the default file is checked too');
  await chmod(file, 0o400);
  t.same(await readCredentialsFile(file, 'default'), { accessKeyId: 'AK1', secretAccessKey: 'SK1' }, '0400 is fine');

  await chmod(file, 0o600);
  t.match(await errorOf(readCredentialsFile(file, 'nope')), { code: 'E_CONFIG', message: /no profile \[nope\]/, hint: /profiles there: default, ci/ });
  const partial = join(dir, 'partial');
  await writeFile(partial, '[default]\naws_access_key_id=x\n', { mode: 0o600 });
  t.match(await errorOf(readCredentialsFile(partial, 'default')), { message: /lacks aws_access_key_id or aws_secret_access_key/ });
  t.match(await errorOf(readCredentialsFile(join(dir, 'missing'), 'default')), { code: 'E_CONFIG', message: /does not exist/ });
  t.match(await errorOf(readCredentialsFile(dir, 'default')), { code: 'E_CONFIG', message: /not a regular file/ });
  t.same([...(parseIni('[a]\nk = v = w\n; c\n').get('a') ?? [])], [['k', 'v = w']], 'values keep "="');
});

t.test('part sizes and rechunking', async (t) => {
  const MiB = 1024 * 1024;
  t.equal(partSizeFor(100 * MiB, 16 * MiB), 16 * MiB);
  t.equal(partSizeFor(100 * MiB, 1 * MiB), 5 * MiB, 'at least 5 MiB');
  t.equal(partSizeFor(500_000 * MiB, 16 * MiB), 50 * MiB, 'grown to stay within 10 000 parts');
  t.throws(() => partSizeFor(60_000_000 * MiB, 16 * MiB), /larger than S3 can store/);
  const out: number[] = [];
  const src = async function* (): AsyncGenerator<Uint8Array> {
    yield Buffer.alloc(3);
    yield Buffer.alloc(10);
    yield Buffer.alloc(0);
    yield Buffer.alloc(4);
  };
  for await (const c of rechunk(src(), 5)) out.push(c.length);
  t.same(out, [5, 5, 5, 2]);
  const none: number[] = [];
  for await (const c of rechunk((async function* () {})(), 5)) none.push(c.length);
  t.same(none, []);
  // Upload parts: big chunks on a part boundary go through as they are (same object, no copy).
  const big = Buffer.alloc(7, 1);
  const parts: Uint8Array[] = [];
  const mixed = async function* (): AsyncGenerator<Uint8Array> {
    yield big;
    yield Buffer.alloc(3, 2);
    yield Buffer.alloc(6, 3);
    yield Buffer.alloc(5, 4);
    yield Buffer.alloc(2, 5);
    yield Buffer.alloc(3, 6);
    yield Buffer.alloc(12, 7);
  };
  for await (const c of partsOf(mixed(), 5)) parts.push(c);
  t.equal(parts[0], big, 'a chunk of one to two part sizes on a boundary is passed on as it is');
  t.same(parts.map((p) => p.length), [7, 5, 5, 5, 5, 5, 6], 'the rest is cut to the part size; the last view holds one to two part sizes');
  t.same(parts[5]?.buffer, parts[6]?.buffer, 'a longer chunk on a boundary is cut into views, not copied');
  t.same(
    Buffer.concat(parts),
    Buffer.concat([big, Buffer.alloc(3, 2), Buffer.alloc(6, 3), Buffer.alloc(5, 4), Buffer.alloc(2, 5), Buffer.alloc(3, 6), Buffer.alloc(12, 7)]),
    'bytes in order',
  );
});


t.test('Content-MD5 only where nothing else protects a body in transit', async (t) => {
  t.equal(needsContentMd5('http://swift.example.org:8080'), true, 'plain http to another host: MD5');
  t.equal(needsContentMd5('http://10.1.2.3'), true);
  t.equal(needsContentMd5('https://object.cscs.ch'), false, 'https: the TLS record MACs cover it');
  t.equal(needsContentMd5(undefined), false, 'AWS itself (https)');
  t.equal(needsContentMd5('http://127.0.0.1:8080'), false, 'loopback: no wire');
  t.equal(needsContentMd5('http://localhost:8080'), false);
  t.equal(needsContentMd5('http://[::1]:8080'), false);
  const fake = new FakeS3('bkt');
  const b = fakeS3Backend(fake, 's3://bkt?endpoint=http://127.0.0.1:9&region=us-east-1');
  t.teardown(() => b.close());
  await b.put('config', Buffer.from('hello'), 5);
  t.equal(fake.requests.at(-1)?.headers['content-md5'], undefined, 'no Content-MD5 to a loopback endpoint');
  t.equal(fake.requests.at(-1)?.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD', 'and no payload hash in the signature');
  const forced = fakeS3Backend(fake, 's3://bkt?endpoint=http://127.0.0.1:9&region=us-east-1', { contentMd5: true });
  t.teardown(() => forced.close());
  await forced.put('config', Buffer.from('hello'), 5);
  t.ok(fake.requests.at(-1)?.headers['content-md5'] !== undefined, 'unless asked for');
});

t.test('S3Backend against a fake S3', async (t) => {
  const fake = new FakeS3('bkt');
  const b = fakeS3Backend(fake, 's3://bkt/team/proj?endpoint=http://fake.invalid:9000&region=us-east-1');
  t.teardown(() => b.close());
  t.equal(b.location, 's3://bkt/team/proj?endpoint=http%3A%2F%2Ffake.invalid%3A9000');
  t.equal(b.keyBase, 's3://bkt/team/proj', 'keys are shown without the query');
  t.equal(b.s3Key('config'), 'team/proj/config');

  await b.put('config', Buffer.from('hello'), 5);
  t.same(fake.objects.get('team/proj/config'), Buffer.from('hello'), 'stored under the prefix');
  const put = fake.requests.at(-1);
  t.equal(put?.headers['content-md5'], createHash('md5').update('hello').digest('base64'), 'PutObject carries Content-MD5');
  t.notOk(Object.keys(put?.headers ?? {}).some((h) => /^x-amz-checksum-|content-encoding/i.test(h)), 'no SDK checksum headers, no aws-chunked');

  // A stream body (one-shot) is collected and sent with Content-MD5 too.
  await b.put(
    'data/ab/cd',
    (async function* () {
      yield Buffer.from('0123');
      yield Buffer.from('456789');
    })(),
    10,
  );
  t.same(await b.get('data/ab/cd'), Buffer.from('0123456789'));
  t.same(await b.getRange('data/ab/cd', 3, 4), Buffer.from('3456'));
  t.equal(fake.requests.at(-1)?.headers.range, 'bytes=3-6', 'Range header');
  t.same(await b.getRange('data/ab/cd', 8, 10), Buffer.from('89'), 'short at the end');
  t.same(await b.getRange('data/ab/cd', 10, 4), Buffer.alloc(0), 'past the end (416): empty');
  t.same(await b.getRange('data/ab/cd', 2, 0), Buffer.alloc(0), 'empty range');
  fake.ignoreRange = true;
  t.same(await b.getRange('data/ab/cd', 3, 4), Buffer.from('3456'), 'a server ignoring Range: sliced locally');
  t.same(await b.getRange('data/ab/cd', 8, 10), Buffer.from('89'));
  fake.ignoreRange = false;
  t.ok((await errorOf(b.getRange('nope', 2, 0))) instanceof NotFoundError, 'empty range of a missing key');
  t.equal(await b.head('data/ab/cd'), 10);
  t.equal(await b.head('missing'), null);
  t.match(await errorOf(b.get('missing')), { constructor: NotFoundError, message: 'GET s3://bkt/team/proj/missing: no such object', key: 'missing' });
  t.ok((await errorOf(b.getRange('missing', 0, 5))) instanceof NotFoundError);
  t.match(await errorOf(b.put('x', Buffer.from('abc'), 4)), { code: 'E_USAGE', message: /3 bytes, not the 4 announced/ });

  // listing with pagination, relative to the prefix
  fake.pageSize = 3;
  fake.objects.set('team/other', Buffer.from('not ours'));
  for (let i = 0; i < 7; i++) await b.put(`index/${i}`, Buffer.alloc(i), i);
  const listed: string[] = [];
  for await (const o of b.list('index/')) listed.push(`${o.key}:${o.size}`);
  t.same(listed, ['index/0:0', 'index/1:1', 'index/2:2', 'index/3:3', 'index/4:4', 'index/5:5', 'index/6:6']);
  t.equal(fake.requests.filter((r) => r.query['list-type'] === '2').length, 3, 'three pages');
  const all: string[] = [];
  for await (const o of b.list('')) all.push(o.key);
  t.equal(all.length, 9, 'the whole prefix, nothing outside it');

  // DeleteObjects gets Content-MD5 (Swift insists) and no CRC32.
  await b.delete(['index/0', 'index/1', 'index/missing']);
  const del = fake.requests.at(-1);
  t.ok(del?.headers['content-md5'] !== undefined, 'DeleteObjects carries Content-MD5');
  t.notOk(Object.keys(del?.headers ?? {}).some((h) => /^x-amz-(checksum-|sdk-checksum-algorithm)/i.test(h)), 'and no SDK checksum headers');
  t.equal(await b.head('index/0'), null);
  t.equal(await b.head('index/2'), 2);

  // errors from the server are mapped
  fake.fault = (r) => (r.method === 'GET' ? { status: 503, code: 'ServiceUnavailable' } : null);
  t.ok((await errorOf(b.get('config'))) instanceof TransientError, '503 -> transient');
  fake.fault = () => ({ networkCode: 'ECONNRESET' });
  t.ok((await errorOf(b.head('config'))) instanceof TransientError, 'connection reset -> transient');
  fake.fault = () => ({ status: 403, code: 'SignatureDoesNotMatch' });
  t.match(await errorOf(b.put('k', Buffer.from('1'), 1)), { code: 'E_PASSWORD' });
  fake.fault = () => null;

  // and retried by RetryingBackend
  let fails = 2;
  fake.fault = (r) => (r.method === 'GET' && fails-- > 0 ? { status: 500, code: 'InternalError' } : null);
  const rb = new RetryingBackend(b, { attempts: 4, baseDelayMs: 1, maxDelayMs: 2 });
  t.same(await rb.get('config'), Buffer.from('hello'), 'retried through two 500s');
  fake.fault = () => null;

  const wrongBucket = fakeS3Backend(fake, 's3://other?endpoint=http://fake.invalid:9000');
  t.teardown(() => wrongBucket.close());
  t.match(await errorOf(wrongBucket.put('k', Buffer.from('1'), 1)), { code: 'E_NOTFOUND', hint: /create the bucket/ });
});

t.test('multipart uploads: parallel parts, retried parts, abort on failure', async (t) => {
  const MiB = 1024 * 1024;
  const fake = new FakeS3('bkt');
  const b = fakeS3Backend(fake, 's3://bkt?endpoint=http://fake.invalid:9000', { multipartThreshold: 6 * MiB, partSize: 5 * MiB, connections: 3 });
  t.teardown(() => b.close());
  const data = Buffer.alloc(17 * MiB + 123);
  for (let i = 0; i < data.length; i += 4096) data[i] = (i / 4096) & 0xff;
  let inFlight = 0;
  let maxInFlight = 0;
  let failPart3 = 1;
  const origHandle = fake.handler();
  const handler = {
    ...origHandle,
    handle: async (req: Parameters<typeof origHandle.handle>[0]) => {
      const isPart = req.method === 'PUT' && req.query.partNumber !== undefined;
      if (isPart) {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 20));
        inFlight--;
        if (req.query.partNumber === '3' && failPart3-- > 0) throw Object.assign(new Error('fake reset'), { code: 'ECONNRESET' });
      }
      return origHandle.handle(req);
    },
  };
  const b2 = new S3Backend(parseRemoteUrl('s3://bkt?endpoint=http://fake.invalid:9000') as S3RemoteUrl, {
    credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
    requestHandler: handler as unknown as S3ClientConfig['requestHandler'],
    multipartThreshold: 6 * MiB,
    partSize: 5 * MiB,
    connections: 3,
    partRetry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
  });
  t.teardown(() => b2.close());
  let opened = 0;
  await b2.putLarge(
    'data/big',
    () => {
      opened++;
      return (async function* () {
        for (let i = 0; i < data.length; i += 1_000_000) yield data.subarray(i, i + 1_000_000);
      })();
    },
    data.length,
  );
  t.equal(opened, 1, 'the source was read once (the failed part was retried from memory)');
  t.ok(fake.objects.get('data/big')?.equals(data), 'assembled object equals the source');
  const parts = fake.requests.filter((r) => r.method === 'PUT' && r.query.partNumber !== undefined);
  t.equal(parts.length, 4, 'four 5 MiB parts (the last shorter)');
  t.ok(parts.every((p) => p.headers['content-md5'] !== undefined), 'every part carries Content-MD5');
  t.ok(maxInFlight >= 2 && maxInFlight <= 3, `parts went in parallel, at most 3 at once (${maxInFlight})`);
  t.equal(fake.uploads.size, 0, 'no upload left open');

  // put() switches to multipart above the threshold; at or below it, one PutObject.
  fake.requests.length = 0;
  await b.put('data/seven', Buffer.alloc(7 * MiB, 7), 7 * MiB);
  t.ok(fake.requests.some((r) => r.query.uploads !== undefined), 'put() of 7 MiB used multipart');
  t.equal(fake.objects.get('data/seven')?.length, 7 * MiB);
  fake.requests.length = 0;
  await b.putLarge('data/six', Buffer.alloc(6 * MiB, 6), 6 * MiB);
  t.notOk(fake.requests.some((r) => r.query.uploads !== undefined), 'putLarge() of 6 MiB used one PutObject');

  // A part that keeps failing: the upload is aborted, nothing appears.
  fake.fault = (r) => (r.method === 'PUT' && r.query.partNumber === '2' ? { status: 500, code: 'InternalError' } : null);
  const e = await errorOf(b.putLarge('data/doomed', Buffer.alloc(12 * MiB), 12 * MiB));
  t.ok(e instanceof TransientError, `a transient error after the part retries: ${(e as Error).message}`);
  t.equal((e as Error).message, 'PUT part 2 s3://bkt/data/doomed: 500 InternalError (gave up after 3 attempts)');
  t.equal(fake.objects.has('data/doomed'), false, 'no object');
  t.equal(fake.uploads.size, 0, 'the upload was aborted');
  t.ok(fake.requests.some((r) => r.method === 'DELETE' && r.query.uploadId !== undefined), 'AbortMultipartUpload sent');
  fake.fault = () => null;

  // A source shorter than announced: refused, aborted.
  const short = await errorOf(b.putLarge('data/short', Buffer.alloc(8 * MiB), 9 * MiB));
  t.match(short, { code: 'E_USAGE' });
  const shortStream = await errorOf(
    b.putLarge(
      'data/short',
      async function* () {
        yield Buffer.alloc(8 * MiB);
      },
      9 * MiB,
    ),
  );
  t.match(shortStream, { message: /8388608 bytes, not the 9437184 announced/ });
  t.equal(fake.objects.has('data/short'), false);
  t.equal(fake.uploads.size, 0);
});

t.test('S3Backend.open finds credentials and refuses unsafe files', async (t) => {
  const dir = await tempDir(t);
  const file = join(dir, 'creds');
  await writeFile(file, '[default]\naws_access_key_id=a\naws_secret_access_key=b\n', { mode: 0o644 });
  await chmod(file, 0o644);
  const url = parseRemoteUrl(`s3://bkt?endpoint=http://fake.invalid:1&credentials=${file}`) as S3RemoteUrl;
  t.match(await errorOf(S3Backend.open(url)), { code: 'E_CONFIG', message: /accessible to group or others \(mode 0644\)/ });
  await chmod(file, 0o600);
  const b = await S3Backend.open(url);
  t.equal(b.bucket, 'bkt');
  await b.close();
});
