/**
 * weftDNS for Docker containers on 2 hosts (one dockerd per test host): a container started with
 * `docker run --network weft --name web` on h1 is resolved by name from a container on h2 started with
 * `$(weft dns-args)`, through Docker's embedded DNS forwarding to weftDNS; `docker rm` takes the name away everywhere.
 */
import { describe, expect, it } from 'vitest';
import { netnsSkipReason } from '../harness/hosts.js';
import { builtSkipReason, waitFor } from '../harness/weft.js';
import { BUSYBOX_IMAGE, dockerAddressOf, dockerSkipReason, dockerWeftNetwork, type DockerEngine } from '../harness/docker.js';

const skip = netnsSkipReason() ?? builtSkipReason() ?? dockerSkipReason();

describe.skipIf(skip)('Docker on 2 hosts: container names resolve across hosts through weftDNS', () => {
  const { net, engines } = dockerWeftNetwork(2, 'docker dns');

  it('`docker run --network weft $(weft dns-args)` on h2 resolves and pings `web` started on h1; docker rm removes the name', async () => {
    const [e1, e2] = engines as [DockerEngine, DockerEngine];
    const [w1, w2] = net.weft;
    await waitFor(
      'network weft on both engines',
      async () => {
        for (const e of [e1, e2])
          if (!(await e.docker(['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes('weft')) return false;
        return true;
      },
      30_000,
    );
    await e1.docker(['run', '-d', '--name', 'web', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    const webIp = await dockerAddressOf(e1, 'web');
    expect(webIp).toMatch(/^10\.32\./);

    // Registered by the router that runs it, seen by the other through gossip.
    await waitFor('web in h2 weftDNS', async () => (await w2!.run(['dns-lookup', 'web']).catch(() => '')).trim() === webIp, 20_000);

    const dnsArgs = (await w2!.run(['dns-args'])).trim().split(/\s+/);
    expect(dnsArgs).toContain('--dns-search');
    const lookup = await waitFor(
      'nslookup web from a container on h2',
      async () => e2.docker(['run', '--rm', '--network', 'weft', ...dnsArgs, BUSYBOX_IMAGE, 'nslookup', 'web'], 30_000).catch(() => ''),
      40_000,
      1_000,
    );
    expect(lookup).toContain(webIp);
    await e2.docker(['run', '--rm', '--network', 'weft', ...dnsArgs, BUSYBOX_IMAGE, 'ping', '-c', '1', '-W', '5', 'web'], 30_000);

    await e1.docker(['rm', '-f', 'web']);
    await waitFor(
      'web gone from h1 and h2 weftDNS',
      async () => {
        const answers = await Promise.all(
          [w1!, w2!].map((w) =>
            w.run(['dns-lookup', 'web']).then(
              (out) => out.trim(),
              () => '',
            ),
          ),
        );
        return answers.every((a) => a === '');
      },
      20_000,
    );
  });
});
