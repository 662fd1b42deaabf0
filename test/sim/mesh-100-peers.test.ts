/**
 * 100 complete meshes in one process over the in-memory network, FakeClock time, seeded randomness.
 *
 * 1. Each peer gets a few random targets (a sparse connected graph); all converge to one topology view.
 * 2. The network splits into two halves: each half notices and forgets the other.
 * 3. The partition heals: the connection makers' retries reconnect, and all converge again.
 *
 * Discovery is off: with it on every peer dials every other (a full mesh of 4950 connections, as Weave builds), which
 * is not what this test is about. Replay a failure with WEFT_SEED=<seed printed below>.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../runtime/clock.js';
import { silentLogger } from '../../runtime/logger.js';
import { SeededRandom } from '../../runtime/random.js';
import { MemoryNetwork } from '../../gossip/memory-transport.js';
import { Mesh } from '../../gossip/mesh.js';
import { peerIdToName } from '../../gossip/peer-name.js';
import { runUntil as runSimUntil } from './run-until.js';

const N = 100;
const HALF = N / 2;
const seed = Number(process.env.WEFT_SEED ?? Date.now() % 100000);
const rnd = new SeededRandom(seed);
const clock = new FakeClock();
const net = new MemoryNetwork(clock, {
  // 1..20 ms one way, fixed per pair of hosts.
  latencyMs: (a, b) => 1 + ((hash(a < b ? a + b : b + a) >>> 0) % 20),
});
const host = (i: number) => `10.1.${i >> 8}.${i & 255}`;
const meshes: Mesh[] = [];

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h;
}

/** Peer names and versions as one string: equal strings mean identical views. */
function view(m: Mesh): string {
  return [...m.peers().values()]
    .map((e) => `${e.name}@${e.version}`)
    .sort()
    .join(',');
}

function isConverged(group: Mesh[]): boolean {
  const first = view(group[0]!);
  return group.every((m) => m.peers().size === group.length && view(m) === first);
}

/** Advance simulated time until `done()` or `limitMs` (./run-until.ts); returns the simulated ms taken. */
const runUntil = (done: () => boolean, limitMs: number) => runSimUntil(clock, done, limitMs);

afterAll(async () => {
  for (const m of meshes) await m.stop();
});

describe(`mesh of ${N} peers (seed ${seed})`, () => {
  it('converges, notices a partition, and converges again after it heals', async () => {
    console.log(`mesh-100-peers: seed ${seed} (replay with WEFT_SEED=${seed})`);
    for (let i = 0; i < N; i++) {
      const m = new Mesh(
        { transport: net.transport(host(i)), clock, random: rnd, log: silentLogger },
        { peerName: peerIdToName(0x020000000000 + i), nickname: `p${i}`, uid: String(i + 1), isDiscoveryEnabled: false },
      );
      await m.start();
      meshes.push(m);
    }
    // A random tree inside each half (so each half stays connected when split), a few links across, and extra
    // random links: about 3 connections per peer.
    const targets = new Map<number, Set<number>>();
    const link = (a: number, b: number) => {
      if (a !== b) (targets.get(a) ?? targets.set(a, new Set()).get(a)!).add(b);
    };
    for (let i = 1; i < N; i++) if (i !== HALF) link(i, i < HALF ? rnd.int(i) : HALF + rnd.int(i - HALF));
    for (let k = 0; k < 5; k++) link(rnd.int(HALF), HALF + rnd.int(HALF));
    for (let k = 0; k < N / 2; k++) link(rnd.int(N), rnd.int(N));
    for (const [i, ts] of targets)
      meshes[i]!.connect(
        [...ts].map((j) => `${host(j)}:6783`),
        false,
      );

    // 1. Converge.
    const convergeMs = await runUntil(() => isConverged(meshes), 120_000);
    const edges = meshes.reduce((n, m) => n + m.neighbours().length, 0) / 2;
    console.log(`mesh-100-peers: ${N} peers, ${edges} connections: converged in ${convergeMs} ms simulated`);
    expect(convergeMs, `seed ${seed}`).toBeLessThan(Infinity);
    expect(
      meshes.every((m) => m.routes().unicast.size === N - 1),
      `seed ${seed}`,
    ).toBe(true);

    // Periodic gossip: one round on every peer, counted per peer (not all N-1 others).
    let total = 0;
    for (const m of meshes) {
      m.gossipRound();
      total += m.gossipStats().lastRoundMessages;
    }
    const nLogN = N * Math.ceil(Math.log2(N));
    console.log(`mesh-100-peers: one gossip round = ${total} messages (N·ceil(log2 N) = ${nLogN}, N·(N-1) = ${N * (N - 1)})`);
    expect(total).toBeLessThanOrEqual(nLogN);
    await runUntil(() => false, 1000);
    expect(isConverged(meshes), `seed ${seed}`).toBe(true);

    // 2. Partition into two halves.
    const left = meshes.slice(0, HALF);
    const right = meshes.slice(HALF);
    for (let i = 0; i < HALF; i++) for (let j = HALF; j < N; j++) net.partition(host(i), host(j));
    const splitMs = await runUntil(() => isConverged(left) && isConverged(right), 120_000);
    console.log(`mesh-100-peers: partitioned into ${HALF}+${HALF}: each half forgot the other in ${splitMs} ms simulated`);
    expect(splitMs, `seed ${seed}`).toBeLessThan(Infinity);
    const rightNames = new Set(right.map((m) => m.name));
    expect(
      left.every((m) => [...m.peers().keys()].every((n) => !rightNames.has(n))),
      `seed ${seed}`,
    ).toBe(true);
    expect(
      left.every((m) => [...m.routes().unicast.keys()].every((n) => !rightNames.has(n))),
      `seed ${seed}`,
    ).toBe(true);
    await runUntil(() => false, 30_000); // stay apart a while: the cross targets back off

    // 3. Heal.
    net.healAll();
    const healMs = await runUntil(() => isConverged(meshes), 300_000);
    console.log(`mesh-100-peers: healed: converged again in ${healMs} ms simulated`);
    expect(healMs, `seed ${seed}`).toBeLessThan(Infinity);
    expect(
      meshes.every((m) => m.routes().unicast.size === N - 1),
      `seed ${seed}`,
    ).toBe(true);
  });
});
