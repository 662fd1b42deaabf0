import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DecodeError } from '../gossip/decode-error.js';
import { peerIdToName } from '../gossip/peer-name.js';
import { decodeRecords, encodeRecords, MAX_ENTRIES } from './record-message.js';
import type { RecordDelta, RecordEntry } from './record-store.js';

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
const nameArb = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => `${ls.join('.')}.`);
const NOW = 5_000;

const entryArb: fc.Arbitrary<RecordEntry> = fc
  .record({
    owner: fc.integer({ min: 0, max: 2 ** 48 - 1 }).map(peerIdToName),
    name: nameArb,
    address: fc.ipV4(),
    version: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    isTombstone: fc.boolean(),
    remaining: fc.integer({ min: 1, max: 86_400_000 }),
  })
  .map(({ remaining, ...e }) => ({ ...e, expiresAtMs: e.isTombstone ? NOW + remaining : Infinity }));

const batchArb: fc.Arbitrary<RecordDelta> = fc.record({
  entries: fc.array(entryArb, { maxLength: 10 }),
  removals: fc.array(
    fc.record({
      peer: fc.integer({ min: 0, max: 2 ** 48 - 1 }).map(peerIdToName),
      expiresAtMs: fc.integer({ min: NOW + 1, max: NOW + 86_400_000 }),
    }),
    { maxLength: 3 },
  ),
});

function onlyDecodeErrors(bytes: Uint8Array): void {
  try {
    decodeRecords(bytes, NOW);
  } catch (err) {
    if (!(err instanceof DecodeError)) throw err;
  }
}

describe('DNS record message', () => {
  it('round-trips: decode(encode(x)) equals x', () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        expect(decodeRecords(encodeRecords(b, NOW), NOW)).toEqual(b);
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips IPv6 addresses in canonical form', () => {
    const b: RecordDelta = {
      entries: [
        { owner: peerIdToName(1), name: 'v6.weft.local.', address: 'fd00::1', version: 1, isTombstone: false, expiresAtMs: Infinity },
      ],
      removals: [],
    };
    expect(decodeRecords(encodeRecords(b, NOW), NOW)).toEqual(b);
  });

  it('random bytes only ever fail with DecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => onlyDecodeErrors(bytes)),
      { numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 60 }), (tail) => onlyDecodeErrors(Uint8Array.from([1, 0, 0, 1, 0, 0, ...tail]))),
      { numRuns: 3000 },
    );
  });

  it('mutated valid messages (flipped bytes, cut, extended) only ever fail with DecodeError', () => {
    fc.assert(
      fc.property(
        batchArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 8 }),
        (b, flips, cut, extra) => {
          const bytes = Uint8Array.from(encodeRecords(b, NOW));
          for (const [i, v] of flips) if (bytes.length > 0) bytes[i % bytes.length] = v;
          onlyDecodeErrors(bytes.subarray(0, bytes.length === 0 ? 0 : cut % (bytes.length + 1)));
          onlyDecodeErrors(Uint8Array.from([...bytes, ...extra]));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses counts over the limits, unknown versions, flags, kinds and families, upper-case names, trailing bytes', () => {
    const one = encodeRecords(
      {
        entries: [
          { owner: peerIdToName(1), name: 'a.weft.local.', address: '10.0.0.1', version: 1, isTombstone: false, expiresAtMs: Infinity },
        ],
        removals: [],
      },
      NOW,
    );
    const mutate = (i: number, v: number) => {
      const c = Uint8Array.from(one);
      c[i] = v;
      return c;
    };
    const over = Uint8Array.from(one);
    new DataView(over.buffer).setUint16(2, MAX_ENTRIES + 1);
    expect(() => decodeRecords(over, NOW)).toThrow(/at most/);
    expect(() => decodeRecords(mutate(0, 2), NOW)).toThrow(DecodeError);
    expect(() => decodeRecords(mutate(1, 1), NOW)).toThrow(DecodeError);
    expect(() => decodeRecords(mutate(6 + 14, 2), NOW)).toThrow(/kind/);
    expect(() => decodeRecords(mutate(6 + 19, 5), NOW)).toThrow(/family/);
    expect(() => decodeRecords(mutate(6 + 25, 'A'.charCodeAt(0)), NOW)).toThrow(/lower-case/);
    expect(() => decodeRecords(Uint8Array.from([...one, 0]), NOW)).toThrow(/trailing/);
  });
});
