/**
 * Three complete routers in one process (test/sim/whole-router.ts): launch, attach through IPAM, frames across the
 * sleeves the daemons configured, a partition and its healing, a restart that keeps the peer name and the addresses.
 * Seeded and in fake time: a run takes milliseconds, and the same seed gives the same run (WEFT_SEED replays one).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WholeRouterWorld, type SimRouter } from './whole-router.js';

const SEED = Number(process.env.WEFT_SEED ?? 0x11);
const worlds: WholeRouterWorld[] = [];
afterEach(async () => {
  for (const w of worlds.splice(0)) await w.stopAll();
});

/**
 * Every router sees every other as an established connection (the data path confirmed by the sleeves' heartbeats),
 * and the last snapshot its data path was given floods to all of them (topology gossip has told everyone).
 */
function isFullMesh(routers: SimRouter[]): boolean {
  return routers.every((r) => {
    const c = r.daemon.report().router.connections;
    const snapshot = r.datapath.snapshots.at(-1);
    return (
      c.length === routers.length - 1 &&
      c.every((x) => x.state === 'established') &&
      snapshot?.broadcastNextHops.get(snapshot.localPeer)?.length === routers.length - 1
    );
  });
}

/** A broadcast frame (ARP-like) from `mac` as a container behind the router would send it. */
function broadcastFrame(mac: number, tag: number): Buffer {
  const f = Buffer.alloc(60);
  f.fill(0xff, 0, 6);
  f.writeUIntBE(mac, 6, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt32BE(tag, 14);
  return f;
}

const carries = (r: SimRouter, tag: number) => r.datapath.capture.written.some((f) => f.length >= 18 && f.readUInt32BE(14) === tag);

async function launchThree(seed: number): Promise<{ world: WholeRouterWorld; routers: SimRouter[] }> {
  const world = new WholeRouterWorld(seed);
  worlds.push(world);
  const first = WholeRouterWorld.host(0);
  const routers = [
    await world.launch(0, ['--ipalloc-init', 'consensus=3']),
    await world.launch(1, ['--ipalloc-init', 'consensus=3', first]),
    await world.launch(2, ['--ipalloc-init', 'consensus=3', first]),
  ];
  return { world, routers };
}

describe(`three whole routers in one process (seed ${SEED})`, () => {
  it('launch: a full mesh, confirmed on the data path, with snapshots naming both neighbours', async () => {
    const { world, routers } = await launchThree(SEED);
    const ms = await world.runUntil(() => isFullMesh(routers), 30_000);
    expect(ms).toBeLessThan(30_000);
    for (const r of routers) {
      const last = r.datapath.snapshots.at(-1)!;
      expect(last.neighbours.size).toBe(2);
      expect(r.daemon.report().router.peers).toHaveLength(3);
    }
  });

  it('attach: IPAM consensus among the three gives each container its own address in the range', async () => {
    const { world, routers } = await launchThree(SEED);
    await world.runUntil(() => isFullMesh(routers), 30_000);
    const endpoints = await world.settle(
      Promise.all(routers.map((r, i) => r.daemon.attach({ target: `c${i}`, addresses: ['net:default'] }))),
    );
    const addresses = endpoints.map((e) => e.addresses[0]!);
    expect(new Set(addresses).size).toBe(3);
    for (const a of addresses) expect(a).toMatch(/^10\.(3[2-9]|4[0-7])\.\d+\.\d+\/12$/);
    expect(routers.map((r) => r.datapath.attaches.map((a) => a.target))).toEqual([['c0'], ['c1'], ['c2']]);
  });

  it('frames cross the sleeves the daemons configured; a partition is noticed, and after it heals frames cross again', async () => {
    const { world, routers } = await launchThree(SEED);
    await world.runUntil(() => isFullMesh(routers), 30_000);
    const [r0, r1, r2] = routers as [SimRouter, SimRouter, SimRouter];
    r0.datapath.capture.inject(broadcastFrame(0x02_00_00_00_00_01, 1));
    await world.runUntil(() => carries(r1, 1) && carries(r2, 1), 1000);
    expect([carries(r1, 1), carries(r2, 1)]).toEqual([true, true]);

    world.isolate(2);
    const lostMs = await world.runUntil(
      () => r0.daemon.report().router.connections.every((c) => c.peer !== r2.daemon.peerName || c.state !== 'established'),
      20_000,
    );
    expect(lostMs).toBeLessThan(20_000);
    r0.datapath.capture.inject(broadcastFrame(0x02_00_00_00_00_01, 2));
    await world.runUntil(() => carries(r1, 2), 1000);
    expect([carries(r1, 2), carries(r2, 2)]).toEqual([true, false]);

    world.heal(2);
    const healedMs = await world.runUntil(() => isFullMesh(routers), 60_000);
    expect(healedMs).toBeLessThan(60_000);
    r0.datapath.capture.inject(broadcastFrame(0x02_00_00_00_00_01, 3));
    await world.runUntil(() => carries(r2, 3), 1000);
    expect(carries(r2, 3)).toBe(true);
  });

  it('restart: same peer name, a new uid, back in the mesh, and the container keeps its address', async () => {
    const { world, routers } = await launchThree(SEED);
    await world.runUntil(() => isFullMesh(routers), 30_000);
    const before = await world.settle(routers[1]!.daemon.attach({ target: 'c1', addresses: ['net:default'] }));
    const { peerName, uid } = routers[1]!.daemon;
    await routers[1]!.daemon.stop();
    const again = await world.launch(1, ['--ipalloc-init', 'consensus=3', WholeRouterWorld.host(0)]);
    expect(again.daemon.peerName).toBe(peerName);
    expect(again.daemon.uid).not.toBe(uid);
    const ms = await world.runUntil(() => isFullMesh(world.routers), 60_000);
    expect(ms).toBeLessThan(60_000);
    const after = await world.settle(again.daemon.attach({ target: 'c1', addresses: ['net:default'] }));
    expect(after.addresses).toEqual(before.addresses);
  });

  it('punch, then a direct connection: the punched path gives way and the connection is established', async () => {
    // r1 and r2 reach each other only through r0 (their control connection is cut, UDP is not), so they punch a
    // direct UDP path. When the cut is lifted their own connection comes up while the punch is still there; its data
    // path must count for the connection (once, a punch took the connection's "established" and it stayed pending).
    const world = new WholeRouterWorld(SEED);
    worlds.push(world);
    world.gossip.partition(WholeRouterWorld.host(1), WholeRouterWorld.host(2));
    const first = WholeRouterWorld.host(0);
    const routers = [await world.launch(0), await world.launch(1, [first]), await world.launch(2, [first])];
    const [, r1, r2] = routers as [SimRouter, SimRouter, SimRouter];
    const punched = (r: SimRouter) => (r.daemon.report().router.paths ?? []).some((p) => p.path === 'punched');
    const punchMs = await world.runUntil(() => punched(r1) && punched(r2), 60_000);
    expect(punchMs).toBeLessThan(60_000);
    world.gossip.heal(WholeRouterWorld.host(1), WholeRouterWorld.host(2));
    const meshMs = await world.runUntil(() => isFullMesh(routers), 120_000);
    expect(meshMs).toBeLessThan(120_000);
    for (const r of [r1, r2]) {
      const other = r === r1 ? r2 : r1;
      expect(r.daemon.report().router.paths?.find((p) => p.name === other.daemon.peerName)?.path).toBe('direct');
    }
  });

  it('repeats: the same seed gives the same addresses and the same convergence time', async () => {
    const run = async () => {
      const { world, routers } = await launchThree(SEED + 1);
      const ms = await world.runUntil(() => isFullMesh(routers), 30_000);
      const endpoints = await world.settle(
        Promise.all(routers.map((r, i) => r.daemon.attach({ target: `c${i}`, addresses: ['net:default'] }))),
      );
      await world.stopAll();
      return { ms, addresses: endpoints.map((e) => e.addresses) };
    };
    expect(await run()).toEqual(await run());
  });
});
