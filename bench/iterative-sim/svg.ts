/**
 * The benchmark's figure, drawn here as plain SVG (no plotting dependency): bandwidth (MB/s, log scale) against
 * file size (log scale), one line per variant (colour) and step (dash pattern), a point per shape — the
 * published benchmark's figure.
 */
import type { VariantId } from './options.js';
import type { ShapeSummary, Step } from './summary.js';

const W = 760;
const H = 460;
const M = { left: 70, right: 190, top: 40, bottom: 60 };
const COLORS: Record<VariantId, string> = { plain: '#7f7f7f', encfs: '#d62728', dvfs: '#1f77b4' };
const DASH: Record<Exclude<Step, 'write'>, string> = { stage: '', commit: '6 4', push: '2 3' };
const PLOTTED: Array<Exclude<Step, 'write'>> = ['stage', 'commit', 'push'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Scale {
  lo: number;
  hi: number;
  at(v: number): number;
}

/** A log10 scale over whole decades covering the values, mapped onto [from, to]. */
function logScale(values: number[], from: number, to: number): Scale {
  const lo = Math.floor(Math.log10(Math.min(...values)));
  let hi = Math.ceil(Math.log10(Math.max(...values)));
  if (hi === lo) hi = lo + 1;
  return { lo, hi, at: (v) => from + ((Math.log10(v) - lo) / (hi - lo)) * (to - from) };
}

function decadeLabel(exp: number, unit: 'bytes' | 'mbps'): string {
  if (unit === 'bytes') return `${10 ** (exp % 3)} ${['B', 'kB', 'MB', 'GB', 'TB'][Math.floor(exp / 3)] ?? `e${exp}`}`;
  return exp >= 0 ? String(10 ** exp) : (10 ** exp).toFixed(-exp);
}

export function plotSvg(summaries: ShapeSummary[], title: string): string {
  const points: Array<{ variant: VariantId; step: Exclude<Step, 'write'>; x: number; y: number }> = [];
  for (const s of [...summaries].sort((a, b) => a.fileSize - b.fileSize)) {
    for (const variant of ['plain', 'encfs', 'dvfs'] as const) {
      const f = s.figures[variant];
      if (f === undefined) continue;
      for (const step of PLOTTED) if (Number.isFinite(f[step].mbPerSecond) && f[step].mbPerSecond > 0) points.push({ variant, step, x: s.fileSize, y: f[step].mbPerSecond });
    }
  }
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${M.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`);
  if (points.length === 0) {
    out.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no figures</text></svg>`);
    return out.join('\n') + '\n';
  }
  const xs = logScale(points.map((p) => p.x), M.left, W - M.right);
  const ys = logScale(points.map((p) => p.y), H - M.bottom, M.top);
  // Axes, decade grid and labels.
  out.push(`<g stroke="#ddd">`);
  for (let e = xs.lo; e <= xs.hi; e++) out.push(`<line x1="${xs.at(10 ** e).toFixed(1)}" y1="${M.top}" x2="${xs.at(10 ** e).toFixed(1)}" y2="${H - M.bottom}"/>`);
  for (let e = ys.lo; e <= ys.hi; e++) out.push(`<line x1="${M.left}" y1="${ys.at(10 ** e).toFixed(1)}" x2="${W - M.right}" y2="${ys.at(10 ** e).toFixed(1)}"/>`);
  out.push('</g>');
  out.push(`<rect x="${M.left}" y="${M.top}" width="${W - M.left - M.right}" height="${H - M.top - M.bottom}" fill="none" stroke="#333"/>`);
  for (let e = xs.lo; e <= xs.hi; e++) out.push(`<text x="${xs.at(10 ** e).toFixed(1)}" y="${H - M.bottom + 18}" text-anchor="middle">${esc(decadeLabel(e, 'bytes'))}</text>`);
  for (let e = ys.lo; e <= ys.hi; e++) out.push(`<text x="${M.left - 8}" y="${(ys.at(10 ** e) + 4).toFixed(1)}" text-anchor="end">${decadeLabel(e, 'mbps')}</text>`);
  out.push(`<text x="${(M.left + W - M.right) / 2}" y="${H - 18}" text-anchor="middle">file size</text>`);
  out.push(`<text transform="translate(18 ${(M.top + H - M.bottom) / 2}) rotate(-90)" text-anchor="middle">bandwidth (MB/s)</text>`);
  // One polyline per variant and step, with its points.
  let legendY = M.top + 10;
  for (const variant of ['plain', 'encfs', 'dvfs'] as const) {
    for (const step of PLOTTED) {
      const line = points.filter((p) => p.variant === variant && p.step === step);
      if (line.length === 0) continue;
      const color = COLORS[variant];
      const dash = DASH[step] === '' ? '' : ` stroke-dasharray="${DASH[step]}"`;
      const coords = line.map((p) => `${xs.at(p.x).toFixed(1)},${ys.at(p.y).toFixed(1)}`);
      out.push(`<polyline data-variant="${variant}" data-step="${step}" fill="none" stroke="${color}" stroke-width="2"${dash} points="${coords.join(' ')}"/>`);
      for (const c of coords) {
        const [cx, cy] = c.split(',');
        out.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${color}"/>`);
      }
      const lx = W - M.right + 15;
      out.push(`<line x1="${lx}" y1="${legendY}" x2="${lx + 30}" y2="${legendY}" stroke="${color}" stroke-width="2"${dash}/>`);
      out.push(`<text x="${lx + 36}" y="${legendY + 4}">${variant} ${step}</text>`);
      legendY += 18;
    }
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
