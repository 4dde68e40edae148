// Remote URLs: what parses, the canonical form, and that every malformed URL is refused with an error that
// names what is wrong.
import t from 'tap';
import { formatRemoteUrl, parseRemoteUrl, RemoteUrlError, type RemoteUrl, type S3RemoteUrl } from '../../daemon/remote/url.js';

t.test('file URLs', async (t) => {
  t.same(parseRemoteUrl('file:///srv/remote'), { scheme: 'file', path: '/srv/remote' });
  t.same(parseRemoteUrl('file://localhost/srv/remote/'), { scheme: 'file', path: '/srv/remote' }, 'localhost host, trailing slash dropped');
  t.same(parseRemoteUrl('/srv/a/../remote'), { scheme: 'file', path: '/srv/remote' }, 'a bare absolute path, normalized');
  t.same(parseRemoteUrl('file:///srv/with%20space%3F'), { scheme: 'file', path: '/srv/with space?' }, 'percent-decoded');
  t.same(parseRemoteUrl('FILE:///x/y'), { scheme: 'file', path: '/x/y' }, 'scheme is case-insensitive');
});

t.test('s3 URLs', async (t) => {
  t.same(parseRemoteUrl('s3://my-bucket'), { scheme: 's3', bucket: 'my-bucket', prefix: '' });
  t.same(parseRemoteUrl('s3://my-bucket/'), { scheme: 's3', bucket: 'my-bucket', prefix: '' });
  t.same(parseRemoteUrl('s3://my-bucket/team/proj/'), { scheme: 's3', bucket: 'my-bucket', prefix: 'team/proj' });
  t.same(
    parseRemoteUrl('s3://dvfs.data/a%20b?endpoint=http://127.0.0.1:48431&region=us-east-1&profile=ci&credentials=/etc/dvfs/creds&connections=8&partSize=16MiB&multipartCutoff=32MiB'),
    {
      scheme: 's3',
      bucket: 'dvfs.data',
      prefix: 'a b',
      endpoint: 'http://127.0.0.1:48431',
      region: 'us-east-1',
      profile: 'ci',
      credentials: '/etc/dvfs/creds',
      connections: 8,
      partSize: 16 * 1024 * 1024,
      multipartCutoff: 32 * 1024 * 1024,
    },
  );
  t.equal((parseRemoteUrl('s3://b12?endpoint=https://s3.example.org/') as S3RemoteUrl).endpoint, 'https://s3.example.org', 'endpoint normalized');
  t.equal((parseRemoteUrl('s3://b12?partSize=5242880') as S3RemoteUrl).partSize, 5242880);
});

t.test('format round trips', async (t) => {
  const urls: RemoteUrl[] = [
    { scheme: 'file', path: '/srv/r e?#%' },
    { scheme: 's3', bucket: 'bkt', prefix: '' },
    { scheme: 's3', bucket: 'bkt', prefix: 'x/y z', endpoint: 'http://h:1', region: 'eu-1', profile: 'p', credentials: '/c f', connections: 3, partSize: 6 * 1024 * 1024, multipartCutoff: 5 * 1024 * 1024 },
  ];
  for (const u of urls) t.same(parseRemoteUrl(formatRemoteUrl(u)), u, formatRemoteUrl(u));
  t.equal(formatRemoteUrl({ scheme: 's3', bucket: 'b12', prefix: 'p', endpoint: 'http://h:9', region: 'r' }), 's3://b12/p?endpoint=http%3A%2F%2Fh%3A9&region=r');
});

t.test('malformed URLs are refused, naming the problem', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['   ', /empty/],
    ['relative/path', /no scheme and not an absolute path/],
    ['http://host/x', /unsupported scheme "http:"/],
    ['swift://container', /native Swift API is not supported/],
    ['file:/x', /must start with file:\/\//],
    ['file://server/share', /names host "server"/],
    ['file://', /no path/],
    ['file:///x?y=1', /take no query/],
    ['file:///x#frag', /take no fragment/],
    ['file:///', /filesystem root/],
    ['file:///bad%zzpath', /percent-encoding/],
    ['s3:bucket', /must start with s3:\/\//],
    ['s3://', /no bucket name/],
    ['s3:///prefix', /no bucket name/],
    ['s3://AKIA:secret@bucket/x', /credentials do not go in the URL/],
    ['s3://127.0.0.1:9000/bucket', /looks like HOST:PORT/],
    ['s3://Bad_Bucket', /invalid bucket name "Bad_Bucket"/],
    ['s3://ab', /invalid bucket name "ab"/],
    ['s3://a..b', /invalid bucket name/],
    ['s3://bucket//x', /empty segment/],
    ['s3://bucket/a/../b', /"\.\." segment/],
    ['s3://bucket#x', /no fragment/],
    ['s3://bucket?endpont=http://h:1', /unknown parameter "endpont"/],
    ['s3://bucket?region=a&region=b', /"region" given twice/],
    ['s3://bucket?region=', /"region" has no value/],
    ['s3://bucket?region=US_EAST', /invalid region/],
    ['s3://bucket?endpoint=127.0.0.1:9000', /must be http:\/\/ or https:\/\/|is not a URL/],
    ['s3://bucket?endpoint=ftp://h', /must be http:\/\/ or https:\/\//],
    ['s3://bucket?endpoint=http://h:1/bucket', /has a path, query or fragment/],
    ['s3://bucket?endpoint=http://u:p@h:1', /credentials do not go in the endpoint/],
    ['s3://bucket?connections=0', /connections=0 is not an integer in 1\.\.64/],
    ['s3://bucket?connections=2.5', /connections=2\.5/],
    ['s3://bucket?partSize=1MiB', /outside 5MiB\.\.5GiB/],
    ['s3://bucket?partSize=lots', /is not a size/],
    ['s3://bucket?multipartCutoff=4MiB', /multipartCutoff=4MiB is outside 5MiB\.\.5GiB/],
    ['s3://bucket?credentials=creds.ini', /not an absolute path/],
  ];
  for (const [url, re] of cases) {
    try {
      parseRemoteUrl(url);
      t.fail(`accepted ${JSON.stringify(url)}`);
    } catch (e) {
      t.ok(e instanceof RemoteUrlError, `${JSON.stringify(url)}: a RemoteUrlError`);
      const err = e as RemoteUrlError;
      t.equal(err.code, 'E_USAGE');
      t.match(err.message, re, `${JSON.stringify(url)}: ${err.message}`);
    }
  }
});

t.test('errors carry a hint showing the right form', async (t) => {
  try {
    parseRemoteUrl('file://relative/dir');
    t.fail('accepted');
  } catch (e) {
    t.match((e as RemoteUrlError).hint, /file:\/\/\/ABSOLUTE\/PATH \(three slashes\)/);
  }
  try {
    parseRemoteUrl('s3://127.0.0.1:8080');
    t.fail('accepted');
  } catch (e) {
    t.match((e as RemoteUrlError).hint, /endpoint=http:\/\/HOST:PORT/);
  }
});
