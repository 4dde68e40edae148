/**
 * The Swift test fixture (test/fixtures/swift, test/helpers/swift.ts) against a REAL OpenStack Swift:
 * start it, do the S3 calls the remotes work needs with @aws-sdk/client-s3, stop it, and check that
 * nothing is left behind and that a request to the stopped Swift fails fast with a connection error.
 */
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { startSwift, swiftAvailable, swiftS3Client, type SwiftServer } from '../helpers/swift.js';

const unavailable = swiftAvailable();
if (unavailable !== null) {
  // loud: this also shows up in test/run.sh's SKIPPED list
  console.error(`\n!!! SKIPPING OpenStack Swift fixture tests: ${unavailable}\n`);
}
const skip = unavailable === null ? false : `OpenStack Swift unavailable: ${unavailable}`;

const MiB = 1024 * 1024;
const BUCKET = 'dvfs-fixture-test';

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

async function bodyBytes(body: unknown): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** `data` as a stream of `chunk`-sized pieces (so the SDK cannot treat it as one buffer). */
function streamOf(data: Buffer, chunk = 256 * 1024): Readable {
  let offset = 0;
  return new Readable({
    read() {
      if (offset >= data.length) {
        this.push(null);
        return;
      }
      this.push(data.subarray(offset, offset + chunk));
      offset += chunk;
    },
  });
}

/** Live (non-zombie) processes whose command line mentions `needle`. */
function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.includes(needle)) found.push(`${e}: ${cmdline}`);
  }
  return found;
}

async function errorOf(p: Promise<unknown>): Promise<Error & { code?: string; $metadata?: { httpStatusCode?: number } }> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the request to fail, it succeeded');
}

t.test('OpenStack Swift through S3', { skip }, async (t) => {
  // started once on the root test: every subtest below uses the same Swift
  const swift: SwiftServer = await startSwift(t);
  t.comment(`Swift started in ${swift.startMs} ms at ${swift.endpoint} (ports ${JSON.stringify(swift.ports)})`);
  t.match(swift.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/, 'endpoint is on 127.0.0.1');
  t.equal(swift.region, 'us-east-1', 'region is s3api\'s default location');
  t.equal(swift.accessKeyId, 'test:tester', 'tempauth test user');
  t.equal(await startSwift(t), swift, 'a second startSwift in the same process returns the running Swift');
  for (const name of ['proxy', 'account', 'container', 'object', 'memcached']) {
    t.ok((swift.ports[name] ?? 0) > 0, `${name} has a port`);
  }
  const s3: S3Client = swift.client();

  await t.test('create a bucket', async (t) => {
    const r = await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    t.equal(r.$metadata.httpStatusCode, 200, 'CreateBucket: 200');
    const head = await s3.send(new HeadBucketCommand({ Bucket: BUCKET }));
    t.equal(head.$metadata.httpStatusCode, 200, 'HeadBucket finds it');
  });

  const small = Buffer.concat([Buffer.from('hello swift ✓\n'), randomBytes(4093)]);
  await t.test('PutObject + GetObject + HeadObject, small object', async (t) => {
    const put = await s3.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'small/one.bin', Body: small, Metadata: { nonce: 'abc123' } }),
    );
    t.equal(put.ETag, `"${md5(small)}"`, 'ETag is the md5 of the body');
    const get = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'small/one.bin' }));
    t.ok((await bodyBytes(get.Body)).equals(small), 'GetObject returns the same bytes');
    t.same(get.Metadata, { nonce: 'abc123' }, 'user metadata round-trips');
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'small/one.bin' }));
    t.equal(head.ContentLength, small.length, 'HeadObject: size');
    t.equal(head.ETag, put.ETag, 'HeadObject: ETag');
  });

  await t.test('PutObject with a streamed body of unknown length', async (t) => {
    // needs requestChecksumCalculation WHEN_REQUIRED: the SDK default (aws-chunked) gets a 501 from s3api
    const data = randomBytes(3 * MiB + 17);
    const put = await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'stream/unknown-length', Body: streamOf(data) }));
    t.equal(put.ETag, `"${md5(data)}"`, 'ETag is the md5 of everything streamed');
    const got = await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'stream/unknown-length' }))).Body);
    t.equal(got.length, data.length, 'same length');
    t.ok(got.equals(data), 'byte-identical');
  });

  await t.test('20 MiB multipart upload of streamed parts, read back byte-identical', async (t) => {
    // @aws-sdk/lib-storage is not a dependency; this is what its Upload does
    const partSize = 5 * MiB; // s3api's minimum for all but the last part
    const data = randomBytes(20 * MiB);
    const key = 'big/20MiB.bin';
    const created = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, ContentType: 'application/x-dvfs-test' }));
    const uploadId = created.UploadId;
    t.ok(uploadId, 'got an UploadId');
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let i = 0; i * partSize < data.length; i++) {
      const part = data.subarray(i * partSize, Math.min(data.length, (i + 1) * partSize));
      const r = await s3.send(
        new UploadPartCommand({
          Bucket: BUCKET,
          Key: key,
          UploadId: uploadId,
          PartNumber: i + 1,
          Body: streamOf(Buffer.from(part)),
          ContentLength: part.length,
        }),
      );
      t.equal(r.ETag, `"${md5(part)}"`, `part ${i + 1} ETag is its md5`);
      parts.push({ PartNumber: i + 1, ETag: r.ETag ?? '' });
    }
    t.equal(parts.length, 4, 'four 5 MiB parts');
    const done = await s3.send(
      new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
    );
    const etagOfEtags = createHash('md5')
      .update(Buffer.concat(parts.map((p) => Buffer.from(p.ETag.replaceAll('"', ''), 'hex'))))
      .digest('hex');
    t.equal(done.ETag, `"${etagOfEtags}-4"`, 'S3-style multipart ETag');

    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    t.equal(head.ContentLength, data.length, 'HeadObject: size');
    t.equal(head.ContentType, 'application/x-dvfs-test', 'Content-Type from CreateMultipartUpload kept');
    const got = await bodyBytes((await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }))).Body);
    t.equal(got.length, data.length, '20 MiB back');
    t.ok(got.equals(data), 'byte-identical');
    const range = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: `bytes=${partSize - 3}-${partSize + 2}` }));
    t.ok((await bodyBytes(range.Body)).equals(data.subarray(partSize - 3, partSize + 3)), 'a range across a part boundary');
  });

  const listKeys = ['list/a/1', 'list/a/2', 'list/a/sub/3', 'list/b/1', 'list/ab'];
  await t.test('ListObjectsV2 with a prefix', async (t) => {
    for (const key of listKeys) {
      await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: Buffer.from(`content of ${key}`) }));
    }
    const r = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/a/' }));
    t.same(
      (r.Contents ?? []).map((o) => [o.Key, o.Size]),
      [
        ['list/a/1', 'content of list/a/1'.length],
        ['list/a/2', 'content of list/a/2'.length],
        ['list/a/sub/3', 'content of list/a/sub/3'.length],
      ],
      'exactly the keys under list/a/, in order, with sizes',
    );
    t.equal(r.KeyCount, 3, 'KeyCount');
    t.notOk(r.IsTruncated, 'not truncated');
    const d = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', Delimiter: '/' }));
    t.same((d.Contents ?? []).map((o) => o.Key), ['list/ab'], 'Delimiter: the direct child object');
    t.same((d.CommonPrefixes ?? []).map((p) => p.Prefix), ['list/a/', 'list/b/'], 'Delimiter: common prefixes');
    const paged = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', MaxKeys: 2 }));
    t.equal(paged.KeyCount, 2, 'MaxKeys=2: two keys');
    t.ok(paged.IsTruncated, 'MaxKeys=2 truncates');
    const rest = await s3.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/', ContinuationToken: paged.NextContinuationToken }),
    );
    t.same(
      [...(paged.Contents ?? []), ...(rest.Contents ?? [])].map((o) => o.Key),
      [...listKeys].sort(),
      'two pages give every key once',
    );
  });

  await t.test('DeleteObjects (several keys, one missing)', async (t) => {
    const keys = [...listKeys, 'list/never-existed'];
    const r = await s3.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys.map((Key) => ({ Key })) } }),
    );
    t.same(r.Errors ?? [], [], 'no errors');
    t.same((r.Deleted ?? []).map((d) => d.Key).sort(), [...keys].sort(), 'every key reported deleted (S3 counts a missing key as deleted)');
    const after = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'list/' }));
    t.equal(after.KeyCount, 0, 'nothing left under list/');
    const others = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET }));
    t.same(
      (others.Contents ?? []).map((o) => o.Key),
      ['big/20MiB.bin', 'small/one.bin', 'stream/unknown-length'],
      'other keys untouched',
    );
  });

  await t.test('HeadObject of a missing key is 404 NotFound', async (t) => {
    const err = await errorOf(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'small/missing.bin' })));
    t.equal(err.name, 'NotFound', 'error name NotFound');
    t.equal(err.$metadata?.httpStatusCode, 404, 'HTTP 404');
  });

  await t.test('stop: nothing left, and requests fail fast with a connection error', async (t) => {
    const port = swift.ports['proxy'];
    const memcachedPort = swift.ports['memcached'];
    t.ok(processesMentioning(swift.stateDir).length >= 4, 'the four Swift servers run before stop');
    const t0 = performance.now();
    await swift.stop();
    t.comment(`stop took ${Math.round(performance.now() - t0)} ms`);
    t.ok(swift.stopped, 'stopped is set');
    t.same(processesMentioning(swift.stateDir), [], 'no Swift process is left');
    t.same(processesMentioning(`-p ${memcachedPort} `), [], 'no memcached of ours is left');
    t.notOk(existsSync(swift.stateDir), 'state directory removed');
    t.notOk(existsSync(dirname(swift.stateDir)), "the helper's temp directory removed");
    await swift.stop(); // idempotent
    t.pass('a second stop is fine');

    const dead = swiftS3Client(swift, { maxAttempts: 1 });
    t.teardown(() => dead.destroy());
    const t1 = performance.now();
    const err = await errorOf(dead.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'small/one.bin' })));
    const ms = performance.now() - t1;
    t.equal(err.code, 'ECONNREFUSED', `connection refused on port ${port} (${err.name}: ${err.message})`);
    t.ok(ms < 5_000, `failed within ${Math.round(ms)} ms`);
  });
});
