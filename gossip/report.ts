/**
 * The control plane's part of `weft report` (`GET /report`): targets, connections, peers and gossip traffic, as the
 * mesh reports them. Declared once, here, by their owner; api/control.ts composes them into `RouterReport`.
 *
 * Type-only and plain JSON: this file imports nothing, so api/ and cli/ may read it without loading any gossip code
 * (it is the one file of gossip/ test/import-graph.test.ts lets them reach). Keep it that way: a value or an import
 * here would put gossip code into the CLI process.
 */

/** Where a control connection stands, as `weft status connections` shows it. */
export type ConnectionState = 'connecting' | 'pending' | 'established' | 'failed' | 'retrying';

/** One line of `weft status connections`, as the mesh knows it. */
export interface ConnectionReport {
  /** '->' outbound (we dialled), '<-' inbound. */
  direction: '->' | '<-';
  /** Remote "host:port". */
  address: string;
  /** Remote peer name and nickname once the handshake told us. */
  peer?: string;
  nickname?: string;
  state: ConnectionState;
  /** Why it is in that state: "encrypted", an error, "retry in 4s", ... */
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
}

/** One peer in the topology, as `weft status peers` shows it. */
export interface PeerReport {
  name: string;
  nickname: string;
  uid: string;
  version: number;
  connections: Array<{ name: string; nickname: string; address: string; isOutbound: boolean; isEstablished: boolean }>;
}

/** One line of `weft status targets`. */
export interface TargetReport {
  address: string;
  /** 'connected', 'connecting', 'retrying' (with next attempt), 'failed'. */
  state: string;
  lastError?: string;
  nextAttemptInSeconds?: number;
}

/** The mesh's part of `RouterReport` (`Mesh.status()`): `targets`, `connections`, `peers`. */
export interface MeshReport {
  targets: TargetReport[];
  connections: ConnectionReport[];
  peers: PeerReport[];
}

/** One gossip channel's traffic: frames and their bytes each way (relayed ones included), and merges. */
export interface GossipChannelReport {
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  /** Complete-state or delta messages that changed our state (the gossiper returned an update to pass on). */
  merges: number;
}

/** Periodic gossip: rounds run, messages sent in the last round, and traffic per channel (`topology`, `ipam`, `dns`). */
export interface GossipReport {
  rounds: number;
  lastRoundMessages: number;
  /** Per registered channel (read at scrape time). */
  channels: Record<string, GossipChannelReport>;
}
