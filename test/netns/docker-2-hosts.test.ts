/**
 * Docker on 2 test hosts: each host runs its own dockerd (harness/docker.ts) and its own weft with a password; weft
 * serves the network and IPAM driver plugin to its engine and makes the `weft` network there.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { request } from 'node:http';
import { netnsSkipReason } from '../harness/hosts.js';
import { builtSkipReason, waitFor } from '../harness/weft.js';
import {
  BUSYBOX_IMAGE,
  DOCKER_TEST_SUBNET as DEFAULT_SUBNET,
  dockerAddressOf as addressOf,
  dockerPing as pingFrom,
  dockerSkipReason,
  dockerWeftNetwork,
  type DockerEngine,
} from '../harness/docker.js';
import { startCapture } from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason() ?? dockerSkipReason();
const PASSWORD = 'docker on weft, sealed';

/** POST a raw body to a unix socket, as dockerd would. */
function postToSocket(socketPath: string, path: string, body: string): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += String(d)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe.skipIf(skip)('Docker on 2 hosts: docker run --network weft across an encrypted mesh', () => {
  const { net, engines } = dockerWeftNetwork(2, PASSWORD);

  it('makes the network weft on both engines, served by weft', async () => {
    for (const e of engines) {
      await waitFor(
        `network weft on h${e.host.index}`,
        async () => (await e.docker(['network', 'ls', '--format', '{{.Name}} {{.Driver}}'])).split('\n').includes('weft weft'),
        30_000,
      );
      expect(await e.docker(['network', 'inspect', '-f', '{{.IPAM.Driver}} {{(index .IPAM.Config 0).Subnet}}', 'weft'])).toBe(
        `weft ${DEFAULT_SUBNET}`,
      );
    }
    const status = await net.weft[0]!.run(['status']);
    expect(status).toMatch(/Service: docker/);
    expect(status).toMatch(/Engine: unix:\/\/.* \(reachable, 20\./);
  });

  it('gives containers on each host an address from weft, and they ping each other with nothing readable on the underlay', async () => {
    const [e1, e2] = engines as [DockerEngine, DockerEngine];
    await e1.docker(['run', '-d', '--name', 'a1', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    await e2.docker(['run', '-d', '--name', 'b1', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    const ip1 = await addressOf(e1, 'a1');
    const ip2 = await addressOf(e2, 'b1');
    expect(ip1).toMatch(/^10\.32\.\d+\.\d+$/);
    expect(ip2).toMatch(/^10\.32\.\d+\.\d+$/);
    expect(ip1).not.toBe(ip2);
    // The interface inside is weft's: ethwe0 with that address.
    expect(await e1.docker(['exec', 'a1', 'ip', '-4', 'addr', 'show', 'ethwe0'])).toContain(`${ip1}/16`);

    const file = join(net.runDir, 'underlay.pcap');
    const capture = await startCapture(net.hosts.host(1).ns, net.hosts.host(1).ifname, file, ['udp', 'port', '6783']);
    let pcap: Buffer;
    try {
      await waitFor('a1 to ping b1 across hosts', () => pingFrom(e1, 'a1', ip2, 1), 30_000, 500);
      expect(await pingFrom(e1, 'a1', ip2, 3)).toBe(true);
      expect(await pingFrom(e2, 'b1', ip1, 3)).toBe(true);
    } finally {
      pcap = await capture.stop();
    }
    expect(pcap.length).toBeGreaterThan(500);
    // Sealed frames show neither the containers' addresses (in their inner IP headers and ARP) nor anything else.
    const innerAddresses = [ip1, ip2].map((ip) => Buffer.from(ip.split('.').map(Number)));
    for (const a of innerAddresses) expect(pcap.includes(a)).toBe(false);
  });

  it('a second network with its own subnet connects its containers across hosts, and not to the first network', async () => {
    const [e1, e2] = engines as [DockerEngine, DockerEngine];
    for (const e of engines)
      await e.docker(['network', 'create', '-d', 'weft', '--ipam-driver', 'weft', '--subnet', '10.40.1.0/24', 'blue']);
    await e1.docker(['run', '-d', '--name', 'a2', '--network', 'blue', BUSYBOX_IMAGE, 'sleep', '600']);
    await e2.docker(['run', '-d', '--name', 'b2', '--network', 'blue', BUSYBOX_IMAGE, 'sleep', '600']);
    const ipA2 = await addressOf(e1, 'a2', 'blue');
    const ipB2 = await addressOf(e2, 'b2', 'blue');
    expect(ipA2).toMatch(/^10\.40\.1\.\d+$/);
    await waitFor('a2 to ping b2', () => pingFrom(e1, 'a2', ipB2, 1), 30_000, 500);
    const ipB1 = await addressOf(e2, 'b1');
    expect(await pingFrom(e1, 'a2', ipB1, 2)).toBe(false);
    expect(await pingFrom(e2, 'b1', ipA2, 2)).toBe(false);
  });

  it('docker rm -f gives the address back to weft (another host can claim it), and removing a network frees its pool', async () => {
    const [e1, e2] = engines as [DockerEngine, DockerEngine];
    await e1.docker(['run', '-d', '--name', 'gone', '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600']);
    const ip = await addressOf(e1, 'gone');
    // While it runs, host 2 cannot have that address: IPAM is shared.
    await expect(
      e2.docker(['run', '-d', '--name', 'thief', '--network', 'weft', '--ip', ip, BUSYBOX_IMAGE, 'sleep', '600']),
    ).rejects.toThrow(/held by|in use|conflict/i);
    await e2.docker(['rm', '-f', 'thief']).catch(() => undefined);
    await e1.docker(['rm', '-f', 'gone']);
    const report = await net.weft[0]!.report();
    expect(report.docker!.endpoints.some((x) => x.addresses.some((a) => a.startsWith(`${ip}/`)))).toBe(false);
    await e2.docker(['run', '-d', '--name', 'heir', '--network', 'weft', '--ip', ip, BUSYBOX_IMAGE, 'sleep', '600']);
    expect(await addressOf(e2, 'heir')).toBe(ip);
    await e2.docker(['rm', '-f', 'heir']);

    // A network made without --subnet gets a free one; removing it gives the pool back.
    await e1.docker(['network', 'create', '-d', 'weft', '--ipam-driver', 'weft', 'green']);
    const subnet = await e1.docker(['network', 'inspect', '-f', '{{(index .IPAM.Config 0).Subnet}}', 'green']);
    expect(subnet).toMatch(/^10\.\d+\.\d+\.0\/24$/);
    expect((await net.weft[0]!.report()).docker!.pools.map((p) => p.subnet)).toContain(subnet);
    await e1.docker(['network', 'rm', 'green']);
    expect((await net.weft[0]!.report()).docker!.pools.map((p) => p.subnet)).not.toContain(subnet);
  });

  it('answers bad input on the plugin socket with {Err}, and concurrent docker runs get distinct addresses, no leaks', async () => {
    const e1 = engines[0]!;
    const bad = await postToSocket(e1.pluginSocket, '/NetworkDriver.Join', '{"NetworkID":');
    expect(bad.status).toBe(400);
    expect(String(bad.body['Err'])).toMatch(/not JSON/);
    const missing = await postToSocket(
      e1.pluginSocket,
      '/NetworkDriver.Join',
      JSON.stringify({ NetworkID: 'f'.repeat(64), EndpointID: 'e'.repeat(64), SandboxKey: '/x' }),
    );
    expect(missing.status).toBe(404);
    expect(String(missing.body['Err'])).toMatch(/not known to weft/);

    const before = await net.hosts.host(1).exec('ip', ['-o', 'link', 'show', 'type', 'veth']);
    const names = Array.from({ length: 4 }, (_, i) => `par${i}`);
    await Promise.all(names.map((n) => e1.docker(['run', '-d', '--name', n, '--network', 'weft', BUSYBOX_IMAGE, 'sleep', '600'], 120_000)));
    const ips = await Promise.all(names.map((n) => addressOf(e1, n)));
    expect(new Set(ips).size).toBe(4);
    await e1.docker(['rm', '-f', ...names], 120_000);
    const after = await net.hosts.host(1).exec('ip', ['-o', 'link', 'show', 'type', 'veth']);
    expect(after.split('\n').filter((l) => l.includes('vethwd')).length).toBe(
      before.split('\n').filter((l) => l.includes('vethwd')).length,
    );
    const held = (await net.weft[0]!.report()).docker!.endpoints.flatMap((x) => x.addresses);
    for (const ip of ips) expect(held.some((a) => a.startsWith(`${ip}/`))).toBe(false);
  });
});
