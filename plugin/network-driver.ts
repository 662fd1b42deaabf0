/**
 * weft as Docker's network driver (`docker network create -d weft`). The calls, in the order dockerd makes them
 * for `docker run --network weft`:
 *
 *   CreateEndpoint  make a veth pair, host end on the weft bridge, guest end left here; answer its MAC
 *   Join            answer the guest end's name; dockerd moves it into the container as ethwe0 and sets the
 *                   address IPAM gave (weft never enters the container: see netdev/docker-veth.ts)
 *   Leave           (container stops)
 *   DeleteEndpoint  delete the pair (the address goes back through the IPAM driver's ReleaseAddress)
 *
 * Scope: "local" (each engine keeps its own record of a network; no KV store or swarm needed) with connectivity
 * scope "global" (containers of the same network on different hosts reach each other: that is weft's job). See
 * docs/docker.md for why not "global".
 *
 * Endpoints are remembered in memory and rebuilt from the kernel at start (`restore`), so a weft restart does not
 * forget the containers dockerd still runs. Listeners (`onEndpoint`) hear joins and leaves with the container's id,
 * name and addresses once known: the hook for weftDNS.
 */
import type { Logger } from '../runtime/logger.js';
import type { Store } from '../runtime/store.js';
import type { DockerEndpointReport, DockerNetworkReport } from './report.js';
import {
  PluginError,
  type CreateEndpointRequest,
  type CreateEndpointResponse,
  type CreateNetworkRequest,
  type EndpointRequest,
  type JoinRequest,
  type JoinResponse,
  type NetworkRequest,
} from './docker-protocol.js';

/** The veth operations the driver needs (netdev/docker-veth.ts implements them; tests pass a fake). */
export interface EndpointVeths {
  /** Make the pair for `endpointId` and plug the host end in; answers the names and the guest MAC. */
  create(endpointId: string, mac: string | undefined): Promise<{ hostIfname: string; guestIfname: string; mac: string }>;
  /** Delete the pair; false when there was none. */
  remove(endpointId: string): Promise<boolean>;
  /** Every endpoint whose pair exists: endpoint id -> host ifname. */
  list(): Promise<Map<string, string>>;
  /** The pair's names, without touching the kernel. */
  names(endpointId: string): { hostIfname: string; guestIfname: string };
}

/** Who a Docker endpoint belongs to, from the engine (docker-api.ts). */
export interface ContainerOfEndpoint {
  containerId: string;
  containerName: string;
}

/** A join or leave, for listeners (weftDNS registers containers under their names from these). */
export interface EndpointEvent {
  kind: 'joined' | 'left';
  networkId: string;
  endpointId: string;
  /** Known once the engine told us (joins are announced after that); '' when the engine could not be asked. */
  containerId: string;
  containerName: string;
  /** CIDRs, e.g. ['10.32.0.3/12']. */
  addresses: string[];
}

interface EndpointState {
  networkId: string;
  hostIfname: string;
  guestIfname: string;
  mac: string;
  addresses: string[];
  isJoined: boolean;
  containerId?: string;
  containerName?: string;
}

export interface NetworkDriverDeps {
  veths: EndpointVeths;
  store: Store;
  log: Logger;
  /** Ask the engine which container an endpoint belongs to; undefined when Docker integration is off. */
  containerOf?: (networkId: string, endpointId: string) => Promise<ContainerOfEndpoint | undefined>;
}

const ENDPOINTS_KEY = 'docker-endpoints';

/** Interface name prefix inside containers: dockerd appends a number (ethwe0), as Weave's. */
export const CONTAINER_IFNAME_PREFIX = 'ethwe';

export class NetworkDriver {
  private readonly networks = new Map<string, DockerNetworkReport>();
  private readonly endpoints = new Map<string, EndpointState>();
  private readonly listeners: Array<(event: EndpointEvent) => void> = [];
  /** Endpoint ids with a create or delete under way: a second call for the same id waits for the first. */
  private readonly busy = new Map<string, Promise<unknown>>();
  readonly counters: Record<string, number> = {};

  constructor(private readonly deps: NetworkDriverDeps) {
    const doc = deps.store.read('docker-networks');
    if (doc !== undefined) {
      try {
        for (const n of (JSON.parse(doc.toString('utf8')) as { networks: DockerNetworkReport[] }).networks) {
          if (typeof n?.networkId === 'string')
            this.networks.set(n.networkId, { networkId: n.networkId, subnets: [...(n.subnets ?? [])], options: { ...n.options } });
        }
      } catch (err) {
        deps.log.warn({ err }, 'docker: stored network list unreadable; starting with none');
      }
    }
  }

  /**
   * Find the endpoints made before a restart again: the kernel says which still exist (their veths), the Store what
   * we knew of them (network, MAC, addresses, container). Listeners hear a 'joined' for each joined one, so weftDNS
   * registers them again.
   */
  async restore(): Promise<number> {
    const found = await this.deps.veths.list();
    const stored = new Map<string, Partial<EndpointState>>();
    const doc = this.deps.store.read(ENDPOINTS_KEY);
    if (doc !== undefined) {
      try {
        for (const [id, ep] of Object.entries(
          (JSON.parse(doc.toString('utf8')) as { endpoints: Record<string, Partial<EndpointState>> }).endpoints,
        ))
          stored.set(id, ep);
      } catch (err) {
        this.deps.log.warn({ err }, 'docker: stored endpoint list unreadable; endpoints are found from their veths only');
      }
    }
    for (const [endpointId, hostIfname] of found) {
      if (this.endpoints.has(endpointId)) continue;
      const { guestIfname } = this.deps.veths.names(endpointId);
      const s = stored.get(endpointId) ?? {};
      // Without a record, assume joined: the guest end is in a container by now.
      const ep: EndpointState = {
        networkId: typeof s.networkId === 'string' ? s.networkId : '',
        hostIfname,
        guestIfname,
        mac: typeof s.mac === 'string' ? s.mac : '',
        addresses: Array.isArray(s.addresses) ? s.addresses.map(String) : [],
        isJoined: s.isJoined !== false,
        ...(typeof s.containerId === 'string' && { containerId: s.containerId }),
        ...(typeof s.containerName === 'string' && { containerName: s.containerName }),
      };
      this.endpoints.set(endpointId, ep);
      if (ep.isJoined) this.emit('joined', endpointId, ep);
    }
    this.persistEndpoints();
    return found.size;
  }

  /** Hear joins and leaves (after the fact; a throwing listener is logged, never breaks the call). */
  onEndpoint(listener: (event: EndpointEvent) => void): void {
    this.listeners.push(listener);
  }

  getCapabilities(): { Scope: string; ConnectivityScope: string } {
    return { Scope: 'local', ConnectivityScope: 'global' };
  }

  createNetwork(r: CreateNetworkRequest): void {
    if (r.IPv6Data.length > 0) {
      throw new PluginError('ERR_PLUGIN_IPV6', 'weft networks are IPv4 only: create the network without --ipv6');
    }
    const unknown = Object.keys(r.driverOptions).filter((k) => !k.startsWith('com.docker.'));
    if (unknown.length > 0) {
      throw new PluginError(
        'ERR_PLUGIN_BAD_OPTION',
        `weft takes no driver options, got ${unknown.map((k) => JSON.stringify(k)).join(', ')}: drop the -o flags`,
      );
    }
    this.networks.set(r.NetworkID, { networkId: r.NetworkID, subnets: r.IPv4Data.map((d) => d.Pool), options: r.driverOptions });
    this.persistNetworks();
    this.deps.log.info({ network: r.NetworkID, subnets: r.IPv4Data.map((d) => d.Pool) }, 'docker: network created');
  }

  deleteNetwork(r: NetworkRequest): void {
    this.networks.delete(r.NetworkID);
    this.persistNetworks();
    this.deps.log.info({ network: r.NetworkID }, 'docker: network deleted');
  }

  async createEndpoint(r: CreateEndpointRequest): Promise<CreateEndpointResponse> {
    if (r.Interface.AddressIPv6 !== '')
      throw new PluginError('ERR_PLUGIN_IPV6', 'weft endpoints are IPv4 only: create the network without --ipv6');
    if (r.Interface.MacAddress !== '' && !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(r.Interface.MacAddress)) {
      throw new PluginError(
        'ERR_PLUGIN_BAD_MAC',
        `MacAddress ${JSON.stringify(r.Interface.MacAddress.slice(0, 40))} is not a MAC (like 02:42:0a:20:00:01)`,
      );
    }
    return this.exclusive(r.EndpointID, async () => {
      if (this.endpoints.has(r.EndpointID)) {
        throw new PluginError(
          'ERR_PLUGIN_ENDPOINT_EXISTS',
          `endpoint ${short(r.EndpointID)} exists already; delete it first (docker rm the container that has it)`,
        );
      }
      const veth = await this.deps.veths.create(
        r.EndpointID,
        r.Interface.MacAddress === '' ? undefined : r.Interface.MacAddress.toLowerCase(),
      );
      this.endpoints.set(r.EndpointID, {
        networkId: r.NetworkID,
        hostIfname: veth.hostIfname,
        guestIfname: veth.guestIfname,
        mac: veth.mac,
        addresses: r.Interface.Address === '' ? [] : [r.Interface.Address],
        isJoined: false,
      });
      this.persistEndpoints();
      this.count('endpoints_created');
      this.deps.log.info(
        { network: r.NetworkID, endpoint: r.EndpointID, veth: veth.hostIfname, addr: r.Interface.Address },
        'docker: endpoint created',
      );
      // Only a MAC dockerd did not choose goes back: answering its own would be read as "driver modified it".
      return r.Interface.MacAddress === '' ? { Interface: { MacAddress: veth.mac } } : {};
    });
  }

  async deleteEndpoint(r: EndpointRequest): Promise<void> {
    await this.exclusive(r.EndpointID, async () => {
      const ep = this.endpoints.get(r.EndpointID);
      const wasThere = await this.deps.veths.remove(r.EndpointID);
      this.endpoints.delete(r.EndpointID);
      this.persistEndpoints();
      if (ep?.isJoined) this.emit('left', r.EndpointID, ep);
      if (ep === undefined && !wasThere) this.count('delete_unknown_endpoint');
      this.deps.log.info({ network: r.NetworkID, endpoint: r.EndpointID, isKnown: ep !== undefined }, 'docker: endpoint deleted');
    });
  }

  endpointOperInfo(r: EndpointRequest): { Value: Record<string, unknown> } {
    const ep = this.requireEndpoint(r, 'EndpointOperInfo');
    return { Value: { hostIfname: ep.hostIfname, mac: ep.mac, addresses: ep.addresses } };
  }

  async join(r: JoinRequest): Promise<JoinResponse> {
    await this.busy.get(r.EndpointID)?.catch(() => undefined);
    const ep = this.requireEndpoint(r, 'Join');
    if (ep.isJoined)
      throw new PluginError(
        'ERR_PLUGIN_ALREADY_JOINED',
        `endpoint ${short(r.EndpointID)} is already joined to a container; Leave it first`,
      );
    const names = await this.deps.veths.list();
    if (!names.has(r.EndpointID)) {
      this.endpoints.delete(r.EndpointID);
      this.persistEndpoints();
      throw new PluginError(
        'ERR_PLUGIN_UNKNOWN_ENDPOINT',
        `endpoint ${short(r.EndpointID)} lost its veth ${ep.hostIfname} (deleted outside weft); remove the container and run it again`,
        404,
      );
    }
    ep.isJoined = true;
    this.persistEndpoints();
    this.count('joins');
    this.deps.log.info({ network: r.NetworkID, endpoint: r.EndpointID, sandbox: r.SandboxKey }, 'docker: endpoint joined');
    void this.announceJoin(r.EndpointID, ep);
    return { InterfaceName: { SrcName: ep.guestIfname, DstPrefix: CONTAINER_IFNAME_PREFIX } };
  }

  leave(r: EndpointRequest): void {
    const ep = this.requireEndpoint(r, 'Leave');
    if (ep.isJoined) {
      ep.isJoined = false;
      this.persistEndpoints();
      this.emit('left', r.EndpointID, ep);
    }
    this.deps.log.info({ network: r.NetworkID, endpoint: r.EndpointID }, 'docker: endpoint left');
  }

  /** What `weft status` shows. */
  report(): { networks: DockerNetworkReport[]; endpoints: DockerEndpointReport[] } {
    return {
      networks: [...this.networks.values()],
      endpoints: [...this.endpoints].map(([endpointId, ep]) => ({
        endpointId,
        networkId: ep.networkId,
        hostIfname: ep.hostIfname,
        mac: ep.mac,
        addresses: [...ep.addresses],
        isJoined: ep.isJoined,
        ...(ep.containerId !== undefined && { containerId: ep.containerId }),
        ...(ep.containerName !== undefined && { containerName: ep.containerName }),
      })),
    };
  }

  /** Learn the container behind a joined endpoint from the engine, then tell listeners. */
  private async announceJoin(endpointId: string, ep: EndpointState): Promise<void> {
    const containerOf = this.deps.containerOf;
    if (containerOf !== undefined) {
      // dockerd lists the container on the network only after the Join answer: ask a few times.
      for (let attempt = 0; attempt < 20 && ep.containerId === undefined; attempt++) {
        await new Promise((r) => setTimeout(r, attempt === 0 ? 50 : 250));
        if (this.endpoints.get(endpointId) !== ep || !ep.isJoined) return;
        try {
          const c = await containerOf(ep.networkId, endpointId);
          if (c !== undefined) {
            ep.containerId = c.containerId;
            ep.containerName = c.containerName;
            this.persistEndpoints();
          }
        } catch (err) {
          this.deps.log.debug({ err, endpoint: endpointId }, 'docker: could not ask the engine for the container');
        }
      }
    }
    if (this.endpoints.get(endpointId) === ep && ep.isJoined) this.emit('joined', endpointId, ep);
  }

  private emit(kind: EndpointEvent['kind'], endpointId: string, ep: EndpointState): void {
    const event: EndpointEvent = {
      kind,
      networkId: ep.networkId,
      endpointId,
      containerId: ep.containerId ?? '',
      containerName: ep.containerName ?? '',
      addresses: [...ep.addresses],
    };
    for (const l of this.listeners) {
      try {
        l(event);
      } catch (err) {
        this.deps.log.warn({ err, endpoint: endpointId }, 'docker: endpoint listener failed');
      }
    }
  }

  private requireEndpoint(r: EndpointRequest, method: string): EndpointState {
    const ep = this.endpoints.get(r.EndpointID);
    if (ep === undefined) {
      this.count('unknown_endpoint');
      throw new PluginError(
        'ERR_PLUGIN_UNKNOWN_ENDPOINT',
        `${method}: endpoint ${short(r.EndpointID)} of network ${short(r.NetworkID)} is not known to weft (never created, or already deleted); remove the container and run it again`,
        404,
      );
    }
    if (ep.networkId === '') ep.networkId = r.NetworkID;
    return ep;
  }

  private async exclusive<T>(endpointId: string, run: () => Promise<T>): Promise<T> {
    while (this.busy.has(endpointId)) await this.busy.get(endpointId)!.catch(() => undefined);
    const p = run();
    this.busy.set(endpointId, p);
    try {
      return await p;
    } finally {
      if (this.busy.get(endpointId) === p) this.busy.delete(endpointId);
    }
  }

  private persistEndpoints(): void {
    this.deps.store.write(ENDPOINTS_KEY, JSON.stringify({ endpoints: Object.fromEntries(this.endpoints) }));
  }

  private persistNetworks(): void {
    this.deps.store.write('docker-networks', JSON.stringify({ networks: [...this.networks.values()] }));
  }

  private count(reason: string): void {
    this.counters[reason] = (this.counters[reason] ?? 0) + 1;
  }
}

function short(id: string): string {
  return id.slice(0, 12);
}
