/**
 * The contract between the FUSE frontend and an encrypted on-disk format. The frontend speaks plaintext
 * paths; a CryptoTree says where each one lives in the ciphertext directory, how directory entries decode,
 * and how file contents are read and written. EncFS volumes (daemon/encfs) and dvfs-native volumes
 * (daemon/native) implement it.
 */
import type { Stats } from 'node:fs';

/** Where a plaintext path lives: the ciphertext path and the format's per-path context (IVs). */
export interface Location<Ctx = unknown> {
  /** Volume-relative plaintext path, '' for the root. */
  plainPath: string;
  /** Absolute ciphertext path. */
  rawPath: string;
  /** Format-private: what children are encoded under, and what binds file contents to this path. */
  ctx: Ctx;
}

/**
 * An open file seen as plaintext. Mutations are serialised per object, and reads are ordered after the
 * mutations issued before them (a read never sees a half-written block). The frontend shares one per file.
 */
export interface FileContent {
  size(): Promise<number>;
  read(offset: number, length: number): Promise<Buffer>;
  write(offset: number, data: Buffer): Promise<number>;
  truncate(size: number): Promise<void>;
  /** fstat of the ciphertext file (works after the file was unlinked). */
  rawStats(): Promise<Stats>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Finds the frontend's open FileContent for the ciphertext file now at `rawPath` (the frontend keys open
 * files by inode, so this works after the file moved). A format whose contents are bound to their path
 * re-seals an open file through it, so the open handle's state follows the rename.
 */
export type OpenFileLookup = (rawPath: string) => Promise<FileContent | undefined>;

export interface CryptoTree<Ctx = unknown> {
  readonly format: 'encfs' | 'native';
  /** The ciphertext directory. */
  readonly root: string;
  /** The longest plaintext name (bytes) the format can store. */
  readonly maxNameBytes: number;
  /** False when hard links cannot work (EncFS external IV chaining): link answers EPERM. */
  readonly hardLinks: boolean;

  locate(plainPath: string): Promise<Location<Ctx>>;
  /** The location of a path if it can be had without I/O (for log lines); undefined otherwise. */
  locateCached?(plainPath: string): Location<Ctx> | undefined;
  /** Loads what decodeEntry needs for directory `dir` (native: its directory IV); call before decoding. */
  prepareDir?(dir: Location<Ctx>): Promise<void>;
  /** Wipes key material; the tree is unusable afterwards. */
  dispose?(): void;
  child(dir: Location<Ctx>, name: string): Promise<Location<Ctx>>;
  /**
   * Decodes one raw entry of directory `dir`: the plaintext name, or null for the format's own files that
   * must stay hidden (config, directory IVs, temporaries). Throws DvfsError E_NAME when it cannot decode.
   */
  decodeEntry(dir: Location<Ctx>, cipherName: string): string | null;
  /** Plaintext size of a regular ciphertext file (throws IntegrityError for impossible sizes). */
  plainSize(rawStats: Stats, location: Location<Ctx>): number;
  /** Opens (creating when `create`) the ciphertext file at `location`. */
  openContent(location: Location<Ctx>, options: { create?: boolean; mode?: number; readOnly?: boolean }): Promise<FileContent>;
  /** Creates the ciphertext form of a new directory. */
  mkdir(location: Location<Ctx>, mode: number): Promise<void>;
  /** Removes an empty directory (ENOTEMPTY when it has plaintext entries; the format's own files go too). */
  rmdir(location: Location<Ctx>): Promise<void>;
  encodeLinkTarget(target: string): string;
  decodeLinkTarget(stored: string): string;
  /**
   * Renames `from` to `to` (replacing `to` as rename(2) does) and re-encodes whatever depends on the path
   * (EncFS: every name below a renamed directory with chained IVs, and file headers with external IV
   * chaining), using `openFiles` to re-seal files that are open.
   */
  rename(from: Location<Ctx>, to: Location<Ctx>, openFiles: OpenFileLookup): Promise<void>;

  /**
   * The secret the snapshot store's keys come from (store/keys.ts): a fresh copy in secure memory that the
   * caller wipes. Equal for everyone holding the volume key, so every clone names contents alike.
   */
  snapshotSecret(): Buffer;
  /**
   * Formats whose file header is bound to the file's path (EncFS external IV chaining) say how to turn the
   * first `bytes` of a ciphertext file into the path-independent form kept in the object store, and back.
   * Absent: ciphertext files are position-independent and enter the store by hard link, as they are.
   */
  readonly pathBoundHeader?: PathBoundHeader<Ctx>;
}

export interface PathBoundHeader<Ctx = unknown> {
  bytes: number;
  /** Header of the file at `location` → the stored (path-independent) header. */
  toStore(location: Location<Ctx>, header: Buffer): Buffer;
  /** Stored header → the header of the same file placed at `location`. */
  fromStore(location: Location<Ctx>, header: Buffer): Buffer;
}
