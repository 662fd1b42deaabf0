/**
 * Healing over the MemoryNetwork with a FakeClock: how soon a partitioned or restarted peer is back, what makes us
 * dial it, and what the log and `status()` say meanwhile (docs/architecture.md, "Failure detection and healing").
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { createMemoryLogger, silentLogger, type Logger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryNetwork } from './memory-transport.js';
import { Mesh, type MeshOptions } from './mesh.js';

const seed = Number(process.env.WEFT_SEED ?? 7);

interface World {
  clock: FakeClock;
  net: MemoryNetwork;
  meshes: Mesh[];
  add(host: string, opts?: Partial<MeshOptions> & { log?: Logger }): Promise<Mesh>;
  run(ms: number): Promise<void>;
  /** Run until `done()` (checked every 10 ms) or `limitMs`; answers the time it took. */
  until(done: () => boolean, limitMs: number): Promise<number>;
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
      const { log, ...options } = opts;
      const m = new Mesh(
        { transport: net.transport(host), clock, random, log: log ?? silentLogger },
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
    async until(done, limitMs) {
      const start = clock.now();
      while (!done() && clock.now() - start < limitMs) await w.run(10);
      return clock.now() - start;
    },
  };
  worlds.push(w);
  return w;
}

const nicknames = (m: Mesh) => m.neighbours().map((n) => n.nickname);
const fullMesh = (ms: Mesh[]) => () => ms.every((m) => m.neighbours().length === ms.length - 1);

describe('Mesh healing', () => {
  it('after a 60 s isolation, h3 is back within 3 s of the links returning, though only h1 held a target; partitions are warnings', async () => {
    const w = world();
    const warn = createMemoryLogger('warn');
    const info = createMemoryLogger('info');
    const a = await w.add('h1', { log: warn.log });
    const b = await w.add('h2');
    const c = await w.add('h3', { log: info.log });
    a.connect(['h2', 'h3'], false); // h2 and h3 know each other only from gossip
    expect(await w.until(fullMesh([a, b, c]), 10_000)).toBeLessThan(10_000);

    w.net.partition('h3', 'h1');
    w.net.partition('h3', 'h2');
    await w.run(60_000);
    expect(nicknames(a)).toEqual(['h2']);
    expect(nicknames(c)).toEqual([]);
    // Both sides keep dialling: h3 had no target, yet it retries the peers it lost (every 2 s at most).
    const cTargets = c.status().targets;
    expect(cTargets.map((t) => t.address).sort()).toEqual(['h1:6783', 'h2:6783']);
    for (const t of cTargets) {
      // A dial hangs on the cut until its 5 s timeout, then waits 2 s at most.
      expect(['retrying', 'connecting']).toContain(t.state);
      if (t.state === 'retrying') expect(t.lastError !== undefined && t.nextAttemptInSeconds! <= 2).toBe(true);
    }
    // `status connections` shows every target not connected, retrying rows with their reason.
    const rows = a.status().connections.filter((r) => r.state !== 'established');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.address).toBe('h3:6783');
    expect(['retrying', 'connecting']).toContain(rows[0]!.state);
    if (rows[0]!.state === 'retrying') expect(rows[0]!.info).toMatch(/.+, retry in \ds$/);

    w.net.healAll();
    const healMs = await w.until(fullMesh([a, b, c]), 30_000);
    console.log(`heal after a 60 s isolation (memory network, seed ${seed}): ${healMs} ms`);
    expect(healMs, `seed ${seed}`).toBeLessThanOrEqual(3000);

    // h1 logs at warn: the lost connection (peer, nickname, addr, reason) and h3 becoming unreachable, once each.
    const lines = warn.lines();
    const lost = lines.filter((l) => l.msg?.toString().startsWith('lost connection to peer'));
    expect(lost).toHaveLength(1);
    expect(lost[0]).toMatchObject({ level: 40, peer: c.name, nickname: 'h3', addr: 'h3:6783' });
    expect(String(lost[0]!.reason)).toContain('partition');
    const unreachable = lines.filter((l) => l.msg?.toString().startsWith('peer unreachable'));
    expect(unreachable).toHaveLength(1);
    expect(unreachable[0]).toMatchObject({ level: 40, peer: c.name, nickname: 'h3' });
    // h3 says at info when its peers are back.
    const back = info.lines().filter((l) => l.msg === 'reconnected to peer');
    expect(back.map((l) => l.nickname).sort()).toEqual(['h1', 'h2']);
    expect(a.counters().peer_lost).toBe(1);
    expect(a.counters().peer_unreachable).toBeGreaterThanOrEqual(1);
  });

  it('a restarted router is dialled at once when gossip shows its new uid, whatever the back-off', async () => {
    const w = world();
    const slow = { maxBackoffMs: 120_000, lostPeerMaxBackoffMs: 120_000, initialBackoffMs: 30_000 };
    const a = await w.add('h1', slow);
    const b = await w.add('h2', slow);
    const c = await w.add('h3', slow);
    a.connect(['h2', 'h3'], false);
    b.connect(['h3'], false);
    expect(await w.until(fullMesh([a, b, c]), 10_000)).toBeLessThan(10_000);

    // h3 dies silently; h1 and h2 notice by heartbeat timeout and would wait 30 s and more before dialling again.
    w.net.crash('h3');
    await c.stop();
    w.meshes.splice(w.meshes.indexOf(c), 1);
    await w.run(8_000);
    expect(nicknames(a)).toEqual(['h2']);
    const reborn = await w.add('h3', { ...slow, peerName: c.name, uid: '4243', nickname: 'h3' });
    reborn.connect(['h2'], false); // it knows only h2; h1 learns of its new uid from h2's gossip
    const healMs = await w.until(fullMesh([a, b, reborn]), 20_000);
    console.log(`restarted router back in the mesh (memory network, seed ${seed}): ${healMs} ms`);
    expect(healMs, `seed ${seed}`).toBeLessThanOrEqual(2000);
    expect(a.counters().dial_woken ?? 0).toBeGreaterThanOrEqual(1);
  });

  it('peerSeen dials a lost peer at once; a storm of them dials at most every 500 ms', async () => {
    const w = world();
    const slow = { maxBackoffMs: 120_000, lostPeerMaxBackoffMs: 120_000, initialBackoffMs: 60_000, isDiscoveryEnabled: false };
    const a = await w.add('h1', slow);
    const b = await w.add('h2', slow);
    a.connect(['h2'], false);
    expect(await w.until(fullMesh([a, b]), 5_000)).toBeLessThan(5_000);
    w.net.partition('h1', 'h2');
    await w.run(1_000);
    expect(nicknames(a)).toEqual([]);
    // Still cut: each sign of life costs a dial (a swallowed SYN), no more than one per 500 ms.
    let dials = 0;
    for (let i = 0; i < 30; i++) {
      a.peerSeen(b.name);
      await w.run(100);
      if (a.status().targets[0]!.state === 'connecting') dials++;
    }
    // A woken dial hangs on the cut until its connect timeout (1.5 s for a lost peer), and signs of life meanwhile do
    // not start another: 3 s of them wake at most 2 dials (3 if they fell at 0, 1.5 and 3 s).
    expect(a.counters().dial_woken ?? 0).toBeGreaterThanOrEqual(1);
    expect(a.counters().dial_woken ?? 0).toBeLessThanOrEqual(3);
    w.net.heal('h1', 'h2');
    await w.run(1_600); // the swallowed dial times out
    a.peerSeen(b.name);
    const healMs = await w.until(fullMesh([a, b]), 10_000);
    expect(healMs, `seed ${seed}`).toBeLessThanOrEqual(1000);
    expect(dials).toBeGreaterThan(0);
  });

  it('status connections shows a dial in progress, as status targets does', async () => {
    const w = world();
    const a = await w.add('h1');
    await w.add('h2');
    w.net.partition('h1', 'h2'); // the SYN is swallowed: the dial stays in progress until its timeout
    a.connect(['h2'], false);
    await w.run(1_000);
    expect(a.status().targets).toEqual([{ address: 'h2:6783', state: 'connecting' }]);
    expect(a.status().connections).toEqual([
      { direction: '->', address: 'h2:6783', state: 'connecting', info: 'dialling', isEncrypted: false },
    ]);
    await w.run(4_100); // the dial timed out at 5 s; the next is at most 2 s later
    const [row] = a.status().connections;
    expect(row).toMatchObject({ state: 'retrying' });
    expect(row!.info).toMatch(/.+, retry in \ds$/);
  });
});
