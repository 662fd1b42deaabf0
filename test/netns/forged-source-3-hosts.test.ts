/**
 * Datagrams are bound to their sender's endpoint, not to the name in their header. Routers on h1 and h2 without a
 * password (everything on the underlay in clear); h3, a namespace on the same underlay with no router, forges clear
 * sleeve datagrams to h1 that name h2 as sender (fixtures/udp-forge.mjs): a broadcast frame with a marker, and
 * heartbeats. The marker never reaches h1's container, h1 counts each forgery as drop_bad_source, and c1 and c2
 * keep talking.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, repoRoot, waitFor } from '../harness/weft.js';
import { startNetwork, weftNetwork } from '../harness/network.js';
import { SLEEVE_PORT, newMarker, startCapture } from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const forgeScript = join(repoRoot, 'test/netns/fixtures/udp-forge.mjs');
const cip = (i: number) => `10.49.1.${i}`;
const FORGERIES = 20;

describe.skipIf(skip)('forged sleeve sources on 3 hosts (2 routers, 1 stranger)', () => {
  const net = weftNetwork(3, { routersOn: [1, 2] });
  const c: TestContainer[] = [];

  beforeAll(async () => {
    c.push(...(await startNetwork(net, cip)));
    expect(await waitFor('c1 -> c2', () => canPing(c[0]!, cip(2)), 15_000)).toBe(true);
  });

  it("drops clear datagrams naming h2 that come from h3's address, counts them, and delivers nothing", async () => {
    const h2name = (await net.weft[1]!.report()).router.name;
    const before = (await net.weft[0]!.report()).datapath.counters;
    const marker = newMarker('forged');
    const pcapFile = join(net.runDir, 'c1-forged.pcap');
    const capture = await startCapture(c[0]!.ns, 'ethwe0', pcapFile);
    let sent: number;
    try {
      const out = await net.hosts
        .host(3)
        .exec(
          process.execPath,
          [forgeScript, net.hosts.host(1).ip, String(SLEEVE_PORT), h2name.replace(/:/g, ''), marker, String(FORGERIES)],
          { timeoutMs: 30_000 },
        );
      sent = (JSON.parse(out.trim()) as { sent: number }).sent;
      expect(sent).toBe(2 * FORGERIES);
      await waitFor(
        'h1 to count the forgeries',
        async () => {
          const now = (await net.weft[0]!.report()).datapath.counters;
          return (now['drop_bad_source'] ?? 0) - (before['drop_bad_source'] ?? 0) >= sent ? true : undefined;
        },
        10_000,
      ).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      const pcap = await capture.stop();
      expect(pcap.includes(Buffer.from(marker)), 'the forged frame reached c1').toBe(false);
    }
    const after = (await net.weft[0]!.report()).datapath.counters;
    expect((after['drop_bad_source'] ?? 0) - (before['drop_bad_source'] ?? 0)).toBe(sent);
    expect((after['frames_delivered'] ?? 0) - (before['frames_delivered'] ?? 0)).toBeLessThan(FORGERIES);
    // The real h2 is still h2: c1 and c2 keep talking.
    expect(await canPing(c[0]!, cip(2))).toBe(true);
  });
});
