/**
 * Everything the daemon takes from outside, in one object: the process seams (clock, random, logger, store), the
 * control transport, the data path factory and whether to serve the HTTP API. `hostDaemonDeps` gives the real ones
 * (files in the state dir, WebSocket on TCP, bridge + TAP + UDP); simulations (test/sim/whole-router*.test.ts) give
 * memory ones and run several complete routers in one process, seeded and in fake time.
 */
import type { WeftConfig } from '../config/launch.js';
import type { AttachRequest, DatapathReport, EndpointReport } from '../api/control.js';
import type { ForwardingSnapshot, PeerHealth, PeerId } from '../router/datapath.js';
import type { Carrier } from '../router/report.js';
import type { Transport } from '../gossip/transport.js';
import { WsTransport } from '../gossip/ws-transport.js';
import { systemLocalHosts } from '../gossip/dial-policy.js';
import type { Logger } from '../runtime/logger.js';
import { systemClock, type Clock } from '../runtime/clock.js';
import { AlignedClock } from '../runtime/aligned-clock.js';
import { systemRandom, type Random } from '../runtime/random.js';
import { FileStore, type Store } from '../runtime/store.js';
import { missingTools, missingToolsMessage } from '../netdev/tools.js';
import { ConfigError } from '../config/launch.js';
import { newLaunchUid } from './identity.js';
import { socketHost } from './socket-host.js';

/**
 * What the daemon asks of a data path: the sleeve on the host's bridge (`HostDatapath`), or in a simulation a sleeve
 * over memory capture and underlay, or a recorder of what it was told.
 */
export interface DaemonDatapath {
  /** The underlay's MTU (for the snapshot) and the overlay's (for veths the Docker plugin makes). */
  readonly underlayMtuBytes: number;
  readonly overlayMtuBytes: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Take a forwarding snapshot whole (router/datapath.ts). */
  apply(snapshot: ForwardingSnapshot): void;
  onHealthChange(listener: (peer: PeerId, health: PeerHealth) => void): void;
  /** Per-neighbour health as the carrier last saw it. */
  peerHealth(): ReadonlyMap<PeerId, PeerHealth>;
  /** Which carrier takes each peer (by name) and why: 'fastdp' or 'sleeve'. */
  carriers(): Map<string, { carrier: Carrier; reason: string }>;
  report(): DatapathReport;
  /** The endpoints as last listed (cheap: `weft report` reads it). */
  cachedEndpoints(): EndpointReport[];
  attach(request: AttachRequest): Promise<EndpointReport>;
  detach(target: string): Promise<void>;
  detachContainer(containerId: string, ifname: string): Promise<boolean>;
  expose(cidrs: string[]): Promise<string[]>;
  hide(cidrs: string[]): Promise<string[]>;
  exposed(): Promise<string[]>;
}

/** Build (not start) the data path for `config`. */
export type DatapathFactory = (config: WeftConfig, parts: { log: Logger; clock: Clock; localPeer: PeerId }) => Promise<DaemonDatapath>;

export interface DaemonDeps {
  log: Logger;
  clock: Clock;
  /** Jitter and choices (gossip intervals, dial back-off, IPAM); never keys or nonces (those come from libsodium). */
  random: Random;
  /** The state dir's files: peer name, IPAM ring, DNS records, saved targets. */
  store: Store;
  /** Control connections. */
  transport: Transport;
  /** Addresses of this host, which gossip never makes us dial (gossip/dial-policy.ts). */
  localHosts: () => Iterable<string>;
  /** Called only with `--datapath` on (the default). */
  datapath: DatapathFactory;
  /** A fresh uid for this launch (a restart is told apart by it). */
  launchUid: () => string;
  /** Serve the HTTP API and the metrics listener. Simulations call the `WeftControl` methods directly. */
  isServing: boolean;
}

/** The data path of a real host: bridge, TAP and UDP, after checking the tools it runs. */
export const hostDatapath: DatapathFactory = async (config, parts) => {
  const missing = missingTools();
  if (missing.length > 0) throw new ConfigError(missingToolsMessage(missing));
  // Loaded only when needed: --no-datapath runs without the native addon.
  const { HostDatapath } = await import('./host-datapath.js');
  return new HostDatapath(
    { log: parts.log, clock: parts.clock },
    {
      bridge: config.bridge,
      mtuBytes: config.mtuBytes,
      port: config.port,
      listenAddr: socketHost(config.listenAddr),
      busyPollMicros: config.busyPollMicros,
      isOffloadEnabled: config.isOffloadEnabled,
      isFastdpEnabled: config.isFastdpEnabled,
      localPeer: parts.localPeer,
      captureMode: config.captureMode,
      segmentMode: config.segmentMode,
    },
  );
};

/** The real parts: what `weft launch` runs with. */
export function hostDaemonDeps(config: WeftConfig, log: Logger): DaemonDeps {
  return {
    log,
    // Repeating timers on one wall-clock grid: one wake-up a second for every connection's heartbeat and rekey check,
    // the data-path heartbeats and fastdp, and neighbours' heartbeats arrive in the same moment (issue 19).
    clock: new AlignedClock(systemClock),
    random: systemRandom,
    store: new FileStore(config.stateDir),
    transport: new WsTransport(),
    localHosts: systemLocalHosts,
    datapath: hostDatapath,
    launchUid: newLaunchUid,
    isServing: true,
  };
}
