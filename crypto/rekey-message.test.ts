import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { HandshakeError } from './errors.js';
import { RekeyType, decodeRekeyMessage, encodeRekeyMessage, type RekeyMessage } from './rekey-message.js';

const message: fc.Arbitrary<RekeyMessage> = fc.oneof(
  fc.record({
    type: fc.constantFrom(RekeyType.Offer, RekeyType.Answer),
    epoch: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    publicKey: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((u) => Buffer.from(u)),
  }),
  fc.record({ type: fc.constant(RekeyType.Done), epoch: fc.integer({ min: 0, max: 2 ** 32 - 1 }) }),
);

describe('rekey messages', () => {
  it('decode(encode(m)) equals m', () => {
    fc.assert(
      fc.property(message, (m) => {
        expect(decodeRekeyMessage(encodeRekeyMessage(m))).toEqual(m);
      }),
    );
  });

  it('random bytes either decode or fail with HandshakeError, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          const m = decodeRekeyMessage(bytes);
          expect(encodeRekeyMessage(m)).toEqual(Buffer.from(bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(HandshakeError);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('pins the layout: type, epoch big-endian, public key', () => {
    const pk = Buffer.alloc(32, 0xab);
    expect(encodeRekeyMessage({ type: RekeyType.Offer, epoch: 0x01020304, publicKey: pk }).toString('hex')).toBe(
      '0101020304' + 'ab'.repeat(32),
    );
    expect(encodeRekeyMessage({ type: RekeyType.Done, epoch: 7 }).toString('hex')).toBe('0300000007');
  });
});
