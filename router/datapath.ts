/**
 * The Datapath seam: where the control plane meets the data plane.
 *
 * The control plane (daemon, from gossip's routes and the crypto sessions) hands the data plane immutable
 * `ForwardingSnapshot`s; a new snapshot is built to the side and applied whole, so a batch always sees one consistent
 * view. The control plane reads back counters and per-peer health. The data plane never calls into gossip.
 *
 * Peers are identified here by their 48-bit peer name as a number (`PeerId`): cheap to compare, to key maps with,
 * and to read from a packet header (`buf.readUIntBE(off, 6)`).
 */
import type { Endpoint } from './underlay.js';
import type { DataSession } from '../crypto/data-session.js';
import type { PeerTraffic } from './report.js';

/** A peer's 48-bit name as a number (0 .. 2^48-1). */
export type PeerId = number;

/** What the data plane needs to know about one directly connected peer. */
export interface PeerPath {
  readonly peer: PeerId;
  /** Where to send its datagrams (the address its control connection came from, with the peer's UDP port). */
  readonly endpoint: Endpoint;
  /** Seal/open for this pair, or null when the traffic to this peer is sent in clear. */
  readonly session: DataSession | null;
  /**
   * While a duplicate control connection to this peer is in its grace (gossip/mesh.ts): the other of the two
   * sessions. Datagrams that do not open under `session` are tried under it, and a `session` that was the last
   * snapshot's `session` or `graceSession` keeps the path's health (same peer, same launch, same path). @default none
   */
  readonly graceSession?: DataSession | null;
}

export interface ForwardingSnapshot {
  readonly localPeer: PeerId;
  /** Directly connected peers we exchange datagrams with. */
  readonly neighbours: ReadonlyMap<PeerId, PeerPath>;
  /** For each reachable peer, the neighbour to send its unicast frames to. */
  readonly unicastNextHop: ReadonlyMap<PeerId, PeerId>;
  /**
   * For a broadcast frame captured by peer S (key), the neighbours this peer forwards it to, along the spanning tree
   * rooted at S. Each peer receives one copy.
   */
  readonly broadcastNextHops: ReadonlyMap<PeerId, readonly PeerId[]>;
  /** Path MTU of the underlay toward peers, in bytes of IP packet. */
  readonly underlayMtuBytes: number;
  /**
   * Peers the kernel carries this router's own frames to (fastdp): the sleeve drops frames it captures for them
   * (the bridge flooded those to the VXLAN port as well) but still relays other peers' frames to them.
   * @default none
   */
  readonly fastdpPeers?: ReadonlySet<PeerId>;
}

/** The data plane's view of one neighbour's UDP path. */
export interface PeerHealth {
  /** Heartbeats have been answered in both directions recently. */
  readonly isEstablished: boolean;
  /** `Clock.now()` when a valid datagram from this peer was last received, or -1. */
  readonly lastHeardMs: number;
  /** Traffic with this neighbour since it joined the snapshot (counters; absent from datapaths that keep none). */
  readonly traffic?: PeerTraffic;
  /** Smoothed round trip of heartbeat and ack in ms, or -1 before the first ack (absent: not measured). */
  readonly rttMs?: number;
  /**
   * Where its datagrams go now: the snapshot's endpoint, or where its authentic sealed datagrams came from since
   * (NAT rebinding, roaming). Absent in fakes that do not track it.
   */
  readonly endpoint?: Endpoint;
  /** The IP packet size datagrams to this neighbour are sized for: its probed path MTU, at most the snapshot's. */
  readonly pathMtuBytes?: number;
  /** Whether a probe ack confirmed `pathMtuBytes` (false: still the snapshot's MTU, unproven). */
  readonly isPathMtuConfirmed?: boolean;
}

export interface Datapath {
  start(): Promise<void>;
  /** Idempotent; safe after a failed start. */
  stop(): Promise<void>;
  /** Replace the forwarding view. The snapshot must not be mutated afterwards. */
  apply(snapshot: ForwardingSnapshot): void;
  /** Counters by name (`frames_in`, `drop_<reason>`, ...), read at scrape time. */
  counters(): Readonly<Record<string, number>>;
  /** Health of each neighbour in the current snapshot. */
  peerHealth(): ReadonlyMap<PeerId, PeerHealth>;
  /** Called (from the control plane's side of the loop) when a neighbour's `isEstablished` changes. */
  onHealthChange(listener: (peer: PeerId, health: PeerHealth) => void): void;
}
