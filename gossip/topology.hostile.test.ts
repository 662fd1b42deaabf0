/**
 * What a member of the mesh can do with forged topology entries: never change our own entry, never park another
 * peer's entry where that peer cannot outbid it, never grow our view past its caps.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { computeRoutes } from './routes.js';
import {
  canonicalConnections,
  decodeTopology,
  encodeTopology,
  encodeTopologyChunks,
  Topology,
  VERSION_LEAD_MS,
  type PeerEntry,
  type TopologyRefusal,
} from './topology.js';

const A = '02:00:00:00:00:01';
const B = '02:00:00:00:00:02';
const M = '02:00:00:00:00:0d'; // the liar
const NOW = 1_800_000_000_000; // a fixed wall clock (ms)
const conn = (name: string) => ({ name, address: `${name}:6783`, isOutbound: true, isEstablished: true });

/** Three honest routers A - B - M in a line, each with its own Topology, fully exchanged. */
function line(clock: { ms: number }) {
  const refusals: TopologyRefusal[] = [];
  const mk = (name: string, peers: string[]) => {
    const t = new Topology({ name, nickname: name.slice(-2), uid: '7' }, () => {}, {
      wallClockMs: () => clock.ms,
      onRefused: (r) => refusals.push(r),
    });
    t.setLocalConnections(peers.map(conn));
    return t;
  };
  const a = mk(A, [B]);
  const b = mk(B, [A, M]);
  const m = mk(M, [B]);
  const exchange = () => {
    for (let i = 0; i < 3; i++) for (const x of [a, b, m]) for (const y of [a, b, m]) if (x !== y) y.apply([...x.peers.values()]);
  };
  exchange();
  return { a, b, m, exchange, refusals };
}

const routable = (t: Topology, dst: string) => computeRoutes(t.peers, t.localName).unicast.has(dst);

describe('topology from a hostile member', () => {
  it('refuses an entry at version 2^53-1 for another peer, which stays routable', () => {
    const clock = { ms: NOW };
    const { a, b, refusals } = line(clock);
    expect(routable(a, B)).toBe(true);
    const forged: PeerEntry = { ...b.local, version: Number.MAX_SAFE_INTEGER, connections: [] };
    expect(a.apply([forged])).toEqual([]);
    expect(refusals).toEqual(['implausible_version']);
    expect(a.peers.get(B)!.version).toBe(b.local.version);
    expect(routable(a, B)).toBe(true);
  });

  it('a forged entry at the highest plausible version is outbid by its owner and the peer is routable again', () => {
    const clock = { ms: NOW };
    const { a, b, m, exchange } = line(clock);
    const forged: PeerEntry = { ...b.local, version: a.versionCeiling(), connections: [] };
    a.apply([forged]);
    m.apply([forged]);
    expect(routable(a, B)).toBe(false); // the damage, for now
    // B hears of it and re-publishes its own content above the forged version.
    const delta = b.apply([forged]);
    expect(delta.map((e) => e.name)).toEqual([B]);
    expect(b.local.version).toBe(forged.version + 1);
    expect(b.local.connections.map((c) => c.name)).toEqual([A, M]);
    clock.ms += 1; // one millisecond later the new version is plausible everywhere
    exchange();
    expect(a.peers.get(B)).toEqual(b.local);
    expect(routable(a, B)).toBe(true);
  });

  it('never takes a newer copy of our own entry, whatever it says (property)', () => {
    const clock = { ms: NOW };
    const arbForged = fc.record({
      uid: fc.constantFrom('7', '8', '18446744073709551615'),
      version: fc.oneof(
        fc.integer({ min: 1, max: 1000 }),
        fc.constant(Number.MAX_SAFE_INTEGER),
        fc.integer({ min: NOW, max: NOW + 2 * VERSION_LEAD_MS }),
      ),
      nickname: fc.constantFrom('evil', 'a1'),
      connections: fc.uniqueArray(fc.constantFrom(M, '02:00:00:00:00:0e').map(conn), { selector: (c) => c.name }),
    });
    fc.assert(
      fc.property(fc.array(arbForged, { maxLength: 8 }), (forged) => {
        const { a } = line(clock);
        const before = { nickname: a.local.nickname, uid: a.local.uid, connections: a.local.connections };
        let version = a.local.version;
        for (const f of forged) {
          a.apply([{ name: A, ...f, connections: canonicalConnections(f.connections) }]);
          expect(a.local.version).toBeGreaterThanOrEqual(version);
          expect(a.local.version).toBeLessThanOrEqual(a.versionCeiling() + 1);
          version = a.local.version;
          expect({ nickname: a.local.nickname, uid: a.local.uid, connections: a.local.connections }).toEqual(before);
          expect(a.peers.get(A)).toBe(a.local);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('topology caps', () => {
  const fake = (i: number, conns: string[]): PeerEntry => ({
    name: `0a:00:00:00:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}`,
    nickname: `n${i}`,
    uid: String(i + 1),
    version: 1,
    connections: canonicalConnections(conns.map(conn)),
  });

  it('holds the peer and byte caps under random updates, and says which cap refused', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 40 }), { maxLength: 10 }),
        fc.integer({ min: 2, max: 50 }),
        fc.integer({ min: 500, max: 8000 }),
        (batches, maxPeers, maxStateBytes) => {
          const refused = new Set<TopologyRefusal>();
          const t = new Topology({ name: A, nickname: 'a', uid: '1' }, () => {}, {
            wallClockMs: () => NOW,
            maxPeers,
            maxStateBytes,
            onRefused: (r) => refused.add(r),
          });
          // Everyone hangs off A so nothing is collected as unreachable: only the caps hold the view down.
          const all = Array.from({ length: 301 }, (_, i) => fake(i, [A]));
          t.setLocalConnections(all.slice(0, 200).map((e) => conn(e.name)));
          for (const batch of batches) {
            t.apply(batch.map((i) => ({ ...all[i]!, version: 1 + (batch.length % 3) })));
            expect(t.peers.size).toBeLessThanOrEqual(Math.max(maxPeers, 1));
            const bytes = [...t.peers.values()].reduce((s, e) => s + encodeTopology([e]).length - 1, 0);
            expect(t.stateBytes).toBe(bytes);
            // Our own entry is always kept; what others add stays under the cap.
            expect(t.stateBytes - (encodeTopology([t.local]).length - 1)).toBeLessThanOrEqual(maxStateBytes);
          }
          for (const r of refused) expect(['peer_cap', 'state_cap']).toContain(r);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('sends a big complete state in chunks that each fit, and that merge to the same view', () => {
    const entries = Array.from({ length: 3000 }, (_, i) => fake(i, [A, B, M]));
    const whole = encodeTopology(entries);
    expect(whole.length).toBeGreaterThan(256 * 1024);
    const chunks = encodeTopologyChunks(entries, 64 * 1024);
    expect(chunks.length).toBeGreaterThan(1);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(64 * 1024);
    expect(chunks.flatMap((c) => decodeTopology(c))).toEqual(decodeTopology(whole));
  });
});
