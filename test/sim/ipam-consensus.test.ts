/**
 * IPAM start-up in simulation: consensus among three peers, an observer served by donation, separately seeded
 * groups that refuse to merge, a claim across peers, rmpeer and its refusals.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Allocator, type IpamInit } from '../../ipam/allocator.js';
import { IpamConflictError, IpamNotReadyError, IpamRemovedError, IpamRmpeerError } from '../../ipam/errors.js';
import { parseAddress } from '../../ipam/address.js';
import { FakeClock } from '../../runtime/clock.js';
import { createMemoryLogger } from '../../runtime/logger.js';
import { SeededRandom } from '../../runtime/random.js';
import { MemoryStore } from '../../runtime/store.js';
import { IpamFabric, advance } from './ipam-fabric.js';

const seed = Number(process.env.WEFT_SIM_SEED ?? 7);

interface Peer {
  name: string;
  alloc: Allocator;
  store: MemoryStore;
  lines: () => Array<Record<string, unknown>>;
}

function makeWorld(range = '10.32.0.0/12') {
  const clock = new FakeClock();
  const random = new SeededRandom(seed);
  const fabric = new IpamFabric(clock, random, { gossipIntervalMs: 100 });
  const peers = new Map<string, Peer>();
  const start = (name: string, init: IpamInit, store = new MemoryStore()): Peer => {
    const { log, lines } = createMemoryLogger('info');
    const alloc = new Allocator(
      { clock, random, log, store },
      { ourName: name, ourNickname: `nick-${name}`, range, init, readyTimeoutMs: 5_000, requestTimeoutMs: 200, consensusRetryMs: 100 },
    );
    alloc.start();
    alloc.attach(fabric.add(name, alloc));
    const p = { name, alloc, store, lines };
    peers.set(name, p);
    return p;
  };
  const updateReachability = (): void => {
    for (const p of peers.values()) p.alloc.setReachablePeers(fabric.reachableFrom(p.name));
  };
  return { clock, fabric, peers, start, updateReachability };
}

let cleanup: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

/** Who owns what, without versions and free hints (those move with every allocation). */
function ownership(p: Peer): string {
  return JSON.stringify(
    p.alloc
      .ringSnapshot()
      .segments()
      .map((s) => [s.range.start, s.owner]),
  );
}

function expectUniqueAcross(peers: Iterable<Peer>): void {
  const seen = new Map<string, string>();
  for (const p of peers) {
    for (const [addr, ident] of p.alloc.holdings()) {
      const key = addr.split('/')[0]!;
      expect(seen.get(key), `${key} held by ${seen.get(key)} and ${p.name}/${ident}`).toBeUndefined();
      seen.set(key, `${p.name}/${ident}`);
    }
  }
}

describe('IPAM consensus and seeding (simulation)', () => {
  it('three consensus peers agree on one ring, and an observer gets space by donation', async () => {
    const w = makeWorld();
    cleanup.push(() => w.fabric.close());
    const init: IpamInit = { mode: 'consensus', quorum: 3 };
    const [a, b, c] = ['aa:00:00:00:00:01', 'aa:00:00:00:00:02', 'aa:00:00:00:00:03'].map((n) => w.start(n, init));
    w.updateReachability();

    // Nobody asked for an address yet: no ring, idle.
    await advance(w.clock, 300, 10);
    expect(a!.alloc.status(new Set(), new Map()).status).toBe('idle');

    // The first allocation starts Paxos; all three end with the same ring, split three ways.
    const first = a!.alloc.allocate('c1');
    await advance(w.clock, 500, 2);
    expect(await first).toMatch(/^10\.3\d?\.\d+\.\d+\/12$/);
    for (const p of [a, b, c]) {
      const ring = p!.alloc.ringSnapshot();
      ring.checkInvariants();
      expect(ring.seeds).toEqual([a!.name, b!.name, c!.name]);
      expect(ring.equals(a!.alloc.ringSnapshot())).toBe(true);
    }
    const report = b!.alloc.status(new Set([a!.name, c!.name]), new Map([[a!.name, 'host-a']]));
    expect(report.status).toBe('ready');
    expect(report.peers.map((p) => p.share.toFixed(3))).toEqual(['0.333', '0.333', '0.333']);
    expect(report.peers.find((p) => p.name === a!.name)!.nickname).toBe('host-a');

    // A fourth peer joins as an observer: it owns nothing, learns the ring by gossip, and gets space when it asks.
    const d = w.start('aa:00:00:00:00:04', { mode: 'observer' });
    w.updateReachability();
    const got = d.alloc.allocate('d1');
    await advance(w.clock, 300, 2);
    expect(await got).toMatch(/\/12$/);
    expect(d.alloc.ringSnapshot().ownedBy(d.name).length).toBeGreaterThan(0);
    await advance(w.clock, 300, 5);
    for (const p of w.peers.values()) {
      p.alloc.ringSnapshot().checkInvariants();
      expect(p.alloc.ringSnapshot().equals(d.alloc.ringSnapshot())).toBe(true);
    }
    expectUniqueAcross(w.peers.values());
  });

  it('a minority of consensus peers cannot form a ring, and says so after the timeout', async () => {
    const w = makeWorld();
    cleanup.push(() => w.fabric.close());
    const a = w.start('aa:00:00:00:00:01', { mode: 'consensus', quorum: 3 });
    const pending = a.alloc.allocate('c1').catch((e: unknown) => e);
    await advance(w.clock, 5_100, 50);
    const err = await pending;
    expect(err).toBeInstanceOf(IpamNotReadyError);
    expect((err as Error).message).toMatch(/awaiting consensus/);
  });

  it('two separately seeded pairs refuse to merge, log why, and keep allocating from their own rings', async () => {
    const w = makeWorld();
    cleanup.push(() => w.fabric.close());
    const left = ['bb:00:00:00:00:01', 'bb:00:00:00:00:02'];
    const right = ['cc:00:00:00:00:01', 'cc:00:00:00:00:02'];
    w.fabric.partition([left, right]);
    const ps = [
      ...left.map((n) => w.start(n, { mode: 'seed', peers: left })),
      ...right.map((n) => w.start(n, { mode: 'seed', peers: right })),
    ];
    w.updateReachability();
    for (const p of ps) await p.alloc.allocate('x');
    const before = ps.map((p) => ({ seeds: p.alloc.ringSnapshot().seeds, owners: ownership(p) }));

    // The groups meet.
    w.fabric.heal();
    w.updateReachability();
    await advance(w.clock, 500, 10);

    ps.forEach((p, i) => expect({ seeds: p.alloc.ringSnapshot().seeds, owners: ownership(p) }).toEqual(before[i]));
    expect(ps[0]!.alloc.counters.ring_mismatch).toBeGreaterThan(0);
    const line = ps[0]!.lines().find((l) => l.msg === 'ipam: refused a ring initialised separately');
    expect(line).toBeDefined();
    const err = line!.err as { message: string; code?: string };
    expect(err.message).toMatch(/initialised separately/);
    expect(err.message).toMatch(/weft reset/);
    // Same range, separate rings: both sides may hand out the same address, which is exactly why the merge is refused
    // loudly; each ring on its own stays consistent.
    for (const p of ps) p.alloc.ringSnapshot().checkInvariants();
  });

  it('claims an exact address owned by another peer, and refuses one held elsewhere, naming the holder', async () => {
    const w = makeWorld();
    cleanup.push(() => w.fabric.close());
    const names = ['dd:00:00:00:00:01', 'dd:00:00:00:00:02'];
    const [a, b] = names.map((n) => w.start(n, { mode: 'seed', peers: names }));
    w.updateReachability();
    // 10.40.0.9 lies in the second half of 10.32.0.0/12: b's.
    expect(a!.alloc.ringSnapshot().ownerOf(parseAddress('10.40.0.9'))).toBe(b!.name);
    const claimed = a!.alloc.claim('web', '10.40.0.9');
    await advance(w.clock, 100, 2);
    expect(await claimed).toBe('10.40.0.9/12');
    await expect(a!.alloc.claim('web', '10.40.0.9')).resolves.toBe('10.40.0.9/12');
    const refused = b!.alloc.claim('db', '10.40.0.9').catch((e: unknown) => e);
    await advance(w.clock, 100, 2);
    const err = (await refused) as IpamConflictError;
    expect(err).toBeInstanceOf(IpamConflictError);
    expect(err.message).toContain('web');
    expect(err.message).toContain(a!.name);
    // Outside the range: not IPAM's business, returned as given.
    expect(await a!.alloc.claim('ext', '192.168.1.5/24')).toBe('192.168.1.5/24');
  });

  it('in a partition, fails fast when only unreachable peers own the subnet, naming them, and succeeds after healing', async () => {
    const w = makeWorld();
    cleanup.push(() => w.fabric.close());
    const names = ['ab:00:00:00:00:01', 'ab:00:00:00:00:02'];
    const [a, b] = names.map((n) => w.start(n, { mode: 'seed', peers: names }));
    w.fabric.partition([[a!.name], [b!.name]]);
    w.updateReachability();
    // 10.33.0.0/24 lies in a's half of the range.
    const refused = b!.alloc.allocate('c1', '10.33.0.0/24').catch((e: unknown) => e);
    await advance(w.clock, 10, 1);
    const err = (await refused) as Error & { code: string };
    expect(err.code).toBe('ERR_IPAM_EXHAUSTED');
    expect(err.message).toContain(`unreachable peers own part of it: ${a!.name}`);
    w.fabric.heal();
    w.updateReachability();
    const granted = b!.alloc.allocate('c1', '10.33.0.0/24');
    await advance(w.clock, 50, 1);
    expect(await granted).toBe('10.33.0.128/24'); // the upper half of a's usable .1-.254
  });

  it('rmpeer takes over a dead peer once, refuses live peers and second takers, and the dead peer stays removed', async () => {
    const w = makeWorld();
    cleanup.push(() => w.fabric.close());
    const names = ['ee:00:00:00:00:01', 'ee:00:00:00:00:02', 'ee:00:00:00:00:03'];
    const [a, b, c] = names.map((n) => w.start(n, { mode: 'seed', peers: names }));
    w.updateReachability();
    await c!.alloc.allocate('old');

    await expect(a!.alloc.rmpeer(a!.name)).rejects.toThrow(IpamRmpeerError);
    await expect(a!.alloc.rmpeer(c!.name)).rejects.toThrow(/reachable/);

    // c dies (its state stays in its store).
    c!.alloc.stop();
    w.fabric.remove(c!.name);
    w.updateReachability();
    const moved = await a!.alloc.rmpeer(c!.name);
    expect(moved).toBeGreaterThan(0);
    expect(await a!.alloc.rmpeer(c!.name)).toBe(0);
    await advance(w.clock, 200, 5);
    await expect(b!.alloc.rmpeer(c!.name)).rejects.toThrow(/already taken over by/);
    expect(b!.alloc.ringSnapshot().ownedBy(c!.name)).toEqual([]);

    // c comes back from its old state: it learns it was removed and refuses to allocate.
    const c2 = w.start(c!.name, { mode: 'seed', peers: names }, c!.store);
    w.updateReachability();
    await advance(w.clock, 300, 5);
    await expect(c2.alloc.allocate('new')).rejects.toThrow(IpamRemovedError);
    expectUniqueAcross([a!, b!]);
  });

  it('comes back from the Store after a restart with the same ring and holdings', async () => {
    const w = makeWorld();
    cleanup.push(() => w.fabric.close());
    const names = ['ff:00:00:00:00:01', 'ff:00:00:00:00:02'];
    const [a] = names.map((n) => w.start(n, { mode: 'seed', peers: names }));
    const addr = await a!.alloc.allocate('keep', '10.32.5.0/24');
    const owners = ownership(a!);
    a!.alloc.stop();
    const again = w.start(a!.name, { mode: 'observer' }, a!.store);
    expect(ownership(again)).toBe(owners);
    expect(again.alloc.holdings()).toEqual(new Map([[addr, 'keep']]));
    expect(await again.alloc.allocate('keep', '10.32.5.0/24')).toBe(addr);
    expect(again.alloc.release('keep')).toBe(1);
  });
});
