/**
 * The mesh against strangers on the control port (issue 10, items 3, 8, 9): a replayed hello cannot evict a
 * confirmed connection, a flood from one address does not lock out another, oversized messages before the
 * handshake close only their connection, and gossip cannot make the router dial loopback or itself.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { createMemoryLogger, silentLogger, type Logger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import type { ConnectionSecurity } from '../crypto/connection-security.js';
import { FrameType } from './connection.js';
import { FakeConnectionSecurity } from './fake-security.js';
import { encodeHello, type Hello } from './handshake.js';
import { MemoryNetwork } from './memory-transport.js';
import { Mesh, type MeshOptions, TOPOLOGY_CHANNEL } from './mesh.js';
import { encodeTopology } from './topology.js';
import type { TransportConnection } from './transport.js';

const seed = Number(process.env.WEFT_SEED ?? 11);

interface World {
  clock: FakeClock;
  net: MemoryNetwork;
  add(
    host: string,
    i: number,
    opts?: Partial<MeshOptions> & { security?: ConnectionSecurity; log?: Logger; localHosts?: () => string[] },
  ): Promise<Mesh>;
  run(ms: number): Promise<void>;
  /** Dial `to` from `fromHost` with a raw transport connection; messages it receives go to `inbox`. */
  raw(fromHost: string, to: string): Promise<{ t: TransportConnection; inbox: Uint8Array[]; closed: string[] }>;
}

const meshes: Mesh[] = [];
afterEach(async () => {
  for (const m of meshes.splice(0)) await m.stop();
});

function world(): World {
  const clock = new FakeClock();
  const net = new MemoryNetwork(clock, { latencyMs: 2 });
  const random = new SeededRandom(seed);
  const w: World = {
    clock,
    net,
    async add(host, i, opts = {}) {
      const { security, log, localHosts, ...options } = opts;
      const m = new Mesh(
        { transport: net.transport(host), clock, random, log: log ?? silentLogger, security, ...(localHosts && { localHosts }) },
        { peerName: `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`, nickname: host, uid: String(1000 + i), ...options },
      );
      await m.start();
      meshes.push(m);
      return m;
    },
    async run(ms) {
      for (let t = 0; t < ms; t += 10) {
        clock.advance(10);
        await new Promise((r) => setImmediate(r));
      }
    },
    async raw(fromHost, to) {
      const p = net.transport(fromHost).dial(to, 1000);
      clock.advance(10);
      const t = await p;
      const inbox: Uint8Array[] = [];
      const closed: string[] = [];
      t.onMessage((m) => inbox.push(m));
      t.onClose((r) => closed.push(r));
      return { t, inbox, closed };
    },
  };
  return w;
}

function helloOf(name: string, uid: string, nickname: string, hasPassword: boolean): Hello {
  return {
    minVersion: 1,
    maxVersion: 1,
    name,
    nickname,
    uid,
    features: [],
    hasPassword,
    publicKey: new Uint8Array(hasPassword ? 32 : 0).fill(5),
    udpPort: 6784,
  };
}

describe('a replayed hello (item 3)', () => {
  it('does not evict a confirmed connection, even when its tie-break would win; the stranger never proves the password', async () => {
    const w = world();
    const { log, lines } = createMemoryLogger('debug');
    const h1 = await w.add('h1', 1, { security: new FakeConnectionSecurity('pw') });
    const h2 = await w.add('h2', 2, { security: new FakeConnectionSecurity('pw'), log });
    // h2 dials h1: on h2 the connection was initiated by h2, and h1 (the smaller name) is the preferred initiator, so
    // an inbound connection claiming to be h1 would win the duplicate tie-break.
    h2.connect(['h1'], false);
    await w.run(1000);
    const before = h2.neighbours()[0]!;
    expect(before).toMatchObject({ name: h1.name, isOutbound: true });
    for (let i = 0; i < 5; i++) {
      const rogue = await w.raw('evil', 'h2:6783');
      rogue.t.send(encodeHello(helloOf(h1.name, '1001', 'h1', true))); // h1's name and uid, as seen in its clear hello
      await w.run(300);
      expect(
        h2.neighbours().map((n) => n.name),
        `seed ${seed}`,
      ).toEqual([h1.name]);
      expect(h2.neighbours()[0]!.session, 'the same confirmed session').toBe(before.session);
      expect(rogue.inbox, 'only h2 hello: no proof for a stranger').toHaveLength(1);
      rogue.t.send(new Uint8Array(32)); // a guessed proof
      await w.run(100);
      expect(rogue.closed).toEqual(['password mismatch']);
    }
    await w.run(6000);
    expect(h2.neighbours()[0]!.session).toBe(before.session);
    expect(h1.neighbours().map((n) => n.name)).toEqual([h2.name]);
    expect(lines().some((l) => String(l.reason ?? '').startsWith('duplicate connection'))).toBe(false);
    expect(h2.counters().password_mismatch).toBe(5);
  });

  it('still resolves a real simultaneous dial to one connection, the same on both sides', async () => {
    const w = world();
    const h1 = await w.add('h1', 1, { security: new FakeConnectionSecurity('pw') });
    const h2 = await w.add('h2', 2, { security: new FakeConnectionSecurity('pw') });
    h1.connect(['h2'], false);
    h2.connect(['h1'], false);
    await w.run(3000);
    expect(h1.neighbours().map((n) => n.name)).toEqual([h2.name]);
    expect(h2.neighbours().map((n) => n.name)).toEqual([h1.name]);
    // h1 has the smaller name: both keep the connection h1 dialled.
    expect(h1.neighbours()[0]!.isOutbound).toBe(true);
    expect(h2.neighbours()[0]!.isOutbound).toBe(false);
    await w.run(5000);
    expect(h1.status().connections.filter((c) => c.state === 'established')).toHaveLength(1);
  });

  it('retires the confirmed duplicate that lost: open, pending and its session still opening data for the grace, then closed; neither side loses the peer', async () => {
    const w = world();
    const h1 = await w.add('h1', 1, { security: new FakeConnectionSecurity('pw') });
    const h2 = await w.add('h2', 2, { security: new FakeConnectionSecurity('pw') });
    h1.connect(['h2'], false);
    h2.connect(['h1'], false);
    await w.run(300);
    for (const m of [h1, h2]) {
      const n = m.neighbours();
      expect(n).toHaveLength(1);
      // Both sessions for the data path: the owner's and the retired duplicate's, different ones.
      expect(n[0]!.graceSession).not.toBeNull();
      expect(n[0]!.graceSession).not.toBe(n[0]!.session);
      expect(m.status().connections.map((c) => [c.state, c.info])).toContainEqual(['pending', 'duplicate connection, closing']);
    }
    // h1 dialled the owner: it sends under its session at once (h2, the responder, confirmed it first).
    expect(h1.neighbours()[0]!.isOutbound).toBe(true);
    await w.run(3500);
    for (const m of [h1, h2]) {
      expect(m.neighbours()[0]!.graceSession).toBeNull();
      expect(m.status().connections).toHaveLength(1);
      expect(m.counters()['peer_lost'] ?? 0).toBe(0);
    }
    expect(h2.neighbours()[0]!.isOutbound).toBe(false);
  });
});

describe('inbound limits (item 8)', () => {
  it('a flood from one address does not lock out another address', async () => {
    const w = world();
    const { log, lines } = createMemoryLogger();
    const h1 = await w.add('h1', 1, { log });
    const h2 = await w.add('h2', 2, { initialBackoffMs: 100, maxBackoffMs: 200 });
    const reasons: string[] = [];
    // 200 connection attempts from one address in 2 s, each saying nothing.
    for (let i = 0; i < 200; i++) {
      const r = await w.raw('flood', 'h1:6783');
      r.t.onClose((x) => reasons.push(x));
      if (i === 20) h2.connect(['h1'], false);
    }
    await w.run(100);
    expect(
      h1.neighbours().map((n) => n.nickname),
      `seed ${seed}`,
    ).toEqual(['h2']);
    const c = h1.counters();
    expect((c.inbound_rate_limited_address ?? 0) + (c.inbound_pending_cap_address ?? 0)).toBeGreaterThan(150);
    expect(c.inbound_rate_limited ?? 0).toBe(0); // nothing shared was spent on the flood
    expect(reasons.filter((r) => /retry later/.test(r)).length).toBeGreaterThan(150);
    // Logged once for the address, however many times it was refused.
    expect(lines().filter((l) => l.addr === 'flood' && String(l.msg).startsWith('refused'))).toHaveLength(1);
  });

  it('caps pending (unconfirmed) connections per address and in all, and frees them when they close', async () => {
    const w = world();
    const h1 = await w.add('h1', 1, { inbound: { maxPendingPerAddress: 3, maxPending: 5, perAddressBurst: 100, totalBurst: 100 } });
    const a = [];
    for (let i = 0; i < 4; i++) a.push(await w.raw('a', 'h1:6783'));
    await w.run(10);
    expect(a.map((x) => x.closed[0] ?? 'open')).toEqual(['open', 'open', 'open', 'too many pending connections; retry later']);
    const b = [];
    for (let i = 0; i < 3; i++) b.push(await w.raw('b', 'h1:6783'));
    await w.run(10);
    expect(b.map((x) => x.closed[0] ?? 'open')).toEqual(['open', 'open', 'too many pending connections; retry later']);
    expect(h1.counters()).toMatchObject({ inbound_pending_cap_address: 1, inbound_pending_cap: 1 });
    await w.run(6000); // the handshake bound closes the silent ones and frees their places
    const again = await w.raw('a', 'h1:6783');
    await w.run(10);
    expect(again.closed).toEqual([]);
  });

  it('closes a connection whose first message is over the pre-handshake limit, and only that one', async () => {
    const w = world();
    const h1 = await w.add('h1', 1);
    const h2 = await w.add('h2', 2);
    h2.connect(['h1'], false);
    await w.run(500);
    const big = await w.raw('evil', 'h1:6783');
    big.t.send(new Uint8Array(64 * 1024)); // within the transport's 1 MiB, over the handshake's 4 KiB
    await w.run(50);
    expect(big.closed).toEqual(['message too big']);
    expect(h1.counters().handshake_message_too_big).toBe(1);
    expect(h1.neighbours().map((n) => n.nickname)).toEqual(['h2']);
  });
});

describe('discovery (item 9)', () => {
  it('never dials loopback, unspecified, multicast, link-local or its own addresses named by gossip; dials the rest', async () => {
    const w = world();
    const h1 = await w.add('h1', 1, { localHosts: () => ['10.9.9.1', 'fd00::1'] });
    await w.add('h3', 3);
    const rogue = await w.raw('evil', 'h1:6783');
    const evilName = '02:00:00:00:00:66';
    rogue.t.send(encodeHello(helloOf(evilName, '66', 'evil', false)));
    const fake = (n: number, address: string) => ({
      name: `02:00:00:00:01:${n.toString(16).padStart(2, '0')}`,
      address,
      isOutbound: true,
      isEstablished: true,
    });
    const entry = {
      name: evilName,
      nickname: 'evil',
      uid: '66',
      version: 5,
      connections: [
        fake(1, '127.0.0.1:6784'),
        fake(2, '10.9.9.1:6783'),
        fake(3, '0.0.0.0:6783'),
        fake(4, '224.0.0.1:6783'),
        fake(5, '169.254.1.1:6783'),
        fake(6, '[::1]:6783'),
        fake(7, '[fd00::1]:6784'),
        fake(8, 'localhost:6784'),
        fake(9, 'h1:6784'), // h1's own listener host (port differs)
        fake(10, 'h3:6783'), // an ordinary router: dialled
      ],
    };
    const channel = Buffer.from(TOPOLOGY_CHANNEL);
    rogue.t.send(Buffer.concat([Buffer.of(FrameType.Gossip, channel.length), channel, encodeTopology([entry])]));
    await w.run(2000); // h3's name (as gossip gives it) is greater than h1's: h1 yields DISCOVERY_YIELD_MS first
    const targets = h1.status().targets.map((t) => t.address);
    expect(targets).toEqual(['h3:6783']);
    expect(h1.neighbours().map((n) => n.nickname)).toContain('h3');
    expect(h1.counters()).toMatchObject({
      discovery_refused_loopback: 3,
      discovery_refused_own_address: 3,
      discovery_refused_unspecified: 1,
      discovery_refused_multicast: 1,
      discovery_refused_link_local: 1,
    });
    await w.run(2000); // counted once per address, not at every pass
    expect(h1.counters().discovery_refused_loopback).toBe(3);
  });
});

describe('a forged copy of our own entry (item 4)', () => {
  it('is outbid towards every neighbour, the one that brought it included', async () => {
    const w = world();
    // No periodic rounds within the test: only the outbid itself may carry h3's entry back to h1. h3 cannot dial the
    // rogue (as in the netns test, where it listens on loopback), so no connection change re-publishes h3 either.
    const h1 = await w.add('h1', 1, { gossipIntervalMs: 600_000 });
    const { log, lines } = createMemoryLogger('debug');
    const h3 = await w.add('h3', 3, { gossipIntervalMs: 600_000, isDiscoveryEnabled: false, log });
    h3.connect(['h1'], false);
    await w.run(1000);
    expect(h1.neighbours().map((n) => n.nickname)).toEqual(['h3']);
    const rogue = await w.raw('evil', 'h1:6783');
    rogue.t.send(encodeHello(helloOf('02:00:00:00:00:66', '66', 'evil', false)));
    await w.run(200);
    const real = h1.peers().get(h3.name)!;
    // The highest version h1 still finds plausible (Topology bounds versions by the wall clock + 1 h), no connections.
    const forged = { ...real, version: Date.now() + 3_600_000 - 60_000, connections: [] };
    const channel = Buffer.from(TOPOLOGY_CHANNEL);
    rogue.t.send(Buffer.concat([Buffer.of(FrameType.Gossip, channel.length), channel, encodeTopology([forged])]));
    await w.run(500);
    expect(h3.peers().get(h3.name)!.version, 'h3 heard of it and bumped past it').toBeGreaterThan(forged.version);
    const atH1 = h1.peers().get(h3.name)!;
    expect(atH1.version, 'h1 holds h3 re-published above the forgery').toBeGreaterThan(forged.version);
    expect(atH1.connections.map((c) => c.name)).toEqual([h1.name]);
    expect(h3.counters().topology_own_entry_outbid).toBe(1);
    expect(lines().filter((l) => l.reason === 'forged copy of our own topology entry')).toHaveLength(1);
  });

  it('two routers sharing a name outbid each other, and send their entry at most once a second each', async () => {
    const w = world();
    const quiet = { gossipIntervalMs: 600_000, isDiscoveryEnabled: false };
    // a - x - y - b, where b has a's name (a cloned VM): neither ever takes the other's entry, each jumps past it.
    const a = await w.add('a', 1, quiet);
    const x = await w.add('x', 2, quiet);
    const y = await w.add('y', 3, quiet);
    const b = await w.add('b', 1, { ...quiet, uid: '2001' });
    a.connect(['x'], false);
    y.connect(['x'], false);
    b.connect(['y'], false);
    await w.run(2000);
    const sentBefore = [a, b].map((m) => m.gossipStats().channels[TOPOLOGY_CHANNEL]!.messagesOut);
    await w.run(10_000);
    const sent = [a, b].map((m, i) => m.gossipStats().channels[TOPOLOGY_CHANNEL]!.messagesOut - sentBefore[i]!);
    expect(a.counters().topology_own_entry_outbid ?? 0, 'they did collide').toBeGreaterThan(0);
    // One neighbour each: at most one re-published entry per second (plus one at each end of the window).
    for (const n of sent) expect(n).toBeLessThanOrEqual(12);
    expect(x.neighbours()).toHaveLength(2);
  });
});

describe('topology summaries (issue 19; topology-summary.ts)', () => {
  const channel = Buffer.from(TOPOLOGY_CHANNEL);
  /** Topology payloads in frames a raw connection received (after the hello). */
  const topologyPayloads = (inbox: Uint8Array[]) =>
    inbox
      .slice(1)
      .filter((m) => m[0] === FrameType.Gossip && Buffer.from(m.subarray(2, 2 + channel.length)).equals(channel))
      .map((m) => Buffer.from(m.subarray(2 + channel.length)).toString());

  it('sends a router without the feature its complete state, one with it a summary, and answers a summary with what it lacks', async () => {
    const w = world();
    const h1 = await w.add('h1', 1, { summaryAboveBytes: 0 }); // summaries however small the state
    const h3 = await w.add('h3', 3);
    h3.connect(['h1'], false);
    await w.run(500);
    const old = await w.raw('old', 'h1:6783');
    old.t.send(encodeHello(helloOf('02:00:00:00:00:40', '40', 'old', false)));
    const current = await w.raw('new', 'h1:6783');
    current.t.send(encodeHello({ ...helloOf('02:00:00:00:00:41', '41', 'new', false), features: ['topology-summary'] }));
    await w.run(200);
    const fromOld = topologyPayloads(old.inbox);
    expect(fromOld[0], 'complete state to a router without the feature').toMatch(/^\[\[/);
    expect(fromOld[0]).toContain(h3.name);
    const fromNew = topologyPayloads(current.inbox);
    expect(fromNew[0], 'a summary to a router with the feature').toMatch(/^\{"k":"exchange","s":\[/);
    const sent = fromNew.length;
    // The new router says it holds nothing: h1 answers with every entry it holds.
    current.t.send(Buffer.concat([Buffer.of(FrameType.Gossip, channel.length), channel, Buffer.from('{"k":"exchange","s":[]}')]));
    await w.run(200);
    const answer = topologyPayloads(current.inbox).slice(sent).join('');
    for (const m of [h1, h3]) expect(answer).toContain(m.name);
  });

  it('answers a flood of summaries from a member a few times, counts the rest, and keeps the connection', async () => {
    const w = world();
    const h1 = await w.add('h1', 1);
    const rogue = await w.raw('evil', 'h1:6783');
    rogue.t.send(encodeHello({ ...helloOf('02:00:00:00:00:66', '66', 'evil', false), features: ['topology-summary'] }));
    await w.run(100);
    const before = topologyPayloads(rogue.inbox).length;
    for (let i = 0; i < 50; i++)
      rogue.t.send(Buffer.concat([Buffer.of(FrameType.Gossip, channel.length), channel, Buffer.from('{"k":"round","s":[]}')]));
    rogue.t.send(Buffer.concat([Buffer.of(FrameType.Gossip, channel.length), channel, Buffer.from('{"k":"round","s":[[1]]}')]));
    await w.run(500);
    expect(h1.counters().topology_summary_rate_limited).toBeGreaterThanOrEqual(45);
    expect(h1.counters().gossip_decode_error).toBe(1);
    // The answers coalesce: a few messages, not fifty.
    expect(topologyPayloads(rogue.inbox).length - before).toBeLessThanOrEqual(5);
    expect(rogue.closed).toEqual([]);
    expect(h1.neighbours().map((n) => n.nickname)).toEqual(['evil']);
  });
});
