// The progress line: rate over a sliding window, time left, and what a terminal is shown.
import t from 'tap';
import { formatDuration, Progress, RateMeter } from '../../cli/progress.js';

t.test('formatDuration', async (t) => {
  t.equal(formatDuration(0), '0:00');
  t.equal(formatDuration(59.4), '0:59');
  t.equal(formatDuration(61), '1:01');
  t.equal(formatDuration(3725), '1:02:05');
  t.equal(formatDuration(Number.NaN), '--:--', 'unknown');
  t.equal(formatDuration(-1), '--:--');
});

t.test('RateMeter: bytes per second over its window', async (t) => {
  const m = new RateMeter(5000);
  t.equal(m.rate(), null, 'nothing to say yet');
  m.add(0, 0);
  m.add(100, 1000);
  t.equal(m.rate(), null, 'samples too close together');
  m.add(1000, 10_000_000);
  t.equal(m.rate(), 10_000_000, '10 MB in 1 s');
  for (let s = 2; s <= 20; s++) m.add(s * 1000, 10_000_000 + (s - 1) * 1_000_000);
  t.equal(Math.round(m.rate() ?? 0), 1_000_000, 'the early burst has left the window: 1 MB/s now');
});

t.test('Progress draws bytes, rate and ETA on a terminal only', async (t) => {
  const written: string[] = [];
  const tty = { isTTY: true, write: (s: string) => written.push(s) };
  const saved = process.env['DVFS_NO_PROGRESS'];
  delete process.env['DVFS_NO_PROGRESS'];
  t.teardown(() => {
    if (saved !== undefined) process.env['DVFS_NO_PROGRESS'] = saved;
  });
  const p = new Progress('push', tty);
  p.updateBytes({ items: 1, totalItems: 10, bytes: 1 << 20, totalBytes: 10 << 20 }, 'blobs');
  t.same(written, [], 'quiet during the first second');
  await new Promise((r) => setTimeout(r, 1100));
  p.updateBytes({ items: 5, totalItems: 10, bytes: 5 << 20, totalBytes: 10 << 20 }, 'blobs');
  const line = written.at(-1) ?? '';
  t.match(line, /^\rpush \[#{15}\.{15}\] 5\.0 MiB\/10 MiB/, 'bar and bytes');
  t.match(line, /MiB\/s {2}ETA \d:\d\d/, 'rate and time left');
  t.match(line, /\(5\/10 blobs\)/, 'items');
  p.done();
  t.equal(written.at(-1), '\r\x1b[K', 'erased when done');
  const quiet: string[] = [];
  const pipe = new Progress('push', { isTTY: false, write: (s: string) => quiet.push(s) });
  await new Promise((r) => setTimeout(r, 1100));
  pipe.updateBytes({ items: 5, totalItems: 10, bytes: 5, totalBytes: 10 });
  t.same(quiet, [], 'nothing on a pipe');
});
