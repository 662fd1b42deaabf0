/**
 * NAT, the fallback: A behind a port-keeping NAT, B behind a symmetric one (`MASQUERADE --random-fully`), both
 * launched with only the public host C as peer. Neither can dial the other (unsolicited inbound is dropped) and a
 * punched path cannot work through a symmetric NAT, so their containers' traffic must go through C, sealed (a
 * password), and `weft status` must say it is relayed, through whom and why.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, dumpLogsOnFailure, waitFor, weftOn, type WeftHost } from '../harness/weft.js';
import { createNatSites, type NatSites } from '../harness/nat.js';
import { ipPairBytes, isEncryptedDatagram, sleeveDatagrams, startCapture } from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const cip = (i: number) => `10.49.6.${i}`;

describe.skipIf(skip)('NAT: symmetric NAT on one side, data relayed through the public host', () => {
  let sites: NatSites;
  let runDir = '';
  const weft: WeftHost[] = [];
  const c: TestContainer[] = [];

  beforeAll(async () => {
    sites = await createNatSites({ isSymmetricB: true });
    runDir = mkdtempSync(join(tmpdir(), `${sites.hosts.prefix}-`));
    const env = { WEFT_PASSWORD: 'nat-relay-password' };
    for (const h of [sites.a, sites.b, sites.c]) weft.push(weftOn(h, runDir, env));
    await weft[2]!.launch();
    await Promise.all([weft[0]!.launch([sites.c.ip]), weft[1]!.launch([sites.c.ip])]);
    c.push(...(await Promise.all([sites.a, sites.b, sites.c].map((h) => sites.hosts.addContainer(h, 'c1')))));
    await Promise.all(c.map((ct, i) => weft[i]!.run(['attach', '--netns', ct.ns, `${cip(i + 1)}/24`])));
  }, 120_000); // about 25 s on a quiet machine; 45 s at load 29 (five namespaces, three daemons)
  afterEach((ctx) => dumpLogsOnFailure(ctx, weft));
  afterAll(async () => {
    await Promise.all(weft.map((w) => w.cleanup().catch(() => undefined)));
    await sites?.hosts.destroy();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  });

  it('gives both NATed routers an established data path to C', async () => {
    for (const w of weft.slice(0, 2)) {
      await waitFor(
        `h${w.host.index} established with C`,
        async () => (await w.report()).router.connections.some((x) => x.state === 'established'),
        30_000,
      );
    }
    const r = await weft[2]!.report();
    expect(r.router.connections.filter((x) => x.state === 'established')).toHaveLength(2);
  });

  it('carries pings between the containers behind the two NATs', async () => {
    expect(await waitFor('A -> B ping', () => canPing(c[0]!, cip(2)), 30_000)).toBe(true);
    expect(await canPing(c[1]!, cip(1), 3)).toBe(true);
  });

  it('says in `weft status` that A <-> B is relayed through C, and why', async () => {
    const nameOf = async (w: WeftHost) => (await w.report()).router.name;
    const [bName, cName] = [await nameOf(weft[1]!), await nameOf(weft[2]!)];
    // One punch attempt has to fail first (10 s of probing into the symmetric NAT), then the reason says so.
    const path = (await waitFor(
      'A to report its failed punch to B',
      async () => {
        const p = (await weft[0]!.report()).router.paths?.find((x) => x.name === bName);
        return p?.reason?.includes('punching failed') ? p : undefined;
      },
      40_000,
      500,
    ))!;
    console.log(`A's path to B: ${JSON.stringify(path)}`);
    expect(path.path).toBe('relayed');
    expect(path.via).toBe(cName);
    expect(path.viaNickname).toBe('h3');
    const text = await weft[0]!.run(['status', 'peers']);
    expect(text).toMatch(/relayed via .*h3.*punching failed/);
    // Still carried, sealed: every sleeve datagram on C's underlay while the containers ping is encrypted, and the
    // pings' own bytes (the inner IP header) never show.
    const capture = await startCapture(sites.c.ns, 'eth0', join(runDir, 'c.pcap'), ['udp']);
    const pinged = await c[0]!
      .exec('ping', ['-c', '20', '-i', '0.1', '-W', '1', cip(2)], { timeoutMs: 20_000 })
      .then(() => true)
      .catch(() => false);
    await new Promise((r) => setTimeout(r, 1_000));
    const pcap = await capture.stop();
    const sleeve = sleeveDatagrams(pcap);
    console.log(
      `relayed ping: capture ${pcap.length} bytes, ${sleeve.length} sleeve datagrams at C, ${sleeve.filter(isEncryptedDatagram).length} sealed`,
    );
    expect(pinged).toBe(true);
    expect(sleeve.length).toBeGreaterThanOrEqual(40);
    expect(sleeve.filter((d) => !isEncryptedDatagram(d))).toHaveLength(0);
    expect(pcap.includes(ipPairBytes(cip(1), cip(2))), 'inner IP header A -> B').toBe(false);
    const k = (await weft[2]!.report()).datapath.counters;
    expect(k['drop_decrypt'] ?? 0).toBe(0);
    expect(k['frames_forwarded'] ?? 0).toBeGreaterThan(0);
    const toC = (await weft[0]!.report()).router.connections.find((x) => x.nickname === 'h3' && x.state === 'established');
    expect(toC?.dataCipher).toBeTruthy();
  });

  it("keeps an iperf3 TCP stream going when B's NAT forgets its UDP mappings mid-stream (rebinding)", async () => {
    c[1]!.spawn('iperf3', ['-s', '-1', '-p', '5201'], { stdio: 'ignore' });
    await waitFor(
      'iperf3 server to listen',
      async () => (await c[1]!.exec('ss', ['-Hltn', 'sport = :5201'])).includes('5201'),
      10_000,
      100,
    );
    const movesBefore = (await weft[2]!.report()).datapath.counters['endpoint_moves'] ?? 0;
    const endpointOfB = async () => (await weft[2]!.report()).router.paths?.find((p) => p.nickname === 'h2')?.endpoint;
    const before = await endpointOfB();
    const client = c[0]!.exec('iperf3', ['-c', cip(2), '-p', '5201', '-t', '12', '-i', '1', '-J'], { timeoutMs: 45_000 });
    await new Promise((r) => setTimeout(r, 3_000));
    // Symmetric NAT: B's next datagram to C leaves from a new random port. Only UDP: the control connection stays.
    await sites.natB.exec('conntrack', ['-D', '-p', 'udp']).catch(() => undefined);
    const result = JSON.parse(await client) as {
      error?: string;
      intervals?: Array<{ sum?: { bytes?: number } }>;
      end?: { sum_received?: { bytes?: number } };
    };
    const after = await endpointOfB();
    const movesAfter = (await weft[2]!.report()).datapath.counters['endpoint_moves'] ?? 0;
    const perSecond = (result.intervals ?? []).map((i) => i.sum?.bytes ?? 0);
    console.log(
      `rebinding: C sees B at ${before} -> ${after}; endpoint_moves ${movesBefore} -> ${movesAfter}; bytes per second ${perSecond.join(' ')}`,
    );
    expect(result.error).toBeUndefined();
    expect(result.end?.sum_received?.bytes ?? 0).toBeGreaterThan(0);
    // C followed B to its new mapping (learned from B's sealed datagrams), and the stream kept moving after it. The
    // stream may stall for a few seconds after the flush (TCP backs off while B's old mapping swallows C's datagrams;
    // 4 s once in a serial run): the last 3 of 12 seconds must carry data. TODO(#16): follow a rebinding within ~1 s.
    expect(after).not.toBe(before);
    expect(movesAfter).toBeGreaterThan(movesBefore);
    expect(perSecond.slice(-3).every((b) => b > 0)).toBe(true);
  });
});
