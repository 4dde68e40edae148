import { resolve } from 'node:path';
import { DvfsError } from '../../daemon/errors.js';
import { ctlRequest } from '../../daemon/ctl/client.js';
import { processAlive } from '../../daemon/mount/mountinfo.js';
import { findRecord, type MountRecord } from '../../daemon/mount/records.js';
import { readHead } from '../../daemon/store/refs.js';
import type { Command, CommandContext } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { positional, VOLUME_OPTIONS } from '../open.js';
import { liveSessions, openStore, versionedRepo } from '../versioning.js';

const usage = 'dvfs status MOUNTPOINT|REPO [--json]';

interface Change {
  path: string;
  status: string;
  origin: string | null;
  kind: string;
}

interface SessionChanges {
  session: string;
  state: 'running' | 'ended' | 'elsewhere';
  mountpoint: string;
  host: string;
  startedAt: string;
  counts: Record<string, number> | null;
  entries: Change[] | null;
}

const MARK: Record<string, string> = { added: 'A', changed: 'M', renamed: 'R', removed: 'D' };

async function mountStatus(ctx: CommandContext, mountpoint: string, record: MountRecord): Promise<void> {
  if (!processAlive(record.pid)) {
    throw new DvfsError('E_IO', `the daemon (pid ${record.pid}) is not running: the mount is stale`, { path: mountpoint, hint: `clean it with: dvfs umount ${mountpoint}` });
  }
  const s = await ctlRequest(record.socket, 'status');
  if (ctx.json) return printJson(ctx.out, s);
  const lines = [
    `mountpoint:  ${String(s['mountpoint'])} (${s['readOnly'] ? 'read-only' : 'read-write'}, ${String(s['format'])} format)`,
    `repository:  ${String(s['repo'])}`,
    `daemon:      pid ${String(s['pid'])}, mounted since ${String(s['mountedAt'])}, log ${String(s['log'])}`,
    ...(s['session'] ? [`session:     ${String(s['session'])} (uncommitted changes: dvfs status ${String(s['repo'])})`] : []),
    `open files:  ${String(s['openFiles'])} (${String(s['openHandles'])} handles)`,
    `written:     ${humanBytes(Number(s['bytesWritten']))}; read: ${humanBytes(Number(s['bytesRead']))}`,
    `errors:      ${String(s['errors'])} (integrity: ${String(s['integrityErrors'])})`,
  ];
  ctx.out.write(lines.join('\n') + '\n');
}

async function repoStatus(ctx: CommandContext, repoPath: string): Promise<void> {
  const repo = await versionedRepo(repoPath);
  const head = await readHead(repo.root);
  const { live, ended, foreign } = await liveSessions(repo);
  const sessions: SessionChanges[] = [];
  for (const l of live) {
    const r = await ctlRequest(l.record.socket, 'changes');
    sessions.push({ session: l.listing.id, state: 'running', mountpoint: l.listing.info.mountpoint, host: l.listing.info.host, startedAt: l.listing.info.startedAt, counts: r['counts'] as Record<string, number>, entries: r['entries'] as Change[] });
  }
  if (ended.length > 0) {
    // Ended journals hold opaque paths: reading them takes the key.
    const v = await openStore(ctx, repo);
    const { SessionJournal } = await import('../../daemon/journal/journal.js');
    try {
      for (const e of ended) {
        const journal = await SessionJournal.open(e.journalDir);
        try {
          const summary = await journal.summary();
          const entries = summary.entries.map((x) => ({ path: v.paths.decodePath(x.path), status: x.status, origin: x.origin === null ? null : v.paths.decodePath(x.origin), kind: x.kind }));
          sessions.push({ session: e.id, state: 'ended', mountpoint: e.info.mountpoint, host: e.info.host, startedAt: e.info.startedAt, counts: summary.counts, entries });
        } finally {
          await journal.close();
        }
      }
    } finally {
      v.close();
    }
  }
  for (const f of foreign) sessions.push({ session: f.id, state: 'elsewhere', mountpoint: f.info.mountpoint, host: f.info.host, startedAt: f.info.startedAt, counts: null, entries: null });
  sessions.sort((a, b) => (a.session < b.session ? -1 : 1));
  if (ctx.json) return printJson(ctx.out, { repo: repo.root, head, sessions });
  const out: string[] = [`repository ${repo.root}: HEAD ${head?.slice(0, 12) ?? '(no snapshot yet)'}`];
  if (sessions.every((s) => s.entries !== null && s.entries.length === 0)) out.push('nothing to commit');
  for (const s of sessions) {
    const where = s.state === 'running' ? `mounted at ${s.mountpoint}` : s.state === 'ended' ? `ended (${s.mountpoint})` : `on ${s.host}, not reachable from here`;
    if (s.entries !== null && s.entries.length === 0) continue;
    out.push(`session ${s.session}, ${where}, since ${s.startedAt}:`);
    for (const e of s.entries ?? []) out.push(`  ${MARK[e.status] ?? '?'} ${e.path}${e.kind === 'dir' ? '/' : ''}${e.origin !== null && e.origin !== e.path ? ` (from ${e.origin})` : ''}`);
  }
  if (sessions.some((s) => (s.entries?.length ?? 1) > 0)) out.push('commit with: dvfs commit REPO');
  ctx.out.write(out.join('\n') + '\n');
}

export const statusCommand: Command = {
  name: 'status',
  summary: "a mount's state (MOUNTPOINT), or a repository's uncommitted changes per session (REPO)",
  usage,
  details: 'Changes made behind dvfs\'s back (stock encfs, copies into the ciphertext) are not listed: dvfs commit --rescan finds them.',
  options: [...VOLUME_OPTIONS],
  async run(ctx) {
    const target = resolve(positional(ctx, 0, 'MOUNTPOINT or REPO', usage));
    const record = findRecord(target);
    if (record) return mountStatus(ctx, target, record);
    try {
      return await repoStatus(ctx, target);
    } catch (e) {
      if (e instanceof DvfsError && e.code === 'E_NOTFOUND' && e.path === target) {
        throw new DvfsError('E_NOTFOUND', 'no dvfs mount here, and not a dvfs repository', { path: target, hint: 'give a mountpoint of dvfs mount, or a repository made by dvfs init' });
      }
      throw e;
    }
  },
};
