import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Space } from './space.js';

/** The obviously correct model: a set of owned addresses and a map of held ones, over 0..255. */
class ModelSpace {
  owned = new Set<number>();
  held = new Map<number, string>();
  allocate(start: number, end: number, ident: string): number | undefined {
    for (let a = start; a < end; a++) {
      if (this.owned.has(a) && !this.held.has(a)) {
        this.held.set(a, ident);
        return a;
      }
    }
    return undefined;
  }
  freeIn(start: number, end: number): number {
    let n = 0;
    for (let a = start; a < end; a++) if (this.owned.has(a) && !this.held.has(a)) n++;
    return n;
  }
}

type Op =
  | { k: 'own'; spans: Array<[number, number]> }
  | { k: 'alloc'; s: number; len: number }
  | { k: 'claim'; a: number }
  | { k: 'release'; a: number }
  | { k: 'give'; s: number; len: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      k: fc.constant('own' as const),
      spans: fc.array(fc.tuple(fc.nat(255), fc.integer({ min: 1, max: 64 })), { maxLength: 4 }),
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ k: fc.constant('alloc' as const), s: fc.nat(255), len: fc.integer({ min: 1, max: 256 }) }), weight: 5 },
  { arbitrary: fc.record({ k: fc.constant('claim' as const), a: fc.nat(255) }), weight: 2 },
  { arbitrary: fc.record({ k: fc.constant('release' as const), a: fc.nat(255) }), weight: 3 },
  { arbitrary: fc.record({ k: fc.constant('give' as const), s: fc.nat(255), len: fc.integer({ min: 1, max: 16 }) }), weight: 1 },
);

describe('Space', () => {
  it('agrees with a set-based model under random owns, allocations, claims, releases and gifts', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 120 }), (ops) => {
        const space = new Space();
        const model = new ModelSpace();
        let n = 0;
        for (const o of ops) {
          const ident = `c${n++}`;
          if (o.k === 'own') {
            const ranges = o.spans.map(([s, l]) => ({ start: s, end: Math.min(256, s + l) }));
            space.setOwned(ranges);
            model.owned = new Set(ranges.flatMap((r) => Array.from({ length: r.end - r.start }, (_, i) => r.start + i)));
          } else if (o.k === 'alloc') {
            const end = Math.min(256, o.s + o.len);
            expect(space.allocate({ start: o.s, end }, ident)).toBe(model.allocate(o.s, end, ident));
          } else if (o.k === 'claim') {
            const expected = model.held.has(o.a) ? 'held' : model.owned.has(o.a) ? 'ok' : 'not-owned';
            expect(space.claim(o.a, ident)).toBe(expected);
            if (expected === 'ok') model.held.set(o.a, ident);
          } else if (o.k === 'release') {
            expect(space.release(o.a)).toBe(model.held.delete(o.a));
          } else {
            const end = Math.min(256, o.s + o.len);
            if (space.freeIn({ start: o.s, end }) === end - o.s) {
              space.give({ start: o.s, end });
              for (let a = o.s; a < end; a++) model.owned.delete(a);
            } else {
              expect(() => space.give({ start: o.s, end })).toThrow();
            }
          }
          expect(space.freeIn({ start: 0, end: 256 })).toBe(model.freeIn(0, 256));
          expect(space.freeCount).toBe(model.freeIn(0, 256));
          expect(new Map(space.holdings())).toEqual(model.held);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('largestFreeIn finds the biggest free span inside the range', () => {
    const s = new Space();
    s.setOwned([
      { start: 0, end: 10 },
      { start: 20, end: 50 },
    ]);
    s.claim(30, 'x');
    expect(s.largestFreeIn({ start: 0, end: 100 })).toEqual({ start: 31, end: 50 });
    expect(s.largestFreeIn({ start: 0, end: 25 })).toEqual({ start: 0, end: 10 });
    expect(s.largestFreeIn({ start: 60, end: 70 })).toBeUndefined();
  });

  it('keeps held addresses held when ownership is recomputed', () => {
    const s = new Space();
    s.setOwned([{ start: 0, end: 4 }]);
    expect(s.allocate({ start: 0, end: 4 }, 'a')).toBe(0);
    s.setOwned([{ start: 0, end: 8 }]);
    expect(s.holderOf(0)).toBe('a');
    expect(s.freeCount).toBe(7);
  });
});
