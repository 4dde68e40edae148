/**
 * The native (C++/OpenSSL, Node-API) implementation of the batch block codec, and the factory that picks
 * between it and the TypeScript reference. The addon lives in native/ and is built by `npm install` /
 * `npm run build` (native/build.mjs); when it is missing or cannot handle a volume's parameters, dvfs uses
 * TypeScriptBlockCodec, which produces the same bytes.
 *
 * Environment: DVFS_NO_NATIVE=1 never loads the addon (and does not warn); DVFS_CODEC=typescript|native
 * overrides a preference of 'auto'.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DvfsError } from '../errors.js';
import { TypeScriptBlockCodec, type BlockCodec, type BlockLayout, type DecodeResult } from './block-codec.js';
import type { EncfsCipher } from './cipher.js';

/** The contract version the addon reports as `abiVersion`; a mismatch means a stale build. */
export const NATIVE_ABI_VERSION = 1;

/** One keyed codec object of the addon (same methods and semantics as BlockCodec). */
export interface NativeCodecHandle {
  encode(plain: Uint8Array, firstBlock: number, fileIV: bigint, rand: Uint8Array | null): Buffer;
  decode(raw: Uint8Array, firstBlock: number, fileIV: bigint): DecodeResult;
  encodeAsync(plain: Uint8Array, firstBlock: number, fileIV: bigint, rand: Uint8Array | null): Promise<Buffer>;
  decodeAsync(raw: Uint8Array, firstBlock: number, fileIV: bigint): Promise<DecodeResult>;
}

export interface NativeCodecConstructor {
  /**
   * Throws when the parameters are not supported (family other than 'aes', key not 16/24/32 bytes, IV not
   * 16 bytes, block size not a multiple of 16, header filling the block). `major` < 3 selects the old
   * 32-bit IV scheme. Async batches with at least `splitThreshold` bytes of work (the input length, halved
   * when decoding without MACs; default 256 KiB, 0 = never) are split across two thread-pool work items.
   */
  new (
    family: 'aes',
    key: Uint8Array,
    iv: Uint8Array,
    major: number,
    blockSize: number,
    macBytes: number,
    randBytes: number,
    allowHoles: boolean,
    splitThreshold?: number,
  ): NativeCodecHandle;
}

/** The exports of native/build/Release/dvfs_native.node. */
export interface NativeModule {
  readonly abiVersion: number;
  /** OpenSSL version string of the OpenSSL the addon runs on (Node's own). */
  readonly openssl: string;
  readonly Codec: NativeCodecConstructor;
  /** Filesystem calls Node lacks (used by the FUSE frontend); absent in older builds. */
  readonly fs?: NativeFsOps;
}

/** Throw Errors with `code` set to the errno name. */
export interface NativeFsOps {
  lgetxattr(path: string, name: string): Buffer | null;
  lsetxattr(path: string, name: string, value: Buffer, flags: number): void;
  llistxattr(path: string): string[];
  lremovexattr(path: string, name: string): void;
  mkfifo(path: string, mode: number): void;
}

export type NativeWarningSink = (message: string, reason: string) => void;

const defaultSink: NativeWarningSink = (message) => {
  process.stderr.write(`${message}\n`);
};

let warningSink: NativeWarningSink = defaultSink;
let warned = false;

/** Routes the one-time "native codec unavailable" warning (default: a line on stderr); null restores it. */
export function setNativeCodecWarningSink(sink: NativeWarningSink | null): void {
  warningSink = sink ?? defaultSink;
}

interface LoadState {
  module: NativeModule | null;
  reason: string | null;
  path: string | null;
}

let state: LoadState | undefined;

const ADDON = 'native/build/Release/dvfs_native.node';

/** Where the addon may be: from dist/daemon/encfs/ (compiled) or daemon/encfs/ (run from source). */
function addonCandidates(): string[] {
  return [new URL(`../../../${ADDON}`, import.meta.url), new URL(`../../${ADDON}`, import.meta.url)].map((u) =>
    fileURLToPath(u),
  );
}

function hasMethods(proto: unknown, names: readonly string[]): boolean {
  if (typeof proto !== 'object' || proto === null) return false;
  const p = proto as Record<string, unknown>;
  return names.every((n) => typeof p[n] === 'function');
}

function isNativeModule(x: unknown): x is NativeModule {
  if (typeof x !== 'object' || x === null) return false;
  const m = x as Record<string, unknown>;
  const ctor = m['Codec'];
  return (
    m['abiVersion'] === NATIVE_ABI_VERSION &&
    typeof m['openssl'] === 'string' &&
    typeof ctor === 'function' &&
    hasMethods((ctor as { prototype?: unknown }).prototype, ['encode', 'decode', 'encodeAsync', 'decodeAsync'])
  );
}

function firstLine(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.split('\n')[0] ?? text;
}

function load(): LoadState {
  const path = addonCandidates().find((p) => existsSync(p));
  if (path === undefined) {
    return { module: null, path: null, reason: `${ADDON} is not built; run npm run build` };
  }
  let exported: unknown;
  try {
    exported = createRequire(import.meta.url)(path);
  } catch (e) {
    return { module: null, path, reason: `cannot load ${path}: ${firstLine(e)}` };
  }
  if (!isNativeModule(exported)) {
    const abi = typeof exported === 'object' && exported !== null ? (exported as Record<string, unknown>)['abiVersion'] : undefined;
    return {
      module: null,
      path,
      reason: `${path} has abiVersion ${String(abi)}, expected ${NATIVE_ABI_VERSION}; run npm run build`,
    };
  }
  return { module: exported, path, reason: null };
}

const nativeDisabled = (): boolean => process.env['DVFS_NO_NATIVE'] === '1';

/**
 * The addon's exports, or null when it is disabled (DVFS_NO_NATIVE=1), not built or not loadable. The first
 * failure is reported once through the warning sink (never when disabled on purpose).
 */
export function loadNativeCodecModule(): NativeModule | null {
  if (nativeDisabled()) return null;
  state ??= load();
  if (state.module === null && !warned) {
    warned = true;
    const reason = state.reason ?? 'unknown reason';
    warningSink(`dvfs: warning: native codec unavailable (${reason}); using the TypeScript codec`, reason);
  }
  return state.module;
}

export interface NativeCodecStatus {
  available: boolean;
  /** Why it is not available (null when it is). */
  reason: string | null;
  /** The .node file found, if any. */
  path: string | null;
  openssl: string | null;
}

/** Whether the addon can be used, without warning. */
export function nativeCodecStatus(): NativeCodecStatus {
  if (nativeDisabled()) return { available: false, reason: 'disabled by DVFS_NO_NATIVE=1', path: null, openssl: null };
  state ??= load();
  return {
    available: state.module !== null,
    reason: state.reason,
    path: state.path,
    openssl: state.module?.openssl ?? null,
  };
}

/**
 * Async calls on inputs shorter than this run inline on the calling thread: a thread-pool round trip costs
 * about 30 us, more than coding 16 KiB takes.
 */
export const DEFAULT_INLINE_BELOW = 16 * 1024;

export interface NativeBlockCodecOptions {
  /** Async batches with this much work run as two thread-pool work items (0 = never split; see Codec). */
  splitThreshold?: number;
  /** Async calls on inputs shorter than this many bytes run inline (default DEFAULT_INLINE_BELOW; 0 = never). */
  inlineBelow?: number;
  /** The addon to use (default: loadNativeCodecModule()). */
  module?: NativeModule | null;
}

/** BlockCodec backed by the addon. Throws DvfsError E_UNSUPPORTED when the addon is missing or refuses. */
export class NativeBlockCodec implements BlockCodec {
  readonly name = 'native' as const;
  readonly layout: BlockLayout;
  private readonly handle: NativeCodecHandle;
  private readonly inlineBelow: number;

  constructor(cipher: EncfsCipher, layout: BlockLayout, options: NativeBlockCodecOptions = {}) {
    this.layout = { ...layout };
    this.inlineBelow = options.inlineBelow ?? DEFAULT_INLINE_BELOW;
    const mod = options.module === undefined ? loadNativeCodecModule() : options.module;
    if (mod === null) {
      throw new DvfsError('E_UNSUPPORTED', `native codec unavailable (${nativeCodecStatus().reason ?? 'not loaded'})`, {
        hint: 'run npm run build, or use --codec typescript',
      });
    }
    if (cipher.params.name !== 'ssl/aes') {
      throw new DvfsError('E_UNSUPPORTED', `the native codec does not implement ${cipher.params.name}`, {
        hint: 'use --codec typescript',
      });
    }
    try {
      this.handle = new mod.Codec(
        'aes',
        cipher.key,
        cipher.iv,
        cipher.params.major,
        layout.blockSize,
        layout.macBytes,
        layout.randBytes,
        layout.allowHoles,
        options.splitThreshold,
      );
    } catch (e) {
      throw new DvfsError('E_UNSUPPORTED', `the native codec cannot handle this volume: ${firstLine(e)}`, {
        hint: 'use --codec typescript',
        cause: e,
      });
    }
  }

  encode(plain: Buffer, firstBlock: number, fileIV: bigint, rand: Buffer | null): Buffer {
    return this.handle.encode(plain, firstBlock, fileIV, rand);
  }

  decode(raw: Buffer, firstBlock: number, fileIV: bigint): DecodeResult {
    return this.handle.decode(raw, firstBlock, fileIV);
  }

  /**
   * Runs on the libuv thread pool (small inputs: inline); `plain` and `rand` must not be modified until the
   * promise settles. Argument errors reject the promise.
   */
  encodeAsync(plain: Buffer, firstBlock: number, fileIV: bigint, rand: Buffer | null): Promise<Buffer> {
    try {
      if (plain.length < this.inlineBelow) return Promise.resolve(this.handle.encode(plain, firstBlock, fileIV, rand));
      return this.handle.encodeAsync(plain, firstBlock, fileIV, rand);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Runs on the libuv thread pool (small inputs: inline); `raw` must not be modified until it settles. */
  decodeAsync(raw: Buffer, firstBlock: number, fileIV: bigint): Promise<DecodeResult> {
    try {
      if (raw.length < this.inlineBelow) return Promise.resolve(this.handle.decode(raw, firstBlock, fileIV));
      return this.handle.decodeAsync(raw, firstBlock, fileIV);
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

export type CodecPreference = 'auto' | 'native' | 'typescript';

function effectivePreference(prefer: CodecPreference): CodecPreference {
  if (prefer !== 'auto') return prefer;
  const env = process.env['DVFS_CODEC'];
  if (env === undefined || env === '' || env === 'auto') return 'auto';
  if (env === 'native' || env === 'typescript') return env;
  throw new DvfsError('E_USAGE', `DVFS_CODEC='${env}' is not a codec`, { hint: 'use auto, native or typescript' });
}

/**
 * The block codec for a volume: 'typescript' → the reference; 'native' → the addon or an E_UNSUPPORTED error;
 * 'auto' (default; DVFS_CODEC may override it) → the addon when it is built and handles these parameters,
 * else the reference.
 */
export function makeBlockCodec(cipher: EncfsCipher, layout: BlockLayout, prefer: CodecPreference = 'auto'): BlockCodec {
  const choice = effectivePreference(prefer);
  if (choice === 'typescript') return new TypeScriptBlockCodec(cipher, layout);
  if (choice === 'native') return new NativeBlockCodec(cipher, layout);
  if (cipher.params.name !== 'ssl/aes') return new TypeScriptBlockCodec(cipher, layout);
  const mod = loadNativeCodecModule();
  if (mod === null) return new TypeScriptBlockCodec(cipher, layout);
  try {
    return new NativeBlockCodec(cipher, layout, { module: mod });
  } catch {
    return new TypeScriptBlockCodec(cipher, layout);
  }
}
