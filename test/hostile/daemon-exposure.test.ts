// What a local attacker on a shared node could reach of a running mount daemon: a core dump (RLIMIT_CORE
// must be 0, soft and hard), the run directory and the control socket (owner only).
import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fuseAvailable, quickMount } from '../helpers/mount.js';

const unavailable = fuseAvailable();
const skip = unavailable === null ? false : `needs FUSE, unavailable because ${unavailable}`;

t.test('the mount daemon dumps no core and keeps its run files to its owner', { skip }, async (t) => {
  const m = quickMount(t, 'standard', { label: 'exposure' });
  const limits = readFileSync(`/proc/${m.pid}/limits`, 'utf8');
  const core = /^Max core file size\s+(\S+)\s+(\S+)/m.exec(limits);
  t.ok(core, 'the daemon has a core size limit line');
  t.equal(core?.[1], '0', 'soft RLIMIT_CORE is 0');
  t.equal(core?.[2], '0', 'hard RLIMIT_CORE is 0 (the daemon cannot raise it)');
  const mode = (p: string): number => statSync(p).mode & 0o777;
  t.equal(mode(m.record.runDir), 0o700, `run directory ${m.record.runDir} is 0700`);
  t.equal(mode(dirname(m.record.socket)), 0o700, 'the control socket directory is 0700');
  t.equal(mode(m.record.socket), 0o600, 'the control socket is 0600');
  t.equal(mode(m.record.log) & 0o077, 0, 'the daemon log is not readable by others');
  t.equal(m.status().pid, m.pid, 'and the daemon still answers its owner');
});
