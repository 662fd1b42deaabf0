/**
 * Software TCP segmentation as properties: any TSO super-frame (IPv4 or IPv6, 802.1Q or not, TCP options such as
 * timestamps, IPv4 options, any flags a sender puts on one) is cut into exactly the segments an independent builder
 * (test/harness/tcp-frames.ts, from the RFCs) makes for it, and every segment passes the checksum checks a receiving
 * kernel makes. With the JavaScript checksum and, when built, the native addon's. The kernel's own segmentation is
 * compared in test/netns/tcp-segments-kernel.test.ts.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TcpSegmenter } from './tcp-segments.js';
import { checksumCompleteJs, type ChecksumComplete } from './offload.js';
import { defaultCopyBytes } from './sleeve-send.js';
import { isNativeAddonBuilt, loadNative } from '../native/addon.js';
import {
  arbitraryTcpSpec,
  buildTcpFrame,
  checksumProblem,
  tcpLayout,
  tsoSuperFrame,
  type TcpFrameSpec,
} from '../test/harness/tcp-frames.js';

/** The segments RFC 793 / the kernel's GSO make of `spec` cut at `gsoSize` payload bytes. */
export function expectedSegments(spec: TcpFrameSpec, gsoSize: number): Buffer[] {
  const out: Buffer[] = [];
  const count = Math.ceil(spec.payload.length / gsoSize);
  for (let i = 0; i < count; i++) {
    let flags = spec.flags;
    if (i > 0) flags &= ~0x80;
    if (i < count - 1) flags &= ~0x09;
    out.push(
      buildTcpFrame({
        ...spec,
        payload: spec.payload.subarray(i * gsoSize, (i + 1) * gsoSize),
        seq: (spec.seq + i * gsoSize) >>> 0,
        ipId: (spec.ipId + i) & 0xffff,
        flags,
      }),
    );
  }
  return out;
}

/** `f` with a TCP checksum of 0 written as 0xffff (the same in one's complement; kernels write either). */
export function normalizeZeroChecksum(f: Buffer): Buffer {
  const t = tcpLayout(f);
  if (t && f.readUInt16BE(t.l4 + 16) === 0) f.writeUInt16BE(0xffff, t.l4 + 16);
  return f;
}

const checksums: Array<[string, ChecksumComplete]> = [['js', checksumCompleteJs]];
if (isNativeAddonBuilt()) checksums.push(['native', loadNative().checksumComplete]);

describe.each(checksums)('TcpSegmenter (%s checksums)', (_name, checksumComplete) => {
  const segmenter = new TcpSegmenter(checksumComplete);
  const out = Buffer.alloc(70_000);

  function cut(superFrame: Buffer): Buffer[] {
    const count = segmenter.parse(superFrame, 0, superFrame.length - 10);
    const segments: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const at = 7 + (i % 3); // not aligned
      const length = segmenter.writeSegment(i, out, at, defaultCopyBytes);
      expect(length).toBe(segmenter.segmentFrameBytes(i));
      expect(length).toBeLessThanOrEqual(segmenter.largestFrameBytes);
      segments.push(Buffer.from(out.subarray(at, at + length)));
    }
    return segments;
  }

  it('cuts every super-frame into the segments the RFCs define, each with valid checksums', () => {
    fc.assert(
      fc.property(arbitraryTcpSpec(9000, { vlan: true, ipv4Options: true }), fc.integer({ min: 100, max: 1500 }), (spec, gsoSize) => {
        const segments = cut(tsoSuperFrame(spec, gsoSize));
        const expected = expectedSegments(spec, gsoSize);
        expect(segments.length).toBe(expected.length);
        for (let i = 0; i < segments.length; i++) {
          expect(checksumProblem(segments[i]!)).toBe('');
          expect(normalizeZeroChecksum(segments[i]!).toString('hex')).toBe(normalizeZeroChecksum(expected[i]!).toString('hex'));
        }
      }),
      { numRuns: 150 },
    );
  });

  it('cuts a 64 KiB super-frame with timestamps into 45 segments', () => {
    fc.assert(
      fc.property(arbitraryTcpSpec(1), fc.boolean(), (spec, isV6) => {
        const full = { ...spec, isV6, payload: new Uint8Array(65_000).map((_, i) => i * 7) };
        const segments = cut(tsoSuperFrame(full, 1448));
        expect(segments.length).toBe(45);
        for (const s of segments) expect(checksumProblem(s)).toBe('');
      }),
      { numRuns: 5 },
    );
  });

  it('refuses what it does not cut (no GSO type, IPv6 extension headers, no payload, wrong IP version)', () => {
    const spec = fc.sample(arbitraryTcpSpec(3000), { seed: 7, numRuns: 1 })[0]!;
    const good = tsoSuperFrame({ ...spec, isV6: false }, 1000);
    expect(segmenter.parse(good, 0, good.length - 10)).toBe(Math.ceil(spec.payload.length / 1000));
    const noGso = Buffer.from(good);
    noGso[1] = 0;
    expect(segmenter.parse(noGso, 0, noGso.length - 10)).toBe(0);
    const v6AsV4 = Buffer.from(good);
    v6AsV4[1] = 4;
    expect(segmenter.parse(v6AsV4, 0, v6AsV4.length - 10)).toBe(0);
    const v6 = tsoSuperFrame({ ...spec, isV6: true }, 1000);
    v6[10 + 14 + 6] = 0; // hop-by-hop options header
    expect(segmenter.parse(v6, 0, v6.length - 10)).toBe(0);
    const noPayload = tsoSuperFrame({ ...spec, isV6: false, payload: new Uint8Array(0) }, 1000);
    expect(segmenter.parse(noPayload, 0, noPayload.length - 10)).toBe(0);
    const zeroSize = Buffer.from(good);
    zeroSize.writeUInt16LE(0, 4);
    expect(segmenter.parse(zeroSize, 0, zeroSize.length - 10)).toBe(0);
    expect(segmenter.parse(good, 0, 20)).toBe(0);
  });
});
