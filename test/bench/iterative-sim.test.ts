/**
 * bench/iterative-sim: its pieces (payload regenerated and compared, medians and targets, the SVG) and a smoke
 * run of the whole benchmark at a tiny size on the real local SLURM and Swift (skipped loudly where they, FUSE,
 * git-annex or encfs are missing): the JSON, Markdown and SVG are written and the self-check passed.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { run } from '../../bench/lib/proc.js';
import { checkStagePayload } from '../../bench/iterative-sim/payload-check.js';
import { payloadPath, writeStage, type StageSpec } from '../../bench/iterative-sim/payload.js';
import { whyUnavailable } from '../../bench/iterative-sim/services.js';
import { summarize, targets } from '../../bench/iterative-sim/summary.js';
import { plotSvg } from '../../bench/iterative-sim/svg.js';
import type { VariantRun } from '../../bench/iterative-sim/variant.js';
import type { Result } from '../../bench/iterative-sim/report.js';

const MAIN = fileURLToPath(new URL('../../bench/iterative-sim/main.js', import.meta.url));

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'dvfs-itersim-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the payload is regenerated from its seed: an identical copy passes, any change is found', async (t) => {
  const dir = tempDir(t);
  const spec: StageSpec = { stage: 3, ranks: 2, filesPerRank: 3, fileSize: 1_500_000, seed: 'test' };
  const stage = join(dir, 'stage-3');
  await writeStage(stage, spec);
  t.equal(await checkStagePayload(stage, spec), 2 * 3 * 1_500_000, 'the written payload checks out');
  t.not(readFileSync(join(stage, payloadPath(0, 0))).equals(readFileSync(join(stage, payloadPath(0, 1)))), 'files differ from each other');
  await t.rejects(checkStagePayload(stage, { ...spec, seed: 'other' }), { name: 'PayloadMismatch', message: /rank-0\/f00000: content differs in bytes 0\.\./ }, 'another seed is another payload');

  const flipped = join(stage, payloadPath(1, 2));
  const bytes = readFileSync(flipped);
  bytes[1_200_000] = (bytes[1_200_000] as number) ^ 1;
  writeFileSync(flipped, bytes);
  await t.rejects(checkStagePayload(stage, spec), { message: /rank-1\/f00002: content differs in bytes 1048576\.\./ }, 'one flipped bit is found and named');
  bytes[1_200_000] = (bytes[1_200_000] as number) ^ 1;
  writeFileSync(flipped, bytes);

  appendFileSync(join(stage, payloadPath(0, 1)), 'x');
  await t.rejects(checkStagePayload(stage, spec), { message: /rank-0\/f00001: size 1500001, expected 1500000/ }, 'a longer file is found');
  rmSync(join(stage, payloadPath(0, 1)));
  await t.rejects(checkStagePayload(stage, spec), { message: /rank-0\/f00001: cannot open/ }, 'a missing file is found');
});

t.test('an extra file in a stage directory is found', async (t) => {
  const dir = tempDir(t);
  const spec: StageSpec = { stage: 1, ranks: 1, filesPerRank: 2, fileSize: 10, seed: 's' };
  await writeStage(dir, spec);
  writeFileSync(join(dir, 'rank-0', 'stray'), 'x');
  await t.rejects(checkStagePayload(dir, spec), { message: /unexpected file\(s\) rank-0\/stray/ });
});

function fakeRun(variant: VariantRun['variant'], shape: VariantRun['shape'], run: number, stage: number, commit: number, push: number): VariantRun {
  return { variant, shape, run, bytes: 100e6, files: 10, stages: [{ stage, write: stage / 2, commit }], push, notes: {} };
}

t.test('medians over runs, ratios and targets', async (t) => {
  const runs = [
    ...[0, 1, 2].map((r) => fakeRun('plain', 'large', r, 10, 5, 2)),
    fakeRun('dvfs', 'large', 0, 11, 0.5, 1),
    fakeRun('dvfs', 'large', 1, 11.5, 0.9, 1),
    fakeRun('dvfs', 'large', 2, 100, 0.6, 1),
    ...[0, 1, 2].map((r) => fakeRun('dvfs', 'small', r, 10, 2, 4)),
  ];
  const s = summarize(runs, [
    { id: 'large', fileSize: 50e6 },
    { id: 'small', fileSize: 100e3 },
  ]);
  const large = s[0]?.figures.dvfs;
  t.equal(large?.stage.seconds, 11.5, 'median stage time (one outlier run does not move it)');
  t.equal(large?.commit.seconds, 0.6, 'median commit time');
  t.equal(large?.push.mbPerSecond, 100, 'MB/s = 10^6 bytes per second');
  t.equal(s[0]?.dvfsOver.plain?.stage, 1.15, 'dvfs ÷ plain');
  t.equal(s[1]?.dvfsOver.plain, undefined, 'no ratio without the peer');
  const got = Object.fromEntries(targets(s).map((x) => [x.name, x.pass]));
  t.same(got, {
    'dvfs commit ≤ 10 % of its stage time (large)': true,
    'dvfs commit ≤ 10 % of its stage time (small)': false,
    'dvfs push of small ≥ 50 % of the large-shape bandwidth': false,
    'dvfs stage time ≤ 1.2× the unencrypted stage (large)': true,
  });
  const svg = plotSvg(s, 'test <plot>');
  t.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/, 'an SVG document');
  t.match(svg, /test &lt;plot&gt;/, 'the title is escaped');
  t.equal((svg.match(/<polyline /g) ?? []).length, 6, 'one line per variant and step: plain and dvfs × stage, commit, push');
  t.match(svg, /data-variant="dvfs" data-step="push"[^>]*points="[\d.]+,[\d.]+ [\d.]+,[\d.]+"/, 'the dvfs push line has a point per shape');
});

const unavailable = whyUnavailable(['plain', 'encfs', 'dvfs']);
if (unavailable !== null) console.error(`\n!!! SKIPPING the iterative-sim smoke run: ${unavailable}\n`);

t.test('smoke run: --size 8MiB --runs 1 on the local SLURM and Swift', { skip: unavailable === null ? false : `the iterative-sim smoke run cannot start: ${unavailable}` }, async (t) => {
  const results = tempDir(t);
  const r = await run(process.execPath, [MAIN, '--size', '8MiB', '--runs', '1', '--stages', '2', '--shapes', 'large,small', '--files-per-rank', 'small=50', '--results', results, '--json'], {
    timeoutMs: 540_000,
    okCodes: [0, 1, 2],
  });
  t.equal(r.code, 0, `the benchmark succeeded${r.code === 0 ? '' : `: ${r.stderr.slice(-2000)}`}`);
  if (r.code !== 0) return;
  const result = JSON.parse(r.stdout) as Result;
  const base = join(results, `${result.date}-${result.host.hostname}`);
  for (const ext of ['json', 'md', 'svg']) t.ok(existsSync(`${base}.${ext}`), `${ext} written`);
  t.same(JSON.parse(readFileSync(`${base}.json`, 'utf8')), result, 'the JSON file is what --json printed');
  t.equal(result.selfCheck.passed, true, 'the self-check passed');
  t.equal(result.selfCheck.checks.length, 2, 'one dvfs check per shape and run');
  t.equal(result.runs.length, 6, '2 shapes × 3 variants × 1 run');
  for (const v of result.runs) {
    t.equal(v.stages.length, 2, `${v.variant} ${v.shape}: two stages`);
    t.ok(v.stages.every((s) => s.stage > 0 && s.write > 0 && s.write <= s.stage && s.commit > 0) && v.push > 0, `${v.variant} ${v.shape}: every step took time, the write inside its stage`);
  }
  const large = result.runs.find((v) => v.shape === 'large');
  t.equal(large?.bytes, 2 * 8 * 2 ** 20, 'large: 2 stages × 8 MiB');
  t.equal(result.runs.find((v) => v.shape === 'small')?.files, 2 * result.options.ranks * 50, 'small: 50 files per rank per stage');
  t.equal(result.targets.length, 4, 'commit share per shape, push small vs large, stage vs plain');
  const md = readFileSync(`${base}.md`, 'utf8');
  t.match(md, /\| large \| .* \| dvfs \| [\d.]+ \([\d.]+\) \|/, 'the Markdown table has the dvfs row');
  t.match(md, /Self-check: passed/, 'the Markdown says the self-check passed');
  t.match(md, /Load average/, 'and the load average');
  t.equal((readFileSync(`${base}.svg`, 'utf8').match(/<polyline /g) ?? []).length, 9, 'the plot has 3 variants × 3 steps');
});
