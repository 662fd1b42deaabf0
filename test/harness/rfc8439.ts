/** The RFC 8439 AEAD test vector, shared by the tests of every ChaCha20-Poly1305 implementation weft has. */
import { expect } from 'vitest';
import fc from 'fast-check';
import type { DataAead } from '../../crypto/data-aead.js';

/** RFC 8439 section 2.8.2: the AEAD_CHACHA20_POLY1305 test vector, written down here. */
export const RFC8439_VECTOR = {
  key: Buffer.from('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f', 'hex'),
  nonce: Buffer.from('070000004041424344454647', 'hex'),
  ad: Buffer.from('50515253c0c1c2c3c4c5c6c7', 'hex'),
  plaintext: Buffer.from(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  ),
  ciphertext: Buffer.from(
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b' +
      '1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
      '3ff4def08e4b7a9de576d26586cec64b6116',
    'hex',
  ),
  tag: Buffer.from('1ae10b594f09e26a7e902ecbd0600691', 'hex'),
};

/** Run the RFC vector through `aead` with the AD and body at offsets inside a larger buffer. */
export function checkRfcVector(aead: DataAead): void {
  const v = RFC8439_VECTOR;
  const at = 5;
  const body = at + v.ad.length;
  const buf = Buffer.alloc(body + v.plaintext.length + 16 + 3, 0xee);
  v.ad.copy(buf, at);
  v.plaintext.copy(buf, body);
  expect(aead.seal(buf, at, v.ad.length, body, v.plaintext.length, v.nonce, v.key)).toBe(v.plaintext.length + 16);
  expect(buf.subarray(body, body + v.plaintext.length).toString('hex')).toBe(v.ciphertext.toString('hex'));
  expect(buf.subarray(body + v.plaintext.length, body + v.plaintext.length + 16).toString('hex')).toBe(v.tag.toString('hex'));
  expect(buf.subarray(body + v.plaintext.length + 16)).toEqual(Buffer.alloc(3, 0xee)); // nothing written past the tag
  expect(aead.open(buf, at, v.ad.length, body, v.plaintext.length + 16, v.nonce, v.key)).toBe(v.plaintext.length);
  expect(buf.subarray(body, body + v.plaintext.length).toString()).toBe(v.plaintext.toString());
}

/** Arbitrary AEAD inputs: key, nonce, AD (up to 40 bytes), body (up to 3000), and an offset (0..7) into a buffer. */
export const aeadInputs = fc.record({
  key: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((a) => Buffer.from(a)),
  nonce: fc.uint8Array({ minLength: 12, maxLength: 12 }).map((a) => Buffer.from(a)),
  ad: fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  body: fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
  offset: fc.nat(7),
});
