/**
 * What the HTTP API needs from a running daemon. `daemon/` implements it; `api/` serves it; `cli/` reads it over HTTP.
 * Every type here is plain JSON (it is the body of `GET /report`, i.e. `weft report`).
 *
 * The report is composed here, not declared: each part comes from the `report.ts` of the folder that fills it, where
 * it is declared once: the mesh's (gossip/), IPAM's (ipam/), the data plane's (router/), attached endpoints (netdev/),
 * weftDNS's (dns/) and the Docker plugin's (plugin/). Those files are type-only and import nothing, so this file (and
 * the CLI and CNI plugin reading it) loads no code of those folders (test/import-graph.test.ts, `reportShapes`).
 */

import type { CarrierReport, DatapathReport } from '../router/report.js';
import type { ConnectionReport as MeshConnectionReport, GossipReport, PeerReport, TargetReport } from '../gossip/report.js';
import type { IpamReport } from '../ipam/report.js';
import type { EndpointReport as NetdevEndpointReport } from '../netdev/report.js';
import type { DockerReport } from '../plugin/report.js';
import type { DnsRecordReport, DnsReport } from '../dns/report.js';

// The parts their owners declare, under the names the API's readers use.
export type { ConnectionState, GossipChannelReport, GossipReport, PeerReport, TargetReport } from '../gossip/report.js';
export type { Carrier, CarrierReport, DatapathPeerReport, DatapathReport, PeerTraffic } from '../router/report.js';
export type { IpamReport } from '../ipam/report.js';
export type { DnsRecordReport, DnsReport } from '../dns/report.js';
export type { DockerEndpointReport, DockerNetworkReport, DockerPool, DockerReport } from '../plugin/report.js';

/**
 * One line of `weft status connections`: the mesh's view of the connection (gossip/report.ts), with what carries the
 * peer's frames once it is established (router/report.ts).
 */
export type ConnectionReport = MeshConnectionReport & CarrierReport;

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
  /** Periodic gossip: rounds run, messages sent in the last round, and traffic per channel. */
  gossip?: GossipReport;
}

/** One attached endpoint (netdev/report.ts), with the name of a Docker container attached by name. */
export interface EndpointReport extends NetdevEndpointReport {
  /** For a Docker container attached by name (`weft attach CONTAINER`): its name (`containerId` is its full id). */
  containerName?: string;
}

/** weftDNS in `weft report` / `weft status dns`: its own report (dns/report.ts), each record with its owner's nickname. */
export interface DnsStatusReport extends Omit<DnsReport, 'records'> {
  records: Array<DnsRecordReport & { nickname: string }>;
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
