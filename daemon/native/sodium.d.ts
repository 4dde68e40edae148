/**
 * The part of sodium-native (v4, libsodium bindings) that dvfs-native uses. The package ships no types.
 * Buffers are written in place; functions that fail their check throw an Error (e.g. the AEAD decrypt
 * throws "could not verify data"), except the *_open_easy / sodium_memcmp ones, which return false.
 */
declare module 'sodium-native' {
  namespace sodium {
    /** A Buffer from sodium_malloc: guard pages, mlocked, zeroed and freed when collected. */
    interface SecureBuffer extends Buffer {
      readonly secure: true;
    }
  }

  interface Sodium {
    readonly crypto_aead_xchacha20poly1305_ietf_KEYBYTES: number;
    readonly crypto_aead_xchacha20poly1305_ietf_NPUBBYTES: number;
    readonly crypto_aead_xchacha20poly1305_ietf_ABYTES: number;
    /** Writes ciphertext||tag into `c` (m.byteLength + ABYTES bytes); returns that length. `nsec` must be null. */
    crypto_aead_xchacha20poly1305_ietf_encrypt(
      c: Uint8Array,
      m: Uint8Array,
      ad: Uint8Array | null,
      nsec: null,
      npub: Uint8Array,
      k: Uint8Array,
    ): number;
    /** Verifies and decrypts ciphertext||tag `c` into `m` (c.byteLength - ABYTES bytes); throws when forged. */
    crypto_aead_xchacha20poly1305_ietf_decrypt(
      m: Uint8Array,
      nsec: null,
      c: Uint8Array,
      ad: Uint8Array | null,
      npub: Uint8Array,
      k: Uint8Array,
    ): number;

    /** SipHash-2-4 (8-byte output, 16-byte key): hash-table slots that chosen keys cannot make collide. */
    crypto_shorthash(out: Uint8Array, input: Uint8Array, key: Uint8Array): void;
    readonly crypto_shorthash_BYTES: number;
    readonly crypto_shorthash_KEYBYTES: number;
    readonly crypto_generichash_BYTES_MIN: number;
    readonly crypto_generichash_BYTES_MAX: number;
    readonly crypto_generichash_KEYBYTES: number;
    /** BLAKE2b of `input` into `out` (16..64 bytes), keyed when `key` (16..64 bytes) is given. */
    crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
    readonly crypto_generichash_BYTES: number;
    readonly crypto_generichash_KEYBYTES_MIN: number;
    readonly crypto_generichash_KEYBYTES_MAX: number;
    /** Size of the opaque streaming state; it must be a Node Buffer of exactly this many bytes. */
    readonly crypto_generichash_STATEBYTES: number;
    /** Starts a streaming BLAKE2b of `outlen` (16..64) bytes in `state`, keyed when `key` (16..64 bytes) is given. */
    crypto_generichash_init(state: Buffer, key: Uint8Array | null, outlen: number): void;
    /** Absorbs `input` into a state started by crypto_generichash_init. */
    crypto_generichash_update(state: Buffer, input: Uint8Array): void;
    /** Writes the digest into `out` (the length given to init); the state must not be used afterwards. */
    crypto_generichash_final(state: Buffer, out: Uint8Array): void;

    readonly crypto_kdf_KEYBYTES: number;
    readonly crypto_kdf_CONTEXTBYTES: number;
    readonly crypto_kdf_BYTES_MIN: number;
    readonly crypto_kdf_BYTES_MAX: number;
    /** Derives subkey number `subkeyId` (a safe integer) of `key` under the 8-byte context `ctx`. */
    crypto_kdf_derive_from_key(subkey: Uint8Array, subkeyId: number, ctx: Uint8Array, key: Uint8Array): void;

    readonly crypto_pwhash_ALG_ARGON2ID13: number;
    readonly crypto_pwhash_SALTBYTES: number;
    readonly crypto_pwhash_OPSLIMIT_MIN: number;
    readonly crypto_pwhash_OPSLIMIT_MAX: number;
    readonly crypto_pwhash_OPSLIMIT_INTERACTIVE: number;
    readonly crypto_pwhash_OPSLIMIT_MODERATE: number;
    readonly crypto_pwhash_OPSLIMIT_SENSITIVE: number;
    readonly crypto_pwhash_MEMLIMIT_MIN: number;
    readonly crypto_pwhash_MEMLIMIT_MAX: number;
    readonly crypto_pwhash_MEMLIMIT_INTERACTIVE: number;
    readonly crypto_pwhash_MEMLIMIT_MODERATE: number;
    readonly crypto_pwhash_MEMLIMIT_SENSITIVE: number;
    /** Argon2 on the libuv thread pool; all three buffers must be Node Buffers. */
    crypto_pwhash_async(out: Buffer, passwd: Buffer, salt: Buffer, opslimit: number, memlimit: number, alg: number): Promise<void>;

    readonly crypto_secretbox_KEYBYTES: number;
    readonly crypto_secretbox_NONCEBYTES: number;
    readonly crypto_secretbox_MACBYTES: number;
    /** Writes mac||ciphertext (m.byteLength + MACBYTES bytes) into `c`. */
    crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void;
    /** Verifies and decrypts `c` into `m` (c.byteLength - MACBYTES bytes); false when forged. */
    crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;

    readonly crypto_box_PUBLICKEYBYTES: number;
    readonly crypto_box_SECRETKEYBYTES: number;
    readonly crypto_box_SEEDBYTES: number;
    readonly crypto_box_SEALBYTES: number;
    /** X25519 key pair from a 32-byte seed. */
    crypto_box_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void;
    /** Anonymous sealed box of `m` to `pk` into `c` (m.byteLength + SEALBYTES bytes). */
    crypto_box_seal(c: Uint8Array, m: Uint8Array, pk: Uint8Array): void;
    /** Opens a sealed box into `m` (c.byteLength - SEALBYTES bytes); false when it does not open. */
    crypto_box_seal_open(m: Uint8Array, c: Uint8Array, pk: Uint8Array, sk: Uint8Array): boolean;

    readonly crypto_sign_PUBLICKEYBYTES: number;
    readonly crypto_sign_SECRETKEYBYTES: number;
    readonly crypto_sign_SEEDBYTES: number;
    readonly crypto_sign_BYTES: number;
    /** Ed25519 key pair from a 32-byte seed. */
    crypto_sign_seed_keypair(pk: Uint8Array, sk: Uint8Array, seed: Uint8Array): void;
    /** Detached Ed25519 signature of `m` into `sig` (BYTES bytes). */
    crypto_sign_detached(sig: Uint8Array, m: Uint8Array, sk: Uint8Array): void;
    /** True when `sig` is a valid signature of `m` under `pk`. */
    crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean;

    randombytes_buf(buf: Uint8Array): void;
    sodium_malloc(size: number): sodium.SecureBuffer;
    sodium_memzero(buf: Uint8Array): void;
    /** Constant-time equality of two buffers of the same length (throws when the lengths differ). */
    sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean;
  }

  const sodium: Sodium;
  export = sodium;
}
