/**
 * Trees and snapshots, encrypted and content-addressed: `REPO/.dvfs/manifests/<2 hex>/<62 hex>`.
 *
 * From the manifest key (keys.ts) come two subkeys, so no key serves two primitives:
 *
 *   idKey   = BLAKE2b-256(key = manifest key, "dvfs manifest id v1")
 *   sealKey = BLAKE2b-256(key = manifest key, "dvfs manifest seal v1")
 *
 * A manifest's plaintext P is its canonical JSON (manifest-schema.ts), its id is BLAKE2b-256(key = idKey, P) in
 * hex, and the file holds
 *
 *   nonce (24 random bytes) || XChaCha20-Poly1305-IETF(sealKey, nonce, AD = "dvfs manifest v1 <kind>", P) || tag (16)
 *
 * Reading checks the tag (which also binds the kind), that P hashes back to the id the file is stored under (a
 * manifest moved to another id is refused), and that P is a well-formed, canonical manifest of that kind. Any
 * failure is a ManifestIntegrityError naming the id and the repository. Writes are atomic (tmp/ + fsync +
 * rename) and idempotent: equal manifests have equal ids and are stored once.
 */
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import sodium, { type SecureBuffer } from 'sodium-native';
import { DvfsError, IntegrityError, isNodeError, type DvfsErrorOptions } from '../errors.js';
import { META_DIR } from '../repo/repository.js';
import { hashBuffer, type ObjectId } from './content-hash.js';
import { writeFileAtomic } from './durable.js';
import {
  checkSnapshot,
  checkedTree,
  decodeManifest,
  encodeSnapshot,
  encodeTree,
  SchemaError,
  type ManifestKind,
  type Snapshot,
  type Tree,
} from './manifest-schema.js';
import { cleanTempDir, listShardIds, listTemp, removeIfPresent, shardDir, shardPath, TMP_DIR } from './shards.js';

export type {
  DirEntry,
  FileEntry,
  ManifestKind,
  Provenance,
  ProvenanceInput,
  Snapshot,
  SnapshotStats,
  SymlinkEntry,
  Tree,
  TreeEntry,
} from './manifest-schema.js';
export { makeTree } from './manifest-schema.js';

export const MANIFESTS_DIR = 'manifests';
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
/** Largest plaintext accepted (a directory of some million entries). */
export const MAX_MANIFEST_BYTES = 256 * 1024 * 1024;
const KEY_BYTES = 32;
const ID_LABEL = 'dvfs manifest id v1';
const SEAL_LABEL = 'dvfs manifest seal v1';

export function manifestAd(kind: ManifestKind): Buffer {
  return Buffer.from(`dvfs manifest v1 ${kind}`, 'ascii');
}

/** A manifest that is not what its id says (damaged, forged, moved, of the wrong kind, malformed). */
export class ManifestIntegrityError extends IntegrityError {
  readonly manifestId: string;
  constructor(manifestId: string, message: string, options: DvfsErrorOptions = {}) {
    super(message, options);
    this.name = 'ManifestIntegrityError';
    this.manifestId = manifestId;
  }
}

export type Manifest = { kind: 'tree'; id: ObjectId; tree: Tree } | { kind: 'snapshot'; id: ObjectId; snapshot: Snapshot };

const utf8 = new TextDecoder('utf-8', { fatal: true });

function subkeys(manifestKey: Uint8Array): readonly [SecureBuffer, SecureBuffer] {
  if (manifestKey.length !== KEY_BYTES) throw new DvfsError('E_USAGE', `manifest key must be ${KEY_BYTES} bytes`);
  const idKey = sodium.sodium_malloc(KEY_BYTES);
  sodium.crypto_generichash(idKey, Buffer.from(ID_LABEL, 'ascii'), manifestKey);
  const sealKey = sodium.sodium_malloc(KEY_BYTES);
  sodium.crypto_generichash(sealKey, Buffer.from(SEAL_LABEL, 'ascii'), manifestKey);
  return [idKey, sealKey];
}

export class ManifestStore {
  /** `REPO/.dvfs/manifests`. */
  readonly dir: string;
  readonly tmpDir: string;
  private readonly idKey: SecureBuffer;
  private readonly sealKey: SecureBuffer;
  /** [idKey, sealKey] of earlier key epochs, tried after the current ones when reading. */
  private readonly older: (readonly [SecureBuffer, SecureBuffer])[];

  /** `manifestKey` is RepoKeys.manifest; the store keeps its own subkeys (dispose() wipes them). */
  constructor(
    readonly repoRoot: string,
    manifestKey: Uint8Array,
    /** fsync every manifest (default). A caller that syncs the filesystem before naming them turns it off. */
    private readonly durable = true,
    /** Manifest keys of earlier key epochs (daemon/keys): manifests sealed under them stay readable. */
    olderManifestKeys: readonly Uint8Array[] = [],
  ) {
    if (manifestKey.length !== KEY_BYTES) throw new DvfsError('E_USAGE', `manifest key must be ${KEY_BYTES} bytes`);
    this.dir = join(repoRoot, META_DIR, MANIFESTS_DIR);
    this.tmpDir = join(this.dir, TMP_DIR);
    [this.idKey, this.sealKey] = subkeys(manifestKey);
    this.older = olderManifestKeys.map(subkeys);
  }

  path(id: ObjectId): string {
    return shardPath(this.dir, id);
  }

  async has(id: ObjectId): Promise<boolean> {
    try {
      return (await stat(this.path(id))).isFile();
    } catch (e) {
      if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return false;
      throw e;
    }
  }

  /** The id a tree would get, without storing it. */
  treeId(tree: Tree): ObjectId {
    return this.idOf(encodeTree(this.checked(() => checkedTree(tree))));
  }

  /** The id a snapshot would get, without storing it. */
  snapshotId(s: Snapshot): ObjectId {
    return this.idOf(encodeSnapshot(this.checked(() => checkSnapshot(s))));
  }

  /** Stores a tree (entries sorted bytewise and unique, see makeTree); returns its id. */
  async putTree(tree: Tree): Promise<ObjectId> {
    return this.put('tree', encodeTree(this.checked(() => checkedTree(tree))));
  }

  async putSnapshot(s: Snapshot): Promise<ObjectId> {
    return this.put('snapshot', encodeSnapshot(this.checked(() => checkSnapshot(s))));
  }

  async getTree(id: ObjectId): Promise<Tree> {
    const m = await this.read(id, ['tree']);
    if (m.kind !== 'tree') throw this.corrupt(id, 'not a tree');
    return m.tree;
  }

  async getSnapshot(id: ObjectId): Promise<Snapshot> {
    const m = await this.read(id, ['snapshot']);
    if (m.kind !== 'snapshot') throw this.corrupt(id, 'not a snapshot');
    return m.snapshot;
  }

  /** A manifest of either kind. */
  get(id: ObjectId): Promise<Manifest> {
    return this.read(id, ['snapshot', 'tree']);
  }

  ids(): AsyncIterable<ObjectId> {
    return listShardIds(this.dir);
  }

  /** Size of a stored manifest file in bytes (E_NOTFOUND when missing). */
  async size(id: ObjectId): Promise<number> {
    const path = this.path(id);
    try {
      return (await stat(path)).size;
    } catch (e) {
      if (isNodeError(e) && e.code === 'ENOENT') throw this.missing(id);
      throw e;
    }
  }

  remove(id: ObjectId): Promise<boolean> {
    return removeIfPresent(this.path(id));
  }

  tempFiles(): Promise<string[]> {
    return listTemp(this.tmpDir);
  }

  /** Removes leftovers of interrupted writes; returns how many. Run it under the repository lock. */
  cleanTemp(): Promise<number> {
    return cleanTempDir(this.tmpDir);
  }

  /** Wipes the subkeys; the store must not be used afterwards. */
  dispose(): void {
    for (const k of [this.idKey, this.sealKey, ...this.older.flat()]) sodium.sodium_memzero(k);
  }

  private idOf(plaintext: string): ObjectId {
    return hashBuffer(this.idKey, Buffer.from(plaintext, 'utf8'));
  }

  /** Runs a checker on caller-supplied data: a malformed manifest is a usage error there, not corruption. */
  private checked<T>(check: () => T): T {
    try {
      return check();
    } catch (e) {
      if (e instanceof SchemaError) throw new DvfsError('E_USAGE', `invalid manifest: ${e.message}`, { cause: e });
      throw e;
    }
  }

  private async put(kind: ManifestKind, text: string): Promise<ObjectId> {
    const plain = Buffer.from(text, 'utf8');
    if (plain.length > MAX_MANIFEST_BYTES) throw new DvfsError('E_USAGE', `${kind} manifest of ${plain.length} bytes is too large`);
    const id = hashBuffer(this.idKey, plain);
    if (await this.has(id)) return id;
    const sealed = Buffer.allocUnsafe(NONCE_BYTES + plain.length + TAG_BYTES);
    const nonce = sealed.subarray(0, NONCE_BYTES);
    sodium.randombytes_buf(nonce);
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(sealed.subarray(NONCE_BYTES), plain, manifestAd(kind), null, nonce, this.sealKey);
    await mkdir(this.tmpDir, { recursive: true, mode: 0o700 });
    await mkdir(shardDir(this.dir, id), { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.path(id), sealed, { tmpDir: this.tmpDir, mode: 0o444, sync: this.durable });
    return id;
  }

  private missing(id: ObjectId): DvfsError {
    return new DvfsError('E_NOTFOUND', `manifest ${id} is missing from repository ${this.repoRoot}`, {
      path: this.path(id),
      hint: 'the repository is incomplete; run dvfs verify',
    });
  }

  private corrupt(id: ObjectId, why: string, cause?: unknown): ManifestIntegrityError {
    return new ManifestIntegrityError(id, `manifest ${id} of repository ${this.repoRoot}: ${why}`, {
      path: this.path(id),
      hint: 'the repository is damaged or was tampered with; run dvfs verify',
      ...(cause === undefined ? {} : { cause }),
    });
  }

  /** Reads, authenticates (trying each kind in turn), re-hashes and decodes one manifest. */
  private async read(id: ObjectId, kinds: readonly ManifestKind[]): Promise<Manifest> {
    const path = this.path(id);
    let sealed: Buffer;
    try {
      const st = await stat(path);
      if (!st.isFile()) throw this.corrupt(id, 'not a regular file');
      if (st.size > NONCE_BYTES + MAX_MANIFEST_BYTES + TAG_BYTES) throw this.corrupt(id, `${st.size} bytes is larger than any manifest`);
      sealed = await readFile(path);
    } catch (e) {
      if (isNodeError(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) throw this.missing(id);
      throw e;
    }
    if (sealed.length < NONCE_BYTES + TAG_BYTES + 2) throw this.corrupt(id, `${sealed.length} bytes is shorter than any manifest`);
    const nonce = sealed.subarray(0, NONCE_BYTES);
    const body = sealed.subarray(NONCE_BYTES);
    const plain = Buffer.alloc(body.length - TAG_BYTES);
    let kind: ManifestKind | null = null;
    let idKey: SecureBuffer = this.idKey;
    search: for (const [ik, sk] of [[this.idKey, this.sealKey] as const, ...this.older]) {
      for (const k of kinds) {
        try {
          sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(plain, null, body, manifestAd(k), nonce, sk);
          kind = k;
          idKey = ik;
          break search;
        } catch {
          // not this kind or key epoch (or damaged): try the next
        }
      }
    }
    if (kind === null) {
      const what = kinds.length === 1 ? `a ${kinds[0] ?? ''}` : 'a manifest';
      throw this.corrupt(id, `authentication failed (damaged, forged, not ${what}, or sealed under a key epoch these keys do not hold)`);
    }
    if (hashBuffer(idKey, plain) !== id) throw this.corrupt(id, 'contents do not match the id it is stored under');
    try {
      const decoded = decodeManifest(utf8.decode(plain), kind);
      return decoded.kind === 'tree' ? { kind: 'tree', id, tree: decoded.tree } : { kind: 'snapshot', id, snapshot: decoded.snapshot };
    } catch (e) {
      throw this.corrupt(id, `malformed ${kind}: ${e instanceof Error ? e.message : String(e)}`, e);
    }
  }
}
