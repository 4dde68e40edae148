/**
 * Crash points for tests: with DVFS_FAILPOINT=<name> in the environment, the process kills itself with
 * SIGKILL when it reaches `failpoint(<name>)` — the same as a kill -9 at exactly that step, so the crash
 * tests can hit every window of a commit or push deterministically (random kills hit them only by chance).
 * DVFS_FAILPOINT=<name>:stop stops the process there instead (SIGSTOP), so a test can change the world
 * (stop a server, fill a disk) at exactly that step and then let it go on with SIGCONT.
 * Without the variable it costs one property read.
 */
export function failpoint(name: string): void {
  const wanted = process.env['DVFS_FAILPOINT'];
  if (wanted === undefined) return;
  if (wanted === name) process.kill(process.pid, 'SIGKILL');
  else if (wanted === `${name}:stop`) process.kill(process.pid, 'SIGSTOP');
}
