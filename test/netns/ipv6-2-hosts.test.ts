/**
 * IPv6 underlays on real hosts: control connections and sleeve datagrams over IPv6.
 *
 * Two IPv6-only hosts (their IPv4 addresses removed), h2 given h1 as `[addr]:port`: the connection is
 *    established (before, an IPv6 peer stayed `pending` forever: its heartbeats were dropped as a bad address),
 *    containers ping and carry a checksummed TCP transfer, with a password and without. A tcpdump on the underlay
 *    sees the sleeve's datagrams as IPv6 UDP.
 * The mixed IPv4/IPv6 mesh is ipv6-mixed-3-hosts.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { randomInt } from 'node:crypto';
import type { TestContainer, TestHost } from '../harness/hosts.js';
import { netnsSkipReason } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor, weftOn, type WeftHost } from '../harness/weft.js';
import { expectTcpTransfer, weftNetwork } from '../harness/network.js';

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

describe.skipIf(skip)('IPv6-only underlay between 2 hosts', () => {
  const net = weftNetwork(2);
  beforeAll(async () => {
    for (const h of net.hosts.hosts) await addIpv6(h, true);
  });

  // The same hosts twice: routers without a password, then stopped and replaced by routers with one (fresh state
  // dirs, new containers), which saves building a second set of hosts.
  for (const password of [undefined, 'an ipv6 underlay password']) {
    const what = password === undefined ? 'without a password' : 'with a password';
    const cip = (i: number): string => `10.61.${password === undefined ? 1 : 2}.${i}`;

    describe(what, () => {
      const c: TestContainer[] = [];
      const weft: WeftHost[] = [];

      beforeAll(async () => {
        if (password === undefined) {
          weft.push(...net.weft);
        } else {
          for (const w of net.weft.slice()) await w.cleanup();
          for (const h of net.hosts.hosts) {
            weft.push(net.track(weftOn(h, net.runDir, { WEFT_PASSWORD: password }, { stateName: `h${h.index}p` })));
          }
        }
        await weft[0]!.launch();
        await weft[1]!.launch([`[${hip6(1)}]:6783`]);
        for (let i = 1; i <= 2; i++) {
          const ct = await net.hosts.addContainer(i, password === undefined ? 'c1' : 'c2');
          await weft[i - 1]!.run(['attach', '--netns', ct.ns, `${cip(i)}/24`]);
          c.push(ct);
        }
        for (const w of weft) await establishedWith(w, 1);
      });

      it('connects over IPv6 (the connection is established, not pending) and says so in status', async () => {
        const r = await weft[1]!.report();
        const conn = r.router.connections.find((x) => x.state === 'established')!;
        expect(conn.address).toBe(`[${hip6(1)}]:6783`);
        expect(r.router.encryption).toBe(password !== undefined);
      });

      it('containers ping each other both ways, and the sleeve datagrams on the wire are IPv6 UDP', async () => {
        const dump = net.hosts.host(1).spawn('tcpdump', ['-n', '-l', '-c', '4', '-i', 'eth0', 'ip6 and udp port 6783']);
        let out = '';
        let err = '';
        dump.stdout?.on('data', (d) => (out += String(d)));
        dump.stderr?.on('data', (d) => (err += String(d)));
        const exited = new Promise<void>((r) => dump.once('exit', () => r()));
        try {
          await waitFor('tcpdump to listen', () => err.includes('listening on'), 15_000, 100);
          expect(await waitFor('c1 -> c2', () => canPing(c[0]!, cip(2)), 15_000)).toBe(true);
          expect(await waitFor('c2 -> c1', () => canPing(c[1]!, cip(1)), 15_000)).toBe(true);
          await waitFor('4 IPv6 sleeve datagrams captured', () => out.trim().split('\n').length >= 4, 10_000, 100);
        } finally {
          dump.kill('SIGINT');
          await exited;
        }
        expect(out).toContain(`${hip6(2)}.6783 > ${hip6(1)}.6783: UDP`);
      });

      it('carries an 8 MiB TCP transfer intact (sha256 checked) across the IPv6 underlay', async () => {
        await expectTcpTransfer(c[0]!, c[1]!, cip(2), 8, 5201);
        const counters = (await weft[0]!.report()).datapath.counters;
        expect(counters['udp_dropsBadAddress'] ?? 0).toBe(0);
      });
    });
  }
});
