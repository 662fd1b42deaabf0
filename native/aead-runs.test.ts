/**
 * The run calls of both native AEADs (native/src/aead-calls.c) with hostile arguments: offsets and lengths past the
 * buffer, counts past the arrays, seqs that are not u53, wrong array types. Each must be refused (-1, or a
 * TypeError for a wrong type) without touching the buffer; in-range runs must succeed. A bounds bug here would
 * corrupt memory or crash the daemon, so this is property-tested on random shapes.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isNativeAddonBuilt, loadNative } from './addon.js';

const isBuilt = isNativeAddonBuilt();
const native = isBuilt ? loadNative() : undefined;
const ciphers = !native
  ? []
  : [
      { name: 'ChaCha20-Poly1305', nonceBytes: 12, seal: native.aeadSealRun, open: native.aeadOpenRun },
      ...(native.aegis256x2Implementation() !== ''
        ? [{ name: 'AEGIS-256X2', nonceBytes: 32, seal: native.aegis256x2SealRun, open: native.aegis256x2OpenRun }]
        : []),
    ];

for (const c of ciphers) {
  describe(`native ${c.name} runs with hostile arguments`, () => {
    it('refuse any datagram outside the buffer and leave the buffer untouched; in-range runs work', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: 3000 }),
          fc.array(fc.tuple(fc.integer({ min: 0, max: 4000 }), fc.integer({ min: 0, max: 4000 })), { maxLength: 8 }),
          fc.integer({ min: 0, max: 40 }),
          (size, shape, adLength) => {
            const buffer = Buffer.alloc(size, 0x5a);
            const before = Buffer.from(buffer);
            const count = shape.length;
            const offsets = new Uint32Array(shape.map(([o]) => o));
            const lengths = new Uint32Array(shape.map(([, l]) => l));
            const fits = shape.every(([o, l]) => o + adLength + l + 16 <= size);
            const key = Buffer.alloc(32, 1);
            const nonce = Buffer.alloc(c.nonceBytes);
            const sealed = c.seal(buffer, offsets, lengths, count, adLength, nonce, key);
            expect(sealed).toBe(fits ? count : -1);
            if (!fits) expect(buffer.equals(before)).toBe(true);
            const openable = shape.every(([o, l]) => o + adLength + l <= size);
            const results = new Int32Array(count);
            const copy = Buffer.from(buffer);
            const opened = c.open(buffer, offsets, lengths, new Float64Array(count), count, adLength, nonce, key, results);
            expect(opened).toBe(openable ? count : -1);
            if (!openable) expect(buffer.equals(copy)).toBe(true);
          },
        ),
        { numRuns: 400 },
      );
    });

    it('refuse counts past the arrays, seqs that are not u53, and arrays of the wrong type', () => {
      const buffer = Buffer.alloc(4096);
      const key = Buffer.alloc(32);
      const nonce = Buffer.alloc(c.nonceBytes);
      const offsets = new Uint32Array([0, 2000]);
      const lengths = new Uint32Array([100, 100]);
      expect(() => c.seal(buffer, offsets, lengths, 3, 16, nonce, key)).toThrow(/count is larger than an array/);
      const results = new Int32Array(2);
      for (const bad of [-1, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(c.open(buffer, offsets, new Uint32Array([116, 116]), new Float64Array([0, bad]), 2, 16, nonce, key, results)).toBe(-1);
      }
      expect(() =>
        c.open(buffer, offsets, lengths, new Float64Array(2), 2, 16, nonce, key, new Uint32Array(2) as unknown as Int32Array),
      ).toThrow(/results must be an Int32Array/);
      expect(() => c.seal(buffer, new Int32Array(2) as unknown as Uint32Array, lengths, 2, 16, nonce, key)).toThrow(TypeError);
      expect(() => c.seal(buffer, offsets, lengths, 2, 16, Buffer.alloc(c.nonceBytes + 1), key)).toThrow(/nonce/);
    });
  });
}

describe.runIf(!isBuilt)('native AEAD runs (addon not built)', () => {
  it('is skipped', () => {
    expect(isBuilt).toBe(false);
  });
});
