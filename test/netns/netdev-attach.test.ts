/**
 * netdev against real kernel devices, driven inside one test host's namespace (the `netns` option): a bridge, two
 * containers attached by veth that ping each other, expose/hide, endpoints listed from the kernel, detach, and
 * failures that leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBridge, deleteBridge, findLink } from '../../netdev/bridge.js';
import { attach, detach, listEndpoints, resolveTarget } from '../../netdev/endpoint.js';
import { expose, hide, listExposed } from '../../netdev/expose.js';
import { underlayMtu, overlayMtu } from '../../netdev/mtu.js';
import { isTxChecksumOffloaded } from '../../netdev/offload.js';
import { NotABridgeError, NoRouteError } from '../../netdev/errors.js';
import { createHosts, netnsSkipReason, untilInNamespace, type TestContainer, type TestHost, type TestHosts } from '../harness/hosts.js';

const skip = netnsSkipReason();

const BRIDGE = 'weft';

async function pings(from: TestContainer | TestHost, address: string): Promise<boolean> {
  try {
    await from.exec('ping', ['-c', '1', '-W', '2', address]);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)('netdev: bridge and endpoints on one host', () => {
  let net: TestHosts | undefined;
  let host: TestHost;
  let c1: TestContainer;
  let c2: TestContainer;
  let mtuBytes: number;

  beforeAll(async () => {
    net = await createHosts({ count: 2 });
    host = net.host(1);
    c1 = await net.addContainer(host, 'c1');
    c2 = await net.addContainer(host, 'c2');
  });
  afterAll(async () => {
    await net?.destroy();
  });

  it('takes the underlay MTU from the default route, or from the route to a peer', async () => {
    expect(await underlayMtu({ netns: host.ns })).toBe(1500);
    expect(await underlayMtu({ netns: host.ns, to: net!.host(2).ip })).toBe(1500);
    await expect(underlayMtu({ netns: c1.ns })).rejects.toBeInstanceOf(NoRouteError);
    mtuBytes = overlayMtu(await underlayMtu({ netns: host.ns }));
    expect(mtuBytes).toBe(1412);
  });

  it('creates the bridge up, STP off, with the MTU, then adopts it on a second call', async () => {
    const first = await ensureBridge({ name: BRIDGE, mtuBytes, netns: host.ns });
    expect(first.wasCreated).toBe(true);
    const link = await findLink(BRIDGE, host.ns);
    expect(link?.linkinfo?.info_kind).toBe('bridge');
    expect(link?.linkinfo?.info_data?.['stp_state']).toBe(0);
    expect(link?.mtu).toBe(mtuBytes);
    expect(link?.flags).toContain('UP');
    const again = await ensureBridge({ name: BRIDGE, mtuBytes, netns: host.ns });
    expect(again).toEqual({ ...first, wasCreated: false });
  });

  it('refuses to adopt a device of the bridge name that is not a bridge', async () => {
    await host.exec('ip', ['link', 'add', 'name', 'notbr', 'type', 'veth', 'peer', 'name', 'notbr-peer']);
    const err = await ensureBridge({ name: 'notbr', mtuBytes, netns: host.ns }).catch((e) => e);
    expect(err).toBeInstanceOf(NotABridgeError);
    expect(err.code).toBe('NOT_A_BRIDGE');
    await expect(deleteBridge('notbr', { netns: host.ns })).rejects.toBeInstanceOf(NotABridgeError);
    await host.exec('ip', ['link', 'del', 'notbr']);
  });

  it('attaches two containers (by name and by path) that ping each other across the bridge', async () => {
    const e1 = await attach({ bridge: BRIDGE, target: c1.ns, addresses: ['10.40.1.1/24'], mtuBytes, netns: host.ns });
    const e2 = await attach({
      bridge: BRIDGE,
      target: c2.path,
      addresses: ['10.40.1.2/24'],
      mac: '02:42:0a:28:01:02',
      mtuBytes,
      netns: host.ns,
    });
    expect(e1).toMatchObject({ target: c1.ns, interface: 'ethwe0', addresses: ['10.40.1.1/24'] });
    expect(e1.mac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    const hostEnd = (await resolveTarget(c1.ns)).hostIfname;
    expect(e1.hostInterface).toBe(hostEnd);
    expect(e2).toEqual({
      target: c2.path,
      interface: 'ethwe0',
      mac: '02:42:0a:28:01:02',
      addresses: ['10.40.1.2/24'],
      hostInterface: (await resolveTarget(c2.path)).hostIfname,
    });
    expect(await c2.exec('ip', ['-j', 'link', 'show', 'dev', 'ethwe0'])).toContain(`"mtu":${mtuBytes}`);
    expect((await findLink(hostEnd, host.ns))?.master).toBe(BRIDGE);

    expect(await pings(c1, '10.40.1.2')).toBe(true);
    expect(await pings(c2, '10.40.1.1')).toBe(true);
  });

  it('turns transmit checksum offload off inside the container', async () => {
    expect(await c1.exec('ethtool', ['-k', 'ethwe0'])).toMatch(/^tx-checksumming: off/m);
    expect(await isTxChecksumOffloaded('ethwe0', { netns: c2.ns })).toBe(false);
  });

  it('attaching again adds the missing address and keeps the interface', async () => {
    const before = (await listEndpoints(BRIDGE, { netns: host.ns })).find((e) => e.target === c1.ns)!;
    const e = await attach({ bridge: BRIDGE, target: c1.ns, addresses: ['10.40.1.1/24', '10.40.2.1/24'], mtuBytes, netns: host.ns });
    expect(e.mac).toBe(before.mac);
    expect(e.addresses.sort()).toEqual(['10.40.1.1/24', '10.40.2.1/24']);
  });

  it('attaches a process by pid: and lists all endpoints from the kernel', async () => {
    const c3 = await net!.addContainer(host, 'c3');
    const sleeper = c3.spawn('sleep', ['600']);
    await new Promise((r) => sleeper.once('spawn', r));
    // 'spawn' fires when `ip netns exec` starts, before it has entered c3: until then /proc/PID/ns/net is ours.
    await untilInNamespace(sleeper.pid!, c3.path);
    const target = `pid:${sleeper.pid}`;
    await attach({ bridge: BRIDGE, target, addresses: ['10.40.1.3/24'], mtuBytes, netns: host.ns });
    expect(await pings(c1, '10.40.1.3')).toBe(true);

    const listed = await listEndpoints(BRIDGE, { netns: host.ns });
    expect(listed.map((e) => e.target).sort()).toEqual([c1.ns, c2.path, target].sort());
    expect(listed.find((e) => e.target === c2.path)).toEqual({
      target: c2.path,
      interface: 'ethwe0',
      mac: '02:42:0a:28:01:02',
      addresses: ['10.40.1.2/24'],
    });
    expect(await detach(`/proc/${sleeper.pid}/ns/net`, { netns: host.ns })).toBe(true); // same namespace, other spelling
    sleeper.kill();
  });

  it('expose gives the host an address that pings a container; hide takes it away', async () => {
    expect(await expose(BRIDGE, '10.40.1.254/24', { netns: host.ns })).toBe(true);
    expect(await expose(BRIDGE, '10.40.1.254/24', { netns: host.ns })).toBe(false);
    expect(await listExposed(BRIDGE, { netns: host.ns })).toEqual(['10.40.1.254/24']);
    expect(await pings(host, '10.40.1.1')).toBe(true);
    expect(await hide(BRIDGE, '10.40.1.254/24', { netns: host.ns })).toBe(true);
    expect(await hide(BRIDGE, '10.40.1.254/24', { netns: host.ns })).toBe(false);
    expect(await listExposed(BRIDGE, { netns: host.ns })).toEqual([]);
    expect(await pings(host, '10.40.1.1')).toBe(false);
  });

  it('detach removes the veth pair, and a second detach finds nothing', async () => {
    const hostEnd = (await resolveTarget(c1.ns)).hostIfname;
    expect(await detach(c1.ns, { netns: host.ns })).toBe(true);
    expect(await findLink(hostEnd, host.ns)).toBeUndefined();
    await expect(c1.exec('ip', ['link', 'show', 'dev', 'ethwe0'])).rejects.toThrow(/does not exist/);
    expect(await detach(c1.ns, { netns: host.ns })).toBe(false);
    expect((await listEndpoints(BRIDGE, { netns: host.ns })).map((e) => e.target)).toEqual([c2.path]);
  });

  it('a failed attach leaves no veth behind and names the device and command', async () => {
    await c1.exec('ip', ['link', 'add', 'name', 'ethwe0', 'type', 'veth', 'peer', 'name', 'other0']); // name taken inside
    const err = await attach({ bridge: BRIDGE, target: c1.ns, addresses: ['10.40.1.1/24'], mtuBytes, netns: host.ns }).catch((e) => e);
    expect(err.code).toBe('NETDEV_COMMAND_FAILED');
    expect(err.device).toBe('ethwe0');
    expect(err.command).toContain('name ethwe0');
    const { hostIfname, guestIfname } = await resolveTarget(c1.ns);
    expect(await findLink(hostIfname, host.ns)).toBeUndefined();
    expect(await findLink(guestIfname, host.ns)).toBeUndefined();
    await expect(c1.exec('ip', ['link', 'show', 'dev', guestIfname])).rejects.toThrow(/does not exist/);
  });

  it('rejects bad input before touching the kernel', async () => {
    const base = { bridge: BRIDGE, target: c1.ns, mtuBytes, netns: host.ns };
    await expect(attach({ ...base, addresses: ['10.40.1.1'] })).rejects.toMatchObject({ code: 'INVALID_NETDEV_INPUT', field: 'address' });
    await expect(attach({ ...base, addresses: [], target: 'pid:abc' })).rejects.toMatchObject({ code: 'INVALID_TARGET' });
    await expect(attach({ ...base, addresses: [], target: 'nonexistent-ns' })).rejects.toMatchObject({ code: 'TARGET_NOT_FOUND' });
    await expect(attach({ ...base, addresses: [], target: host.ns })).rejects.toMatchObject({ code: 'TARGET_IS_HOST' });
    await expect(attach({ ...base, addresses: [], ifname: 'much-too-long-name' })).rejects.toMatchObject({ code: 'INVALID_NETDEV_INPUT' });
  });

  it('deleteBridge removes the bridge and is idempotent', async () => {
    await deleteBridge(BRIDGE, { netns: host.ns });
    await deleteBridge(BRIDGE, { netns: host.ns });
    expect(await findLink(BRIDGE, host.ns)).toBeUndefined();
  });
});
