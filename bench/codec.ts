/**
 * Block codec throughput: the TypeScript reference against the native addon (sync, async, batched like FUSE
 * writes and as one big batch), for the EncFS standard layout (AES-192, 1024-byte blocks, no MAC, holes) and
 * the paranoia layout (AES-256, 1024-byte blocks, 8-byte MAC headers), with `openssl enc -aes-256-cbc` over
 * the same number of bytes as the machine's ceiling.
 *
 *   node dist/bench/codec.js [--size MiB] [--ts-size MiB] [--runs N] [--batch KiB] [--json] [--out FILE]
 *
 * MB/s are 10^6 bytes of user data per second, the median of --runs runs. The TypeScript path is measured
 * on --ts-size MiB (default: the smaller of --size and 32) and scaled to MB/s. Targets: native >= 5x the
 * TypeScript codec, and within 2x of the openssl ceiling. Nothing is written to disk but the --out file.
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { TypeScriptBlockCodec, dataBytesPerBlock, type BlockCodec, type BlockLayout } from '../daemon/encfs/block-codec.js';
import { EncfsCipher } from '../daemon/encfs/cipher.js';
import { NativeBlockCodec, nativeCodecStatus } from '../daemon/encfs/native-codec.js';

interface Options {
  size: number;
  tsSize: number;
  runs: number;
  batch: number;
  json: boolean;
  out: string | null;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '256' },
      'ts-size': { type: 'string' },
      runs: { type: 'string', default: '3' },
      batch: { type: 'string', default: '128' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      'usage: node dist/bench/codec.js [--size MiB] [--ts-size MiB] [--runs N] [--batch KiB] [--json] [--out FILE]\n',
    );
    process.exit(0);
  }
  const num = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) {
      process.stderr.write(`codec bench: --${name} must be a number >= ${min}\n`);
      process.exit(2);
    }
    return n;
  };
  const size = num('size', values.size, 0.0625);
  return {
    size,
    tsSize: values['ts-size'] === undefined ? Math.min(size, 32) : num('ts-size', values['ts-size'], 0.0625),
    runs: Math.floor(num('runs', values.runs, 1)),
    batch: num('batch', values.batch, 1),
    json: values.json,
    out: values.out ?? null,
  };
}

const MiB = 1 << 20;

const LAYOUTS: Array<{ name: string; keyBits: number; layout: BlockLayout }> = [
  { name: 'standard', keyBits: 192, layout: { blockSize: 1024, macBytes: 0, randBytes: 0, allowHoles: true } },
  { name: 'paranoia', keyBits: 256, layout: { blockSize: 1024, macBytes: 8, randBytes: 0, allowHoles: true } },
];

type Op = 'encode' | 'decode';

interface Path {
  name: string;
  /** Runs op over the first `bytes` of plain (encode) or the matching raw bytes (decode). */
  run(op: Op, bytes: number): Promise<void>;
  /** How many user bytes to measure over. */
  bytes: number;
}

interface Result {
  layout: string;
  path: string;
  op: Op;
  bytes: number;
  mbps: number;
  samples: number[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

const mbps = (bytes: number, ms: number): number => bytes / 1e6 / (ms / 1000);

async function timeIt(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** `openssl enc -aes-256-cbc -nopad` over data piped from a buffer, output discarded: MB/s. */
async function opensslRate(data: Buffer, decrypt: boolean): Promise<number> {
  const args = ['enc', '-aes-256-cbc', ...(decrypt ? ['-d'] : []), '-K', randomBytes(32).toString('hex')];
  args.push('-iv', randomBytes(16).toString('hex'), '-nopad', '-bufsize', String(MiB));
  const t0 = performance.now();
  const child = spawn('openssl', args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin.on('error', () => undefined); // reported through the exit status
  child.stdin.end(data);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c) => resolve(c));
  });
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`openssl ${args.slice(0, 3).join(' ')} failed (${code}): ${stderr.trim()}`);
  return mbps(data.length, ms);
}

function log(o: Options, line: string): void {
  if (!o.json) process.stdout.write(`${line}\n`);
}

async function main(): Promise<void> {
  const o = options();
  const status = nativeCodecStatus();
  if (!status.available) {
    process.stderr.write(`codec bench: the native codec is not available (${status.reason ?? '?'}); run npm run build\n`);
    process.exitCode = 1;
    return;
  }
  const size = Math.floor((o.size * MiB) / 16) * 16;
  const tsSize = Math.min(size, Math.floor((o.tsSize * MiB) / 16) * 16);
  log(o, `codec bench: ${(size / MiB).toFixed(1)} MiB per run (TypeScript ${(tsSize / MiB).toFixed(1)} MiB), ` +
    `${o.runs} runs, ${o.batch} KiB batches; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); node ${process.version}; ${status.openssl ?? ''}`);

  const plain = Buffer.allocUnsafe(size);
  randomFillSync(plain);
  const results: Result[] = [];
  const fileIV = randomBytes(8).readBigUInt64LE();

  for (const { name, keyBits, layout } of LAYOUTS) {
    const cipher = new EncfsCipher({ name: 'ssl/aes', major: 3, keySize: keyBits }, randomBytes(keyBits / 8 + 16));
    const ts = new TypeScriptBlockCodec(cipher, layout);
    const nat = new NativeBlockCodec(cipher, layout);
    const D = dataBytesPerBlock(layout);
    const B = layout.blockSize;
    const raw = nat.encode(plain, 0, fileIV, null);
    // Sanity: the bench measures a codec that agrees with the reference.
    const probe = Math.min(size, 64 * D);
    if (!ts.encode(plain.subarray(0, probe), 0, fileIV, null).equals(raw.subarray(0, Math.ceil(probe / D) * B))) {
      throw new Error(`native and TypeScript encodings differ for ${name}`);
    }
    const batchBlocks = Math.max(1, Math.floor((o.batch * 1024) / D));

    /** Calls fn for each batch of the first `bytes` user bytes: (input, firstBlock). */
    const batches = (op: Op, bytes: number): Array<[Buffer, number]> => {
      const list: Array<[Buffer, number]> = [];
      const blocks = Math.ceil(bytes / D);
      for (let k = 0; k < blocks; k += batchBlocks) {
        const n = Math.min(batchBlocks, blocks - k);
        list.push(
          op === 'encode'
            ? [plain.subarray(k * D, Math.min(bytes, (k + n) * D)), k]
            : [raw.subarray(k * B, Math.min(raw.length, (k + n) * B)), k],
        );
      }
      return list;
    };
    const syncBatched = (codec: BlockCodec) => async (op: Op, bytes: number): Promise<void> => {
      for (const [buf, k] of batches(op, bytes)) {
        if (op === 'encode') codec.encode(buf, k, fileIV, null);
        else codec.decode(buf, k, fileIV);
      }
    };
    const asyncBatched = (codec: BlockCodec, inFlight: number) => async (op: Op, bytes: number): Promise<void> => {
      const list = batches(op, bytes);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < list.length) {
          const [buf, k] = list[next++] as [Buffer, number];
          if (op === 'encode') await codec.encodeAsync(buf, k, fileIV, null);
          else await codec.decodeAsync(buf, k, fileIV);
        }
      };
      await Promise.all(Array.from({ length: inFlight }, worker));
    };
    const whole = (codec: BlockCodec, async: boolean) => async (op: Op, bytes: number): Promise<void> => {
      const input = op === 'encode' ? plain.subarray(0, bytes) : raw.subarray(0, Math.ceil(bytes / D) * B);
      if (op === 'encode') {
        if (async) await codec.encodeAsync(input, 0, fileIV, null);
        else codec.encode(input, 0, fileIV, null);
      } else if (async) await codec.decodeAsync(input, 0, fileIV);
      else codec.decode(input, 0, fileIV);
    };

    const paths: Path[] = [
      { name: 'typescript', run: syncBatched(ts), bytes: tsSize },
      { name: 'native sync', run: syncBatched(nat), bytes: size },
      { name: 'native async', run: asyncBatched(nat, 1), bytes: size },
      { name: 'native async x4', run: asyncBatched(nat, 4), bytes: size },
      { name: 'native sync 1 batch', run: whole(nat, false), bytes: size },
      { name: 'native async 1 batch', run: whole(nat, true), bytes: size },
    ];
    for (const op of ['encode', 'decode'] as const) {
      for (const p of paths) {
        await p.run(op, p.bytes); // warm-up (also lets the allocator settle)
        const samples: number[] = [];
        for (let r = 0; r < o.runs; r++) samples.push(mbps(p.bytes, await timeIt(() => p.run(op, p.bytes))));
        const m = median(samples);
        results.push({ layout: name, path: p.name, op, bytes: p.bytes, mbps: m, samples });
        log(o, `  ${name.padEnd(9)} ${op} ${p.name.padEnd(21)} ${m.toFixed(0).padStart(6)} MB/s`);
      }
    }
  }

  // The ceiling: openssl enc -aes-256-cbc (encryption) over the same bytes; its decryption is shown too.
  const openssl: Record<Op, number> = { encode: 0, decode: 0 };
  for (const op of ['encode', 'decode'] as const) {
    const samples: number[] = [];
    await opensslRate(plain.subarray(0, Math.min(size, 16 * MiB)), op === 'decode'); // warm-up
    for (let r = 0; r < o.runs; r++) samples.push(await opensslRate(plain, op === 'decode'));
    openssl[op] = median(samples);
    log(o, `  openssl enc -aes-256-cbc${op === 'decode' ? ' -d' : '   '} ${openssl[op].toFixed(0).padStart(6)} MB/s`);
  }
  const ceiling = openssl.encode;

  // Ratios and targets, per layout, operation and native path.
  const get = (layout: string, path: string, op: Op): number =>
    results.find((r) => r.layout === layout && r.path === path && r.op === op)?.mbps ?? Number.NaN;
  const nativePaths = [...new Set(results.map((r) => r.path))].filter((p) => p !== 'typescript');
  const ratios = results
    .filter((r) => r.path !== 'typescript')
    .map((r) => {
      const vsTs = r.mbps / get(r.layout, 'typescript', r.op);
      const ceilingOverNative = ceiling / r.mbps;
      return {
        layout: r.layout,
        op: r.op,
        path: r.path,
        nativeOverTs: vsTs,
        ceilingOverNative,
        opensslSameOpOverNative: openssl[r.op] / r.mbps,
        meets: vsTs >= 5 && ceilingOverNative <= 2,
      };
    });

  const table: string[] = [];
  const header = ['layout', 'op', 'typescript', ...nativePaths, 'openssl enc', 'openssl -d'];
  table.push(header.map((h, i) => (i < 2 ? h.padEnd(9) : h.padStart(Math.max(10, h.length)))).join(' '));
  for (const { name } of LAYOUTS) {
    for (const op of ['encode', 'decode'] as const) {
      const cells = [name.padEnd(9), op.padEnd(9), get(name, 'typescript', op).toFixed(0).padStart(10)];
      for (const p of nativePaths) cells.push(get(name, p, op).toFixed(0).padStart(Math.max(10, p.length)));
      cells.push(openssl.encode.toFixed(0).padStart(11), openssl.decode.toFixed(0).padStart(10));
      table.push(cells.join(' '));
    }
  }
  const ratioLines = ratios.map(
    (r) =>
      `${r.layout.padEnd(9)} ${r.op.padEnd(7)} ${r.path.padEnd(21)} native/TS ${r.nativeOverTs.toFixed(1).padStart(6)}x` +
      `   ceiling/native ${r.ceilingOverNative.toFixed(2).padStart(5)}x   ${r.meets ? 'meets' : 'MISSES'} targets` +
      (r.op === 'decode' ? `   (openssl -d/native ${r.opensslSameOpOverNative.toFixed(2)}x)` : ''),
  );
  const allMet = ratios.every((r) => r.meets);
  const report = {
    bench: 'codec',
    unit: 'MB/s (10^6 bytes of user data per second, median)',
    sizeBytes: size,
    tsSizeBytes: tsSize,
    runs: o.runs,
    batchKiB: o.batch,
    node: process.version,
    openssl: status.openssl,
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? null,
    results,
    ceiling: {
      command: 'openssl enc -aes-256-cbc -nopad -bufsize 1048576 (stdin piped from a buffer, stdout to /dev/null)',
      mbps: ceiling,
      decryptMbps: openssl.decode,
    },
    ratios,
    targets: { nativeOverTsMin: 5, ceilingOverNativeMax: 2, allMet },
  };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    process.stdout.write(
      `\nMB/s of user data (median of ${o.runs}); batches of ${o.batch} KiB unless '1 batch'; 'x4' = 4 calls in flight;\n` +
        `ceiling = 'openssl enc' = openssl enc -aes-256-cbc -nopad (encryption); 'openssl -d' = its decryption\n`,
    );
    process.stdout.write(`${table.join('\n')}\n\n`);
    process.stdout.write(
      `targets: native >= 5x TypeScript, ceiling/native <= 2x (ceiling ${ceiling.toFixed(0)} MB/s)\n` +
        `${ratioLines.join('\n')}\nall targets met: ${allMet ? 'yes' : 'NO'}\n\n`,
    );
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }
  if (o.out !== null) writeFileSync(o.out, `${JSON.stringify(report, null, 2)}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`codec bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
