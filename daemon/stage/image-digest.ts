/**
 * The digest of a stage's image, part of its identity and provenance:
 * - docker / podman: the image id the engine reports (`sha256:...`, the digest of its config);
 * - bubblewrap: SHA-256 over the root filesystem directory (every path, type, mode, file content and
 *   symlink target, in sorted order), so a changed rootfs changes the digest;
 * - apptainer: SHA-256 of the .sif file;
 * - sarus: no local digest is asked for (null: the image reference stands in);
 * - none: null.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DvfsError, isNodeError } from '../errors.js';
import type { EngineName } from '../profile/schema.js';
import { ENGINE_PROGRAMS } from './engines.js';

const pexecFile = promisify(execFile);

async function hashFileInto(h: ReturnType<typeof createHash>, file: string): Promise<void> {
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
}

async function hashTree(h: ReturnType<typeof createHash>, root: string, rel: string): Promise<void> {
  const names = (await readdir(join(root, rel))).sort();
  for (const name of names) {
    const path = rel === '' ? name : `${rel}/${name}`;
    const st = await lstat(join(root, path));
    h.update(`${JSON.stringify(path)} ${st.mode.toString(8)} `);
    if (st.isSymbolicLink()) h.update(`-> ${await readlink(join(root, path))}\n`);
    else if (st.isFile()) {
      h.update(`${st.size}\n`);
      await hashFileInto(h, join(root, path));
    } else if (st.isDirectory()) {
      h.update('dir\n');
      await hashTree(h, root, path);
    } else h.update('special\n');
  }
}

async function engineImageId(engine: 'docker' | 'podman', image: string, engineArgs: readonly string[]): Promise<string> {
  try {
    const { stdout } = await pexecFile(ENGINE_PROGRAMS[engine], [...engineArgs, 'image', 'inspect', '--format', '{{.Id}}', image], { timeout: 120_000 });
    const id = stdout.trim().split('\n')[0] ?? '';
    if (!/^(sha256:)?[0-9a-f]{64}$/.test(id)) throw new DvfsError('E_IO', `${engine} reported an unexpected image id '${id.slice(0, 80)}'`);
    return id.startsWith('sha256:') ? id : `sha256:${id}`;
  } catch (e) {
    if (e instanceof DvfsError) throw e;
    if (isNodeError(e) && e.code === 'ENOENT') throw new DvfsError('E_NOTFOUND', `${engine} is not installed`, { hint: `install it (apt-get install ${engine === 'docker' ? 'docker.io' : 'podman'}) or pick another engine with --engine` });
    const stderr = (e as { stderr?: string }).stderr?.trim().split('\n').pop() ?? String(e);
    throw new DvfsError('E_NOTFOUND', `${engine} has no image '${image}': ${stderr}`, { hint: `build or import it first (${engine} import ROOTFS.tar ${image}); dvfs run never pulls from a registry` });
  }
}

/** The digest of `image` for `engine` (see the module header), or null when it has none. */
export async function imageDigest(engine: EngineName, image: string | null, engineArgs: readonly string[]): Promise<string | null> {
  if (image === null || engine === 'none' || engine === 'sarus') return null;
  if (engine === 'docker' || engine === 'podman') return engineImageId(engine, image, engineArgs);
  let st;
  try {
    st = await lstat(image);
  } catch (e) {
    if (isNodeError(e) && e.code === 'ENOENT') {
      throw new DvfsError('E_NOTFOUND', `the ${engine} image does not exist`, { path: image, hint: engine === 'bubblewrap' ? 'the image of bubblewrap is a root filesystem directory' : 'give the path of a .sif file' });
    }
    throw e;
  }
  const h = createHash('sha256');
  if (engine === 'bubblewrap') {
    if (!st.isDirectory()) throw new DvfsError('E_USAGE', 'the bubblewrap image must be a root filesystem directory', { path: image });
    await hashTree(h, image, '');
  } else {
    if (!st.isFile()) throw new DvfsError('E_USAGE', 'the apptainer image must be a .sif file', { path: image });
    await hashFileInto(h, image);
  }
  return `sha256:${h.digest('hex')}`;
}
