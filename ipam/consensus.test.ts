import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Consensus } from './consensus.js';
import { DecodeError } from './errors.js';

const NAMES = ['a', 'b', 'c', 'd', 'e'];

/** Copy a node's table as it would travel (encode, decode). */
function wire(c: Consensus): Consensus {
  return Consensus.decodeAt(c.encode(), 0, c.quorum).table;
}

describe('Consensus', () => {
  it('three peers that all hear each other agree on the three of them', () => {
    const nodes = ['a', 'b', 'c'].map((n) => new Consensus(n, 2));
    nodes.forEach((n) => n.join());
    for (let i = 0; i < 3; i++) for (const x of nodes) for (const y of nodes) x.merge(wire(y));
    nodes[1]!.propose();
    for (let round = 0; round < 6; round++) {
      for (const x of nodes) {
        for (const y of nodes) x.merge(wire(y));
        x.step();
      }
    }
    for (const n of nodes) expect(n.decision()).toEqual(['a', 'b', 'c']);
  });

  it('never decides two values, whatever the proposals, message order and loss', () => {
    let runsWithDecision = 0;
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            { arbitrary: fc.record({ k: fc.constant('propose' as const), at: fc.nat(4) }), weight: 1 },
            { arbitrary: fc.record({ k: fc.constant('gossip' as const), from: fc.nat(4), to: fc.nat(4) }), weight: 8 },
            { arbitrary: fc.record({ k: fc.constant('step' as const), at: fc.nat(4) }), weight: 1 },
          ),
          { minLength: 20, maxLength: 200, size: 'max' },
        ),
        (ops) => {
          const nodes = NAMES.map((n) => new Consensus(n, 3));
          // Each node has joined and heard of a random subset: proposals differ in value.
          nodes.forEach((n) => n.join());
          const decided = new Set<string>();
          for (const op of ops) {
            if (op.k === 'propose') nodes[op.at]!.propose();
            else if (op.k === 'gossip') {
              // A receiver runs its rules on what it just heard, as the allocator does.
              nodes[op.to]!.merge(wire(nodes[op.from]!));
              nodes[op.to]!.step();
            } else nodes[op.at]!.step();
            for (const n of nodes) {
              const d = n.decision();
              if (d) decided.add(d.join(','));
            }
          }
          expect(decided.size).toBeLessThanOrEqual(1);
          if (decided.size === 1) runsWithDecision++;
        },
      ),
      { numRuns: 1000 },
    );
    // The property means something only if runs do reach decisions.
    expect(runsWithDecision).toBeGreaterThan(100);
  });

  it('a minority cannot decide', () => {
    const nodes = ['a', 'b'].map((n) => new Consensus(n, 3));
    nodes.forEach((n) => n.join());
    nodes[0]!.propose();
    for (let i = 0; i < 10; i++)
      for (const x of nodes)
        for (const y of nodes) {
          x.merge(wire(y));
          x.step();
        }
    expect(nodes[0]!.decision()).toBeUndefined();
  });

  it('random bytes only ever fail with DecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (junk) => {
        try {
          Consensus.decodeAt(junk, 0, 2);
        } catch (e) {
          expect(e).toBeInstanceOf(DecodeError);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
