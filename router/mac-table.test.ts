import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { LearnResult, MacTable } from './mac-table.js';

/** The obviously correct model: a Map, scanned for expiry. */
class ModelTable {
  readonly entries = new Map<number, { peer: number; lastSeenMs: number }>();
  constructor(
    readonly capacity: number,
    readonly expiryMs: number,
  ) {}
  private isLive(mac: number, now: number): boolean {
    const e = this.entries.get(mac);
    return e !== undefined && now - e.lastSeenMs <= this.expiryMs;
  }
  lookup(mac: number, now: number): number {
    return this.isLive(mac, now) ? this.entries.get(mac)!.peer : -1;
  }
  learn(mac: number, peer: number, now: number): number {
    const e = this.entries.get(mac);
    if (e && this.isLive(mac, now)) {
      const wasPeer = e.peer;
      e.peer = peer;
      e.lastSeenMs = now;
      return wasPeer === peer ? LearnResult.Refreshed : LearnResult.Moved;
    }
    const live = [...this.entries.keys()].filter((m) => this.isLive(m, now)).length;
    if (live >= this.capacity) return LearnResult.Full;
    this.entries.set(mac, { peer, lastSeenMs: now });
    return LearnResult.Added;
  }
  forgetPeer(peer: number): void {
    for (const [m, e] of this.entries) if (e.peer === peer) this.entries.delete(m);
  }
  remove(mac: number): boolean {
    return this.entries.delete(mac);
  }
}

type Op =
  | { kind: 'learn'; mac: number; peer: number; dt: number }
  | { kind: 'lookup'; mac: number; dt: number }
  | { kind: 'expire'; dt: number }
  | { kind: 'forget'; peer: number; dt: number }
  | { kind: 'remove'; mac: number; dt: number };

// Few distinct MACs (so entries are refreshed, moved and collide), some far apart in the 48-bit space.
const mac = fc.oneof(fc.integer({ min: 0, max: 40 }), fc.constantFrom(2 ** 48 - 1, 0x0242ac110002, 0x0242ac110003));
const peerId = fc.integer({ min: 1, max: 4 });
const dt = fc.integer({ min: 0, max: 40 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('learn' as const), mac, peer: peerId, dt }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('lookup' as const), mac, dt }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('expire' as const), dt }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('forget' as const), peer: peerId, dt }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), mac, dt }) },
);

describe('MacTable', () => {
  it('agrees with a Map model on random learn/lookup/expire/forget/remove sequences', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 10, max: 200 }),
        fc.array(op, { maxLength: 300 }),
        (capacity, expiryMs, ops) => {
          const table = new MacTable({ capacity, expiryMs });
          const model = new ModelTable(capacity, expiryMs);
          let now = 0;
          for (const o of ops) {
            now += o.dt;
            switch (o.kind) {
              case 'learn':
                expect(table.learn(o.mac, o.peer, now)).toBe(model.learn(o.mac, o.peer, now));
                break;
              case 'lookup':
                expect(table.lookup(o.mac, now)).toBe(model.lookup(o.mac, now));
                break;
              case 'expire':
                table.expire(now);
                break;
              case 'forget':
                table.forgetPeer(o.peer);
                model.forgetPeer(o.peer);
                break;
              case 'remove': {
                // An expired entry may already be gone from the table (reused or expired); the model keeps it.
                const wasLive = model.lookup(o.mac, now) >= 0;
                const removed = table.remove(o.mac);
                model.remove(o.mac);
                if (wasLive) expect(removed).toBe(true);
                break;
              }
            }
            table.checkInvariants();
            // Every MAC the model knows live is found, and nothing else is.
            const live = table
              .entries(now)
              .map((e) => `${e.mac}@${e.peer}`)
              .sort();
            const expected = [...model.entries]
              .filter(([, e]) => now - e.lastSeenMs <= expiryMs)
              .map(([m, e]) => `${m}@${e.peer}`)
              .sort();
            expect(live).toEqual(expected);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('updates a MAC that moves to another peer and reports the move', () => {
    const t = new MacTable();
    expect(t.learn(0x0242ac110002, 1, 0)).toBe(LearnResult.Added);
    expect(t.learn(0x0242ac110002, 1, 10)).toBe(LearnResult.Refreshed);
    expect(t.learn(0x0242ac110002, 2, 20)).toBe(LearnResult.Moved);
    expect(t.lookup(0x0242ac110002, 30)).toBe(2);
  });

  it('forgets a MAC after the expiry (default 300 s) and removes it on expire()', () => {
    const t = new MacTable();
    t.learn(5, 1, 1000);
    expect(t.lookup(5, 1000 + 300_000)).toBe(1);
    expect(t.lookup(5, 1000 + 300_001)).toBe(-1);
    expect(t.expire(1000 + 300_001)).toBe(1);
    expect(t.size).toBe(0);
  });

  it('refuses a new MAC when full of live entries, and takes it once one expires', () => {
    const t = new MacTable({ capacity: 2, expiryMs: 100 });
    t.learn(1, 1, 0);
    t.learn(2, 1, 50);
    expect(t.learn(3, 1, 60)).toBe(LearnResult.Full);
    expect(t.lookup(3, 60)).toBe(-1);
    expect(t.learn(3, 1, 120)).toBe(LearnResult.Added);
    expect(t.lookup(3, 120)).toBe(1);
    expect(t.lookup(2, 120)).toBe(1);
  });

  it('stays O(1) when full: a flood of new MACs into a full table of live entries visits no other slots', () => {
    const capacity = 16_384;
    const t = new MacTable({ capacity, expiryMs: 300_000 });
    for (let m = 1; m <= capacity; m++) expect(t.learn(m, 1, 0)).toBe(LearnResult.Added);
    let full = 0;
    for (let m = 0; m < 100_000; m++) if (t.learn(0x0266_0000_0000 + m, 2, 10) === LearnResult.Full) full++;
    expect(full).toBe(100_000);
    expect(t.scannedSlots).toBe(0);
    // The real MACs are all still there, and refreshing them keeps them.
    expect(t.lookup(1, 20)).toBe(1);
    expect(t.lookup(capacity, 20)).toBe(1);
  });

  it('gives up the least recently seen expired entry for a new MAC, keeping entries refreshed since', () => {
    const t = new MacTable({ capacity: 3, expiryMs: 100 });
    t.learn(1, 1, 0);
    t.learn(2, 1, 10);
    t.learn(3, 1, 20);
    t.learn(1, 1, 90); // refreshed: now the most recent
    // At 115, 2 (seen at 10) has expired; 1 and 3 are live. A new MAC takes 2's place.
    expect(t.learn(4, 2, 115)).toBe(LearnResult.Added);
    expect(t.lookup(1, 115)).toBe(1);
    expect(t.lookup(3, 115)).toBe(1);
    expect(t.lookup(4, 115)).toBe(2);
    expect(t.lookup(2, 115)).toBe(-1);
    // expire() walks from the oldest and stops at the first live entry.
    expect(t.expire(121)).toBe(1); // 3 (seen at 20)
    expect(t.size).toBe(2);
    expect(t.scannedSlots).toBe(0);
  });
});
