/** dvfs-native: the authenticated on-disk format (sodium-native). See tree.ts, content.ts, names.ts, config.ts. */
export { NativeTree, createNativeVolume, openNativeVolume, isNativeVolume, type NativeCtx, type NativeLocation, type CreateNativeOptions } from './tree.js';
export { NativeFile, ChunkLayout, FILE_VERSION, HEADER_BYTES, FILE_ID_BYTES, CHUNK_OVERHEAD, type OpenContentOptions } from './content.js';
export { NameCipher, DIRIV_FILE, DIRIV_BYTES, MAX_NAME_BYTES, MAX_LINK_TARGET_BYTES, isHiddenEntry } from './names.js';
export {
  NATIVE_CONFIG_FILE,
  NATIVE_FORMAT,
  NATIVE_VERSION,
  DEFAULT_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  MAX_CHUNK_SIZE,
  parseNativeConfig,
  serializeNativeConfig,
  readNativeConfig,
  type NativeConfig,
  type NativeParams,
} from './config.js';
