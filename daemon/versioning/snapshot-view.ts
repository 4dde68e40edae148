/**
 * A read-only view of an old snapshot for `dvfs mount --snapshot ID`: a ciphertext tree assembled under
 * `REPO/.dvfs/views/<id>-<pid>/` from the stored objects (hard links, or header-re-encoded copies where the
 * format ties headers to paths) plus the volume's own root files (config, root IV), served like the working
 * tree but read-only. Nothing is decrypted to disk. The view is deleted at unmount; one left by a killed
 * daemon is deleted by the next view.
 */
import { copyFile, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ObjectId } from '../store/content-hash.js';
import type { CryptoTree } from '../vfs/crypto-tree.js';
import type { Versioning } from './context.js';
import { restoreToTree } from './restore.js';

export const VIEWS_DIR = 'views';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes views whose daemon is gone. */
async function sweepViews(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(/-(\d+)$/.exec(name)?.[1]);
    if (Number.isSafeInteger(pid) && pid > 0 && !pidAlive(pid)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/**
 * Builds the view of `snapshot` and opens it with `openTree` (the format's own opener, given the view's
 * root). Returns the opened tree and the view directory to delete afterwards.
 */
export async function createSnapshotView(v: Versioning, snapshot: ObjectId, openTree: (root: string) => Promise<CryptoTree>): Promise<{ tree: CryptoTree; dir: string }> {
  const views = join(v.metaDir, VIEWS_DIR);
  await sweepViews(views);
  const dir = join(views, `${snapshot.slice(0, 16)}-${process.pid}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    // The volume's own files at the root (the format hides them from listings): config, root directory IV.
    const root = await v.tree.locate('');
    await v.tree.prepareDir?.(root);
    for (const name of await readdir(v.tree.root)) {
      let plain: string | null;
      try {
        plain = v.tree.decodeEntry(root, name);
      } catch {
        continue;
      }
      if (plain === null && !name.startsWith('.dvfs-tmp-')) await copyFile(join(v.tree.root, name), join(dir, name)).catch(() => undefined);
    }
    const tree = await openTree(dir);
    try {
      await restoreToTree(v, tree, snapshot, []);
    } catch (e) {
      tree.dispose?.();
      throw e;
    }
    return { tree, dir };
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
}
