/** A small seeded PRNG (xorshift128+) so randomized tests print a seed that reproduces them. */
export interface Rng {
  seed: number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  bytes(n: number): Buffer;
  pick<T>(items: readonly T[]): T;
}

export function rng(seed: number): Rng {
  let s0 = BigInt(seed) | 1n;
  let s1 = BigInt(seed) * 0x9e3779b97f4a7c15n + 0x632be59bd9b4e019n;
  const mask = (1n << 64n) - 1n;
  const next = (): bigint => {
    let x = s0;
    const y = s1;
    s0 = y;
    x = (x ^ (x << 23n)) & mask;
    s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (s1 + y) & mask;
  };
  const r: Rng = {
    seed,
    int: (n) => Number(next() % BigInt(Math.max(1, Math.floor(n)))),
    bytes: (n) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i += 8) {
        const v = next();
        for (let j = 0; j < 8 && i + j < n; j++) b[i + j] = Number((v >> BigInt(8 * j)) & 0xffn);
      }
      return b;
    },
    pick: (items) => items[r.int(items.length)] as (typeof items)[number],
  };
  return r;
}
