/**
 * The sleeve with offloading captures, TCP super-frames cut into TCP segments (`always`; `auto` does so for a
 * neighbour that reports loss, pieces otherwise): one segment per
 * datagram, sealed or clear, through a relay too; at the far end every segment (or the frame coalesced from them)
 * passes the checksum checks and carries the super-frame's bytes in order; a lost datagram loses one segment.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FakeClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { MemoryCapture } from './memory-capture.js';
import { MemoryUdpNetwork, MemoryUnderlay } from './memory-underlay.js';
import { Sleeve } from './sleeve.js';
import type { ForwardingSnapshot, PeerId } from './datapath.js';
import { SEGMENT_HOLD_MS, type SegmentMode } from './loss.js';
import { sealedSessionPair } from '../test/harness/sessions.js';
import { arbitraryTcpSpec, checksumProblem, tcpLayout, tsoSuperFrame, type TcpFrameSpec } from '../test/harness/tcp-frames.js';

const A = 0x0a00_0000_0001;
const B = 0x0a00_0000_0002;
const C = 0x0a00_0000_0003;

/**
 * Peers in a line, every capture with a virtio_net_hdr; `sealed[i]` seals link i-(i+1). Super-frames are always cut
 * into segments unless `mode` says otherwise.
 */
async function line(peers: PeerId[], sealed: readonly boolean[] = [], mode: SegmentMode = 'always') {
  const clock = new FakeClock();
  const network = new MemoryUdpNetwork({ clock });
  const nodes = peers.map((peer, i) => {
    const capture = new MemoryCapture({ clock }, { vnetHeaderBytes: 10, maxFrameBytes: 65_600 });
    const underlay = new MemoryUnderlay({ network }, { address: `10.0.0.${i + 1}` });
    const sleeve = new Sleeve({ capture, underlay, clock, log: silentLogger }, { segmentOffloads: mode });
    return { peer, capture, underlay, sleeve, endpoint: underlay.endpoint() };
  });
  const sessions = peers.slice(1).map((_, i) => (sealed[i] ? sealedSessionPair() : null));
  const sessionFor = (i: number, j: number) => {
    const pair = sessions[Math.min(i, j)];
    return pair ? pair[i < j ? 0 : 1] : null;
  };
  nodes.forEach((n, i) => {
    const neighbours = [nodes[i - 1], nodes[i + 1]].filter((x) => x !== undefined);
    const snapshot: ForwardingSnapshot = {
      localPeer: n.peer,
      neighbours: new Map(
        neighbours.map((x) => [x.peer, { peer: x.peer, endpoint: x.endpoint, session: sessionFor(i, nodes.indexOf(x)) }]),
      ),
      unicastNextHop: new Map(
        nodes.filter((x) => x !== n).map((x) => [x.peer, nodes.indexOf(x) < i ? nodes[i - 1]!.peer : nodes[i + 1]!.peer]),
      ),
      broadcastNextHops: new Map(
        nodes.map((root, r) => [
          root.peer,
          neighbours.filter((x) => (r <= i ? nodes.indexOf(x) > i : nodes.indexOf(x) < i) || root === n).map((x) => x.peer),
        ]),
      ),
      underlayMtuBytes: 1500,
    };
    n.sleeve.apply(snapshot);
  });
  for (const n of nodes) await n.sleeve.start();
  clock.advance(2000);
  return { clock, network, nodes };
}

/** Learn where `mac` lives: a broadcast from it injected at `node`. */
function announce(node: { capture: MemoryCapture }, mac: number): void {
  const f = Buffer.alloc(60);
  f.writeUIntBE(0xffff_ffff_ffff, 0, 6);
  f.writeUIntBE(mac, 6, 6);
  node.capture.inject(f);
}

/**
 * One TCP flow from `from`'s container (MAC `srcMac`) to `dstMac`: each call injects the next 30,000-byte super-frame
 * (gso_size 1300) at `from` and lets the sleeves run.
 */
function tcpFlow(from: { capture: MemoryCapture }, clock: FakeClock, srcMac: number, dstMac: number, fill: number): () => void {
  const payload = Buffer.alloc(30_000, fill);
  const spec: TcpFrameSpec = {
    ...{ isV6: false, vlan: null, options: new Uint8Array(0), ipv4Options: new Uint8Array(0), payload, seq: 1000, ack: 1 },
    ...{ flags: 0x10, window: 1000, ipId: 1, ttl: 64, tos: 0, flowLabel: 0, srcPort: 40000, dstPort: 5201 },
    ...{ src: new Uint8Array(16).fill(1), dst: new Uint8Array(16).fill(fill), srcMac, dstMac },
  };
  return () => {
    const frame = tsoSuperFrame(spec, 1300);
    spec.seq += payload.length;
    from.capture.inject(frame.subarray(10), frame.subarray(0, 10));
    clock.advance(1);
  };
}

/** The TCP payload bytes of the frames written, in order, each frame checked as a receiving kernel would. */
function payloadOf(written: Buffer[], headers: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  written.forEach((w, i) => {
    const t = tcpLayout(w);
    if (!t) return;
    expect(checksumProblem(completed(w, headers[i]!))).toBe('');
    parts.push(w.subarray(t.payload));
  });
  return Buffer.concat(parts);
}

/** A frame written with NEEDS_CSUM, its checksum finished as the kernel would; others unchanged. */
function completed(frame: Buffer, header: Buffer): Buffer {
  const f = Buffer.from(frame);
  if ((header[0]! & 1) === 0) return f;
  const start = header.readUInt16LE(6);
  let sum = 0;
  for (let p = start; p < f.length; p += 2) sum += (f[p]! << 8) | (p + 1 < f.length ? f[p + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff || 0xffff, start + header.readUInt16LE(8));
  return f;
}

describe('Sleeve cutting offloaded TCP frames into segments', () => {
  it('sends one segment per datagram and the far end gets the super-frame bytes, checksums valid (clear, sealed, relayed)', async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryTcpSpec(20_000), fc.constantFrom([false], [true], [false, true]), async (spec, sealed) => {
        const peers = sealed.length === 1 ? [A, B] : [A, B, C];
        const { clock, nodes } = await line(peers, sealed);
        const first = nodes[0]!;
        const last = nodes[nodes.length - 1]!;
        const macFirst = 0x02_0000_0000_0a;
        const macLast = 0x02_0000_0000_0c;
        announce(last, macLast);
        clock.advance(1);
        const frame = tsoSuperFrame({ ...spec, srcMac: macFirst, dstMac: macLast, flags: 0x10 }, 1300);
        first.capture.inject(frame.subarray(10), frame.subarray(0, 10));
        clock.advance(1);
        const segments = Math.ceil(spec.payload.length / 1300);
        expect(first.sleeve.counters()).toMatchObject({ segmented_out: 1, segments_out: segments, pieces_out: 0 });
        const w = last.capture.written;
        const headers = last.capture.writtenHeaders;
        expect(payloadOf(w, headers).equals(Buffer.from(spec.payload))).toBe(true);
        expect(last.sleeve.counters()).toMatchObject({ pieces_in: 0, frames_delivered: segments });
        // Joined again before the bridge: one super-frame with a partial checksum.
        if (segments > 1) expect(last.sleeve.counters()).toMatchObject({ coalesced_delivered: 1, segments_coalesced: segments });
        for (const n of nodes) await n.sleeve.stop();
      }),
      { numRuns: 30 },
    );
  });

  it("'auto' sends pieces until the neighbour reports lost datagrams, then segments, and pieces again once the reports stop", async () => {
    const { clock, network, nodes } = await line([A, B], [true], 'auto');
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const macA = 0x02_0000_0000_0a;
    const macB = 0x02_0000_0000_0b;
    announce(b, macB);
    clock.advance(1);
    const send = tcpFlow(a, clock, macA, macB, 7);
    send();
    expect(a.sleeve.counters()).toMatchObject({ offloaded_out: 1, segmented_out: 0 });
    expect(b.sleeve.counters()).toMatchObject({ offloaded_delivered: 1, datagrams_missed: 0 });
    // A heartbeat round without loss: acks report none, still pieces.
    clock.advance(1000);
    send();
    expect(a.sleeve.counters()).toMatchObject({ offloaded_out: 2, segmented_out: 0, loss_reports_in: 0 });
    // Loss on the way to B: one frame's pieces go missing in part; B sees the gap, its next ack reports it.
    network.lossRate = 0.3;
    send();
    network.lossRate = 0;
    send(); // its first datagram shows B the gap
    expect(b.sleeve.counters()['datagrams_missed']).toBeGreaterThan(0);
    clock.advance(1000);
    expect(a.sleeve.counters()['loss_reports_in']).toBe(1);
    const piecesBefore = a.sleeve.counters()['offloaded_out'];
    send();
    expect(a.sleeve.counters()).toMatchObject({ offloaded_out: piecesBefore, segmented_out: 1 });
    expect(a.sleeve.peerHealth().get(B)?.traffic?.dropsOut['lost']).toBeGreaterThan(0);
    // No more reports: after the hold, pieces again.
    clock.advance(SEGMENT_HOLD_MS + 1000);
    send();
    expect(a.sleeve.counters()).toMatchObject({ offloaded_out: piecesBefore + 1, segmented_out: 1, loss_reports_in: 1 });
    for (const n of nodes) await n.sleeve.stop();
  });

  it("'auto' through a relay: loss beyond the relay makes the capturing router cut segments", async () => {
    const { clock, network, nodes } = await line([A, B, C], [true, true], 'auto');
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    const macA = 0x02_0000_0000_0a;
    const macC = 0x02_0000_0000_0c;
    announce(c, macC);
    clock.advance(1);
    const send = tcpFlow(a, clock, macA, macC, 9);
    send();
    expect(c.sleeve.counters()).toMatchObject({ offloaded_delivered: 1 });
    // Loss only on the relay's link to C: A's link to B loses nothing.
    network.setLinkLoss(b.underlay.endpoint().address, c.underlay.endpoint().address, 0.3);
    send();
    network.setLinkLoss(b.underlay.endpoint().address, c.underlay.endpoint().address, 0);
    send();
    expect(b.sleeve.counters()['datagrams_missed']).toBe(0);
    expect(c.sleeve.counters()['datagrams_missed']).toBeGreaterThan(0);
    clock.advance(1000); // C reports to B; B tells A in its next ack once it relays from A into the loss
    send();
    clock.advance(1000);
    expect(a.sleeve.counters()['loss_reports_in']).toBeGreaterThan(0);
    const before = a.sleeve.counters();
    send();
    const after = a.sleeve.counters();
    expect(after['segmented_out']! - before['segmented_out']!).toBe(1);
    expect(after['offloaded_out']).toBe(before['offloaded_out']);
    expect(a.sleeve.peerHealth().get(B)?.traffic?.dropsOut['lost']).toBe(0); // B itself lost nothing of ours
    for (const n of nodes) await n.sleeve.stop();
  });
});
