import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RecordStore, type PeerRemoval, type RecordDelta, type RecordEntry } from './record-store.js';

const owners = ['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03'];
const names = ['a.weft.local.', 'b.weft.local.', 'x.y.weft.local.'];
const addresses = ['10.32.0.1', '10.32.0.2', 'fd00::1'];

const entryArb: fc.Arbitrary<RecordEntry> = fc
  .record({
    owner: fc.constantFrom(...owners),
    name: fc.constantFrom(...names),
    address: fc.constantFrom(...addresses),
    version: fc.integer({ min: 1, max: 6 }),
    isTombstone: fc.boolean(),
    deadline: fc.constantFrom(100, 200, 300),
  })
  .map(({ deadline, ...e }) => ({ ...e, expiresAtMs: e.isTombstone ? deadline : Infinity }));
const removalArb: fc.Arbitrary<PeerRemoval> = fc.record({ peer: fc.constantFrom(...owners), expiresAtMs: fc.constantFrom(150, 250) });
const updateArb: fc.Arbitrary<RecordDelta> = fc.record({
  entries: fc.array(entryArb, { maxLength: 8 }),
  removals: fc.oneof(
    { weight: 4, arbitrary: fc.constant([] as PeerRemoval[]) },
    { weight: 1, arbitrary: fc.array(removalArb, { maxLength: 1 }) },
  ),
});

function stateAfter(...updates: RecordDelta[]): RecordDelta {
  const s = new RecordStore();
  for (const u of updates) s.merge(u);
  return s.snapshot();
}

describe('RecordStore merge', () => {
  it('is commutative: two updates in either order give the same state', () => {
    fc.assert(
      fc.property(updateArb, updateArb, (a, b) => {
        expect(stateAfter(a, b)).toEqual(stateAfter(b, a));
      }),
      { numRuns: 500 },
    );
  });

  it('is associative: merging a merged state equals merging one by one', () => {
    fc.assert(
      fc.property(updateArb, updateArb, updateArb, (a, b, c) => {
        const bc = stateAfter(b, c);
        expect(stateAfter(a, bc)).toEqual(stateAfter(stateAfter(a, b), c));
      }),
      { numRuns: 500 },
    );
  });

  it('is idempotent: a second copy of an update changes nothing and yields no delta', () => {
    fc.assert(
      fc.property(updateArb, updateArb, (a, b) => {
        const s = new RecordStore();
        s.merge(a);
        s.merge(b);
        const before = s.snapshot();
        const delta = s.merge(b);
        expect(delta.entries).toEqual([]);
        expect(delta.removals).toEqual([]);
        expect(s.snapshot()).toEqual(before);
      }),
      { numRuns: 500 },
    );
  });

  it('returns as delta exactly what a replica that had the same state needs', () => {
    fc.assert(
      fc.property(updateArb, updateArb, (a, b) => {
        const s = new RecordStore();
        s.merge(a);
        const replica = new RecordStore();
        replica.merge(a);
        const delta = s.merge(b);
        replica.merge(delta);
        expect(replica.snapshot()).toEqual(s.snapshot());
      }),
      { numRuns: 500 },
    );
  });

  it('converges: replicas receiving the same updates in different orders and numbers end equal', () => {
    fc.assert(
      fc.property(fc.array(updateArb, { minLength: 1, maxLength: 6 }), fc.integer(), (updates, seed) => {
        const replicas = [new RecordStore(), new RecordStore(), new RecordStore()];
        let r = seed >>> 0;
        const next = () => (r = (r * 1103515245 + 12345) >>> 0);
        for (const rep of replicas) {
          const order = [...updates, ...updates.filter(() => next() % 2 === 0)].sort(() => (next() % 3) - 1);
          for (const u of order) rep.merge(u);
        }
        expect(replicas[1]!.snapshot()).toEqual(replicas[0]!.snapshot());
        expect(replicas[2]!.snapshot()).toEqual(replicas[0]!.snapshot());
      }),
      { numRuns: 300 },
    );
  });

  it('a newer version replaces an older one, a tombstone hides the name, and an older live copy cannot bring it back', () => {
    const s = new RecordStore();
    const live = { owner: owners[0]!, name: names[0]!, address: addresses[0]!, version: 1, isTombstone: false, expiresAtMs: Infinity };
    s.merge({ entries: [live], removals: [] });
    expect(s.addressesOf(names[0]!)).toEqual([addresses[0]]);
    s.merge({ entries: [{ ...live, version: 2, isTombstone: true, expiresAtMs: 1000 }], removals: [] });
    expect(s.addressesOf(names[0]!)).toEqual([]);
    expect(s.hasName(names[0]!)).toBe(false);
    expect(s.merge({ entries: [live], removals: [] }).entries).toEqual([]);
    expect(s.addressesOf(names[0]!)).toEqual([]);
  });
});

describe('RecordStore tombstone expiry', () => {
  it('forgets tombstones and removals at their deadline and keeps live records', () => {
    fc.assert(
      fc.property(updateArb, fc.integer({ min: 0, max: 400 }), (u, now) => {
        const s = new RecordStore();
        s.merge(u);
        const live = s.live();
        s.expire(now);
        const snap = s.snapshot();
        expect(snap.entries.filter((e) => e.isTombstone && e.expiresAtMs <= now)).toEqual([]);
        expect(snap.removals.filter((r) => r.expiresAtMs <= now)).toEqual([]);
        expect(s.live()).toEqual(live);
      }),
      { numRuns: 300 },
    );
  });

  it('never extends a tombstone: a copy with a later deadline is no news, an earlier one is', () => {
    const s = new RecordStore();
    const t = { owner: owners[0]!, name: names[0]!, address: addresses[0]!, version: 3, isTombstone: true, expiresAtMs: 200 };
    s.merge({ entries: [t], removals: [] });
    expect(s.merge({ entries: [{ ...t, expiresAtMs: 900 }], removals: [] }).entries).toEqual([]);
    expect(s.get(t.owner, t.name, t.address)!.expiresAtMs).toBe(200);
    expect(s.merge({ entries: [{ ...t, expiresAtMs: 150 }], removals: [] }).entries).toHaveLength(1);
    s.expire(150);
    expect(s.size).toBe(0);
  });

  it('a peer removal drops every record of that owner and refuses new ones until it expires', () => {
    const s = new RecordStore();
    const mk = (owner: string, version: number) => ({
      owner,
      name: names[0]!,
      address: addresses[0]!,
      version,
      isTombstone: false,
      expiresAtMs: Infinity,
    });
    s.merge({ entries: [mk(owners[0]!, 1), mk(owners[1]!, 1)], removals: [] });
    s.merge({ entries: [], removals: [{ peer: owners[0]!, expiresAtMs: 100 }] });
    expect(s.live().map((e) => e.owner)).toEqual([owners[1]]);
    s.merge({ entries: [mk(owners[0]!, 5)], removals: [] });
    expect(s.live().map((e) => e.owner)).toEqual([owners[1]]);
    s.expire(100);
    s.merge({ entries: [mk(owners[0]!, 6)], removals: [] });
    expect(
      s
        .live()
        .map((e) => e.owner)
        .sort(),
    ).toEqual([owners[0], owners[1]]);
  });
});
