/**
 * NAT, the direct path: A and B each behind its own port-keeping NAT (MASQUERADE, unsolicited inbound dropped), both
 * launched with only the public host C as peer. C tells each where it sees it from; A and B exchange those endpoints
 * over the mesh and punch a direct UDP path. Then their containers' traffic must not cross C (its relay counter stays
 * still and its underlay sees only heartbeats), `weft status` must say punched; with the direct path cut (iptables
 * on both NATs) the traffic must fall back to C within a few seconds, and go direct again once the cut is lifted.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, dumpLogsOnFailure, waitFor, weftOn, type WeftHost } from '../harness/weft.js';
import { createNatSites, type NatSites } from '../harness/nat.js';
import { sleeveDatagrams, startCapture } from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const cip = (i: number) => `10.49.7.${i}`;

describe.skipIf(skip)('NAT: two cone NATs punch a direct path, fall back to the relay when it is cut', () => {
  let sites: NatSites;
  let runDir = '';
  const weft: WeftHost[] = [];
  const c: TestContainer[] = [];
  const names: string[] = [];

  const pathTo = async (from: number, to: number) => (await weft[from]!.report()).router.paths?.find((p) => p.name === names[to]);
  const forwardedAtC = async () => (await weft[2]!.report()).datapath.counters['frames_forwarded'] ?? 0;
  /** 40 pings A -> B at 50 ms; resolves how many got an answer. */
  const pingBurst = async () => {
    const out = await c[0]!
      .exec('ping', ['-c', '40', '-i', '0.05', '-W', '1', cip(2)], { timeoutMs: 20_000 })
      .catch((e: Error) => e.message);
    return Number(/(\d+) received/.exec(out)?.[1] ?? 0);
  };

  beforeAll(async () => {
    sites = await createNatSites();
    runDir = mkdtempSync(join(tmpdir(), `${sites.hosts.prefix}-`));
    const env = { WEFT_PASSWORD: 'nat-punch-password' };
    for (const h of [sites.a, sites.b, sites.c]) weft.push(weftOn(h, runDir, env));
    await weft[2]!.launch();
    await Promise.all([weft[0]!.launch([sites.c.ip]), weft[1]!.launch([sites.c.ip])]);
    c.push(...(await Promise.all([sites.a, sites.b, sites.c].map((h) => sites.hosts.addContainer(h, 'c1')))));
    names.push(
      ...(await Promise.all(
        c.map(async (ct, i) => {
          await weft[i]!.run(['attach', '--netns', ct.ns, `${cip(i + 1)}/24`]);
          return (await weft[i]!.report()).router.name;
        }),
      )),
    );
  }, 120_000); // about 25 s on a quiet machine; 45 s at load 29 (five namespaces, three daemons)
  afterEach((ctx) => dumpLogsOnFailure(ctx, weft));
  afterAll(async () => {
    await Promise.all(weft.map((w) => w.cleanup().catch(() => undefined)));
    await sites?.hosts.destroy();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  });

  it("punches A <-> B: status says punched, at the other NAT's public address", async () => {
    expect(await waitFor('A -> B ping (through C at first)', () => canPing(c[0]!, cip(2)), 30_000)).toBe(true);
    const ab = await waitFor(
      'A to punch to B',
      async () => ((await pathTo(0, 1))?.path === 'punched' ? pathTo(0, 1) : undefined),
      30_000,
      500,
    );
    const ba = await waitFor(
      'B to punch to A',
      async () => ((await pathTo(1, 0))?.path === 'punched' ? pathTo(1, 0) : undefined),
      10_000,
      500,
    );
    console.log(`A's path to B: ${JSON.stringify(ab)}; B's to A: ${JSON.stringify(ba)}`);
    expect(ab!.endpoint).toBe(`${sites.natBPublicIp}:6783`);
    expect(ba!.endpoint).toBe(`${sites.natAPublicIp}:6783`);
    expect(await weft[0]!.run(['status', 'peers'])).toMatch(/\(h2\)\s+punched /);
    // C is still a direct neighbour of both.
    expect((await pathTo(0, 2))?.path).toBe('direct');
  });

  it('carries A <-> B traffic direct: C relays none of it and its underlay sees only heartbeats', async () => {
    const before = await forwardedAtC();
    const capture = await startCapture(sites.c.ns, 'eth0', join(runDir, 'c.pcap'), ['udp']);
    const received = await pingBurst().finally(() => capture.stop());
    const datagrams = sleeveDatagrams(await capture.stop());
    const forwarded = (await forwardedAtC()) - before;
    console.log(`direct: ${received}/40 pings answered; C forwarded ${forwarded} frames, saw ${datagrams.length} sleeve datagrams`);
    expect(received).toBeGreaterThanOrEqual(38);
    // Relayed, the 80 frames would all be forwarded by C; direct, at most a broadcast or two (ARP) still crosses C
    // along the spanning tree, by design.
    expect(forwarded).toBeLessThan(8);
    // 80 frames relayed would be 160 datagrams at C; heartbeats over ~2-3 s with two neighbours are a dozen or two.
    expect(datagrams.length).toBeLessThan(40);
  });

  it('falls back to the relay within seconds when the direct path is cut, and returns once it is lifted', async () => {
    await sites.cutDirect(true);
    try {
      const cutAt = Date.now();
      await waitFor('A to relay B through C again', async () => (await pathTo(0, 1))?.path === 'relayed', 15_000, 250);
      console.log(`fell back to the relay ${Date.now() - cutAt} ms after the cut: ${JSON.stringify(await pathTo(0, 1))}`);
      // Each side times the cut path out on its own (up to a heartbeat apart): the replies need B's side relayed too.
      await waitFor('B to relay A through C again', async () => (await pathTo(1, 0))?.path === 'relayed', 15_000, 250);
      const before = await forwardedAtC();
      expect(await pingBurst()).toBeGreaterThanOrEqual(38);
      expect((await forwardedAtC()) - before).toBeGreaterThanOrEqual(76);
    } finally {
      await sites.cutDirect(false);
    }
    const liftedAt = Date.now();
    await waitFor('A to go direct to B again', async () => (await pathTo(0, 1))?.path === 'punched', 20_000, 250);
    console.log(`direct again ${Date.now() - liftedAt} ms after the cut was lifted`);
    const before = await forwardedAtC();
    expect(await pingBurst()).toBeGreaterThanOrEqual(38);
    expect((await forwardedAtC()) - before).toBeLessThan(8);
  });
});
