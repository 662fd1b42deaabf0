/**
 * AEGIS-256X2 for the data plane: its known-answer tests and the hello feature that offers it.
 *
 * The cipher itself is native (native/src/aegis.c, the AES round instruction); there is no libsodium binding to
 * check it against at run time (sodium-native exports no AEGIS), so a router offers it only after it reproduces
 * the draft's test vectors here and passes the same edge-case checks as the ChaCha20-Poly1305 code
 * (`crossCheckDataAead` against itself: memory outside the datagram untouched, forgeries refused). The tests also
 * check it against an independent reference written from the draft (test/harness/aegis256-reference.ts) on random
 * inputs.
 *
 * Test vectors: draft-irtf-cfrg-aegis-aead, "AEGIS-256X2 Test Vectors" 1 and 2 (128-bit tags), and three that must
 * fail to open, made from vector 2 by changing one bit of its ciphertext, AD or tag.
 */
import { AEGIS256_NONCE_BYTES, DATA_KEY_BYTES, DATA_TAG_BYTES, crossCheckDataAead, type DataAead } from './data-aead.js';

/** The hello feature a router lists when it can use AEGIS-256X2 for data (gossip/handshake.ts, features). */
export const AEGIS256X2_FEATURE = 'aead-aegis256x2';

export interface AegisVector {
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

const KEY = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const NONCE = '101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f';
const AD2 = '0102030401020304';
const MSG2 = '04050607'.repeat(30);
const CT2 =
  '72120c2ea8236180d67859001f4729077b7064c414384fe3a7b52f1571f4f8a7d0f01e18db4f3bc0adb150702e5d147a' +
  '8d36522132761b994c1bd395589e2ccf0790dfe2a3d12d61cd666b2859827739db4037dd3124c78424459376f6cac08e' +
  '1a7223a2a43e398ce6385cd654a19f481cba3b8f25910b42';
const TAG2 = '635d391828520bf1512763f0c8f5cdbd';

/** `hex` with bit `bit` of byte `byte` flipped. */
function flip(hex: string, byte: number, bit: number): string {
  const b = Buffer.from(hex, 'hex');
  b[byte]! ^= 1 << bit;
  return b.toString('hex');
}

export const AEGIS256X2_VECTORS: readonly AegisVector[] = [
  { name: 'Test Vector 1', key: KEY, nonce: NONCE, ad: '', msg: '', ct: '', tag: '62cdbab084c83dacdb945bb446f049c8' },
  { name: 'Test Vector 2', key: KEY, nonce: NONCE, ad: AD2, msg: MSG2, ct: CT2, tag: TAG2 },
  {
    name: 'Test Vector 2, last ciphertext byte changed',
    key: KEY,
    nonce: NONCE,
    ad: AD2,
    msg: '',
    ct: flip(CT2, 119, 0),
    tag: TAG2,
    isInvalid: true,
  },
  { name: 'Test Vector 2, AD changed', key: KEY, nonce: NONCE, ad: flip(AD2, 3, 7), msg: '', ct: CT2, tag: TAG2, isInvalid: true },
  { name: 'Test Vector 2, tag changed', key: KEY, nonce: NONCE, ad: AD2, msg: '', ct: CT2, tag: flip(TAG2, 15, 7), isInvalid: true },
];

/**
 * Run `candidate` over the vectors (each at an offset into a larger buffer, AD in front of the body as the sleeve
 * lays datagrams out), then the edge-case checks of `crossCheckDataAead`. Returns what failed, or undefined.
 */
export function checkAegis256x2(candidate: DataAead): string | undefined {
  if (candidate.cipher !== 'aegis-256x2' || candidate.nonceBytes !== AEGIS256_NONCE_BYTES) {
    return `${candidate.name} computes ${candidate.cipher} with ${candidate.nonceBytes}-byte nonces, not AEGIS-256X2`;
  }
  for (const v of AEGIS256X2_VECTORS) {
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
