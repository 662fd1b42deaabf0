import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../runtime/random.js';
import { peerIdToName } from './peer-name.js';
import { computeRoutes } from './routes.js';
import type { PeerEntry } from './topology.js';

const name = (i: number) => peerIdToName(0x020000000000 + i);

/** A topology from undirected edges; `oneSided` edges are established only at their first end. */
function topology(n: number, edges: Array<[number, number]>, oneSided: Array<[number, number]> = []): Map<string, PeerEntry> {
  const m = new Map<string, PeerEntry>();
  for (let i = 0; i < n; i++) m.set(name(i), { name: name(i), nickname: `h${i}`, uid: String(i + 1), version: 1, connections: [] });
  const add = (a: number, b: number, isEstablished: boolean) =>
    m.get(name(a))!.connections.push({ name: name(b), address: `h${b}:6783`, isOutbound: a < b, isEstablished });
  for (const [a, b] of edges) {
    add(a, b, true);
    add(b, a, true);
  }
  for (const [a, b] of oneSided) {
    add(a, b, true);
    add(b, a, false);
  }
  return m;
}

function randomConnected(n: number, extra: number, rnd: SeededRandom): Array<[number, number]> {
  const edges = new Set<string>();
  const out: Array<[number, number]> = [];
  const add = (a: number, b: number) => {
    const k = a < b ? `${a}-${b}` : `${b}-${a}`;
    if (a === b || edges.has(k)) return;
    edges.add(k);
    out.push([a, b]);
  };
  for (let i = 1; i < n; i++) add(i, rnd.int(i)); // a random tree: connected
  for (let k = 0; k < extra; k++) add(rnd.int(n), rnd.int(n));
  return out;
}

describe('routes', () => {
  it('routes a line through the middle, both ways', () => {
    const t = topology(3, [
      [0, 1],
      [1, 2],
    ]);
    const r0 = computeRoutes(t, name(0));
    expect(r0.unicast.get(name(2))).toBe(name(1));
    expect(r0.unicast.get(name(1))).toBe(name(1));
    expect(r0.unicast.has(name(0))).toBe(false);
    expect(computeRoutes(t, name(1)).broadcast.get(name(0))).toEqual([name(2)]);
    expect(r0.broadcast.get(name(2))).toEqual([]);
    expect(r0.broadcast.get(name(0))).toEqual([name(1)]);
  });

  it('ignores a connection only one end reports as established', () => {
    const t = topology(3, [[0, 1]], [[1, 2]]);
    const r = computeRoutes(t, name(0));
    expect(r.unicast.has(name(2))).toBe(false);
    expect(r.broadcast.has(name(2))).toBe(false);
  });

  it('breaks ties by the smaller name, identically on every peer', () => {
    // A square 0-1, 0-2, 1-3, 2-3: two shortest paths from 0 to 3.
    const t = topology(4, [
      [0, 1],
      [0, 2],
      [1, 3],
      [2, 3],
    ]);
    expect(computeRoutes(t, name(0)).unicast.get(name(3))).toBe(name(1));
    expect(computeRoutes(t, name(1)).broadcast.get(name(0))).toEqual([name(3)]);
    expect(computeRoutes(t, name(2)).broadcast.get(name(0))).toEqual([]);
  });

  it('on random connected topologies, every broadcast reaches every peer exactly once and unicast walks arrive', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = new SeededRandom(seed);
      const n = 2 + rnd.int(40);
      const t = topology(n, randomConnected(n, rnd.int(2 * n), rnd));
      const routes = new Map([...t.keys()].map((p) => [p, computeRoutes(t, p)]));
      for (const src of t.keys()) {
        const copies = new Map<string, number>();
        const queue = [src];
        while (queue.length > 0) {
          const at = queue.shift()!;
          for (const hop of routes.get(at)!.broadcast.get(src) ?? []) {
            // The receiver attributes it to src: it came from src or from a neighbour one hop closer to src.
            expect(
              at === src || routes.get(hop)!.upstream.get(src)!.includes(at),
              `seed ${seed}: broadcast ${src} via ${at} refused at ${hop}`,
            ).toBe(true);
            copies.set(hop, (copies.get(hop) ?? 0) + 1);
            queue.push(hop);
          }
        }
        for (const p of t.keys()) expect(copies.get(p) ?? 0, `seed ${seed} src ${src} at ${p}`).toBe(p === src ? 0 : 1);
        for (const dst of t.keys()) {
          if (dst === src) continue;
          let at = src;
          for (let steps = 0; at !== dst; steps++) {
            expect(steps, `seed ${seed}: unicast ${src} -> ${dst} loops`).toBeLessThan(n);
            const next = routes.get(at)!.unicast.get(dst)!;
            expect(
              at === src || routes.get(next)!.upstream.get(src)!.includes(at),
              `seed ${seed}: unicast ${src} via ${at} refused at ${next}`,
            ).toBe(true);
            at = next;
          }
        }
      }
    }
  });

  it('prints the time per recompute at 100 peers', () => {
    const rnd = new SeededRandom(100);
    const t = topology(100, randomConnected(100, 200, rnd));
    const runs = 200;
    for (let i = 0; i < 200; i++) computeRoutes(t, name(i % 100)); // warm up the JIT
    const start = performance.now();
    for (let i = 0; i < runs; i++) computeRoutes(t, name(i % 100));
    const perRunMs = (performance.now() - start) / runs;
    console.log(`routes: ${perRunMs.toFixed(3)} ms per recompute (100 peers, ${99 + 200} edges max, unicast + broadcast for every source)`);
    expect(computeRoutes(t, name(0)).unicast.size).toBe(99);
  });
});
