/** What `dvfs doctor` reports: one finding per leftover, with what fixes it and whether --repair did. */

export type FindingKind = 'stale-mount' | 'stale-lock' | 'orphaned-session' | 'temp-files' | 'dead-view' | 'staging-dir';

export interface Finding {
  kind: FindingKind;
  /** The file, directory or mountpoint concerned. */
  path: string;
  /** What is wrong, in a sentence. */
  problem: string;
  /** What fixes it: what --repair does, or the command the user should run. */
  fix: string;
  /** Whether --repair may fix it (orphaned sessions hold data: never). */
  repairable: boolean;
  /** After --repair: true when fixed; a reason when it was left alone; absent without --repair. */
  repaired?: true | string;
}

export interface DoctorReport {
  repo: string;
  findings: Finding[];
  /** Findings fixed by --repair. */
  repaired: number;
  /** Findings still needing attention. */
  remaining: number;
}

export function summarize(repo: string, findings: Finding[]): DoctorReport {
  const repaired = findings.filter((f) => f.repaired === true).length;
  return { repo, findings, repaired, remaining: findings.length - repaired };
}
