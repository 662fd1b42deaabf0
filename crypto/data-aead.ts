/**
 * The data plane's AEADs, over ranges of a datagram buffer, in place. The seam between the data session (nonces,
 * keys, replay) and an implementation. Two ciphers, agreed per connection in the handshake
 * (crypto/password-security.ts):
 *
 *   - ChaCha20-Poly1305 as in RFC 8439 (32-byte key, 12-byte nonce, 16-byte tag): every router has it.
 *       `sodiumDataAead`: libsodium through sodium-native (`crypto_aead_chacha20poly1305_ietf_*`). The reference,
 *       and what runs when nothing faster is offered.
 *       the native addon's `aeadSeal`/`aeadOpen` (native/src/aead.c: OpenSSL's ChaCha20 and Poly1305 inside Node,
 *       with AVX-512 code; about 2.5 times the datagrams per second here). The daemon hands it in after
 *       `crossCheckDataAead` found it byte-for-byte equal to libsodium's.
 *   - AEGIS-256X2 (draft-irtf-cfrg-aegis-aead, AEGIS-256X of degree 2: 32-byte key, 32-byte nonce, 16-byte tag):
 *       the native addon's `aegis256x2Seal`/`aegis256x2Open` (native/src/aegis.c, AES instructions), offered only on
 *       CPUs that have them and after its known-answer tests passed (./aegis256x2.ts). Used when both ends offer it.
 *
 * Implementations of one cipher compute the same function, so which one a router uses is never visible on the wire.
 */
import { createRequire } from 'node:module';
import sodium from 'sodium-native';
import { BufferViews } from './buffer-views.js';

export const DATA_KEY_BYTES = 32;
/** ChaCha20-Poly1305's nonce; AEGIS-256X2's is `AEGIS256_NONCE_BYTES`. */
export const DATA_NONCE_BYTES = 12;
export const AEGIS256_NONCE_BYTES = 32;
export const DATA_TAG_BYTES = 16;

/** The data ciphers a connection can agree on. */
export type DataCipher = 'chacha20-poly1305' | 'aegis-256' | 'aegis-256x2';

/** How logs and `weft status` name each cipher. */
export const DATA_CIPHER_NAMES: Readonly<Record<DataCipher, string>> = {
  'chacha20-poly1305': 'ChaCha20-Poly1305',
  'aegis-256': 'AEGIS-256',
  'aegis-256x2': 'AEGIS-256X2',
};

export interface DataAead {
  /** Which implementation, for logs and `weft report`. */
  readonly name: string;
  /** Which cipher it computes. */
  readonly cipher: DataCipher;
  /** Bytes of the nonce `seal`/`open` take: 12 for ChaCha20-Poly1305, 32 for AEGIS-256(X2). */
  readonly nonceBytes: number;
  /**
   * Encrypt `buffer[bodyOffset, +bodyLength)` in place and write the tag right after it, authenticating
   * `buffer[adOffset, +adLength)`. Returns `bodyLength + 16`, or -1 when a range does not fit (nothing written).
   * `nonce` must be `nonceBytes` long and `key` 32.
   */
  seal(buffer: Buffer, adOffset: number, adLength: number, bodyOffset: number, bodyLength: number, nonce: Buffer, key: Buffer): number;
  /**
   * Verify the tag ending `buffer[bodyOffset, +sealedLength)` and decrypt the body in place. Returns the plaintext
   * length, or -1 when it is not authentic or a range does not fit (the body then holds no plaintext).
   */
  open(buffer: Buffer, adOffset: number, adLength: number, bodyOffset: number, sealedLength: number, nonce: Buffer, key: Buffer): number;
  /**
   * `seal` for `count` datagrams under one key in one call. Datagram i has its AD at `offsets[i]`
   * (`adLength` bytes) and its body of `bodyLengths[i]` bytes right after it; the first takes `nonce`, each next one
   * the nonce whose last 8 bytes (a big-endian counter) are one more. Returns `count`, or -1 when a range does not
   * fit (nothing written).
   */
  sealRun(
    buffer: Buffer,
    offsets: Uint32Array,
    bodyLengths: Uint32Array,
    count: number,
    adLength: number,
    nonce: Buffer,
    key: Buffer,
  ): number;
  /**
   * `open` for `count` datagrams under one key in one call, datagram i with the last 8 bytes of `nonce`
   * set to `seqs[i]` (big-endian). `results[i]`: plaintext length, or -1. Returns `count`, or -1 when a range does
   * not fit (nothing opened).
   */
  openRun(
    buffer: Buffer,
    offsets: Uint32Array,
    sealedLengths: Uint32Array,
    seqs: Float64Array,
    count: number,
    adLength: number,
    nonce: Buffer,
    key: Buffer,
    results: Int32Array,
  ): number;
}

type RawFn = (...args: unknown[]) => number;
interface RawBinding {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached?: RawFn;
  crypto_aead_chacha20poly1305_ietf_decrypt_detached?: RawFn;
}

/**
 * sodium-native's functions underneath its public wrappers: they return libsodium's status where the wrappers throw
 * an Error (with a stack) per forged datagram, which an attacker could make us build at line rate. Not a documented
 * entry point, so `sodiumDataAead` uses them only after they agree with the wrappers on a known input.
 */
function rawSodium(): { encrypt: RawFn; decrypt: RawFn } | null {
  try {
    const raw = createRequire(import.meta.url)('sodium-native/binding.js') as RawBinding;
    const encrypt = raw.crypto_aead_chacha20poly1305_ietf_encrypt_detached;
    const decrypt = raw.crypto_aead_chacha20poly1305_ietf_decrypt_detached;
    return typeof encrypt === 'function' && typeof decrypt === 'function' ? { encrypt, decrypt } : null;
  } catch {
    return null;
  }
}

/** The public wrappers of the IETF construction (sodium-native has them; @types/sodium-native does not list them). */
interface IetfWrappers {
  crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    c: Buffer,
    mac: Buffer,
    m: Buffer,
    ad: Buffer | null,
    nsec: null,
    npub: Buffer,
    k: Buffer,
  ): number;
  crypto_aead_chacha20poly1305_ietf_decrypt_detached(
    m: Buffer,
    nsec: null,
    c: Buffer,
    mac: Buffer,
    ad: Buffer | null,
    npub: Buffer,
    k: Buffer,
  ): void;
}
const ietf = sodium as unknown as IetfWrappers;

const wrapperEncrypt: RawFn = (c, mac, m, ad, npub, k) => {
  ietf.crypto_aead_chacha20poly1305_ietf_encrypt_detached(
    c as Buffer,
    mac as Buffer,
    m as Buffer,
    (ad as Buffer) ?? null,
    null,
    npub as Buffer,
    k as Buffer,
  );
  return 0;
};
const wrapperDecrypt: RawFn = (m, c, mac, ad, npub, k) => {
  try {
    ietf.crypto_aead_chacha20poly1305_ietf_decrypt_detached(
      m as Buffer,
      null,
      c as Buffer,
      mac as Buffer,
      (ad as Buffer) ?? null,
      npub as Buffer,
      k as Buffer,
    );
    return 0;
  } catch {
    return -1;
  }
};

let chosen: { encrypt: RawFn; decrypt: RawFn; isDirect: boolean } | undefined;

/** The raw functions when they pass `crossCheckDataAead` against the wrappers, else the wrappers. Decided once. */
function sodiumFunctions(): { encrypt: RawFn; decrypt: RawFn; isDirect: boolean } {
  if (chosen) return chosen;
  const wrappers = { encrypt: wrapperEncrypt, decrypt: wrapperDecrypt, isDirect: false };
  chosen = wrappers;
  const raw = rawSodium();
  if (raw) {
    const { encrypt, decrypt } = raw;
    const direct = {
      // libsodium's encrypt returns the tag length written (>= 0), decrypt 0 when authentic: normalise both. Named
      // parameters, not rest arguments: this runs per datagram and must not build an array each time.
      encrypt: (c: unknown, mac: unknown, m: unknown, ad: unknown, npub: unknown, k: unknown) =>
        encrypt(c, mac, m, ad, npub, k) < 0 ? -1 : 0,
      decrypt: (m: unknown, c: unknown, mac: unknown, ad: unknown, npub: unknown, k: unknown) =>
        decrypt(m, c, mac, ad, npub, k) === 0 ? 0 : -1,
      isDirect: true,
    };
    const probe = crossCheckDataAead(
      sodiumWith(direct, new BufferViews(0), 'direct'),
      sodiumWith(wrappers, new BufferViews(0), 'wrappers'),
    );
    if (probe === undefined) chosen = direct;
  }
  return chosen;
}

/** A `DataAead`'s one-datagram operations: what `withRuns` builds the runs from. */
export type SingleDatagramAead = Omit<DataAead, 'sealRun' | 'openRun'>;

/**
 * `aead` with `sealRun`/`openRun` that call its `seal`/`open` once per datagram, for implementations (libsodium,
 * the test references) that have no run of their own. Allocates one nonce buffer here, nothing per call.
 */
export function withRuns(aead: SingleDatagramAead): DataAead {
  const runNonce = Buffer.alloc(aead.nonceBytes);
  const setCounter = (seq: number): void => {
    const at = runNonce.length - 8;
    runNonce.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), at);
    runNonce.writeUInt32BE(seq >>> 0, at + 4);
  };
  return {
    ...aead,
    sealRun(buffer, offsets, bodyLengths, count, adLength, nonce, key) {
      if (count > offsets.length || count > bodyLengths.length) return -1;
      for (let i = 0; i < count; i++) {
        if (!fits(buffer, offsets[i]! + adLength, bodyLengths[i]! + DATA_TAG_BYTES)) return -1;
      }
      nonce.copy(runNonce);
      const at = runNonce.length - 8;
      const first = runNonce.readUInt32BE(at) * 0x1_0000_0000 + runNonce.readUInt32BE(at + 4);
      for (let i = 0; i < count; i++) {
        setCounter(first + i);
        const o = offsets[i]!;
        if (aead.seal(buffer, o, adLength, o + adLength, bodyLengths[i]!, runNonce, key) < 0) return -1;
      }
      return count;
    },
    openRun(buffer, offsets, sealedLengths, seqs, count, adLength, nonce, key, results) {
      if (count > offsets.length || count > sealedLengths.length || count > seqs.length || count > results.length) return -1;
      nonce.copy(runNonce);
      for (let i = 0; i < count; i++) {
        setCounter(seqs[i]!);
        const o = offsets[i]!;
        results[i] = aead.open(buffer, o, adLength, o + adLength, sealedLengths[i]!, runNonce, key);
      }
      return count;
    },
  };
}

function sodiumWith(fns: { encrypt: RawFn; decrypt: RawFn }, views: BufferViews, name: string): DataAead {
  return withRuns({
    name,
    cipher: 'chacha20-poly1305',
    nonceBytes: DATA_NONCE_BYTES,
    seal(buffer, adOffset, adLength, bodyOffset, bodyLength, nonce, key) {
      const tagOffset = bodyOffset + bodyLength;
      if (!fits(buffer, adOffset, adLength) || !fits(buffer, bodyOffset, bodyLength + DATA_TAG_BYTES)) return -1;
      const body = views.view(buffer, bodyOffset, bodyLength);
      const tag = views.view(buffer, tagOffset, DATA_TAG_BYTES);
      const ad = adLength > 0 ? views.view(buffer, adOffset, adLength) : undefined;
      return fns.encrypt(body, tag, body, ad, nonce, key) === 0 ? bodyLength + DATA_TAG_BYTES : -1;
    },
    open(buffer, adOffset, adLength, bodyOffset, sealedLength, nonce, key) {
      if (sealedLength < DATA_TAG_BYTES || !fits(buffer, adOffset, adLength) || !fits(buffer, bodyOffset, sealedLength)) return -1;
      const bodyLength = sealedLength - DATA_TAG_BYTES;
      const body = views.view(buffer, bodyOffset, bodyLength);
      const tag = views.view(buffer, bodyOffset + bodyLength, DATA_TAG_BYTES);
      const ad = adLength > 0 ? views.view(buffer, adOffset, adLength) : undefined;
      return fns.decrypt(body, body, tag, ad, nonce, key) === 0 ? bodyLength : -1;
    },
  });
}

function fits(buffer: Buffer, offset: number, length: number): boolean {
  return offset >= 0 && length >= 0 && offset + length <= buffer.length;
}

/**
 * ChaCha20-Poly1305 through sodium-native. `views`: where the byte ranges become the typed arrays sodium-native
 * takes (share one across the sessions of a data path; `new BufferViews(0)` keeps none and allocates per call).
 */
export function sodiumDataAead(views: BufferViews = new BufferViews()): DataAead {
  const fns = sodiumFunctions();
  return sodiumWith(fns, views, fns.isDirect ? 'sodium-native' : 'sodium-native (wrappers)');
}

/**
 * Check `candidate` against `reference` on inputs that cover the edges (empty AD and body, lengths around the
 * 16- and 64-byte block sizes, MTU-sized bodies, offsets into a larger buffer, buffers that are views with memory
 * in front of them, which an implementation may borrow): equal ciphertext and tag, memory outside the datagram
 * untouched, both open each other's output, and neither opens a datagram with one bit flipped. Returns what
 * differed, or undefined.
 */
export function crossCheckDataAead(candidate: DataAead, reference: DataAead): string | undefined {
  if (candidate.cipher !== reference.cipher || candidate.nonceBytes !== reference.nonceBytes) {
    return `${candidate.name} computes ${candidate.cipher}, ${reference.name} ${reference.cipher}`;
  }
  const key = Buffer.alloc(DATA_KEY_BYTES);
  const nonce = Buffer.alloc(candidate.nonceBytes);
  const lengths = [0, 1, 15, 16, 17, 63, 64, 65, 255, 1400, 1440, 1471, 9000];
  const adLengths = [0, 16, 13];
  for (let i = 0; i < lengths.length * adLengths.length; i++) {
    const bodyLength = lengths[i % lengths.length]!;
    const adLength = adLengths[i % adLengths.length]!;
    sodium.randombytes_buf(key);
    sodium.randombytes_buf(nonce);
    const offset = 3 + (i % 5);
    const bytes = offset + adLength + bodyLength + DATA_TAG_BYTES + 7;
    // Every other case: a view with 80 bytes of memory in front (as the sleeve's datagram buffers have).
    const front = i % 2 === 0 ? 0 : 80;
    const whole = Buffer.alloc(front + bytes);
    sodium.randombytes_buf(whole);
    const outside = Buffer.from(whole.subarray(0, front));
    const a = whole.subarray(front);
    const b = Buffer.from(a);
    const plain = Buffer.from(a);
    const body = offset + adLength;
    const what = `ad ${adLength} B, body ${bodyLength} B`;
    try {
      if (candidate.seal(a, offset, adLength, body, bodyLength, nonce, key) !== bodyLength + DATA_TAG_BYTES) return `seal failed (${what})`;
      reference.seal(b, offset, adLength, body, bodyLength, nonce, key);
      if (!a.equals(b)) return `ciphertext or tag differs (${what})`;
      if (!whole.subarray(0, front).equals(outside)) return `changed memory in front of the buffer (${what})`;
      if (reference.open(b, offset, adLength, body, bodyLength + DATA_TAG_BYTES, nonce, key) !== bodyLength)
        return `reference cannot open (${what})`;
      if (candidate.open(a, offset, adLength, body, bodyLength + DATA_TAG_BYTES, nonce, key) !== bodyLength)
        return `cannot open its own (${what})`;
      if (!a.subarray(0, body + bodyLength).equals(plain.subarray(0, body + bodyLength))) return `decrypts to other bytes (${what})`;
      candidate.seal(a, offset, adLength, body, bodyLength, nonce, key);
      const flip = offset + ((i * 7) % (adLength + bodyLength + DATA_TAG_BYTES));
      a[flip]! ^= 1 << (i % 8);
      if (candidate.open(a, offset, adLength, body, bodyLength + DATA_TAG_BYTES, nonce, key) !== -1) return `opens a forgery (${what})`;
    } catch (err) {
      return `threw ${(err as Error).message} (${what})`;
    }
  }
  return undefined;
}
