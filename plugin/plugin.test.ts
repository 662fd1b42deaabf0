import { describe, expect, it } from 'vitest';
import { silentLogger } from '../runtime/logger.js';
import { MemoryStore } from '../runtime/store.js';
import { IpamDriver, type PluginIpam } from './ipam-driver.js';
import { NetworkDriver, type EndpointEvent, type EndpointVeths } from './network-driver.js';
import { answerPluginCall, pluginMethods } from './server.js';
import { IpamConflictError } from '../ipam/errors.js';

/** An IPAM that hands out addresses in order and refuses a held one, like weft's allocator does. */
class FakeIpam implements PluginIpam {
  readonly held = new Map<string, string>();
  private next = 1;
  async allocate(ident: string, subnet = '10.32.0.0/12'): Promise<string> {
    const [net, prefix] = subnet.split('/');
    const base = net!.split('.').map(Number);
    for (;;) {
      const n = this.next++;
      const addr = `${base[0]}.${base[1]}.${base[2]! + (n >> 8)}.${n & 255}`;
      if (!this.held.has(addr)) {
        this.held.set(addr, ident);
        return `${addr}/${prefix}`;
      }
    }
  }
  async claim(ident: string, address: string): Promise<string> {
    const addr = address.split('/')[0]!;
    const holder = this.held.get(addr);
    if (holder !== undefined && holder !== ident) throw new IpamConflictError(addr, holder, 'h2');
    this.held.set(addr, ident);
    return address;
  }
  releaseAddress(address: string): boolean {
    return this.held.delete(address.split('/')[0]!);
  }
  holdings(): Map<string, string> {
    return new Map([...this.held].map(([a, i]) => [`${a}/32`, i]));
  }
}

/** Veths in memory; `failCreate` makes the next create fail after "making" the pair (it must not stay). */
class FakeVeths implements EndpointVeths {
  readonly pairs = new Map<string, string>();
  failCreate = false;
  names(id: string) {
    return { hostIfname: `vethwd${id.slice(0, 9)}`, guestIfname: `vethwc${id.slice(0, 9)}` };
  }
  async create(id: string, mac: string | undefined) {
    if (this.failCreate) throw Object.assign(new Error('ip link add failed'), { code: 'NETDEV_COMMAND_FAILED' });
    this.pairs.set(id, this.names(id).hostIfname);
    return { ...this.names(id), mac: mac ?? '02:00:00:00:00:01' };
  }
  async remove(id: string) {
    return this.pairs.delete(id);
  }
  async list() {
    return new Map(this.pairs);
  }
}

const NID = 'a'.repeat(64);
const EID = 'b'.repeat(64);

function setup() {
  const ipamBackend = new FakeIpam();
  const veths = new FakeVeths();
  const store = new MemoryStore();
  const network = new NetworkDriver({ veths, store, log: silentLogger });
  const ipam = new IpamDriver({ ipam: ipamBackend, store, log: silentLogger }, { range: '10.32.0.0/12', defaultSubnet: '10.32.0.0/16' });
  const methods = pluginMethods(network, ipam);
  const counters: Record<string, number> = {};
  const call = (method: string, body: unknown) =>
    answerPluginCall(methods, `/${method}`, typeof body === 'string' ? body : JSON.stringify(body), counters, silentLogger);
  return { ipamBackend, veths, store, network, ipam, call, counters };
}

describe('Docker plugin protocol', () => {
  it('activates as a network and an IPAM driver, with local scope and global connectivity', async () => {
    const { call } = setup();
    expect((await call('Plugin.Activate', '')).body).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
    expect((await call('NetworkDriver.GetCapabilities', 'null')).body).toEqual({ Scope: 'local', ConnectivityScope: 'global' });
    expect((await call('IpamDriver.GetDefaultAddressSpaces', 'null')).body).toEqual({
      LocalDefaultAddressSpace: 'weftlocal',
      GlobalDefaultAddressSpace: 'weftglobal',
    });
  });

  it('runs a container through the whole life cycle and leaves no veth or address behind', async () => {
    const { call, veths, ipamBackend } = setup();
    const events: EndpointEvent[] = [];
    const pool = await call('IpamDriver.RequestPool', {
      AddressSpace: 'weftlocal',
      Pool: '10.32.0.0/16',
      SubPool: '',
      Options: {},
      V6: false,
    });
    expect(pool.status).toBe(200);
    expect(pool.body['Pool']).toBe('10.32.0.0/16');
    // The gateway comes with the pool, so dockerd spends no container address on it.
    expect(pool.body['Data']).toEqual({ 'com.docker.network.gateway': '10.32.0.0/16' });
    const poolId = pool.body['PoolID'] as string;
    expect(
      (
        await call('NetworkDriver.CreateNetwork', {
          NetworkID: NID,
          Options: { 'com.docker.network.generic': {} },
          IPv4Data: [{ AddressSpace: 'weftlocal', Pool: '10.32.0.0/16', Gateway: '10.32.0.0/16' }],
        })
      ).status,
    ).toBe(200);
    const addr = await call('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: {} });
    expect(addr.status).toBe(200);
    expect(addr.body['Address']).toMatch(/^10\.32\.\d+\.\d+\/16$/);
    const created = await call('NetworkDriver.CreateEndpoint', {
      NetworkID: NID,
      EndpointID: EID,
      Interface: { Address: addr.body['Address'], AddressIPv6: '', MacAddress: '' },
      Options: {},
    });
    expect(created.body).toEqual({ Interface: { MacAddress: '02:00:00:00:00:01' } });
    expect(veths.pairs.size).toBe(1);
    const joined = await call('NetworkDriver.Join', {
      NetworkID: NID,
      EndpointID: EID,
      SandboxKey: '/var/run/docker/netns/x',
      Options: {},
    });
    expect(joined.body).toEqual({ InterfaceName: { SrcName: `vethwc${EID.slice(0, 9)}`, DstPrefix: 'ethwe' } });
    expect((await call('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: {} })).status).toBe(200);
    expect((await call('NetworkDriver.EndpointOperInfo', { NetworkID: NID, EndpointID: EID })).status).toBe(200);
    expect((await call('NetworkDriver.RevokeExternalConnectivity', { NetworkID: NID, EndpointID: EID })).status).toBe(200);
    expect((await call('NetworkDriver.Leave', { NetworkID: NID, EndpointID: EID })).status).toBe(200);
    expect((await call('NetworkDriver.DeleteEndpoint', { NetworkID: NID, EndpointID: EID })).status).toBe(200);
    expect(
      (await call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: (addr.body['Address'] as string).split('/')[0] })).status,
    ).toBe(200);
    expect((await call('NetworkDriver.DeleteNetwork', { NetworkID: NID })).status).toBe(200);
    expect((await call('IpamDriver.ReleasePool', { PoolID: poolId })).status).toBe(200);
    expect(veths.pairs.size).toBe(0);
    expect(ipamBackend.held.size).toBe(0);
    expect(events).toEqual([]);
  });

  it('tells listeners when a container joins and leaves, with its addresses', async () => {
    const { call, network } = setup();
    const events: EndpointEvent[] = [];
    network.onEndpoint((e) => events.push(e));
    await call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.32.0.7/16' } });
    await call('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID, SandboxKey: '/x' });
    await new Promise((r) => setTimeout(r, 10));
    await call('NetworkDriver.Leave', { NetworkID: NID, EndpointID: EID });
    expect(events.map((e) => [e.kind, e.endpointId, e.addresses])).toEqual([
      ['joined', EID, ['10.32.0.7/16']],
      ['left', EID, ['10.32.0.7/16']],
    ]);
  });

  it('answers malformed JSON, wrong shapes and unknown methods with {Err} and counts them', async () => {
    const { call, counters } = setup();
    const bad = await call('NetworkDriver.CreateEndpoint', '{"NetworkID": ');
    expect(bad.status).toBe(400);
    expect(bad.body['Err']).toMatch(/bad NetworkDriver.CreateEndpoint request: the body is not JSON/);
    expect((await call('NetworkDriver.Join', '[1,2]')).body['Err']).toMatch(/must be a JSON object/);
    expect((await call('NetworkDriver.Join', { NetworkID: NID })).body['Err']).toMatch(/EndpointID is missing/);
    expect((await call('NetworkDriver.Join', { NetworkID: NID, EndpointID: '../../etc' })).body['Err']).toMatch(/is not an id/);
    expect((await call('IpamDriver.RequestPool', { Pool: 5 })).body['Err']).toMatch(/Pool must be a string/);
    expect((await call('IpamDriver.RequestAddress', { PoolID: 'x', Options: { a: 1 } })).body['Err']).toMatch(/Options.a must be a string/);
    const unknown = await call('NetworkDriver.Teleport', {});
    expect(unknown.status).toBe(404);
    expect(unknown.body['Err']).toMatch(/no method "NetworkDriver.Teleport"; it implements Plugin.Activate/);
    expect(counters['ERR_PLUGIN_BAD_REQUEST']).toBe(6);
    expect(counters['ERR_PLUGIN_UNKNOWN_METHOD']).toBe(1);
  });

  it('refuses a Join, Leave or info for an endpoint it does not know, naming it', async () => {
    const { call } = setup();
    for (const m of ['NetworkDriver.Join', 'NetworkDriver.Leave', 'NetworkDriver.EndpointOperInfo']) {
      const r = await call(m, { NetworkID: NID, EndpointID: EID, SandboxKey: '/x' });
      expect(r.status).toBe(404);
      expect(r.body['Err']).toMatch(new RegExp(`endpoint ${EID.slice(0, 12)} .* is not known to weft`));
    }
    // Deleting an unknown endpoint is fine: dockerd retries deletes after its own crashes.
    expect((await call('NetworkDriver.DeleteEndpoint', { NetworkID: NID, EndpointID: EID })).status).toBe(200);
  });

  it('a failed CreateEndpoint leaves no veth; a Join whose veth vanished is refused and forgets the endpoint', async () => {
    const { call, veths } = setup();
    veths.failCreate = true;
    const r = await call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.32.0.7/16' } });
    expect(r.status).toBe(500);
    expect(r.body['Err']).toMatch(/ip link add failed/);
    expect(veths.pairs.size).toBe(0);
    veths.failCreate = false;
    expect(
      (await call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.32.0.7/16' } })).status,
    ).toBe(200);
    veths.pairs.clear();
    const join = await call('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID, SandboxKey: '/x' });
    expect(join.body['Err']).toMatch(/lost its veth/);
    expect((await call('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID, SandboxKey: '/x' })).body['Err']).toMatch(
      /not known to weft/,
    );
  });

  it('refuses IPv6, subnets outside the range, foreign pools and driver options with what to do', async () => {
    const { call } = setup();
    expect((await call('IpamDriver.RequestPool', { V6: true })).body['Err']).toMatch(/IPv4 only: create the network without --ipv6/);
    expect((await call('IpamDriver.RequestPool', { Pool: '192.168.0.0/24' })).body['Err']).toMatch(
      /not inside weft's --ipalloc-range 10.32.0.0\/12/,
    );
    expect((await call('IpamDriver.RequestPool', { Pool: '10.32.0.1/24' })).body['Err']).toMatch(/host bits zero/);
    expect((await call('IpamDriver.RequestPool', { Pool: '10.33.0.0/24', SubPool: '10.34.0.0/25' })).body['Err']).toMatch(
      /--ip-range 10.34.0.0\/25 is not inside --subnet/,
    );
    const foreign = await call('IpamDriver.RequestAddress', { PoolID: 'default/10.0.0.0/8' });
    expect(foreign.status).toBe(404);
    expect(foreign.body['Err']).toMatch(/not a weft pool/);
    expect(
      (await call('NetworkDriver.CreateNetwork', { NetworkID: NID, Options: { 'com.docker.network.generic': { mtu: '9000' } } })).body[
        'Err'
      ],
    ).toMatch(/weft takes no driver options, got "mtu"/);
  });

  it('picks free subnets outside the default one for networks without --subnet, and frees them with the pool', async () => {
    const { call, ipamBackend } = setup();
    const a = await call('IpamDriver.RequestPool', {});
    const b = await call('IpamDriver.RequestPool', {});
    expect(a.body['Pool']).toBe('10.33.0.0/24');
    expect(b.body['Pool']).toBe('10.33.1.0/24');
    const addr = await call('IpamDriver.RequestAddress', { PoolID: a.body['PoolID'] });
    expect(addr.body['Address']).toMatch(/^10\.33\.0\.\d+\/24$/);
    expect(ipamBackend.held.size).toBe(1);
    // Removing the network gives back its pool and whatever addresses it still held.
    await call('IpamDriver.ReleasePool', { PoolID: a.body['PoolID'] });
    expect(ipamBackend.held.size).toBe(0);
    expect((await call('IpamDriver.RequestPool', {})).body['Pool']).toBe('10.33.0.0/24');
  });

  it('claims a requested address and refuses one held elsewhere with the holder', async () => {
    const { call, ipamBackend } = setup();
    const pool = (await call('IpamDriver.RequestPool', { Pool: '10.32.0.0/16' })).body['PoolID'];
    expect((await call('IpamDriver.RequestAddress', { PoolID: pool, Address: '10.32.5.5' })).body['Address']).toBe('10.32.5.5/16');
    ipamBackend.held.set('10.32.5.6', 'another-router-container');
    const r = await call('IpamDriver.RequestAddress', { PoolID: pool, Address: '10.32.5.6' });
    expect(r.status).toBe(500);
    expect(r.body['Err']).toMatch(/weft IPAM: 10.32.5.6 is already held by another-router-container/);
    expect((await call('IpamDriver.RequestAddress', { PoolID: pool, Address: '10.40.0.1' })).body['Err']).toMatch(
      /not in the network's subnet 10.32.0.0\/16/,
    );
  });

  it('concurrent creates of different endpoints all succeed; a duplicate is refused', async () => {
    const { call, veths } = setup();
    const ids = Array.from({ length: 8 }, (_, i) => `${i}`.repeat(64));
    const results = await Promise.all(
      ids.map((id) => call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: id, Interface: {} })),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(veths.pairs.size).toBe(8);
    expect((await call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: ids[0], Interface: {} })).body['Err']).toMatch(
      /exists already/,
    );
  });

  it('finds endpoints of running containers again after a restart, with their addresses, and announces them', async () => {
    const { veths, store, call } = setup();
    await call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.32.0.7/16' } });
    await call('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID, SandboxKey: '/x' });
    const network = new NetworkDriver({ veths, store, log: silentLogger });
    const events: EndpointEvent[] = [];
    network.onEndpoint((e) => events.push(e));
    expect(await network.restore()).toBe(1);
    expect(network.report().endpoints).toMatchObject([{ endpointId: EID, networkId: NID, addresses: ['10.32.0.7/16'], isJoined: true }]);
    expect(events.map((e) => [e.kind, e.addresses])).toEqual([['joined', ['10.32.0.7/16']]]);
    const methods = pluginMethods(network, undefined);
    const r = await answerPluginCall(
      methods,
      '/NetworkDriver.DeleteEndpoint',
      JSON.stringify({ NetworkID: NID, EndpointID: EID }),
      {},
      silentLogger,
    );
    expect(r.status).toBe(200);
    expect(veths.pairs.size).toBe(0);
  });
});
