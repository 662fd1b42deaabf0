/**
 * A 12-router star bootstrap, password set: h1 first, then h2..h12 at once, each given only h1's address. The full
 * mesh forms by gossip (every router ends with 11 established connections) and a container on h12 pings one on h1.
 * A correctness check of the scale benchmark's setup (scripts/bench-scale.sh), with generous bounds and no timing
 * assertions.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor } from '../harness/weft.js';
import { weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const N = 12;
const cip = (i: number) => `10.99.1.${i}`;

describe.skipIf(skip)(`star bootstrap of ${N} routers`, () => {
  const net = weftNetwork(N, { env: { WEFT_PASSWORD: 'scale-12-hosts test password' } });
  const c: TestContainer[] = [];

  beforeAll(async () => {
    const h1 = net.hosts.host(1).ip;
    await net.weft[0]!.launch(['--ipalloc-range', '10.98.0.0/16']);
    await Promise.all(net.weft.slice(1).map((w) => w.launch(['--ipalloc-range', '10.98.0.0/16', h1])));
    for (const i of [1, N]) {
      const ct = await net.hosts.addContainer(i, 'c1');
      c.push(ct);
      await net.weft[i - 1]!.run(['attach', '--netns', ct.ns, `${cip(i)}/24`]);
    }
  }, 600_000);

  it('forms the full mesh, and a container on the last host pings one on h1', async () => {
    for (const w of net.weft) {
      await waitFor(
        `h${w.host.index} to have ${N - 1} established connections`,
        async () => {
          const r = await w.report();
          return r.router.connections.filter((x) => x.state === 'established').length === N - 1;
        },
        300_000,
        1_000,
      );
    }
    for (const w of net.weft) expect((await w.report()).router.peers).toHaveLength(N);
    expect(await waitFor(`c on h${N} -> c on h1`, () => canPing(c[1]!, cip(1)), 60_000)).toBe(true);
  }, 600_000);
});
