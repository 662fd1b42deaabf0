/**
 * Docker containers attached by name and by id prefix (`weft attach CONTAINER`), followed through `docker restart`
 * and removal. (Daemon restarts: docker-restarts-2-hosts.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { netnsSkipReason } from '../harness/hosts.js';
import { builtSkipReason, waitFor } from '../harness/weft.js';
import { BUSYBOX_IMAGE, dockerAddressOf, dockerPing, dockerSkipReason, dockerWeftNetwork, type DockerEngine } from '../harness/docker.js';

const skip = netnsSkipReason() ?? builtSkipReason() ?? dockerSkipReason();

/** The IPv4 CIDR of `ifname` inside the container, or '' when it has none. */
async function cidrInside(engine: DockerEngine, container: string, ifname = 'ethwe0'): Promise<string> {
  const out = await engine.docker(['exec', container, 'ip', '-4', '-o', 'addr', 'show', ifname]).catch(() => '');
  return /inet (\S+)/.exec(out)?.[1] ?? '';
}

describe.skipIf(skip)('Docker on 2 hosts: weft attach CONTAINER by name and id prefix, followed through docker restart and rm', () => {
  const { net, engines } = dockerWeftNetwork(2, 'attach by name');
  let peerIp = '';

  it('attaches a --network none container by name and by id prefix; they ping a weft container on the other host', async () => {
    const [e1, e2] = engines as [DockerEngine, DockerEngine];
    await waitFor(
      'network weft on h2',
      async () => (await e2.docker(['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes('weft'),
      30_000,
    );
    await e2.docker(['run', '-d', '--name', 'peer', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    peerIp = await dockerAddressOf(e2, 'peer');

    await e1.docker(['run', '-d', '--name', 'lone', '--network', 'none', BUSYBOX_IMAGE, 'sleep', '600']);
    const byName = (await net.weft[0]!.run(['attach', 'lone'])).trim();
    expect(byName).toMatch(/^10\.32\.\d+\.\d+\/16$/);
    expect(await cidrInside(e1, 'lone')).toBe(byName);

    const id = await e1.docker(['run', '-d', '--name', 'lone2', '--network', 'none', BUSYBOX_IMAGE, 'sleep', '600']);
    const byId = (await net.weft[0]!.run(['attach', 'ip:10.32.200.7', id.slice(0, 10)])).trim();
    expect(byId).toBe('10.32.200.7/16');

    const ps = await net.weft[0]!.run(['ps']);
    expect(ps).toContain(`${id.slice(0, 12)} lone2 ethwe0`);
    expect(ps).toMatch(/ lone ethwe0 .* 10\.32\./);

    await waitFor('lone to ping peer on h2', () => dockerPing(e1, 'lone', peerIp, 1), 30_000, 500);
    expect(await dockerPing(e1, 'lone2', peerIp)).toBe(true);
    expect(await dockerPing(e2, 'peer', byName.split('/')[0]!)).toBe(true);

    const refused = net.weft[0]!.run(['attach', 'no-such-container']);
    await expect(refused).rejects.toThrow(/no such container on this host/);
  });

  it('docker restart brings the container back on weft with the same address; docker rm -f gives it back', async () => {
    const [e1, e2] = engines as [DockerEngine, DockerEngine];
    const before = await cidrInside(e1, 'lone');
    await e1.docker(['restart', '-t', '1', 'lone']);
    await waitFor('lone re-attached after docker restart', async () => (await cidrInside(e1, 'lone')) === before, 30_000, 500);
    await waitFor('lone to ping peer again', () => dockerPing(e1, 'lone', peerIp, 1), 30_000, 500);

    await e1.docker(['rm', '-f', 'lone2']);
    await waitFor('lone2 gone from weft ps', async () => !(await net.weft[0]!.run(['ps'])).includes('lone2'), 20_000);
    // Its address is free again everywhere: the other host may have it now.
    await e2.docker(['run', '-d', '--name', 'heir', '--network', 'weft', '--ip', '10.32.200.7', BUSYBOX_IMAGE, 'sleep', '600']);
    await e2.docker(['rm', '-f', 'heir']);
  });
});
