/**
 * Scale of the control plane in one process (issue 19's "the in-process simulation shows the same at 256 routers"):
 * N meshes over the in-memory network, FakeClock time, seeded randomness, discovery on, star bootstrap (every peer is
 * given only p0, the rest are found by gossip, as `npm run bench:scale` does with real routers). It prints:
 *   - simulated time until every peer holds a connection to every other (N(N-1)/2) and all views agree;
 *   - control messages per peer per second while idle (heartbeats and periodic gossip), over 60 s simulated;
 *   - a quarter of the peers killed at once (cut off from everyone, p0 among them): simulated time until the survivors
 *     are a full mesh of themselves again (heartbeat timeouts, then forgetting the dead), then
 *     until the restarted quarter (new uids) is back in the full mesh;
 *   - wall time and heap growth for the whole run.
 * A benchmark, not a CI test (a full mesh of 256 is 32,640 connections):
 *   WEFT_BENCH=1 [WEFT_SIM_PEERS=256] [WEFT_SEED=S] [WEFT_SIM_LIMIT_MS=300000] npx vitest run test/sim/mesh-scale.test.ts
 */
import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../../runtime/clock.js';
import { silentLogger } from '../../runtime/logger.js';
import { SeededRandom } from '../../runtime/random.js';
import { MemoryNetwork } from '../../gossip/memory-transport.js';
import { Mesh } from '../../gossip/mesh.js';
import { peerIdToName } from '../../gossip/peer-name.js';
import { runUntil as runSimUntil } from './run-until.js';

const N = Number(process.env.WEFT_SIM_PEERS ?? 256);
const seed = Number(process.env.WEFT_SEED ?? Date.now() % 100000);
const rnd = new SeededRandom(seed);
const clock = new FakeClock();
const net = new MemoryNetwork(clock, { latencyMs: 1 });
const host = (i: number) => `10.2.${i >> 8}.${i & 255}`;
const meshes: Array<Mesh | null> = [];

function newMesh(i: number, uid: string): Mesh {
  return new Mesh(
    { transport: net.transport(host(i)), clock, random: rnd, log: silentLogger },
    { peerName: peerIdToName(0x020000000000 + i), nickname: `p${i}`, uid },
  );
}

/** Every live mesh holds a connection to every other live one, and all know exactly the live peers. */
function isFullMesh(live: Mesh[]): boolean {
  const n = live.length;
  return live.every((m) => m.neighbours().length === n - 1 && m.peers().size === n);
}

/** Advance simulated time until `done()` or `limitMs` (./run-until.ts); returns the simulated ms taken. */
const runUntil = (done: () => boolean, limitMs: number) => runSimUntil(clock, done, limitMs);

const live = () => meshes.filter((m): m is Mesh => m !== null);

/** Gossip sent by every live mesh so far, per channel: messages and bytes, and all transport messages. */
function gossipTraffic(): string {
  const sum = new Map<string, { messages: number; bytes: number }>();
  for (const m of live()) {
    for (const [name, c] of Object.entries(m.gossipStats().channels)) {
      const t = sum.get(name) ?? { messages: 0, bytes: 0 };
      t.messages += c.messagesOut;
      t.bytes += c.bytesOut;
      sum.set(name, t);
    }
  }
  const channels = [...sum].map(([name, t]) => `${name} ${t.messages} msgs ${(t.bytes / 2 ** 20).toFixed(1)} MiB`);
  return `${net.sentMessages} transport messages; gossip ${channels.join(', ')}`;
}

afterAll(async () => {
  for (const m of live()) await m.stop();
});

describe.runIf(process.env.WEFT_BENCH)(`mesh scale: ${N} peers, star bootstrap, discovery on (seed ${seed})`, () => {
  it('forms a full mesh, idles, loses a quarter and takes it back', async () => {
    const wallStart = performance.now();
    const heapStart = process.memoryUsage().heapUsed;
    for (let i = 0; i < N; i++) {
      const m = newMesh(i, String(i + 1));
      await m.start();
      meshes.push(m);
    }
    for (let i = 1; i < N; i++) meshes[i]!.connect([`${host(0)}:6783`], false);
    const formLimitMs = Number(process.env.WEFT_SIM_LIMIT_MS ?? 300_000);
    const formMs = await runUntil(() => isFullMesh(live()), formLimitMs);
    if (formMs === Infinity) {
      const counts = live()
        .map((m) => m.neighbours().length)
        .sort((a, b) => a - b);
      console.log(
        `mesh-scale: no full mesh after ${formLimitMs} ms simulated: connections per peer min ${counts[0]}, ` +
          `median ${counts[counts.length >> 1]}, max ${counts[counts.length - 1]} (of ${N - 1}); ` +
          `${((performance.now() - wallStart) / 1000).toFixed(1)} s wall`,
      );
      // Whose views disagree: the peers each one lacks or holds beyond the live ones.
      const names = new Set(live().map((m) => m.name));
      for (const m of live()) {
        const lacks = [...names].filter((n) => !m.peers().has(n));
        const extra = [...m.peers().keys()].filter((n) => !names.has(n));
        if (lacks.length + extra.length > 0)
          console.log(
            `mesh-scale: ${m.name} lacks [${lacks.join(' ')}], holds extra [${extra.join(' ')}]; counters ${JSON.stringify(m.counters())}`,
          );
      }
    }
    const formWallS = (performance.now() - wallStart) / 1000;
    const heapFormed = process.memoryUsage().heapUsed;
    console.log(
      `mesh-scale: ${N} peers: full mesh (${(N * (N - 1)) / 2} connections) in ${formMs} ms simulated, ` +
        `${formWallS.toFixed(1)} s wall; heap +${((heapFormed - heapStart) / 2 ** 20).toFixed(0)} MiB ` +
        `(${((heapFormed - heapStart) / N / 2 ** 20).toFixed(2)} MiB per peer)`,
    );
    console.log(`mesh-scale: forming: ${gossipTraffic()}`);
    expect(formMs, `seed ${seed}`).toBeLessThan(Infinity);

    const sentBefore = net.sentMessages;
    const idleStart = performance.now();
    await runUntil(() => false, 60_000);
    const perPeerPerS = (net.sentMessages - sentBefore) / N / 60;
    console.log(
      `mesh-scale: idle 60 s simulated: ${perPeerPerS.toFixed(1)} control messages per peer per second ` +
        `(${(perPeerPerS / (N - 1)).toFixed(2)} per connection), ${((performance.now() - idleStart) / 1000).toFixed(1)} s wall`,
    );
    expect(isFullMesh(live()), 'still a full mesh after idling').toBe(true);

    // Kill a quarter at once, p0 (the bootstrap peer) among them.
    const killed = [0, ...Array.from({ length: N / 4 - 1 }, (_, k) => 1 + ((k * 4 + rnd.int(4)) % (N - 1)))];
    const unique = [...new Set(killed)];
    // Dead hosts, as kill -9 would leave them: nothing more from them, no close reaches anyone.
    const dead = new Set(unique);
    for (const i of unique) for (let j = 0; j < N; j++) if (!dead.has(j)) net.partition(host(i), host(j));
    const gone = unique.map((i) => meshes[i]!);
    for (const i of unique) meshes[i] = null;
    const forgetMs = await runUntil(() => isFullMesh(live()), 600_000);
    for (const m of gone) await m.stop();
    net.healAll();
    console.log(`mesh-scale: killed ${unique.length} (p0 among them): survivors a full mesh again in ${forgetMs} ms simulated`);
    expect(forgetMs, `seed ${seed}`).toBeLessThan(Infinity);

    // Restart them with new uids, each given one survivor as its only target.
    const survivor = meshes.findIndex((m) => m !== null);
    for (const i of unique) {
      const m = newMesh(i, String(100_000 + i));
      await m.start();
      meshes[i] = m;
      m.connect([`${host(survivor)}:6783`], false);
    }
    const rejoinMs = await runUntil(() => isFullMesh(live()), 600_000);
    console.log(
      `mesh-scale: restarted ${unique.length}: full mesh of ${N} again in ${rejoinMs} ms simulated; ` +
        `${((performance.now() - wallStart) / 1000).toFixed(1)} s wall in all`,
    );
    expect(rejoinMs, `seed ${seed}`).toBeLessThan(Infinity);
  }, 3_600_000);
});
