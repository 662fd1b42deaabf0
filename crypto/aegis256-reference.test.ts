import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  aegis256Decrypt,
  aegis256Encrypt,
  aegis256UpdateForTest,
  aesRound,
} from '../test/harness/aegis256-reference.js';

// The reference implementation itself lives in test/harness (it is a test model, not weft code); this file checks it
// against draft-irtf-cfrg-aegis-aead, appendix "Test Vectors", before the native AEGIS-256 is tested against it.

const bytes = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The draft's "AESRound Test Vector". */
const AES_ROUND_VECTOR = {
  in: '000102030405060708090a0b0c0d0e0f',
  rk: '101112131415161718191a1b1c1d1e1f',
  out: '7a7b4e5638782546a8c0477a3b813f43',
};

/** The draft's AEGIS-256 "Update Test Vector". */
const UPDATE_VECTOR = {
  before: [
    '1fa1207ed76c86f2c4bb40e8b395b43e',
    'b44c375e6c1e1978db64bcd12e9e332f',
    '0dab84bfa9f0226432ff630f233d4e5b',
    'd7ef65c9b93e8ee60c75161407b066e7',
    'a760bb3da073fbd92bdc24734b1f56fb',
    'a828a18d6a964497ac6e7e53c5f55c73',
  ],
  m: 'b165617ed04ab738afb2612c6d18a1ec',
  after: [
    'e6bc643bae82dfa3d991b1b323839dcd',
    '648578232ba0f2f0a3677f617dc052c3',
    'ea788e0e572044a46059212dd007a789',
    '2f1498ae19b80da13fba698f088a8590',
    'a54c2ee95e8c2a2c3dae2ec743ae6b86',
    'a3240fceb68e32d5d114df1b5363ab67',
  ],
};

interface Vector {
  key: string;
  nonce: string;
  ad: string;
  ct: string;
  tag128: string;
}

/** A vector that must decrypt, and that encryption of `msg` must reproduce. */
interface ValidVector extends Vector {
  msg: string;
}

const KEY_A = '1001000000000000000000000000000000000000000000000000000000000000';
const NONCE_A = '1000020000000000000000000000000000000000000000000000000000000000';

/** The draft's AEGIS-256 test vectors 1 to 5 (tag256 is not used: weft uses 128-bit tags). */
const VALID_VECTORS: Record<string, ValidVector> = {
  'Test Vector 1': {
    key: KEY_A,
    nonce: NONCE_A,
    ad: '',
    msg: '00000000000000000000000000000000',
    ct: '754fc3d8c973246dcc6d741412a4b236',
    tag128: '3fe91994768b332ed7f570a19ec5896e',
  },
  'Test Vector 2': {
    key: KEY_A,
    nonce: NONCE_A,
    ad: '',
    msg: '',
    ct: '',
    tag128: 'e3def978a0f054afd1e761d7553afba3',
  },
  'Test Vector 3': {
    key: KEY_A,
    nonce: NONCE_A,
    ad: '0001020304050607',
    msg: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
    ct: 'f373079ed84b2709faee373584585d60accd191db310ef5d8b11833df9dec711',
    tag128: '8d86f91ee606e9ff26a01b64ccbdd91d',
  },
  'Test Vector 4': {
    key: KEY_A,
    nonce: NONCE_A,
    ad: '0001020304050607',
    msg: '000102030405060708090a0b0c0d',
    ct: 'f373079ed84b2709faee37358458',
    tag128: 'c60b9c2d33ceb058f96e6dd03c215652',
  },
  'Test Vector 5': {
    key: KEY_A,
    nonce: NONCE_A,
    ad: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829',
    msg: '101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637',
    ct: '57754a7d09963e7c787583a2e7b859bb24fa1e04d49fd550b2511a358e3bca252a9b1b8b30cc4a67',
    tag128: 'ab8a7d53fd0e98d727accca94925e128',
  },
};

/** The draft's AEGIS-256 test vectors 6 to 9, each of which "MUST return a verification failed error". */
const FAILING_VECTORS: Record<string, Vector> = {
  // Key and nonce swapped relative to test vector 4.
  'Test Vector 6': {
    key: '1000020000000000000000000000000000000000000000000000000000000000',
    nonce: '1001000000000000000000000000000000000000000000000000000000000000',
    ad: '0001020304050607',
    ct: 'f373079ed84b2709faee37358458',
    tag128: 'c60b9c2d33ceb058f96e6dd03c215652',
  },
  // Last ciphertext bit flipped.
  'Test Vector 7': {
    key: KEY_A,
    nonce: NONCE_A,
    ad: '0001020304050607',
    ct: 'f373079ed84b2709faee37358459',
    tag128: 'c60b9c2d33ceb058f96e6dd03c215652',
  },
  // Associated data changed.
  'Test Vector 8': {
    key: KEY_A,
    nonce: NONCE_A,
    ad: '0001020304050608',
    ct: 'f373079ed84b2709faee37358458',
    tag128: 'c60b9c2d33ceb058f96e6dd03c215652',
  },
  // Last tag bit flipped.
  'Test Vector 9': {
    key: KEY_A,
    nonce: NONCE_A,
    ad: '0001020304050607',
    ct: 'f373079ed84b2709faee37358458',
    tag128: 'c60b9c2d33ceb058f96e6dd03c215653',
  },
};

describe('AESRound (FIPS-197 round, S-box computed from its definition)', () => {
  it('matches the draft AESRound test vector', () => {
    expect(hex(aesRound(bytes(AES_ROUND_VECTOR.in), bytes(AES_ROUND_VECTOR.rk)))).toBe(AES_ROUND_VECTOR.out);
  });

  it('matches the FIPS-197 appendix B cipher example, round 1', () => {
    // FIPS-197 appendix B: start of round 1 is 193de3bea0f4e22b9ac68d2ae9f84808, round key 1 is
    // a0fafe1788542cb123a339392a6c7605, start of round 2 is a49c7ff2689f352b6b5bea43026a5049.
    const out = aesRound(bytes('193de3bea0f4e22b9ac68d2ae9f84808'), bytes('a0fafe1788542cb123a339392a6c7605'));
    expect(hex(out)).toBe('a49c7ff2689f352b6b5bea43026a5049');
  });
});

describe('AEGIS-256 reference', () => {
  it('matches the draft AEGIS-256 Update Test Vector', () => {
    const after = aegis256UpdateForTest(UPDATE_VECTOR.before.map(bytes), bytes(UPDATE_VECTOR.m));
    expect(after.map(hex)).toEqual(UPDATE_VECTOR.after);
  });

  for (const [name, v] of Object.entries(VALID_VECTORS)) {
    it(`encrypts and decrypts draft AEGIS-256 ${name} with a 128-bit tag`, () => {
      const { ct, tag } = aegis256Encrypt(bytes(v.msg), bytes(v.ad), bytes(v.key), bytes(v.nonce));
      expect(hex(ct)).toBe(v.ct);
      expect(hex(tag)).toBe(v.tag128);
      const msg = aegis256Decrypt(bytes(v.ct), bytes(v.tag128), bytes(v.ad), bytes(v.key), bytes(v.nonce));
      expect(msg).not.toBeNull();
      expect(hex(msg!)).toBe(v.msg);
    });
  }

  for (const [name, v] of Object.entries(FAILING_VECTORS)) {
    it(`rejects draft AEGIS-256 ${name}, which must fail verification`, () => {
      expect(aegis256Decrypt(bytes(v.ct), bytes(v.tag128), bytes(v.ad), bytes(v.key), bytes(v.nonce))).toBeNull();
    });
  }

  it('throws RangeError for a key or nonce that is not 32 bytes', () => {
    const empty = new Uint8Array(0);
    const k = new Uint8Array(32);
    for (const wrong of [0, 16, 31, 33]) {
      expect(() => aegis256Encrypt(empty, empty, new Uint8Array(wrong), k)).toThrow(RangeError);
      expect(() => aegis256Encrypt(empty, empty, k, new Uint8Array(wrong))).toThrow(RangeError);
      expect(() => aegis256Decrypt(empty, new Uint8Array(16), empty, new Uint8Array(wrong), k)).toThrow(RangeError);
      expect(() => aegis256Decrypt(empty, new Uint8Array(16), empty, k, new Uint8Array(wrong))).toThrow(RangeError);
    }
  });

  it('returns null for a tag that is not 16 bytes', () => {
    const v = VALID_VECTORS['Test Vector 4']!;
    const tag = bytes(v.tag128);
    for (const wrong of [tag.subarray(0, 15), new Uint8Array(0), Uint8Array.from([...tag, 0])]) {
      expect(aegis256Decrypt(bytes(v.ct), wrong, bytes(v.ad), bytes(v.key), bytes(v.nonce))).toBeNull();
    }
  });

  const MSG_LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 100, 1440];

  /** Bit positions to flip in a `length`-byte input: all of them when short, else both end blocks and a sample. */
  function bitsToFlip(length: number, random: () => number): number[] {
    const all = Array.from({ length: length * 8 }, (_, i) => i);
    if (length <= 40) return all;
    const ends = all.filter((i) => i < 128 || i >= length * 8 - 128);
    const sample = Array.from({ length: 64 }, () => Math.floor(random() * length * 8));
    return [...new Set([...ends, ...sample])];
  }

  function flipBit(b: Uint8Array, bit: number): Uint8Array {
    const out = b.slice();
    out[bit >> 3]! ^= 1 << (bit & 7);
    return out;
  }

  for (const msgLength of MSG_LENGTHS) {
    it(`round-trips a ${msgLength}-byte message and rejects any single flipped bit of ct, tag or ad`, () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: msgLength, maxLength: msgLength }),
          fc.uint8Array({ minLength: 0, maxLength: 48 }),
          fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
          (key, nonce, msg, ad, seed) => {
            const { ct, tag } = aegis256Encrypt(msg, ad, key, nonce);
            expect(ct.length).toBe(msg.length);
            expect(tag.length).toBe(16);
            expect(aegis256Decrypt(ct, tag, ad, key, nonce)).toEqual(msg);

            // A small deterministic generator from the fast-check seed, so a failure replays.
            let state = Math.floor(seed * 2 ** 31) | 1;
            const random = (): number => {
              state = (state * 48271) % 0x7fffffff;
              return state / 0x7fffffff;
            };
            for (const bit of bitsToFlip(ct.length, random)) {
              expect(aegis256Decrypt(flipBit(ct, bit), tag, ad, key, nonce), `ct bit ${bit}`).toBeNull();
            }
            for (const bit of bitsToFlip(tag.length, random)) {
              expect(aegis256Decrypt(ct, flipBit(tag, bit), ad, key, nonce), `tag bit ${bit}`).toBeNull();
            }
            for (const bit of bitsToFlip(ad.length, random)) {
              expect(aegis256Decrypt(ct, tag, flipBit(ad, bit), key, nonce), `ad bit ${bit}`).toBeNull();
            }
          },
        ),
        { numRuns: msgLength > 64 ? 2 : 4 },
      );
    });
  }
});
