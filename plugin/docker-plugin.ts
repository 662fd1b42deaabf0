/**
 * The Docker integration as one part the daemon starts and stops: the network and IPAM drivers behind the plugin
 * socket, and (when an engine is configured) the `weft` network made on the local engine if it is missing, so
 * `docker run --network weft` works right after `weft launch`.
 *
 *   start: find endpoints left by an earlier run (their veths) -> listen on the socket -> ensure the network (in the
 *          background, retried until the engine answers)
 *   stop:  stop retrying -> close the socket (veths and addresses stay: containers keep running)
 */
import type { Logger } from '../runtime/logger.js';
import type { Store } from '../runtime/store.js';
import type { DockerApi } from './docker-api.js';
import { DOCKER_IDENT_PREFIX, IpamDriver, type PluginIpam } from './ipam-driver.js';
import { NetworkDriver, type EndpointEvent, type EndpointVeths } from './network-driver.js';
import type { DockerReport } from './report.js';
import { createPluginServer, pluginMethods, type PluginServer } from './server.js';

export interface DockerPluginDeps {
  log: Logger;
  store: Store;
  veths: EndpointVeths;
  /** weft's allocator; undefined when IPAM is off (then only the network driver is offered). */
  ipam: PluginIpam | undefined;
  /** The local engine; undefined when `--docker-api ''`. */
  docker: DockerApi | undefined;
}

export interface DockerPluginOptions {
  /** @default '/run/docker/plugins/weft.sock' */
  socketPath: string;
  /** The plugin's name: the driver and IPAM driver name Docker knows it by (the socket's base name). @default 'weft' */
  driverName?: string;
  /** The network made on the engine at start. @default 'weft' */
  networkName?: string;
  /** weft's `--ipalloc-range` and `--ipalloc-default-subnet` (the `weft` network's subnet). */
  range: string | undefined;
  defaultSubnet: string | undefined;
  /** First and longest wait between tries to reach the engine. @default 1000, 10000 */
  retryMs?: number;
  maxRetryMs?: number;
}

export const DEFAULT_PLUGIN_SOCKET = '/run/docker/plugins/weft.sock';

export class DockerPlugin {
  readonly network: NetworkDriver;
  readonly ipam: IpamDriver | undefined;
  private server: PluginServer | undefined;
  private readonly counters: Record<string, number> = {};
  private isStopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private isEngineReachable = false;
  private engineVersion: string | undefined;
  private lastError: string | undefined;

  constructor(
    private readonly deps: DockerPluginDeps,
    private readonly options: DockerPluginOptions,
  ) {
    this.network = new NetworkDriver({
      veths: deps.veths,
      store: deps.store,
      log: deps.log,
      ...(deps.docker && { containerOf: (nid: string, eid: string) => containerOf(deps.docker!, nid, eid) }),
    });
    if (deps.ipam && options.range !== undefined && options.defaultSubnet !== undefined) {
      this.ipam = new IpamDriver(
        { ipam: deps.ipam, store: deps.store, log: deps.log },
        { range: options.range, defaultSubnet: options.defaultSubnet },
      );
    }
  }

  /** Hear containers join and leave weft networks (with id, name and addresses): the weftDNS hook. */
  onEndpoint(listener: (event: EndpointEvent) => void): void {
    this.network.onEndpoint(listener);
  }

  async start(): Promise<void> {
    const restored = await this.network.restore();
    if (restored > 0) this.deps.log.info({ endpoints: restored }, 'docker: found endpoints of running containers again');
    await this.releaseOrphans();
    this.server = await createPluginServer(
      pluginMethods(this.network, this.ipam),
      { log: this.deps.log, counters: this.counters },
      this.options.socketPath,
    );
    if (this.deps.docker) this.ensureNetworkSoon(0);
  }

  async stop(): Promise<void> {
    this.isStopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    await this.server?.close();
  }

  report(): DockerReport {
    const { networks, endpoints } = this.network.report();
    return {
      socket: this.options.socketPath,
      engine: this.deps.docker?.url ?? '',
      isEngineReachable: this.isEngineReachable,
      ...(this.engineVersion !== undefined && { engineVersion: this.engineVersion }),
      ...(this.lastError !== undefined && { lastError: this.lastError }),
      networks,
      pools: this.ipam?.listPools() ?? [],
      endpoints,
      counters: { ...this.counters, ...this.network.counters, ...prefixed('ipam_', this.ipam?.counters) },
    };
  }

  /**
   * Give back Docker addresses no container uses any more: released by dockerd while weft was down (its
   * ReleaseAddress then failed), so nobody would ever give them back. Safe only now, before the socket serves: no
   * allocation of dockerd's can be under way. A stopped container holds no address (dockerd releases it when the
   * container stops and asks again when it starts), so "in use" is exactly the running containers on weft networks.
   * Skipped when the engine does not answer within 5 s.
   */
  private async releaseOrphans(): Promise<void> {
    const { docker, ipam, log } = this.deps;
    if (docker === undefined || ipam === undefined) return;
    const driver = this.options.driverName ?? 'weft';
    const inUse = async (): Promise<Set<string>> => {
      const used = new Set<string>();
      for (const n of await docker.listNetworks()) {
        if (n.IPAM?.Driver !== driver) continue;
        for (const c of Object.values((await docker.inspectNetwork(n.Id)).Containers ?? {}))
          if (c.IPv4Address) used.add(c.IPv4Address.split('/')[0]!);
      }
      return used;
    };
    let used: Set<string>;
    try {
      used = await Promise.race([
        inUse(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5_000).unref()),
      ]);
    } catch (err) {
      log.info(
        { err: (err as Error).message },
        'docker: could not ask the engine which addresses are in use; keeping every Docker address',
      );
      return;
    }
    const released: string[] = [];
    for (const [address, ident] of ipam.holdings()) {
      if (!ident.startsWith(DOCKER_IDENT_PREFIX) || ident.endsWith(':gateway')) continue;
      const addr = address.split('/')[0]!;
      if (!used.has(addr) && ipam.releaseAddress(addr)) released.push(addr);
    }
    log.debug({ used: [...used] }, 'docker: addresses in use by running containers');
    if (released.length > 0) {
      this.counters['orphans_released'] = (this.counters['orphans_released'] ?? 0) + released.length;
      log.info({ addr: released }, `docker: gave back ${released.length} address(es) no container uses (released while weft was down)`);
    }
  }

  private ensureNetworkSoon(delayMs: number): void {
    if (this.isStopped) return;
    this.retryTimer = setTimeout(() => {
      void this.ensureNetwork().then(
        () => undefined,
        (err: Error) => {
          this.isEngineReachable = this.isEngineReachable && !/cannot reach/.test(err.message);
          if (this.lastError !== err.message)
            this.deps.log.warn({ err: err.message }, 'docker: cannot make the weft network yet; retrying');
          this.lastError = err.message;
          const first = this.options.retryMs ?? 1000;
          this.ensureNetworkSoon(Math.min(Math.max(first, delayMs * 2), this.options.maxRetryMs ?? 10_000));
        },
      );
    }, delayMs);
    this.retryTimer.unref();
  }

  /** Make the `weft` network on the engine unless it exists. */
  private async ensureNetwork(): Promise<void> {
    const docker = this.deps.docker!;
    const v = await docker.version();
    this.isEngineReachable = true;
    this.engineVersion = v.Version;
    const name = this.options.networkName ?? 'weft';
    const driver = this.options.driverName ?? 'weft';
    const existing = (await docker.listNetworks()).find((n) => n.Name === name);
    if (existing) {
      if (existing.Driver !== driver)
        this.deps.log.warn(
          { network: name, driver: existing.Driver },
          `docker: a network named ${name} exists with driver ${existing.Driver}, not ${driver}; leaving it alone`,
        );
      this.lastError = undefined;
      return;
    }
    if (this.ipam === undefined) {
      this.lastError = "IPAM is off (--ipalloc-range ''): make weft networks yourself with docker network create -d weft --subnet CIDR";
      return;
    }
    const id = await docker.createNetwork(name, driver, this.options.defaultSubnet);
    this.lastError = undefined;
    this.deps.log.info({ network: name, id: id.slice(0, 12), subnet: this.options.defaultSubnet }, `docker: created network ${name}`);
  }
}

/** Which container has `endpointId` on network `networkId`, from the engine's view of the network. */
async function containerOf(docker: DockerApi, networkId: string, endpointId: string) {
  if (networkId === '') return undefined;
  const n = await docker.inspectNetwork(networkId);
  for (const [containerId, c] of Object.entries(n.Containers ?? {})) {
    if (c.EndpointID === endpointId) return { containerId, containerName: (c.Name ?? '').replace(/^\//, '') };
  }
  return undefined;
}

function prefixed(prefix: string, counters: Record<string, number> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(counters ?? {})) out[prefix + k] = v;
  return out;
}
