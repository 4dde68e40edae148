/**
 * Push benchmark: `dvfs push` against its peers, all to the same local OpenStack Swift (S3 API, started by
 * this script with the test suite's fixture, test/fixtures/swift/swift.sh), side by side in one run.
 *
 *   node dist/bench/push.js [--shapes large,medium,small] [--runs N] [--scale S] [--dir BASE] [--only T,...]
 *
 * Shapes (those of the commit benchmark): large = 1 file of 1 GiB, medium = 1 000 files of 1 MiB, small =
 * 10 000 files of 100 KiB; --scale multiplies the file count (large: the file size). Per shape the plaintext is
 * generated once, put into a dvfs repository (encfs mode) and committed; then each run sends it, to a fresh
 * bucket per tool, with:
 *   dvfs     dvfs push REPO s3://BUCKET?endpoint=...       (ciphertext objects, packed and sealed)
 *   restic   restic backup SRC to s3:ENDPOINT/BUCKET         (encrypts and packs the plaintext itself)
 *   rclone   rclone copy TREE (the EncFS ciphertext tree)   (one object per file, --transfers 4)
 *   s3cmd    s3cmd sync TREE                                 (one object per file)
 * plus, per run, the endpoint's ceiling: one 1 GiB object sent as a multipart upload with parallel parts.
 * Swift is restarted empty before every shape and run, so no run sees another's data.
 *
 * The figure for each tool is its wall time (median of the runs) and the plaintext bytes per second it moved.
 * Targets (issue 5): dvfs >= 1.3x restic's speed on every shape, and >= 75 % of the ceiling on every shape.
 * The run checks itself: every dvfs push is cloned back and compared byte for byte before its figure counts.
 * Results: bench/results/push-<date>.json and .md.
 */
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openBackend } from '../daemon/remote/open-backend.js';
import { parseRemoteUrl } from '../daemon/remote/url.js';
import { addTempDir, checkInterrupted, handleSignals, runMain } from './lib/interrupt.js';
import { loud, makeLog } from './lib/log.js';
import { run, which } from './lib/proc.js';
import { hostInfo, median } from './lib/report.js';

const log = makeLog('push');
// The SDK's Node-version notice would interleave with the progress lines (dvfs's own S3 backend silences it too).
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'cli', 'dvfs.js');
const SWIFT_SH = join(ROOT, 'test', 'fixtures', 'swift', 'swift.sh');
const MAKE_FILES = fileURLToPath(new URL('./lib/make-files.js', import.meta.url));

type ShapeId = 'large' | 'medium' | 'small';
type Tool = 'dvfs' | 'restic' | 'rclone' | 's3cmd';
const ALL_SHAPES: ShapeId[] = ['large', 'medium', 'small'];
const ALL_TOOLS: Tool[] = ['dvfs', 'restic', 'rclone', 's3cmd'];
const BASE: Record<ShapeId, { files: number; kib: number }> = {
  large: { files: 1, kib: 1 << 20 },
  medium: { files: 1000, kib: 1024 },
  small: { files: 10_000, kib: 100 },
};
const CEILING_BYTES = 1 << 30;
const TIMEOUT_MS = 30 * 60 * 1000;
const PASSWORD = 'push benchmark password';

interface Swift {
  state: string;
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

interface Options {
  shapes: ShapeId[];
  runs: number;
  scale: number;
  dir: string;
  only: Tool[];
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      shapes: { type: 'string', default: ALL_SHAPES.join(',') },
      runs: { type: 'string', default: '3' },
      scale: { type: 'string', default: '1' },
      dir: { type: 'string', default: tmpdir() },
      only: { type: 'string', default: ALL_TOOLS.join(',') },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/push.js [--shapes large,medium,small] [--runs N] [--scale S] [--dir BASE] [--only dvfs,restic,rclone,s3cmd]\n');
    process.exit(0);
  }
  const list = <T extends string>(name: string, v: string, all: T[]): T[] => {
    const xs = v.split(',').filter(Boolean) as T[];
    for (const x of xs) if (!all.includes(x)) throw new Error(`--${name}: unknown ${x} (one of ${all.join(', ')})`);
    return xs;
  };
  const runs = Number(values.runs);
  const scale = Number(values.scale);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  if (!(scale > 0 && scale <= 10)) throw new Error('--scale must be in (0, 10]');
  return { shapes: list('shapes', values.shapes, ALL_SHAPES), runs, scale, dir: values.dir, only: list('only', values.only, ALL_TOOLS) };
}

// ------------------------------------------------------------------------------------------------- Swift

async function swiftStart(state: string): Promise<Swift> {
  const r = await run('bash', [SWIFT_SH, 'start', state], { timeoutMs: 180_000, env: { ...process.env, DVFS_SWIFT_OWNER_PID: String(process.pid) } });
  const env = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^([A-Z_0-9]+)=(.*)$/.exec(line);
    if (m !== null) env.set(m[1] as string, m[2] as string);
  }
  const endpoint = env.get('SWIFT_S3_ENDPOINT');
  if (endpoint === undefined) throw new Error(`swift.sh start printed no endpoint:\n${r.stderr}`);
  return { state, endpoint, region: env.get('SWIFT_S3_REGION') ?? 'us-east-1', accessKeyId: env.get('SWIFT_S3_ACCESS_KEY_ID') ?? '', secretAccessKey: env.get('SWIFT_S3_SECRET_ACCESS_KEY') ?? '' };
}

async function swiftStop(state: string): Promise<void> {
  await run('bash', [SWIFT_SH, 'stop', state], { timeoutMs: 120_000, duringAbort: true }).catch(() => undefined);
  await rm(state, { recursive: true, force: true });
}

async function createBucket(s: Swift, bucket: string): Promise<void> {
  const client = new S3Client({ endpoint: s.endpoint, region: s.region, forcePathStyle: true, credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey } });
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
}

// ------------------------------------------------------------------------------------------------- tools

function awsEnv(s: Swift): NodeJS.ProcessEnv {
  return { ...process.env, AWS_ACCESS_KEY_ID: s.accessKeyId, AWS_SECRET_ACCESS_KEY: s.secretAccessKey, AWS_DEFAULT_REGION: s.region, DVFS_NO_PROGRESS: '1' };
}

interface Shape {
  id: ShapeId;
  files: number;
  kib: number;
  bytes: number;
  src: string;
  repo: string;
}

/** A tool's push: wall seconds and the CPU seconds of its processes (the client's share of the 2 cores). */
interface Timing {
  seconds: number;
  cpuSeconds: number;
}

async function pushWith(tool: Tool, shape: Shape, s: Swift, bucket: string, work: string): Promise<Timing> {
  const env = awsEnv(s);
  const host = new URL(s.endpoint).host;
  switch (tool) {
    case 'dvfs': {
      const url = `s3://${bucket}?endpoint=${encodeURIComponent(s.endpoint)}&region=${s.region}`;
      const r = await run(process.execPath, [CLI, 'push', shape.repo, url, '--json'], { env: { ...env, DVFS_PASSWORD_FILE: join(work, 'pw') }, timeoutMs: TIMEOUT_MS });
      await checkClone(shape, url, env, work);
      return r;
    }
    case 'restic': {
      // restic's S3 client (minio-go) signs uploads over plain http as aws-chunked streams, which Swift's s3api
      // refuses (501); with signature v2, set through a MinIO client config file, it sends plain PUTs. The AWS_*
      // variables must be absent, or they win over the file (and bring v4 back).
      const mc = join(work, 'mc.json');
      writeFileSync(mc, JSON.stringify({ version: '10', aliases: { s3: { url: s.endpoint, accessKey: s.accessKeyId, secretKey: s.secretAccessKey, api: 'S3v2', path: 'auto' } } }), { mode: 0o600 });
      const renv: NodeJS.ProcessEnv = { ...env, MINIO_SHARED_CREDENTIALS_FILE: mc, RESTIC_PASSWORD: PASSWORD, RESTIC_REPOSITORY: `s3:${s.endpoint}/${bucket}`, RESTIC_CACHE_DIR: join(work, 'restic-cache') };
      delete renv['AWS_ACCESS_KEY_ID'];
      delete renv['AWS_SECRET_ACCESS_KEY'];
      await run('restic', ['init'], { env: renv, timeoutMs: 120_000 });
      return await run('restic', ['backup', '--quiet', shape.src], { env: renv, timeoutMs: TIMEOUT_MS });
    }
    case 'rclone': {
      const cenv: NodeJS.ProcessEnv = {
        ...env,
        RCLONE_CONFIG_SWIFT_TYPE: 's3',
        RCLONE_CONFIG_SWIFT_PROVIDER: 'Other',
        RCLONE_CONFIG_SWIFT_ENDPOINT: s.endpoint,
        RCLONE_CONFIG_SWIFT_REGION: s.region,
        RCLONE_CONFIG_SWIFT_ACCESS_KEY_ID: s.accessKeyId,
        RCLONE_CONFIG_SWIFT_SECRET_ACCESS_KEY: s.secretAccessKey,
      };
      delete cenv['AWS_CA_BUNDLE']; // rclone's S3 client cannot use a CA bundle on its transport (and needs none on http)
      return await run('rclone', ['copy', join(shape.repo, 'tree'), `swift:${bucket}/tree`, '--transfers', '4', '--s3-no-check-bucket'], { env: cenv, timeoutMs: TIMEOUT_MS });
    }
    case 's3cmd': {
      const cfg = join(work, 's3cmd.cfg');
      writeFileSync(
        cfg,
        `[default]\naccess_key = ${s.accessKeyId}\nsecret_key = ${s.secretAccessKey}\nhost_base = ${host}\nhost_bucket = ${host}\nuse_https = False\nbucket_location = ${s.region}\nsignature_v2 = False\n`,
        { mode: 0o600 },
      );
      return await run('s3cmd', ['-c', cfg, '--no-progress', '--quiet', 'sync', `${join(shape.repo, 'tree')}/`, `s3://${bucket}/tree/`], { env, timeoutMs: TIMEOUT_MS });
    }
  }
}

/** A dvfs push counts only if the remote clones back to the same plaintext (digest of every file). */
async function checkClone(shape: Shape, url: string, env: NodeJS.ProcessEnv, work: string): Promise<void> {
  const clone = join(work, 'clone');
  const out = join(work, 'clone-out');
  await rm(clone, { recursive: true, force: true });
  await rm(out, { recursive: true, force: true });
  const penv = { ...env, DVFS_PASSWORD_FILE: join(work, 'pw') };
  await run(process.execPath, [CLI, 'clone', url, clone], { env: penv, timeoutMs: TIMEOUT_MS });
  await run(process.execPath, [CLI, 'restore', clone, 'HEAD', '/data', '--to', out], { env: penv, timeoutMs: TIMEOUT_MS });
  if ((await treeDigest(join(out, 'data'))) !== (await treeDigest(shape.src))) throw new Error(`${shape.id}: the pushed snapshot did not clone back byte-identical`);
  await rm(clone, { recursive: true, force: true });
  await rm(out, { recursive: true, force: true });
}

async function treeDigest(dir: string): Promise<string> {
  const h = createHash('sha256');
  const files = (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length)).sort();
  for (const f of files) h.update(f).update(createHash('sha256').update(await readFile(join(dir, f))).digest());
  return `${files.length}:${h.digest('hex')}`;
}

/** The endpoint's ceiling: one object of CEILING_BYTES as a multipart upload with parallel parts. */
async function ceiling(s: Swift, bucket: string): Promise<number> {
  const url = parseRemoteUrl(`s3://${bucket}?endpoint=${encodeURIComponent(s.endpoint)}&region=${s.region}`);
  process.env['AWS_ACCESS_KEY_ID'] = s.accessKeyId;
  process.env['AWS_SECRET_ACCESS_KEY'] = s.secretAccessKey;
  const backend = await openBackend(url);
  try {
    const block = Buffer.alloc(16 << 20, 7);
    for (let i = 0; i < block.length; i += 4096) block.writeUInt32LE(i, i);
    const started = performance.now();
    const body = async function* (): AsyncGenerator<Uint8Array> {
      for (let sent = 0; sent < CEILING_BYTES; sent += block.length) yield block;
    };
    await backend.putLarge('ceiling/one-object', body, CEILING_BYTES);
    return (performance.now() - started) / 1000;
  } finally {
    await backend.close();
  }
}

// ------------------------------------------------------------------------------------------------- main

interface Sample {
  shape: ShapeId;
  run: number;
  tool: Tool | 'ceiling';
  seconds: number;
  /** CPU seconds of the tool's processes (absent for the ceiling, which runs in this process). */
  cpuSeconds?: number;
  bytes: number;
}

async function prepareShape(id: ShapeId, o: Options, work: string): Promise<Shape> {
  const b = BASE[id];
  const files = id === 'large' ? 1 : Math.max(1, Math.round(b.files * o.scale));
  const kib = id === 'large' ? Math.max(1, Math.round(b.kib * o.scale)) : b.kib;
  const src = join(work, `${id}-src`);
  const repo = join(work, `${id}-repo`);
  log(`${id}: generating ${files} file(s) of ${kib} KiB`);
  await run(process.execPath, [MAKE_FILES, src, String(files), String(kib)], { timeoutMs: TIMEOUT_MS });
  const env = { ...process.env, DVFS_PASSWORD_FILE: join(work, 'pw'), DVFS_NO_PROGRESS: '1' };
  await run(process.execPath, [CLI, 'init', repo, '--mode', 'encfs', '--kdf-iterations', '1000'], { env, timeoutMs: 120_000 });
  log(`${id}: dvfs put + commit (not timed)`);
  await run(process.execPath, [CLI, 'put', repo, src, '/data'], { env, timeoutMs: TIMEOUT_MS });
  await run(process.execPath, [CLI, 'commit', repo, '-m', id], { env, timeoutMs: TIMEOUT_MS });
  return { id, files, kib, bytes: files * kib * 1024, src, repo };
}

function available(tools: Tool[]): Tool[] {
  return tools.filter((t) => {
    if (t === 'dvfs' || which(t) !== null) return true;
    loud(`${t} is not installed: its column is left out (apt-get install ${t})`);
    return false;
  });
}

async function main(): Promise<void> {
  handleSignals();
  const o = options();
  const work = mkdtempSync(join(o.dir, 'dvfs-bench-push-'));
  addTempDir(work);
  writeFileSync(join(work, 'pw'), `${PASSWORD}\n`, { mode: 0o600 });
  const tools = available(o.only);
  const samples: Sample[] = [];
  try {
    for (const id of o.shapes) {
      const shape = await prepareShape(id, o, work);
      for (let r = 0; r < o.runs; r++) {
        const state = join(work, 'swift');
        mkdirSync(state, { recursive: true });
        const s = await swiftStart(state);
        try {
          // Rotate the order so no tool always goes first (or last) on a warm or cold system.
          const order = tools.map((_, i) => tools[(i + r) % tools.length] as Tool);
          for (const tool of order) {
            checkInterrupted();
            const bucket = `bench-${tool}-${r}`;
            await createBucket(s, bucket);
            const { seconds, cpuSeconds } = await pushWith(tool, shape, s, bucket, work);
            samples.push({ shape: id, run: r, tool, seconds, cpuSeconds, bytes: shape.bytes });
            log(`${id} run ${r + 1}/${o.runs}: ${tool} ${seconds.toFixed(2)} s (${(shape.bytes / 2 ** 20 / seconds).toFixed(1)} MiB/s), CPU ${cpuSeconds.toFixed(2)} s`);
          }
          await createBucket(s, `bench-ceiling-${r}`);
          const c = await ceiling(s, `bench-ceiling-${r}`);
          samples.push({ shape: id, run: r, tool: 'ceiling', seconds: c, bytes: CEILING_BYTES });
          log(`${id} run ${r + 1}/${o.runs}: ceiling ${(CEILING_BYTES / 2 ** 20 / c).toFixed(1)} MiB/s`);
        } finally {
          await swiftStop(state);
        }
      }
      await rm(shape.src, { recursive: true, force: true });
      await rm(shape.repo, { recursive: true, force: true });
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  report(o, tools, samples);
}

function report(o: Options, tools: Tool[], samples: Sample[]): void {
  const date = new Date().toISOString().slice(0, 10);
  const rows: string[] = [];
  const summary: Record<string, unknown>[] = [];
  let allPass = true;
  rows.push('| shape | ' + tools.map((t) => `${t} s (MiB/s)`).join(' | ') + ' | ceiling MiB/s | dvfs vs restic | dvfs % of ceiling | ' + tools.map((t) => `${t} CPU s`).join(' | ') + ' |');
  rows.push('|' + ' --- |'.repeat(2 * tools.length + 4));
  for (const id of o.shapes) {
    const of = (tool: Tool | 'ceiling'): number | null => median(samples.filter((s) => s.shape === id && s.tool === tool).map((s) => s.seconds));
    const cpuOf = (tool: Tool): number | null => median(samples.filter((s) => s.shape === id && s.tool === tool && s.cpuSeconds !== undefined).map((s) => s.cpuSeconds as number));
    const bytes = samples.find((s) => s.shape === id && s.tool !== 'ceiling')?.bytes ?? 0;
    const mibs = (sec: number | null, b = bytes): number | null => (sec === null ? null : b / 2 ** 20 / sec);
    const ceil = mibs(of('ceiling'), CEILING_BYTES);
    const dvfs = of('dvfs');
    const restic = of('restic');
    const vsRestic = dvfs !== null && restic !== null ? restic / dvfs : null;
    const ofCeiling = ceil !== null && dvfs !== null ? (mibs(dvfs) as number) / ceil : null;
    const pass = (vsRestic === null || vsRestic >= 1.3) && (ofCeiling === null || ofCeiling >= 0.75);
    allPass &&= pass;
    rows.push(
      `| ${id} | ` +
        tools.map((t) => (of(t) === null ? '–' : `${(of(t) as number).toFixed(2)} (${(mibs(of(t)) as number).toFixed(0)})`)).join(' | ') +
        ` | ${ceil?.toFixed(0) ?? '–'} | ${vsRestic === null ? '–' : `${vsRestic.toFixed(2)}× ${vsRestic >= 1.3 ? 'pass' : 'FAIL'}`} | ${ofCeiling === null ? '–' : `${(ofCeiling * 100).toFixed(0)} % ${ofCeiling >= 0.75 ? 'pass' : 'FAIL'}`} | ` +
        tools.map((t) => cpuOf(t)?.toFixed(2) ?? '–').join(' | ') +
        ' |',
    );
    summary.push({ shape: id, bytes, seconds: Object.fromEntries(tools.map((t) => [t, of(t)])), cpuSeconds: Object.fromEntries(tools.map((t) => [t, cpuOf(t)])), ceilingMiBs: ceil, dvfsVsRestic: vsRestic, dvfsOfCeiling: ofCeiling, pass });
  }
  const host = hostInfo();
  const md = [
    `# Push benchmark, ${date}`,
    '',
    `Host: ${host.cpus} × ${host.cpuModel}, ${host.memGiB} GiB, Node ${host.node}, kernel ${host.kernel}. Local Swift (s3api + tempauth, one replica) on loopback, restarted empty before every run.`,
    `Median of ${o.runs} run(s), scale ${o.scale}; wall time per tool (MiB/s of plaintext moved) and the CPU seconds of its processes (the client's share of the 2 cores Swift also runs on). Targets: dvfs ≥ 1.3× restic, ≥ 75 % of the multipart ceiling.`,
    '',
    ...rows,
    '',
    `Overall: ${allPass ? 'all targets met' : 'some targets missed'}. Every dvfs push was cloned back and compared byte for byte.`,
    '',
  ].join('\n');
  const out = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(out, { recursive: true });
  const suffix = o.scale === 1 ? '' : `-scale${o.scale}`;
  writeFileSync(join(out, `push-${date}${suffix}.json`), JSON.stringify({ date, host, options: o, summary, samples }, null, 2) + '\n');
  writeFileSync(join(out, `push-${date}${suffix}.md`), md);
  process.stdout.write(md);
}

runMain({ name: 'push benchmark', log, stopping: 'stopping Swift and removing the work directory', removeDir: (dir) => rm(dir, { recursive: true, force: true }) }, main);
