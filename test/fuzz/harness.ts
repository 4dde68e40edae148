/**
 * A small seeded fuzzer: each case is a random buffer or a mutation (bit flips, byte overwrites with
 * "interesting" values, inserts, deletes, duplicated ranges, truncation, splices of two samples) of a valid
 * sample. The parser under test must return or throw its own typed error; any other exception fails the
 * test with the seed and case number, which reproduce it (DVFS_FUZZ_SEED=<seed>).
 *
 * DVFS_FUZZ_CASES sets the cases per target (default below, chosen to keep a file well under a minute here).
 */
import type { Test } from 'tap';
import { rng, type Rng } from '../helpers/rng.js';

export const DEFAULT_CASES = 10_000;

export function fuzzCases(fallback = DEFAULT_CASES): number {
  const raw = process.env['DVFS_FUZZ_CASES'];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`DVFS_FUZZ_CASES must be a positive integer, not ${JSON.stringify(raw)}`);
  return n;
}

export function fuzzSeed(): number {
  const raw = process.env['DVFS_FUZZ_SEED'];
  if (raw !== undefined) return Number(raw);
  return Math.floor(Math.random() * 2 ** 31);
}

export interface FuzzTarget<R> {
  name: string;
  /** Valid inputs that mutations start from. */
  samples: readonly Buffer[];
  /** The parser; returns what it accepted. */
  parse: (input: Buffer) => R | Promise<R>;
  /** Whether a thrown value is the parser's own typed error (anything else is a bug). */
  expected: (e: unknown) => boolean;
  /**
   * Called when the parser accepted a mutated input: returns a problem (e.g. "wrong plaintext accepted"
   * for an authenticated format that decoded something other than the sample it came from) or null.
   */
  accepted?: (input: Buffer, result: R, origin: Buffer | null) => string | null;
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x22, 0x5c, 0x2f, 0x2e, 0x3c, 0x3e, 0x26, 0x0a, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2d, 0x30, 0x39];

function mutateOnce(r: Rng, input: Buffer, samples: readonly Buffer[]): Buffer {
  const len = input.length;
  const at = (): number => r.int(len + 1);
  switch (r.int(9)) {
    case 0: {
      if (len === 0) return r.bytes(1);
      const b = Buffer.from(input);
      const i = r.int(len);
      b[i] = (b[i] ?? 0) ^ (1 << r.int(8));
      return b;
    }
    case 1: {
      if (len === 0) return Buffer.from([r.pick(INTERESTING)]);
      const b = Buffer.from(input);
      b[r.int(len)] = r.pick(INTERESTING);
      return b;
    }
    case 2: {
      const i = at();
      return Buffer.concat([input.subarray(0, i), r.bytes(1 + r.int(16)), input.subarray(i)]);
    }
    case 3: {
      const i = at();
      return Buffer.concat([input.subarray(0, i), input.subarray(Math.min(len, i + 1 + r.int(32)))]);
    }
    case 4: {
      const i = at();
      const j = Math.min(len, i + 1 + r.int(64));
      return Buffer.concat([input.subarray(0, j), input.subarray(i, j), input.subarray(j)]);
    }
    case 5:
      return input.subarray(0, r.int(len + 1));
    case 6: {
      const other = r.pick(samples);
      const i = at();
      const j = r.int(other.length + 1);
      return Buffer.concat([input.subarray(0, i), other.subarray(j)]);
    }
    case 7: {
      // A text-level mutation: replace a run of digits with an extreme number.
      const s = input.toString('latin1');
      const m = /\d+/g;
      const runs = [...s.matchAll(m)];
      if (runs.length === 0) return Buffer.concat([input, Buffer.from(r.pick(['-1', '1e308', '9007199254740993', 'NaN', '0x10']))]);
      const run = r.pick(runs);
      const repl = r.pick(['0', '-1', '4294967295', '4294967296', '9007199254740993', '1e308', '-0', '1.5', '99999999999999999999']);
      const start = run.index ?? 0;
      return Buffer.from(s.slice(0, start) + repl + s.slice(start + run[0].length), 'latin1');
    }
    default: {
      if (len === 0) return r.bytes(1);
      const b = Buffer.from(input);
      const i = r.int(len);
      const n = Math.min(len - i, 1 + r.int(8));
      r.bytes(n).copy(b, i);
      return b;
    }
  }
}

/** One fuzz input: random bytes (1 in 10), else 1..4 mutations of a sample. */
export function nextInput(r: Rng, samples: readonly Buffer[]): { input: Buffer; origin: Buffer | null } {
  if (samples.length === 0 || r.int(10) === 0) return { input: r.bytes(r.int(512)), origin: null };
  const origin = r.pick(samples);
  let input = origin;
  for (let n = 1 + r.int(4); n > 0; n--) input = mutateOnce(r, input, samples);
  return { input, origin };
}

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message.slice(0, 300)}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}`;
  return String(e).slice(0, 300);
}

/** Runs `cases` inputs against a target; one tap assertion (pass, or the first failure with its seed). */
export async function fuzz<R>(t: Test, target: FuzzTarget<R>, cases = fuzzCases()): Promise<void> {
  const seed = fuzzSeed();
  const r = rng(seed);
  let typed = 0;
  let accepted = 0;
  for (let i = 0; i < cases; i++) {
    const { input, origin } = nextInput(r, target.samples);
    let result: R;
    try {
      result = await target.parse(input);
    } catch (e) {
      if (target.expected(e)) {
        typed++;
        continue;
      }
      t.fail(`${target.name}: case ${i} threw an untyped error (reproduce with DVFS_FUZZ_SEED=${seed})`, { input: input.toString('base64').slice(0, 2000), error: describe(e) });
      return;
    }
    accepted++;
    // A splice can rebuild another sample exactly: that one is then where the input came from.
    const same = target.samples.find((s) => s.equals(input));
    const problem = target.accepted?.(input, result, same ?? origin) ?? null;
    if (problem !== null) {
      t.fail(`${target.name}: case ${i}: ${problem} (reproduce with DVFS_FUZZ_SEED=${seed})`, { input: input.toString('base64').slice(0, 2000) });
      return;
    }
  }
  t.pass(`${target.name}: ${cases} cases (seed ${seed}): ${typed} typed errors, ${accepted} accepted`);
  t.ok(typed > 0, `${target.name}: the fuzzer reached the error paths`);
}

/** Accepted-check for authenticated formats: a mutated input may only decode when it equals its sample. */
export function onlyUnchanged<R>(input: Buffer, _result: R, origin: Buffer | null): string | null {
  if (origin === null) return 'random bytes authenticated';
  return input.equals(origin) ? null : 'a mutated input authenticated (wrong plaintext accepted)';
}
