import { describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { MemoryCapture } from './memory-capture.js';
import { MemoryUdpNetwork, MemoryUnderlay } from './memory-underlay.js';
import { Sleeve } from './sleeve.js';
import type { SleeveOptions } from './sleeve.js';
import type { ForwardingSnapshot, PeerId } from './datapath.js';
import { MessageType, encodeDatagram } from './sleeve-format.js';

const A = 0x0a00_0000_0001;
const B = 0x0a00_0000_0002;
const MAC_A = 0x02_0000_0000_0a;
const MAC_B = 0x02_0000_0000_0b;

function frame(dst: number, src: number): Buffer {
  const f = Buffer.alloc(60);
  f.writeUIntBE(dst, 0, 6);
  f.writeUIntBE(src, 6, 6);
  return f;
}

/** Two sleeves A and B, neighbours over an in-memory network, started and established. */
async function pair(options: SleeveOptions = {}) {
  return pairMixed(options, options);
}

/** `pair` with options of its own for each side. */
async function pairMixed(optionsA: SleeveOptions, optionsB: SleeveOptions) {
  const fake = new FakeClock();
  const clock = fake;
  const network = new MemoryUdpNetwork({ clock: fake });
  const make = (address: string, options: SleeveOptions) => {
    const capture = new MemoryCapture({ clock: fake });
    const underlay = new MemoryUnderlay({ network }, { address });
    const sleeve = new Sleeve({ capture, underlay, clock, log: silentLogger }, options);
    return { capture, underlay, sleeve, endpoint: underlay.endpoint() };
  };
  const a = make('10.0.0.1', optionsA);
  const b = make('10.0.0.2', optionsB);
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
  const events: Array<[number, boolean]> = [];
  a.sleeve.onHealthChange((_peer, h) => events.push([fake.now(), h.isEstablished]));
  await a.sleeve.start();
  await b.sleeve.start();
  fake.advance(2000);
  expect(a.sleeve.peerHealth().get(B)?.isEstablished).toBe(true);
  // Each side learns the other's MAC, so frames go unicast.
  a.capture.inject(frame(0xffff_ffff_ffff, MAC_A));
  b.capture.inject(frame(0xffff_ffff_ffff, MAC_B));
  fake.advance(10);
  /** A ping every `everyMs` from A's container to B's, answered by B's, for `forMs`. */
  const ping = (forMs: number, everyMs = 100) => {
    for (let t = 0; t < forMs; t += everyMs) {
      a.capture.inject(frame(MAC_B, MAC_A));
      fake.advance(1);
      if (b.capture.written.length > 0) {
        b.capture.written.length = 0;
        b.capture.inject(frame(MAC_A, MAC_B));
      }
      fake.advance(everyMs - 1);
    }
  };
  const isUp = () => a.sleeve.peerHealth().get(B)?.isEstablished;
  const stop = async () => {
    await a.sleeve.stop();
    await b.sleeve.stop();
  };
  return { fake, network, a, b, events, ping, isUp, stop };
}

describe('Heartbeats: dead paths found while traffic flows', () => {
  it('declares the path lost within a second of a cut while pings flow (not the 5 s timeout)', async () => {
    const { fake, network, a, events, ping, stop } = await pair();
    ping(1000);
    expect(events).toEqual([[expect.any(Number), true]]);
    const cutAt = fake.now();
    network.partition('10.0.0.1', '10.0.0.2');
    ping(2000);
    expect(events).toHaveLength(2);
    const [lostAt, isEstablished] = events[1]!;
    expect(isEstablished).toBe(false);
    expect(lostAt - cutAt).toBeLessThanOrEqual(1100);
    expect(a.sleeve.counters()['paths_lost_probes']).toBe(1);
    expect(a.sleeve.counters()['paths_lost_timeout']).toBe(0);
    await stop();
  });

  it('answered data and one lost probe never move traffic: a 300 ms blackout while pinging keeps the path', async () => {
    const { network, a, events, ping, isUp, stop } = await pair();
    ping(1000);
    network.partition('10.0.0.1', '10.0.0.2');
    ping(300);
    network.heal('10.0.0.1', '10.0.0.2');
    ping(3000);
    expect(isUp()).toBe(true);
    expect(events).toHaveLength(1);
    expect(a.sleeve.counters()['probes_out']).toBeGreaterThan(0);
    await stop();
  });

  it('arms no timer at idle, and an idle cut is found by the heartbeat timeout alone', async () => {
    const { fake, network, a, events, stop } = await pair();
    fake.advance(3000);
    const timersAtIdle = fake.pendingCount;
    const probesAtIdle = a.sleeve.counters()['probes_out'];
    fake.advance(3000);
    expect(fake.pendingCount).toBe(timersAtIdle);
    expect(a.sleeve.counters()['probes_out']).toBe(probesAtIdle);
    const cutAt = fake.now();
    network.partition('10.0.0.1', '10.0.0.2');
    // Idle heartbeats: the next one is due within 10 s, and lost 5 s after it goes unanswered.
    fake.advance(16_000);
    expect(events.at(-1)?.[1]).toBe(false);
    expect(events.at(-1)![0] - cutAt).toBeGreaterThanOrEqual(4000);
    expect(events.at(-1)![0] - cutAt).toBeLessThanOrEqual(15_500);
    expect(a.sleeve.counters()['paths_lost_timeout']).toBe(1);
    expect(a.sleeve.counters()['probes_out']).toBe(probesAtIdle);
    await stop();
  });

  it('trusts a lost path again only after acks keep coming for the hold time (no flapping back)', async () => {
    const { fake, network, events, ping, isUp, stop } = await pair({ recoverMs: 2000 });
    ping(500);
    network.partition('10.0.0.1', '10.0.0.2');
    ping(1500);
    expect(isUp()).toBe(false);
    const lostAt = events.at(-1)![0];
    network.heal('10.0.0.1', '10.0.0.2');
    // Acks come back at once, but the path stays out of use until the hold has passed.
    while (fake.now() < lostAt + 1900) ping(100);
    expect(isUp()).toBe(false);
    ping(2500); // the hold, then the next heartbeat round decides
    expect(isUp()).toBe(true);
    expect(events.map((e) => e[1])).toEqual([true, false, true]);
    await stop();
  });

  it('blames no peer for its own stall: probes whose check fired late count no miss', async () => {
    const { fake, network, a, ping, isUp, stop } = await pair();
    ping(500);
    // The cut lasts 2.4 s, but our loop stalls through it (every check fires 300 ms late): nothing is declared.
    network.partition('10.0.0.1', '10.0.0.2');
    a.capture.inject(frame(MAC_B, MAC_A));
    fake.advance(1);
    for (let i = 0; i < 6; i++) {
      fake.stall(300);
      fake.advance(100);
    }
    network.heal('10.0.0.1', '10.0.0.2');
    ping(1000);
    expect(isUp()).toBe(true);
    expect(a.sleeve.counters()['own_stalls']).toBeGreaterThan(0);
    await stop();
  });

  it('a 6 s stall of our own loses no neighbour to the heartbeat timeout; a real 6 s silence does', async () => {
    const { fake, network, a, events, isUp, stop } = await pair();
    fake.advance(3000);
    fake.stall(6000); // nothing ran for 6 s: B's heartbeats wait unread
    fake.advance(3000);
    expect(isUp()).toBe(true);
    expect(events).toHaveLength(1);
    network.partition('10.0.0.1', '10.0.0.2');
    fake.advance(7000);
    expect(isUp()).toBe(false);
    expect(a.sleeve.counters()['paths_lost_timeout']).toBe(1);
    await stop();
  });
});

describe('Heartbeats: idle paths heartbeated slowly (issue 19)', () => {
  const heartbeatsOut = (side: { sleeve: Sleeve }) => side.sleeve.counters()['heartbeats_out']!;

  it('heartbeats an idle path every 10 s instead of every second, both sides staying established', async () => {
    const { fake, a, b, events, isUp, stop } = await pair();
    fake.advance(6000); // idle for idleAfterMs
    const [a0, b0] = [heartbeatsOut(a), heartbeatsOut(b)];
    fake.advance(60_000);
    // About six each in a minute (a heartbeat a second before: 60).
    expect(heartbeatsOut(a) - a0).toBeGreaterThanOrEqual(5);
    expect(heartbeatsOut(a) - a0).toBeLessThanOrEqual(8);
    expect(heartbeatsOut(b) - b0).toBeLessThanOrEqual(8);
    expect(isUp()).toBe(true);
    expect(b.sleeve.peerHealth().get(A)?.isEstablished).toBe(true);
    expect(events).toHaveLength(1); // never lost
    await stop();
  });

  it('keeps a heartbeat a second toward a router that does not announce idle heartbeats (older routers)', async () => {
    // B announces 0 (as a router before idle heartbeats, whose heartbeats carry no body, is read).
    const { fake, a, b, stop } = await pairMixed({}, { idleHeartbeatMs: 0 });
    fake.advance(6000);
    const [a0, b0] = [heartbeatsOut(a), heartbeatsOut(b)];
    fake.advance(30_000);
    expect(heartbeatsOut(a) - a0).toBeGreaterThanOrEqual(29);
    expect(heartbeatsOut(b) - b0).toBeGreaterThanOrEqual(29);
    expect(b.sleeve.peerHealth().get(A)?.isEstablished).toBe(true);
    await stop();
  });

  it('goes back to a heartbeat a second while data flows, and detects a cut then within a second', async () => {
    const { fake, network, a, events, ping, stop } = await pair();
    fake.advance(30_000);
    const a0 = heartbeatsOut(a);
    ping(5000);
    expect(heartbeatsOut(a) - a0).toBeGreaterThanOrEqual(4);
    const cutAt = fake.now();
    network.partition('10.0.0.1', '10.0.0.2');
    ping(2000);
    expect(events.at(-1)?.[1]).toBe(false);
    expect(events.at(-1)![0] - cutAt).toBeLessThanOrEqual(1100);
    await stop();
  });

  it('one lost idle heartbeat moves nothing: it is sent again each second until answered', async () => {
    const { fake, network, a, events, isUp, stop } = await pair();
    fake.advance(30_000);
    const a0 = heartbeatsOut(a);
    // A 2.5 s blackout: whatever idle heartbeat falls in it goes unanswered and is repeated.
    for (let i = 0; i < 8; i++) {
      network.partition('10.0.0.1', '10.0.0.2');
      fake.advance(2500);
      network.heal('10.0.0.1', '10.0.0.2');
      fake.advance(7500 + 333 * i);
      expect(isUp()).toBe(true);
    }
    expect(events).toHaveLength(1);
    expect(heartbeatsOut(a) - a0).toBeGreaterThan(8); // some repeated
    expect(heartbeatsOut(a) - a0).toBeLessThan(40);
    await stop();
  });

  it('takes any heartbeat body: short or garbage ones read as "no idle rule", huge intervals are capped', async () => {
    const { fake, a, b, events, isUp, stop } = await pair();
    fake.advance(30_000); // idle: B heartbeats A every 10 s
    const heartbeat = (body: Buffer, seq: number) =>
      encodeDatagram({ type: MessageType.Heartbeat, isEncrypted: false, keyPhase: 0, sender: A, seq, records: [], body });
    const inBefore = b.sleeve.counters()['heartbeats_in']!;
    const bodies = [Buffer.alloc(1, 0xff), Buffer.from([1, 2, 3]), Buffer.alloc(4, 0xff), Buffer.alloc(300, 0xa5), Buffer.from([0, 1])];
    bodies.forEach((body, i) => {
      const d = heartbeat(body, 1_000_000 + i);
      a.underlay.send(d, 0, d.length, b.endpoint); // from A's own address: taken as A's
    });
    a.underlay.flush();
    fake.advance(10);
    expect(b.sleeve.counters()['heartbeats_in']! - inBefore).toBe(bodies.length);
    // The last one (2 bytes, too short to be read as 65,536+ ms) says nothing of an idle rule: B heartbeats A every
    // second until A's next real heartbeat.
    const b0 = heartbeatsOut(b);
    fake.advance(3000);
    expect(heartbeatsOut(b) - b0).toBeGreaterThanOrEqual(2);
    fake.advance(30_000);
    expect(isUp()).toBe(true);
    expect(b.sleeve.peerHealth().get(A)?.isEstablished).toBe(true);
    expect(events).toHaveLength(1);
    await stop();
  });

  it('finds a dead idle path within the idle interval plus the timeout, and takes it back when it returns', async () => {
    const { fake, network, events, isUp, stop } = await pair();
    fake.advance(30_000);
    const cutAt = fake.now();
    network.partition('10.0.0.1', '10.0.0.2');
    fake.advance(16_000);
    expect(isUp()).toBe(false);
    expect(events.at(-1)![0] - cutAt).toBeLessThanOrEqual(15_500);
    network.heal('10.0.0.1', '10.0.0.2');
    fake.advance(4000); // the lost path is heartbeated every second again; trusted after the hold
    expect(isUp()).toBe(true);
    await stop();
  });
});
