// A collaborator who holds the repository's keys and crafts manifests: trees the schema refuses (sealed by
// hand with the real manifest key, as a hostile dvfs would) and valid-but-nasty trees (symlinks out of the
// target, a directory where a symlink was, sizes that lie), stored through the real ManifestStore.
import type { Test } from 'tap';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sodium from 'sodium-native';
import { dvfs, type CliResult } from '../helpers/cli.js';
import { silentLogger } from '../../daemon/log.js';
import { readDvfsRepository } from '../../daemon/repo/layout.js';
import { openTree } from '../../daemon/repo/open-tree.js';
import { openVersioning, type Versioning } from '../../daemon/versioning/context.js';
import { hashBuffer, type ObjectId } from '../../daemon/store/content-hash.js';
import { manifestAd, NONCE_BYTES, TAG_BYTES } from '../../daemon/store/manifests.js';
import { shardDir, shardPath } from '../../daemon/store/shards.js';
import type { ManifestKind, Snapshot } from '../../daemon/store/manifest-schema.js';

export const PASSWORD = 'hostile collaborator password';

export interface Workspace {
  dir: string;
  env: NodeJS.ProcessEnv;
  run: (args: string[]) => CliResult;
}

export async function workspace(t: Test): Promise<Workspace> {
  const dir = await mkdtemp(join(tmpdir(), 'dvfs-hostile-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const pw = join(dir, 'pw');
  await writeFile(pw, PASSWORD + '\n', { mode: 0o600 });
  // Mount records and sockets stay inside the workspace.
  await mkdir(join(dir, 'xdg'), { mode: 0o700 });
  const env = { DVFS_PASSWORD_FILE: pw, DVFS_NO_PROGRESS: '1', DVFS_STATE_DIR: join(dir, 'state'), XDG_RUNTIME_DIR: join(dir, 'xdg') };
  return { dir, env, run: (args) => dvfs(args, { env }) };
}

export function ok(t: Test, r: CliResult, what: string): CliResult {
  t.equal(r.status, 0, `${what} (${r.stderr.trim().slice(0, 300)})`);
  return r;
}

/** Opens the versioning context of a repository with its password (the keys a collaborator holds). */
export async function openRepo(t: Test, root: string): Promise<Versioning> {
  const repo = await readDvfsRepository(root);
  if (!repo) throw new Error(`${root} is not a dvfs repository`);
  const tree = await openTree(repo, Buffer.from(PASSWORD), silentLogger());
  const v = openVersioning(repo, tree);
  t.teardown(() => v.close());
  return v;
}

const KEY_BYTES = 32;

/** Seals `plaintext` as a manifest of `kind` with the repository's manifest key, bypassing every check. */
export async function sealRaw(v: Versioning, kind: ManifestKind, plaintext: string): Promise<ObjectId> {
  const key = v.keys.manifest;
  const idKey = Buffer.alloc(KEY_BYTES);
  sodium.crypto_generichash(idKey, Buffer.from('dvfs manifest id v1', 'ascii'), key);
  const sealKey = Buffer.alloc(KEY_BYTES);
  sodium.crypto_generichash(sealKey, Buffer.from('dvfs manifest seal v1', 'ascii'), key);
  const plain = Buffer.from(plaintext, 'utf8');
  const id = hashBuffer(idKey, plain);
  const sealed = Buffer.alloc(NONCE_BYTES + plain.length + TAG_BYTES);
  const nonce = sealed.subarray(0, NONCE_BYTES);
  sodium.randombytes_buf(nonce);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(sealed.subarray(NONCE_BYTES), plain, manifestAd(kind), null, nonce, sealKey);
  await mkdir(shardDir(v.manifests.dir, id), { recursive: true });
  await writeFile(shardPath(v.manifests.dir, id), sealed, { mode: 0o444 });
  return id;
}

/** A plain snapshot of `tree` (what dvfs commit would write, minus the stats). */
export function snapshotOf(tree: ObjectId, parents: ObjectId[], message: string): Snapshot {
  return {
    tree,
    parents,
    message,
    time: '2026-01-01T00:00:00.000Z',
    author: 'mallory@example',
    provenance: {},
    stats: { files: 0, bytes: 0, added: 0, changed: 0, removed: 0, bytesHashed: 0 },
  };
}
