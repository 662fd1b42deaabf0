/**
 * The data plane's part of `weft report` (`GET /report`, `weft status`): the datapath block with its counters and
 * each neighbour's health and traffic, and the carrier of each peer. Declared once, here, by their owner; the daemon's
 * datapath (daemon/host-datapath.ts) fills them, api/control.ts composes them into `Report`.
 *
 * Type-only and plain JSON: this file imports nothing, so api/ and cli/ may read it without loading any router code
 * (it is the one file of router/ test/import-graph.test.ts lets them reach). Keep it that way.
 */

/** What carries a peer's frames: the kernel's VXLAN ('fastdp') or the router ('sleeve'). */
export type Carrier = 'fastdp' | 'sleeve';

/** The carrier of one peer's frames, and why, where a report line names a peer (connections, datapath peers). */
export interface CarrierReport {
  carrier?: Carrier;
  carrierReason?: string;
}

/**
 * One neighbour's traffic since it became a neighbour: UDP payload bytes and datagrams each way, drops by reason (the
 * reasons are the datapath's own, few and fixed: in `source`, `auth`, `record`, out `seal`, `too_big`). The data
 * plane's live counters (`PeerHealth.traffic`) have this shape too.
 */
export interface PeerTraffic {
  readonly datagramsIn: number;
  /** UDP payload bytes. */
  readonly bytesIn: number;
  readonly datagramsOut: number;
  readonly bytesOut: number;
  readonly dropsIn: Readonly<Record<string, number>>;
  readonly dropsOut: Readonly<Record<string, number>>;
}

/**
 * The data path's view of one neighbour: `isEstablished` when heartbeats are answered both ways, the seconds since a
 * valid datagram from it came (absent before the first), its traffic, the smoothed heartbeat round trip (absent
 * before the first ack) and its path MTU.
 */
export interface DatapathPeerReport extends CarrierReport {
  name: string;
  isEstablished: boolean;
  lastHeardSecondsAgo?: number;
  traffic?: PeerTraffic;
  rttSeconds?: number;
  pathMtuBytes?: number;
  isPathMtuConfirmed?: boolean;
}

/** The `datapath` block of `weft report`. */
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
  /** Counters by name (`frames_in`, `drop_<reason>`, `udp_...`, `tap_...`, `fastdp_...`), read at report time. */
  counters: Record<string, number>;
  peers?: DatapathPeerReport[];
  /** fastdp on this host: its UDP port, or why it is off. */
  fastdp?: { port?: number; off?: string };
}
