import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DvfsError, isNodeError } from '../../daemon/errors.js';
import type { PlainView } from '../../daemon/vfs/plain-view.js';
import type { CryptoTree } from '../../daemon/vfs/crypto-tree.js';
import type { SessionJournal } from '../../daemon/journal/journal.js';
import { createSession, removeSession, saveSessionInfo } from '../../daemon/journal/sessions.js';
import type { Repository } from '../../daemon/repo/repository.js';
import { ContentHasher } from '../../daemon/store/content-hash.js';
import { readHead } from '../../daemon/store/refs.js';
import { openVersioning } from '../../daemon/versioning/context.js';
import type { Command, CommandContext } from '../command.js';
import { humanBytes, printJson } from '../format.js';
import { openRepoView, positional, VOLUME_OPTIONS, volumePath } from '../open.js';

const usage = 'dvfs put REPO SRC DEST [--password-file FILE] [--json]';

/** A put into a dvfs repository is recorded like a mount session, so `dvfs commit` sees it (hashes included). */
interface PutRecord {
  journal: SessionJournal;
  hashKey: Buffer;
  encodePath(plainPath: string): string;
}

async function* hashing(source: AsyncIterable<Buffer>, hasher: ContentHasher): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    hasher.update(chunk);
    yield chunk;
  }
}

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

async function putTree(ctx: CommandContext, view: PlainView, src: string, dest: string, stats: PutStats, rec: PutRecord | null): Promise<void> {
  const st = await lstat(src);
  if (st.isSymbolicLink()) {
    await view.symlink(await readlink(src), dest);
    rec?.journal.symlink(rec.encodePath(dest));
    stats.symlinks++;
  } else if (st.isDirectory()) {
    if (!(await destinationIsDir(view, dest))) {
      await view.mkdir(dest, st.mode & 0o7777);
      rec?.journal.mkdir(rec.encodePath(dest));
    }
    stats.dirs++;
    for (const name of (await readdir(src)).sort()) {
      await putTree(ctx, view, join(src, name), dest === '' ? name : `${dest}/${name}`, stats, rec);
    }
  } else if (st.isFile()) {
    const stream = createReadStream(src, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>;
    const hasher = rec ? new ContentHasher(rec.hashKey) : null;
    const size = await view.writeFile(dest, hasher ? hashing(stream, hasher) : stream, st.mode & 0o7777);
    if (rec && hasher) rec.journal.write(rec.encodePath(dest), { hash: hasher.digest(), size });
    stats.bytes += size;
    stats.files++;
    if (!ctx.json && stats.files % 1000 === 0) ctx.note(`put: ${stats.files} files, ${humanBytes(stats.bytes)}`);
  } else {
    ctx.note(`warning: skipping ${src}: not a regular file, directory or symlink`);
  }
}

async function startPutSession(repo: Repository, tree: CryptoTree): Promise<{ rec: PutRecord; end(): Promise<void> }> {
  const v = openVersioning(repo, tree);
  const { listing, journal } = await createSession(repo.root, { repoId: repo.meta?.id ?? '', mountpoint: '(dvfs put)', baseSnapshot: await readHead(repo.root) });
  return {
    rec: { journal, hashKey: v.keys.contentHash, encodePath: (p) => v.paths.encodePath('/' + p) },
    async end() {
      try {
        await journal.finish();
        listing.info = await saveSessionInfo(listing.dir, journal);
        await journal.close();
        if (listing.info.state === 'committed') await removeSession(listing); // nothing was written
      } finally {
        v.close();
      }
    },
  };
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
    const { repo, tree, view } = await openRepoView(ctx, repoArg);
    let dest = volumePath(destArg);
    if (destArg.endsWith('/') || (await destinationIsDir(view, dest))) {
      dest = dest === '' ? basename(src) : `${dest}/${basename(src)}`;
    }
    const parent = dest.split('/').slice(0, -1).join('/');
    await view.mkdirp(parent);
    const stats: PutStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
    const started = Date.now();
    const session = repo.kind === 'dvfs' ? await startPutSession(repo, tree) : null;
    try {
      await putTree(ctx, view, src, dest, stats, session?.rec ?? null);
    } finally {
      await session?.end();
    }
    const seconds = (Date.now() - started) / 1000;
    if (ctx.json) printJson(ctx.out, { dest, ...stats, seconds });
    else ctx.out.write(`put ${dest}: ${stats.files} files, ${stats.dirs} dirs, ${stats.symlinks} symlinks, ${humanBytes(stats.bytes)} in ${seconds.toFixed(2)} s\n`);
  },
};
