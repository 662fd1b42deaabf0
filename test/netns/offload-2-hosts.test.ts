/**
 * TAP offloads on two real hosts: h1 takes the kernel's offloads (the default) and cuts every super-frame into
 * segments (`--segment-offloads always`; by default only for peers that report loss), h2 runs `--no-offload`. TCP must
 * arrive intact both ways: h1 -> h2 as super-frames that h1 cuts into TCP segments and h2 coalesces again and writes
 * as super-frames (its TAP still has the header), h2 -> h1 as ordinary segments. The counters show which path each direction took, so a silent fallback would fail.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, waitFor } from '../harness/weft.js';
import { expectTcpTransfer, weftNetwork } from '../harness/network.js';
import { isTxChecksumOffloaded } from '../../netdev/offload.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const cip = (i: number) => `10.99.3.${i}`;
const cip6 = (i: number) => `fd99:3::${i}`;

describe.skipIf(skip)('offloads on 2 hosts (h2 with --no-offload)', () => {
  const net = weftNetwork(2);
  const c: TestContainer[] = [];

  beforeAll(async () => {
    const { hosts, weft } = net;
    await weft[0]!.launch(['--segment-offloads', 'always']);
    await weft[1]!.launch(['--no-offload', hosts.host(1).ip]);
    for (let i = 1; i <= 2; i++) {
      const ct = await hosts.addContainer(i, 'c1');
      c.push(ct);
      await weft[i - 1]!.run(['attach', '--netns', ct.ns, `${cip(i)}/24`, `${cip6(i)}/64`]);
    }
    for (const w of weft) {
      await waitFor(
        `h${w.host.index} to have an established connection`,
        async () => {
          const r = await w.report();
          return r.router.connections.some((x) => x.state === 'established');
        },
        30_000,
      );
    }
  });

  const transfer = (from: number, to: number, megabytes: number, port: number) =>
    expectTcpTransfer(c[from - 1]!, c[to - 1]!, cip(to), megabytes, port);

  it('leaves TX offloads on in h1 containers and turns them off in h2 containers', async () => {
    expect(await isTxChecksumOffloaded('ethwe0', { netns: c[0]!.ns })).toBe(true);
    expect(await isTxChecksumOffloaded('ethwe0', { netns: c[1]!.ns })).toBe(false);
    const [r1, r2] = await Promise.all(net.weft.map((w) => w.report()));
    expect(r1!.datapath.counters['tap_offloads']).toBeGreaterThan(0);
    expect(r2!.datapath.counters['tap_offloads']).toBe(0);
    expect(await net.weft[0]!.run(['status'])).toMatch(/Offloads: checksum, TCP segmentation\n/);
    expect(await net.weft[1]!.run(['status'])).toMatch(/Offloads: none\n/);
  });

  it('carries 50 MB h1 -> h2 as super-frames cut into segments that h2 coalesces and writes whole', async () => {
    await transfer(1, 2, 50, 5301);
    const [r1, r2] = await Promise.all(net.weft.map((w) => w.report()));
    const d1 = r1!.datapath.counters;
    const d2 = r2!.datapath.counters;
    console.log(
      `h1 segmented_out ${d1['segmented_out']} segments_out ${d1['segments_out']} pieces_out ${d1['pieces_out']}; ` +
        `h2 coalesced_delivered ${d2['coalesced_delivered']} segments_coalesced ${d2['segments_coalesced']}`,
    );
    expect(d1['segmented_out']).toBeGreaterThan(100);
    expect(d1['pieces_out'] ?? 0).toBe(0);
    expect(d2['coalesced_delivered']).toBeGreaterThan(100);
    expect(d2['drop_offload_unsupported'] ?? 0).toBe(0);
    expect(d2['drop_bad_piece'] ?? 0).toBe(0);
  });

  it('carries 50 MB h2 -> h1 as ordinary segments', async () => {
    const before = (await net.weft[1]!.report()).datapath.counters;
    await transfer(2, 1, 50, 5302);
    const after = (await net.weft[1]!.report()).datapath.counters;
    expect(after['offloaded_out']).toBe(before['offloaded_out']);
    expect(after['segmented_out']).toBe(before['segmented_out']);
    expect(after['frames_captured']! - before['frames_captured']!).toBeGreaterThan(30_000); // 50 MB / 1.4 KB
  });

  it('carries TCP both ways between an exposed host address on h1 and the container on h2, bridge offloads on', async () => {
    await net.weft[0]!.run(['expose', `${cip(100)}/24`]);
    expect(await isTxChecksumOffloaded('weft', { netns: net.hosts.host(1).ns })).toBe(true);
    await expectTcpTransfer(net.hosts.host(1), c[1]!, cip(2), 30, 5303);
    await expectTcpTransfer(c[1]!, net.hosts.host(1), cip(100), 30, 5304);
  });

  it('carries IPv6 TCP as TCPv6 super-frames (segments, coalesced)', async () => {
    // The addresses pass duplicate address detection first (about a second after attach).
    await waitFor(
      'c1 to reach c2 over IPv6',
      async () => {
        try {
          await c[0]!.exec('ping', ['-6', '-c', '1', '-W', '1', cip6(2)]);
          return true;
        } catch {
          return false;
        }
      },
      15_000,
    );
    const before = (await net.weft[1]!.report()).datapath.counters['coalesced_delivered']!;
    await expectTcpTransfer(c[0]!, c[1]!, cip6(2), 30, 5305);
    expect((await net.weft[1]!.report()).datapath.counters['coalesced_delivered']! - before).toBeGreaterThan(100);
  });
});
