/**
 * Three real daemons on three test hosts. h2 and h3 are given only h1's address; discovery completes the mesh.
 * Then h3 is killed (noticed by the others within 10 s) and restarted (it rejoins).
 */
import { describe, expect, it } from 'vitest';
import { netnsSkipReason } from '../harness/hosts.js';
import { builtSkipReason, waitFor } from '../harness/weft.js';
import { weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();

describe.skipIf(skip)('mesh of 3 hosts', () => {
  const net = weftNetwork(3);

  it('forms a full mesh by discovery from one address', async () => {
    const { hosts, weft } = net;
    const h1ip = hosts.host(1).ip;
    await weft[0]!.launch();
    await weft[1]!.launch([h1ip]);
    await weft[2]!.launch([h1ip]);

    for (const w of weft) {
      await waitFor(`h${w.host.index} to see 2 established connections`, async () => {
        const r = await w.report();
        return r.router.connections.filter((c) => c.state === 'established').length === 2;
      });
    }
    for (const w of weft) {
      const peers = await w.run(['status', 'peers']);
      for (const n of ['h1', 'h2', 'h3']) expect(peers).toContain(`(${n})`);
      const conns = await w.run(['status', 'connections']);
      expect(conns.split('\n').filter((l) => l.includes('established'))).toHaveLength(2);
    }
  });

  it('notices a killed router within 10 s, and takes it back when it restarts', async () => {
    net.weft[2]!.kill();
    for (const w of net.weft.slice(0, 2)) {
      await waitFor(
        `h${w.host.index} to drop h3`,
        async () => {
          const r = await w.report();
          return !r.router.connections.some((c) => c.nickname === 'h3' && c.state === 'established');
        },
        10_000,
      );
    }
    await net.weft[2]!.launch([net.hosts.host(1).ip]);
    for (const w of net.weft) {
      await waitFor(`h${w.host.index} to see 2 established connections again`, async () => {
        const r = await w.report();
        return r.router.connections.filter((c) => c.state === 'established').length === 2;
      });
    }
    const r3 = await net.weft[2]!.report();
    expect(r3.router.peers.map((p) => p.nickname).sort()).toEqual(['h1', 'h2', 'h3']);
  });
});
