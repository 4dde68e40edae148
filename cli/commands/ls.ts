import type { Entry, PlainView, UndecodableEntry } from '../../daemon/vfs/plain-view.js';
import type { Command } from '../command.js';
import { humanBytes, modeString, printJson } from '../format.js';
import { openRepoView, positional, VOLUME_OPTIONS, volumePath } from '../open.js';

const usage = 'dvfs ls REPO [DIR] [--recursive] [--password-file FILE] [--json]';

interface Listed extends Entry {
  path: string;
  target?: string;
}

async function walk(view: PlainView, dir: string, recursive: boolean, out: Listed[], bad: (UndecodableEntry & { dir: string })[]): Promise<void> {
  const { entries, undecodable } = await view.list(dir);
  for (const u of undecodable) bad.push({ ...u, dir: dir || '/' });
  for (const e of entries) {
    const path = dir === '' ? e.name : `${dir}/${e.name}`;
    const item: Listed = { ...e, path };
    if (e.type === 'symlink') {
      try {
        item.target = await view.readlink(path);
      } catch {
        item.target = '?';
      }
    }
    out.push(item);
    if (recursive && e.type === 'dir') await walk(view, path, recursive, out, bad);
  }
}

export const lsCommand: Command = {
  name: 'ls',
  summary: 'list a directory of the plaintext view (no mount needed)',
  usage,
  details: 'Entries whose encrypted names cannot be decoded are reported on stderr (EncFS hides them silently).',
  options: [{ name: 'recursive', short: 'R', type: 'boolean', description: 'list subdirectories too' }, ...VOLUME_OPTIONS],
  async run(ctx) {
    const { view } = await openRepoView(ctx, positional(ctx, 0, 'REPO', usage));
    const dir = volumePath(ctx.args.positionals[1] ?? '');
    const listed: Listed[] = [];
    const bad: (UndecodableEntry & { dir: string })[] = [];
    await walk(view, dir, ctx.args.flags.has('recursive'), listed, bad);
    if (ctx.json) {
      printJson(ctx.out, {
        entries: listed.map((e) => ({ path: e.path, name: e.name, type: e.type, size: e.size, mode: e.mode.toString(8), mtime: new Date(e.mtimeMs).toISOString(), ...(e.target === undefined ? {} : { target: e.target }) })),
        undecodable: bad,
      });
    } else {
      for (const e of listed) {
        const size = e.size < 0 ? '?' : e.type === 'dir' ? '-' : humanBytes(e.size);
        const name = ctx.args.flags.has('recursive') || dir !== '' ? e.path : e.name;
        ctx.out.write(`${modeString(e.type, e.mode)} ${size.padStart(10)}  ${new Date(e.mtimeMs).toISOString().slice(0, 19).replace('T', ' ')}  ${name}${e.target === undefined ? '' : ` -> ${e.target}`}\n`);
      }
    }
    for (const b of bad) ctx.note(`warning: ${b.dir}: undecodable entry ${b.cipherName}: ${b.reason}`);
  },
};
