/**
 * Working-tree files and the object store: hashing a file's plaintext from disk, filing its ciphertext
 * under its object id, and placing a stored object back into a working tree.
 *
 * Position-independent ciphertext (EncFS without external IV chaining, dvfs-native) enters the store by hard
 * link: no byte is copied. A format that binds the file header to the path (EncFS external IV chaining) is
 * stored as a copy whose header is re-encoded to its path-independent form; the working file is then
 * hard-linked into `.dvfs/frozen/` so that, like a linked file, it has st_nlink > 1. Either way the daemon's
 * copy-on-write sees nlink > 1 and re-encrypts the file under a fresh file IV before changing it, so no two
 * committed versions ever share an IV.
 */
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, link, mkdir, open, rename, rm, utimes, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ContentHasher, type ObjectId } from '../store/content-hash.js';
import type { AddResult } from '../store/objects.js';
import { DvfsError, isNodeError } from '../errors.js';
import type { FileContent, Location } from '../vfs/crypto-tree.js';
import type { Versioning } from './context.js';

export const FROZEN_DIR = 'frozen';
const READ_CHUNK = 1 << 20;

/** Keyed hash of the plaintext of the working file at `loc` (reads and decrypts it). */
export async function hashWorkingFile(v: Versioning, loc: Location): Promise<{ id: ObjectId; bytes: number }> {
  return hashContent(v, await v.tree.openContent(loc, { readOnly: true }));
}

/**
 * Reads `content` to its end in chunks, feeding `sink` (optional), and closes it; returns the keyed hash
 * of the plaintext read and its length.
 */
async function hashContent(v: Pick<Versioning, 'keys'>, content: FileContent, sink?: (chunk: Buffer) => Promise<void> | void): Promise<{ id: ObjectId; bytes: number }> {
  try {
    const h = new ContentHasher(v.keys.contentHash);
    const size = await content.size();
    for (let off = 0; off < size; off += READ_CHUNK) {
      const chunk = await content.read(off, Math.min(READ_CHUNK, size - off));
      if (chunk.length === 0) break;
      h.update(chunk);
      if (sink) await sink(chunk);
    }
    const bytes = h.bytes;
    return { id: h.digest(), bytes };
  } finally {
    await content.close();
  }
}

/**
 * Files the working file at `loc` (plaintext id `id`, `rawSize` ciphertext bytes) in the object store; see
 * the module comment. An id already stored adds nothing.
 */
export async function storeWorkingFile(v: Versioning, loc: Location, id: ObjectId, rawSize: number): Promise<AddResult> {
  const bound = v.tree.pathBoundHeader;
  if (!bound) {
    const linked = v.objects.linkInSync(id, loc.rawPath);
    if (linked === 'added') return { added: true, bytes: rawSize, linked: true };
    if (linked === 'exists') return { added: false, bytes: 0, linked: false };
    return v.objects.addByCopy(id, loc.rawPath);
  }
  if (await v.objects.has(id)) return { added: false, bytes: 0, linked: false };
  const result = await v.objects.addByCopy(id, loc.rawPath, (header) => bound.toStore(loc, header), { headerBytes: bound.bytes });
  await freeze(v, loc.rawPath);
  return result;
}

/** Gives a working file a second name under `.dvfs/frozen/` (see the module comment); gc drops unused ones. */
async function freeze(v: Versioning, rawPath: string): Promise<void> {
  const dir = join(v.metaDir, FROZEN_DIR);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    await link(rawPath, join(dir, randomBytes(12).toString('hex')));
  } catch (e) {
    if (!(isNodeError(e) && e.code === 'EMLINK')) throw e;
  }
}

/**
 * Places object `id` at the (absent) working location `loc`: a hard link when the ciphertext is
 * position-independent and the filesystem allows it, otherwise a copy with the header re-encoded for `loc`.
 * The result is written under a temporary name and renamed into place, so `loc` never holds a partial file.
 */
export async function placeObject(v: Versioning, id: ObjectId, loc: Location, mode: number, mtimeMs: number): Promise<void> {
  const src = v.objects.path(id);
  const tmp = `${loc.rawPath}.dvfs-restore-${randomBytes(6).toString('hex')}`;
  const bound = v.tree.pathBoundHeader;
  try {
    if (!bound) {
      try {
        await link(src, tmp);
      } catch (e) {
        if (!(isNodeError(e) && ['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP'].includes(e.code ?? ''))) throw e;
        await copyFile(src, tmp);
      }
    } else {
      await copyFile(src, tmp);
      const fh = await open(tmp, 'r+');
      try {
        await rewriteHeader(fh, bound.bytes, (h) => bound.fromStore(loc, h));
      } finally {
        await fh.close();
      }
    }
    // A linked object's inode is shared with every working file placed from it: they share mode and times.
    await chmod(tmp, mode);
    await utimes(tmp, mtimeMs / 1000, mtimeMs / 1000);
    await rename(tmp, loc.rawPath);
    if (bound) await freeze(v, loc.rawPath);
  } catch (e) {
    await rm(tmp, { force: true });
    if (isNodeError(e) && e.code === 'ENOENT' && e.path === src) throw notStoredLocally(v, id);
    throw e;
  }
}

/** The error for an object a snapshot names that the local store lacks (a clone fetches old ones lazily). */
export function notStoredLocally(v: Pick<Versioning, 'objects'>, id: ObjectId): DvfsError {
  return new DvfsError('E_NOTFOUND', `object ${id.slice(0, 12)} is not stored locally (a clone holds HEAD's objects only; older ones stay on the remote until fetched)`, {
    path: v.objects.path(id),
    hint: 'fetch it first: dvfs fetch REPO SNAPSHOT --remote URL (or add the remote: dvfs remote add REPO origin URL); if this repository was never cloned, dvfs verify REPO names what is damaged',
  });
}

async function rewriteHeader(fh: FileHandle, bytes: number, f: (h: Buffer) => Buffer): Promise<void> {
  const header = Buffer.alloc(bytes);
  const { bytesRead } = await fh.read(header, 0, bytes, 0);
  if (bytesRead < bytes) return; // an empty file has no header
  const out = f(header);
  await fh.write(out, 0, out.length, 0);
}

/** Opens stored object `id` as plaintext (read-only; close it). */
export async function openObject(v: Pick<Versioning, 'tree' | 'objects'>, id: ObjectId): Promise<FileContent> {
  const root = await v.tree.locate('');
  // The stored form is position-independent: any location's context decodes it (external IV 0).
  const rawPath = v.objects.path(id);
  try {
    return await v.tree.openContent({ plainPath: '', rawPath, ctx: root.ctx }, { readOnly: true });
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT' && e.path === rawPath) throw notStoredLocally(v, id);
    throw e;
  }
}

/** Reads an object's plaintext in chunks, feeding `sink`; returns the keyed hash of what was read. */
export async function readObject(v: Pick<Versioning, 'tree' | 'objects' | 'keys'>, id: ObjectId, sink?: (chunk: Buffer) => Promise<void> | void): Promise<{ id: ObjectId; bytes: number }> {
  return hashContent(v, await openObject(v, id), sink);
}
