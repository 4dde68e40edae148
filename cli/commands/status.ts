import { resolve } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import { ctlRequest } from '../../daemon/ctl/client.js';
import { processAlive } from '../../daemon/mount/mountinfo.js';
import { findRecord } from '../../daemon/mount/records.js';
import type { Command } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { positional } from '../open.js';

const usage = 'dvfs status MOUNTPOINT [--json]';

export const statusCommand: Command = {
  name: 'status',
  summary: "show a mount's state: since when, open files, bytes written/read, errors",
  usage,
  options: [],
  async run(ctx) {
    const mountpoint = resolve(positional(ctx, 0, 'MOUNTPOINT', usage));
    const record = findRecord(mountpoint);
    if (!record) throw new DvfsError('E_NOTFOUND', 'no dvfs mount here', { path: mountpoint });
    if (!processAlive(record.pid)) {
      throw new DvfsError('E_IO', `the daemon (pid ${record.pid}) is not running: the mount is stale`, { path: mountpoint, hint: `clean it with: dvfs umount ${mountpoint}` });
    }
    const s = await ctlRequest(record.socket, 'status');
    if (ctx.json) return printJson(ctx.out, s);
    const lines = [
      `mountpoint:  ${String(s['mountpoint'])} (${s['readOnly'] ? 'read-only' : 'read-write'}, ${String(s['format'])} format)`,
      `repository:  ${String(s['repo'])}`,
      `daemon:      pid ${String(s['pid'])}, mounted since ${String(s['mountedAt'])}, log ${String(s['log'])}`,
      `open files:  ${String(s['openFiles'])} (${String(s['openHandles'])} handles)`,
      `written:     ${humanBytes(Number(s['bytesWritten']))}; read: ${humanBytes(Number(s['bytesRead']))}`,
      `errors:      ${String(s['errors'])} (integrity: ${String(s['integrityErrors'])})`,
    ];
    ctx.out.write(lines.join('\n') + '\n');
  },
};
