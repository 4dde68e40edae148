import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DvfsError, isNodeError } from '../../daemon/errors.js';
import type { PlainView } from '../../daemon/vfs/plain-view.js';
import type { Command, CommandContext } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { openRepoView, positional, VOLUME_OPTIONS, volumePath } from '../open.js';

const usage = 'dvfs put REPO SRC DEST [--password-file FILE] [--json]';

interface PutStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

async function destinationIsDir(view: PlainView, dest: string): Promise<boolean> {
  if (dest === '') return true;
  try {
    return (await view.stat(dest)).type === 'dir';
  } catch (e) {
    if (e instanceof DvfsError && e.code === 'E_NOTFOUND') return false;
    throw e;
  }
}

async function putTree(ctx: CommandContext, view: PlainView, src: string, dest: string, stats: PutStats): Promise<void> {
  const st = await lstat(src);
  if (st.isSymbolicLink()) {
    await view.symlink(await readlink(src), dest);
    stats.symlinks++;
  } else if (st.isDirectory()) {
    if (!(await destinationIsDir(view, dest))) await view.mkdir(dest, st.mode & 0o7777);
    stats.dirs++;
    for (const name of (await readdir(src)).sort()) {
      await putTree(ctx, view, join(src, name), dest === '' ? name : `${dest}/${name}`, stats);
    }
  } else if (st.isFile()) {
    stats.bytes += await view.writeFile(dest, createReadStream(src, { highWaterMark: 1 << 20 }), st.mode & 0o7777);
    stats.files++;
    if (!ctx.json && stats.files % 1000 === 0) ctx.note(`put: ${stats.files} files, ${humanBytes(stats.bytes)}`);
  } else {
    ctx.note(`warning: skipping ${src}: not a regular file, directory or symlink`);
  }
}

export const putCommand: Command = {
  name: 'put',
  summary: 'encrypt a local file or directory tree into the repository (no mount needed)',
  usage,
  details:
    'DEST is a path inside the view. If DEST is an existing directory (or ends with /), SRC goes inside it.\n' +
    'Missing parent directories are created. Each file is written to a temporary name and renamed into place,\n' +
    'so an interrupted put never leaves a half-written file under its real name.',
  options: VOLUME_OPTIONS,
  async run(ctx) {
    const repoArg = positional(ctx, 0, 'REPO', usage);
    const src = positional(ctx, 1, 'SRC', usage);
    const destArg = positional(ctx, 2, 'DEST', usage);
    try {
      await lstat(src);
    } catch (e) {
      if (isNodeError(e) && e.code === 'ENOENT') throw new DvfsError('E_NOTFOUND', 'source does not exist', { path: src });
      throw e;
    }
    const { view } = await openRepoView(ctx, repoArg);
    let dest = volumePath(destArg);
    if (destArg.endsWith('/') || (await destinationIsDir(view, dest))) {
      dest = dest === '' ? basename(src) : `${dest}/${basename(src)}`;
    }
    const parent = dest.split('/').slice(0, -1).join('/');
    await view.mkdirp(parent);
    const stats: PutStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
    const started = Date.now();
    await putTree(ctx, view, src, dest, stats);
    const seconds = (Date.now() - started) / 1000;
    if (ctx.json) printJson(ctx.out, { dest, ...stats, seconds });
    else ctx.out.write(`put ${dest}: ${stats.files} files, ${stats.dirs} dirs, ${stats.symlinks} symlinks, ${humanBytes(stats.bytes)} in ${seconds.toFixed(2)} s\n`);
  },
};
