/**
 * Crash points for tests: with DVFS_FAILPOINT=<name> in the environment, the process kills itself with
 * SIGKILL when it reaches `failpoint(<name>)` — the same as a kill -9 at exactly that step, so the crash
 * tests can hit every window of a commit deterministically (random kills hit them only by chance).
 * Without the variable it costs one property read.
 */
export function failpoint(name: string): void {
  if (process.env['DVFS_FAILPOINT'] === name) process.kill(process.pid, 'SIGKILL');
}
