/**
 * Restarts with Docker containers running: the weft daemon (addresses and connectivity kept, a container removed
 * meanwhile gives its address back, new runs work), and dockerd (`--restart` containers and a container attached by
 * name come back on weft).
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

describe.skipIf(skip)('Docker on 2 hosts: restarting weft and dockerd with containers running', () => {
  const { net, engines, launchArgs } = dockerWeftNetwork(2, 'restarts');
  let peerIp = '';

  it('starts a weft container on h2 and attaches a --network none container on h1 by name', async () => {
    const [e1, e2] = engines as [DockerEngine, DockerEngine];
    await waitFor(
      'network weft on h2',
      async () => (await e2.docker(['network', 'ls', '--format', '{{.Name}}'])).split('\n').includes('weft'),
      30_000,
    );
    await e2.docker(['run', '-d', '--name', 'peer', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    peerIp = await dockerAddressOf(e2, 'peer');
    await e1.docker(['run', '-d', '--name', 'lone', '--network', 'none', BUSYBOX_IMAGE, 'sleep', '600']);
    expect((await net.weft[0]!.run(['attach', 'lone'])).trim()).toMatch(/^10\.32\.\d+\.\d+\/16$/);
    await waitFor('lone to ping peer', () => dockerPing(e1, 'lone', peerIp, 1), 30_000, 500);
  });

  it('restarting the weft daemon keeps addresses and connectivity, and a new docker run works', async () => {
    const [e1] = engines as [DockerEngine];
    await e1.docker(['run', '-d', '--name', 'steady', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    const steadyIp = await dockerAddressOf(e1, 'steady');
    const loneBefore = await cidrInside(e1, 'lone');
    await e1.docker(['run', '-d', '--name', 'orphan', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    const orphanIp = await dockerAddressOf(e1, 'orphan');
    await net.weft[0]!.run(['stop']);
    // Removed while weft is down: dockerd's ReleaseAddress cannot reach the plugin.
    await e1.docker(['rm', '-f', 'orphan']);
    await net.weft[0]!.launch(launchArgs(0));
    await waitFor(
      'h1 connected again',
      async () => (await net.weft[0]!.report()).router.connections.some((c) => c.state === 'established'),
      30_000,
    );
    // The orphan's address came back when weft started again (before any new run could take it): the other host
    // may have it now.
    await engines[1]!.docker(['run', '-d', '--name', 'orphan-heir', '--network', 'weft', '--ip', orphanIp, BUSYBOX_IMAGE, 'sleep', '600']);
    await engines[1]!.docker(['rm', '-f', 'orphan-heir']);
    await waitFor('steady to ping peer after the weft restart', () => dockerPing(e1, 'steady', peerIp, 1), 30_000, 500);
    expect(await cidrInside(e1, 'steady')).toBe(`${steadyIp}/16`);
    expect(await cidrInside(e1, 'lone')).toBe(loneBefore);
    expect(await dockerPing(e1, 'lone', peerIp)).toBe(true);
    // The restarted plugin found the endpoint again.
    expect((await net.weft[0]!.report()).docker!.endpoints.length).toBeGreaterThanOrEqual(1);
    await e1.docker(['run', '-d', '--name', 'fresh', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    const freshIp = await dockerAddressOf(e1, 'fresh');
    expect(freshIp).not.toBe(steadyIp);
    await waitFor('fresh to ping peer', () => dockerPing(e1, 'fresh', peerIp, 1), 30_000, 500);
    // An endpoint made before the restart is deleted cleanly after it: its veth goes, its address comes back.
    const dockerVeths = async () =>
      (await net.hosts.host(1).exec('ip', ['-o', 'link', 'show', 'type', 'veth'])).split('\n').filter((l) => l.includes('vethwd')).length;
    const vethsBefore = await dockerVeths();
    await e1.docker(['rm', '-f', 'steady']);
    expect(await dockerVeths()).toBe(vethsBefore - 1);
    await e1.docker(['run', '-d', '--name', 'steady2', '--network', 'weft', '--ip', steadyIp, BUSYBOX_IMAGE, 'sleep', '600']);
    expect(await dockerAddressOf(e1, 'steady2')).toBe(steadyIp);
  });

  it('restarting dockerd brings --restart containers back on weft, and the attached container too', async () => {
    const [e1] = engines as [DockerEngine];
    await e1.docker(['run', '-d', '--restart', 'always', '--name', 'keeper', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    await e1.docker(['update', '--restart', 'always', 'lone']);
    const loneBefore = await cidrInside(e1, 'lone');
    await e1.restart();
    await waitFor(
      'keeper running again',
      async () => (await e1.docker(['inspect', '-f', '{{.State.Running}}', 'keeper'])) === 'true',
      60_000,
      500,
    );
    const ip = await dockerAddressOf(e1, 'keeper');
    expect(ip).toMatch(/^10\.32\.\d+\.\d+$/);
    await waitFor('keeper to ping peer after the dockerd restart', () => dockerPing(e1, 'keeper', peerIp, 1), 30_000, 500);
    await waitFor('lone re-attached after the dockerd restart', async () => (await cidrInside(e1, 'lone')) === loneBefore, 30_000, 500);
  });
});
