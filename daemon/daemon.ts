/**
 * The daemon: one validated config in, every part constructed and started in order, stopped in reverse.
 * Reads top to bottom like a wiring diagram:
 *
 *   store, identity -> datapath (bridge, TAP, UDP, sleeve) -> security (password) -> mesh (WebSocket control
 *   connections, gossip, routes) -> API server
 *
 * Between mesh and datapath the daemon is the only go-between: on every mesh change it builds a new forwarding
 * snapshot and applies it whole; on every datapath health change it tells the mesh whether that neighbour's UDP path
 * works (a connection is `established` only then).
 */
import { ConfigError, parseHttpAddr, readAuthorizedPeers, type WeftConfig } from '../config/launch.js';
import type { AttachRequest, DnsStatusReport, EndpointReport, PathReport, Report, WeftControl } from '../api/control.js';
import { createApiServer, type ApiServer } from '../api/server.js';
import { createMetricsServer, type MetricsServer } from '../api/metrics-server.js';
import { ApiCounters } from '../api/request-guard.js';
import { stateDirWarning } from '../runtime/file-modes.js';
import { weftVersion } from '../api/version.js';
import { Mesh } from '../gossip/mesh.js';
import type { GossipChannelReport, GossipReport } from '../gossip/report.js';
import { PROTOCOL_MAX_VERSION, PROTOCOL_MIN_VERSION } from '../gossip/handshake.js';
import { PasswordSecurity } from '../crypto/password-security.js';
import type { Logger } from '../runtime/logger.js';
import type { Clock } from '../runtime/clock.js';
import type { Store } from '../runtime/store.js';
import type { DaemonDatapath, DaemonDeps } from './daemon-deps.js';
import { identityOf, keyToText, loadOrCreateIdentity, type Identity } from '../crypto/identity.js';
import { loadOrCreatePeerName } from './identity.js';
import { SnapshotBuilder, withTrustedData, type NeighbourView } from './forwarding.js';
import { NatTraversal } from './nat-traversal.js';
import type { ObservedEndpoint } from './punch.js';
import { isPeerName, parsePeerName, peerIdToName, peerNameToId } from '../gossip/peer-name.js';
import { Allocator, type IpamInit } from '../ipam/allocator.js';
import { IpamExhaustedError } from '../ipam/errors.js';
import { reachableFrom } from '../gossip/topology.js';
import { decodeSavedTargets, SavedTargets } from './saved-targets.js';
import { socketHost } from './socket-host.js';
import { DEFAULT_ENDPOINT_IFNAME } from '../netdev/endpoint.js';

/** The state dir's file of saved connection targets. */
const TARGETS_KEY = 'targets';
import { WeftDns } from '../dns/weft-dns.js';
import {
  addDnsAddress,
  DNS_IDENT,
  dnsArgs,
  isNetnsName,
  removeDnsAddress,
  removeNetnsResolvConf,
  resolvConfText,
  writeNetnsResolvConf,
} from './dns-wiring.js';
import { DockerPlugin } from '../plugin/docker-plugin.js';
import type { DockerReport } from '../plugin/report.js';
import { DockerApi } from '../plugin/docker-api.js';
import type { EndpointEvent, EndpointVeths } from '../plugin/network-driver.js';
import { DockerContainers, DockerOffError } from '../plugin/docker-containers.js';
import { WeftError } from '../runtime/errors.js';

export class Daemon implements WeftControl {
  readonly peerName: string;
  readonly uid: string;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly store: Store;
  private security: PasswordSecurity | undefined;
  /** The data plane cipher and its implementation, for `weft status` (with a password only). */
  private dataCipher: string | undefined;
  private identity: Identity | undefined;
  /** How many keys the allow-list holds now (it can be reloaded). */
  private authorizedPeerCount: number | undefined;
  private mesh: Mesh | undefined;
  private datapath: DaemonDatapath | undefined;
  /** Endpoint learning and hole punching (with a data path only). */
  private nat: NatTraversal | undefined;
  private api: ApiServer | undefined;
  private metricsServer: MetricsServer | undefined;
  private readonly apiCounters = new ApiCounters();
  private ipam: Allocator | undefined;
  private dns: WeftDns | undefined;
  /** The bridge address weft put there for weftDNS (removed again at stop), if it picked one. */
  private dnsBridgeCidr: string | undefined;
  private readonly snapshots = new SnapshotBuilder();
  /** Targets the user gave (launch PEERs, `connect`, not `forget`), kept across restarts. */
  private targets = new SavedTargets();
  private isStopping = false;
  private stopped: Promise<void> | undefined;
  private readonly stopListeners: Array<() => void> = [];
  private docker: DockerPlugin | undefined;
  /** Containers attached by name (`weft attach CONTAINER`), followed through the engine's events. */
  private containers: DockerContainers | undefined;
  private readonly dockerEndpointListeners: Array<(event: EndpointEvent) => void> = [];

  constructor(
    readonly config: WeftConfig,
    private readonly deps: DaemonDeps,
  ) {
    this.log = deps.log;
    this.clock = deps.clock;
    this.store = deps.store;
    this.uid = deps.launchUid();
    this.peerName = loadOrCreatePeerName(this.store);
    // Docker containers (on a weft network, or attached by name) are named in weftDNS after their container name.
    this.onDockerEndpoint((event) => this.nameDockerContainer(event));
  }

  private nameDockerContainer(event: EndpointEvent): void {
    if (event.kind === 'left') {
      this.withdrawContainerName(event.containerId);
      return;
    }
    if (event.containerName.length === 0 || event.addresses.length === 0) return;
    try {
      this.registerContainerName(event.containerId, [event.containerName], event.addresses);
    } catch (err) {
      // Docker names may hold '_' or '.', which DNS names may not: the container works, it just has no name.
      this.log.warn(
        { container: event.containerId, reason: err instanceof Error ? err.message : String(err) },
        'docker container name not registered in weftDNS',
      );
    }
  }

  /** Start every part in order. On failure, what started is stopped again and the error is rethrown. */
  async start(): Promise<void> {
    const { config, log } = this;
    const looseStateDir = stateDirWarning(config.stateDir);
    if (looseStateDir !== undefined) log.warn({ file: config.stateDir }, looseStateDir);
    try {
      if (config.isDatapathEnabled) {
        this.datapath = await this.deps.datapath(config, {
          log: log.child({ component: 'datapath' }),
          clock: this.clock,
          localPeer: peerNameToId(this.peerName),
        });
        await this.datapath.start();
      }
      if (config.password !== undefined) {
        const { pickDataAeads, describeDataAeads } = await import('./data-aead.js');
        const native = config.isDatapathEnabled ? (await import('../native/addon.js')).loadNative() : undefined;
        const aeads = pickDataAeads(native, log);
        this.dataCipher = describeDataAeads(aeads);
        this.identity = loadOrCreateIdentity(config.identityFile);
        log.info(
          { identity: keyToText(this.identity.publicKey), file: config.identityFile },
          `identity ${keyToText(this.identity.publicKey)}`,
        );
        this.security = new PasswordSecurity(
          { clock: this.clock },
          {
            password: config.password,
            rekeyIntervalMs: config.rekeyIntervalMs,
            // Old receive keys stay valid this long after a rekey; a new rekey waits for the overlap to end, so a
            // short interval (tests) needs a short overlap too.
            overlapMs: Math.min(10_000, config.rekeyIntervalMs / 2),
            dataAead: aeads.chacha,
            ...(aeads.aegis256x2 && { aegis256x2: aeads.aegis256x2 }),
            identity: this.identity,
            ...(config.authorizedPeers !== undefined && { authorizedPeers: new Set(config.authorizedPeers) }),
          },
        );
        this.authorizedPeerCount = config.authorizedPeers?.length;
      }
      this.mesh = new Mesh(
        {
          transport: this.deps.transport,
          clock: this.clock,
          random: this.deps.random,
          log: log.child({ component: 'mesh' }),
          ...(this.security && { security: this.security }),
          // Gossip never makes this router dial its own addresses (listener, API, metrics): dial-policy.ts.
          localHosts: this.deps.localHosts,
        },
        {
          peerName: this.peerName,
          nickname: config.nickname,
          uid: this.uid,
          listenAddr: joinHostPort(socketHost(config.listenAddr), config.port),
          udpPort: config.port,
          isDiscoveryEnabled: config.isDiscoveryEnabled,
          requireDataPathConfirm: this.datapath !== undefined,
        },
      );
      if (config.ipallocRange !== undefined) {
        this.ipam = new Allocator(
          { clock: this.clock, random: this.deps.random, log: log.child({ component: 'ipam' }), store: this.store },
          {
            ourName: this.peerName,
            ourNickname: config.nickname,
            range: config.ipallocRange,
            ...(config.ipallocDefaultSubnet !== undefined && { defaultSubnet: config.ipallocDefaultSubnet }),
            init: ipamInit(config),
          },
        );
        this.ipam.attach(this.mesh.channel('ipam', this.ipam));
      }
      if (config.dns.isEnabled) {
        this.dns = new WeftDns(
          { clock: this.clock, log: log.child({ component: 'dns' }), store: this.store },
          {
            ourName: this.peerName,
            domain: config.dns.domain,
            ttlSeconds: config.dns.ttlSeconds,
            resolvConf: config.dns.resolvConf,
            reverseRanges: config.ipallocRange !== undefined ? [config.ipallocRange] : [],
          },
        );
        this.dns.attach(this.mesh.channel('dns', this.dns.nameserver));
      }
      if (this.datapath) {
        this.nat = new NatTraversal(
          this.peerName,
          {
            clock: this.clock,
            log: log.child({ component: 'nat' }),
            security: this.security,
            relayedPeers: () => this.relayedPeers(),
            // Gossip never makes this router punch (send heartbeats) at its own addresses either.
            localHosts: this.deps.localHosts,
            neighbourEndpoints: () => this.neighbourEndpoints(),
            onPathsChange: () => {
              this.applyForwarding();
              this.syncDataPathStates();
            },
          },
          { isPunchingEnabled: config.isDiscoveryEnabled && config.authorizedPeers === undefined },
        );
        this.nat.attach(this.mesh.channel('nat', this.nat));
      }
      this.mesh.onChange(() => {
        this.applyForwarding();
        this.ipam?.setReachablePeers(this.reachablePeers());
      });
      this.datapath?.onHealthChange((peer, health) => {
        const name = peerIdToName(peer);
        // A punched path (no control connection) decides only where unicast frames go. A peer that is also a mesh
        // neighbour is not: its data path is the connection's, and the punch is dropped at the next NAT step (a punch
        // begun while the peer was relayed can still be probing when the direct connection comes up).
        if (this.nat?.isPunch(name) && !this.isMeshNeighbour(name)) {
          this.nat.onHealth(name, health.isEstablished);
          return;
        }
        this.mesh?.setDataPathEstablished(name, health.isEstablished);
        // A data path that answers is a sign of life: if the control connection is down, dial it now.
        if (health.isEstablished) this.mesh?.peerSeen(name);
      });
      // IPAM loads its persisted ring before the mesh can deliver anyone else's.
      this.ipam?.start();
      await this.startDns();
      await this.mesh.start();
      this.targets = this.loadSavedTargets();
      this.mesh.connect(this.targets.list(), false);
      this.nat?.start();
      await this.startDocker();
      if (this.deps.isServing)
        this.api = await createApiServer(this, log.child({ component: 'api' }), config.httpAddr, { counters: this.apiCounters });
      if (this.deps.isServing && config.metricsAddr !== undefined) {
        this.metricsServer = await createMetricsServer(
          () => this.report(),
          log.child({ component: 'metrics' }),
          parseHttpAddr(config.metricsAddr, '--metrics-addr'),
        );
      }
      log.info({ peer: this.peerName, nickname: config.nickname, uid: this.uid, addr: config.httpAddr }, 'weft started');
    } catch (err) {
      await this.shutdown();
      throw err;
    }
  }

  /** Resolves when the daemon has stopped (via the API's /stop, or `stop()`). */
  whenStopped(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopped) void this.stopped.then(resolve);
      else this.stopListeners.push(resolve);
    });
  }

  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = this.shutdown();
      await this.stopped;
      for (const l of this.stopListeners.splice(0)) l();
    }
    return this.stopped;
  }

  /** Stop in reverse order; every step tolerates a part that never started. */
  private async shutdown(): Promise<void> {
    this.isStopping = true;
    const steps: Array<[string, () => Promise<void> | void]> = [
      ['metrics', async () => this.metricsServer?.close()],
      ['api', async () => this.api?.close()],
      // Peers first: they see "router stopping" now, not after the slower local steps (dns spawns `ip`).
      ['nat', () => this.nat?.stop()],
      ['mesh', async () => this.mesh?.stop()],
      ['dns', async () => this.stopDns()],
      ['docker', async () => this.docker?.stop()],
      ['containers', () => this.containers?.stop()],
      ['ipam', () => this.ipam?.stop()],
      ['security', () => this.security?.destroy()],
      ['datapath', async () => this.datapath?.stop()],
    ];
    for (const [what, step] of steps) {
      const startedAt = Date.now();
      try {
        await step();
      } catch (err) {
        this.log.warn({ err, reason: what }, 'error while stopping');
      }
      this.log.debug({ reason: what, ms: Date.now() - startedAt }, `stopped ${what}`);
    }
    this.log.info({ peer: this.peerName }, 'weft stopped');
  }

  /**
   * The Docker plugin (network and IPAM driver on `--plugin-socket`) and the `weft` network on `--docker-api`'s
   * engine. Needs the data path (it makes veths on our bridge). A default socket someone else serves (another weft
   * in another network namespace) is a warning; an explicit one is an error.
   */
  private async startDocker(): Promise<void> {
    const { config, log } = this;
    if (!this.datapath) return;
    const datapath = this.datapath;
    if (config.dockerApi !== undefined) {
      this.containers = new DockerContainers({
        docker: new DockerApi(config.dockerApi),
        store: this.store,
        log: log.child({ component: 'docker' }),
        attach: async (target, ident, requested) => (await this.attachAs(target, ident, { target, addresses: requested })).resolved,
        detach: async (target) => {
          await datapath.detach(target).catch((err: unknown) => log.debug({ err, target }, 'docker: detach of a container that is gone'));
        },
        release: (ident) => {
          this.ipam?.release(ident);
        },
        // Containers attached by name reach weftDNS's hook too (no Docker network or endpoint: those ids are '').
        onChange: (kind, c) => {
          const event: EndpointEvent = {
            kind,
            networkId: '',
            endpointId: '',
            containerId: c.id,
            containerName: c.name,
            addresses: [...c.addresses],
          };
          for (const l of this.dockerEndpointListeners) l(event);
        },
      });
      this.containers.start();
    }
    if (config.pluginSocket === undefined) return;
    const { createDockerVeth, deleteDockerVeth, listDockerVeths, dockerVethNames } = await import('../netdev/docker-veth.js');
    const veths: EndpointVeths = {
      create: (endpointId, mac) =>
        createDockerVeth({
          endpointId,
          bridge: config.bridge,
          mtuBytes: datapath.overlayMtuBytes,
          isTxOffloadKept: (datapath.report().offloads?.length ?? 0) > 0,
          ...(mac !== undefined && { mac }),
        }),
      remove: deleteDockerVeth,
      list: listDockerVeths,
      names: dockerVethNames,
    };
    const plugin = new DockerPlugin(
      {
        log: log.child({ component: 'docker' }),
        store: this.store,
        veths,
        ipam: this.ipam,
        docker: config.dockerApi === undefined ? undefined : new DockerApi(config.dockerApi),
      },
      { socketPath: config.pluginSocket, range: config.ipallocRange, defaultSubnet: config.ipallocDefaultSubnet },
    );
    plugin.onEndpoint((event) => {
      for (const l of this.dockerEndpointListeners) l(event);
    });
    try {
      await plugin.start();
    } catch (err) {
      await plugin.stop();
      if (config.isPluginSocketExplicit) throw err;
      log.warn({ err: (err as Error).message }, 'docker plugin not started; run with --plugin-socket PATH to serve it elsewhere');
      return;
    }
    this.docker = plugin;
  }

  /**
   * Hear Docker containers join and leave weft networks, and containers attached by name (`weft attach CONTAINER`,
   * with networkId and endpointId ''), with their id, name and addresses (after the fact). The hook for weftDNS:
   * register `containerName` on 'joined', remove it on 'left'. A throwing listener is the caller's bug.
   */
  onDockerEndpoint(listener: (event: EndpointEvent) => void): void {
    this.dockerEndpointListeners.push(listener);
  }

  /** `weft status`'s Docker block, when the plugin runs. */
  dockerReport(): DockerReport | undefined {
    return this.docker?.report();
  }

  /** Build a forwarding snapshot from the mesh's routes and neighbours and hand it to the datapath. */
  private applyForwarding(): void {
    if (!this.datapath || !this.mesh || this.isStopping) return;
    const routes = this.mesh.routes();
    const meshNeighbours = this.mesh.neighbours();
    const neighbours: NeighbourView[] = meshNeighbours.map((n) => ({
      name: n.name,
      remoteHost: n.remoteHost,
      udpPort: n.udpPort,
      data: n.session?.data ?? null,
      graceData: n.graceSession?.data ?? null,
    }));
    let unicast = routes.unicast;
    const punched = (this.nat?.paths() ?? []).filter((p) => !meshNeighbours.some((n) => n.name === p.peer));
    if (punched.length > 0) {
      // Probed paths are neighbours (their heartbeats are the probes); punched ones carry the peer's unicast frames.
      const overridden = new Map(routes.unicast);
      for (const p of punched) {
        neighbours.push({ name: p.peer, remoteHost: p.endpoint.address, udpPort: p.endpoint.port, data: p.session, isPunched: true });
        if (p.isPunched && overridden.has(p.peer)) overridden.set(p.peer, p.peer);
      }
      unicast = overridden;
    }
    const snapshot = this.snapshots.build({
      localName: this.peerName,
      unicast,
      broadcast: routes.broadcast,
      neighbours,
      trustedSubnets: this.config.trustedSubnets,
      underlayMtuBytes: this.datapath.underlayMtuBytes,
    });
    this.datapath.apply(snapshot);
  }

  report(): Report {
    const mesh = this.mesh?.status() ?? { targets: [], connections: [], peers: [] };
    return {
      version: weftVersion(),
      router: {
        protocol: `weft ${PROTOCOL_MIN_VERSION}..${PROTOCOL_MAX_VERSION}`,
        name: this.peerName,
        nickname: this.config.nickname,
        uid: this.uid,
        encryption: this.config.password !== undefined,
        ...(this.dataCipher !== undefined && { dataCipher: this.dataCipher }),
        ...(this.identity !== undefined && { identity: keyToText(this.identity.publicKey) }),
        ...(this.authorizedPeerCount !== undefined && { authorizedPeers: this.authorizedPeerCount }),
        peerDiscovery: this.config.isDiscoveryEnabled,
        trustedSubnets: [...this.config.trustedSubnets],
        httpAddr: this.config.httpAddr,
        listenAddr: joinHostPort(this.config.listenAddr, this.config.port),
        targets: mesh.targets,
        connections: this.withCarriers(mesh.connections.map((c) => withTrustedData(c, this.config.trustedSubnets))),
        peers: mesh.peers,
        ...(this.nat && { paths: this.pathReports() }),
        counters: { ...(this.mesh?.counters() ?? {}), ...(this.nat?.counters ?? {}) },
        ...(this.mesh && { gossip: gossipReport(this.mesh.gossipStats()) }),
      },
      datapath: this.datapath?.report() ?? { mode: 'none', counters: {} },
      endpoints: (this.datapath?.cachedEndpoints() ?? []).map((e) => {
        const c = this.containers?.byTarget(e.target);
        return c ? { ...e, containerId: c.id, containerName: c.name } : e;
      }),
      ...(this.ipam && { ipam: this.ipamReport(this.ipam) }),
      ...(this.dns && { dns: this.dnsReport(this.dns) }),
      ...(this.docker && { docker: this.docker.report() }),
      api: { ...(this.metricsServer && { metricsAddr: this.metricsServer.metricsAddr }), ...this.apiCounters.snapshot() },
    };
  }

  /** Peers the mesh reaches only through a relay now (not our neighbours over an established connection). */
  private isMeshNeighbour(name: string): boolean {
    return this.mesh?.neighbours().some((n) => n.name === name) ?? false;
  }

  /**
   * Tell the mesh the data-path state of every neighbour as the data plane has it now. Health events come only on a
   * change; one that went to a punch (the peer was relayed then) must still reach the mesh once the peer is a neighbour.
   */
  private syncDataPathStates(): void {
    if (!this.datapath || !this.mesh) return;
    const neighbours = new Set(this.mesh.neighbours().map((n) => n.name));
    for (const [peer, h] of this.datapath.peerHealth()) {
      const name = peerIdToName(peer);
      if (neighbours.has(name)) this.mesh.setDataPathEstablished(name, h.isEstablished);
    }
  }

  private relayedPeers(): Set<string> {
    const out = new Set<string>();
    if (!this.mesh) return out;
    const neighbours = new Set(this.mesh.neighbours().map((n) => n.name));
    for (const [dst, via] of this.mesh.routes().unicast) if (dst !== via && dst !== this.peerName && !neighbours.has(dst)) out.add(dst);
    return out;
  }

  /** Each mesh neighbour's data endpoint as the data path knows it now (learned from its authenticated datagrams). */
  private neighbourEndpoints(): Map<string, ObservedEndpoint> {
    const out = new Map<string, ObservedEndpoint>();
    if (!this.datapath || !this.mesh) return out;
    const neighbours = new Set(
      this.mesh
        .neighbours()
        .filter((n) => n.isEstablished)
        .map((n) => n.name),
    );
    for (const [peer, h] of this.datapath.peerHealth()) {
      const name = peerIdToName(peer);
      if (h.endpoint !== undefined && h.lastHeardMs >= 0 && neighbours.has(name))
        out.set(name, { address: h.endpoint.address, port: h.endpoint.port });
    }
    return out;
  }

  /** `weft status peers`'s data paths: direct, punched or relayed (through whom, and why). */
  private pathReports(): PathReport[] {
    if (!this.mesh || !this.nat) return [];
    const nicknames = new Map<string, string>();
    for (const [name, entry] of this.mesh.peers()) nicknames.set(name, entry.nickname);
    const health = new Map<string, string>();
    for (const [peer, h] of this.datapath?.peerHealth() ?? []) {
      if (h.endpoint !== undefined) health.set(peerIdToName(peer), `${h.endpoint.address}:${h.endpoint.port}`);
    }
    const now = this.clock.now();
    const out: PathReport[] = [];
    for (const [dst, via] of this.mesh.routes().unicast) {
      if (dst === this.peerName) continue;
      const nickname = nicknames.get(dst) ?? '';
      const endpoint = health.get(dst);
      const punch = this.nat.punches.punch(dst);
      if (dst === via) out.push({ name: dst, nickname, path: 'direct', ...(endpoint !== undefined && { endpoint }) });
      else if (punch?.phase === 'punched') out.push({ name: dst, nickname, path: 'punched', ...(endpoint !== undefined && { endpoint }) });
      else {
        out.push({
          name: dst,
          nickname,
          path: 'relayed',
          via,
          viaNickname: nicknames.get(via) ?? '',
          reason: this.nat.relayReason(dst, now),
        });
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Established connections say what carries their peer's frames (fastdp or sleeve) and why. */
  private withCarriers<C extends { peer?: string; state: string }>(connections: C[]): C[] {
    const carriers = this.datapath?.carriers();
    if (!carriers || carriers.size === 0) return connections;
    return connections.map((c) => {
      const k = c.peer !== undefined && c.state === 'established' ? carriers.get(c.peer) : undefined;
      return k ? { ...c, carrier: k.carrier, carrierReason: k.reason } : c;
    });
  }

  private reachablePeers(): Set<string> {
    return this.mesh ? reachableFrom(this.mesh.peers(), this.peerName) : new Set();
  }

  private ipamReport(ipam: Allocator) {
    const nicknames = new Map<string, string>();
    for (const [name, entry] of this.mesh?.peers() ?? []) nicknames.set(name, entry.nickname);
    return ipam.status(this.reachablePeers(), nicknames);
  }

  connect(peers: string[], replace: boolean): void {
    this.mesh?.connect(peers, replace);
    this.targets.connect(peers, replace);
    this.saveTargets();
  }

  forget(peers: string[]): void {
    this.mesh?.forget(peers);
    this.targets.forget(peers);
    this.saveTargets();
  }

  /** The launch PEERs plus what `weft connect` added before a restart (minus what `forget` removed). */
  private loadSavedTargets(): SavedTargets {
    // A bare host means the default control port, as the mesh reads it (gossip/mesh.ts normalizeAddress).
    const targets = new SavedTargets(this.config.peers);
    const saved = this.store.read(TARGETS_KEY);
    if (saved === undefined) return targets;
    try {
      targets.connect(decodeSavedTargets(saved.toString('utf8')), false);
    } catch (err) {
      this.log.warn(
        { err },
        `ignoring the saved targets in ${this.config.stateDir}/${TARGETS_KEY}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    return targets;
  }

  private saveTargets(): void {
    try {
      this.store.write(TARGETS_KEY, this.targets.encode());
    } catch (err) {
      this.log.warn({ err }, `could not save the connection targets: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async attach(request: AttachRequest): Promise<EndpointReport> {
    if (request.target.startsWith(DOCKER_TARGET_PREFIX)) {
      // `weft attach CONTAINER`: found through the engine, remembered, followed through restarts.
      const name = request.target.slice(DOCKER_TARGET_PREFIX.length);
      this.requireDatapath();
      if (!this.containers) throw new DockerOffError(name);
      const c = await this.containers.attach(name, request.addresses);
      return {
        target: c.target,
        interface: request.ifname ?? 'ethwe0',
        mac: '',
        addresses: c.addresses,
        containerId: c.id,
        containerName: c.name,
      };
    }
    return (await this.attachAs(request.target, ipamIdent(request), request)).endpoint;
  }

  /** Attach `target` with IPAM addresses held under `ident` (the target, a runtime's container id and interface, or a Docker container's id). */
  private async attachAs(target: string, ident: string, request: AttachRequest): Promise<{ endpoint: EndpointReport; resolved: string[] }> {
    const datapath = this.requireDatapath();
    const heldBefore = new Set(this.ipam?.addressesOf(ident) ?? []);
    const addresses = await this.resolveAddresses(ident, request.addresses);
    try {
      const endpoint = await datapath.attach({ ...request, target, addresses });
      await this.wireDns(request, endpoint.addresses);
      if (request.containerId !== undefined) {
        if (request.dnsName !== undefined) this.registerContainerName(request.containerId, [request.dnsName], endpoint.addresses);
        this.log.info(
          { container: request.containerId, ifname: endpoint.interface, addr: endpoint.addresses, dnsName: request.dnsName },
          'container attached',
        );
      }
      return { endpoint, resolved: addresses };
    } catch (err) {
      // The attach failed: give back what IPAM handed out in this call, and only that (a re-attach of a running
      // container keeps the addresses it already uses).
      for (const a of this.ipam?.addressesOf(ident) ?? []) if (!heldBefore.has(a)) this.ipam!.releaseAddress(a);
      throw err;
    }
  }

  async detachContainer(containerId: string, ifname: string): Promise<boolean> {
    const isRemoved = await this.requireDatapath().detachContainer(containerId, ifname);
    // Released even when the interface was gone already (its namespace died first): DEL must free the address.
    const released = this.ipam?.release(containerIdent(containerId, ifname)) ?? 0;
    this.withdrawContainerName(containerId);
    if (isRemoved || released > 0) this.log.info({ container: containerId, ifname, released }, 'container detached');
    return isRemoved;
  }

  /**
   * Turn an attach's address list into CIDRs: plain CIDRs pass through; `net:default`, `net:CIDR` and `ip:ADDR` are
   * IPAM requests (refused with what to type instead while IPAM is off).
   */
  private async resolveAddresses(target: string, requested: readonly string[]): Promise<string[]> {
    const out: string[] = [];
    for (const a of requested) {
      const ipam = this.ipam;
      if (a.startsWith('net:')) {
        if (!ipam) throw new IpamOffError(a, target);
        const subnet = a.slice(4);
        out.push(await ipam.allocate(target, subnet === 'default' ? undefined : subnet));
      } else if (a.startsWith('ip:')) {
        if (!ipam) throw new IpamOffError(a, target);
        out.push(await ipam.claim(target, a.slice(3)));
      } else {
        // An explicit CIDR: claimed in IPAM when it lies inside the range, so nobody else is given it (claim
        // returns addresses outside the range unchanged). IPAM is IPv4 only: IPv6 CIDRs (with a ':') pass through.
        out.push(ipam && !a.includes(':') ? await ipam.claim(target, a) : a);
      }
    }
    return out;
  }

  async prime(timeoutMs: number): Promise<void> {
    if (!this.ipam) throw new IpamOffError('prime', 'this router');
    await this.ipam.prime(timeoutMs);
  }

  async rmpeer(name: string): Promise<number> {
    if (!this.ipam) {
      if (!this.dns) throw new IpamOffError(`rmpeer ${name}`, 'this router');
      const peer = parsePeerName(name);
      this.dns.nameserver.removePeer(peer, this.reachablePeers().has(peer));
      return 0;
    }
    const moved = await this.ipam.rmpeer(name);
    // IPAM has checked the name and that the peer is gone; its records go with it.
    if (this.dns && isPeerName(name)) this.dns.nameserver.removePeer(parsePeerName(name), false);
    return moved;
  }

  async reset(): Promise<void> {
    await this.ipam?.reset();
  }

  async detach(target: string): Promise<void> {
    if (target.startsWith(DOCKER_TARGET_PREFIX)) {
      const name = target.slice(DOCKER_TARGET_PREFIX.length);
      this.requireDatapath();
      if (!this.containers) throw new DockerOffError(name);
      await this.containers.detach(name);
      return;
    }
    await this.requireDatapath().detach(target);
    this.ipam?.release(target);
    this.dns?.withdraw(`attach:${target}`);
    if (this.dns) removeNetnsResolvConf(target);
  }

  async expose(requested: string[]): Promise<string[]> {
    const datapath = this.requireDatapath();
    const cidrs = await this.resolveAddresses(EXPOSE_IDENT, requested.length > 0 ? requested : ['net:default']);
    return datapath.expose(cidrs);
  }

  /**
   * `weft reload` and SIGHUP: re-read the `--authorized-peers` file. Handshakes from now on use the new list, and
   * connections to routers no longer in it are closed (they see "unauthorized peer"; reconnecting is refused).
   * Throws `ConfigError` when there is no such file or it does not parse (the old list stays).
   */
  reloadAuthorizedPeers(): { keys: number; closed: string[] } {
    const file = this.config.authorizedPeersFile;
    if (file === undefined || this.security === undefined) {
      throw new ConfigError('this router was launched without --authorized-peers: there is no list to reload');
    }
    let keys: Set<string>;
    try {
      keys = readAuthorizedPeers(file, '--authorized-peers');
    } catch (err) {
      throw new ConfigError(`${(err as Error).message}; the list in use stays as it was`);
    }
    this.security.setAuthorizedPeers(keys);
    this.authorizedPeerCount = keys.size;
    const isListed = (features: readonly string[]) => {
      const key = identityOf(features);
      return key !== null && key !== undefined && keys.has(keyToText(key));
    };
    const closed = this.mesh?.closeConnectionsWhere(isListed, 'unauthorized peer', 'ERR_UNAUTHORIZED_PEER') ?? [];
    this.log.info(
      { file, keys: keys.size, closed },
      `reloaded ${file}: ${keys.size} authorized peers; closed ${closed.length} connection(s)`,
    );
    return { keys: keys.size, closed };
  }

  async hide(cidrs: string[]): Promise<string[]> {
    const datapath = this.requireDatapath();
    // With no CIDR given, the address weft put on the bridge for weftDNS stays (containers use it as resolver).
    const hidden = await datapath.hide(cidrs.length > 0 ? cidrs : (await datapath.exposed()).filter((c) => c !== this.dnsBridgeCidr));
    for (const c of hidden) this.ipam?.releaseAddress(c.split('/')[0]!);
    return hidden;
  }

  // ---- weftDNS ------------------------------------------------------------------------------------------------------

  /**
   * Start weftDNS: publish our records (withdrawing those of containers no longer attached), then listen. An
   * explicit --dns-listen-address must bind, or the launch fails; the default address (daemon/dns-wiring.ts) may
   * need IPAM, so it is found in the background and a failure there is logged, not fatal.
   */
  private async startDns(): Promise<void> {
    const dns = this.dns;
    if (!dns) return;
    await dns.start();
    if (this.datapath) {
      const attached = new Set(
        this.datapath
          .cachedEndpoints()
          .filter((e) => e.mac !== '')
          .map((e) => `attach:${e.target}`),
      );
      dns.nameserver.reconcile((source) => !source.startsWith('attach:') || attached.has(source));
    }
    const { listenHost, listenPort } = this.config.dns;
    if (listenHost !== undefined) {
      await dns.listen(listenHost, listenPort);
      return;
    }
    void this.listenOnBridge(dns).catch((err: unknown) => {
      if (!this.isStopping) this.log.warn({ err }, `weftDNS is not listening: ${(err as Error).message}; give --dns-listen-address`);
    });
  }

  /** Listen on an address IPAM gives this router, put on the weft bridge as a /32 (daemon/dns-wiring.ts). */
  private async listenOnBridge(dns: WeftDns): Promise<void> {
    if (!this.datapath) throw new Error('no weft bridge (--no-datapath)');
    if (!this.ipam || this.config.ipallocRange === undefined) throw new Error('IPAM is off, so weft cannot pick an address on the bridge');
    const address = (await this.allocateRetrying(DNS_IDENT, 'weftDNS')).split('/')[0]!;
    if (this.isStopping) return;
    await addDnsAddress(this.config.bridge, address, this.config.ipallocRange);
    this.dnsBridgeCidr = `${address}/32`;
    if (this.isStopping) return;
    await dns.listen(address, this.config.dns.listenPort);
  }

  /**
   * IPAM's address for `ident`, asked again every 2 s while the space is held by peers we cannot reach yet (a router
   * that just joined learns the topology a moment after the ring): logged once at warn. Throws anything else.
   */
  private async allocateRetrying(ident: string, what: string): Promise<string> {
    for (let isLogged = false; ;) {
      try {
        return await this.ipam!.allocate(ident);
      } catch (err) {
        if (!(err instanceof IpamExhaustedError) || this.isStopping) throw err;
        if (!isLogged) this.log.warn({ err: err.message }, `${what} has no address yet: ${err.message}; asking again every 2 s`);
        isLogged = true;
      }
      await new Promise<void>((r) => this.clock.setTimeout(r, 2000));
      if (this.isStopping) throw new Error('router stopping');
    }
  }

  private async stopDns(): Promise<void> {
    await this.dns?.stop();
    // The address weft put on the bridge for weftDNS goes (IPAM keeps it for the next start: same ident).
    if (this.dnsBridgeCidr !== undefined) await removeDnsAddress(this.config.bridge, this.dnsBridgeCidr.split('/')[0]!);
  }

  /** After an attach: register `request.name` and give a named namespace weftDNS as its resolver. */
  private async wireDns(request: AttachRequest, addresses: readonly string[]): Promise<void> {
    const dns = this.dns;
    if (!dns) return;
    const source = `attach:${request.target}`;
    if (request.name !== undefined) dns.register(request.name, addresses, source);
    if (!isNetnsName(request.target)) return;
    // weftDNS listens once IPAM has given it an address, which needs IPAM consensus: an attach never waits for that
    // (a router that cannot reach its consensus peers would hang every attach); the resolver configuration is
    // written as soon as weftDNS listens, if the container is still attached then.
    const target = request.target;
    const write = (isLater: boolean): void => {
      const host = dns.listenHost;
      if (host === undefined || this.isStopping) return;
      if (isLater && !(this.datapath?.cachedEndpoints() ?? []).some((e) => e.target === target)) return;
      try {
        writeNetnsResolvConf(target, resolvConfText(host, dns.nameserver.domain));
      } catch (err) {
        this.log.warn({ target, err }, 'could not write the resolver configuration for weftDNS');
      }
    };
    if ((await dns.whenListening(2_000)) !== undefined) return write(false);
    this.log.info({ target }, 'weftDNS is not listening yet: the resolver configuration is written once it is');
    void dns.whenListening(10 * 60_000).then(() => write(true));
  }

  /**
   * For the Docker plugin and CNI: register `names` (container name, hostname) -> `addresses` as this router's, on
   * behalf of `containerId`; `withdrawContainerName` takes them all back. No-ops (and []) with --no-dns.
   */
  registerContainerName(containerId: string, names: readonly string[], addresses: readonly string[]): string[] {
    const dns = this.dns;
    if (!dns) return [];
    return [...new Set(names)].map((n) => dns.register(n, addresses, `container:${containerId}`));
  }

  withdrawContainerName(containerId: string): number {
    return this.dns?.withdraw(`container:${containerId}`) ?? 0;
  }

  /** `weft dns-add ADDR... NAME`. */
  dnsAdd(name: string, addresses: string[]): string {
    return this.requireDns().register(name, addresses, 'manual');
  }

  /** `weft dns-remove [ADDR...] NAME`: how many records were withdrawn. */
  dnsRemove(name: string, addresses: string[]): number {
    return this.requireDns().remove(name, addresses);
  }

  /** `weft dns-lookup NAME`. */
  dnsLookup(name: string): string[] {
    return this.requireDns().lookup(name);
  }

  /** `weft dns-args`: the `docker run` flags, once weftDNS listens. */
  dnsArgs(): string {
    const dns = this.requireDns();
    const host = dns.listenHost;
    if (host === undefined)
      throw new DnsOffError('weftDNS is not listening yet (it waits for IPAM: weft prime), or could not: see weft status dns');
    return dnsArgs(host, dns.nameserver.domain);
  }

  private dnsReport(dns: WeftDns): DnsStatusReport {
    const r = dns.report();
    const nicknames = new Map<string, string>([[this.peerName, this.config.nickname]]);
    for (const [name, entry] of this.mesh?.peers() ?? []) nicknames.set(name, entry.nickname);
    return { ...r, records: r.records.map((x) => ({ ...x, nickname: nicknames.get(x.owner) ?? '' })) };
  }

  private requireDns(): WeftDns {
    if (!this.dns) throw new DnsOffError('weftDNS is off on this router (--no-dns): relaunch it without that flag');
    return this.dns;
  }

  private requireDatapath(): DaemonDatapath {
    if (!this.datapath) throw new DatapathDisabledError();
    return this.datapath;
  }
}

/**
 * Who holds an attach's addresses in IPAM: the target for `weft attach`; for a runtime's container the container id
 * and interface, since CNI identifies an attachment by both (one container may be on several networks).
 */
function ipamIdent(request: AttachRequest): string {
  return request.containerId === undefined
    ? request.target
    : containerIdent(request.containerId, request.ifname ?? DEFAULT_ENDPOINT_IFNAME);
}

function containerIdent(containerId: string, ifname: string): string {
  return `${containerId}/${ifname}`;
}
/** Attach and detach targets naming a Docker container (`weft attach CONTAINER` sends `docker:CONTAINER`). */
const DOCKER_TARGET_PREFIX = 'docker:';

export class DnsOffError extends WeftError {
  readonly code = 'ERR_DNS_OFF';
  override readonly status = 409;
}

/** The IPAM identity of the host's own addresses (`weft expose`). */
const EXPOSE_IDENT = 'weft:expose';

export class DatapathDisabledError extends WeftError {
  readonly code = 'ERR_NO_DATAPATH';
  override readonly status = 409;
  constructor() {
    super('this router runs without a data path (--no-datapath): relaunch it without that flag to attach containers');
  }
}

export class IpamOffError extends WeftError {
  readonly code = 'ERR_IPAM_OFF';
  override readonly status = 409;
  constructor(request: string, target: string) {
    super(
      `cannot do ${request} for ${target}: IPAM is off on this router (--ipalloc-range ''); give addresses explicitly, e.g. weft attach --netns NS 10.2.1.5/24`,
    );
  }
}

/** The config's --ipalloc-init in the allocator's terms. */
function ipamInit(config: WeftConfig): IpamInit {
  const init = config.ipallocInit;
  if (init.mode === 'seed') return { mode: 'seed', peers: [...init.seeds] };
  if (init.mode === 'observer') return { mode: 'observer' };
  return { mode: 'consensus', quorum: init.quorum };
}

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Gossip counters as the report carries them: a copy, so a report does not change under its reader. */
function gossipReport(s: Readonly<GossipReport>): GossipReport {
  const channels: Record<string, GossipChannelReport> = {};
  for (const [name, c] of Object.entries(s.channels)) channels[name] = { ...c };
  return { rounds: s.rounds, lastRoundMessages: s.lastRoundMessages, channels };
}
