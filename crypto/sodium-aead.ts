/**
 * XChaCha20-Poly1305-IETF with detached tags, returning status codes instead of throwing.
 *
 * sodium-native's public wrappers throw an `Error` when a tag does not verify. On the data plane that would mean an
 * exception (with a captured stack) per forged or corrupted datagram, which an attacker can send at line rate. The
 * addon underneath returns libsodium's status, so we call it directly. It is not a documented entry point, so at
 * load we check it against the public wrapper on a known input and fall back to the wrapper (with try/catch) if it
 * is missing or disagrees.
 *
 * The raw functions abort the process on a size mismatch (C `assert`), so callers must pass exactly: `c` and `m` of
 * equal length, `mac` of `AEAD_TAG_BYTES`, `npub` of `AEAD_NONCE_BYTES`, `k` of `AEAD_KEY_BYTES`.
 */
import { createRequire } from 'node:module';
import sodium from 'sodium-native';

export const AEAD_TAG_BYTES: number = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES;
export const AEAD_NONCE_BYTES: number = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
export const AEAD_KEY_BYTES: number = sodium.crypto_aead_xchacha20poly1305_ietf_KEYBYTES;

/** Encrypt `m` into `c` (may be the same view) and write the tag into `mac`. Returns 0 on success, < 0 on failure. */
export type AeadEncrypt = (c: Buffer, mac: Buffer, m: Buffer, ad: Buffer | null, npub: Buffer, k: Buffer) => number;
/** Verify `mac`, then decrypt `c` into `m` (may be the same view). Returns 0 if authentic, < 0 otherwise. */
export type AeadDecrypt = (m: Buffer, c: Buffer, mac: Buffer, ad: Buffer | null, npub: Buffer, k: Buffer) => number;

export interface DetachedAead {
  encrypt: AeadEncrypt;
  decrypt: AeadDecrypt;
  /** True when the addon is called directly (no throw per forged datagram). */
  readonly isDirect: boolean;
}

interface RawBinding {
  crypto_aead_xchacha20poly1305_ietf_encrypt_detached?: (...a: unknown[]) => number;
  crypto_aead_xchacha20poly1305_ietf_decrypt_detached?: (...a: unknown[]) => number;
}

const viaWrapper: DetachedAead = {
  isDirect: false,
  encrypt(c, mac, m, ad, npub, k) {
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt_detached(c, mac, m, ad, null, npub, k);
    return 0;
  },
  decrypt(m, c, mac, ad, npub, k) {
    try {
      sodium.crypto_aead_xchacha20poly1305_ietf_decrypt_detached(m, null, c, mac, ad, npub, k);
      return 0;
    } catch {
      return -1;
    }
  },
};

function direct(): DetachedAead | null {
  let raw: RawBinding;
  try {
    raw = createRequire(import.meta.url)('sodium-native/binding.js') as RawBinding;
  } catch {
    return null;
  }
  const enc = raw.crypto_aead_xchacha20poly1305_ietf_encrypt_detached;
  const dec = raw.crypto_aead_xchacha20poly1305_ietf_decrypt_detached;
  if (typeof enc !== 'function' || typeof dec !== 'function') return null;
  const aead: DetachedAead = {
    isDirect: true,
    // libsodium returns the tag length written (>= 0) from the binding's encrypt; normalise to 0.
    encrypt: (c, mac, m, ad, npub, k) => (enc(c, mac, m, ad ?? undefined, npub, k) < 0 ? -1 : 0),
    decrypt: (m, c, mac, ad, npub, k) => (dec(m, c, mac, ad ?? undefined, npub, k) === 0 ? 0 : -1),
  };
  // Known-answer check against the public wrapper: same ciphertext and tag, and a flipped bit is refused.
  const k = Buffer.alloc(AEAD_KEY_BYTES, 7);
  const n = Buffer.alloc(AEAD_NONCE_BYTES, 9);
  const ad = Buffer.from('weft');
  const a = Buffer.from('self-test message');
  const b = Buffer.from(a);
  const tagA = Buffer.alloc(AEAD_TAG_BYTES);
  const tagB = Buffer.alloc(AEAD_TAG_BYTES);
  try {
    if (aead.encrypt(a, tagA, a, ad, n, k) !== 0) return null;
    viaWrapper.encrypt(b, tagB, b, ad, n, k);
    if (!a.equals(b) || !tagA.equals(tagB)) return null;
    tagB[0] ^= 1;
    if (aead.decrypt(b, b, tagB, ad, n, k) === 0) return null;
    if (aead.decrypt(a, a, tagA, ad, n, k) !== 0 || a.toString() !== 'self-test message') return null;
  } catch {
    return null;
  }
  return aead;
}

/** The AEAD to use: the addon called directly when it passes the self-test, else the public wrapper. */
export const detachedAead: DetachedAead = direct() ?? viaWrapper;

/** The public-wrapper implementation, for tests that compare both. */
export const wrapperAead: DetachedAead = viaWrapper;
