/**
 * checksumComplete (native/src/tap.c) against RFC 1071 written out here: for any frame and checksum position, the
 * covered bytes then sum, with the pseudo-header sum the field held before, to 0xffff (what a receiver checks), and
 * nothing else in the buffer changes. Needs the built addon (skipped with a
 * reason otherwise; a failure under CI).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isNativeAddonBuilt, loadNative, nativeAddonPath } from './addon.js';

const isBuilt = isNativeAddonBuilt();
if (!isBuilt) {
  const reason = `native addon not built at ${nativeAddonPath()}: run \`npm run build:native\``;
  if (process.env.CI) throw new Error(reason);
  console.warn(`SKIP checksum tests: ${reason}`);
}

/** The 16-bit one's complement sum of `b[from, to)` as big-endian words (RFC 1071), folded. */
function onesComplementSum(b: Buffer, from: number, to: number): number {
  let sum = 0;
  for (let i = from; i < to; i += 2) sum += (b[i]! << 8) | (i + 1 < to ? b[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

describe.skipIf(!isBuilt)('checksumComplete', () => {
  const native = isBuilt ? loadNative() : (undefined as never);

  it('makes the covered bytes plus the seed in the field sum to 0xffff, touching only the field (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 9100 }), fc.nat(7), fc.nat(64), (bytes, offset, start) => {
        const frame = Buffer.from(bytes);
        const csumStart = Math.min(start, frame.length - 20) & ~1; // even, as every IP header length is
        const csumOffset = 16;
        const buffer = Buffer.concat([Buffer.alloc(offset, 0xaa), frame, Buffer.alloc(3, 0xbb)]);
        const before = Buffer.from(buffer);
        const field = offset + csumStart + csumOffset;
        const seed = buffer.readUInt16BE(field); // the pseudo-header sum, as the kernel leaves it
        expect(native.checksumComplete(buffer, offset, frame.length, csumStart, csumOffset)).toBe(true);
        let total = onesComplementSum(buffer, offset + csumStart, offset + frame.length) + seed;
        while (total > 0xffff) total = (total & 0xffff) + (total >>> 16);
        expect(total).toBe(0xffff);
        expect(Buffer.concat([buffer.subarray(0, field), buffer.subarray(field + 2)])).toEqual(
          Buffer.concat([before.subarray(0, field), before.subarray(field + 2)]),
        );
      }),
      { numRuns: 300 },
    );
  });

  it('refuses offsets outside the frame and frames outside the buffer', () => {
    const b = Buffer.alloc(100);
    expect(native.checksumComplete(b, 0, 60, 50, 16)).toBe(false);
    expect(native.checksumComplete(b, 50, 60, 0, 16)).toBe(false);
    expect(b).toEqual(Buffer.alloc(100));
  });
});
