/**
 * A mixed IPv4/IPv6 underlay on real hosts.
 *
 * Three hosts: h1 and h2 dual-stack, h3 IPv6-only. h2 joins h1 by IPv4, h3 joins h1 by IPv6; h2 learns h3's IPv6
 * address through gossip and connects to it directly, so every pair is a neighbour, h1-h2 over IPv4 and the pairs
 * with h3 over IPv6; every container pings every other and TCP crosses an IPv6 pair. With a password. The IPv6-only
 * pair with and without a password is ipv6-2-hosts.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { randomInt } from 'node:crypto';
import type { TestContainer, TestHost } from '../harness/hosts.js';
import { netnsSkipReason } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor, type WeftHost } from '../harness/weft.js';
import { expectTcpTransfer, weftNetwork, type WeftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();

/** A ULA /64 per file run, so parallel runs never share addresses (they are inside our namespaces anyway). */
const ula = `fd42:${randomInt(0x1000, 0xffff).toString(16)}:${randomInt(0x1000, 0xffff).toString(16)}`;
/** Host N's IPv6 underlay address. */
const hip6 = (n: number): string => `${ula}::${n}`;

/** Give `host` an IPv6 underlay address (no duplicate detection: usable at once); `isIpv6Only` removes its IPv4. */
async function addIpv6(host: TestHost, isIpv6Only: boolean): Promise<void> {
  await host.exec('ip', ['-6', 'addr', 'add', `${hip6(host.index)}/64`, 'dev', host.ifname, 'nodad']);
  if (isIpv6Only) await host.exec('ip', ['-4', 'addr', 'flush', 'dev', host.ifname]);
}

async function establishedWith(w: WeftHost, count: number): Promise<void> {
  await waitFor(
    `h${w.host.index} to have ${count} established connection(s)`,
    async () => (await w.report()).router.connections.filter((x) => x.state === 'established').length === count,
    30_000,
  );
}

async function attach(net: WeftNetwork, i: number, ip: string): Promise<TestContainer> {
  const ct = await net.hosts.addContainer(i, 'c1');
  await net.weft[i - 1]!.run(['attach', '--netns', ct.ns, `${ip}/24`]);
  return ct;
}

describe.skipIf(skip)('mixed IPv4/IPv6 mesh of 3 hosts (h1, h2 dual-stack; h3 IPv6-only), with a password', () => {
  const net = weftNetwork(3, { env: { WEFT_PASSWORD: 'a mixed mesh password' } });
  const c: TestContainer[] = [];
  const cip = (i: number): string => `10.61.3.${i}`;

  beforeAll(async () => {
    await addIpv6(net.hosts.host(1), false);
    await addIpv6(net.hosts.host(2), false);
    await addIpv6(net.hosts.host(3), true);
    await net.weft[0]!.launch();
    await net.weft[1]!.launch([net.hosts.host(1).ip]);
    await net.weft[2]!.launch([`[${hip6(1)}]:6783`]);
    for (let i = 1; i <= 3; i++) c.push(await attach(net, i, cip(i)));
    for (const w of net.weft) await establishedWith(w, 2);
  });

  it('h2 found h3 through gossip and reached it over IPv6; h1-h2 stays IPv4', async () => {
    const addresses = (await net.weft[1]!.report()).router.connections.filter((x) => x.state === 'established').map((x) => x.address);
    expect(addresses.some((a) => a.startsWith(`${net.hosts.host(1).ip}:`))).toBe(true);
    expect(addresses.some((a) => a.startsWith(`[${hip6(3)}]:`))).toBe(true);
  });

  it('every container pings every other', async () => {
    for (let i = 1; i <= 3; i++) {
      for (let j = 1; j <= 3; j++) {
        if (i !== j) expect(await waitFor(`c${i} -> c${j}`, () => canPing(c[i - 1]!, cip(j)), 15_000)).toBe(true);
      }
    }
  });

  it('carries TCP intact between the dual-stack h2 and the IPv6-only h3', async () => {
    await expectTcpTransfer(c[1]!, c[2]!, cip(3), 8, 5202);
  });
});
