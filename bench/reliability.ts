/**
 * Reliability report (issue 9): runs the fuzz tests (every parser they fuzz), the fault tests (disk full,
 * kill -9 of commit / push / the mount daemon, the dead lock holder) and the lying-S3 tests through the real
 * test runner, and tallies from their TAP output: cases tried per parser, faults injected per kind, failed
 * assertions, and data loss found — failed assertions about data (a snapshot or file not byte-identical,
 * not intact, not committed), which must be 0. It adds the scale figures of the newest
 * bench/results/scale-*.json when there is one (written by bench/scale.ts).
 *
 *   node dist/bench/reliability.js [--fuzz-cases N] [--seeds N] [--seed N] [--only fuzz|fault|s3]
 *                                  [--json] [--out FILE] [--md FILE] [--no-save]
 *   npm run bench:reliability -- [OPTIONS]      (builds the checkout first)
 *
 * --fuzz-cases sets DVFS_FUZZ_CASES (default: the harness's own, 10 000 per parser), --seeds sets
 * DVFS_FAULT_SEEDS for every fault test (default: each test's own), --seed the first seed (default random;
 * printed, and every failure message of the tests names its seed). Results go to
 * bench/results/reliability-<YYYY-MM-DD>.{json,md} unless --no-save. Exit status 1 when any assertion failed.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loud, makeLog } from './lib/log.js';
import { hostInfo, type HostInfo } from './lib/report.js';

const log = makeLog('reliability');
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results');

const SUITES = {
  fuzz: { title: 'fuzzing', dir: 'dist/test/fuzz' },
  fault: { title: 'faults (disk full, kill -9, dead lock holder)', files: ['dist/test/fault/disk-full.test.js', 'dist/test/fault/kill9.test.js'] },
  s3: { title: 'S3 server that lies', files: ['dist/test/fault/s3-lies.test.js'] },
} as const;
type SuiteName = keyof typeof SUITES;

/** Failed assertions whose description is about data surviving: each one is data loss. */
const DATA_ASSERTION = /byte-identical|intact|reads back|holds every file|is unchanged|HEAD is the old/i;

interface SuiteResult {
  suite: SuiteName;
  files: string[];
  seconds: number;
  passed: number;
  failed: number;
  skipped: number;
  failures: string[];
  dataLoss: string[];
}

interface Report {
  date: string;
  host: HostInfo;
  settings: { fuzzCases: number | null; seeds: number | null; firstSeed: number };
  parsers: { name: string; cases: number; typedErrors: number; accepted: number; seed: number }[];
  faults: Record<string, number>;
  suites: SuiteResult[];
  dataLoss: number;
  scale: { file: string; figures: Record<string, number | string> } | null;
}

function suiteFiles(name: SuiteName): string[] {
  const s = SUITES[name];
  if ('files' in s) return [...s.files];
  return readdirSync(join(ROOT, s.dir))
    .filter((f) => f.endsWith('.test.js'))
    .sort()
    .map((f) => `${s.dir}/${f}`);
}

/** Runs test files through test/run.sh; returns the raw TAP log. */
function runTests(files: string[], env: NodeJS.ProcessEnv): { tap: string; seconds: number } {
  const logDir = mkdtempSync(join(tmpdir(), 'dvfs-reliability-'));
  const started = performance.now();
  try {
    const r = spawnSync('bash', ['test/run.sh', ...files], { cwd: ROOT, env: { ...process.env, ...env, DVFS_TEST_LOG_DIR: logDir, DVFS_TEST_JOBS: '1' }, stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.error) throw r.error;
    return { tap: readFileSync(join(logDir, 'tap.log'), 'utf8'), seconds: (performance.now() - started) / 1000 };
  } finally {
    rmSync(logDir, { recursive: true, force: true });
  }
}

/**
 * Leaf assertions of a TAP stream: description and outcome. A point that closes a subtest ("# Subtest: X" at
 * the same indentation, then its body, then "ok N - X") is not counted: its assertions are.
 */
function assertions(tap: string): { ok: boolean; skip: boolean; text: string }[] {
  const out: { ok: boolean; skip: boolean; text: string }[] = [];
  const open: { indent: number; name: string; fails: number }[] = [];
  for (const line of tap.split('\n')) {
    const sub = /^(\s*)# Subtest: (.*)$/.exec(line);
    if (sub !== null) {
      open.push({ indent: (sub[1] ?? '').length, name: (sub[2] ?? '').trim(), fails: 0 });
      continue;
    }
    const m = /^(\s*)(not ok|ok) \d+ - (.*)$/.exec(line);
    if (m === null) continue;
    const indent = (m[1] ?? '').length;
    const text = (m[3] ?? '').replace(/\s*# time=.*$/, '');
    const top = open.at(-1);
    if (top !== undefined && top.indent === indent && text.replace(/\s*#\s*(SKIP|TODO).*$/i, '') === top.name) {
      open.pop();
      // A failed subtest with no failed point of its own (a crash, a timeout) counts once.
      const own = m[2] === 'not ok' && top.fails === 0 && !/# SKIP/i.test(text);
      if (own) out.push({ ok: false, skip: false, text: `${text} (the subtest failed)` });
      const parent = open.at(-1);
      if (parent !== undefined) parent.fails += top.fails + (own ? 1 : 0);
      continue;
    }
    if (m[2] === 'not ok' && top !== undefined) top.fails++;
    out.push({ ok: m[2] === 'ok', skip: /# SKIP/i.test(text), text });
  }
  return out;
}

function tally(suite: SuiteName, files: string[], tap: string, seconds: number): SuiteResult {
  const all = assertions(tap);
  const failures = all.filter((a) => !a.ok && !a.skip).map((a) => a.text);
  return {
    suite,
    files,
    seconds: Math.round(seconds),
    passed: all.filter((a) => a.ok && !a.skip).length,
    failed: failures.length,
    skipped: all.filter((a) => a.skip).length,
    failures,
    dataLoss: failures.filter((f) => DATA_ASSERTION.test(f)),
  };
}

/** "ok N - NAME: C cases (seed S): T typed errors, A accepted" from the fuzz harness. */
function parsers(tap: string): Report['parsers'] {
  const out: Report['parsers'] = [];
  for (const m of tap.matchAll(/ok \d+ - (.+?): (\d+) cases \(seed (\d+)\): (\d+) typed errors, (\d+) accepted/g)) {
    out.push({ name: m[1] as string, cases: Number(m[2]), seed: Number(m[3]), typedErrors: Number(m[4]), accepted: Number(m[5]) });
  }
  return out;
}

/** Faults the fault tests report having injected, by kind. */
function faults(tap: string, into: Record<string, number>): void {
  const add = (kind: string, n = 1): void => {
    into[kind] = (into[kind] ?? 0) + n;
  };
  for (const m of tap.matchAll(/# fault injected: (.+)$/gm)) add(m[1] as string);
  for (const m of tap.matchAll(/# seed \d+: (commit|push) killed (at failpoint \S+|after \d+ ms): (killed|completed before the kill)/g)) {
    add(`kill -9 of dvfs ${m[1]} ${m[2]?.startsWith('at') ? 'at a failpoint' : 'after a random delay'}${m[3] === 'killed' ? '' : ' (it had completed)'}`);
  }
  for (const _ of tap.matchAll(/# seed \d+: daemon killed /g)) add('kill -9 of the mount daemon during writes');
  for (const _ of tap.matchAll(/ok \d+ - the commit died holding the lock/g)) add('repository lock held by a dead process');
  for (const m of tap.matchAll(/# requests \d+, lies (\{.*\})$/gm)) {
    for (const [k, n] of Object.entries(JSON.parse(m[1] as string) as Record<string, number>)) add(`S3 lie: ${k}`, n);
  }
}

/** Numeric and short string figures of the newest scale-*.json (flattened one level), or null. */
function scaleFigures(): Report['scale'] {
  let names: string[];
  try {
    names = readdirSync(RESULTS).filter((n) => /^scale-.*\.json$/.test(n));
  } catch {
    return null;
  }
  const newest = names.sort().at(-1);
  if (newest === undefined) return null;
  const figures: Record<string, number | string> = {};
  const walk = (v: unknown, path: string, depth: number): void => {
    if (typeof v === 'number' || (typeof v === 'string' && v.length <= 60)) figures[path] = v;
    else if (typeof v === 'object' && v !== null && !Array.isArray(v) && depth < 3) {
      for (const [k, x] of Object.entries(v)) walk(x, path === '' ? k : `${path}.${k}`, depth + 1);
    }
  };
  try {
    walk(JSON.parse(readFileSync(join(RESULTS, newest), 'utf8')) as unknown, '', 0);
  } catch (e) {
    loud(`cannot read ${newest}: ${e instanceof Error ? e.message : String(e)}`);
    return null;
  }
  return { file: `bench/results/${newest}`, figures };
}

function markdown(r: Report): string {
  const lines: string[] = [];
  lines.push(`# Reliability report ${r.date}`, '');
  lines.push(`Host: ${r.host.cpus} × ${r.host.cpuModel}, ${r.host.memGiB} GiB, Linux ${r.host.kernel}, Node ${r.host.node}.`);
  lines.push(`Settings: fuzz cases per parser ${r.settings.fuzzCases ?? 'harness default'}, fault seeds ${r.settings.seeds ?? 'each test\'s default'}, first seed ${r.settings.firstSeed}.`, '');
  lines.push(`**Data loss found: ${r.dataLoss}**`, '');
  lines.push('## Cases tried per parser (fuzzing)', '', '| parser | cases | typed errors | accepted | seed |', '|---|---:|---:|---:|---:|');
  for (const p of r.parsers) lines.push(`| ${p.name} | ${p.cases} | ${p.typedErrors} | ${p.accepted} | ${p.seed} |`);
  lines.push(`| **total** | **${r.parsers.reduce((a, p) => a + p.cases, 0)}** | | | |`, '');
  lines.push('## Faults injected per kind', '', '| fault | injected |', '|---|---:|');
  for (const [k, n] of Object.entries(r.faults).sort()) lines.push(`| ${k} | ${n} |`);
  lines.push(`| **total** | **${Object.values(r.faults).reduce((a, b) => a + b, 0)}** |`, '');
  lines.push('## Test runs', '', '| suite | files | passed | failed | skipped | data loss | seconds |', '|---|---:|---:|---:|---:|---:|---:|');
  for (const s of r.suites) lines.push(`| ${SUITES[s.suite].title} | ${s.files.length} | ${s.passed} | ${s.failed} | ${s.skipped} | ${s.dataLoss.length} | ${s.seconds} |`);
  const failures = r.suites.flatMap((s) => s.failures.map((f) => `- ${s.suite}: ${f}`));
  if (failures.length > 0) lines.push('', '### Failed assertions', '', ...failures);
  lines.push('', '## Scale figures', '');
  if (r.scale === null) lines.push('No bench/results/scale-*.json yet (run `npm run bench:scale`).');
  else {
    lines.push(`From ${r.scale.file}:`, '', '| figure | value |', '|---|---:|');
    for (const [k, v] of Object.entries(r.scale.figures)) lines.push(`| ${k} | ${v} |`);
  }
  return lines.join('\n') + '\n';
}

function positiveInt(name: string, v: string | undefined): number | null {
  if (v === undefined) return null;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, not ${JSON.stringify(v)}`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'fuzz-cases': { type: 'string' },
      seeds: { type: 'string' },
      seed: { type: 'string' },
      only: { type: 'string', multiple: true },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      md: { type: 'string' },
      'no-save': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write('usage: node dist/bench/reliability.js [--fuzz-cases N] [--seeds N] [--seed N] [--only fuzz|fault|s3] [--json] [--out FILE] [--md FILE] [--no-save]\n');
    return 0;
  }
  const fuzzCases = positiveInt('fuzz-cases', values['fuzz-cases']);
  const seeds = positiveInt('seeds', values.seeds);
  const firstSeed = values.seed === undefined ? 1 + Math.floor(Math.random() * 1_000_000) : Number(values.seed);
  if (!Number.isSafeInteger(firstSeed)) throw new Error(`--seed must be an integer, not ${JSON.stringify(values.seed)}`);
  const only = (values.only ?? Object.keys(SUITES)) as string[];
  for (const o of only) if (!(o in SUITES)) throw new Error(`--only ${o}: not one of ${Object.keys(SUITES).join(', ')}`);
  const env: NodeJS.ProcessEnv = { DVFS_FAULT_SEED: String(firstSeed), DVFS_FUZZ_SEED: String(firstSeed) };
  if (fuzzCases !== null) env['DVFS_FUZZ_CASES'] = String(fuzzCases);
  if (seeds !== null) env['DVFS_FAULT_SEEDS'] = String(seeds);

  const report: Report = {
    date: new Date().toISOString().slice(0, 10),
    host: hostInfo(),
    settings: { fuzzCases, seeds, firstSeed },
    parsers: [],
    faults: {},
    suites: [],
    dataLoss: 0,
    scale: scaleFigures(),
  };
  for (const name of only as SuiteName[]) {
    const files = suiteFiles(name);
    log(`${SUITES[name].title}: ${files.length} test file(s), first seed ${firstSeed}`);
    const { tap, seconds } = runTests(files, env);
    const result = tally(name, files, tap, seconds);
    report.suites.push(result);
    report.parsers.push(...parsers(tap));
    faults(tap, report.faults);
    log(`${SUITES[name].title}: ${result.passed} passed, ${result.failed} failed, ${result.skipped} skipped in ${result.seconds} s`);
    if (result.failed > 0) loud(`${SUITES[name].title}: ${result.failed} assertion(s) failed (seed ${firstSeed}): ${result.failures.slice(0, 5).join('; ')}`);
  }
  report.dataLoss = report.suites.reduce((a, s) => a + s.dataLoss.length, 0);
  const md = markdown(report);
  process.stdout.write(values.json ? JSON.stringify(report, null, 2) + '\n' : md);
  if (!values['no-save']) {
    mkdirSync(RESULTS, { recursive: true });
    const out = values.out ?? join(RESULTS, `reliability-${report.date}.json`);
    const mdOut = values.md ?? join(RESULTS, `reliability-${report.date}.md`);
    writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(mdOut, md);
    log(`wrote ${out} and ${mdOut}`);
  }
  return report.suites.some((s) => s.failed > 0) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench/reliability: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  },
);
