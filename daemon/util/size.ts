/** Byte sizes as people write them: "4096", "64KiB", "32 MiB", "1G" (K/M/G are powers of 1024). */
export function parseByteSize(value: string): number | null {
  const m = /^([0-9]+)\s*(|B|K|KB|KiB|M|MB|MiB|G|GB|GiB)$/i.exec(value.trim());
  if (m === null) return null;
  const unit = (m[2] ?? '').toLowerCase();
  const mult = unit.startsWith('k') ? 1024 : unit.startsWith('m') ? 1024 ** 2 : unit.startsWith('g') ? 1024 ** 3 : 1;
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) ? n : null;
}
