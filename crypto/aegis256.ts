/**
 * AEGIS-256 for the data plane: its known-answer tests and the hello feature that offers it.
 *
 * The cipher itself is native (native/src/aegis.c, the AES round instruction); there is no libsodium binding to
 * check it against at run time (sodium-native exports no AEGIS), so a router offers it only after it reproduces
 * the draft's test vectors here and passes the same edge-case checks as the ChaCha20-Poly1305 code
 * (`crossCheckDataAead` against itself: memory outside the datagram untouched, forgeries refused). The tests also
 * check it against an independent reference written from the draft (test/harness/aegis256-reference.ts) on random
 * inputs.
 *
 * Test vectors: draft-irtf-cfrg-aegis-aead, "AEGIS-256 Test Vectors", 1 to 7 (128-bit tags).
 */
import { AEGIS256_NONCE_BYTES, DATA_KEY_BYTES, DATA_TAG_BYTES, crossCheckDataAead, type DataAead } from './data-aead.js';

/** The hello feature a router lists when it can use AEGIS-256 for data (gossip/handshake.ts, features). */
export const AEGIS256_FEATURE = 'aead-aegis256';

export interface Aegis256Vector {
  name: string;
  key: string;
  nonce: string;
  ad: string;
  msg: string;
  ct: string;
  tag: string;
  /** True for the vectors that must fail to open. */
  isInvalid?: boolean;
}

const KEY = '1001000000000000000000000000000000000000000000000000000000000000';
const NONCE = '1000020000000000000000000000000000000000000000000000000000000000';

export const AEGIS256_VECTORS: readonly Aegis256Vector[] = [
  { name: 'Test Vector 1', key: KEY, nonce: NONCE, ad: '', msg: '00000000000000000000000000000000',
    ct: '754fc3d8c973246dcc6d741412a4b236', tag: '3fe91994768b332ed7f570a19ec5896e' },
  { name: 'Test Vector 2', key: KEY, nonce: NONCE, ad: '', msg: '', ct: '', tag: 'e3def978a0f054afd1e761d7553afba3' },
  { name: 'Test Vector 3', key: KEY, nonce: NONCE, ad: '0001020304050607',
    msg: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
    ct: 'f373079ed84b2709faee373584585d60accd191db310ef5d8b11833df9dec711', tag: '8d86f91ee606e9ff26a01b64ccbdd91d' },
  { name: 'Test Vector 4', key: KEY, nonce: NONCE, ad: '0001020304050607', msg: '000102030405060708090a0b0c0d',
    ct: 'f373079ed84b2709faee37358458', tag: 'c60b9c2d33ceb058f96e6dd03c215652' },
  { name: 'Test Vector 5', key: KEY, nonce: NONCE,
    ad: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829',
    msg: '101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637',
    ct: '57754a7d09963e7c787583a2e7b859bb24fa1e04d49fd550b2511a358e3bca252a9b1b8b30cc4a67',
    tag: 'ab8a7d53fd0e98d727accca94925e128' },
  { name: 'Test Vector 6 (key and nonce swapped)', key: NONCE, nonce: KEY, ad: '0001020304050607', msg: '',
    ct: 'f373079ed84b2709faee37358458', tag: 'c60b9c2d33ceb058f96e6dd03c215652', isInvalid: true },
  { name: 'Test Vector 7 (ciphertext changed)', key: KEY, nonce: NONCE, ad: '0001020304050607', msg: '',
    ct: 'f373079ed84b2709faee37358459', tag: 'c60b9c2d33ceb058f96e6dd03c215652', isInvalid: true },
];

/**
 * Run `candidate` over the draft's vectors (each at an offset into a larger buffer, AD in front of the body as the
 * sleeve lays datagrams out), then the edge-case checks of `crossCheckDataAead`. Returns what failed, or undefined.
 */
export function checkAegis256(candidate: DataAead): string | undefined {
  if (candidate.cipher !== 'aegis-256' || candidate.nonceBytes !== AEGIS256_NONCE_BYTES) {
    return `${candidate.name} computes ${candidate.cipher} with ${candidate.nonceBytes}-byte nonces, not AEGIS-256`;
  }
  for (const v of AEGIS256_VECTORS) {
    const key = Buffer.from(v.key, 'hex');
    const nonce = Buffer.from(v.nonce, 'hex');
    const ad = Buffer.from(v.ad, 'hex');
    const ct = Buffer.from(v.ct, 'hex');
    const tag = Buffer.from(v.tag, 'hex');
    if (key.length !== DATA_KEY_BYTES || nonce.length !== AEGIS256_NONCE_BYTES) return `${v.name}: bad vector`;
    const offset = 5;
    const body = offset + ad.length;
    const buffer = Buffer.alloc(body + ct.length + DATA_TAG_BYTES + 3);
    ad.copy(buffer, offset);
    try {
      if (v.isInvalid) {
        ct.copy(buffer, body);
        tag.copy(buffer, body + ct.length);
        if (candidate.open(buffer, offset, ad.length, body, ct.length + DATA_TAG_BYTES, nonce, key) !== -1) {
          return `${v.name}: opened a datagram that must be refused`;
        }
        continue;
      }
      const msg = Buffer.from(v.msg, 'hex');
      msg.copy(buffer, body);
      if (candidate.seal(buffer, offset, ad.length, body, msg.length, nonce, key) !== msg.length + DATA_TAG_BYTES) {
        return `${v.name}: seal failed`;
      }
      if (!buffer.subarray(body, body + ct.length).equals(ct)) return `${v.name}: wrong ciphertext`;
      if (!buffer.subarray(body + ct.length, body + ct.length + DATA_TAG_BYTES).equals(tag)) return `${v.name}: wrong tag`;
      if (candidate.open(buffer, offset, ad.length, body, ct.length + DATA_TAG_BYTES, nonce, key) !== msg.length) {
        return `${v.name}: cannot open it`;
      }
      if (!buffer.subarray(body, body + msg.length).equals(msg)) return `${v.name}: opens to other bytes`;
    } catch (err) {
      return `${v.name}: threw ${(err as Error).message}`;
    }
  }
  return crossCheckDataAead(candidate, candidate);
}
