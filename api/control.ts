/**
 * What the HTTP API needs from a running daemon. `daemon/` implements it; `api/` serves it; `cli/` reads it over HTTP.
 * Every type here is plain JSON (it is the body of `GET /report`, i.e. `weft report`).
 */

export type ConnectionState = 'connecting' | 'pending' | 'established' | 'failed' | 'retrying';

/** One line of `weft status connections`. */
export interface ConnectionReport {
  /** '->' outbound (we dialled), '<-' inbound. */
  direction: '->' | '<-';
  /** Remote "host:port". */
  address: string;
  /** Remote peer name and nickname once the handshake told us. */
  peer?: string;
  nickname?: string;
  state: ConnectionState;
  /** Why it is in that state: "fastdp"/"sleeve", an error, "retry in 4s", ... */
  info: string;
  /** Whether the data and control traffic on this connection are encrypted. */
  isEncrypted: boolean;
  /** Seconds since the crypto session started, and how many rekeys it has done (encrypted connections). */
  sessionAgeSeconds?: number;
  rekeyCount?: number;
  /** The data cipher the two routers agreed on, e.g. 'AEGIS-256X2' (encrypted connections). */
  dataCipher?: string;
  /** True when the remote is in a trusted subnet: control encrypted, data in the clear (no `dataCipher` then). */
  isDataClear?: boolean;
  /** The identity public key the remote's hello showed (base64), when it has one. */
  identity?: string;
  /** What carries the frames to this peer: 'fastdp' (the kernel's VXLAN) or 'sleeve' (the router), and why. */
  carrier?: 'fastdp' | 'sleeve';
  carrierReason?: string;
}

/** One peer in the topology, as `weft status peers` shows it. */
export interface PeerReport {
  name: string;
  nickname: string;
  uid: string;
  version: number;
  connections: Array<{ name: string; nickname: string; address: string; isOutbound: boolean; isEstablished: boolean }>;
}

/** How this router's data reaches one remote peer, as `weft status peers` shows it under "Data paths". */
export interface PathReport {
  name: string;
  nickname: string;
  /**
   * 'direct': over our own control connection's data path; 'punched': a UDP path punched through NAT (no control
   * connection); 'relayed': through the neighbour `via`.
   */
  path: 'direct' | 'punched' | 'relayed';
  /** The peer's data endpoint "address:port" (direct and punched), as learned from its authenticated datagrams. */
  endpoint?: string;
  /** The neighbour relaying (relayed), name and nickname. */
  via?: string;
  viaNickname?: string;
  /** Why it is relayed (relayed), or how the punch is going. */
  reason?: string;
}

export interface TargetReport {
  address: string;
  /** 'connected', 'connecting', 'retrying' (with next attempt), 'failed'. */
  state: string;
  lastError?: string;
  nextAttemptInSeconds?: number;
}

export interface RouterReport {
  protocol: string;
  name: string;
  nickname: string;
  uid: string;
  encryption: boolean;
  /** The data plane's cipher and the code computing it, e.g. 'ChaCha20-Poly1305 (openssl)'; with encryption only. */
  dataCipher?: string;
  /** This router's identity public key (base64); with encryption only. */
  identity?: string;
  /** How many identities `--authorized-peers` accepts; absent when any router with the password may join. */
  authorizedPeers?: number;
  peerDiscovery: boolean;
  trustedSubnets: string[];
  httpAddr: string;
  listenAddr: string;
  targets: TargetReport[];
  connections: ConnectionReport[];
  peers: PeerReport[];
  /** How data reaches each reachable peer: direct, punched through NAT, or relayed (and why). */
  paths?: PathReport[];
  /** Control-plane event counters by reason (decode errors, refusals, timeouts, rate limiting). */
  counters?: Record<string, number>;
  /** Periodic gossip: rounds run, and messages sent in the last round. */
  gossip?: {
    rounds: number;
    lastRoundMessages: number;
    /** Per channel (`topology`, `ipam`, `dns`): frames and bytes in and out (relayed included), and merges. */
    channels?: Record<string, { messagesIn: number; bytesIn: number; messagesOut: number; bytesOut: number; merges: number }>;
  };
}

export interface DatapathReport {
  /** 'sleeve' | 'none' */
  mode: string;
  bridge?: string;
  /** How the router reaches the bridge: 'tap' or 'pcap' (`--capture`). */
  captureMode?: string;
  /** The interface it captures on. */
  capture?: string;
  /** What the capture takes from the kernel whole: e.g. ['checksum', 'TCP segmentation']; [] for none. */
  offloads?: string[];
  /** Microseconds a router polls for a reply after forwarding (0: off). */
  busyPollMicros?: number;
  mtuBytes?: number;
  udpPort?: number;
  counters: Record<string, number>;
  /**
   * The data path's view of each neighbour: `isEstablished` when heartbeats are answered both ways, the seconds
   * since a valid datagram from it came (absent before the first), the traffic with it since it became a neighbour
   * (UDP payload bytes and datagrams each way; drops by reason: in `source`, `auth`, `record`, out `seal`, `too_big`)
   * and the smoothed heartbeat round trip (absent before the first ack).
   */
  peers?: Array<{
    name: string;
    isEstablished: boolean;
    lastHeardSecondsAgo?: number;
    traffic?: {
      datagramsIn: number;
      bytesIn: number;
      datagramsOut: number;
      bytesOut: number;
      dropsIn: Record<string, number>;
      dropsOut: Record<string, number>;
    };
    rttSeconds?: number;
    pathMtuBytes?: number;
    isPathMtuConfirmed?: boolean;
    /** What carries this peer's frames: the kernel's VXLAN ('fastdp') or the router ('sleeve'), and why. */
    carrier?: 'fastdp' | 'sleeve';
    carrierReason?: string;
  }>;
  /** fastdp on this host: its UDP port, or why it is off. */
  fastdp?: { port?: number; off?: string };
}

export interface EndpointReport {
  /** The namespace or container the endpoint lives in, as given at attach. */
  target: string;
  interface: string;
  mac: string;
  addresses: string[];
  /** The container runtime's id for it (attached through CNI), or a Docker container's (`weft attach CONTAINER`); absent for `weft attach --netns/--pid`. */
  containerId?: string;
  /** The host end of its veth pair; in the answer to a new attach only. */
  hostInterface?: string;
  /**
   * The container's default route: for a runtime's container (`containerId`), the host's exposed address in the
   * container's subnet when there is one (`weft expose`). In the answer to a new attach only.
   */
  gateway?: string;
  /** For a Docker container attached by name (`weft attach CONTAINER`): its name (`containerId` is its full id). */
  containerName?: string;
}

export interface IpamReport {
  status: 'ready' | 'awaiting consensus' | 'idle' | 'off';
  range: string;
  defaultSubnet: string;
  peers: Array<{ name: string; nickname: string; addresses: number; share: number; isReachable: boolean }>;
  /** Addresses this peer holds for containers and the host. */
  allocated?: number;
  /** Addresses in the range this peer could hand out now without asking anyone. */
  free?: number;
  /** IPAM event counters by reason (refused claims, rate limiting, donations). */
  counters?: Record<string, number>;
}

/** `weft status`'s Docker block: the plugin socket, the engine, and what the drivers serve (plugin/docker-plugin.ts). */
export interface DockerReport {
  socket: string;
  /** The engine's API URL ('' when Docker integration is off). */
  engine: string;
  isEngineReachable: boolean;
  engineVersion?: string;
  lastError?: string;
  networks: Array<{ networkId: string; subnets: string[]; options: Record<string, string> }>;
  pools: Array<{ id: string; subnet: string; ipRange: string }>;
  endpoints: Array<{
    endpointId: string;
    networkId: string;
    hostIfname: string;
    mac: string;
    addresses: string[];
    isJoined: boolean;
    containerId?: string;
    containerName?: string;
  }>;
  counters: Record<string, number>;
}

/** The local API's own counters (api/request-guard.ts): requests served, and refused by reason. */
export interface ApiReport {
  /** "host:port" of the metrics listener; absent when it is off (--metrics-addr ''). */
  metricsAddr?: string;
  served: number;
  /** host, origin, fetch_site (a web page), content_type, method, not_found, too_large, bad_request. */
  refused: Record<string, number>;
}

/** The whole of `weft report`. */
export interface Report {
  version: string;
  router: RouterReport;
  datapath: DatapathReport;
  endpoints: EndpointReport[];
  ipam?: IpamReport;
  /** Present while the Docker plugin runs. */
  docker?: DockerReport;
  /** weftDNS (absent with --no-dns). */
  dns?: DnsStatusReport;
  api?: ApiReport;
}

/** weftDNS in `weft report` / `weft status dns`. */
export interface DnsStatusReport {
  domain: string;
  /** "host:port" weftDNS answers on; absent while it does not listen. */
  listen?: string;
  ttlSeconds: number;
  upstream: string[];
  /** Live records with the peer that owns each. */
  records: Array<{ name: string; address: string; owner: string; nickname: string; version: number }>;
  counters: Record<string, number>;
}

export interface AttachRequest {
  /** `ip netns` name, a path to a namespace file, a PID (`pid:1234`), or a Docker container (`docker:NAME|ID`). */
  target: string;
  /** Addresses in CIDR form (10.2.1.1/24), or IPAM requests: 'net:default', 'net:CIDR', 'ip:ADDR'. */
  addresses: string[];
  /** Keep this MAC (moving a container between hosts). */
  mac?: string;
  /** Interface name inside the namespace. @default 'ethwe0' */
  ifname?: string;
  /**
   * The container runtime's id (the CNI plugin sends CNI_CONTAINERID). With it, the addresses are held in IPAM for
   * `<containerId>/<ifname>`, `weft ps` shows the id, and the attach makes a new interface or fails
   * (ENDPOINT_EXISTS, HTTP 409) instead of re-using one. Detach it with `detachContainer`.
   */
  containerId?: string;
  /**
   * The container's DNS name as the runtime gave it (K8S_POD_NAME in CNI_ARGS), for weftDNS to register.
   * TODO(#13): hand it to weftDNS; today the daemon only logs it.
   */
  dnsName?: string;
  /** Register this name in weftDNS for the container's addresses (`weft attach --name`). */
  name?: string;
}

export interface WeftControl {
  report(): Report;
  connect(peers: string[], replace: boolean): void;
  forget(peers: string[]): void;
  attach(request: AttachRequest): Promise<EndpointReport>;
  detach(target: string): Promise<void>;
  /**
   * Detach what a container runtime attached for `containerId` with interface `ifname`, and give its addresses back
   * to IPAM, whether or not its namespace still exists. Answers whether an interface was removed (false when it was
   * gone already: detaching twice is fine).
   */
  detachContainer(containerId: string, ifname: string): Promise<boolean>;
  /** Give the host addresses on the bridge: CIDRs or IPAM requests like attach; none means `net:default`. */
  expose(cidrs: string[]): Promise<string[]>;
  /** Remove exposed addresses; none means every one. Answers what was removed. */
  hide(cidrs: string[]): Promise<string[]>;
  /** Stop the daemon (the API answers first, then the process exits). */
  stop(): Promise<void>;
  /** `weft prime`: resolve once IPAM has a ring (consensus reached), or reject after `timeoutMs`. */
  prime(timeoutMs: number): Promise<void>;
  /** `weft rmpeer NAME`: take over the address space of a peer gone for good; answers how many addresses moved. */
  rmpeer(name: string): Promise<number>;
  /** `weft reset`: hand this router's address space to a reachable peer, wipe IPAM state, then stop the daemon. */
  reset(): Promise<void>;
  /**
   * `weft reload`: re-read `--authorized-peers`; connections to routers no longer listed are closed. Answers the
   * number of keys now listed and the peers whose connections were closed.
   */
  reloadAuthorizedPeers(): { keys: number; closed: string[] };
  /** `weft dns-add ADDR... NAME`: register NAME -> ADDRs as this router's; answers the qualified name. */
  dnsAdd(name: string, addresses: string[]): string;
  /** `weft dns-remove [ADDR...] NAME`: withdraw this router's records of NAME; answers how many went. */
  dnsRemove(name: string, addresses: string[]): number;
  /** `weft dns-lookup NAME`: the live addresses of NAME. */
  dnsLookup(name: string): string[];
  /** `weft dns-args`: `--dns ADDR --dns-search DOMAIN` for docker run. */
  dnsArgs(): string;
}
