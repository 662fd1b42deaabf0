/**
 * The sleeve with offloading captures (MemoryCapture with a virtio_net_hdr, as a TAP opened with offloads): TCP
 * super-frames go across in pieces and come out whole with their header, through a relay too; a lost piece loses
 * its frame only; partial checksums of ordinary frames are finished before they leave.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { MemoryCapture } from './memory-capture.js';
import { MemoryUdpNetwork, MemoryUnderlay } from './memory-underlay.js';
import { Sleeve, type SleeveOptions } from './sleeve.js';
import type { ForwardingSnapshot, PeerId } from './datapath.js';
import { checksumCompleteJs, isVnetHeaderForFrame, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6 } from './offload.js';
import { MessageType } from './sleeve-format.js';
import { sealedSessionPair } from '../test/harness/sessions.js';

const A = 0x0a00_0000_0001;
const B = 0x0a00_0000_0002;
const C = 0x0a00_0000_0003;
const MAC = { a: 0x02_0000_0000_0a, b: 0x02_0000_0000_0b, c: 0x02_0000_0000_0c };

/** An Ethernet + IPv4 + TCP super-frame of `length` bytes, payload patterned by `seed`. */
function superFrame(dst: number, src: number, length: number, seed: number): Buffer {
  const f = Buffer.alloc(length);
  f.writeUIntBE(dst, 0, 6);
  f.writeUIntBE(src, 6, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f[23] = 6; // TCP
  f[46] = 0x50; // TCP data offset: a 20-byte header
  for (let i = 54; i < length; i++) f[i] = (i * 31 + seed) & 255;
  return f;
}

/** A virtio_net_hdr: NEEDS_CSUM at the TCP checksum (34 + 16), TCPv4 segments of 1360 bytes. */
function tsoHeader(): Buffer {
  const h = Buffer.alloc(10);
  h[0] = VNET_F_NEEDS_CSUM;
  h[1] = VNET_GSO_TCPV4;
  h.writeUInt16LE(54, 2);
  h.writeUInt16LE(1360, 4);
  h.writeUInt16LE(34, 6);
  h.writeUInt16LE(16, 8);
  return h;
}

function broadcastFrom(src: number): Buffer {
  const f = Buffer.alloc(60);
  f.writeUIntBE(0xffff_ffff_ffff, 0, 6);
  f.writeUIntBE(src, 6, 6);
  return f;
}

/** Peers in a line a - b - c (a and c are not neighbours), every capture with offloads; `sealed[i]` seals link i-(i+1). */
async function line(peers: PeerId[], sealed: boolean[] = [], options: SleeveOptions = {}, vnetOf: (i: number) => number = () => 10) {
  const clock = new FakeClock();
  const network = new MemoryUdpNetwork({ clock });
  const nodes = peers.map((peer, i) => {
    const capture = new MemoryCapture({ clock }, { vnetHeaderBytes: vnetOf(i), maxFrameBytes: 65_600 });
    const underlay = new MemoryUnderlay({ network }, { address: `10.0.0.${i + 1}` });
    // Pieces (the path for offloaded frames that are not cut into TCP segments, and from older peers).
    const sleeve = new Sleeve({ capture, underlay, clock, log: silentLogger }, { segmentOffloads: false, ...options });
    return { peer, capture, underlay, sleeve, endpoint: underlay.endpoint() };
  });
  // One session pair per sealed link: [the left peer's session, the right peer's session].
  const sessions = peers.slice(1).map((_, i) => (sealed[i] ? sealedSessionPair() : null));
  const sessionFor = (i: number, j: number) => {
    const pair = sessions[Math.min(i, j)];
    return pair ? pair[i < j ? 0 : 1] : null;
  };
  nodes.forEach((n, i) => {
    const left = nodes[i - 1];
    const right = nodes[i + 1];
    const neighbours = [left, right].filter((x) => x !== undefined);
    const snapshot: ForwardingSnapshot = {
      localPeer: n.peer,
      neighbours: new Map(
        neighbours.map((x) => [x.peer, { peer: x.peer, endpoint: x.endpoint, session: sessionFor(i, nodes.indexOf(x)) }]),
      ),
      unicastNextHop: new Map(nodes.filter((x) => x !== n).map((x) => [x.peer, nodes.indexOf(x) < i ? left!.peer : right!.peer])),
      // Broadcast trees along the line: each peer floods away from the root.
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

describe('Sleeve with offloads', () => {
  it('carries a 60 KB TCP super-frame in pieces and writes it whole, header included', async () => {
    const { clock, nodes } = await line([A, B]);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.capture.inject(broadcastFrom(MAC.b)); // a learns where MAC.b lives
    clock.advance(1);
    const f = superFrame(MAC.b, MAC.a, 60_000, 1);
    a.capture.inject(f, tsoHeader());
    clock.advance(1);
    const delivered = b.capture.written.findIndex((w) => w.length === f.length);
    expect(delivered).toBeGreaterThanOrEqual(0);
    expect(b.capture.written[delivered]!.equals(f)).toBe(true);
    expect(b.capture.writtenHeaders[delivered]).toEqual(tsoHeader());
    // Pieces leave room for a tag even on a clear hop: 1500 - IP/UDP - header - tag - piece header.
    const pieces = Math.ceil(60_000 / (1500 - 28 - 16 - 16 - 34));
    expect(a.sleeve.counters()).toMatchObject({ offloaded_out: 1, pieces_out: pieces });
    expect(b.sleeve.counters()).toMatchObject({ pieces_in: pieces, offloaded_delivered: 1, drop_piece_gap: 0 });
  });

  it('cuts a super-frame joined from pieces into TCP segments for a capture without offloads (pcap)', async () => {
    const { clock, nodes } = await line([A, B], [], {}, (i) => (i === 1 ? 0 : 10));
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.capture.inject(broadcastFrom(MAC.b));
    clock.advance(1);
    const f = superFrame(MAC.b, MAC.a, 60_000, 3);
    a.capture.inject(f, tsoHeader());
    clock.advance(1);
    const segments = b.capture.written.filter((w) => w.length > 60);
    expect(segments).toHaveLength(Math.ceil((60_000 - 54) / 1360));
    for (const seg of segments) {
      expect(seg.length).toBeLessThanOrEqual(54 + 1360);
      // The TCP checksum verifies: the one's complement sum over pseudo-header and segment is all ones.
      let sum = 6 + seg.length - 34;
      for (let p = 26; p < 34; p += 2) sum += seg.readUInt16BE(p);
      for (let p = 34; p < seg.length; p += 2) sum += p + 1 < seg.length ? seg.readUInt16BE(p) : seg[p]! << 8;
      while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
      expect(sum).toBe(0xffff);
    }
    expect(Buffer.concat(segments.map((w) => w.subarray(54))).equals(f.subarray(54))).toBe(true);
    expect(b.sleeve.counters()).toMatchObject({ offloaded_segmented: 1, offloaded_delivered: 0, drop_offload_unsupported: 0 });
  });

  it('relays pieces through a middle peer without joining them there', async () => {
    const { clock, nodes } = await line([A, B, C]);
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    c.capture.inject(broadcastFrom(MAC.c));
    clock.advance(1);
    expect(a.sleeve.macEntries().find((e) => e.mac === MAC.c)?.peer).toBe(C);
    const f = superFrame(MAC.c, MAC.a, 30_001, 2);
    a.capture.inject(f, tsoHeader());
    clock.advance(1);
    expect(c.capture.written.some((w) => w.equals(f))).toBe(true);
    expect(b.capture.written.some((w) => w.length === f.length)).toBe(false);
    expect(b.sleeve.counters().pieces_forwarded).toBe(a.sleeve.counters().pieces_out);
    expect(c.sleeve.counters().offloaded_delivered).toBe(1);
  });

  it('relays pieces cut for a clear hop onto a sealed hop (trusted subnets mix them): they still fit', async () => {
    const { clock, nodes } = await line([A, B, C], [false, true]);
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    c.capture.inject(broadcastFrom(MAC.c));
    clock.advance(1);
    const f = superFrame(MAC.c, MAC.a, 40_000, 8);
    a.capture.inject(f, tsoHeader());
    clock.advance(1);
    expect(b.sleeve.counters()).toMatchObject({ drop_too_big: 0, drop_seal: 0 });
    expect(b.sleeve.counters().pieces_forwarded).toBe(a.sleeve.counters().pieces_out);
    expect(c.capture.written.some((w) => w.equals(f))).toBe(true);
  });

  it('drops only the frame that lost a piece, counts it, and carries the next one', async () => {
    const { clock, network, nodes } = await line([A, B]);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.capture.inject(broadcastFrom(MAC.b));
    clock.advance(1);
    let pieceNumber = 0;
    network.onCarry = (_from, buffer, offset) => {
      // Spoil the third piece datagram of the first frame: its magic byte, so B drops it as garbage (a "loss").
      if (buffer[offset + 1]! >> 4 === MessageType.Piece && ++pieceNumber === 3) buffer[offset] = 0;
    };
    const lost = superFrame(MAC.b, MAC.a, 20_000, 3);
    const next = superFrame(MAC.b, MAC.a, 20_000, 4);
    a.capture.inject(lost, tsoHeader());
    a.capture.inject(next, tsoHeader());
    clock.advance(1);
    expect(b.capture.written.some((w) => w.equals(lost))).toBe(false);
    expect(b.capture.written.some((w) => w.equals(next))).toBe(true);
    const counters = b.sleeve.counters();
    expect(counters.offloaded_delivered).toBe(1);
    expect(counters.drop_magic).toBe(1);
    // The pieces after the lost one no longer continue their frame.
    expect(counters.drop_piece_gap).toBeGreaterThan(0);
  });

  it('finishes a partial checksum before the frame leaves, and sends it as an ordinary frame', async () => {
    const { clock, nodes } = await line([A, B]);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.capture.inject(broadcastFrom(MAC.b));
    clock.advance(1);
    const f = superFrame(MAC.b, MAC.a, 700, 5);
    f.writeUInt16BE(0x1234, 34 + 16); // the pseudo-header sum the kernel leaves in the field
    const header = Buffer.alloc(10);
    header[0] = VNET_F_NEEDS_CSUM;
    header.writeUInt16LE(34, 6);
    header.writeUInt16LE(16, 8);
    a.capture.inject(f, header);
    clock.advance(1);
    const expected = Buffer.from(f);
    checksumCompleteJs(expected, 0, expected.length, 34, 16);
    expect(expected.readUInt16BE(50)).not.toBe(0x1234);
    expect(b.capture.written.some((w) => w.equals(expected))).toBe(true);
    expect(a.sleeve.counters()).toMatchObject({ checksums_completed: 1, offloaded_out: 0 });
  });

  it('drops and counts captured frames whose offload header it cannot honour', async () => {
    const { clock, nodes } = await line([A, B]);
    const [a] = nodes as [(typeof nodes)[0]];
    const bad = tsoHeader();
    bad.writeUInt16LE(5000, 6); // checksum start beyond the frame
    a.capture.inject(superFrame(MAC.b, MAC.a, 3000, 6), bad);
    const unknownKind = tsoHeader();
    unknownKind[1] = 3; // UDP fragmentation offload: never asked for
    a.capture.inject(superFrame(MAC.b, MAC.a, 3000, 7), unknownKind);
    clock.advance(1);
    expect(a.sleeve.counters()).toMatchObject({ drop_bad_offload: 2, pieces_out: 0 });
  });
});

describe('checksumCompleteJs', () => {
  it('stores the RFC 1071 checksum that makes the covered bytes sum to 0xffff', () => {
    for (const length of [40, 41, 1400, 1401]) {
      const f = superFrame(1, 2, 34 + length, length);
      expect(checksumCompleteJs(f, 0, f.length, 34, 16)).toBe(true);
      let sum = 0;
      for (let i = 34; i < f.length; i += 2) sum += (f[i]! << 8) | (f[i + 1] ?? 0);
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      expect(sum).toBe(0xffff);
    }
    expect(checksumCompleteJs(Buffer.alloc(60), 0, 60, 50, 16)).toBe(false);
  });

  it('caps reassembly memory: a second sender finds the budget spent until the first has been idle', async () => {
    // Room for one 64 KiB reassembly buffer; freed after 2 s without a piece.
    const { clock, nodes } = await line([A, B, C], [], { maxReassemblyBytes: 70_000, reassemblyIdleMs: 2000 });
    const [a, b, c] = nodes as [(typeof nodes)[0], (typeof nodes)[0], (typeof nodes)[0]];
    b.capture.inject(broadcastFrom(MAC.b));
    clock.advance(1);
    const fromA = superFrame(MAC.b, MAC.a, 30_000, 5);
    const fromC = superFrame(MAC.b, MAC.c, 30_000, 6);
    a.capture.inject(fromA, tsoHeader());
    clock.advance(1);
    c.capture.inject(fromC, tsoHeader());
    clock.advance(1);
    expect(b.capture.written.some((w) => w.equals(fromA))).toBe(true);
    expect(b.capture.written.some((w) => w.equals(fromC))).toBe(false);
    expect(b.sleeve.counters().drop_reassembly_full).toBe(1);
    // A has been idle for longer than 2 s: its buffer is freed, and C's next frame is joined.
    clock.advance(3500);
    const again = superFrame(MAC.b, MAC.c, 30_000, 7);
    c.capture.inject(again, tsoHeader());
    clock.advance(1);
    expect(b.capture.written.some((w) => w.equals(again))).toBe(true);
    expect(b.sleeve.counters().drop_reassembly_full).toBe(1);
  });

  it('refuses a joined frame whose virtio header does not match its protocol, before the TAP sees it', async () => {
    const { clock, network, nodes } = await line([A, B]);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    b.capture.inject(broadcastFrom(MAC.b));
    clock.advance(1);
    // A peer (buggy or hostile) says the checksum starts at the IP header, not the TCP header: in every piece.
    network.onCarry = (_from, buffer, offset) => {
      if (buffer[offset + 1]! >> 4 === MessageType.Piece) buffer.writeUInt16LE(14, offset + 16 + 24 + 6);
    };
    const f = superFrame(MAC.b, MAC.a, 20_000, 9);
    a.capture.inject(f, tsoHeader());
    clock.advance(1);
    expect(b.capture.written.some((w) => w.length === f.length)).toBe(false);
    expect(b.sleeve.counters()).toMatchObject({ drop_bad_piece: 1, offloaded_delivered: 0 });
  });
});

describe('isVnetHeaderForFrame', () => {
  const header = (flags: number, gso: number, hdrLen: number, gsoSize: number, csumStart: number, csumOffset: number, frame: Buffer) => {
    const b = Buffer.alloc(10 + frame.length);
    b[0] = flags;
    b[1] = gso;
    b.writeUInt16LE(hdrLen, 2);
    b.writeUInt16LE(gsoSize, 4);
    b.writeUInt16LE(csumStart, 6);
    b.writeUInt16LE(csumOffset, 8);
    frame.copy(b, 10);
    return b;
  };
  const v4 = superFrame(1, 2, 3000, 1);
  const v6 = (() => {
    const f = Buffer.alloc(3000);
    f.writeUInt16BE(0x86dd, 12);
    f[14] = 0x60;
    f[20] = 6; // next header: TCP
    f[54 + 12] = 0x50;
    return f;
  })();

  it('takes TCPv4 and TCPv6 super-frames with the checksum at the TCP header, and plain frames without offloads', () => {
    expect(isVnetHeaderForFrame(header(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 54, 1360, 34, 16, v4), 0, v4.length)).toBe(true);
    expect(isVnetHeaderForFrame(header(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6, 74, 1340, 54, 16, v6), 0, v6.length)).toBe(true);
    expect(isVnetHeaderForFrame(header(0, 0, 0, 0, 0, 0, v4), 0, v4.length)).toBe(true);
  });

  it('refuses a gso_type for the other IP version, a checksum anywhere but the L4 checksum, and sizes past the frame', () => {
    expect(isVnetHeaderForFrame(header(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6, 54, 1360, 34, 16, v4), 0, v4.length)).toBe(false);
    expect(isVnetHeaderForFrame(header(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 74, 1340, 54, 16, v6), 0, v6.length)).toBe(false);
    expect(isVnetHeaderForFrame(header(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 54, 1360, 14, 16, v4), 0, v4.length)).toBe(false);
    expect(isVnetHeaderForFrame(header(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 54, 1360, 34, 10, v4), 0, v4.length)).toBe(false);
    expect(isVnetHeaderForFrame(header(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 60_000, 1360, 34, 16, v4), 0, v4.length)).toBe(false);
    expect(isVnetHeaderForFrame(header(VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 54, 0, 34, 16, v4), 0, v4.length)).toBe(false);
    const arp = Buffer.alloc(60);
    arp.writeUInt16BE(0x0806, 12);
    expect(isVnetHeaderForFrame(header(VNET_F_NEEDS_CSUM, 0, 0, 0, 14, 6, arp), 0, arp.length)).toBe(false);
  });
});
