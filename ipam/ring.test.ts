import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Ring } from './ring.js';
import { parseCidr, rangeIntersect, rangeSize, type AddressRange } from './address.js';
import { DecodeError, RingConflictError, RingMismatchError } from './errors.js';

const CIDR = parseCidr('10.32.0.0/20'); // 4096 addresses: small enough for many splits
const PEERS = ['p0', 'p1', 'p2', 'p3'];

function seeded(peers = PEERS.slice(0, 3)): Ring {
  const r = new Ring(CIDR);
  r.claimForPeers(peers);
  return r;
}

function merged(a: Ring, b: Ring): Ring {
  const r = a.clone();
  r.merge(b);
  r.checkInvariants();
  return r;
}

type Op =
  | { kind: 'grant'; actor: number; to: number; at: number; len: number }
  | { kind: 'free'; actor: number; pick: number; free: number }
  | { kind: 'merge'; from: number; into: number }
  | { kind: 'transfer'; actor: number; dead: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('grant' as const),
    actor: fc.nat(3),
    to: fc.nat(3),
    at: fc.nat(4095),
    len: fc.integer({ min: 1, max: 600 }),
  }),
  fc.record({ kind: fc.constant('free' as const), actor: fc.nat(3), pick: fc.nat(50), free: fc.nat(5000) }),
  fc.record({ kind: fc.constant('merge' as const), from: fc.nat(3), into: fc.nat(3) }),
  fc.record({ kind: fc.constant('transfer' as const), actor: fc.nat(3), dead: fc.nat(3) }),
);

/**
 * Run `ops` against one replica per peer, the way peers would: each acts only on its own replica and only on what it
 * owns there; rings travel only by merge. A transfer needs the taker to have merged everything the dead peer knew
 * (the rule `weft rmpeer` documents: only for a peer that is gone); the dead peer never acts again.
 * Returns the replicas of live peers (plus every replica ever, for the merge-law checks).
 */
function run(ops: Op[]): { live: Map<string, Ring>; all: Ring[] } {
  const replicas = PEERS.map((p, i) => (i < 3 ? seeded() : new Ring(CIDR)));
  const dead = new Set<number>();
  const all: Ring[] = [];
  for (const op of ops) {
    if (op.kind === 'grant') {
      if (dead.has(op.actor) || dead.has(op.to) || op.actor === op.to) continue;
      const r = replicas[op.actor]!;
      const me = PEERS[op.actor]!;
      const mine = r.ownedBy(me).find((o) => o.start <= CIDR.start + op.at && CIDR.start + op.at < o.end);
      if (!mine) continue;
      const start = CIDR.start + op.at;
      const g: AddressRange = { start, end: Math.min(mine.end, start + op.len) };
      r.grantTo(me, PEERS[op.to]!, g);
      r.checkInvariants();
    } else if (op.kind === 'free') {
      if (dead.has(op.actor)) continue;
      const r = replicas[op.actor]!;
      const me = PEERS[op.actor]!;
      const segs = r.segments().filter((s) => s.owner === me);
      const s = segs[op.pick % Math.max(1, segs.length)];
      if (s) r.setFree(me, s.range.start, op.free);
    } else if (op.kind === 'merge') {
      if (dead.has(op.from) || dead.has(op.into) || op.from === op.into) continue;
      replicas[op.into]!.merge(replicas[op.from]!, PEERS[op.into]);
      replicas[op.into]!.checkInvariants();
    } else {
      if (dead.has(op.actor) || dead.has(op.dead) || op.actor === op.dead || dead.size >= 2) continue;
      const taker = replicas[op.actor]!;
      taker.merge(replicas[op.dead]!, PEERS[op.actor]);
      taker.transfer(PEERS[op.dead]!, PEERS[op.actor]!);
      taker.checkInvariants();
      dead.add(op.dead);
    }
    all.push(...replicas.map((r) => r.clone()));
    checkNoDoubleOwnership(replicas, dead);
  }
  const live = new Map<string, Ring>();
  replicas.forEach((r, i) => {
    if (!dead.has(i)) live.set(PEERS[i]!, r);
  });
  return { live, all };
}

/** The safety property: no address is owned by two live peers, each going by its own replica. */
function checkNoDoubleOwnership(replicas: Ring[], dead: Set<number>): void {
  for (let i = 0; i < replicas.length; i++) {
    for (let j = i + 1; j < replicas.length; j++) {
      if (dead.has(i) || dead.has(j)) continue;
      for (const a of replicas[i]!.ownedBy(PEERS[i]!)) {
        for (const b of replicas[j]!.ownedBy(PEERS[j]!)) {
          expect(rangeSize(rangeIntersect(a, b)), `${PEERS[i]} and ${PEERS[j]} both own part of ${a.start}-${a.end}`).toBe(0);
        }
      }
    }
  }
}

describe('Ring', () => {
  it('claimForPeers divides the range evenly, the same way whatever the order of peers', () => {
    const a = new Ring(CIDR);
    a.claimForPeers(['c', 'a', 'b']);
    const b = new Ring(CIDR);
    b.claimForPeers(['b', 'c', 'a', 'a']);
    expect(a.equals(b)).toBe(true);
    const sizes = [...a.ownership().values()].map((o) => o.addresses);
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(4096);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    a.checkInvariants();
  });

  it('grantTo splits a segment and hands the middle over with a version bump', () => {
    const r = seeded(['a']);
    r.grantTo('a', 'b', { start: CIDR.start + 100, end: CIDR.start + 200 });
    r.checkInvariants();
    expect(r.ownerOf(CIDR.start + 99)).toBe('a');
    expect(r.ownerOf(CIDR.start + 100)).toBe('b');
    expect(r.ownerOf(CIDR.start + 199)).toBe('b');
    expect(r.ownerOf(CIDR.start + 200)).toBe('a');
    expect(r.ownedBy('b')).toEqual([{ start: CIDR.start + 100, end: CIDR.start + 200 }]);
    expect(() => r.grantTo('a', 'c', { start: CIDR.start + 150, end: CIDR.start + 160 })).toThrow(/does not own/);
  });

  it('refuses to merge rings seeded with different peers, naming both and the fix', () => {
    const a = seeded(['a', 'b']);
    const b = seeded(['c', 'd']);
    const err = (() => {
      try {
        a.merge(b);
      } catch (e) {
        return e;
      }
    })() as RingMismatchError;
    expect(err).toBeInstanceOf(RingMismatchError);
    expect(err.code).toBe('ERR_IPAM_SEED_MISMATCH');
    expect(err.message).toMatch(/initialised separately/);
    expect(err.message).toMatch(/weft reset/);
  });

  it('refuses to merge rings over different ranges', () => {
    const a = seeded(['a']);
    const b = new Ring(parseCidr('10.0.0.0/20'));
    b.claimForPeers(['a']);
    expect(() => a.merge(b)).toThrow(RingMismatchError);
  });

  it('refuses two owners at one version (rmpeer on both sides of a partition) and changes nothing', () => {
    const base = seeded(['a', 'b', 'c']);
    const left = base.clone();
    const right = base.clone();
    left.transfer('c', 'a');
    right.transfer('c', 'b');
    const before = left.clone();
    expect(() => left.merge(right)).toThrow(RingConflictError);
    expect(left.equals(before)).toBe(true);
  });

  it('refuses an update that changes an entry we own, and says so when we were removed', () => {
    const mine = seeded(['a', 'b']);
    const theirs = mine.clone();
    theirs.transfer('a', 'b');
    const err = (() => {
      try {
        mine.merge(theirs, 'a');
      } catch (e) {
        return e as RingConflictError;
      }
    })();
    expect(err).toBeInstanceOf(RingConflictError);
    expect(err!.removedBy).toBe('b');
    // Without `self` (a bystander) the same update merges fine.
    const bystander = seeded(['a', 'b']);
    expect(bystander.merge(theirs, 'c')).toBe(true);
    expect(bystander.ownedBy('a')).toEqual([]);
    expect(bystander.removedBy('a')).toBe('b');
  });

  it('an empty ring adopts any seeded ring', () => {
    const r = new Ring(CIDR);
    expect(r.merge(seeded())).toBe(true);
    expect(r.seeds).toEqual(['p0', 'p1', 'p2']);
  });

  it('after any sequence of donations, splits, free updates, transfers and merges, no address has two live owners and segments cover the range once', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
        const { live } = run(ops);
        // Merge every live replica into one: must succeed and agree with each owner's own view.
        const total = new Ring(CIDR);
        for (const r of live.values()) total.merge(r);
        total.checkInvariants();
        for (const [name, r] of live) {
          const have = r.ownedBy(name);
          for (const span of have) expect(total.ownerOf(span.start)).toBe(name);
        }
        expect(total.segments().reduce((s, x) => s + rangeSize(x.range), 0)).toBe(4096);
      }),
      { numRuns: 300 },
    );
  });

  it('merge is commutative, associative and idempotent on replicas of one history', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), fc.nat(), fc.nat(), fc.nat(), (ops, i, j, k) => {
        const { all } = run(ops);
        if (all.length === 0) return;
        const a = all[i % all.length]!;
        const b = all[j % all.length]!;
        const c = all[k % all.length]!;
        expect(merged(a, b).equals(merged(b, a))).toBe(true);
        expect(merged(merged(a, b), c).equals(merged(a, merged(b, c)))).toBe(true);
        expect(merged(a, a).equals(a)).toBe(true);
        const ab = merged(a, b);
        expect(ab.clone().merge(b)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('decode(encode(r)) equals r', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        for (const r of run(ops).live.values()) expect(Ring.decode(r.encode()).equals(r)).toBe(true);
      }),
      { numRuns: 100 },
    );
  });

  it('random bytes and corrupted encodings only ever fail with DecodeError', () => {
    const good = seeded();
    good.grantTo('p0', 'p3', { start: CIDR.start + 10, end: CIDR.start + 20 });
    const bytes = good.encode();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(bytes.length - 1), fc.nat(255), (junk, at, v) => {
        for (const input of [junk, Uint8Array.from(bytes, (b, n) => (n === at ? v : b)), bytes.subarray(0, at)]) {
          try {
            Ring.decode(input).checkInvariants();
          } catch (e) {
            expect(e).toBeInstanceOf(DecodeError);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('refuses an oversized entry count before reading entries', () => {
    const bytes = Buffer.from(seeded().encode());
    // header 8 + names (3 x 3 bytes) + seeds (2 + 6) -> entry count at 25
    bytes.writeUInt32BE(0xffffffff, 25);
    expect(() => Ring.decode(bytes)).toThrow(/limit/);
  });

  it('clamps a free count taken from another ring to the segment it has after the merge (fuzz finding: forged free count)', () => {
    const a = seeded();
    const first = a.entryList()[0]!;
    const span = a.entryList()[1]!.token - first.token;
    a.grantTo(first.owner, 'p1', { start: first.token + 16, end: first.token + 32 });
    const b = seeded();
    // A member's forged copy of the first entry: newer, and all of the old segment free.
    const forged = b['entries'][0]!;
    forged.version = first.version + 100;
    forged.free = span;
    const r = a.clone();
    expect(r.merge(b)).toBe(true);
    expect(() => r.checkInvariants()).not.toThrow();
    expect(r.entryList()[0]!.free).toBe(16);
  });
});
