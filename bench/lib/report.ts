/**
 * Small pieces the benchmarks' reports share: the median of the runs, the host description, and the name of
 * the work directory's filesystem type.
 */
import { cpus, hostname, release, totalmem } from 'node:os';

/** Median of the samples (the mean of the middle two for an even count); null when there are none. */
export const median = (xs: number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

export interface HostInfo {
  hostname: string;
  kernel: string;
  cpus: number;
  cpuModel: string;
  memGiB: number;
  node: string;
}

/** The machine the benchmark ran on, as the reports record it. */
export function hostInfo(): HostInfo {
  const cpuList = cpus();
  return {
    hostname: hostname(),
    kernel: release(),
    cpus: cpuList.length,
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    memGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
  };
}

/** statfs f_type of tmpfs (the benchmarks warn when their work directory is on it). */
export const TMPFS_MAGIC = 0x01021994;

/** A readable name for a statfs f_type. */
export function fsTypeName(type: number): string {
  const known: Record<number, string> = { 0xef53: 'ext2/3/4', 0x58465342: 'xfs', 0x9123683e: 'btrfs', [TMPFS_MAGIC]: 'tmpfs', 0x65735546: 'fuse', 0x794c7630: 'overlayfs' };
  return known[type] ?? `0x${type.toString(16)}`;
}
