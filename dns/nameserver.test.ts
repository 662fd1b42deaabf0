/**
 * The nameserver over a small in-test gossip fabric: ownership, restarts, partitions and rmpeer, with a FakeClock.
 * Links can be cut; `settle()` delivers until nothing is left in flight, `heal()` does what a new connection does
 * (a full exchange both ways).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { GossipChannel } from '../gossip/channel.js';
import { FakeClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { MemoryStore } from '../runtime/store.js';
import { Nameserver } from './nameserver.js';

const names = ['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03'];

class Fabric {
  readonly clock = new FakeClock(1_000);
  readonly nodes = new Map<string, Nameserver>();
  readonly stores = new Map<string, MemoryStore>();
  private readonly cut = new Set<string>();
  private queue: Array<{ from: string; to: string; bytes: Uint8Array }> = [];
  wall = 1_700_000_000_000;

  add(name: string, store = this.stores.get(name) ?? new MemoryStore()): Nameserver {
    this.stores.set(name, store);
    const ns = new Nameserver(
      { clock: this.clock, log: silentLogger, store, wallNow: () => this.wall },
      { ourName: name, tombstoneLifetimeMs: 60_000 },
    );
    const channel: GossipChannel = {
      name: 'dns',
      gossip: (u) => this.sendToNeighbours(name, u),
      gossipBroadcast: (u) => this.sendToNeighbours(name, u),
      gossipTo: () => false,
      gossipUnicast: () => false,
    };
    ns.attach(channel);
    this.nodes.set(name, ns);
    ns.start();
    return ns;
  }

  remove(name: string): void {
    this.nodes.get(name)?.stop();
    this.nodes.delete(name);
  }

  isCut(a: string, b: string): boolean {
    return this.cut.has([a, b].sort().join());
  }

  partition(a: string, b: string): void {
    this.cut.add([a, b].sort().join());
  }

  /** Undo the cut and exchange full state both ways, as a new connection does. */
  heal(a: string, b: string): void {
    this.cut.delete([a, b].sort().join());
    this.fullExchange(a, b);
  }

  fullExchange(a: string, b: string): void {
    for (const [x, y] of [
      [a, b],
      [b, a],
    ] as const) {
      const state = this.nodes.get(x)?.gossip();
      if (state) this.queue.push({ from: x, to: y, bytes: state });
    }
    this.settle();
  }

  settle(): void {
    for (let i = 0; i < 10_000 && this.queue.length > 0; i++) {
      const { from, to, bytes } = this.queue.shift()!;
      const node = this.nodes.get(to);
      if (!node || this.isCut(from, to)) continue;
      const delta = node.onGossip(bytes);
      if (delta) this.sendToNeighbours(to, delta, from);
    }
  }

  lookup(name: string, fqdn: string): string[] {
    return this.nodes.get(name)!.addressesOf(fqdn);
  }

  private sendToNeighbours(from: string, bytes: Uint8Array, except?: string): void {
    for (const to of this.nodes.keys()) if (to !== from && to !== except && !this.isCut(from, to)) this.queue.push({ from, to, bytes });
  }
}

function threeRouters(): Fabric {
  const f = new Fabric();
  for (const n of names) f.add(n);
  return f;
}

describe('Nameserver', () => {
  it('a registered name reaches every router; removal is a tombstone every router applies', () => {
    const f = threeRouters();
    f.nodes.get(names[0]!)!.register('Web', ['10.32.0.5/12'], 'attach:c1');
    f.settle();
    for (const n of names) expect(f.lookup(n, 'web.weft.local.')).toEqual(['10.32.0.5']);
    f.nodes.get(names[0]!)!.withdraw('attach:c1');
    f.settle();
    for (const n of names) {
      expect(f.lookup(n, 'web.weft.local.')).toEqual([]);
      expect(f.nodes.get(n)!.records.get(names[0]!, 'web.weft.local.', '10.32.0.5')?.isTombstone).toBe(true);
    }
  });

  it('forgets tombstones after their lifetime, everywhere, without bringing them back through gossip', () => {
    const f = threeRouters();
    const a = f.nodes.get(names[0]!)!;
    a.register('web', ['10.32.0.5'], 'manual');
    f.settle();
    a.withdraw('manual');
    f.settle();
    f.clock.advance(30_000);
    // A full exchange half-way through passes the tombstone on with its remaining time, not a fresh lifetime.
    f.fullExchange(names[1]!, names[2]!);
    f.clock.advance(31_000);
    for (const n of names) expect(f.nodes.get(n)!.records.size).toBe(0);
    f.fullExchange(names[0]!, names[1]!);
    f.fullExchange(names[1]!, names[2]!);
    for (const n of names) expect(f.nodes.get(n)!.records.size).toBe(0);
  });

  it('partition: a name removed on h1 while h3 is cut off is forgotten by h3 when the partition heals', () => {
    const f = threeRouters();
    const [h1, h2, h3] = names as [string, string, string];
    f.nodes.get(h1)!.register('db', ['10.32.0.7'], 'manual');
    f.settle();
    f.partition(h1, h3);
    f.partition(h2, h3);
    f.nodes.get(h1)!.withdraw('manual');
    f.settle();
    expect(f.lookup(h2, 'db.weft.local.')).toEqual([]);
    expect(f.lookup(h3, 'db.weft.local.')).toEqual(['10.32.0.7']);
    f.heal(h2, h3);
    f.heal(h1, h3);
    expect(f.lookup(h3, 'db.weft.local.')).toEqual([]);
  });

  it('partition longer than the tombstone lifetime: the owner withdraws its stale record again when it comes back', () => {
    const f = threeRouters();
    const [h1, h2, h3] = names as [string, string, string];
    f.nodes.get(h1)!.register('db', ['10.32.0.7'], 'manual');
    f.settle();
    f.partition(h1, h3);
    f.partition(h2, h3);
    f.nodes.get(h1)!.withdraw('manual');
    f.settle();
    f.clock.advance(120_000);
    f.heal(h2, h3);
    // h2 forgot the tombstone and takes h3's stale copy; the owner h1 answers it with a new tombstone.
    f.heal(h1, h3);
    f.fullExchange(h1, h2);
    for (const n of names) expect(f.lookup(n, 'db.weft.local.')).toEqual([]);
  });

  it('owner restart with its state: republishes current records and withdraws those of containers gone meanwhile', () => {
    const f = threeRouters();
    const [h1, h2] = names as [string, string];
    f.nodes.get(h1)!.register('keep', ['10.32.0.1'], 'attach:c1');
    f.nodes.get(h1)!.register('gone', ['10.32.0.2'], 'attach:c2');
    f.settle();
    f.remove(h1);
    f.wall += 5_000;
    const again = f.add(h1);
    again.reconcile((s) => s !== 'attach:c2');
    f.settle();
    f.fullExchange(h1, h2);
    for (const n of names) {
      expect(f.lookup(n, 'keep.weft.local.')).toEqual(['10.32.0.1']);
      expect(f.lookup(n, 'gone.weft.local.')).toEqual([]);
    }
  });

  it('owner restart with a wiped state dir: records of its former life are withdrawn when they come back by gossip', () => {
    const f = threeRouters();
    const [h1, h2] = names as [string, string];
    f.nodes.get(h1)!.register('old', ['10.32.0.3'], 'manual');
    f.settle();
    f.remove(h1);
    f.stores.delete(h1);
    f.wall -= 60_000; // and its clock went back: versions still win because it learns the old one first
    f.add(h1);
    f.fullExchange(h1, h2);
    for (const n of names) expect(f.lookup(n, 'old.weft.local.')).toEqual([]);
  });

  it('rmpeer takes a router that is gone for good away with all its records, on every router', () => {
    const f = threeRouters();
    const [h1, h2, h3] = names as [string, string, string];
    f.nodes.get(h3)!.register('svc', ['10.32.0.9', '10.32.0.10'], 'manual');
    f.nodes.get(h1)!.register('svc', ['10.32.0.11'], 'manual');
    f.settle();
    f.remove(h3);
    expect(() => f.nodes.get(h1)!.removePeer(h1, false)).toThrow(/this router/);
    expect(() => f.nodes.get(h1)!.removePeer(h3, true)).toThrow(/reachable/);
    expect(f.nodes.get(h1)!.removePeer(h3, false)).toBe(2);
    f.settle();
    for (const n of [h1, h2]) expect(f.lookup(n, 'svc.weft.local.')).toEqual(['10.32.0.11']);
  });

  it('converges for random registrations, withdrawals, cuts and heals (property)', () => {
    const op = fc.oneof(
      fc.record({
        kind: fc.constant('add' as const),
        node: fc.nat(2),
        name: fc.constantFrom('a', 'b'),
        addr: fc.constantFrom('10.32.0.1', '10.32.0.2'),
      }),
      fc.record({ kind: fc.constant('del' as const), node: fc.nat(2), name: fc.constantFrom('a', 'b') }),
      fc.record({ kind: fc.constant('cut' as const), x: fc.nat(2), y: fc.nat(2) }),
      fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 20_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const f = threeRouters();
        for (const o of ops) {
          if (o.kind === 'add') f.nodes.get(names[o.node]!)!.register(o.name, [o.addr], 'manual');
          else if (o.kind === 'del') f.nodes.get(names[o.node]!)!.withdraw('manual', o.name);
          else if (o.kind === 'cut' && o.x !== o.y) f.partition(names[o.x]!, names[o.y]!);
          else if (o.kind === 'tick') f.clock.advance(o.ms);
          f.settle();
        }
        for (const a of names) for (const b of names) if (a < b) f.heal(a, b);
        for (const a of names) for (const b of names) if (a < b) f.fullExchange(a, b);
        const views = names.map((n) => f.nodes.get(n)!.records.live());
        expect(views[1]).toEqual(views[0]);
        expect(views[2]).toEqual(views[0]);
        // And every router's view is what the owners hold.
        for (const n of names) {
          for (const fqdn of ['a.weft.local.', 'b.weft.local.']) {
            const owned = views[0]!.filter((e) => e.owner === n && e.name === fqdn).map((e) => e.address);
            const truth = (f.nodes.get(n)!.sources().has('manual') ? ['10.32.0.1', '10.32.0.2'] : []).filter(
              (addr) => f.nodes.get(n)!.records.get(n, fqdn, addr)?.isTombstone === false,
            );
            expect(owned).toEqual(truth);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it('refuses names and addresses it cannot hold, with a message saying what to write', () => {
    const f = threeRouters();
    const a = f.nodes.get(names[0]!)!;
    expect(() => a.register('bad name', ['10.32.0.1'], 'manual')).toThrow(/not a DNS name/);
    expect(() => a.register('web', ['10.32.0'], 'manual')).toThrow(/not an IP address/);
    expect(a.register('Web.Example.COM.', ['fd00::1'], 'manual')).toBe('web.example.com.');
  });
});
