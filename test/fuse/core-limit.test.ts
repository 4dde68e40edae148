/**
 * The mount daemon skips spawning prlimit when its launcher already set RLIMIT_CORE to 0: coreDumpsOff must
 * say "off" only when both the soft and the hard limit are 0.
 */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { coreDumpsOff } from '../../daemon/mount/session.js';

const line = (soft: string, hard: string): string => `Limit                     Soft Limit           Hard Limit           Units     \nMax core file size        ${soft.padEnd(20)} ${hard.padEnd(20)} bytes     \n`;

t.test('both limits 0: off; either one above 0: not off', async (t) => {
  t.equal(coreDumpsOff(line('0', '0')), true);
  t.equal(coreDumpsOff(line('0', 'unlimited')), false, 'a hard limit above 0 lets the process raise it again');
  t.equal(coreDumpsOff(line('unlimited', 'unlimited')), false);
  t.equal(coreDumpsOff(line('1024', '0')), false);
  t.equal(coreDumpsOff(''), false, 'no line: not known to be off');
  t.equal(coreDumpsOff(null), false, 'unreadable: not known to be off');
});

t.test("what the launcher's `ulimit -c 0` leaves in /proc/self/limits reads as off", async (t) => {
  const r = spawnSync('/bin/sh', ['-c', 'ulimit -c 0 && exec cat /proc/self/limits'], { encoding: 'utf8' });
  t.equal(r.status, 0);
  t.equal(coreDumpsOff(r.stdout), true);
});
