/**
 * Hostile and broken peers: every bad input is refused or dropped with a log line, and the mesh keeps working.
 */
import { expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { createMemoryLogger, silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { FrameType } from './connection.js';
import { encodeHello, type Hello } from './handshake.js';
import { MemoryNetwork } from './memory-transport.js';
import { Mesh } from './mesh.js';
import type { TransportConnection } from './transport.js';

it('refuses garbage, truncated, oversized, wrong-version and name-stealing peers, and still works', async () => {
  const clock = new FakeClock();
  const net = new MemoryNetwork(clock, { latencyMs: 1 });
  const random = new SeededRandom(3);
  const { log, lines } = createMemoryLogger('debug');
  const make = (host: string, i: number, l = silentLogger) =>
    new Mesh(
      { transport: net.transport(host), clock, random, log: l },
      { peerName: `02:00:00:00:00:0${i}`, nickname: host, uid: String(i) },
    );
  const h1 = make('h1', 1, log);
  const h2 = make('h2', 2);
  const h3 = make('h3', 3);
  const run = async (ms: number) => {
    for (let t = 0; t < ms; t += 10) {
      clock.advance(10);
      await new Promise((r) => setImmediate(r));
    }
  };
  try {
    await h1.start();
    await h2.start();
    await h3.start();
    h2.connect(['h1'], false);
    await run(1000);
    expect(h1.neighbours().map((n) => n.nickname)).toEqual(['h2']);

    const evil = net.transport('evil');
    const attack = async (...messages: Uint8Array[]): Promise<string> => {
      const p = evil.dial('h1:6783', 1000);
      clock.advance(5);
      const c: TransportConnection = await p;
      let reason = '';
      c.onMessage(() => {});
      c.onClose((r) => (reason = r));
      for (const m of messages) c.send(m);
      await run(200);
      c.close('attacker done');
      return reason;
    };
    const hello = (over: Partial<Hello>): Uint8Array =>
      encodeHello({
        minVersion: 1,
        maxVersion: 1,
        name: '02:00:00:00:00:66',
        nickname: 'evil',
        uid: '666',
        features: [],
        hasPassword: false,
        publicKey: new Uint8Array(0),
        udpPort: 1,
        ...over,
      });
    const logged = (pred: (l: Record<string, unknown>) => boolean) => lines().filter(pred);

    // 1. Garbage instead of a hello.
    expect(await attack(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toMatch(/^bad message: not a weft hello/);
    expect(logged((l) => l.msg === 'closing connection: bad message' && String(l.reason).includes('bad magic'))).toHaveLength(1);

    // 2. A truncated hello.
    expect(await attack(hello({}).subarray(0, 20))).toMatch(/^bad message: hello truncated/);
    expect(logged((l) => String(l.reason).startsWith('hello truncated'))).toHaveLength(1);

    // 3. An oversized message (over the transport's 1 MiB limit).
    expect(await attack(new Uint8Array(1024 * 1024 + 1))).toBe('message too big');
    expect(logged((l) => l.reason === 'message too big')).toHaveLength(1);

    // 4. A protocol version we do not speak.
    expect(await attack(hello({ minVersion: 2, maxVersion: 3 }))).toBe('incompatible protocol version');
    expect(logged((l) => l.code === 'ERR_INCOMPATIBLE_VERSION' && String(l.reason).includes('speaks protocol 2..3'))).toHaveLength(1);

    // 5. A peer claiming h2's name (h2 is connected) and one claiming ours.
    expect(await attack(hello({ name: h2.name, nickname: 'h2', uid: '999' }))).toBe('peer name collision');
    expect(await attack(hello({ name: h1.name, nickname: 'h1', uid: '999' }))).toBe('peer name collision');
    expect(logged((l) => l.code === 'ERR_PEER_NAME_COLLISION')).toHaveLength(2);
    expect(h1.neighbours().map((n) => n.nickname)).toEqual(['h2']);

    // 6. A good hello, then a garbage topology payload (dropped, connection stays), then a broken frame (closed).
    await run(1000); // let the inbound rate limiter refill
    const p = evil.dial('h1:6783', 1000);
    clock.advance(5);
    const c = await p;
    let reason = '';
    c.onMessage(() => {});
    c.onClose((r) => (reason = r));
    c.send(hello({}));
    await run(50);
    c.send(Uint8Array.from([FrameType.Gossip, 8, ...Buffer.from('topology'), ...Buffer.from('{not json')]));
    await run(50);
    expect(reason).toBe('');
    expect(logged((l) => l.msg === 'dropped gossip that does not decode')).toHaveLength(1);
    c.send(Uint8Array.from([FrameType.Broadcast, 200, 1, 2]));
    await run(50);
    expect(reason).toMatch(/^bad message: gossip frame truncated/);

    const counters = h1.counters();
    expect(counters.decode_error).toBe(3);
    expect(counters.gossip_decode_error).toBe(1);
    expect(counters.handshake_refused).toBe(3);

    // The mesh still works: a new peer joins and everybody converges.
    h3.connect(['h1'], false);
    await run(3000);
    for (const m of [h1, h2, h3]) expect([...m.peers().keys()].sort()).toEqual([h1.name, h2.name, h3.name]);
    expect(h1.peers().has('02:00:00:00:00:66')).toBe(false);
  } finally {
    await h1.stop();
    await h2.stop();
    await h3.stop();
  }
});

it('rate-limits inbound handshakes per address first, then in all', async () => {
  const clock = new FakeClock();
  const net = new MemoryNetwork(clock, { latencyMs: 1 });
  const h1 = new Mesh(
    { transport: net.transport('h1'), clock, random: new SeededRandom(1), log: silentLogger },
    {
      peerName: '02:00:00:00:00:01',
      nickname: 'h1',
      uid: '1',
      inbound: { perAddressBurst: 5, totalBurst: 8, maxPendingPerAddress: 100, maxPending: 100 },
    },
  );
  await h1.start();
  try {
    const reasons: string[] = [];
    const dials = Array.from({ length: 15 }, () => net.transport('flood').dial('h1:6783', 1000));
    clock.advance(5);
    for (const c of await Promise.all(dials)) c.onClose((r) => reasons.push(r));
    clock.advance(10);
    expect(reasons.filter((r) => r === 'too many connection attempts; retry later')).toHaveLength(10);
    expect(h1.counters().inbound_rate_limited_address).toBe(10);
    // The 10 refused spent nothing shared: 3 of the 8 shared tokens are left for everyone else.
    const others = Array.from({ length: 5 }, (_, i) => net.transport(`x${i}`).dial('h1:6783', 1000));
    clock.advance(5);
    const refusedOthers: string[] = [];
    for (const c of await Promise.all(others)) c.onClose((r) => refusedOthers.push(r));
    clock.advance(10);
    expect(refusedOthers).toHaveLength(2);
    expect(h1.counters().inbound_rate_limited).toBe(2);
  } finally {
    await h1.stop();
  }
});
