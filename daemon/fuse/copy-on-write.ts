/**
 * Re-encrypting a working file into a fresh ciphertext file. Commit hard-links working-tree ciphertext into the
 * object store, so a working file whose ciphertext has other links must never be modified in place: before its
 * first mutation, its plaintext is copied into a new ciphertext file (a new file IV / file id: no block of the new
 * file can be mistaken for, or spliced with, the stored one) that takes the old one's place in the tree.
 *
 * The copy is written beside the file under a temporary name the formats hide (TEMP_PREFIX), sealed for the
 * file's own location (same Location context: EncFS external IV chaining binds the header to the path), so
 * putting it in place is one raw rename(2) with nothing to re-seal.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { chmodSync, chownSync, lstatSync, renameSync, unlinkSync, utimesSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isNodeError } from '../errors.js';
import type { CryptoTree, FileContent, Location } from '../vfs/crypto-tree.js';
import { TEMP_PREFIX } from '../vfs/plain-view.js';
import { FsError } from './errno.js';
import type { SpecialFiles } from './special-files.js';

/** Plaintext bytes per read/write of the copy: bounded memory, few enough calls. */
export const COPY_CHUNK = 1 << 20;

/** How often a copy is redone because the file moved while it was being made, before giving up. */
const PLACE_ATTEMPTS = 3;

/**
 * How long to keep looking for a file the mount believes has a name but that is at none of its paths: a rename
 * is in progress (the raw rename is done, the frontend updates its paths when the format's re-sealing is).
 */
const FIND_TIMEOUT_MS = 2_000;
const FIND_RETRY_MS = 5;

/**
 * Copies the first `bytes` plaintext bytes of `source` into `target` (expected empty) in COPY_CHUNK pieces, in
 * order (so the target is written front to back, as a streaming copy). Returns the bytes copied.
 */
export async function reencryptInto(source: FileContent, target: FileContent, bytes: number): Promise<number> {
  let done = 0;
  while (done < bytes) {
    const piece = await source.read(done, Math.min(COPY_CHUNK, bytes - done));
    if (piece.length === 0) break; // the source is shorter than it said: copy what there is
    await target.write(done, piece);
    done += piece.length;
  }
  return done;
}

const tempName = (): string => `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`;

/** A temporary sibling of `loc`, hidden from listings, whose contents are sealed as if they were at `loc`. */
export function tempSibling<Ctx>(loc: Location<Ctx>): Location<Ctx> {
  return { ...loc, rawPath: join(dirname(loc.rawPath), tempName()) };
}

export interface DetachOptions {
  /** Copy only this many plaintext bytes (the mutation truncates to it); all when undefined, none for 0. */
  keep?: number;
  /** Extended attributes are copied when given (best effort: a filesystem without them has none to copy). */
  xattrs?: SpecialFiles;
}

export interface DetachedCopy {
  content: FileContent;
  ino: number;
  /** False: no tree path names the file any more, so the copy was left anonymous (only the open fd has it). */
  placed: boolean;
  bytesCopied: number;
}

/** The first of `paths()` whose ciphertext is the inode `ino` (of device `dev`), waiting out a rename in progress. */
async function findInode(tree: CryptoTree, paths: () => string[], ino: number, dev: number): Promise<Location | null> {
  for (const deadline = Date.now() + FIND_TIMEOUT_MS; ; ) {
    const candidates = new Set(paths());
    if (candidates.size === 0) return null; // unlinked, as far as the mount knows
    for (const p of candidates) {
      const at = await locateInode(tree, p, ino, dev);
      if (at) return at;
    }
    if (Date.now() > deadline) return null;
    await new Promise((r) => setTimeout(r, FIND_RETRY_MS));
  }
}

/** Where a plaintext path's ciphertext is, if it is the inode `ino` (of device `dev`). */
async function locateInode(tree: CryptoTree, plainPath: string, ino: number, dev: number): Promise<Location | null> {
  let loc: Location;
  try {
    loc = await tree.locate(plainPath);
  } catch {
    return null; // e.g. a directory above it is gone
  }
  return sameInode(loc.rawPath, ino, dev) ? loc : null;
}

function sameInode(rawPath: string, ino: number, dev: number): boolean {
  try {
    const st = lstatSync(rawPath);
    return st.ino === ino && st.dev === dev;
  } catch {
    return false;
  }
}

function removeQuietly(rawPath: string): void {
  try {
    unlinkSync(rawPath);
  } catch (e) {
    if (!(isNodeError(e) && e.code === 'ENOENT')) throw e;
  }
}

/** Gives the copy the old file's owner; a daemon that may not (not root, another owner) leaves it its own. */
function keepOwner(rawPath: string, old: Stats): void {
  const now = lstatSync(rawPath);
  if (now.uid === old.uid && now.gid === old.gid) return;
  try {
    chownSync(rawPath, old.uid, old.gid);
  } catch (e) {
    if (!(isNodeError(e) && e.code === 'EPERM')) throw e;
  }
}

async function copyXattrs(xattrs: SpecialFiles, from: string, to: string): Promise<void> {
  let names: string[];
  try {
    names = await xattrs.listxattr(from);
  } catch {
    return;
  }
  for (const name of names) {
    const value = await xattrs.getxattr(from, name).catch(() => null);
    if (value !== null) await xattrs.setxattr(to, name, value, 0).catch(() => undefined);
  }
}

/**
 * Writes a re-encrypted copy of `source` (whose ciphertext is `old`, from fstat) into the new hidden file `tmp`,
 * with the old file's mode, owner and times, and the extended attributes of `xattrsOf` (the old ciphertext path).
 */
async function makeCopy(tree: CryptoTree, tmp: Location, xattrsOf: string | null, source: FileContent, old: Stats, options: DetachOptions): Promise<{ content: FileContent; bytes: number }> {
  const content = await tree.openContent(tmp, { create: true, mode: old.mode & 0o7777 });
  try {
    const size = await source.size();
    const bytes = await reencryptInto(source, content, options.keep === undefined ? size : Math.min(options.keep, size));
    // The new ciphertext must be on disk before it replaces the old one in the tree: after a crash the tree
    // holds the old file or the complete copy, never an empty or partial one.
    await content.sync();
    chmodSync(tmp.rawPath, old.mode & 0o7777); // creation applied the umask
    keepOwner(tmp.rawPath, old);
    if (options.xattrs && xattrsOf !== null) await copyXattrs(options.xattrs, xattrsOf, tmp.rawPath);
    utimesSync(tmp.rawPath, old.atime, old.mtime); // last: the writes above moved them
    return { content, bytes };
  } catch (e) {
    await content.close().catch(() => undefined);
    removeQuietly(tmp.rawPath);
    throw e;
  }
}

/**
 * Replaces the open file `source` by a re-encrypted copy of it. `paths()` gives the plaintext paths that may name
 * the file now (the path of the operation, the open file's tracked path; none once the mount saw it unlinked);
 * the copy takes the place of the old ciphertext at the first of them that still names its inode — checked and
 * renamed with no await in between, so no other FUSE operation (all run on this thread) can move or replace the
 * file in the meantime. When the file moved while the copy was made, the copy is redone at its new place; when
 * no path names it (it was unlinked), the copy stays anonymous: only the open handles see it, as they would have
 * seen the old file. The caller swaps `content` in for `source` and closes `source`.
 */
export async function detachCopy(tree: CryptoTree, source: FileContent, paths: () => string[], options: DetachOptions = {}): Promise<DetachedCopy> {
  const old = await source.rawStats();
  for (let attempt = 1; ; attempt++) {
    const at = await findInode(tree, paths, old.ino, old.dev);
    // Anonymous: the copy is made in the tree's root (any directory of the tree would do) and unlinked at once.
    const tmp = at ? tempSibling(at) : { ...(await tree.locate('')), rawPath: join(tree.root, tempName()) };
    const copy = await makeCopy(tree, tmp, at?.rawPath ?? null, source, old, options);
    let placed = false;
    try {
      const ino = (await copy.content.rawStats()).ino;
      // From the check to the rename: no await (see above).
      if (at === null) {
        removeQuietly(tmp.rawPath);
      } else if (sameInode(at.rawPath, old.ino, old.dev)) {
        renameSync(tmp.rawPath, at.rawPath);
        placed = true;
      } else if (attempt < PLACE_ATTEMPTS) {
        // Moved or replaced while we copied: this copy is sealed for the old place; start over.
        await copy.content.close();
        removeQuietly(tmp.rawPath);
        continue;
      } else {
        throw new FsError('EAGAIN', 'copy-on-write: the file kept moving while it was copied');
      }
      return { content: copy.content, ino, placed, bytesCopied: copy.bytes };
    } catch (e) {
      if (!placed) {
        await copy.content.close().catch(() => undefined);
        removeQuietly(tmp.rawPath);
      }
      throw e;
    }
  }
}
