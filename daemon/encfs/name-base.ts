/**
 * The filename alphabets of EncFS: base-64 over `,-0-9A-Za-z` and base-32 over `A-Z2-7`, both packing bits
 * least-significant first (unlike RFC 4648), without padding.
 */
const B64 = ',-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function table(alphabet: string, caseInsensitive: boolean): Int16Array {
  const t = new Int16Array(128).fill(-1);
  for (let i = 0; i < alphabet.length; i++) {
    const c = alphabet.charCodeAt(i);
    t[c] = i;
    if (caseInsensitive) t[alphabet.toLowerCase().charCodeAt(i)] = i;
  }
  return t;
}

const B64_REV = table(B64, false);
const B32_REV = table(B32, true);

function encode(bytes: Uint8Array, bits: number, alphabet: string): string {
  const mask = (1 << bits) - 1;
  let work = 0;
  let held = 0;
  let out = '';
  for (const byte of bytes) {
    work |= byte << held;
    held += 8;
    while (held >= bits) {
      out += alphabet[work & mask];
      work >>>= bits;
      held -= bits;
    }
  }
  if (held > 0) out += alphabet[work & mask];
  return out;
}

/** Returns null when a character is outside the alphabet. */
function decode(text: string, bits: number, rev: Int16Array): Buffer | null {
  const out = Buffer.allocUnsafe(Math.floor((text.length * bits) / 8));
  let work = 0;
  let held = 0;
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? (rev[c] as number) : -1;
    if (v < 0) return null;
    work |= v << held;
    held += bits;
    if (held >= 8) {
      out[n++] = work & 0xff;
      work >>>= 8;
      held -= 8;
    }
  }
  return out.subarray(0, n);
}

export const nameB64 = {
  encode: (bytes: Uint8Array): string => encode(bytes, 6, B64),
  decode: (text: string): Buffer | null => decode(text, 6, B64_REV),
};

export const nameB32 = {
  encode: (bytes: Uint8Array): string => encode(bytes, 5, B32),
  decode: (text: string): Buffer | null => decode(text, 5, B32_REV),
};
