/**
 * Path MTU per neighbour on three real hosts. h3's port on the underlay bridge is narrowed to 1280 while every host's
 * own interface stays at 1500: datagrams above 1280 to or from h3 vanish without a word (a bridge sends no ICMP), the
 * PMTU black hole a smaller-MTU link further on makes. h1-h2 keeps 1500.
 *
 * Each router probes each path (./router/path-mtu.ts): h1 and h2 find 1280 towards h3 and 1500 between themselves,
 * and `weft status` shows it. TCP from c1 to c3 then works at once (super-frames are cut into pieces that fit the
 * narrow path; other over-size frames are answered with ICMP "fragmentation needed"), and c1-c2 keeps full-size
 * datagrams. Before path MTU probing this transfer stalled: every full datagram to h3 was lost.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor, type WeftHost } from '../harness/weft.js';
import { expectTcpTransfer, startNetwork, weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();

/** Container i's overlay address (inside our namespaces only). */
const cip = (i: number): string => `10.62.1.${i}`;
const NARROW_MTU = 1280;

/** The path MTU each neighbour of `from` has, by the neighbour's nickname ("h2"), and whether a probe confirmed it. */
async function pathMtus(from: WeftHost): Promise<Map<string, { mtu?: number; isConfirmed?: boolean }>> {
  const r = await from.report();
  const out = new Map<string, { mtu?: number; isConfirmed?: boolean }>();
  for (const p of r.datapath.peers ?? []) {
    const nickname = r.router.peers.find((x) => x.name === p.name)?.nickname ?? p.name;
    out.set(nickname, { mtu: p.pathMtuBytes, isConfirmed: p.isPathMtuConfirmed });
  }
  return out;
}

describe.skipIf(skip)('path MTU per neighbour, 3 hosts, h3 behind a 1280 link', () => {
  const net = weftNetwork(3);
  const c: TestContainer[] = [];

  beforeAll(async () => {
    // Narrow h3's port on the underlay bridge before any router starts (the hosts' own eth0 stay at 1500).
    execFileSync('ip', ['-n', net.hosts.underlayNs, 'link', 'set', 'h3', 'mtu', String(NARROW_MTU)]);
    c.push(...(await startNetwork(net, cip)));
  });

  it('h1 and h2 find 1280 towards h3 and keep 1500 between themselves; weft status shows each path', async () => {
    const [w1, w2, w3] = net.weft as [WeftHost, WeftHost, WeftHost];
    const want: Array<[WeftHost, Record<string, number>]> = [
      [w1, { h2: 1500, h3: NARROW_MTU }],
      [w2, { h1: 1500, h3: NARROW_MTU }],
      [w3, { h1: NARROW_MTU, h2: NARROW_MTU }],
    ];
    for (const [from, paths] of want) {
      await waitFor(
        `h${from.host.index}'s path MTUs ${JSON.stringify(paths)}`,
        async () => {
          const got = await pathMtus(from);
          return Object.entries(paths).every(([nick, mtu]) => got.get(nick)?.isConfirmed === true && got.get(nick)?.mtu === mtu);
        },
        20_000,
      );
    }
    const status = await w1.run(['status']);
    expect(status).toMatch(/PathMTU: \S+\(h2\) 1500\n/);
    expect(status).toMatch(/PathMTU: \S+\(h3\) 1280\n/);
    expect((await w1.report()).datapath.counters['mtu_probe_acks_in']).toBeGreaterThan(0);
  });

  it('carries an 8 MiB TCP transfer from c1 to c3 across the narrow path at once, and back', async () => {
    await expectTcpTransfer(c[0]!, c[2]!, cip(3), 8, 5301);
    await expectTcpTransfer(c[2]!, c[0]!, cip(1), 4, 5302);
  });

  it("answers a full-size Don't Fragment packet towards h3 with ICMP fragmentation needed naming the narrow MTU", async () => {
    const out = await c[0]!.exec('ping', ['-M', 'do', '-s', '1300', '-c', '2', '-i', '0.3', '-W', '1', cip(3)]).catch((e: unknown) => {
      const err = e as { stdout?: string; stderr?: string; message?: string };
      return `${err.stdout ?? ''}${err.stderr ?? ''}${err.message ?? ''}`;
    });
    const told = /mtu\s*=\s*(\d+)/i.exec(out);
    expect(told, out).not.toBeNull();
    expect(Number(told![1])).toBeLessThan(NARROW_MTU - 28);
    expect(Number(told![1])).toBeGreaterThan(1100);
    expect((await net.weft[0]!.report()).datapath.counters['icmp_frag_needed']).toBeGreaterThan(0);
    // The other path is not narrowed: the same size goes to c2 whole.
    expect(await canPing(c[1]!, cip(1))).toBe(true);
    await c[0]!.exec('ping', ['-M', 'do', '-s', '1300', '-c', '1', '-W', '2', cip(2)]);
  });

  it('keeps full-size datagrams on the wide path: a c1 -> c2 transfer works too', async () => {
    await expectTcpTransfer(c[0]!, c[1]!, cip(2), 4, 5303);
    expect((await pathMtus(net.weft[0]!)).get('h2')?.mtu).toBe(1500);
  });
});
