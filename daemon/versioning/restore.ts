/**
 * Bringing back what a snapshot holds: decrypted into a plain directory, or into the repository's working
 * tree. A working-tree restore places each stored object by hard link (or by copy with its header re-encoded
 * where the format ties headers to paths) and records everything it does in a session journal of its own,
 * so the next `dvfs commit` sees the restore as a change — with every hash already known. Files whose
 * working ciphertext already is the stored object (same inode) are left alone.
 */
import { chmod, lstat, mkdir, open, readdir, rename, rm, stat, symlink, utimes } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DvfsError, isNodeError } from '../errors.js';
import type { SessionJournal } from '../journal/journal.js';
import type { ObjectId } from '../store/content-hash.js';
import type { CryptoTree, Location } from '../vfs/crypto-tree.js';
import type { Versioning } from './context.js';
import { SnapshotReader, type AnyEntry } from './snapshot-walk.js';
import { placeObject, readObject } from './working-files.js';

export interface RestoreStats {
  files: number;
  bytes: number;
  dirs: number;
  symlinks: number;
  /** Working files that already held the snapshot's content. */
  unchanged: number;
  /** Working entries removed because the snapshot does not have them. */
  removed: number;
}

export type RestoreProgress = (files: number, bytes: number) => void;

const newStats = (): RestoreStats => ({ files: 0, bytes: 0, dirs: 0, symlinks: 0, unchanged: 0, removed: 0 });

function normalize(path: string): string {
  const parts = path.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw new DvfsError('E_USAGE', `path '${path}' must not contain '..'`);
  return '/' + parts.join('/');
}

async function entryAt(reader: SnapshotReader, root: ObjectId, path: string, snapshotId: string): Promise<AnyEntry> {
  const e = await reader.lookup(root, path);
  if (!e) throw new DvfsError('E_NOTFOUND', `${path} is not in snapshot ${snapshotId.slice(0, 12)}`, { hint: `see what it holds with: dvfs ls-snapshot or dvfs diff` });
  return e;
}

// --- into a plain directory ---------------------------------------------------------------------------------

/** Decrypts `paths` (default: everything) of a snapshot into `target`, keeping their paths below it. */
export async function restoreToDirectory(
  v: Versioning,
  snapshotId: ObjectId,
  paths: readonly string[],
  target: string,
  options: { overwrite?: boolean; onProgress?: RestoreProgress } = {},
): Promise<RestoreStats> {
  const snap = await v.manifests.getSnapshot(snapshotId);
  const reader = new SnapshotReader(v.manifests);
  const stats = newStats();
  const overwrite = options.overwrite === true;
  await mkdir(target, { recursive: true });
  const put = async (path: string, e: AnyEntry): Promise<void> => {
    const out = path === '/' ? target : join(target, path);
    if (e.type === 'dir') {
      if (path === '/') await mkdir(out, { recursive: true, mode: 0o700 });
      else await realDirectory(target, path, overwrite);
      stats.dirs++;
      for (const child of (await reader.tree(e.tree)).entries) await put(`${path === '/' ? '' : path}/${child.name}`, child);
      await chmod(out, e.mode);
      if (e.name !== '') await utimes(out, e.mtimeMs / 1000, e.mtimeMs / 1000);
      return;
    }
    await realDirectory(target, dirname(path), overwrite);
    if (!overwrite) {
      try {
        await lstat(out);
        throw new DvfsError('E_EXISTS', 'already exists in the target directory', { path: out, hint: 'restore into an empty directory, or pass --force to overwrite' });
      } catch (err) {
        if (!(isNodeError(err) && err.code === 'ENOENT')) throw err;
      }
    }
    if (e.type === 'symlink') {
      await rm(out, { force: true });
      await symlink(e.target, out);
      stats.symlinks++;
      return;
    }
    const tmp = `${out}.dvfs-restore-${randomBytes(6).toString('hex')}`;
    const fh = await open(tmp, 'wx', 0o600);
    try {
      const got = await readObject(v, e.object, async (chunk) => {
        await fh.write(chunk);
      });
      if (got.id !== e.object) throw new DvfsError('E_INTEGRITY', `object ${e.object} does not hash back to its id: the store is damaged`, { path: v.objects.path(e.object), hint: 'run dvfs verify REPO --full' });
      if (got.bytes !== e.size) throw new DvfsError('E_INTEGRITY', `${path}: the snapshot gives a size of ${e.size} bytes but its object holds ${got.bytes}: the manifest is damaged or forged`, { path: v.objects.path(e.object), hint: 'run dvfs verify REPO --full' });
      await fh.close();
      await chmod(tmp, e.mode);
      await utimes(tmp, e.mtimeMs / 1000, e.mtimeMs / 1000);
      await rename(tmp, out);
    } catch (err) {
      await fh.close().catch(() => undefined);
      await rm(tmp, { force: true });
      throw err;
    }
    stats.files++;
    stats.bytes += e.size;
    options.onProgress?.(stats.files, stats.bytes);
  };
  for (const p of paths.length === 0 ? ['/'] : paths.map(normalize)) await put(p, await entryAt(reader, snap.tree, p, snapshotId));
  return stats;
}

/**
 * Makes every component of `path` below `target` a real directory, never following a symlink: one that is
 * in the way (left by an earlier restore of a hostile snapshot, say) is replaced when `overwrite`, else E_EXISTS.
 */
async function realDirectory(target: string, path: string, overwrite: boolean): Promise<void> {
  let dir = target;
  for (const name of path.split('/')) {
    if (name === '') continue;
    dir = join(dir, name);
    const st = await lstat(dir).catch((err: unknown) => {
      if (isNodeError(err) && err.code === 'ENOENT') return null;
      throw err;
    });
    if (st?.isDirectory()) continue;
    if (st) {
      if (!overwrite) throw new DvfsError('E_EXISTS', `already exists in the target directory and is not a directory`, { path: dir, hint: 'restore into an empty directory, or pass --force to replace it' });
      await rm(dir, { force: true });
    }
    await mkdir(dir, { mode: 0o700 });
  }
}

// --- into a ciphertext tree (the working tree, or an empty view) ------------------------------------------------

/**
 * Makes `paths` (default: everything) of the tree `tree` match the snapshot: missing and different entries
 * are placed, entries the snapshot does not have are removed. `journal` (working-tree restores) hears of
 * every change, with opaque paths.
 */
export async function restoreToTree(
  v: Versioning,
  tree: CryptoTree,
  snapshotId: ObjectId,
  paths: readonly string[],
  options: { journal?: SessionJournal; onProgress?: RestoreProgress } = {},
): Promise<RestoreStats> {
  const snap = await v.manifests.getSnapshot(snapshotId);
  const reader = new SnapshotReader(v.manifests);
  const stats = newStats();
  const journal = options.journal;
  const target = { ...v, tree };
  const opaque = (p: string): string => v.paths.encodePath(p);

  const removeRaw = async (path: string, raw: string): Promise<void> => {
    await rm(raw, { recursive: true, force: true });
    journal?.remove(opaque(path));
    stats.removed++;
  };

  const ensureParents = async (path: string): Promise<void> => {
    const parts = path.split('/').filter((c) => c !== '');
    let p = '';
    for (const c of parts.slice(0, -1)) {
      p += '/' + c;
      const loc = await tree.locate(p);
      const st = await lstat(loc.rawPath).catch(() => null);
      if (st?.isDirectory()) continue;
      if (st) await removeRaw(p, loc.rawPath);
      await tree.mkdir(loc, 0o755);
      journal?.mkdir(opaque(p));
    }
  };

  const place = async (path: string, e: AnyEntry): Promise<void> => {
    const loc = await tree.locate(path);
    const st = await lstat(loc.rawPath).catch(() => null);
    if (e.type === 'dir') {
      if (st && !st.isDirectory()) await removeRaw(path, loc.rawPath);
      if (!st || !st.isDirectory()) {
        await tree.mkdir(loc, e.mode);
        journal?.mkdir(opaque(path));
        stats.dirs++;
      }
      const children = (await reader.tree(e.tree)).entries;
      const wanted = new Set(children.map((c) => c.name));
      for (const child of children) await place(`${path === '/' ? '' : path}/${child.name}`, child);
      await removeExtras(tree, loc, path, wanted, removeRaw);
      if (path !== '/') await chmod(loc.rawPath, e.mode);
      return;
    }
    if (st?.isDirectory()) await removeRaw(path, loc.rawPath);
    if (e.type === 'symlink') {
      if (st && !st.isDirectory()) await rm(loc.rawPath, { force: true });
      await symlink(tree.encodeLinkTarget(e.target), loc.rawPath);
      journal?.symlink(opaque(path));
      stats.symlinks++;
      return;
    }
    if (st?.isFile() && st.ino === (await stat(v.objects.path(e.object))).ino) {
      stats.unchanged++;
      return;
    }
    await placeObject(target, e.object, loc, e.mode, e.mtimeMs);
    journal?.write(opaque(path), { hash: e.object, size: e.size, ...(st ? {} : { created: true }) });
    stats.files++;
    stats.bytes += e.size;
    options.onProgress?.(stats.files, stats.bytes);
  };

  for (const p of paths.length === 0 ? ['/'] : paths.map(normalize)) {
    const e = await entryAt(reader, snap.tree, p, snapshotId);
    if (p !== '/') await ensureParents(p);
    await place(p, e);
  }
  await journal?.flush();
  return stats;
}

async function removeExtras(
  tree: CryptoTree,
  dir: Location,
  path: string,
  wanted: ReadonlySet<string>,
  removeRaw: (path: string, raw: string) => Promise<void>,
): Promise<void> {
  await tree.prepareDir?.(dir);
  for (const cipherName of await readdir(dir.rawPath)) {
    let name: string | null;
    try {
      name = tree.decodeEntry(dir, cipherName);
    } catch {
      continue;
    }
    if (name === null || wanted.has(name)) continue;
    await removeRaw(`${path === '/' ? '' : path}/${name}`, join(dir.rawPath, cipherName));
  }
}
