/**
 * The native AEGIS-256X2 (native/src/aegis.c) against the draft's vectors (crypto/aegis256x2.ts) and, on random
 * inputs, against the slow reference written from the draft (test/harness/aegis256-reference.ts); both of its code
 * paths (256-bit VAES, and two 128-bit AES-NI lanes) when the CPU has both. Needs `npm run build:native` and a CPU
 * with AES instructions (skipped with a reason otherwise; a missing addon fails under CI).
 */
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isNativeAddonBuilt, loadNative, nativeAddonPath } from './addon.js';
import { AEGIS256X2_VECTORS, checkAegis256x2 } from '../crypto/aegis256x2.js';
import { crossCheckDataAead, type DataAead } from '../crypto/data-aead.js';
import { nativeAegis256x2 } from '../daemon/data-aead.js';
import { referenceAegis256x2 as reference } from '../test/harness/aegis256-reference.js';

const isBuilt = isNativeAddonBuilt();
if (!isBuilt && process.env.CI) throw new Error(`native addon not built at ${nativeAddonPath()}: run \`npm run build:native\``);
const detected = isBuilt ? loadNative().aegis256x2Implementation() : '';
if (detected === '') console.warn('SKIP native AEGIS-256X2 tests: addon not built or no AES instructions on this CPU');
/** Every code path this CPU can run. */
const paths = detected === 'vaes' ? (['vaes', 'aes-ni'] as const) : detected === 'aes-ni' ? (['aes-ni'] as const) : [];

for (const path of paths) {
  describe(`native AEGIS-256X2 (${path})`, () => {
    const native = loadNative();
    let aead: DataAead;
    const use = () => {
      expect(native.aegis256x2Use(path)).toBe(path);
      aead = nativeAegis256x2(native);
      expect(aead.name).toBe(path);
    };
    afterAll(() => {
      native.aegis256x2Use(detected as 'vaes' | 'aes-ni');
    });

    it('passes the known-answer tests the daemon runs, and the reference passes them too', () => {
      use();
      expect(checkAegis256x2(aead)).toBeUndefined();
      expect(checkAegis256x2(reference)).toBeUndefined();
      expect(AEGIS256X2_VECTORS.length).toBe(5);
    });

    it('passes the edge-case cross-check against the reference (lengths around blocks, memory in front)', () => {
      use();
      expect(crossCheckDataAead(aead, reference)).toBeUndefined();
    });

    it('equals the reference on random keys, nonces, AD and bodies, and each opens the other', () => {
      use();
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.uint8Array({ maxLength: 70 }),
          fc.uint8Array({ maxLength: 1600 }),
          fc.nat(7),
          (key, nonce, ad, msg, offset) => {
            const k = Buffer.from(key);
            const n = Buffer.from(nonce);
            const body = offset + ad.length;
            const a = Buffer.alloc(body + msg.length + 16 + 3);
            a.set(ad, offset);
            a.set(msg, body);
            const b = Buffer.from(a);
            expect(aead.seal(a, offset, ad.length, body, msg.length, n, k)).toBe(msg.length + 16);
            expect(reference.seal(b, offset, ad.length, body, msg.length, n, k)).toBe(msg.length + 16);
            expect(a.equals(b)).toBe(true);
            expect(reference.open(a, offset, ad.length, body, msg.length + 16, n, k)).toBe(msg.length);
            expect(aead.open(b, offset, ad.length, body, msg.length + 16, n, k)).toBe(msg.length);
            expect(b.subarray(body, body + msg.length).equals(Buffer.from(msg))).toBe(true);
            expect(a.subarray(body, body + msg.length).equals(Buffer.from(msg))).toBe(true);
          },
        ),
        { numRuns: 200 },
      );
    });

    it('refuses a datagram with any one bit flipped (AD, body or tag) and leaves no plaintext behind', () => {
      use();
      const key = Buffer.alloc(32, 7);
      const nonce = Buffer.alloc(32, 9);
      const ad = 16;
      const length = 100;
      const sealed = Buffer.alloc(ad + length + 16);
      sealed.fill(0x5a, ad, ad + length);
      aead.seal(sealed, 0, ad, ad, length, nonce, key);
      for (let bit = 0; bit < sealed.length * 8; bit += 3) {
        const b = Buffer.from(sealed);
        b[bit >> 3]! ^= 1 << (bit & 7);
        expect(aead.open(b, 0, ad, ad, length + 16, nonce, key)).toBe(-1);
        expect(b.subarray(ad, ad + length).equals(Buffer.alloc(length))).toBe(true);
      }
      expect(aead.open(Buffer.from(sealed), 0, ad, ad, length + 16, nonce, key)).toBe(length);
    });

    it('seals runs (two at a time where lengths match) to exactly the bytes of one-at-a-time seals', () => {
      use();
      fc.assert(
        fc.property(
          fc.array(fc.boolean(), { minLength: 1, maxLength: 9 }),
          fc.integer({ min: 0, max: 1500 }),
          fc.nat(1000),
          (odd, base, seq0) => {
            const key = Buffer.alloc(32, 6);
            const slot = 1600;
            const count = odd.length;
            const run = Buffer.alloc(count * slot);
            for (let i = 0; i < run.length; i++) run[i] = (i * 31 + 7) & 0xff;
            const single = Buffer.from(run);
            const offsets = new Uint32Array(count);
            const lengths = new Uint32Array(count);
            for (let i = 0; i < count; i++) {
              offsets[i] = i * slot;
              lengths[i] = odd[i] ? (base * 7 + 3) % 1500 : base;
            }
            const nonce = Buffer.alloc(32);
            nonce.writeUInt32BE(seq0, 28);
            expect(aead.sealRun!(run, offsets, lengths, count, 16, nonce, key)).toBe(count);
            for (let i = 0; i < count; i++) {
              nonce.writeUInt32BE(seq0 + i, 28);
              aead.seal(single, offsets[i]!, 16, offsets[i]! + 16, lengths[i]!, nonce, key);
            }
            expect(run.equals(single)).toBe(true);
          },
        ),
        { numRuns: 150 },
      );
    });

    it('opens runs two at a time (equal lengths) exactly as one at a time, a forgery in either slot failing alone', () => {
      use();
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(3), fc.boolean()), { minLength: 1, maxLength: 9 }),
          fc.integer({ min: 0, max: 1500 }),
          (shape, base) => {
            const key = Buffer.alloc(32, 5);
            const nonce = Buffer.alloc(32);
            const slot = 1600;
            const count = shape.length;
            const buffer = Buffer.alloc(count * slot);
            const offsets = new Uint32Array(count);
            const lengths = new Uint32Array(count);
            const seqs = new Float64Array(count);
            const plain: Buffer[] = [];
            for (let i = 0; i < count; i++) {
              const bodyLength = shape[i]![0] === 0 ? 0 : base; // mostly equal lengths, so pairs form
              offsets[i] = i * slot;
              lengths[i] = bodyLength + 16;
              seqs[i] = 1000 + i;
              buffer.fill(i + 1, offsets[i]! + 16, offsets[i]! + 16 + bodyLength);
              plain.push(Buffer.from(buffer.subarray(offsets[i]! + 16, offsets[i]! + 16 + bodyLength)));
              nonce.writeUInt32BE(1000 + i, 28);
              aead.seal(buffer, offsets[i]!, 16, offsets[i]! + 16, bodyLength, nonce, key);
              if (shape[i]![1]) buffer[offsets[i]! + 16 + (bodyLength > 0 ? bodyLength - 1 : 0)]! ^= 0x80; // forge it
            }
            const results = new Int32Array(count);
            expect(aead.openRun!(buffer, offsets, lengths, seqs, count, 16, Buffer.alloc(32), key, results)).toBe(count);
            for (let i = 0; i < count; i++) {
              const bodyLength = lengths[i]! - 16;
              expect(results[i], `datagram ${i}`).toBe(shape[i]![1] ? -1 : bodyLength);
              const body = buffer.subarray(offsets[i]! + 16, offsets[i]! + 16 + bodyLength);
              expect(body.equals(shape[i]![1] ? Buffer.alloc(bodyLength) : plain[i]!)).toBe(true);
            }
          },
        ),
        { numRuns: 150 },
      );
    });

    it('checks ranges and argument sizes', () => {
      use();
      const key = Buffer.alloc(32);
      const nonce = Buffer.alloc(32);
      const b = Buffer.alloc(64);
      expect(aead.seal(b, 0, 16, 16, 40, nonce, key)).toBe(-1); // no room for the tag
      expect(aead.open(b, 0, 16, 16, 15, nonce, key)).toBe(-1); // shorter than a tag
      expect(aead.open(b, 60, 16, 16, 16, nonce, key)).toBe(-1); // AD outside the buffer
      expect(() => aead.seal(b, 0, 16, 16, 8, Buffer.alloc(12), key)).toThrow(/32 bytes/);
    });

    it('is caught by the known-answer check when it computes something else', () => {
      use();
      const ignoresAd: DataAead = { ...aead, name: 'ignores AD', seal: (b, _ao, _al, bo, bl, n, k) => aead.seal(b, 0, 0, bo, bl, n, k) };
      expect(checkAegis256x2(ignoresAd)).toMatch(/Test Vector 2: wrong ciphertext/);
      expect(checkAegis256x2({ ...aead, cipher: 'chacha20-poly1305' })).toMatch(/not AEGIS-256X2/);
    });
  });
}

describe.runIf(paths.length === 0)('native AEGIS-256X2 (not available here)', () => {
  it('is reported as unavailable', () => {
    expect(detected).toBe('');
  });
});
