/**
 * A progress line on stderr for long work: drawn only on a terminal, only once the work has run for a
 * second (quick commands stay quiet), at most ten times a second, and erased when done. Given bytes, it
 * shows the rate over the last few seconds and the time left at that rate.
 */
import { humanBytes } from './format.js';

/** How far back the rate looks (ms): long enough to smooth pack-sized steps, short enough to follow changes. */
const RATE_WINDOW_MS = 5000;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** Bytes per second over a sliding window of (time, bytes) samples. */
export class RateMeter {
  private readonly samples: Array<{ at: number; bytes: number }> = [];

  constructor(private readonly windowMs = RATE_WINDOW_MS) {}

  add(at: number, bytes: number): void {
    this.samples.push({ at, bytes });
    while (this.samples.length > 2 && at - (this.samples[1] as { at: number }).at >= this.windowMs) this.samples.shift();
  }

  /** Bytes per second, or null before there are two samples far enough apart to say. */
  rate(): number | null {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (first === undefined || last === undefined || last.at - first.at < 200) return null;
    return ((last.bytes - first.bytes) * 1000) / (last.at - first.at);
  }
}

export interface ByteProgress {
  items: number;
  totalItems: number;
  bytes: number;
  totalBytes: number;
}

export class Progress {
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;
  private readonly tty: boolean;
  private readonly meter = new RateMeter();

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = stream.isTTY === true && process.env['DVFS_NO_PROGRESS'] !== '1';
  }

  update(done: number, total: number, detail = ''): void {
    if (!this.due(done >= total)) return;
    this.draw(`${this.bar(total > 0 ? done / total : 0)} ${done}/${total}${detail ? ` ${detail}` : ''}`);
  }

  /** Bytes and items: "[####....] 1.2 GiB/3.4 GiB  45 MiB/s  ETA 0:48  (1234/5678 objects)". */
  updateBytes(p: ByteProgress, unit = 'objects'): void {
    const now = Date.now();
    this.meter.add(now, p.bytes);
    if (!this.due(p.items >= p.totalItems)) return;
    const rate = this.meter.rate();
    // Without a byte total (sizes unknown until fetched), the fraction and the ETA go by items.
    const byBytes = p.totalBytes > 0;
    const frac = byBytes ? p.bytes / p.totalBytes : p.totalItems > 0 ? p.items / p.totalItems : 0;
    const eta = rate !== null && rate > 0 && frac > 0 ? (byBytes ? (p.totalBytes - p.bytes) / rate : ((1 - frac) / frac) * (p.bytes / rate)) : NaN;
    const speed = rate === null ? '' : `  ${humanBytes(Math.round(rate))}/s  ETA ${formatDuration(eta)}`;
    this.draw(`${this.bar(frac)} ${humanBytes(p.bytes)}${byBytes ? `/${humanBytes(p.totalBytes)}` : ''}${speed}  (${p.items}/${p.totalItems} ${unit})`);
  }

  done(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }

  private due(finished: boolean): boolean {
    if (!this.tty) return false;
    const now = Date.now();
    if (now - this.started < 1000 || (now - this.lastDraw < 100 && !finished)) return false;
    this.lastDraw = now;
    return true;
  }

  private bar(frac: number): string {
    const width = 30;
    return `[${'#'.repeat(Math.round(Math.min(1, Math.max(0, frac)) * width)).padEnd(width, '.')}]`;
  }

  private draw(text: string): void {
    this.stream.write(`\r${this.label} ${text}\x1b[K`);
    this.drawn = true;
  }
}
