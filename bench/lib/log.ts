/** Progress output of the benchmarks, on stderr (stdout carries the report). */
import { performance } from 'node:perf_hooks';

const t0 = performance.now();

/** A logger printing `[TAG    12.3s] line`: the seconds since the benchmark started. */
export function makeLog(tag: string): (line: string) => void {
  return (line) => {
    const t = ((performance.now() - t0) / 1000).toFixed(1).padStart(7);
    process.stderr.write(`[${tag} ${t}s] ${line}\n`);
  };
}

/** A message that must not drown in the progress lines (a skipped peer, a failure, a warning). */
export function loud(line: string): void {
  process.stderr.write(`\n*** ${line}\n\n`);
}
