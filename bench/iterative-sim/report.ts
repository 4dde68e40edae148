/**
 * The benchmark's outputs: RESULTS/<date>-<host>.json (everything: options, host, load, every run, medians,
 * targets, self-check), .md (the tables) and .svg (the figure), written atomically (temp file + rename).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HostInfo } from '../lib/report.js';
import type { Options, Shape } from './options.js';
import { humanSize, STEPS, type ShapeSummary, type Target } from './summary.js';
import { plotSvg } from './svg.js';
import type { VariantRun } from './variant.js';

export interface SelfCheck {
  passed: boolean;
  /** What was checked, one line per run. */
  checks: string[];
}

export interface Result {
  benchmark: 'iterative-sim';
  date: string;
  host: HostInfo;
  /** False while shapes are still to come (the file is rewritten after every shape). */
  complete: boolean;
  /** os.loadavg() when the benchmark started and ended (the machine may be shared). */
  loadAverage: { start: number[]; end: number[] };
  options: Omit<Options, 'json' | 'results' | 'dir'>;
  payloadSource: string;
  shapes: Shape[];
  runs: VariantRun[];
  summary: ShapeSummary[];
  targets: Target[];
  selfCheck: SelfCheck;
}

export interface Written {
  json: string;
  md: string;
  svg: string;
}

const f2 = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

export function markdown(r: Result, svgName: string): string {
  const o = r.options;
  const rows: string[] = [];
  rows.push('| shape | files per stage × size | variant | stage s (MB/s) | of it: write s | commit s (MB/s) | push s (MB/s) |');
  rows.push('|---|---|---|--:|--:|--:|--:|');
  for (const s of r.summary) {
    for (const v of ['plain', 'encfs', 'dvfs'] as const) {
      const f = s.figures[v];
      if (f === undefined) continue;
      const cell = (step: 'stage' | 'commit' | 'push'): string => `${f2(f[step].seconds)} (${f2(f[step].mbPerSecond)})`;
      rows.push(`| ${s.shape} | ${s.files / o.stages} × ${humanSize(s.fileSize)} | ${v} | ${cell('stage')} | ${f2(f.write.seconds)} | ${cell('commit')} | ${cell('push')} |`);
    }
  }
  const ratios: string[] = ['| shape | dvfs ÷ plain: ' + STEPS.join(' / ') + ' | dvfs ÷ encfs: ' + STEPS.join(' / ') + ' |', '|---|--:|--:|'];
  for (const s of r.summary) {
    const cell = (peer: 'plain' | 'encfs'): string => {
      const x = s.dvfsOver[peer];
      return x === undefined ? '–' : STEPS.map((st) => `${x[st].toFixed(2)}×`).join(' / ');
    };
    ratios.push(`| ${s.shape} | ${cell('plain')} | ${cell('encfs')} |`);
  }
  const load = (xs: number[]): string => xs.map((x) => x.toFixed(2)).join(' ');
  return [
    `# iterative_sim benchmark, ${r.date} (${r.host.hostname})`,
    '',
    ...(r.complete ? [] : [`**Partial**: ${r.shapes.length} of ${r.options.shapes.length} shapes measured (${r.options.shapes.join(', ')} asked for); the run was stopped or is still going.`, '']),
    `Host: ${r.host.cpus} × ${r.host.cpuModel}, ${r.host.memGiB} GiB, Node ${r.host.node}, kernel ${r.host.kernel}. ` +
      `Load average (1/5/15 min) at start ${load(r.loadAverage.start)}, at end ${load(r.loadAverage.end)}.`,
    '',
    `Pipeline: ${o.stages} stages × ${humanSize(o.size)} (aggregate per stage), ${o.ranks} ranks, engine ${o.engine}; ` +
      `median of ${o.runs} run(s). Payload: ${r.payloadSource}. Seconds are summed over the stages; MB/s = 10^6 bytes ` +
      `of payload (all stages) per second. dvfs stages are SLURM jobs (\`dvfs slurm submit --after\`, local single-node ` +
      `SLURM), committed by their finalize jobs and pushed with \`dvfs push\`; plain and encfs use git-annex (add + ` +
      `commit per stage, \`git annex copy\` to an S3 special remote); all push to the same local Swift.`,
    '',
    ...rows,
    '',
    'Ratios of seconds (below 1×: dvfs is faster):',
    '',
    ...ratios,
    '',
    'Targets:',
    '',
    ...r.targets.map((t) => `- ${t.name}: ${t.measured} — ${t.pass === null ? 'not measured' : t.pass ? 'pass' : 'FAIL'}`),
    '',
    `Self-check: ${r.selfCheck.passed ? 'passed' : 'FAILED'} — ${r.selfCheck.checks.length} dvfs run(s): every snapshot verified (\`dvfs verify --full\`, \`--remote\`), the pushed history cloned back and compared byte for byte with the payload.`,
    '',
    `![bandwidth vs file size](${svgName})`,
    '',
  ].join('\n');
}

function atomicWrite(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export function writeResult(r: Result, dir: string): Written {
  mkdirSync(dir, { recursive: true });
  const base = `${r.date}-${r.host.hostname}`;
  const w: Written = { json: join(dir, `${base}.json`), md: join(dir, `${base}.md`), svg: join(dir, `${base}.svg`) };
  atomicWrite(w.svg, plotSvg(r.summary, `iterative_sim: ${r.options.stages} stages × ${humanSize(r.options.size)}, ${r.options.ranks} ranks (${r.date})`));
  atomicWrite(w.md, markdown(r, `${base}.svg`));
  atomicWrite(w.json, JSON.stringify(r, null, 2) + '\n');
  return w;
}
