import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DecodeError } from './decode-error.js';
import { canonicalConnections, decodeTopology, encodeTopology, mergeStates, Topology, type PeerEntry } from './topology.js';

const names = ['02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03', '02:00:00:00:00:04'];
const [A, B, C, D] = names as [string, string, string, string];

const arbEntry = (name: string) =>
  fc
    .record({
      nickname: fc.constantFrom('h1', 'h2'),
      uid: fc.constantFrom('1', '2', '18446744073709551615'),
      version: fc.integer({ min: 1, max: 3 }),
      connections: fc.uniqueArray(
        fc.record({
          name: fc.constantFrom(...names),
          address: fc.constantFrom('10.0.0.1:6783', '10.0.0.2:6783'),
          isOutbound: fc.boolean(),
          isEstablished: fc.boolean(),
        }),
        { maxLength: 3, selector: (c) => `${c.name}|${c.address}` },
      ),
    })
    .map((e): PeerEntry => ({ ...e, name, connections: canonicalConnections(e.connections) }));

const arbState = fc
  .tuple(...names.map((n) => fc.option(arbEntry(n), { nil: undefined })))
  .map((es) => new Map(es.filter((e): e is PeerEntry => e !== undefined).map((e) => [e.name, e])));

const same = (x: Map<string, PeerEntry>, y: Map<string, PeerEntry>) => {
  expect(Object.fromEntries([...x].sort())).toEqual(Object.fromEntries([...y].sort()));
};

describe('topology merge', () => {
  it('is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(arbState, arbState, arbState, (x, y, z) => {
        same(mergeStates(x, y), mergeStates(y, x));
        same(mergeStates(mergeStates(x, y), z), mergeStates(x, mergeStates(y, z)));
        same(mergeStates(x, x), x);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps the newer version; on a tie the greater uid; same uid and version are equal', () => {
    const e = (version: number, uid: string): PeerEntry => ({ name: B, nickname: 'h2', uid, version, connections: [] });
    expect(mergeStates(new Map([[B, e(2, '1')]]), new Map([[B, e(3, '1')]])).get(B)?.version).toBe(3);
    expect(mergeStates(new Map([[B, e(2, '9')]]), new Map([[B, e(2, '10')]])).get(B)?.uid).toBe('10');
    const x = e(2, '5');
    expect(mergeStates(new Map([[B, x]]), new Map([[B, e(2, '5')]])).get(B)).toBe(x);
  });
});

describe('Topology', () => {
  const conn = (name: string, isEstablished = true) => ({ name, address: `${name}:6783`, isOutbound: true, isEstablished });

  it('bumps our version only when our connections change', () => {
    const t = new Topology({ name: A, nickname: 'h1', uid: '1' });
    expect(t.setLocalConnections([conn(B)])).toBe(true);
    expect(t.local.version).toBe(2);
    expect(t.setLocalConnections([conn(B)])).toBe(false);
    expect(t.local.version).toBe(2);
  });

  it('returns only what was new, and drops peers no longer reachable', () => {
    const t = new Topology({ name: A, nickname: 'h1', uid: '1' });
    t.setLocalConnections([conn(B)]);
    const b: PeerEntry = { name: B, nickname: 'h2', uid: '2', version: 1, connections: [conn(A), conn(C)] };
    const c: PeerEntry = { name: C, nickname: 'h3', uid: '3', version: 1, connections: [conn(B)] };
    const d: PeerEntry = { name: D, nickname: 'h4', uid: '4', version: 1, connections: [] }; // connected to nobody we know
    expect(t.apply([b, c, d]).map((e) => e.name)).toEqual([B, C]);
    expect([...t.peers.keys()].sort()).toEqual([A, B, C]);
    expect(t.apply([b, c])).toEqual([]);
    // B drops C: C becomes unreachable from A and is collected.
    t.apply([{ ...b, version: 2, connections: [conn(A)] }]);
    expect([...t.peers.keys()].sort()).toEqual([A, B]);
  });

  it('jumps our version past an old incarnation of ourselves so our entry wins again', () => {
    const seen: PeerEntry[] = [];
    const t = new Topology({ name: A, nickname: 'h1', uid: '1' }, (e) => seen.push(e));
    const old: PeerEntry = { name: A, nickname: 'h1', uid: '99', version: 50, connections: [] };
    const delta = t.apply([old]);
    expect(t.local.version).toBe(51);
    expect(t.local.uid).toBe('1');
    expect(delta).toEqual([t.local]);
    expect(seen).toEqual([old]);
  });
});

describe('topology codec', () => {
  it('decode(encode(x)) equals x', () => {
    fc.assert(
      fc.property(arbState, (s) => {
        expect(decodeTopology(encodeTopology(s.values()))).toEqual([...s.values()]);
      }),
    );
  });

  it('random bytes and malformed JSON only ever fail with DecodeError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.json().map((j) => Buffer.from(j)),
        ),
        (bytes) => {
          try {
            decodeTopology(bytes);
          } catch (e) {
            expect(e).toBeInstanceOf(DecodeError);
          }
        },
      ),
    );
    const bad = [
      '[["nope","h","1",1,[]]]',
      `[["${A}","h","1",0,[]]]`,
      `[["${A}","h","-1",1,[]]]`,
      `[["${A}","h","1",1,[["${B}","x",7]]]]`,
      `[["${A}","${'x'.repeat(65)}","1",1,[]]]`,
      `[["${A}","h","1",1,[]],["${A}","h","1",1,[]]]`,
    ];
    for (const s of bad) expect(() => decodeTopology(Buffer.from(s))).toThrow(DecodeError);
    expect(() => decodeTopology(new Uint8Array(1024 * 1024 + 1))).toThrow(/over/);
  });
});
