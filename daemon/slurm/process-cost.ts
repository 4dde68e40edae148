/**
 * What a dvfs process of a SLURM job cost, for its records and the benchmark: when the process started
 * (before Node loaded any module, so start-up counts) and the CPU time it and the children it waited for
 * (the mount daemon, the stage command) used. Read from the kernel, so a busy machine inflates the wall
 * time but hardly the CPU time.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** Linux reports process times in USER_HZ ticks, 100 per second on every architecture Node runs on. */
const USER_HZ = 100;

export interface ProcessCost {
  /** When this process started (ISO time). */
  processStartedAt: string;
  /** Seconds since the process started. */
  wallSeconds: number;
  /** CPU seconds (user + system) of this process and of its children that have ended; null off Linux. */
  cpuSeconds: number | null;
}

/** utime + stime + cutime + cstime of /proc/self/stat, in seconds. */
function cpuWithChildren(): number | null {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return Number.isFinite(ticks) ? ticks / USER_HZ : null;
  } catch {
    return null;
  }
}

export function processCost(): ProcessCost {
  return {
    processStartedAt: new Date(performance.timeOrigin).toISOString(),
    wallSeconds: performance.now() / 1000,
    cpuSeconds: cpuWithChildren(),
  };
}
