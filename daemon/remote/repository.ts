/**
 * A remote repository: blobs (objects and manifests) by (type, id) over a Backend, as push, pull and clone use
 * it. Small blobs are packed (pack.ts), large ones stored alone (blob.ts); where each one is lives in the
 * sealed index (pack-index.ts); config and refs are in config.ts; FORMAT.md has the bytes.
 *
 * Writing: put()/putStream()/putFile() queue blobs; full packs and large blobs upload in the background,
 * `connections` at a time (a put waits for a free slot, so memory stays bounded by about
 * (connections + 2) × packSize). flush() uploads the open packs, waits for every upload and only then writes
 * index files for what was uploaded. The caller moves a ref (writeRef) after flush(), so a remote never names
 * a snapshot whose blobs are not all stored and indexed: packs -> index -> ref, as in restic. A crash leaves at
 * worst unreferenced packs (garbage, not damage).
 *
 * A failed background upload is reported by the next put or by flush() (the backend given should be a
 * RetryingBackend, so only persistent failures get that far).
 *
 * Reading: get() / read() / getMany() verify every pack entry and blob chunk against its AEAD (see pack.ts on
 * what that does and does not prove) and raise RemoteIntegrityError on any mismatch.
 */
import { readFile, stat } from 'node:fs/promises';
import { DvfsError } from '../errors.js';
import type { RepoKeys } from '../store/keys.js';
import type { ObjectId } from '../store/object-id.js';
import { collectBody, isNotFound, type Backend, type StreamFactory } from './backend.js';
import { blobRawSize, PartBuffers, readBlob, uploadBlob, uploadFileBlob } from './blob.js';
import { newConfig, readConfig, readRef, writeConfig, writeRef, type ConfigParams, type RemoteConfig, type RemoteRef } from './config.js';
import { deriveRemoteKeys, wipeRemoteKeys, type RemoteKeys } from './keys.js';
import { epochBackend } from '../keys/remote-epochs.js';
import { RemoteLock, type LockOptions } from './lock.js';
import { BLOB_TYPES, dataKey, describe, RemoteIntegrityError, type BlobType } from './layout.js';
import { openEntry, PackWriter } from './pack.js';
import { DEFAULT_INDEX_ENTRIES, loadIndex, PackIndex, sealIndexFiles, type BlobLocation, type IndexRecord, type Location, type PackLocation } from './pack-index.js';
import { TaskPool } from './pool.js';

export const DEFAULT_CONNECTIONS = 4;
/** Uploaded packs' buffers kept for reuse (each is packSize + largeThreshold bytes). */
const SPARE_PACK_BUFFERS = 2;
/** getMany() merges entries of one pack into one range request across gaps up to this size… */
export const DEFAULT_MAX_GAP = 256 * 1024;
/** …and up to this many bytes per request. */
export const DEFAULT_MAX_RANGE = 16 * 1024 * 1024;

export interface RemoteRepositoryOptions {
  /** Parallel uploads of packs and large blobs (default 4). */
  connections?: number;
  /** Records per index file (default 100 000). */
  indexEntriesPerFile?: number;
  /** Chunks per range request when reading large blobs. */
  windowChunks?: number;
}

export interface FlushResult {
  /** Packs and large blobs uploaded since the last flush. */
  packs: number;
  blobs: number;
  /** Bytes of those uploads. */
  bytes: number;
  /** Index files written by this flush. */
  indexFiles: string[];
}

export interface WantedBlob {
  type: BlobType;
  id: ObjectId;
}

function stagedKey(type: BlobType, id: ObjectId): string {
  return `${type}:${id}`;
}

export class RemoteRepository {
  private readonly packers = new Map<BlobType, PackWriter>();
  private readonly staged = new Set<string>();
  private newRecords: IndexRecord[] = [];
  private readonly pool: TaskPool;
  /** Backing buffers of uploaded packs, reused by the next packs. */
  private readonly spareBuffers: Buffer[] = [];
  /** Part buffers of large file blobs, reused from one part (and blob) to the next. */
  private readonly partBuffers = new PartBuffers();
  private stats = { packs: 0, blobs: 0, bytes: 0 };
  private closed = false;

  private constructor(
    readonly backend: Backend,
    private readonly keys: RemoteKeys,
    readonly config: RemoteConfig,
    readonly index: PackIndex,
    /** Index files on the remote (as loaded, plus those written since). */
    readonly indexFiles: string[],
    private readonly options: RemoteRepositoryOptions,
  ) {
    this.pool = new TaskPool(options.connections ?? DEFAULT_CONNECTIONS);
  }

  /** Initializes an empty remote (writes its config). E_EXISTS when it already has one. */
  static async init(backend: Backend, repoKeys: RepoKeys, params: ConfigParams = {}, options: RemoteRepositoryOptions = {}): Promise<RemoteRepository> {
    return RemoteRepository.withConfig(backend, repoKeys, (b, keys, existing) => {
      if (existing !== null) throw new DvfsError('E_EXISTS', `remote ${b.location} is already initialized`, { hint: 'open it instead' });
      return RemoteRepository.create(b, keys, params, options);
    });
  }

  /** Opens an initialized remote: checks its config against the keys and loads its index. */
  static async open(backend: Backend, repoKeys: RepoKeys, options: RemoteRepositoryOptions = {}): Promise<RemoteRepository> {
    return RemoteRepository.withConfig(backend, repoKeys, (b, keys, config) => {
      if (config === null) throw new DvfsError('E_NOTFOUND', `no dvfs remote at ${b.location} (it has no config)`, { hint: 'push to it to create one' });
      return RemoteRepository.load(b, keys, config, options);
    });
  }

  /** Opens the remote, initializing it first when it has no config (push to a new remote). One config read. */
  static async openOrInit(backend: Backend, repoKeys: RepoKeys, params: ConfigParams = {}, options: RemoteRepositoryOptions = {}): Promise<RemoteRepository> {
    return RemoteRepository.withConfig(backend, repoKeys, (b, keys, config) =>
      config === null ? RemoteRepository.create(b, keys, params, options) : RemoteRepository.load(b, keys, config, options),
    );
  }

  /** Reads the config of the keys' epoch area and hands it on; the derived keys are wiped if `then` fails. */
  private static async withConfig(
    backend: Backend,
    repoKeys: RepoKeys,
    then: (backend: Backend, keys: RemoteKeys, config: RemoteConfig | null) => Promise<RemoteRepository>,
  ): Promise<RemoteRepository> {
    const b = epochBackend(backend, repoKeys.epoch);
    const keys = deriveRemoteKeys(repoKeys);
    try {
      return await then(b, keys, await readConfig(b, keys));
    } catch (e) {
      wipeRemoteKeys(keys);
      throw e;
    }
  }

  private static async create(backend: Backend, keys: RemoteKeys, params: ConfigParams, options: RemoteRepositoryOptions): Promise<RemoteRepository> {
    const config = newConfig(params);
    await writeConfig(backend, keys, config);
    return new RemoteRepository(backend, keys, config, new PackIndex(), [], options);
  }

  private static async load(backend: Backend, keys: RemoteKeys, config: RemoteConfig, options: RemoteRepositoryOptions): Promise<RemoteRepository> {
    const loaded = await loadIndex(backend, keys, options.connections ?? DEFAULT_CONNECTIONS);
    return new RemoteRepository(backend, keys, config, loaded.index, loaded.files, options);
  }

  get location(): string {
    return this.backend.location;
  }

  /** Stored (indexed) or queued in this session. */
  has(type: BlobType, id: ObjectId): boolean {
    return this.index.has(type, id) || this.staged.has(stagedKey(type, id));
  }

  /** Where an indexed blob is (undefined when it is not indexed, e.g. still queued). */
  locate(type: BlobType, id: ObjectId): Location | undefined {
    return this.index.get(type, id);
  }

  /** Queues a blob held in memory; false when the remote already has it (or it is queued). */
  async put(type: BlobType, id: ObjectId, data: Uint8Array): Promise<boolean> {
    this.usable();
    if (this.has(type, id)) return false;
    if (data.length > this.config.largeThreshold) {
      return this.putStream(type, id, data.length, async function* () {
        yield data;
      });
    }
    this.pool.check();
    let packer = this.packers.get(type);
    if (packer === undefined) {
      packer = new PackWriter(this.keys, undefined, this.config.packSize + this.config.largeThreshold, this.spareBuffers.pop());
      this.packers.set(type, packer);
    }
    packer.add(type, id, data);
    this.staged.add(stagedKey(type, id));
    if (packer.size >= this.config.packSize) await this.finishPack(type);
    return true;
  }

  /** Queues a blob of `size` bytes read from `source` (reopened if an upload is retried). */
  async putStream(type: BlobType, id: ObjectId, size: number, source: StreamFactory): Promise<boolean> {
    this.usable();
    if (this.has(type, id)) return false;
    if (size <= this.config.largeThreshold) return this.put(type, id, await collectBody(source, size, describe(type, id)));
    return this.uploadLarge(type, id, () => uploadBlob(this.backend, this.keys, type, id, size, source));
  }

  /** Queues a large blob's upload (a slot of the pool); records it once stored. */
  private async uploadLarge(type: BlobType, id: ObjectId, upload: () => Promise<BlobLocation>): Promise<boolean> {
    const key = stagedKey(type, id);
    this.staged.add(key);
    try {
      await this.pool.run(async () => {
        const loc = await upload();
        this.stats.blobs++;
        this.stats.bytes += blobRawSize(loc.size);
        this.record({ type, id, loc });
      });
    } catch (e) {
      this.staged.delete(key);
      throw e;
    }
    return true;
  }

  /** Queues the file at `path` (a stored object or manifest) as blob (type, id). */
  async putFile(type: BlobType, id: ObjectId, path: string): Promise<boolean> {
    this.usable();
    if (this.has(type, id)) return false;
    const size = (await stat(path)).size;
    if (size <= this.config.largeThreshold) {
      const data = await readFile(path);
      if (data.length !== size) throw new DvfsError('E_IO', `${describe(type, id)} changed while being pushed`, { path });
      return this.put(type, id, data);
    }
    return this.uploadLarge(type, id, () => uploadFileBlob(this.backend, this.keys, type, id, size, path, this.partBuffers));
  }

  /**
   * Uploads the open packs, waits for every upload, then writes index files for everything uploaded since the
   * last flush. After it returns, every blob put so far is stored and indexed.
   */
  async flush(): Promise<FlushResult> {
    this.usable();
    for (const type of BLOB_TYPES) if ((this.packers.get(type)?.count ?? 0) > 0) await this.finishPack(type);
    await this.pool.drain();
    const indexFiles = await this.checkpoint();
    const result = { ...this.stats, indexFiles };
    this.stats = { packs: 0, blobs: 0, bytes: 0 };
    return result;
  }

  /**
   * Writes index files for the blobs whose uploads have finished so far, without waiting for those still
   * queued or in flight: an interrupted push then resumes after them instead of sending them again.
   * Returns the names of the index files written.
   */
  async checkpoint(): Promise<string[]> {
    this.usable();
    if (this.newRecords.length === 0) return [];
    const records = this.newRecords;
    this.newRecords = [];
    const written: string[] = [];
    try {
      for (const f of sealIndexFiles(this.keys, records, this.options.indexEntriesPerFile ?? DEFAULT_INDEX_ENTRIES)) {
        await this.backend.put(f.key, f.data, f.data.length);
        written.push(f.name);
        this.indexFiles.push(f.name);
      }
    } catch (e) {
      // Unwritten records go back; a retry rewrites them all (index entries are idempotent).
      this.newRecords = records.concat(this.newRecords);
      throw e;
    }
    return written;
  }

  /** Blobs uploaded whose index records are not written yet (checkpoint() writes them). */
  get unindexed(): number {
    return this.newRecords.length;
  }

  /** Bytes of packs and large blobs uploaded since the last flush(). */
  get bytesUploaded(): number {
    return this.stats.bytes;
  }

  /** A whole blob (large ones are assembled in memory: prefer read() for those). */
  async get(type: BlobType, id: ObjectId): Promise<Buffer> {
    const loc = this.need(type, id);
    if (loc.kind === 'pack') return this.getPacked(type, id, loc);
    const parts: Buffer[] = [];
    for await (const p of readBlob(this.backend, this.keys, type, id, loc, this.windowOptions())) parts.push(p);
    return Buffer.concat(parts);
  }

  /** A blob as a stream of verified plaintext chunks. */
  async *read(type: BlobType, id: ObjectId): AsyncGenerator<Buffer> {
    const loc = this.need(type, id);
    if (loc.kind === 'pack') {
      yield await this.getPacked(type, id, loc);
      return;
    }
    yield* readBlob(this.backend, this.keys, type, id, loc, this.windowOptions());
  }

  /** true when the blob is stored alone (read it with read(), not getMany()). */
  isLarge(type: BlobType, id: ObjectId): boolean {
    return this.need(type, id).kind === 'blob';
  }

  /**
   * Many packed blobs with few requests: groups them by pack, merges neighbours into range requests (gaps up to
   * maxGap, requests up to maxRange bytes) and yields each blob as it is verified, in pack order. Large blobs
   * are refused (E_USAGE: use read()); unknown ones are E_NOTFOUND.
   */
  async *getMany(wanted: Iterable<WantedBlob>, options: { maxGap?: number; maxRange?: number } = {}): AsyncGenerator<WantedBlob & { data: Buffer }> {
    const maxGap = options.maxGap ?? DEFAULT_MAX_GAP;
    const maxRange = options.maxRange ?? DEFAULT_MAX_RANGE;
    const byPack = new Map<string, Array<WantedBlob & { loc: PackLocation }>>();
    const seen = new Set<string>();
    for (const w of wanted) {
      const k = stagedKey(w.type, w.id);
      if (seen.has(k)) continue;
      seen.add(k);
      const loc = this.need(w.type, w.id);
      if (loc.kind !== 'pack') throw new DvfsError('E_USAGE', `${describe(w.type, w.id)} is a large blob: read it with read()`);
      let list = byPack.get(loc.pack);
      if (list === undefined) byPack.set(loc.pack, (list = []));
      list.push({ type: w.type, id: w.id, loc });
    }
    for (const pack of [...byPack.keys()].sort()) {
      const list = (byPack.get(pack) ?? []).sort((a, b) => a.loc.offset - b.loc.offset);
      let i = 0;
      while (i < list.length) {
        const first = list[i] as (typeof list)[number];
        let end = first.loc.offset + first.loc.length;
        let j = i + 1;
        while (j < list.length) {
          const nx = list[j] as (typeof list)[number];
          const nEnd = Math.max(end, nx.loc.offset + nx.loc.length);
          if (nx.loc.offset - end > maxGap || nEnd - first.loc.offset > maxRange) break;
          end = nEnd;
          j++;
        }
        const start = first.loc.offset;
        const key = dataKey(pack);
        const buf = await this.range(key, start, end - start);
        for (let k = i; k < j; k++) {
          const w = list[k] as (typeof list)[number];
          const sealed = buf.subarray(w.loc.offset - start, w.loc.offset - start + w.loc.length);
          const data = openEntry(this.keys, this.location, pack, { type: w.type, id: w.id, offset: w.loc.offset, length: w.loc.length }, sealed);
          yield { type: w.type, id: w.id, data };
        }
        i = j;
      }
    }
  }

  /** A ref of the remote (default HEAD), or null. */
  readRef(name = 'HEAD'): Promise<RemoteRef | null> {
    return readRef(this.backend, this.keys, name);
  }

  /** Points a ref at a snapshot. Call flush() first: the snapshot's blobs must be stored and indexed. */
  async writeRef(snapshot: ObjectId, name = 'HEAD'): Promise<void> {
    this.usable();
    if (this.staged.size > 0 || this.newRecords.length > 0) {
      throw new DvfsError('E_USAGE', 'writeRef before flush(): blobs are still queued or unindexed');
    }
    await writeRef(this.backend, this.keys, name, snapshot);
  }

  /** Takes a lock on the remote (lock.ts): shared for pushes, exclusive for whatever deletes. Release it before close(). */
  lock(options: LockOptions = {}): Promise<RemoteLock> {
    this.usable();
    return RemoteLock.acquire(this.backend, this.keys, options);
  }

  /** Wipes the keys (after a failure, without flushing). Does not close the backend. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    wipeRemoteKeys(this.keys);
  }

  private usable(): void {
    if (this.closed) throw new Error('RemoteRepository used after close()');
  }

  private windowOptions(): { windowChunks?: number } {
    return this.options.windowChunks === undefined ? {} : { windowChunks: this.options.windowChunks };
  }

  private need(type: BlobType, id: ObjectId): Location {
    this.usable();
    const loc = this.index.get(type, id);
    if (loc === undefined) throw new DvfsError('E_NOTFOUND', `${describe(type, id)} is not on remote ${this.location}`);
    return loc;
  }

  private async range(key: string, offset: number, length: number): Promise<Buffer> {
    try {
      const buf = await this.backend.getRange(key, offset, length);
      if (buf.length !== length) throw new RemoteIntegrityError(this.location, key, `pack truncated: wanted bytes ${offset}..${offset + length}, got ${buf.length}`);
      return buf;
    } catch (e) {
      if (isNotFound(e)) throw new RemoteIntegrityError(this.location, key, 'pack is missing (the index names it)');
      throw e;
    }
  }

  private async getPacked(type: BlobType, id: ObjectId, loc: PackLocation): Promise<Buffer> {
    const buf = await this.range(dataKey(loc.pack), loc.offset, loc.length);
    return openEntry(this.keys, this.location, loc.pack, { type, id, offset: loc.offset, length: loc.length }, buf);
  }

  private record(r: IndexRecord): void {
    this.index.add(r);
    this.newRecords.push(r);
    this.staged.delete(stagedKey(r.type, r.id));
  }

  private async finishPack(type: BlobType): Promise<void> {
    const packer = this.packers.get(type);
    if (packer === undefined || packer.count === 0) return;
    this.packers.delete(type);
    const pack = packer.finish();
    await this.pool.run(async () => {
      try {
        await this.backend.put(pack.key, pack.data, pack.data.length);
      } finally {
        // Uploaded or failed, the backend is done with it: the next pack is written into it (no fresh pages).
        if (this.spareBuffers.length < SPARE_PACK_BUFFERS) this.spareBuffers.push(pack.backing);
      }
      this.stats.packs++;
      this.stats.bytes += pack.data.length;
      for (const e of pack.entries) this.record({ type: e.type, id: e.id, loc: { kind: 'pack', pack: pack.name, offset: e.offset, length: e.length } });
    });
  }
}
