import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  aegis256Decrypt,
  aegis256Encrypt,
  aegis256UpdateForTest,
  aegis256x2Decrypt,
  aegis256x2Encrypt,
  aegis256xDecrypt,
  aegis256xEncrypt,
  aegis256xInitForTest,
  aesRound,
  referenceAegis256x2,
} from '../test/harness/aegis256-reference.js';

// The reference implementation itself lives in test/harness (it is a test model, not weft code); this file checks it
// against draft-irtf-cfrg-aegis-aead, appendix "Test Vectors", before the native AEGIS-256 and AEGIS-256X2 are tested
// against it.

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

/** A small deterministic generator from a fast-check double in [0, 1), so a failure replays. */
function seededRandom(seed: number): () => number {
  let state = Math.floor(seed * 2 ** 31) | 1;
  return () => {
    state = (state * 48271) % 0x7fffffff;
    return state / 0x7fffffff;
  };
}

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

            const random = seededRandom(seed);
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

// ---------------------------------------------------------------------------------------------------------------
// AEGIS-256X (the draft's "Parallel Modes"), above all AEGIS-256X2 (degree D = 2).

const KEY_X = '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f';
const NONCE_X = '101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f';
/** The message of test vector 2 of both AEGIS-256X2 and AEGIS-256X4: 04050607 thirty times (120 bytes). */
const MSG_X_TV2 = '04050607'.repeat(30);

/**
 * The draft's "AEGIS-256X2 Test Vectors" / "Initial State" (also test-vectors/aegis-256x2-test-vectors.json):
 * `after[j][i]` is V[j,i] after Init. Its ctx[0] = 00010000..., ctx[1] = 01010000... are internal to Init and
 * checked through this state.
 */
const X2_INITIAL_STATE = {
  key: KEY_X,
  nonce: NONCE_X,
  after: [
    ['eca2bf4538442e8712d4972595744039', '201405efa9264f07911db58101903087'],
    ['3e536a998799408a97f3479a6f779d48', '0d79a7d822a5d215f78c3bf2feb33ae1'],
    ['cf8c63d6f2b4563cdd9231107c85950e', '78d17ed7d8d563ff11bd202c76864839'],
    ['d7e0707e6bfbbad913bc94b6993a9fa0', '097e4b1bff40d4c19cb29dfd125d62f2'],
    ['a373cf6d537dd66bc0ef0f2f9285359f', 'c0d0ae0c48f9df3faaf0e7be7768c326'],
    ['9f76560dcae1efacabdcce446ae283bc', 'bd52a6b9c8f976a26ec1409df19e8bfe'],
  ],
};

/** The draft's AEGIS-256X2 test vectors 1 and 2 (tag256 not used). */
const X2_VALID_VECTORS: Record<string, ValidVector> = {
  'Test Vector 1': { key: KEY_X, nonce: NONCE_X, ad: '', msg: '', ct: '', tag128: '62cdbab084c83dacdb945bb446f049c8' },
  'Test Vector 2': {
    key: KEY_X,
    nonce: NONCE_X,
    ad: '0102030401020304',
    msg: MSG_X_TV2,
    ct:
      '72120c2ea8236180d67859001f4729077b7064c414384fe3a7b52f1571f4f8a7d0f01e18db4f3bc0adb150702e5d147a' +
      '8d36522132761b994c1bd395589e2ccf0790dfe2a3d12d61cd666b2859827739db4037dd3124c78424459376f6cac08e' +
      '1a7223a2a43e398ce6385cd654a19f481cba3b8f25910b42',
    tag128: '635d391828520bf1512763f0c8f5cdbd',
  },
};

/**
 * The draft has no AEGIS-256X2 vectors that must fail, so these are made from X2 test vector 2 the way the draft's
 * AEGIS-256 vectors 6 to 9 are made from its vector 4: key and nonce swapped, last ciphertext bit flipped,
 * associated data changed, last tag bit flipped.
 */
const X2_TV2 = X2_VALID_VECTORS['Test Vector 2']!;
const X2_FAILING_VECTORS: Record<string, Vector> = {
  'key and nonce swapped': { ...X2_TV2, key: X2_TV2.nonce, nonce: X2_TV2.key },
  'last ciphertext bit flipped': { ...X2_TV2, ct: X2_TV2.ct.slice(0, -2) + '43' },
  'associated data changed': { ...X2_TV2, ad: '0102030401020305' },
  'last tag bit flipped': { ...X2_TV2, tag128: X2_TV2.tag128.slice(0, -2) + 'bc' },
};

/** The draft's "AEGIS-256X4 Test Vectors" (degree 4): initial state and test vectors 1 and 2. */
const X4_INITIAL_STATE = {
  key: KEY_X,
  nonce: NONCE_X,
  after: [
    [
      '482a86e8436cd2361063a4b2702769b9',
      'd95a2be81c9245b22996f68eea0122f9',
      '0c2a3b348b1a5e256c6751377318c41e',
      'f64436a21653fe7cf2e0829a177db383',
    ],
    [
      'e705e8866267717d96092e58e78b574c',
      'd1dd412142df9806cc267af2fe1d830e',
      '30e7dfd3c9941b8394e95bdf5bac99d9',
      '9f27186f8a4fab86820689822c3c74d2',
    ],
    [
      'e1aa6af5d9e31dde8d94a48a0810fa89',
      '63555cdf0d98f18fb75b029ad80786c0',
      'a3ee0e4a3429a9539e4fcec385475608',
      '28ea527d31ef61df498dc107fe02df99',
    ],
    [
      '37f06808410c8f3954525ae44584d3be',
      '8fcc23bca2fe2209f93d34e2da35b33d',
      '33156347df89eaa69ab11096362daccf',
      'bbe58d9dbe8c5b0469be5a87086db5d4',
    ],
    [
      'd1c9eb37fecbc5ada7b351fa4f501f32',
      '0b9b803283c1538628b507c8f6432434',
      'bfb8b6d4f87cce28825c7e92f54b8728',
      '8917bb5b09c32f900c6a5a1d63c46264',
    ],
    [
      '4f6110c2ef0c3c687e90c1e5532ddf8e',
      '031bd85d99f64684d23728a0453c72a1',
      '10bc7ec34d4119b5bdeb6c7dfc458247',
      '591ece530aeaa5c9867220156f5c25e3',
    ],
  ],
};

const X4_VALID_VECTORS: Record<string, ValidVector> = {
  'Test Vector 1': { key: KEY_X, nonce: NONCE_X, ad: '', msg: '', ct: '', tag128: '3b7fee6cee7bf17888ad11ed2397beb4' },
  'Test Vector 2': {
    key: KEY_X,
    nonce: NONCE_X,
    ad: '0102030401020304',
    msg: MSG_X_TV2,
    ct:
      'bfc2085b7e8017da99b0b6d646ae4d01f4ba8f2e7dfca1d759ae48a135139b9aaac6b4f5db810d426be1fdaff4e14541' +
      '53a34b11da78ed7e418ee2ee9853042e95536aecbb694cea1b16a478eb0d4d1bf6509b1ce652a45af58e0e46ffccfa2d' +
      '0426e702391d2ff5813808b81748a490dd656465fed61f09',
    tag128: 'b63b611b13975e2f3dc3cb6c2397bfcd',
  },
};

describe('AEGIS-256X2 reference', () => {
  it('matches the draft AEGIS-256X2 initial state (V[j,i] after Init)', () => {
    const v = aegis256xInitForTest(2, bytes(X2_INITIAL_STATE.key), bytes(X2_INITIAL_STATE.nonce));
    expect(v.map((row) => row.map(hex))).toEqual(X2_INITIAL_STATE.after);
  });

  for (const [name, v] of Object.entries(X2_VALID_VECTORS)) {
    it(`encrypts and decrypts draft AEGIS-256X2 ${name} with a 128-bit tag`, () => {
      const { ct, tag } = aegis256x2Encrypt(bytes(v.msg), bytes(v.ad), bytes(v.key), bytes(v.nonce));
      expect(hex(ct)).toBe(v.ct);
      expect(hex(tag)).toBe(v.tag128);
      const msg = aegis256x2Decrypt(bytes(v.ct), bytes(v.tag128), bytes(v.ad), bytes(v.key), bytes(v.nonce));
      expect(msg).not.toBeNull();
      expect(hex(msg!)).toBe(v.msg);
      // The generic entry points with D = 2 are the same function.
      expect(hex(aegis256xEncrypt(2, bytes(v.msg), bytes(v.ad), bytes(v.key), bytes(v.nonce)).tag)).toBe(v.tag128);
      expect(hex(aegis256xDecrypt(2, bytes(v.ct), bytes(v.tag128), bytes(v.ad), bytes(v.key), bytes(v.nonce))!)).toBe(v.msg);
    });
  }

  for (const [name, v] of Object.entries(X2_FAILING_VECTORS)) {
    it(`rejects AEGIS-256X2 test vector 2 with ${name}`, () => {
      expect(aegis256x2Decrypt(bytes(v.ct), bytes(v.tag128), bytes(v.ad), bytes(v.key), bytes(v.nonce))).toBeNull();
    });
  }

  it('rejects the AEGIS-256X2 vectors under degrees 1 and 4 (the degree is bound into every lane by ctx)', () => {
    for (const v of Object.values(X2_VALID_VECTORS)) {
      for (const degree of [1, 4]) {
        expect(aegis256xDecrypt(degree, bytes(v.ct), bytes(v.tag128), bytes(v.ad), bytes(v.key), bytes(v.nonce))).toBeNull();
      }
    }
  });

  it('matches the draft AEGIS-256X4 initial state and test vectors 1 and 2 (degree 4)', () => {
    const state = aegis256xInitForTest(4, bytes(X4_INITIAL_STATE.key), bytes(X4_INITIAL_STATE.nonce));
    expect(state.map((row) => row.map(hex))).toEqual(X4_INITIAL_STATE.after);
    for (const v of Object.values(X4_VALID_VECTORS)) {
      const { ct, tag } = aegis256xEncrypt(4, bytes(v.msg), bytes(v.ad), bytes(v.key), bytes(v.nonce));
      expect(hex(ct)).toBe(v.ct);
      expect(hex(tag)).toBe(v.tag128);
      expect(hex(aegis256xDecrypt(4, bytes(v.ct), bytes(v.tag128), bytes(v.ad), bytes(v.key), bytes(v.nonce))!)).toBe(v.msg);
    }
  });

  it('with degree 1 equals AEGIS-256 (the draft vectors and random inputs)', () => {
    for (const v of Object.values(VALID_VECTORS)) {
      const { ct, tag } = aegis256xEncrypt(1, bytes(v.msg), bytes(v.ad), bytes(v.key), bytes(v.nonce));
      expect(hex(ct)).toBe(v.ct);
      expect(hex(tag)).toBe(v.tag128);
    }
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 0, maxLength: 100 }),
        fc.uint8Array({ minLength: 0, maxLength: 70 }),
        (key, nonce, msg, ad) => {
          const x1 = aegis256xEncrypt(1, msg, ad, key, nonce);
          const plain = aegis256Encrypt(msg, ad, key, nonce);
          expect(hex(x1.ct)).toBe(hex(plain.ct));
          expect(hex(x1.tag)).toBe(hex(plain.tag));
          expect(aegis256xDecrypt(1, plain.ct, plain.tag, ad, key, nonce)).toEqual(msg);
          expect(aegis256Decrypt(x1.ct, x1.tag, ad, key, nonce)).toEqual(msg);
        },
      ),
      { numRuns: 25 },
    );
  });

  it('throws RangeError for a degree, key or nonce out of range', () => {
    const empty = new Uint8Array(0);
    const k = new Uint8Array(32);
    for (const degree of [0, -1, 1.5, 257, Number.NaN]) {
      expect(() => aegis256xEncrypt(degree, empty, empty, k, k)).toThrow(RangeError);
      expect(() => aegis256xDecrypt(degree, empty, new Uint8Array(16), empty, k, k)).toThrow(RangeError);
      expect(() => aegis256xInitForTest(degree, k, k)).toThrow(RangeError);
    }
    for (const wrong of [0, 16, 31, 33]) {
      expect(() => aegis256x2Encrypt(empty, empty, new Uint8Array(wrong), k)).toThrow(RangeError);
      expect(() => aegis256x2Encrypt(empty, empty, k, new Uint8Array(wrong))).toThrow(RangeError);
      expect(() => aegis256x2Decrypt(empty, new Uint8Array(16), empty, new Uint8Array(wrong), k)).toThrow(RangeError);
      expect(() => aegis256x2Decrypt(empty, new Uint8Array(16), empty, k, new Uint8Array(wrong))).toThrow(RangeError);
    }
  });

  it('returns null for a tag that is not 16 bytes', () => {
    const v = X2_TV2;
    const tag = bytes(v.tag128);
    for (const wrong of [tag.subarray(0, 15), new Uint8Array(0), Uint8Array.from([...tag, 0])]) {
      expect(aegis256x2Decrypt(bytes(v.ct), wrong, bytes(v.ad), bytes(v.key), bytes(v.nonce))).toBeNull();
    }
  });

  it('as a DataAead seals and opens test vector 2 in place', () => {
    expect(referenceAegis256x2.cipher).toBe('aegis-256x2');
    expect(referenceAegis256x2.nonceBytes).toBe(32);
    const v = X2_TV2;
    const ad = bytes(v.ad);
    const msg = bytes(v.msg);
    // [3 spare][ad][msg][tag][2 spare]
    const buffer = Buffer.alloc(3 + ad.length + msg.length + 16 + 2);
    buffer.set(ad, 3);
    const bodyOffset = 3 + ad.length;
    buffer.set(msg, bodyOffset);
    const key = Buffer.from(v.key, 'hex');
    const nonce = Buffer.from(v.nonce, 'hex');
    expect(referenceAegis256x2.seal(buffer, 3, ad.length, bodyOffset, msg.length, nonce, key)).toBe(msg.length + 16);
    expect(hex(buffer.subarray(bodyOffset, bodyOffset + msg.length))).toBe(v.ct);
    expect(hex(buffer.subarray(bodyOffset + msg.length, bodyOffset + msg.length + 16))).toBe(v.tag128);
    expect(referenceAegis256x2.open(buffer, 3, ad.length, bodyOffset, msg.length + 16, nonce, key)).toBe(msg.length);
    expect(hex(buffer.subarray(bodyOffset, bodyOffset + msg.length))).toBe(v.msg);
    buffer[bodyOffset + msg.length + 15]! ^= 1;
    expect(referenceAegis256x2.open(buffer, 3, ad.length, bodyOffset, msg.length + 16, nonce, key)).toBe(-1);
  });

  const X2_MSG_LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1440];

  for (const msgLength of X2_MSG_LENGTHS) {
    it(`round-trips a ${msgLength}-byte message and rejects any single flipped bit of ct, tag or ad`, () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: msgLength, maxLength: msgLength }),
          fc.uint8Array({ minLength: 0, maxLength: 70 }),
          fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
          (key, nonce, msg, ad, seed) => {
            const { ct, tag } = aegis256x2Encrypt(msg, ad, key, nonce);
            expect(ct.length).toBe(msg.length);
            expect(tag.length).toBe(16);
            expect(aegis256x2Decrypt(ct, tag, ad, key, nonce)).toEqual(msg);

            const random = seededRandom(seed);
            for (const bit of bitsToFlip(ct.length, random)) {
              expect(aegis256x2Decrypt(flipBit(ct, bit), tag, ad, key, nonce), `ct bit ${bit}`).toBeNull();
            }
            for (const bit of bitsToFlip(tag.length, random)) {
              expect(aegis256x2Decrypt(ct, flipBit(tag, bit), ad, key, nonce), `tag bit ${bit}`).toBeNull();
            }
            for (const bit of bitsToFlip(ad.length, random)) {
              expect(aegis256x2Decrypt(ct, tag, flipBit(ad, bit), key, nonce), `ad bit ${bit}`).toBeNull();
            }
          },
        ),
        { numRuns: msgLength > 64 ? 1 : 2 },
      );
    });
  }
});
