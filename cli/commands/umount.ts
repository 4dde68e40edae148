import { resolve } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import { cleanStale, stopDaemon } from '../../daemon/mount/launcher.js';
import { mountAt, processAlive } from '../../daemon/mount/mountinfo.js';
import { findRecord } from '../../daemon/mount/records.js';
import type { Command } from '../command.js';
import { printJson } from '../format.js';
import { positional } from '../open.js';

const usage = 'dvfs umount MOUNTPOINT [--force]';

export const umountCommand: Command = {
  name: 'umount',
  summary: 'flush everything, unmount, and wait for the daemon to exit',
  usage,
  details:
    'Refused while files are open through the mount (nothing is lost); --force detaches anyway.\n' +
    'A mount whose daemon was killed is detached and its records removed, with a message saying so.',
  options: [{ name: 'force', type: 'boolean', description: 'unmount even while files are open (their processes then get ENOTCONN)' }],
  async run(ctx) {
    const mountpoint = resolve(positional(ctx, 0, 'MOUNTPOINT', usage));
    const record = findRecord(mountpoint);
    if (record && processAlive(record.pid)) {
      await stopDaemon(record, { force: ctx.args.flags.has('force') });
      if (ctx.json) printJson(ctx.out, { mountpoint, pid: record.pid, unmounted: true });
      else ctx.out.write(`unmounted ${mountpoint}\n`);
      return;
    }
    const stale = cleanStale(mountpoint);
    if (stale.cleaned) {
      ctx.note(`dvfs: cleaned up after a killed daemon: ${stale.message}`);
      if (ctx.json) printJson(ctx.out, { mountpoint, unmounted: true, stale: true });
      return;
    }
    const m = mountAt(mountpoint);
    if (m) throw new DvfsError('E_USAGE', `not a dvfs mount (${m.fstype} from ${m.source})`, { path: mountpoint, hint: 'use fusermount -u for other filesystems' });
    throw new DvfsError('E_NOTFOUND', 'nothing is mounted here', { path: mountpoint });
  },
};
