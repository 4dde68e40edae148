// The native block codec (native/ addon) held against the TypeScript reference (TypeScriptBlockCodec) on
// random volumes and data: byte-identical encodings, identical decodings of valid, holed, tampered, truncated
// and garbage input, async == sync (with and without splitting a batch across two work items), argument
// errors thrown as JS errors, and the codec factory's choices.
//
// DVFS_TEST_SEED=<n> reproduces a run; DVFS_NATIVE_CASES=<n> changes the number of random cases.
import t, { type Test } from 'tap';
import { createCipheriv } from 'node:crypto';
import {
  TypeScriptBlockCodec,
  dataBytesPerBlock,
  headerBytes,
  type BlockCodec,
  type BlockLayout,
  type DecodeResult,
} from '../../daemon/encfs/block-codec.js';
import { EncfsCipher } from '../../daemon/encfs/cipher.js';
import {
  NativeBlockCodec,
  loadNativeCodecModule,
  makeBlockCodec,
  nativeCodecStatus,
  setNativeCodecWarningSink,
} from '../../daemon/encfs/native-codec.js';
import { DvfsError } from '../../daemon/errors.js';
import { rng, type Rng } from '../helpers/rng.js';

const SEED = Number(process.env['DVFS_TEST_SEED'] ?? 0xc0dec);
const CASES = Number(process.env['DVFS_NATIVE_CASES'] ?? 400);

/** Deterministic bulk bytes (AES-CTR keyed from the PRNG): the PRNG's own bytes() is slow for MiBs. */
function bulk(r: Rng, n: number): Buffer {
  const c = createCipheriv('aes-128-ctr', r.bytes(16), r.bytes(16));
  return c.update(Buffer.alloc(n));
}

function firstDiff(a: Buffer, b: Buffer): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `first difference at byte ${i}`;
  return a.length === b.length ? 'equal' : `lengths ${a.length} vs ${b.length}`;
}

function sameBytes(t: Test, got: Buffer, want: Buffer, what: string, where: string): void {
  if (got.equals(want)) t.pass(`${what}`);
  else t.fail(`${what}: ${firstDiff(got, want)} [${where}]`);
}

function sameDecode(t: Test, got: DecodeResult, want: DecodeResult, what: string, where: string): void {
  const ok = got.badBlock === want.badBlock && got.plain.equals(want.plain);
  if (ok) t.pass(what);
  else {
    t.fail(
      `${what}: native badBlock ${got.badBlock} vs TS ${want.badBlock}, plain ${firstDiff(got.plain, want.plain)} [${where}]`,
    );
  }
}

interface Case {
  where: string;
  cipher: EncfsCipher;
  layout: BlockLayout;
  plain: Buffer;
  firstBlock: number;
  fileIV: bigint;
  rand: Buffer | null;
}

function makeCipher(r: Rng, bits: number, major: number): EncfsCipher {
  return new EncfsCipher({ name: 'ssl/aes', major, keySize: bits }, r.bytes(bits / 8 + 16));
}

function randomCase(r: Rng, n: number): Case {
  const bits = r.pick([128, 192, 256]);
  const major = r.int(8) === 0 ? r.pick([1, 2]) : 3;
  const blockSize = 16 * (4 + r.int(253)); // 64..4096
  const macBytes = r.pick([0, 8]);
  const randBytes = r.int(4) === 0 ? r.int(9) : 0;
  const allowHoles = r.int(2) === 1;
  const layout: BlockLayout = { blockSize, macBytes, randBytes, allowHoles };
  const D = dataBytesPerBlock(layout);
  const firstBlock = r.pick([
    0,
    r.int(100),
    r.int(2 ** 32),
    2 ** 32 - 1 - r.int(4),
    2 ** 32 + r.int(2 ** 20),
    r.int(2 ** 50),
  ]);
  const u64 = (): bigint => r.bytes(8).readBigUInt64LE();
  const fileIV = r.pick([0n, u64(), u64() | (1n << 63n), (1n << 64n) - 1n, BigInt(r.int(1000))]);
  const blocks = r.int(6);
  let len: number;
  switch (r.int(4)) {
    case 0:
      len = blocks * D; // exact multiple of D
      break;
    case 1:
      len = blocks * D + 1 + r.int(D - 1); // a short tail
      break;
    case 2:
      len = r.int(blocks * D + D);
      break;
    default:
      len = blocks * D + r.int(20); // tiny tail (or none)
  }
  const plain = r.bytes(len);
  const nblocks = Math.ceil(len / D);
  const rand = randBytes > 0 ? r.bytes(nblocks * randBytes) : null;
  const where =
    `seed ${SEED} case ${n}: aes${bits} major ${major} B=${blockSize} mac=${macBytes} rand=${randBytes} ` +
    `holes=${allowHoles} len=${len} firstBlock=${firstBlock} fileIV=0x${fileIV.toString(16)}`;
  return { where, cipher: makeCipher(r, bits, major), layout, plain, firstBlock, fileIV, rand };
}

async function checkCase(t: Test, r: Rng, c: Case): Promise<void> {
  const { where, cipher, layout, plain, firstBlock, fileIV, rand } = c;
  const B = layout.blockSize;
  const h = headerBytes(layout);
  const ts = new TypeScriptBlockCodec(cipher, layout);
  // Default options (small async calls run inline), and always on the thread pool, split in two.
  const nat = new NativeBlockCodec(cipher, layout);
  const split = new NativeBlockCodec(cipher, layout, { splitThreshold: 1, inlineBelow: 0 });

  const encT = ts.encode(plain, firstBlock, fileIV, rand);
  const encN = nat.encode(plain, firstBlock, fileIV, rand);
  sameBytes(t, encN, encT, 'encode: native == TS', where);
  sameBytes(t, await nat.encodeAsync(plain, firstBlock, fileIV, rand), encT, 'encodeAsync == TS', where);
  sameBytes(t, await split.encodeAsync(plain, firstBlock, fileIV, rand), encT, 'encodeAsync (split) == TS', where);

  // Round trips: either decoder on either encoding gives the plaintext back, no bad block.
  for (const [label, enc] of [['TS', encT], ['native', encN]] as const) {
    const dT = ts.decode(enc, firstBlock, fileIV);
    const dN = nat.decode(enc, firstBlock, fileIV);
    t.ok(dT.plain.equals(plain) && dT.badBlock === -1, `TS decode of ${label} encoding round-trips [${where}]`);
    t.ok(dN.plain.equals(plain) && dN.badBlock === -1, `native decode of ${label} encoding round-trips [${where}]`);
  }
  const want = ts.decode(encT, firstBlock, fileIV);
  sameDecode(t, await nat.decodeAsync(encT, firstBlock, fileIV), want, 'decodeAsync == TS', where);
  sameDecode(t, await split.decodeAsync(encT, firstBlock, fileIV), want, 'decodeAsync (split) == TS', where);

  const full = Math.floor(encT.length / B);
  const cases: Array<[string, Buffer, number, bigint]> = [];

  // Holes: some full blocks replaced by zeros.
  if (full > 0) {
    const holed = Buffer.from(encT);
    const holes = new Set<number>([r.int(full)]);
    for (let i = 0; i < full; i++) if (r.int(3) === 0) holes.add(i);
    for (const i of holes) holed.fill(0, i * B, (i + 1) * B);
    cases.push([`holes at ${[...holes].join(',')}`, holed, firstBlock, fileIV]);
    if (layout.allowHoles) {
      const d = ts.decode(holed, firstBlock, fileIV);
      t.equal(d.badBlock, -1, `TS: holes are not MAC failures [${where}]`);
    }
  }
  // One flipped ciphertext byte.
  if (encT.length > 0) {
    const pos = r.int(encT.length);
    const tampered = Buffer.from(encT);
    tampered[pos] = (tampered[pos] as number) ^ (1 << r.int(8));
    cases.push([`byte ${pos} flipped`, tampered, firstBlock, fileIV]);
    if (layout.macBytes > 0) {
      const d = nat.decode(tampered, firstBlock, fileIV);
      t.equal(d.badBlock, Math.floor(pos / B), `native: flipped byte ${pos} fails block ${Math.floor(pos / B)} [${where}]`);
    }
  }
  // Truncated so that the tail cannot hold a header, and truncated anywhere.
  if (h > 0 && encT.length > 0) {
    const cut = Math.min(encT.length, Math.floor(r.int(encT.length) / B) * B + 1 + r.int(h));
    cases.push([`cut to ${cut} bytes`, encT.subarray(0, cut), firstBlock, fileIV]);
  }
  cases.push([`cut anywhere`, encT.subarray(0, r.int(encT.length + 1)), firstBlock, fileIV]);
  // Garbage, and the right data at the wrong place.
  cases.push([`garbage`, r.bytes(r.int(3 * B + 40)), firstBlock, fileIV]);
  cases.push([`wrong firstBlock`, encT, firstBlock + 1, fileIV]);
  cases.push([`wrong fileIV`, encT, firstBlock, BigInt.asUintN(64, fileIV ^ 0x100n)]);

  for (const [label, raw, fb, iv] of cases) {
    const dT = ts.decode(raw, fb, iv);
    sameDecode(t, nat.decode(raw, fb, iv), dT, `decode ${label}: native == TS`, where);
    sameDecode(t, await split.decodeAsync(raw, fb, iv), dT, `decodeAsync ${label}: native == TS`, where);
  }
}

const status = nativeCodecStatus();
if (!status.available) {
  const reason = `native codec addon not available: ${status.reason ?? 'unknown'} (build it with: node native/build.mjs)`;
  process.stderr.write(`\n!!! SKIPPING the native codec tests: ${reason}\n\n`);
  // a skipped subtest whose directive carries the reason (shown by tap and by test/run.sh)
  t.test(`native codec == TypeScript codec`, { skip: reason }, () => {});
} else {
  t.comment(`native addon ${status.path ?? '?'} on ${status.openssl ?? '?'}; seed ${SEED}`);

  t.test(`${CASES} random cases (seed ${SEED})`, async (t) => {
    const r = rng(SEED);
    for (let n = 0; n < CASES; n++) await checkCase(t, r, randomCase(r, n));
  });

  t.test(`large batches, EncFS standard and paranoia layouts (seed ${SEED})`, async (t) => {
    const r = rng(SEED + 1);
    const layouts: Array<[string, number, BlockLayout]> = [
      ['standard', 192, { blockSize: 1024, macBytes: 0, randBytes: 0, allowHoles: true }],
      ['paranoia', 256, { blockSize: 1024, macBytes: 8, randBytes: 0, allowHoles: true }],
      ['mac+rand', 128, { blockSize: 4096, macBytes: 8, randBytes: 8, allowHoles: false }],
    ];
    for (const [name, bits, layout] of layouts) {
      const cipher = makeCipher(r, bits, 3);
      const D = dataBytesPerBlock(layout);
      const len = (1 << 20) + r.int(2 << 20);
      const plain = bulk(r, len);
      const rand = layout.randBytes > 0 ? bulk(r, Math.ceil(len / D) * layout.randBytes) : null;
      const fb = r.int(2 ** 40);
      const iv = r.bytes(8).readBigUInt64LE() | (1n << 63n);
      const where = `seed ${SEED} ${name} len=${len} firstBlock=${fb}`;
      const ts = new TypeScriptBlockCodec(cipher, layout);
      const nat = new NativeBlockCodec(cipher, layout);
      const whole = new NativeBlockCodec(cipher, layout, { splitThreshold: 0, inlineBelow: 0 });
      const encT = ts.encode(plain, fb, iv, rand);
      sameBytes(t, nat.encode(plain, fb, iv, rand), encT, `${name}: encode`, where);
      sameBytes(t, await nat.encodeAsync(plain, fb, iv, rand), encT, `${name}: encodeAsync (split)`, where);
      sameBytes(t, await whole.encodeAsync(plain, fb, iv, rand), encT, `${name}: encodeAsync (one work item)`, where);
      // A hole and a flipped byte in the second half, so that the split's second part reports it.
      const raw = Buffer.from(encT);
      const B = layout.blockSize;
      raw.fill(0, 3 * B, 4 * B);
      const pos = raw.length - 2 * B - 5;
      raw[pos] = (raw[pos] as number) ^ 0x40;
      const want = ts.decode(raw, fb, iv);
      sameDecode(t, nat.decode(raw, fb, iv), want, `${name}: decode`, where);
      sameDecode(t, await nat.decodeAsync(raw, fb, iv), want, `${name}: decodeAsync (split)`, where);
      sameDecode(t, await whole.decodeAsync(raw, fb, iv), want, `${name}: decodeAsync (one work item)`, where);
    }
  });

  t.test('many concurrent async calls', async (t) => {
    const r = rng(SEED + 2);
    const layout: BlockLayout = { blockSize: 512, macBytes: 8, randBytes: 0, allowHoles: true };
    const cipher = makeCipher(r, 256, 3);
    const nat = new NativeBlockCodec(cipher, layout, { splitThreshold: 4096, inlineBelow: 1024 });
    const ts = new TypeScriptBlockCodec(cipher, layout);
    const inputs = Array.from({ length: 64 }, (_, i) => ({ plain: bulk(r, r.int(40000)), fb: i * 1000, iv: BigInt(i) }));
    const encoded = await Promise.all(inputs.map((x) => nat.encodeAsync(x.plain, x.fb, x.iv, null)));
    const decoded = await Promise.all(encoded.map((e, i) => nat.decodeAsync(e, inputs[i]!.fb, inputs[i]!.iv)));
    let ok = 0;
    inputs.forEach((x, i) => {
      if (encoded[i]!.equals(ts.encode(x.plain, x.fb, x.iv, null)) && decoded[i]!.plain.equals(x.plain)) ok++;
    });
    t.equal(ok, inputs.length, `all ${inputs.length} concurrent results match (seed ${SEED})`);
  });

  t.test('Uint8Array views at an offset', async (t) => {
    const r = rng(SEED + 3);
    const layout: BlockLayout = { blockSize: 256, macBytes: 8, randBytes: 4, allowHoles: true };
    const cipher = makeCipher(r, 128, 3);
    const nat = new NativeBlockCodec(cipher, layout);
    const ts = new TypeScriptBlockCodec(cipher, layout);
    const backing = r.bytes(5000);
    const plain = backing.subarray(13, 13 + 1000);
    const rand = backing.subarray(3001, 3001 + 5 * 4);
    const enc = ts.encode(plain, 7, 9n, rand);
    sameBytes(t, nat.encode(plain, 7, 9n, rand), enc, 'encode of a subarray', `seed ${SEED}`);
    const framed = Buffer.concat([Buffer.from('xyz'), enc]).subarray(3);
    sameDecode(t, nat.decode(framed, 7, 9n), ts.decode(enc, 7, 9n), 'decode of a subarray', `seed ${SEED}`);
  });

  t.test('bad arguments are JS errors', async (t) => {
    const r = rng(SEED + 4);
    const cipher = makeCipher(r, 192, 3);
    const layout: BlockLayout = { blockSize: 1024, macBytes: 8, randBytes: 4, allowHoles: true };
    const nat = new NativeBlockCodec(cipher, layout, { inlineBelow: 0 });
    const inline = new NativeBlockCodec(cipher, layout);
    const plain = r.bytes(3000);
    const rand = r.bytes(3 * 4);
    t.throws(() => nat.encode(plain, 0, 5 as unknown as bigint, rand), { code: 'ERR_INVALID_ARG_TYPE' }, 'number fileIV');
    t.throws(() => nat.encode(plain, 1.5, 0n, rand), { code: 'ERR_OUT_OF_RANGE' }, 'fractional firstBlock');
    t.throws(() => nat.encode(plain, Number.NaN, 0n, rand), { code: 'ERR_OUT_OF_RANGE' }, 'NaN firstBlock');
    t.throws(() => nat.encode(plain, 2 ** 60, 0n, rand), { code: 'ERR_OUT_OF_RANGE' }, 'unsafe firstBlock');
    t.throws(() => nat.encode(plain, 0, 0n, null), { code: 'ERR_INVALID_ARG_TYPE' }, 'missing rand');
    t.throws(() => nat.encode(plain, 0, 0n, rand.subarray(1)), { code: 'ERR_OUT_OF_RANGE' }, 'short rand');
    t.throws(() => nat.decode('abc' as unknown as Buffer, 0, 0n), { code: 'ERR_INVALID_ARG_TYPE' }, 'string raw');
    await t.rejects(nat.encodeAsync(plain, 0, 0n, null), { code: 'ERR_INVALID_ARG_TYPE' }, 'async: missing rand rejects');
    await t.rejects(nat.decodeAsync(plain, -0.5, 0n), { code: 'ERR_OUT_OF_RANGE' }, 'async: bad firstBlock rejects');
    await t.rejects(inline.encodeAsync(plain, 0, 0n, null), { code: 'ERR_INVALID_ARG_TYPE' }, 'inline: missing rand rejects');
    await t.rejects(inline.decodeAsync(plain, 0, 1 as unknown as bigint), { code: 'ERR_INVALID_ARG_TYPE' }, 'inline: bad fileIV rejects');
    // Accepted edge values agree with the reference.
    const ts = new TypeScriptBlockCodec(cipher, layout);
    sameBytes(t, nat.encode(plain, 0, -1n, rand), ts.encode(plain, 0, -1n, rand), 'negative fileIV', `seed ${SEED}`);
    sameBytes(t, nat.encode(plain, 0, 1n << 70n, rand), ts.encode(plain, 0, 1n << 70n, rand), 'fileIV >= 2^64', `seed ${SEED}`);
    sameBytes(t, nat.encode(plain, -3, 5n, rand), ts.encode(plain, -3, 5n, rand), 'negative firstBlock', `seed ${SEED}`);
    sameBytes(t, nat.encode(Buffer.alloc(0), 0, 0n, null), Buffer.alloc(0), 'empty encode', `seed ${SEED}`);
    sameDecode(t, nat.decode(Buffer.alloc(0), 0, 0n), { plain: Buffer.alloc(0), badBlock: -1 }, 'empty decode', `seed ${SEED}`);
  });

  t.test('unsupported parameters and the codec factory', async (t) => {
    const r = rng(SEED + 5);
    const layout: BlockLayout = { blockSize: 1024, macBytes: 0, randBytes: 0, allowHoles: true };
    const aes = makeCipher(r, 192, 3);
    const camellia = new EncfsCipher({ name: 'ssl/camellia', major: 3, keySize: 192 }, r.bytes(24 + 16));
    t.throws(() => new NativeBlockCodec(camellia, layout), DvfsError, 'camellia is not native');
    t.equal(makeBlockCodec(camellia, layout).name, 'typescript', 'auto: camellia falls back to TypeScript');
    const odd: BlockLayout = { blockSize: 1000, macBytes: 0, randBytes: 0, allowHoles: true };
    t.throws(() => new NativeBlockCodec(aes, odd), { code: 'E_UNSUPPORTED' }, 'block size not a multiple of 16');
    t.equal(makeBlockCodec(aes, odd).name, 'typescript', 'auto: odd block size falls back');
    const full: BlockLayout = { blockSize: 64, macBytes: 8, randBytes: 56, allowHoles: true };
    t.throws(() => new NativeBlockCodec(aes, full), { code: 'E_UNSUPPORTED' }, 'header fills the block');

    const saved = { codec: process.env['DVFS_CODEC'], noNative: process.env['DVFS_NO_NATIVE'] };
    const restore = (): void => {
      for (const [k, v] of [['DVFS_CODEC', saved.codec], ['DVFS_NO_NATIVE', saved.noNative]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    };
    t.teardown(restore);
    delete process.env['DVFS_CODEC'];
    delete process.env['DVFS_NO_NATIVE'];
    const pick = (prefer?: 'auto' | 'native' | 'typescript'): BlockCodec => makeBlockCodec(aes, layout, prefer);
    t.equal(pick().name, 'native', 'auto: native when built');
    t.equal(pick('typescript').name, 'typescript', 'typescript when asked');
    t.equal(pick('native').name, 'native', 'native when asked');
    process.env['DVFS_CODEC'] = 'typescript';
    t.equal(pick().name, 'typescript', 'DVFS_CODEC=typescript overrides auto');
    t.equal(pick('native').name, 'native', 'DVFS_CODEC does not override an explicit choice');
    process.env['DVFS_CODEC'] = 'bogus';
    t.throws(() => pick(), { code: 'E_USAGE' }, 'DVFS_CODEC must be a codec name');
    delete process.env['DVFS_CODEC'];
    process.env['DVFS_NO_NATIVE'] = '1';
    const warnings: string[] = [];
    setNativeCodecWarningSink((m) => warnings.push(m));
    t.equal(loadNativeCodecModule(), null, 'DVFS_NO_NATIVE=1: not loaded');
    t.equal(pick().name, 'typescript', 'DVFS_NO_NATIVE=1: auto uses TypeScript');
    t.throws(() => pick('native'), { code: 'E_UNSUPPORTED' }, 'DVFS_NO_NATIVE=1: native refuses');
    t.same(warnings, [], 'DVFS_NO_NATIVE=1 does not warn');
    setNativeCodecWarningSink(null);
    restore();
  });
}
