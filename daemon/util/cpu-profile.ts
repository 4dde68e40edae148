/**
 * CPU profiles of a running mount daemon, for finding where its time goes (the daemon is spawned detached,
 * so `node --cpu-prof` cannot be given to it). With DVFS_CPU_PROFILE=DIR in the environment of `dvfs mount`,
 * the daemon starts the V8 profiler at once; each SIGUSR2 writes what was profiled since the start or the
 * previous signal to DIR/daemon-PID-N.cpuprofile (open it in Chrome DevTools or speedscope) and starts anew.
 * To profile one step: signal before it (discard that file), run the step, signal after it.
 *
 * Profiles hold function names and script paths only, no file names or data of the mount.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import type { Logger } from '../log.js';

export function startCpuProfiling(log: Logger, dir = process.env.DVFS_CPU_PROFILE): void {
  if (dir === undefined || dir === '') return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const session = new Session();
  session.connect();
  let n = 0;
  const start = (): void => {
    session.post('Profiler.enable', () => session.post('Profiler.start'));
  };
  start();
  log.info({ dir }, 'CPU profiling (DVFS_CPU_PROFILE): send SIGUSR2 to write a profile');
  process.on('SIGUSR2', () => {
    session.post('Profiler.stop', (err, result) => {
      if (err) {
        log.warn({ err: err.message }, 'CPU profile could not be taken');
      } else {
        const file = join(dir, `daemon-${process.pid}-${++n}.cpuprofile`);
        try {
          writeFileSync(file, JSON.stringify(result.profile), { mode: 0o600 });
          log.info({ file }, 'CPU profile written');
        } catch (e) {
          log.warn({ file, err: e instanceof Error ? e.message : String(e) }, 'CPU profile could not be written');
        }
      }
      start();
    });
  });
}
