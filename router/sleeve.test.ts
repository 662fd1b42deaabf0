import { describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { MemoryCapture } from './memory-capture.js';
import { MemoryUdpNetwork, MemoryUnderlay } from './memory-underlay.js';
import { Sleeve, SleeveSnapshotError } from './sleeve.js';
import type { ForwardingSnapshot, PeerId } from './datapath.js';
import { MessageType, encodeDatagram } from './sleeve-format.js';

const A = 0x0a00_0000_0001;
const B = 0x0a00_0000_0002;

function frame(dst: number, src: number): Buffer {
  const f = Buffer.alloc(60);
  f.writeUIntBE(dst, 0, 6);
  f.writeUIntBE(src, 6, 6);
  return f;
}

async function twoSleeves(maxDatagramBytesAtB?: number) {
  const clock = new FakeClock();
  const network = new MemoryUdpNetwork({ clock });
  const make = (address: string, maxDatagramBytes?: number) => {
    const capture = new MemoryCapture({ clock });
    const underlay = new MemoryUnderlay({ network }, { address, ...(maxDatagramBytes !== undefined && { maxDatagramBytes }) });
    const sleeve = new Sleeve({ capture, underlay, clock, log: silentLogger });
    return { capture, underlay, sleeve, endpoint: underlay.endpoint() };
  };
  const a = make('10.0.0.1');
  const b = make('10.0.0.2', maxDatagramBytesAtB);
  const snap = (self: PeerId, other: PeerId, endpoint: { address: string; port: number }, withOther = true): ForwardingSnapshot => ({
    localPeer: self,
    neighbours: withOther ? new Map([[other, { peer: other, endpoint, session: null }]]) : new Map(),
    unicastNextHop: withOther ? new Map([[other, other]]) : new Map(),
    broadcastNextHops: new Map([
      [self, withOther ? [other] : []],
      [other, []],
    ]),
    underlayMtuBytes: 1500,
  });
  return { clock, network, a, b, snap };
}

describe('Sleeve', () => {
  it('probes each path: datagrams to a neighbour behind a narrow link shrink to what it acks, the other way stays', async () => {
    // B takes datagrams of at most 1252 bytes: IP packets of 1280 (20 IPv4 + 8 UDP more).
    const { clock, a, b, snap } = await twoSleeves(1280 - 28);
    a.sleeve.apply(snap(A, B, b.endpoint));
    b.sleeve.apply(snap(B, A, a.endpoint));
    await a.sleeve.start();
    await b.sleeve.start();
    expect(a.sleeve.peerHealth().get(B)).toMatchObject({ pathMtuBytes: 1500, isPathMtuConfirmed: false });
    clock.advance(5_000); // the first round ends, a refine round or two follow
    expect(a.sleeve.peerHealth().get(B)).toMatchObject({ pathMtuBytes: 1280, isPathMtuConfirmed: true });
    expect(b.sleeve.peerHealth().get(A)).toMatchObject({ pathMtuBytes: 1500, isPathMtuConfirmed: true });
    expect(a.sleeve.counters()['path_mtu_changes']).toBeGreaterThan(0);
    expect(b.sleeve.counters()['mtu_probe_acks_out']).toBeGreaterThan(0);
    // A full-size frame A captured for B no longer fits: dropped as too big, not sent to vanish.
    const big = frame(0x02_0000_0000_02, 0x02_0000_0000_01);
    const full = Buffer.alloc(1400);
    big.copy(full);
    b.capture.inject(frame(0xffff_ffff_ffff, 0x02_0000_0000_02)); // B's container is learned behind B
    clock.advance(5);
    a.capture.inject(full);
    clock.advance(5);
    expect(a.sleeve.counters()['drop_too_big']).toBe(1);
    await a.sleeve.stop();
    await b.sleeve.stop();
  });

  it('counts frames captured before the first snapshot as drop_no_snapshot; stop is idempotent', async () => {
    const { clock, a } = await twoSleeves();
    await a.sleeve.start();
    a.capture.inject(frame(0xffff_ffff_ffff, 0x02_0000_0000_01));
    clock.advance(1);
    expect(a.sleeve.counters()['drop_no_snapshot']).toBe(1);
    await a.sleeve.stop();
    await a.sleeve.stop();
    await new Sleeve({ capture: a.capture, underlay: a.underlay, clock, log: silentLogger }).stop();
  });

  it('refuses a snapshot whose MTU leaves no room for IP, and keeps the previous one', async () => {
    const { a, b, snap } = await twoSleeves();
    a.sleeve.apply(snap(A, B, b.endpoint));
    expect(() => a.sleeve.apply({ ...snap(A, B, b.endpoint), underlayMtuBytes: 120 })).toThrow(SleeveSnapshotError);
    expect(a.sleeve.peerHealth().has(B)).toBe(true);
  });

  it('moves a MAC from local to remote when its frames arrive from another peer, and counts the move', async () => {
    const { clock, a, b, snap } = await twoSleeves();
    a.sleeve.apply(snap(A, B, b.endpoint));
    b.sleeve.apply(snap(B, A, a.endpoint));
    await a.sleeve.start();
    await b.sleeve.start();
    const roaming = 0x02_0000_0000_77;
    a.capture.inject(frame(0xffff_ffff_ffff, roaming)); // the container starts on A
    clock.advance(5);
    expect(a.sleeve.macEntries().find((e) => e.mac === roaming)?.peer).toBe(A);
    b.capture.inject(frame(0xffff_ffff_ffff, roaming)); // ... and moves to B
    clock.advance(5);
    expect(a.sleeve.macEntries().find((e) => e.mac === roaming)?.peer).toBe(B);
    expect(a.sleeve.counters()['mac_moves']).toBe(1);
    await a.sleeve.stop();
    await b.sleeve.stop();
  });

  it('reports an established neighbour that leaves the snapshot as not established', async () => {
    const { clock, a, b, snap } = await twoSleeves();
    a.sleeve.apply(snap(A, B, b.endpoint));
    b.sleeve.apply(snap(B, A, a.endpoint));
    const events: Array<[PeerId, boolean]> = [];
    a.sleeve.onHealthChange((peer, h) => events.push([peer, h.isEstablished]));
    await a.sleeve.start();
    await b.sleeve.start();
    clock.advance(2000); // A's first heartbeat went out before B listened; its second is acked
    expect(events).toEqual([[B, true]]);
    a.sleeve.apply(snap(A, B, b.endpoint, false));
    expect(events).toEqual([
      [B, true],
      [B, false],
    ]);
    expect(a.sleeve.peerHealth().size).toBe(0);
    await a.sleeve.stop();
    await b.sleeve.stop();
  });

  it('drops a record whose capturing peer is not in the snapshot as drop_unknown_peer', async () => {
    const { clock, network, a, snap } = await twoSleeves();
    // B's endpoint is where `spoof` sends from: the datagram is from B; only its record's capturing peer is unknown.
    const spoof = new MemoryUnderlay({ network }, { address: '10.0.0.9' });
    await spoof.start(() => undefined);
    a.sleeve.apply(snap(A, B, spoof.endpoint()));
    await a.sleeve.start();
    const d = encodeDatagram({
      type: MessageType.Frames,
      isEncrypted: false,
      keyPhase: 0,
      sender: B,
      seq: 0,
      records: [{ capturingPeer: 0x0a00_0000_0099, destinationPeer: A, frame: frame(1, 2) }],
      body: Buffer.alloc(0),
    });
    spoof.send(d, 0, d.length, a.endpoint);
    clock.advance(1);
    expect(a.sleeve.counters()['drop_unknown_peer']).toBe(1);
    expect(a.capture.written).toHaveLength(0);
    await a.sleeve.stop();
  });

  it('frees the numbers of peers that left: after 5,000 peers came and went, a new one still carries frames', async () => {
    const { clock, a, b, snap } = await twoSleeves();
    await a.sleeve.start();
    await b.sleeve.start();
    for (let i = 0; i < 5000; i++) a.sleeve.apply(snap(A, 0x0b00_0000_0000 + i, { address: '10.0.9.9', port: 6783 }));
    expect(a.sleeve.peerNumbersInUse).toBe(2);
    const C = 0x0c00_0000_0001; // never seen before
    a.sleeve.apply(snap(A, C, b.endpoint));
    b.sleeve.apply(snap(C, A, a.endpoint));
    a.capture.inject(frame(0xffff_ffff_ffff, 0x02_0000_0000_01));
    clock.advance(1);
    expect(b.capture.written).toHaveLength(1);
    expect(a.sleeve.counters()['frames_out']).toBe(1);
    await a.sleeve.stop();
    await b.sleeve.stop();
  });

  it('cuts a unicast forwarding loop of three relays (routes not yet converged) after MAX_RELAYS, as drop_hop_limit', async () => {
    // A, B and C each think the next one is closer to D: A -> B -> C -> A. X (a neighbour of A only) sends one
    // unicast record for D. drop_loop cannot see this loop (never back to the sender or the capturing peer); the relay
    // count can: it leaves X at 0, A relays it at 1, B at 2, C at 3, and A drops it instead of going round forever.
    const clock = new FakeClock();
    const network = new MemoryUdpNetwork({ clock });
    const [Ap, Bp, Cp, Dp, Xp] = [0x0a00_0000_0001, 0x0a00_0000_0002, 0x0a00_0000_0003, 0x0a00_0000_0004, 0x0a00_0000_0009];
    const x = new MemoryUnderlay({ network }, { address: '10.0.0.9' });
    await x.start(() => undefined);
    const make = (address: string) => {
      const capture = new MemoryCapture({ clock });
      const underlay = new MemoryUnderlay({ network }, { address });
      return { capture, sleeve: new Sleeve({ capture, underlay, clock, log: silentLogger }), endpoint: underlay.endpoint() };
    };
    const [a, b, c] = [make('10.0.0.1'), make('10.0.0.2'), make('10.0.0.3')];
    const snap = (self: PeerId, next: PeerId, neighbours: Array<[PeerId, { address: string; port: number }]>): ForwardingSnapshot => ({
      localPeer: self,
      neighbours: new Map(neighbours.map(([p, endpoint]) => [p, { peer: p, endpoint, session: null }])),
      unicastNextHop: new Map([[Dp, next], ...neighbours.map(([p]): [PeerId, PeerId] => [p, p])]),
      broadcastNextHops: new Map([Ap, Bp, Cp, Dp, Xp].map((p): [PeerId, PeerId[]] => [p, []])),
      underlayMtuBytes: 1500,
    });
    a.sleeve.apply(
      snap(Ap, Bp, [
        [Bp, b.endpoint],
        [Cp, c.endpoint],
        [Xp, x.endpoint()],
      ]),
    );
    b.sleeve.apply(
      snap(Bp, Cp, [
        [Ap, a.endpoint],
        [Cp, c.endpoint],
      ]),
    );
    c.sleeve.apply(
      snap(Cp, Ap, [
        [Ap, a.endpoint],
        [Bp, b.endpoint],
      ]),
    );
    for (const h of [a, b, c]) await h.sleeve.start();
    const d = encodeDatagram({
      type: MessageType.Frames,
      isEncrypted: false,
      keyPhase: 0,
      sender: Xp,
      seq: 0,
      records: [{ capturingPeer: Xp, destinationPeer: Dp, frame: frame(0x02_0000_0000_0d, 0x02_0000_0000_09) }],
      body: Buffer.alloc(0),
    });
    x.send(d, 0, d.length, a.endpoint);
    for (let i = 0; i < 20; i++) clock.advance(1);
    const forwarded = [a, b, c].map((h) => h.sleeve.counters()['frames_forwarded']);
    expect(forwarded).toEqual([1, 1, 1]);
    expect(a.sleeve.counters()['drop_hop_limit']).toBe(1);
    expect([a, b, c].map((h) => h.capture.written.length)).toEqual([0, 0, 0]);
    for (const h of [a, b, c]) await h.sleeve.stop();
  });

  it('counts traffic per neighbour both ways and times the heartbeat round trip (latency 3 ms each way: 6 ms)', async () => {
    const clock = new FakeClock();
    const network = new MemoryUdpNetwork({ clock }, { latencyMs: 3 });
    const make = (address: string) => {
      const capture = new MemoryCapture({ clock });
      const underlay = new MemoryUnderlay({ network }, { address });
      return { capture, sleeve: new Sleeve({ capture, underlay, clock, log: silentLogger }), endpoint: underlay.endpoint() };
    };
    const [a, b] = [make('10.0.0.1'), make('10.0.0.2')];
    const snap = (self: PeerId, other: PeerId, endpoint: { address: string; port: number }): ForwardingSnapshot => ({
      localPeer: self,
      neighbours: new Map([[other, { peer: other, endpoint, session: null }]]),
      unicastNextHop: new Map([[other, other]]),
      broadcastNextHops: new Map([
        [self, [other]],
        [other, []],
      ]),
      underlayMtuBytes: 1500,
    });
    a.sleeve.apply(snap(A, B, b.endpoint));
    b.sleeve.apply(snap(B, A, a.endpoint));
    await b.sleeve.start(); // B listens first, so everything A sends arrives
    await a.sleeve.start();
    clock.advance(3000); // three heartbeats each way, answered
    for (let i = 0; i < 5; i++) a.capture.inject(frame(0xffff_ffff_ffff, 0x02_0000_0000_01));
    clock.advance(10);
    const ab = a.sleeve.peerHealth().get(B)!;
    const ba = b.sleeve.peerHealth().get(A)!;
    // A sent B its heartbeats, acks, MTU probes and probe acks and the frames; B received every one, authentic, and
    // nothing was dropped.
    expect(ab.traffic!.datagramsOut).toBe(ba.traffic!.datagramsIn);
    expect(ab.traffic!.bytesOut).toBe(ba.traffic!.bytesIn);
    expect(ba.traffic!.datagramsIn).toBeGreaterThanOrEqual(3 + 2 + 1); // heartbeats, acks, frames (packed)
    expect(ba.traffic!.bytesIn).toBeGreaterThan(5 * 60);
    expect(ab.traffic!.datagramsIn).toBeGreaterThan(0);
    expect(Object.values(ba.traffic!.dropsIn).every((v) => v === 0)).toBe(true);
    expect(ab.rttMs).toBeCloseTo(6, 5);
    expect(a.sleeve.counters()['bytes_out']).toBe(ab.traffic!.bytesOut);
    await a.sleeve.stop();
    await b.sleeve.stop();
  });
});
