/**
 * The sleeve data path on three real hosts: containers on a bridge per host, frames in UDP between hosts.
 * Steps run in order and share the hosts; each step states the behaviour it checks.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, repoRoot, waitFor } from '../harness/weft.js';
import { expectTcpTransfer, startNetwork, weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const fixtures = join(repoRoot, 'test/netns/fixtures');

/** Container i's overlay address (inside our namespaces only). */
const cip = (i: number) => `10.99.1.${i}`;
const MAC1 = '02:47:00:00:00:01';

function dropTotal(counters: Record<string, number>): number {
  return Object.entries(counters)
    .filter(([k]) => k.startsWith('drop'))
    .reduce((s, [, v]) => s + v, 0);
}

describe.skipIf(skip)('sleeve data path on 3 hosts', () => {
  const net = weftNetwork(3);
  const c: TestContainer[] = [];

  beforeAll(async () => {
    c.push(...(await startNetwork(net, cip, { attachArgs: (i) => (i === 1 ? ['--mac', MAC1] : []) })));
  });

  it('every container pings every other (ARP resolves across hosts)', async () => {
    for (let i = 1; i <= 3; i++) {
      for (let j = 1; j <= 3; j++) {
        if (i === j) continue;
        expect(await waitFor(`c${i} -> c${j}`, () => canPing(c[i - 1]!, cip(j)), 15_000)).toBe(true);
      }
    }
    const neigh = await c[0]!.exec('ip', ['neigh', 'show', cip(3)]);
    expect(neigh).toMatch(/lladdr [0-9a-f:]{17}/);
  });

  it('delivers a broadcast exactly once to each other container', async () => {
    // tcpdump in c2 and c3; the pings start only once both say they are listening (no fixed sleep to race).
    const dumps = [2, 3].map((i) => {
      const child = c[i - 1]!.spawn('tcpdump', ['-n', '-l', '-i', 'ethwe0', 'icmp and dst host 10.99.1.255']);
      let out = '';
      let err = '';
      child.stdout?.on('data', (d) => (out += String(d)));
      child.stderr?.on('data', (d) => (err += String(d)));
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      return { child, exited, out: () => out, isListening: () => err.includes('listening on') };
    });
    try {
      await waitFor('tcpdump to listen', () => dumps.every((d) => d.isListening()), 15_000, 100);
      await c[0]!.exec('ping', ['-b', '-c', '3', '-i', '0.3', '-W', '1', '10.99.1.255']).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1000));
    } finally {
      for (const d of dumps) d.child.kill('SIGINT');
      await Promise.all(dumps.map((d) => d.exited));
    }
    for (const d of dumps)
      expect(
        d
          .out()
          .split('\n')
          .filter((l) => l.includes('ICMP echo request')),
      ).toHaveLength(3);
  });

  it('carries 100 MB of TCP intact across the overlay', async () => {
    await expectTcpTransfer(c[0]!, c[1]!, cip(2), 100, 5201);
  });

  it('drops and counts garbage at the UDP port, and keeps forwarding', async () => {
    const before = dropTotal((await net.weft[0]!.report()).datapath.counters);
    const h2name = (await net.weft[1]!.report()).router.name.replace(/:/g, '');
    await net.hosts
      .host(2)
      .exec(process.execPath, [join(fixtures, 'udp-garbage.mjs'), net.hosts.host(1).ip, '6783', '100000', h2name], { timeoutMs: 90_000 });
    const after = await net.weft[0]!.report();
    expect(dropTotal(after.datapath.counters) - before).toBeGreaterThan(50_000);
    expect(await canPing(c[0]!, cip(2), 2)).toBe(true);
    expect(await canPing(c[0]!, cip(3), 2)).toBe(true);
  });

  it('routes h1 <-> h3 through h2 when their link is cut, and directly again when restored', async () => {
    await net.hosts.cut(1, 3);
    await waitFor(
      'h1 to lose its direct connection to h3',
      async () => {
        const r = await net.weft[0]!.report();
        return !r.router.connections.some((x) => x.nickname === 'h3' && x.state === 'established');
      },
      20_000,
    );
    expect(await waitFor('c1 -> c3 via h2', () => canPing(c[0]!, cip(3)), 20_000)).toBe(true);
    const peers = await net.weft[1]!.run(['status', 'peers']);
    expect(peers).toContain('(h3)');

    const forwarded = async () => (await net.weft[1]!.report()).datapath.counters['frames_forwarded'] ?? 0;
    expect(await forwarded()).toBeGreaterThan(0);
    await net.hosts.restore(1, 3);
    await waitFor(
      'h1 and h3 to connect directly',
      async () => {
        const r = await net.weft[0]!.report();
        return r.router.connections.some((x) => x.nickname === 'h3' && x.state === 'established');
      },
      60_000,
    );
    // Both ends must gossip the new link before routes use it; then pings stop passing through h2.
    await waitFor(
      'c1 -> c3 to bypass h2',
      async () => {
        const before = await forwarded();
        const ok = await canPing(c[0]!, cip(3), 5);
        return ok && (await forwarded()) === before;
      },
      30_000,
      500,
    );
  });

  it('reaches a container moved from h1 to h2 (same MAC and IP) within a few seconds', async () => {
    await net.weft[0]!.run(['detach', '--netns', c[0]!.ns]);
    const moved = await net.hosts.addContainer(2, 'c9');
    await net.weft[1]!.run(['attach', '--netns', moved.ns, '--mac', MAC1, `${cip(1)}/24`]);
    expect(await waitFor('c3 -> moved container', () => canPing(c[2]!, cip(1)), 15_000)).toBe(true);
  });

  it('restores connectivity to a restarted router without re-attaching its containers', async () => {
    net.weft[2]!.kill();
    await new Promise((r) => setTimeout(r, 1000));
    await net.weft[2]!.launch([net.hosts.host(1).ip]);
    expect(await waitFor('c2 -> c3 after restart', () => canPing(c[1]!, cip(3)), 30_000)).toBe(true);
  });
});
