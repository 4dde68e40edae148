import { mkdir, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DvfsError, isNodeError } from '../../daemon/errors.js';
import { createLogger } from '../../daemon/log.js';
import { cleanStale, launchDaemon } from '../../daemon/mount/launcher.js';
import { prepareSession, startSession, type SessionSpec } from '../../daemon/mount/session.js';
import type { Command } from '../command.js';
import { FETCH_REMOTE_OPTION, prefetchSnapshot } from '../fetching.js';
import { printJson } from '../format.js';
import { positional } from '../open.js';
import { requireCredential, UNLOCK_OPTIONS, wipeCredential } from '../unlock.js';

const usage = 'dvfs mount REPO MOUNTPOINT [--password-file FILE | --identity FILE] [--foreground] [--allow-other] [--read-only] [--xattr] [--snapshot ID]';

export const mountCommand: Command = {
  name: 'mount',
  summary: 'serve the plaintext view of a repository at MOUNTPOINT (FUSE daemon)',
  usage,
  details:
    'Returns once the mount answers; the daemon runs detached, with its pid, control socket and log recorded\n' +
    'under the repository run directory (REPO/.dvfs/run). Only ciphertext reaches disk. A stale mount left\n' +
    'by a killed daemon is detected and cleaned first. Stop it with: dvfs umount MOUNTPOINT.',
  options: [
    ...UNLOCK_OPTIONS,
    { name: 'foreground', type: 'boolean', description: 'run the daemon in this process (logs on the terminal; Ctrl-C unmounts)' },
    { name: 'allow-other', type: 'boolean', description: 'let other users access the mount (FUSE allow_other)' },
    { name: 'read-only', type: 'boolean', description: 'mount read-only' },
    { name: 'snapshot', type: 'string', value: 'ID', description: 'serve an old snapshot (id, 4+ hex prefix, HEAD~N) read-only instead of the working tree' },
    FETCH_REMOTE_OPTION,
    { name: 'xattr', type: 'boolean', description: 'serve extended attributes (passed through to the ciphertext); costs a daemon round trip per write and two per ls -l entry' },
  ],
  async run(ctx) {
    const repo = positional(ctx, 0, 'REPO', usage);
    const mountpoint = resolve(positional(ctx, 1, 'MOUNTPOINT', usage));
    try {
      if (!(await stat(mountpoint)).isDirectory()) throw new DvfsError('E_NOTDIR', 'mountpoint is not a directory', { path: mountpoint });
    } catch (e) {
      if (isNodeError(e) && e.code === 'ENOENT') await mkdir(mountpoint, { recursive: true });
      else if (!(isNodeError(e) && e.code === 'ENOTCONN')) throw e;
    }
    const stale = cleanStale(mountpoint);
    if (stale.cleaned) ctx.note(`dvfs: cleaned up after a killed daemon: ${stale.message}`);
    const credential = await requireCredential(ctx.args, (m) => ctx.note(m));
    const spec: SessionSpec = {
      repo: resolve(repo),
      mountpoint,
      readOnly: ctx.args.flags.has('read-only'),
      allowOther: ctx.args.flags.has('allow-other'),
      xattr: ctx.args.flags.has('xattr'),
    };
    const snapshot = ctx.args.strings.get('snapshot')?.[0];
    if (snapshot !== undefined) {
      spec.snapshot = snapshot;
      await prefetchSnapshot(ctx, repo, snapshot);
    }
    if (ctx.args.flags.has('foreground')) {
      const prepared = await prepareSession(spec);
      const logger = createLogger({ pretty: true, name: 'dvfs-mount', ...(process.stdout.isTTY ? {} : { file: prepared.run.log }) });
      const session = await startSession(spec, credential, logger, prepared);
      for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void session.shutdown(signal));
      if (!ctx.json) ctx.note(`dvfs: mounted ${spec.repo} at ${mountpoint} (foreground; Ctrl-C or dvfs umount to stop)`);
      await session.done;
      return;
    }
    const record = await launchDaemon(spec, credential).finally(() => wipeCredential(credential));
    if (ctx.json) printJson(ctx.out, record);
    else ctx.out.write(`mounted ${record.repo} at ${record.mountpoint} (daemon pid ${record.pid}, log ${record.log})\n`);
  },
};
