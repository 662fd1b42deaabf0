/**
 * pcap capture on three real hosts with a password: h2 reaches its bridge through libpcap on a veth pair
 * (`--capture pcap`, no offloads), h1 and h3 through their TAPs (with offloads). The same sleeve carries both.
 * Steps run in order and share the hosts:
 * 1. `weft status` on h2 names the capture mode and the interface; h1's says tap.
 * 2. Every container pings every other.
 * 3. TCP in both directions through h2's capture, checksummed end to end: h1 -> h2 brings TCP super-frames from h1's
 *    TAP, which reach h2's bridge as ordinary segments; h2 -> h3 is read by libpcap.
 * 4. `weft stop` on h2 removes the veth pair.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor } from '../harness/weft.js';
import { expectTcpTransfer, startNetwork, weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();

/** Container i's overlay address (inside our namespaces only). */
const cip = (i: number) => `10.51.1.${i}`;

describe.skipIf(skip)('pcap capture on one of 3 hosts, encrypted', () => {
  const net = weftNetwork(3, { env: { WEFT_PASSWORD: 'pcap-3-hosts correct horse battery' }, hostEnv: { 2: { WEFT_CAPTURE: 'pcap' } } });
  const c: TestContainer[] = [];

  beforeAll(async () => {
    c.push(...(await startNetwork(net, cip)));
  });

  it('weft status shows the capture mode: pcap on h2, tap on h1', async () => {
    expect(await net.weft[1]!.run(['status'])).toMatch(/Capture: pcap on weft-pcap\n\s+Offloads: none\n/);
    expect(await net.weft[0]!.run(['status'])).toMatch(/Capture: tap on weft-tap\n/);
    const link = await net.hosts.host(2).exec('ip', ['-o', 'link', 'show', 'master', 'weft']);
    expect(link).toContain('weft-pcbr');
    expect(link).not.toContain('weft-tap');
  });

  it('every container pings every other', async () => {
    for (let i = 1; i <= 3; i++) {
      for (let j = 1; j <= 3; j++) {
        if (i === j) continue;
        expect(await waitFor(`c${i} -> c${j}`, () => canPing(c[i - 1]!, cip(j)), 15_000)).toBe(true);
      }
    }
    const counters = (await net.weft[1]!.report()).datapath.counters;
    expect(counters['pcap_framesRead']).toBeGreaterThan(0);
    expect(counters['pcap_framesWritten']).toBeGreaterThan(0);
  });

  it('carries TCP intact into the pcap host from a TAP host with offloads', async () => {
    await expectTcpTransfer(c[0]!, c[1]!, cip(2), 20, 5201);
    const counters = (await net.weft[1]!.report()).datapath.counters;
    // h1 sends its super-frames as TCP segments (or, where they do not fit, pieces that h2 cuts into segments):
    // nothing reaches h2's bridge as a super-frame, nothing is refused for want of offloads.
    expect(counters['drop_offload_unsupported']).toBe(0);
    expect(counters['pcap_dropsBadLength']).toBe(0);
  });

  it('carries TCP intact out of the pcap host', async () => {
    const before = (await net.weft[1]!.report()).datapath.counters['pcap_framesRead']!;
    await expectTcpTransfer(c[1]!, c[2]!, cip(3), 20, 5202);
    const { counters, mtuBytes } = (await net.weft[1]!.report()).datapath;
    // 20 MiB in frames of at most the MTU, every one read through libpcap.
    expect(counters['pcap_framesRead']! - before).toBeGreaterThan((20 * 1024 * 1024) / mtuBytes!);
    expect(counters['pcap_dropsTruncated']).toBe(0);
  });

  it('weft stop removes the veth pair', async () => {
    await net.weft[1]!.run(['stop'], 15_000);
    const links = await net.hosts.host(2).exec('ip', ['-o', 'link', 'show']);
    expect(links).not.toContain('weft-pcap');
    expect(links).not.toContain('weft-pcbr');
  });
});
