/**
 * Software TCP coalescing as properties: the segments of any super-frame (IPv4 or IPv6, 802.1Q, TCP options with
 * timestamps, any flags), some lost, some flows interleaved, go in; what comes out for the bridge passes the checksum
 * checks a kernel makes (a coalesced frame's partial checksum finished as the kernel would) and, cut again into
 * segments the way the kernel's GSO would, gives back exactly the segments that went in, in order.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TcpCoalescer } from './tcp-coalesce.js';
import { TcpSegmenter } from './tcp-segments.js';
import { checksumCompleteJs, isSaneVnetHeader, isVnetHeaderForFrame, type ChecksumComplete } from './offload.js';
import { defaultCopyBytes } from './sleeve-send.js';
import { newCounters } from './sleeve-counters.js';
import { MemoryCapture } from './memory-capture.js';
import { FakeClock } from '../runtime/clock.js';
import { isNativeAddonBuilt, loadNative } from '../native/addon.js';
import { arbitraryTcpSpec, checksumProblem, tcpLayout, tsoSuperFrame, type TcpFrameSpec } from '../test/harness/tcp-frames.js';

const checksums: Array<[string, ChecksumComplete]> = [['js', checksumCompleteJs]];
if (isNativeAddonBuilt()) checksums.push(['native', loadNative().checksumComplete]);

function normalized(f: Buffer): string {
  const c = Buffer.from(f);
  const t = tcpLayout(c);
  if (t && c.readUInt16BE(t.l4 + 16) === 0) c.writeUInt16BE(0xffff, t.l4 + 16);
  return c.toString('hex');
}

describe.each(checksums)('TcpCoalescer (%s checksums)', (_name, checksumComplete) => {
  const segmenter = new TcpSegmenter(checksumComplete);

  function segmentsOf(spec: TcpFrameSpec, gsoSize: number): Buffer[] {
    const frame = tsoSuperFrame(spec, gsoSize);
    const count = segmenter.parse(frame, 0, frame.length - 10);
    const out = Buffer.alloc(2000);
    const segments: Buffer[] = [];
    for (let i = 0; i < count; i++) segments.push(Buffer.from(out.subarray(0, segmenter.writeSegment(i, out, 0, defaultCopyBytes))));
    return segments;
  }

  function setup(flows = 8) {
    const capture = new MemoryCapture({ clock: new FakeClock() }, { vnetHeaderBytes: 10, maxFrameBytes: 65_600 });
    const counters = newCounters();
    const coalescer = new TcpCoalescer({ capture, counters, checksumComplete, copyBytes: defaultCopyBytes }, { coalesceFlows: flows });
    return { capture, counters, coalescer };
  }

  /** Deliver each frame at an odd offset in a bigger buffer (as in a datagram), then flush. */
  function deliverAll(coalescer: TcpCoalescer, frames: Buffer[]): void {
    const buf = Buffer.alloc(4000);
    for (const f of frames) {
      f.copy(buf, 37);
      coalescer.deliver(buf, 37, f.length);
    }
    coalescer.flush();
  }

  /** What the bridge got, each frame checked and cut back into the segments the kernel would make of it. */
  function resegmented(capture: MemoryCapture): Buffer[] {
    const out: Buffer[] = [];
    capture.written.forEach((frame, i) => {
      const header = capture.writtenHeaders[i]!;
      if (header[1] === 0) {
        expect(header.equals(Buffer.alloc(10))).toBe(true);
        expect(checksumProblem(frame)).toBe('');
        out.push(frame);
        return;
      }
      const whole = Buffer.concat([header, frame]);
      expect(isSaneVnetHeader(whole, 0, frame.length)).toBe(true);
      expect(isVnetHeaderForFrame(whole, 0, frame.length)).toBe(true);
      // The kernel finishes the partial checksum of the whole frame: it must then be right.
      const finished = Buffer.from(frame);
      checksumCompleteJs(finished, 0, finished.length, header.readUInt16LE(6), header.readUInt16LE(8));
      expect(checksumProblem(finished)).toBe('');
      const count = segmenter.parse(whole, 0, frame.length);
      expect(count).toBeGreaterThan(1);
      const o = Buffer.alloc(2000);
      for (let k = 0; k < count; k++) out.push(Buffer.from(o.subarray(0, segmenter.writeSegment(k, o, 0, defaultCopyBytes))));
    });
    return out;
  }

  it('joins the segments of a super-frame back into frames that give the same segments (IPv4/IPv6, options, flags)', () => {
    fc.assert(
      fc.property(arbitraryTcpSpec(20_000, { vlan: true }), fc.integer({ min: 200, max: 1460 }), (spec, gsoSize) => {
        const segments = segmentsOf(spec, gsoSize);
        const { capture, counters, coalescer } = setup();
        deliverAll(coalescer, segments);
        expect(resegmented(capture).map(normalized)).toEqual(segments.map(normalized));
        expect(counters.frames_delivered).toBe(segments.length);
        // Plain ACK/PSH segments join: at most a CWR first and a FIN last stay apart.
        if (segments.length > 3) expect(capture.written.length).toBeLessThanOrEqual(3 + Math.floor((spec.payload.length + 0) / 60_000));
      }),
      { numRuns: 60 },
    );
  });

  it('with segments lost, what comes out is the segments that came, in order, and the gaps are counted', () => {
    fc.assert(
      fc.property(
        arbitraryTcpSpec(20_000),
        fc.integer({ min: 200, max: 1460 }),
        fc.array(fc.boolean(), { minLength: 200, maxLength: 200 }),
        (spec, gsoSize, kept) => {
          const segments = segmentsOf({ ...spec, flags: 0x10 }, gsoSize);
          const arrived = segments.filter((_, i) => kept[i]);
          const { capture, counters, coalescer } = setup();
          deliverAll(coalescer, arrived);
          expect(resegmented(capture).map(normalized)).toEqual(arrived.map(normalized));
          const gaps = segments.filter((_, i) => i > 0 && kept[i] && !kept[i - 1] && segments.slice(0, i).some((__, j) => kept[j])).length;
          expect(counters.segment_gaps).toBe(gaps);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keeps interleaved flows apart and each in order; with fewer slots than flows too', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(arbitraryTcpSpec(8000), fc.integer({ min: 200, max: 1460 })), { minLength: 2, maxLength: 5 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 0, max: 1000 }),
        (flows, slots, seed) => {
          const perFlow = flows.map(([spec, gso], i) => segmentsOf({ ...spec, srcPort: 1000 + i, dstPort: 80, flags: 0x10 }, gso));
          // Interleave by a simple seeded walk, keeping each flow's order.
          const next = perFlow.map(() => 0);
          const mixed: Buffer[] = [];
          let r = seed;
          for (;;) {
            const open = next.map((n, i) => (n < perFlow[i]!.length ? i : -1)).filter((i) => i >= 0);
            if (open.length === 0) break;
            r = (r * 1103515245 + 12345) & 0x7fffffff;
            const i = open[r % open.length]!;
            mixed.push(perFlow[i]![next[i]!++]!);
          }
          const { capture, coalescer } = setup(slots);
          deliverAll(coalescer, mixed);
          const out = resegmented(capture);
          perFlow.forEach((segments, i) => {
            const mine = out.filter((f) => f.readUInt16BE(tcpLayout(f)!.l4) === 1000 + i);
            expect(mine.map(normalized)).toEqual(segments.map(normalized));
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  it('never hides a segment with a wrong checksum in a coalesced frame: it goes to the kernel as it came', () => {
    const spec = fc.sample(arbitraryTcpSpec(6000), { seed: 3, numRuns: 1 })[0]!;
    const segments = segmentsOf({ ...spec, payload: new Uint8Array(6000).fill(9), flags: 0x10 }, 1000);
    const bad = Buffer.from(segments[2]!);
    bad[bad.length - 1] ^= 0x40;
    const { capture, counters, coalescer } = setup();
    deliverAll(coalescer, [segments[0]!, segments[1]!, bad, segments[3]!]);
    expect(capture.written.some((f) => f.equals(bad))).toBe(true);
    expect(counters.frames_delivered).toBe(4);
    expect(counters.coalesced_delivered).toBe(1);
  });

  it('writes every frame as it comes without a virtio_net_hdr on the capture, or with no flows', () => {
    const spec = fc.sample(arbitraryTcpSpec(6000), { seed: 4, numRuns: 1 })[0]!;
    const segments = segmentsOf({ ...spec, payload: new Uint8Array(5000), flags: 0x10 }, 1000);
    for (const [vnet, flows] of [
      [0, 8],
      [10, 0],
    ] as const) {
      const capture = new MemoryCapture({ clock: new FakeClock() }, { vnetHeaderBytes: vnet, maxFrameBytes: 65_600 });
      const coalescer = new TcpCoalescer(
        { capture, counters: newCounters(), checksumComplete, copyBytes: defaultCopyBytes },
        { coalesceFlows: flows },
      );
      deliverAll(coalescer, segments);
      expect(capture.written.map(normalized)).toEqual(segments.map(normalized));
    }
  });
});
