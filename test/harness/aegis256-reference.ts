/**
 * A reference AEGIS-256 AEAD with 128-bit tags, written from draft-irtf-cfrg-aegis-aead ("The AEGIS-256 Algorithm")
 * and FIPS-197 section 5 (the AES round), for tests only: it is the slow, obviously correct model that the native C
 * implementation is property-tested against.
 *
 * It is slow on purpose. Every function mirrors one pseudocode block of the draft, blocks are fresh 16-byte arrays,
 * the AES round works byte by byte on the FIPS-197 state, and the S-box is computed from its definition (inverse in
 * GF(2^8), then the affine transform) rather than pasted, so nothing here has to be trusted as an opaque table.
 * The tag comparison is not constant time; no secret ever meets an attacker in a test. Never use this in weft proper.
 */

import { AEGIS256_NONCE_BYTES, type DataAead } from '../../crypto/data-aead.js';

/** The AES irreducible polynomial x^8 + x^4 + x^3 + x + 1 (FIPS-197 section 4.2), without the x^8 bit. */
const AES_REDUCTION = 0x1b;

/** Multiplication in GF(2^8) modulo the AES polynomial (FIPS-197 section 4.2), shift-and-add. */
function gfMul(a: number, b: number): number {
  let product = 0;
  let x = a;
  let y = b;
  while (y !== 0) {
    if ((y & 1) !== 0) product ^= x;
    const carry = (x & 0x80) !== 0;
    x = (x << 1) & 0xff;
    if (carry) x ^= AES_REDUCTION;
    y >>= 1;
  }
  return product;
}

/** The multiplicative inverse in GF(2^8), with 0 mapped to 0 (FIPS-197 section 5.1.1), found by search. */
function gfInverse(a: number): number {
  if (a === 0) return 0;
  for (let candidate = 1; candidate < 256; candidate++) {
    if (gfMul(a, candidate) === 1) return candidate;
  }
  throw new Error(`no inverse for ${a} in GF(2^8)`);
}

const rotl8 = (b: number, n: number): number => ((b << n) | (b >> (8 - n))) & 0xff;

/**
 * FIPS-197 section 5.1.1: S(a) = affine(inverse(a)), where the affine transform sets bit i to
 * b_i ^ b_(i+4) ^ b_(i+5) ^ b_(i+6) ^ b_(i+7) ^ c_i with c = 0x63; as a byte that is
 * b ^ rotl(b,1) ^ rotl(b,2) ^ rotl(b,3) ^ rotl(b,4) ^ 0x63.
 */
const SBOX: readonly number[] = Array.from({ length: 256 }, (_, a) => {
  const b = gfInverse(a);
  return b ^ rotl8(b, 1) ^ rotl8(b, 2) ^ rotl8(b, 3) ^ rotl8(b, 4) ^ 0x63;
});

/**
 * One AES encryption round: SubBytes, ShiftRows, MixColumns, then AddRoundKey (FIPS-197 section 5.1).
 * Byte `4 * c + r` of `input` is row r, column c of the state, the usual column-major input order.
 * Both inputs are 16 bytes and are not modified; the result is a new 16-byte array.
 */
export function aesRound(input: Uint8Array, roundKey: Uint8Array): Uint8Array {
  if (input.length !== 16 || roundKey.length !== 16) throw new RangeError('aesRound takes 16-byte blocks');
  const at = (state: Uint8Array, r: number, c: number): number => state[4 * c + r]!;

  // SubBytes (5.1.1).
  const substituted = new Uint8Array(16);
  for (let i = 0; i < 16; i++) substituted[i] = SBOX[input[i]!]!;

  // ShiftRows (5.1.2): row r is rotated left by r columns, s'[r][c] = s[r][(c + r) mod 4].
  const shifted = new Uint8Array(16);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) shifted[4 * c + r] = at(substituted, r, (c + r) % 4);
  }

  // MixColumns (5.1.3): each column is multiplied by the fixed matrix circulant(02, 03, 01, 01).
  const mixed = new Uint8Array(16);
  for (let c = 0; c < 4; c++) {
    const s0 = at(shifted, 0, c);
    const s1 = at(shifted, 1, c);
    const s2 = at(shifted, 2, c);
    const s3 = at(shifted, 3, c);
    mixed[4 * c + 0] = gfMul(2, s0) ^ gfMul(3, s1) ^ s2 ^ s3;
    mixed[4 * c + 1] = s0 ^ gfMul(2, s1) ^ gfMul(3, s2) ^ s3;
    mixed[4 * c + 2] = s0 ^ s1 ^ gfMul(2, s2) ^ gfMul(3, s3);
    mixed[4 * c + 3] = gfMul(3, s0) ^ s1 ^ s2 ^ gfMul(2, s3);
  }

  // AddRoundKey (5.1.4).
  return xor(mixed, roundKey);
}

// ---------------------------------------------------------------------------------------------------------------
// AEGIS-256, following the draft's pseudocode block by block. The state is six 16-byte AES blocks {S0, ...S5}.

/** The key length, the nonce length and the tag length, in bytes. */
const KEY_BYTES = 32;
const NONCE_BYTES = 32;
const TAG_BYTES = 16;
const BLOCK_BYTES = 16;

/** The draft's constants C0 and C1 (section "Conventions and Definitions"). */
const C0 = Uint8Array.from([
  0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0d, 0x15, 0x22, 0x37, 0x59, 0x90, 0xe9, 0x79, 0x62,
]);
const C1 = Uint8Array.from([
  0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2, 0x2f, 0xf1, 0x20, 0x11, 0x31, 0x42, 0x73, 0xb5, 0x28, 0xdd,
]);

type State = Uint8Array[];

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

function and(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! & b[i]!;
  return out;
}

/** ZeroPad(x, 128): `x` with zeros appended up to a multiple of 16 bytes; an empty `x` stays empty. */
function zeroPad(x: Uint8Array): Uint8Array {
  const padded = new Uint8Array(Math.ceil(x.length / BLOCK_BYTES) * BLOCK_BYTES);
  padded.set(x);
  return padded;
}

/** Split(x, 128): the whole 16-byte blocks of `x`, ignoring a partial last block. */
function split(x: Uint8Array): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  for (let at = 0; at + BLOCK_BYTES <= x.length; at += BLOCK_BYTES) blocks.push(x.slice(at, at + BLOCK_BYTES));
  return blocks;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** LE64(x): the 8-byte little-endian encoding of `x`. */
function le64(x: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, x, true);
  return out;
}

/** Update(M): the state update function; replaces every block of `s` at once. */
function update(s: State, m: Uint8Array): void {
  const next = [
    aesRound(s[5]!, xor(s[0]!, m)),
    aesRound(s[0]!, s[1]!),
    aesRound(s[1]!, s[2]!),
    aesRound(s[2]!, s[3]!),
    aesRound(s[3]!, s[4]!),
    aesRound(s[4]!, s[5]!),
  ];
  for (let i = 0; i < 6; i++) s[i] = next[i]!;
}

/** Init(key, nonce): the initial state. */
function init(key: Uint8Array, nonce: Uint8Array): State {
  const [k0, k1] = split(key) as [Uint8Array, Uint8Array];
  const [n0, n1] = split(nonce) as [Uint8Array, Uint8Array];
  const s: State = [xor(k0, n0), xor(k1, n1), C1.slice(), C0.slice(), xor(k0, C0), xor(k1, C1)];
  for (let i = 0; i < 4; i++) {
    update(s, k0);
    update(s, k1);
    update(s, xor(k0, n0));
    update(s, xor(k1, n1));
  }
  return s;
}

/** Absorb(ai). */
function absorb(s: State, ai: Uint8Array): void {
  update(s, ai);
}

/** The keystream block z = S1 ^ S4 ^ S5 ^ (S2 & S3), shared by Enc, Dec and DecPartial. */
function keystream(s: State): Uint8Array {
  return xor(xor(xor(s[1]!, s[4]!), s[5]!), and(s[2]!, s[3]!));
}

/** Enc(xi). */
function enc(s: State, xi: Uint8Array): Uint8Array {
  const z = keystream(s);
  update(s, xi);
  return xor(xi, z);
}

/** Dec(ci). */
function dec(s: State, ci: Uint8Array): Uint8Array {
  const z = keystream(s);
  const xi = xor(ci, z);
  update(s, xi);
  return xi;
}

/** DecPartial(cn): `cn` is shorter than a block; the padding bytes of the decryption are zeroed before Update. */
function decPartial(s: State, cn: Uint8Array): Uint8Array {
  const z = keystream(s);
  const t = zeroPad(cn);
  const out = xor(t, z);
  const xn = out.slice(0, cn.length);
  const v = zeroPad(xn);
  update(s, v);
  return xn;
}

/** Finalize(ad_len_bits, msg_len_bits) with tag_len_bits = 128. */
function finalize(s: State, adLenBytes: number, msgLenBytes: number): Uint8Array {
  const t = xor(s[3]!, concat([le64(BigInt(adLenBytes) * 8n), le64(BigInt(msgLenBytes) * 8n)]));
  for (let i = 0; i < 7; i++) update(s, t);
  return s.reduce((tag, block) => xor(tag, block), new Uint8Array(TAG_BYTES));
}

function checkKeyAndNonce(key: Uint8Array, nonce: Uint8Array): void {
  if (key.length !== KEY_BYTES) throw new RangeError(`AEGIS-256 key must be ${KEY_BYTES} bytes, got ${key.length}`);
  if (nonce.length !== NONCE_BYTES) {
    throw new RangeError(`AEGIS-256 nonce must be ${NONCE_BYTES} bytes, got ${nonce.length}`);
  }
}

/**
 * AEGIS-256 Encrypt(msg, ad, key, nonce) with a 128-bit tag.
 * `key` and `nonce` are 32 bytes each (RangeError otherwise). Inputs are not modified; `ct` (same length as `msg`)
 * and `tag` (16 bytes) are new arrays owned by the caller.
 */
export function aegis256Encrypt(
  msg: Uint8Array,
  ad: Uint8Array,
  key: Uint8Array,
  nonce: Uint8Array,
): { ct: Uint8Array; tag: Uint8Array } {
  checkKeyAndNonce(key, nonce);
  const s = init(key, nonce);
  for (const ai of split(zeroPad(ad))) absorb(s, ai);
  const ctBlocks: Uint8Array[] = [];
  for (const xi of split(zeroPad(msg))) ctBlocks.push(enc(s, xi));
  const tag = finalize(s, ad.length, msg.length);
  const ct = concat(ctBlocks).slice(0, msg.length);
  return { ct, tag };
}

/**
 * AEGIS-256 Decrypt(ct, tag, ad, key, nonce) with a 128-bit tag.
 * Returns the plaintext (a new array the caller owns) or null when `tag` does not verify, including when it is not
 * 16 bytes long. `key` and `nonce` are 32 bytes each (RangeError otherwise). Inputs are not modified.
 */
export function aegis256Decrypt(
  ct: Uint8Array,
  tag: Uint8Array,
  ad: Uint8Array,
  key: Uint8Array,
  nonce: Uint8Array,
): Uint8Array | null {
  checkKeyAndNonce(key, nonce);
  const s = init(key, nonce);
  for (const ai of split(zeroPad(ad))) absorb(s, ai);
  const msgParts: Uint8Array[] = [];
  // The draft's AEGIS-256 pseudocode reads `ct_blocks = Split(ZeroPad(ct, 128), 128)`, which taken literally would
  // feed a partial last block to Dec and then again to DecPartial. AEGIS-128L and AEGIS-256X say `Split(ct, ...)`:
  // whole blocks only, the tail going to DecPartial alone. That is the meaning the draft's test vector 4
  // (a 14-byte message) pins, so it is what is done here.
  for (const ci of split(ct)) msgParts.push(dec(s, ci));
  const tailBytes = ct.length % BLOCK_BYTES;
  if (tailBytes !== 0) msgParts.push(decPartial(s, ct.slice(ct.length - tailBytes)));
  const msg = concat(msgParts);
  const expectedTag = finalize(s, ad.length, msg.length);
  if (tag.length !== TAG_BYTES || !expectedTag.every((byte, i) => byte === tag[i])) {
    msg.fill(0);
    return null;
  }
  return msg;
}

/**
 * Update(M) on a caller-given state, exposed only so a test can check the draft's "Update Test Vector".
 * `state` is six 16-byte blocks {S0, ...S5}; returns the next state as new arrays and leaves `state` untouched.
 */
export function aegis256UpdateForTest(state: readonly Uint8Array[], m: Uint8Array): Uint8Array[] {
  if (state.length !== 6 || state.some((b) => b.length !== BLOCK_BYTES) || m.length !== BLOCK_BYTES) {
    throw new RangeError('the AEGIS-256 state is six 16-byte blocks and M is one');
  }
  const s = state.map((b) => b.slice());
  update(s, m);
  return s;
}

/** The reference as a `DataAead` (copies in and out of the buffer ranges). */
export const referenceAegis256: DataAead = {
  name: 'reference',
  cipher: 'aegis-256',
  nonceBytes: AEGIS256_NONCE_BYTES,
  seal(buffer, adOffset, adLength, bodyOffset, bodyLength, nonce, key) {
    if (bodyOffset + bodyLength + 16 > buffer.length || adOffset + adLength > buffer.length) return -1;
    const { ct, tag } = aegis256Encrypt(buffer.subarray(bodyOffset, bodyOffset + bodyLength), buffer.subarray(adOffset, adOffset + adLength), key, nonce);
    buffer.set(ct, bodyOffset);
    buffer.set(tag, bodyOffset + bodyLength);
    return bodyLength + 16;
  },
  open(buffer, adOffset, adLength, bodyOffset, sealedLength, nonce, key) {
    if (sealedLength < 16 || bodyOffset + sealedLength > buffer.length || adOffset + adLength > buffer.length) return -1;
    const bodyLength = sealedLength - 16;
    const ct = buffer.subarray(bodyOffset, bodyOffset + bodyLength);
    const msg = aegis256Decrypt(ct, buffer.subarray(bodyOffset + bodyLength, bodyOffset + sealedLength), buffer.subarray(adOffset, adOffset + adLength), key, nonce);
    if (msg === null) return -1;
    buffer.set(msg, bodyOffset);
    return bodyLength;
  },
};
