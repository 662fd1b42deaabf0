/**
 * A reference AEGIS-256 AEAD, and its parallel mode AEGIS-256X of degree D (AEGIS-256X2 is D = 2), with 128-bit
 * tags, written from draft-irtf-cfrg-aegis-aead ("The AEGIS-256 Algorithm" and "Parallel Modes", "AEGIS-256X") and
 * FIPS-197 section 5 (the AES round), for tests only: it is the slow, obviously correct model that the native C
 * implementations are property-tested against.
 *
 * It is slow on purpose. Every function mirrors one pseudocode block of the draft, blocks are fresh 16-byte arrays,
 * the AES round works byte by byte on the FIPS-197 state, and the S-box is computed from its definition (inverse in
 * GF(2^8), then the affine transform) rather than pasted, so nothing here has to be trusted as an opaque table.
 * AEGIS-256 and AEGIS-256X are written out separately (the draft's two sets of pseudocode), so that the draft's
 * statement "AEGIS-256X with a degree of 1 is identical to AEGIS-256" is something the tests check rather than assume.
 * The tag comparison is not constant time; no secret ever meets an attacker in a test. Never use this in weft proper.
 */

import { AEGIS256_NONCE_BYTES, withRuns, type DataAead } from '../../crypto/data-aead.js';

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
const C0 = Uint8Array.from([0x00, 0x01, 0x01, 0x02, 0x03, 0x05, 0x08, 0x0d, 0x15, 0x22, 0x37, 0x59, 0x90, 0xe9, 0x79, 0x62]);
const C1 = Uint8Array.from([0xdb, 0x3d, 0x18, 0x55, 0x6d, 0xc2, 0x2f, 0xf1, 0x20, 0x11, 0x31, 0x42, 0x73, 0xb5, 0x28, 0xdd]);

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

/**
 * ZeroPad(x, n): `x` with zeros appended up to a multiple of `n` bits (`sizeBytes` bytes, 16 unless given);
 * an empty `x` stays empty.
 */
function zeroPad(x: Uint8Array, sizeBytes = BLOCK_BYTES): Uint8Array {
  const padded = new Uint8Array(Math.ceil(x.length / sizeBytes) * sizeBytes);
  padded.set(x);
  return padded;
}

/** Split(x, n): the whole `n`-bit blocks of `x` (`sizeBytes` bytes, 16 unless given), ignoring a partial last one. */
function split(x: Uint8Array, sizeBytes = BLOCK_BYTES): Uint8Array[] {
  const blocks: Uint8Array[] = [];
  for (let at = 0; at + sizeBytes <= x.length; at += sizeBytes) blocks.push(x.slice(at, at + sizeBytes));
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
export function aegis256Encrypt(msg: Uint8Array, ad: Uint8Array, key: Uint8Array, nonce: Uint8Array): { ct: Uint8Array; tag: Uint8Array } {
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
export function aegis256Decrypt(ct: Uint8Array, tag: Uint8Array, ad: Uint8Array, key: Uint8Array, nonce: Uint8Array): Uint8Array | null {
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

// ---------------------------------------------------------------------------------------------------------------
// AEGIS-256X of degree D, following the draft's "Parallel Modes" pseudocode block by block. The state is a vector of
// D AEGIS-256 states; V[j][i] is the j-th 16-byte AES block of the i-th state (the draft's V[j,i]), j in [0, 6),
// i in [0, D). The rate R is 128 * D bits: Absorb, Enc, Dec and DecPartial each take R bits per Update.

/** V[j][i]: six rows of D lanes. */
type VectorState = Uint8Array[][];

/** The largest degree whose highest lane index D - 1 still fits the one byte ctx[i] gives it. */
const MAX_DEGREE = 256;

/** R in bytes: 128 * D bits. */
const rateBytes = (degree: number): number => BLOCK_BYTES * degree;

/** The degree D of a state: the number of lanes in a row. */
const degreeOf = (v: VectorState): number => v[0]!.length;

/** `block` repeated D times, the draft's `x_v = x_v || x` loops. */
function repeatForLanes(block: Uint8Array, degree: number): Uint8Array {
  return concat(Array.from({ length: degree }, () => block));
}

/** Update(M): `m` is R bits, split into one 128-bit block per lane; every lane is an AEGIS-256 Update. */
function updateX(v: VectorState, m: Uint8Array): void {
  const degree = degreeOf(v);
  const mi = split(m);
  if (m.length !== rateBytes(degree) || mi.length !== degree) throw new Error('AEGIS-256X Update takes R bits');
  for (let i = 0; i < degree; i++) {
    const next = [
      aesRound(v[5]![i]!, xor(v[0]![i]!, mi[i]!)),
      aesRound(v[0]![i]!, v[1]![i]!),
      aesRound(v[1]![i]!, v[2]![i]!),
      aesRound(v[2]![i]!, v[3]![i]!),
      aesRound(v[3]![i]!, v[4]![i]!),
      aesRound(v[4]![i]!, v[5]![i]!),
    ];
    for (let j = 0; j < 6; j++) v[j]![i] = next[j]!;
  }
}

/** ctx[i] = ZeroPad(Byte(i) || Byte(D - 1), 128): the context separator of lane i. */
function contextSeparator(i: number, degree: number): Uint8Array {
  const ctx = new Uint8Array(BLOCK_BYTES);
  ctx[0] = i;
  ctx[1] = degree - 1;
  return ctx;
}

/** Init(key, nonce): D AEGIS-256 initial states, the lanes told apart by ctx[i] added before every Update. */
function initX(degree: number, key: Uint8Array, nonce: Uint8Array): VectorState {
  const [k0, k1] = split(key) as [Uint8Array, Uint8Array];
  const [n0, n1] = split(nonce) as [Uint8Array, Uint8Array];

  const v: VectorState = Array.from({ length: 6 }, () => []);
  for (let i = 0; i < degree; i++) {
    v[0]![i] = xor(k0, n0);
    v[1]![i] = xor(k1, n1);
    v[2]![i] = C1.slice();
    v[3]![i] = C0.slice();
    v[4]![i] = xor(k0, C0);
    v[5]![i] = xor(k1, C1);
  }

  const k0v = repeatForLanes(k0, degree);
  const k1v = repeatForLanes(k1, degree);
  const k0n0v = repeatForLanes(xor(k0, n0), degree);
  const k1n1v = repeatForLanes(xor(k1, n1), degree);

  const ctx = Array.from({ length: degree }, (_, i) => contextSeparator(i, degree));
  const addContext = (): void => {
    for (let i = 0; i < degree; i++) {
      v[3]![i] = xor(v[3]![i]!, ctx[i]!);
      v[5]![i] = xor(v[5]![i]!, ctx[i]!);
    }
  };

  for (let round = 0; round < 4; round++) {
    addContext();
    updateX(v, k0v);
    addContext();
    updateX(v, k1v);
    addContext();
    updateX(v, k0n0v);
    addContext();
    updateX(v, k1n1v);
  }
  return v;
}

/** Absorb(ai): `ai` is R bits. */
function absorbX(v: VectorState, ai: Uint8Array): void {
  updateX(v, ai);
}

/** z = z || (V[1,i] ^ V[4,i] ^ V[5,i] ^ (V[2,i] & V[3,i])) over the lanes: R bits of keystream. */
function keystreamX(v: VectorState): Uint8Array {
  const lanes: Uint8Array[] = [];
  for (let i = 0; i < degreeOf(v); i++) {
    lanes.push(xor(xor(xor(v[1]![i]!, v[4]![i]!), v[5]![i]!), and(v[2]![i]!, v[3]![i]!)));
  }
  return concat(lanes);
}

/** Enc(xi): `xi` is R bits. */
function encX(v: VectorState, xi: Uint8Array): Uint8Array {
  const z = keystreamX(v);
  updateX(v, xi);
  return xor(xi, z);
}

/** Dec(ci): `ci` is R bits. */
function decX(v: VectorState, ci: Uint8Array): Uint8Array {
  const z = keystreamX(v);
  const xi = xor(ci, z);
  updateX(v, xi);
  return xi;
}

/** DecPartial(cn): `cn` is shorter than R bits; the padding bytes of the decryption are zeroed before Update. */
function decPartialX(v: VectorState, cn: Uint8Array): Uint8Array {
  const r = rateBytes(degreeOf(v));
  const z = keystreamX(v);
  const t = zeroPad(cn, r);
  const out = xor(t, z);
  const xn = out.slice(0, cn.length);
  const padded = zeroPad(xn, r); // the draft's ZeroPad(xn, 128 * D), which is R for AEGIS-256X
  updateX(v, padded);
  return xn;
}

/** Finalize(ad_len_bits, msg_len_bits) with tag_len_bits = 128: the XOR of the D lanes' AEGIS-256 tags. */
function finalizeX(v: VectorState, adLenBytes: number, msgLenBytes: number): Uint8Array {
  const degree = degreeOf(v);
  const u = concat([le64(BigInt(adLenBytes) * 8n), le64(BigInt(msgLenBytes) * 8n)]);
  const t = concat(Array.from({ length: degree }, (_, i) => xor(v[3]![i]!, u)));
  for (let round = 0; round < 7; round++) updateX(v, t);
  let tag: Uint8Array = new Uint8Array(TAG_BYTES);
  for (let i = 0; i < degree; i++) {
    let ti: Uint8Array = new Uint8Array(TAG_BYTES);
    for (let j = 0; j < 6; j++) ti = xor(ti, v[j]![i]!);
    tag = xor(tag, ti);
  }
  return tag;
}

function checkDegree(degree: number): void {
  if (!Number.isInteger(degree) || degree < 1 || degree > MAX_DEGREE) {
    throw new RangeError(`AEGIS-256X degree must be an integer in [1, ${MAX_DEGREE}], got ${degree}`);
  }
}

/**
 * AEGIS-256X Encrypt(msg, ad, key, nonce) of degree `degree` (D; 2 is AEGIS-256X2, 1 is AEGIS-256) with a 128-bit tag.
 * `degree` is an integer in [1, 256] and `key` and `nonce` are 32 bytes each (RangeError otherwise). Inputs are not
 * modified; `ct` (same length as `msg`) and `tag` (16 bytes) are new arrays owned by the caller.
 */
export function aegis256xEncrypt(
  degree: number,
  msg: Uint8Array,
  ad: Uint8Array,
  key: Uint8Array,
  nonce: Uint8Array,
): { ct: Uint8Array; tag: Uint8Array } {
  checkDegree(degree);
  checkKeyAndNonce(key, nonce);
  const r = rateBytes(degree);
  const v = initX(degree, key, nonce);
  for (const ai of split(zeroPad(ad, r), r)) absorbX(v, ai);
  const ctBlocks: Uint8Array[] = [];
  for (const xi of split(zeroPad(msg, r), r)) ctBlocks.push(encX(v, xi));
  const tag = finalizeX(v, ad.length, msg.length);
  const ct = concat(ctBlocks).slice(0, msg.length);
  return { ct, tag };
}

/**
 * AEGIS-256X Decrypt(ct, tag, ad, key, nonce) of degree `degree` with a 128-bit tag.
 * Returns the plaintext (a new array the caller owns) or null when `tag` does not verify, including when it is not
 * 16 bytes long. `degree` is an integer in [1, 256] and `key` and `nonce` are 32 bytes each (RangeError otherwise).
 * Inputs are not modified.
 */
export function aegis256xDecrypt(
  degree: number,
  ct: Uint8Array,
  tag: Uint8Array,
  ad: Uint8Array,
  key: Uint8Array,
  nonce: Uint8Array,
): Uint8Array | null {
  checkDegree(degree);
  checkKeyAndNonce(key, nonce);
  const r = rateBytes(degree);
  const v = initX(degree, key, nonce);
  for (const ai of split(zeroPad(ad, r), r)) absorbX(v, ai);
  const msgParts: Uint8Array[] = [];
  // ct_blocks = Split(ct, R), cn = Tail(ct, |ct| mod R): whole R-bit blocks to Dec, the tail to DecPartial alone.
  for (const ci of split(ct, r)) msgParts.push(decX(v, ci));
  const tailBytes = ct.length % r;
  if (tailBytes !== 0) msgParts.push(decPartialX(v, ct.slice(ct.length - tailBytes)));
  const msg = concat(msgParts);
  const expectedTag = finalizeX(v, ad.length, msg.length);
  if (tag.length !== TAG_BYTES || !expectedTag.every((byte, i) => byte === tag[i])) {
    msg.fill(0);
    return null;
  }
  return msg;
}

/** AEGIS-256X2 Encrypt: `aegis256xEncrypt` with D = 2. */
export function aegis256x2Encrypt(
  msg: Uint8Array,
  ad: Uint8Array,
  key: Uint8Array,
  nonce: Uint8Array,
): { ct: Uint8Array; tag: Uint8Array } {
  return aegis256xEncrypt(2, msg, ad, key, nonce);
}

/** AEGIS-256X2 Decrypt: `aegis256xDecrypt` with D = 2. */
export function aegis256x2Decrypt(ct: Uint8Array, tag: Uint8Array, ad: Uint8Array, key: Uint8Array, nonce: Uint8Array): Uint8Array | null {
  return aegis256xDecrypt(2, ct, tag, ad, key, nonce);
}

/**
 * The AEGIS-256X state right after Init(key, nonce), exposed only so a test can check the draft's "Initial State"
 * vectors. Returns V as new arrays: `result[j][i]` is V[j,i], block j (0..5) of lane i (0..D-1).
 */
export function aegis256xInitForTest(degree: number, key: Uint8Array, nonce: Uint8Array): Uint8Array[][] {
  checkDegree(degree);
  checkKeyAndNonce(key, nonce);
  return initX(degree, key, nonce);
}

// ---------------------------------------------------------------------------------------------------------------
// The references as `DataAead`s.

/** A `DataAead` over an encrypt/decrypt pair with 16-byte tags (copies in and out of the buffer ranges). */
function referenceDataAead(
  cipher: DataAead['cipher'],
  encrypt: (msg: Uint8Array, ad: Uint8Array, key: Uint8Array, nonce: Uint8Array) => { ct: Uint8Array; tag: Uint8Array },
  decrypt: (ct: Uint8Array, tag: Uint8Array, ad: Uint8Array, key: Uint8Array, nonce: Uint8Array) => Uint8Array | null,
): DataAead {
  return withRuns({
    name: 'reference',
    cipher,
    nonceBytes: AEGIS256_NONCE_BYTES,
    seal(buffer, adOffset, adLength, bodyOffset, bodyLength, nonce, key) {
      if (bodyOffset + bodyLength + 16 > buffer.length || adOffset + adLength > buffer.length) return -1;
      const { ct, tag } = encrypt(
        buffer.subarray(bodyOffset, bodyOffset + bodyLength),
        buffer.subarray(adOffset, adOffset + adLength),
        key,
        nonce,
      );
      buffer.set(ct, bodyOffset);
      buffer.set(tag, bodyOffset + bodyLength);
      return bodyLength + 16;
    },
    open(buffer, adOffset, adLength, bodyOffset, sealedLength, nonce, key) {
      if (sealedLength < 16 || bodyOffset + sealedLength > buffer.length || adOffset + adLength > buffer.length) return -1;
      const bodyLength = sealedLength - 16;
      const ct = buffer.subarray(bodyOffset, bodyOffset + bodyLength);
      const msg = decrypt(
        ct,
        buffer.subarray(bodyOffset + bodyLength, bodyOffset + sealedLength),
        buffer.subarray(adOffset, adOffset + adLength),
        key,
        nonce,
      );
      if (msg === null) return -1;
      buffer.set(msg, bodyOffset);
      return bodyLength;
    },
  });
}

/** The AEGIS-256 reference as a `DataAead` (copies in and out of the buffer ranges). */
export const referenceAegis256: DataAead = referenceDataAead('aegis-256', aegis256Encrypt, aegis256Decrypt);

/** The AEGIS-256X2 reference as a `DataAead` (copies in and out of the buffer ranges). */
export const referenceAegis256x2: DataAead = referenceDataAead('aegis-256x2', aegis256x2Encrypt, aegis256x2Decrypt);
