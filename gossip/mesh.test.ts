import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { createMemoryLogger, silentLogger, type Logger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import type { ConnectionSecurity } from '../crypto/connection-security.js';
import type { Gossiper } from './channel.js';
import { FakeConnectionSecurity } from './fake-security.js';
import { MemoryNetwork } from './memory-transport.js';
import { Mesh, type MeshOptions } from './mesh.js';
import { WsTransport } from './ws-transport.js';
import { systemClock } from '../runtime/clock.js';

const seed = Number(process.env.WEFT_SEED ?? 7);

interface World {
  clock: FakeClock;
  net: MemoryNetwork;
  meshes: Mesh[];
  add(host: string, opts?: Partial<MeshOptions> & { security?: ConnectionSecurity; log?: Logger }): Promise<Mesh>;
  run(ms: number): Promise<void>;
}

const worlds: World[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) for (const m of w.meshes) await m.stop();
});

function world(): World {
  const clock = new FakeClock();
  const net = new MemoryNetwork(clock, { latencyMs: 2 });
  const random = new SeededRandom(seed);
  const w: World = {
    clock,
    net,
    meshes: [],
    async add(host, opts = {}) {
      const i = w.meshes.length + 1;
      const { security, log, ...options } = opts;
      const m = new Mesh(
        { transport: net.transport(host), clock, random, log: log ?? silentLogger, security },
        { peerName: `02:00:00:00:00:${i.toString(16).padStart(2, '0')}`, nickname: host, uid: String(1000 + i), udpPort: 6784, ...options },
      );
      await m.start();
      w.meshes.push(m);
      return m;
    },
    async run(ms) {
      for (let t = 0; t < ms; t += 10) {
        clock.advance(10);
        await new Promise((r) => setImmediate(r));
      }
    },
  };
  worlds.push(w);
  return w;
}

describe('Mesh', () => {
  it('connects, learns the topology, discovers the missing link and routes directly', async () => {
    const w = world();
    const a = await w.add('h1');
    const b = await w.add('h2');
    const c = await w.add('h3');
    a.connect(['h2'], false);
    c.connect(['h2:6783'], false);
    await w.run(3000);
    for (const m of [a, b, c]) expect([...m.peers().keys()].sort(), `seed ${seed}`).toEqual([a.name, b.name, c.name]);
    // Discovery: h1 and h3 learned each other from h2's entry and connected.
    expect(a.neighbours().map((n) => n.nickname)).toEqual(['h2', 'h3']);
    expect(a.routes().unicast.get(c.name)).toBe(c.name);
    expect(a.neighbours()[0]).toMatchObject({ remoteHost: 'h2', udpPort: 6784, isEstablished: true, session: null });
    const report = a.status();
    // Discovered targets leave the list once their peer is connected; direct ones stay.
    expect(report.targets).toEqual([{ address: 'h2:6783', state: 'connected' }]);
    expect(
      report.connections.every((x) => x.state === 'established'),
      JSON.stringify(report.connections),
    ).toBe(true);
    expect(report.peers.map((p) => p.nickname)).toEqual(['h1', 'h2', 'h3']);
  });

  it('takes back a crashed and restarted peer at once, but refuses a live clone of it', async () => {
    const w = world();
    const a = await w.add('h1');
    const b = await w.add('h2');
    b.connect(['h1'], false);
    await w.run(2000);
    expect(a.neighbours().map((n) => n.nickname)).toEqual(['h2']);

    // A clone of h2 (same name, another uid) while h2 is alive and heartbeating: refused.
    const clone = await w.add('h9', { peerName: b.name, uid: '9999', nickname: 'h2-clone' });
    clone.connect(['h1'], false);
    await w.run(1500);
    expect(a.neighbours().map((n) => n.nickname)).toEqual(['h2']);
    await clone.stop();

    // h2 crashes (no close reaches h1) and comes back 2.5 s later with a new uid, well before h1's 5 s heartbeat
    // timeout would have dropped the old link: h1 replaces the silent connection with the new one.
    w.net.crash('h2');
    await b.stop();
    await w.run(2500);
    const reborn = await w.add('h2', { peerName: b.name, uid: '4242', nickname: 'h2' });
    reborn.connect(['h1'], false);
    await w.run(500);
    expect(a.status().peers.find((p) => p.name === b.name)?.uid).toBe('4242');
    expect(a.neighbours().map((n) => n.nickname)).toEqual(['h2']);
  });

  it("refuses a peer whose name another live router holds elsewhere in the mesh, but takes a restarted one's new uid", async () => {
    const w = world();
    const opts = { isDiscoveryEnabled: false };
    const logs = createMemoryLogger('warn');
    const a = await w.add('h1', { ...opts, log: logs.log });
    const b = await w.add('h2', opts);
    const N = '02:00:00:00:00:77';
    const original = await w.add('n1', { ...opts, peerName: N, uid: '7001', nickname: 'n' });
    b.connect(['h1'], false);
    original.connect(['h2'], false);
    await w.run(2000);
    expect(a.status().peers.find((p) => p.name === N)?.uid).toBe('7001');

    // A clone of n (its name, another uid) dials h1, which has no connection to n: nothing to tell yet, so h1
    // takes it. The two then outbid each other's entry; when the original's uid comes back at h1, h1 knows both
    // are alive, keeps the uid that held the name first and closes the clone, and refuses it from then on.
    const clone = await w.add('n2', { ...opts, peerName: N, uid: '7002', nickname: 'n-clone' });
    clone.connect(['h1'], false);
    await w.run(6000);
    expect(a.counters()['peer_name_collision']).toBeGreaterThanOrEqual(1);
    expect(a.neighbours().map((n) => n.nickname)).toEqual(['h2']);
    expect(clone.neighbours()).toEqual([]);
    expect(a.status().peers.find((p) => p.name === N)?.uid).toBe('7001');
    expect(logs.lines().filter((l) => /held by two live routers .*keeping uid 7001/.test(String(l['msg'])))).toHaveLength(1);
    await clone.stop();

    // The original restarts (a new uid, once, never back): that is not a collision, and the new uid gets in.
    await original.stop();
    await w.run(1000);
    const before = a.counters()['peer_name_collision'] ?? 0;
    const reborn = await w.add('n3', { ...opts, peerName: N, uid: '7003', nickname: 'n' });
    reborn.connect(['h2', 'h1'], false);
    await w.run(3000);
    expect(a.counters()['peer_name_collision'] ?? 0).toBe(before);
    expect(a.status().peers.find((p) => p.name === N)?.uid).toBe('7003');
    expect(a.neighbours().map((n) => n.nickname)).toEqual(['h2', 'n']);
  });

  it('keeps a confirmed data path across a reconnect: the new connection is established at once', async () => {
    const w = world();
    const opts = { isDiscoveryEnabled: false, requireDataPathConfirm: true };
    const a = await w.add('h1', opts);
    const b = await w.add('h2', opts);
    b.connect(['h1'], false);
    await w.run(2000);
    a.setDataPathEstablished(b.name, true);
    b.setDataPathEstablished(a.name, true);
    await w.run(100);
    expect(a.status().connections.map((c) => c.state)).toEqual(['established']);
    // The control connection flaps (as when a duplicate is resolved or a link blips) while the UDP path never
    // noticed, so the datapath reports no change: the replacement must not be left pending.
    w.net.partition('h1', 'h2');
    await w.run(100);
    w.net.heal('h1', 'h2');
    await w.run(5000);
    expect(a.status().connections.map((c) => c.state)).toEqual(['established']);
    expect(b.status().connections.map((c) => c.state)).toEqual(['established']);
    expect(a.routes().unicast.get(b.name)).toBe(b.name);
  });

  it('keeps exactly one connection when two peers dial each other at once', async () => {
    const w = world();
    const a = await w.add('h1', { isDiscoveryEnabled: false });
    const b = await w.add('h2', { isDiscoveryEnabled: false });
    a.connect(['h2'], false);
    b.connect(['h1'], false);
    await w.run(5000);
    expect(a.neighbours()).toHaveLength(1);
    expect(b.neighbours()).toHaveLength(1);
    expect(w.net.openConnectionEnds).toBe(2);
    // The kept connection is the one the smaller name (h1) initiated.
    expect(a.neighbours()[0]!.isOutbound).toBe(true);
    expect(b.neighbours()[0]!.isOutbound).toBe(false);
    await w.run(60_000);
    expect(w.net.openConnectionEnds).toBe(2);
  });

  it('holds connections pending until the data path is confirmed on both ends', async () => {
    const w = world();
    const a = await w.add('h1', { requireDataPathConfirm: true });
    const b = await w.add('h2', { requireDataPathConfirm: true });
    a.connect(['h2'], false);
    await w.run(500);
    expect(a.status().connections[0]!.state).toBe('pending');
    expect(a.routes().unicast.size).toBe(0);
    a.setDataPathEstablished(b.name, true);
    await w.run(100);
    expect(a.routes().unicast.size).toBe(0); // b still calls it pending
    b.setDataPathEstablished(a.name, true);
    await w.run(100);
    expect(a.routes().unicast.get(b.name)).toBe(b.name);
    a.setDataPathEstablished(b.name, false);
    await w.run(100);
    expect(b.routes().unicast.size).toBe(0);
  });

  it('carries gossip unicasts and broadcasts over connections still waiting for their data path', async () => {
    const w = world();
    const got: string[] = [];
    const gossiper: Gossiper = {
      gossip: () => null,
      onGossip: () => null,
      onGossipBroadcast: (_src, u) => void got.push(`b:${Buffer.from(u)}`),
      onGossipUnicast: (_src, m) => void got.push(`u:${Buffer.from(m)}`),
    };
    const opts = { isDiscoveryEnabled: false, requireDataPathConfirm: true };
    const [a, b, c] = [await w.add('h1', opts), await w.add('h2', opts), await w.add('h3', opts)];
    const ch = a.channel('test', gossiper);
    b.channel('test', gossiper);
    c.channel('test', gossiper);
    a.connect(['h2'], false);
    b.connect(['h3'], false);
    await w.run(2000);
    // Nobody confirmed a data path: no data-plane route, yet control messages reach h3 through h2.
    expect(a.routes().unicast.get(c.name)).toBeUndefined();
    expect(a.status().connections.map((x) => x.state)).toEqual(['pending']);
    expect(ch.gossipUnicast(c.name, Buffer.from('direct'))).toBe(true);
    ch.gossipBroadcast(Buffer.from('all'));
    await w.run(100);
    expect(got.sort()).toEqual(['b:all', 'b:all', 'u:direct']);
  });

  it('carries channel gossip, broadcasts and unicasts to every peer', async () => {
    const w = world();
    const got = new Map<string, string[]>();
    const gossiper = (host: string): Gossiper => ({
      gossip: () => null,
      onGossip: (u) => {
        got.set(host, [...(got.get(host) ?? []), `g:${Buffer.from(u)}`]);
        return null;
      },
      onGossipBroadcast: (_src, u) => void got.set(host, [...(got.get(host) ?? []), `b:${Buffer.from(u)}`]),
      onGossipUnicast: (_src, m) => void got.set(host, [...(got.get(host) ?? []), `u:${Buffer.from(m)}`]),
    });
    const hosts = ['h1', 'h2', 'h3', 'h4'];
    const meshes: Mesh[] = [];
    const channels = [];
    for (const h of hosts) {
      const m = await w.add(h, { isDiscoveryEnabled: false });
      meshes.push(m);
      channels.push(m.channel('test', gossiper(h)));
    }
    // A line: h1 - h2 - h3 - h4.
    meshes[0]!.connect(['h2'], false);
    meshes[1]!.connect(['h3'], false);
    meshes[2]!.connect(['h4'], false);
    await w.run(2000);
    channels[0]!.gossipBroadcast(Buffer.from('hello'));
    expect(channels[0]!.gossipUnicast(meshes[3]!.name, Buffer.from('direct'))).toBe(true);
    channels[0]!.gossip(Buffer.from('nbr'));
    await w.run(100);
    expect(got.get('h4')).toEqual(['b:hello', 'u:direct']);
    expect(got.get('h3')).toEqual(['b:hello']);
    expect(got.get('h2')).toEqual(['b:hello', 'g:nbr']);
    expect(got.has('h1')).toBe(false);
  });

  it('refuses a wrong password and reports it; the same password connects encrypted', async () => {
    const w = world();
    const { log, lines } = createMemoryLogger();
    const a = await w.add('h1', { security: new FakeConnectionSecurity('one'), log });
    await w.add('h2', { security: new FakeConnectionSecurity('two') });
    const c = await w.add('h3', { security: new FakeConnectionSecurity('one') });
    a.connect(['h2', 'h3'], false);
    await w.run(3000);
    expect(a.neighbours().map((n) => n.name)).toEqual([c.name]);
    expect(a.neighbours()[0]!.session).not.toBeNull();
    expect(lines().some((l) => l.reason === 'password mismatch' && l.addr === 'h2:6783' && l.nickname === 'h2')).toBe(true);
    expect(a.status().connections.find((x) => x.address === 'h2:6783')).toMatchObject({ state: 'retrying' });
    expect(a.counters().password_mismatch).toBeGreaterThan(0);
  });

  it('stops idempotently, and a stopped mesh refuses new connections', async () => {
    const w = world();
    const a = await w.add('h1');
    const b = await w.add('h2');
    b.connect(['h1'], false);
    await w.run(500);
    await a.stop();
    await a.stop();
    await w.run(6000);
    expect(b.neighbours()).toEqual([]);
    expect(b.peers().size).toBe(1);
  });

  it('fires onChange once per tick of changes', async () => {
    const w = world();
    const a = await w.add('h1');
    await w.add('h2');
    let calls = 0;
    a.onChange(() => calls++);
    a.connect(['h2'], false);
    await w.run(500);
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThan(10);
  });

  it('works over WebSocket on 127.0.0.1 with real timers', async () => {
    const make = (i: number) =>
      new Mesh(
        {
          transport: new WsTransport(),
          clock: systemClock,
          random: new SeededRandom(i),
          log: silentLogger,
          security: new FakeConnectionSecurity('pw'),
        },
        { peerName: `02:00:00:00:00:0${i}`, nickname: `h${i}`, uid: String(i), listenAddr: '127.0.0.1:0', heartbeatMs: 50 },
      );
    const a = make(1);
    const b = make(2);
    try {
      await a.start();
      await b.start();
      b.connect([a.listenAddress!], false);
      for (let i = 0; i < 200 && a.peers().size < 2; i++) await new Promise((r) => setTimeout(r, 10));
      expect([...a.peers().keys()].sort()).toEqual([a.name, b.name]);
      expect(a.neighbours()[0]!.session).not.toBeNull();
      expect(a.status().connections[0]).toMatchObject({ direction: '<-', state: 'established', isEncrypted: true });
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});
