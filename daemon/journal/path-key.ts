/**
 * A compact in-memory key for a path: a 53-bit hash (two FNV-1a passes over the UTF-16 code units), kept as
 * a JavaScript number. A map keyed by it costs tens of bytes per path instead of the path string itself
 * (journal paths are opaque, ~40 characters per component) — what lets a mount that writes a million files
 * keep its per-file bookkeeping small. Two paths may share a key (about one pair in 10^4 among a million
 * paths): users of it must only ever err on the safe side when that happens (see SessionJournal.lastWriteSeq).
 */
export function pathKey(path: string): number {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ path.length;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff);
}
