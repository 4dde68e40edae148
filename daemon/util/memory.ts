/**
 * The process's memory in MiB (one decimal), for `dvfs status --json` of a mount and for benchmarks: the
 * resident set, and how much of it the V8 heap takes (total reserved vs used by live objects) and what lives
 * outside it (Buffers, native allocations that V8 is told about). RSS far above heapUsed + external means
 * free heap pages or malloc'd memory not returned to the system.
 */
export interface MemoryMiB {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 10) / 10;

export function memoryMiB(): MemoryMiB {
  const m = process.memoryUsage();
  return { rss: mib(m.rss), heapTotal: mib(m.heapTotal), heapUsed: mib(m.heapUsed), external: mib(m.external), arrayBuffers: mib(m.arrayBuffers) };
}
