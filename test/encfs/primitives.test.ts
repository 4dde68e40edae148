// Known-answer tests of the EncFS primitives (PBKDF2 user key, volume-key wrap, MAC folds, IV derivation,
// block and stream codecs, name codecs, file header) against values produced by EncFS 1.9.5's own code.
import t from 'tap';
import { pbkdf2Sync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { EncfsCipher } from '../../daemon/encfs/cipher.js';
import { derivePbkdf2, deriveLegacy } from '../../daemon/encfs/kdf.js';
import { unwrapVolumeKey, wrapVolumeKey } from '../../daemon/encfs/keywrap.js';
import { makeNameCodec, PathCodec, type NameAlgName } from '../../daemon/encfs/names.js';
import { nameB32, nameB64 } from '../../daemon/encfs/name-base.js';
import { rng } from '../helpers/rng.js';

interface ByBits {
  block: string;
  stream: string;
  mac64: string;
  mac16: string;
  keyWrap: string;
  header: string;
  blockName: string;
  streamName: string;
  blockNameNextIV?: string;
  streamNameNextIV?: string;
}
interface MajorVectors {
  stream: string;
  block1: string;
  block2: string;
  keyWrap: string;
  mac64?: string;
  mac64Chained?: string;
  mac32?: string;
  mac16?: string;
  names: [NameAlgName, number, string, string, string | null][];
}
interface Vectors {
  goldenKey: { seed: string; chain: string; byBits: Record<string, ByBits> };
  pbkdf2Key: { path: string; majors: Record<string, MajorVectors> };
  single: {
    keyWrap: { wrapped: string };
    volume44: Record<string, string | number>;
  };
  stockVolumes: {
    standard: Record<string, string | number>;
    paranoia: Record<string, string>;
  };
}

const V = JSON.parse(readFileSync(new URL('../../../test/fixtures/encfs-vectors.json', import.meta.url), 'utf8')) as Vectors;
const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const big = (s: string): bigint => BigInt(`0x${s}`);
const aes = (bits: number, material: Buffer, major = 3): EncfsCipher => new EncfsCipher({ name: 'ssl/aes', major, keySize: bits }, material);
const goldenMaterial = (bits: number): Buffer =>
  Buffer.concat([Buffer.from(Array.from({ length: bits / 8 }, (_, i) => (i * 0x11) & 0xff)), Buffer.from(Array.from({ length: 16 }, (_, i) => (i * 0x22) & 0xff))]);

t.test('golden-key vectors for AES-128/192/256', async (t) => {
  const seed = big(V.goldenKey.seed);
  for (const [bits, v] of Object.entries(V.goldenKey.byBits)) {
    const c = aes(Number(bits), goldenMaterial(Number(bits)));
    const block = Buffer.from(Array.from({ length: 16 }, (_, i) => (i * 0x33) & 0xff));
    t.equal(c.blockEncode(block, seed).toString('hex'), v.block, `AES-${bits} blockEncode`);
    t.ok(c.blockDecode(hex(v.block), seed).equals(block), `AES-${bits} blockDecode`);
    t.equal(c.streamEncode(Buffer.from('golden-stream-data'), seed).toString('hex'), v.stream, `AES-${bits} streamEncode`);
    t.equal(c.streamDecode(hex(v.stream), seed).toString(), 'golden-stream-data', `AES-${bits} streamDecode`);
    const chain = { iv: big(V.goldenKey.chain) };
    t.equal(c.mac64(Buffer.from('golden-mac-data'), chain).toString(16).padStart(16, '0'), v.mac64, `AES-${bits} MAC_64 chained`);
    t.equal(chain.iv, big(v.mac64), 'MAC_64 advances the chain to its value');
    t.equal(c.mac16(Buffer.from('golden-mac-data'), { iv: big(V.goldenKey.chain) }).toString(16), v.mac16, `AES-${bits} MAC_16`);
    const volume = Buffer.from(Array.from({ length: Number(bits) / 8 + 16 }, (_, i) => (i * 0x55) & 0xff));
    t.equal(wrapVolumeKey(c, volume).toString('hex'), v.keyWrap, `AES-${bits} key wrap`);
    t.ok(unwrapVolumeKey(c, hex(v.keyWrap)).equals(volume), `AES-${bits} key unwrap`);
    t.equal(c.streamEncode(hex('0f1e2d3c4b5a6978'), 0x8877665544332211n).toString('hex'), v.header, `AES-${bits} file header`);
    const blockChain = { iv: big(V.goldenKey.chain) };
    t.equal(makeNameCodec('nameio/block', 4, c).encode(Buffer.from('golden-name.txt'), blockChain), v.blockName, `AES-${bits} block name`);
    if (v.blockNameNextIV) t.equal(blockChain.iv, big(v.blockNameNextIV), 'block name chain IV');
    const streamChain = { iv: big(V.goldenKey.chain) };
    t.equal(makeNameCodec('nameio/stream', 2, c).encode(Buffer.from('golden-name.txt'), streamChain), v.streamName, `AES-${bits} stream name`);
    if (v.streamNameNextIV) t.equal(streamChain.iv, big(v.streamNameNextIV), 'stream name chain IV');
  }
});

t.test('PBKDF2-derived key: primitives and every name codec under cipher majors 3 and 2', async (t) => {
  const material = pbkdf2Sync('test', 'encfs-spec-salt', 1000, 48, 'sha1');
  t.ok((await derivePbkdf2(Buffer.from('test'), Buffer.from('encfs-spec-salt'), 1000, 48)).equals(material), 'derivePbkdf2 = PBKDF2-HMAC-SHA1');
  const volume = pbkdf2Sync('volume', 'encfs-spec-salt', 1000, 48, 'sha1');
  const bytes32 = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  for (const [major, v] of Object.entries(V.pbkdf2Key.majors)) {
    const c = aes(256, material, Number(major));
    t.equal(c.streamEncode(Buffer.from('golden-stream-data'), 0x1234567890abcdefn).toString('hex'), v.stream, `major ${major} stream`);
    t.equal(c.blockEncode(bytes32, 0x1234567890abcdefn).toString('hex'), v.block1, `major ${major} block, seed 1`);
    t.equal(c.blockEncode(bytes32, 0xfedcba9876543210n).toString('hex'), v.block2, `major ${major} block, seed 2`);
    t.equal(wrapVolumeKey(c, volume).toString('hex'), v.keyWrap, `major ${major} key wrap`);
    if (v.mac64) {
      t.equal(c.mac64(Buffer.from('golden-mac-data')).toString(16), v.mac64, 'MAC_64 without chain');
      t.equal(c.mac64(Buffer.from('golden-mac-data'), { iv: 0x0102030405060708n }).toString(16), v.mac64Chained, 'MAC_64 with chain');
      t.equal(c.mac32(Buffer.from('golden-mac-data')).toString(16), v.mac32, 'MAC_32 without chain');
      t.equal(c.mac16(Buffer.from('golden-mac-data')).toString(16), v.mac16, 'MAC_16 without chain');
    }
    for (const [alg, nameMajor, unchained, chained, nextIV] of v.names) {
      const codec = makeNameCodec(alg, nameMajor, c);
      t.equal(new PathCodec(codec, false).encodePath(V.pbkdf2Key.path).cipher, unchained, `${alg} ${nameMajor} unchained (cipher major ${major})`);
      const enc = new PathCodec(codec, true).encodePath(V.pbkdf2Key.path);
      t.equal(enc.cipher, chained, `${alg} ${nameMajor} chained (cipher major ${major})`);
      if (nextIV) t.equal(enc.iv, big(nextIV), `${alg} ${nameMajor} chain IV after the path`);
      t.equal(new PathCodec(codec, true).decodePath(chained).plain, V.pbkdf2Key.path, `${alg} ${nameMajor} chained decodes back`);
      t.equal(new PathCodec(codec, false).decodePath(unchained).plain, V.pbkdf2Key.path, `${alg} ${nameMajor} unchained decodes back`);
    }
  }
});

t.test('single-value vectors: stream name, key wrap, content blocks', async (t) => {
  const c44 = aes(256, Buffer.concat([Buffer.alloc(32, 0x44), Buffer.alloc(16, 0x55)]));
  const v = V.single.volume44;
  const chain = { iv: big(String(v['streamNameParent'])) };
  t.equal(makeNameCodec('nameio/stream', 2, c44).encode(Buffer.from(String(v['streamNamePlain'])), chain), v['streamName'], 'stream name');
  t.equal(chain.iv, big(String(v['streamNameNextIV'])), 'stream name next IV');
  const seed = BigInt(Number(v['blockIndex'])) ^ big(String(v['fileIV']));
  t.equal(c44.blockEncode(Buffer.from(Array.from({ length: 16 }, (_, i) => i)), seed).toString('hex'), v['fullBlock'], 'full content block');
  t.equal(c44.streamEncode(Buffer.from('phase0-partial'), seed).toString('hex'), v['partialBlock'], 'partial content block');
  const user = aes(256, Buffer.concat([Buffer.alloc(32, 0x11), Buffer.alloc(16, 0x22)]));
  t.equal(wrapVolumeKey(user, Buffer.alloc(48, 0x33)).toString('hex'), V.single.keyWrap.wrapped, 'key wrap');
});

t.test('stock EncFS 1.9.5 volume keys: PBKDF2 → checksum → volume key → names and headers', async (t) => {
  const s = V.stockVolumes.standard;
  const userKey = await derivePbkdf2(Buffer.from('test'), Buffer.from(String(s['salt']), 'base64'), Number(s['iterations']), 40);
  t.equal(userKey.toString('hex'), s['pbkdf2'], 'PBKDF2 user key (1389869 iterations)');
  const volumeKey = unwrapVolumeKey(aes(192, userKey), hex(String(s['encodedKey'])));
  t.equal(volumeKey.toString('hex'), s['volumeKey'], 'unwrapped volume key');
  t.throws(() => unwrapVolumeKey(aes(192, Buffer.alloc(40, 1)), hex(String(s['encodedKey']))), { code: 'E_PASSWORD' }, 'a wrong user key fails the checksum');
  const vol = aes(192, volumeKey);
  const paths = new PathCodec(makeNameCodec('nameio/block', 4, vol), true);
  const dec = paths.decodeName(String(s['name']), 0n);
  t.equal(dec.name, s['plainName']);
  t.equal(dec.iv, big(String(s['nameIV'])));
  t.equal(vol.streamDecode(hex(String(s['header'])), 0n).readBigUInt64BE(), big(String(s['fileIV'])), 'file header (no external IV)');
  const p = V.stockVolumes.paranoia;
  const pvol = aes(256, hex(String(p['volumeKey'])));
  const ppaths = new PathCodec(makeNameCodec('nameio/block', 4, pvol), true);
  const pdec = ppaths.decodePath(String(p['path']));
  t.equal(pdec.plain, p['plainPath']);
  t.equal(pdec.iv, big(String(p['externalIV'])), 'external IV = chain IV after the full path');
  t.equal(ppaths.encodePath('test').iv, big(String(p['dirIV'])));
});

t.test('legacy BytesToKey (SHA-1, 16 rounds)', async (t) => {
  const pw = Buffer.from('test');
  let d = pw;
  const { createHash } = await import('node:crypto');
  d = createHash('sha1').update(d).digest();
  for (let i = 1; i < 16; i++) d = createHash('sha1').update(d).digest();
  let d2 = createHash('sha1').update(Buffer.concat([d, pw])).digest();
  for (let i = 1; i < 16; i++) d2 = createHash('sha1').update(d2).digest();
  t.ok(deriveLegacy(pw, 40).equals(Buffer.concat([d, d2]).subarray(0, 40)), 'key||iv = prefix of D1||D2');
  t.throws(() => deriveLegacy(Buffer.alloc(0), 40), { code: 'E_PASSWORD' });
});

t.test('filename base64/base32: LSB-first packing, round trips, rejects foreign characters', async (t) => {
  const r = rng(1234);
  for (let i = 0; i < 200; i++) {
    const b = r.bytes(r.int(60) + 1);
    t.ok(nameB64.decode(nameB64.encode(b))?.equals(b), `b64 round trip (seed 1234 case ${i})`);
    t.ok(nameB32.decode(nameB32.encode(b))?.equals(b), `b32 round trip (seed 1234 case ${i})`);
    t.ok(nameB32.decode(nameB32.encode(b).toLowerCase())?.equals(b), 'b32 decoding is case-insensitive');
  }
  t.equal(nameB64.encode(Buffer.from([0x01])), '-,', 'value 1 → "-" then the 2 leftover bits');
  t.equal(nameB64.decode('ab.c'), null, "'.' is never in an encoded name");
  t.equal(nameB64.decode('abé'), null);
});
