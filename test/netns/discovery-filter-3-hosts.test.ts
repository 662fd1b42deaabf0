/**
 * Gossip cannot point a router at itself (issue 10, item 9): in a network without a password (where anyone may
 * gossip), a stranger on h2 joins h1 and gossips an entry whose connections name h1's API (127.0.0.1:6784), h1's own
 * address, loopback, unspecified, link-local and multicast addresses, and h3's real router. h1 dials h3, and never
 * any of the others: none becomes a target, and each refusal is counted.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { netnsSkipReason } from '../harness/hosts.js';
import { builtSkipReason, repoRoot, waitFor } from '../harness/weft.js';
import { weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const attacker = join(repoRoot, 'test/netns/fixtures/control-attacker.mjs');

describe.skipIf(skip)('discovery filter on 3 hosts', () => {
  const net = weftNetwork(3, { routersOn: [1, 3] });

  beforeAll(async () => {
    for (const w of net.weft) await w.launch();
  });

  it('dials the router gossip names, never loopback, its own addresses or special ones', async () => {
    const [h1, h3] = net.weft as [(typeof net.weft)[0], (typeof net.weft)[0]];
    const ip1 = net.hosts.host(1).ip;
    const forbidden = [
      `127.0.0.1:6784`,
      `${ip1}:6783`,
      `${ip1}:6784`,
      '0.0.0.0:6783',
      '169.254.7.7:6783',
      '224.0.0.5:6783',
      '[::1]:6783',
      'localhost:6784',
    ];
    const named = [...forbidden, `${net.hosts.host(3).ip}:6783`];
    const rogue = net.hosts.host(2).spawn(process.execPath, [attacker, 'gossip', `${ip1}:6783`, '15', named.join(',')]);
    let out = '';
    rogue.stdout?.on('data', (d) => (out += String(d)));
    const done = new Promise<void>((r) => rogue.on('exit', () => r()));
    const seenTargets = new Set<string>();
    try {
      await waitFor(
        'h1 to dial h3, named by the gossip',
        async () => {
          const r = await h1.report();
          for (const t of r.router.targets) seenTargets.add(t.address);
          return r.router.connections.some((c) => c.nickname === 'h3' && c.state === 'established');
        },
        30_000,
        200,
      );
      // Keep watching a while: a refused address must not turn up on a later pass either.
      for (let i = 0; i < 10; i++) {
        for (const t of (await h1.report()).router.targets) seenTargets.add(t.address);
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      if (rogue.exitCode === null && rogue.pid) process.kill(rogue.pid, 'SIGTERM');
      await done;
    }
    console.log(`rogue: ${out.trim()}\nh1 targets seen: ${[...seenTargets].join(' ')}`);
    for (const f of forbidden) expect(seenTargets.has(f), `h1 made ${f} a target`).toBe(false);
    const k = (await h1.report()).router.counters as Record<string, number>;
    console.log(`h1 counters: ${JSON.stringify(k)}`);
    expect(k).toMatchObject({
      discovery_refused_loopback: 3,
      discovery_refused_own_address: 2,
      discovery_refused_unspecified: 1,
      discovery_refused_link_local: 1,
      discovery_refused_multicast: 1,
    });
    expect((await h3.report()).router.connections.some((c) => c.state === 'established')).toBe(true);
  });
});
