/**
 * The mesh: this router's control plane toward other routers. It assembles the pieces of gossip/:
 *
 *   Transport ──► PeerConnection (hello, confirmation, frames, heartbeats)   one per connection
 *                   │ ready / closed
 *                   ▼
 *   our topology entry ──► topology channel ──► Topology (merge, GC) ──► routes (swapped whole)
 *                   ▲                                  │
 *   ConnectionMaker (targets, discovery, back-off) ◄───┘ refresh on every change
 *   Gossip (channels: topology, and what IPAM/DNS register) over the ready connections and the routes
 *
 * One connection per pair of peers: when both dial at once, both keep the connection initiated by the peer with the
 * smaller name and close the other with "duplicate connection" (each side decides alone, and they agree). Only a
 * confirmed connection (the remote proved the password) may replace another: names and uids travel in clear hellos,
 * so a stranger could replay them; an unconfirmed duplicate that would lose is refused at its hello, one that would
 * win waits for its proof, and the connection in place is never touched before that.
 *
 * Each side decides when the duplicate is confirmed at ITS end, so for a moment the two sides keep different
 * connections, and data keys are per connection. So a confirmed duplicate that lost (the connection it replaced, or
 * itself when it came second) is not closed at once: it is retired, out of the routes, for `duplicateGraceMs`, then
 * closed. Meanwhile `neighbours()` gives the two sessions to the data path, which opens datagrams sealed under
 * either and keeps the path's health across the swap; and the retired connection's close cannot reach the other side
 * before that side has made the same swap (a close of the connection it still owned would make it drop the peer).
 * Data is sent under the owner's session once the other side surely has it too: at once when we dialled the owner
 * (its responder confirms first), else once a frame came over it (its dialler is done); until then under the
 * retired one's, which the other side still has. At most one retired connection per peer; a restart (a new uid)
 * replaces the old connection at once.
 *
 * Inbound connections are admitted per source address first (inbound-admission.ts), so one address cannot lock
 * others out; addresses learned from gossip are dialled only if dial-policy.ts allows them.
 *
 * With `requireDataPathConfirm` (the daemon sets it when it runs a data path), a connection is "pending" after the
 * handshake and reported as established in our topology entry, and so used by routes, only once
 * `setDataPathEstablished(peer, true)` says the UDP path to that peer works.
 *
 * Healing (docs/architecture.md, "Failure detection and healing"): a peer whose connection drops is remembered as
 * lost and both sides keep dialling it on a short back-off; gossip showing it alive again (a newer entry of its
 * own, or another router's newer entry with an established connection to it), a restart, or `peerSeen` (its data
 * path answered) wakes the dial at once. Losing a peer and a peer becoming unreachable are warnings (one per peer
 * per half minute); its return is logged at info.
 */
import { IDENTITY_FEATURE_PREFIX } from '../crypto/identity.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import { StallWatch } from '../runtime/stall-watch.js';
import type { ConnectionSecurity, SecureSession } from '../crypto/connection-security.js';
import { joinAddress, splitAddress } from '../runtime/address.js';
import type { GossipChannel, Gossiper } from './channel.js';
import { ConnectionMaker, type BackoffOptions, type ConnectionMakerLimits, type HealOptions } from './connection-maker.js';
import { canonicalHost, discoveryRefusal } from './dial-policy.js';
import { InboundAdmission, type InboundAdmissionOptions } from './inbound-admission.js';
import { LogLimiter } from './log-limiter.js';
import { NameHolders } from './name-holders.js';
import { PeerConnection, QUIET_HEARTBEATS_FEATURE } from './connection.js';
import { Gossip } from './gossip.js';
import { TopologySpread } from './topology-spread.js';
import { compareSummary, decodeSummary, encodeSummary, isSummary, TOPOLOGY_SUMMARY_FEATURE } from './topology-summary.js';
import { TokenBucket } from './token-bucket.js';
import {
  describePeer,
  DuplicateConnectionError,
  HandshakeError,
  PeerNameCollisionError,
  PROTOCOL_MAX_VERSION,
  PROTOCOL_MIN_VERSION,
  type Hello,
} from './handshake.js';
import { parsePeerName, type PeerName } from './peer-name.js';
import type { ConnectionReport, GossipReport, MeshReport, PeerReport } from './report.js';
import { computeRoutes, emptyRoutes, type ControlRoutes, type Routes } from './routes.js';
import {
  decodeTopology,
  encodeTopology,
  encodeTopologyChunks,
  Topology,
  type ConnectionEntry,
  type PeerEntry,
  type TopologyRefusal,
} from './topology.js';
import type { Transport, TransportConnection, TransportListener, TransportRefusal } from './transport.js';

/** The control port, and the port assumed for a discovered peer known only by an inbound connection. */
export const DEFAULT_CONTROL_PORT = 6783;
/** Name of the gossip channel that carries the topology. */
export const TOPOLOGY_CHANNEL = 'topology';

/**
 * Our entry, re-published past a copy of itself, goes out at most once per this many ms (later jumps wait and go out
 * together): two routers sharing a name outbid each other for as long as both run, and must not flood the mesh.
 */
export const OWN_OUTBID_INTERVAL_MS = 1000;

/**
 * A confirmed duplicate that lost stays open this long before it is closed (see the header): the other side makes
 * the same swap half a round trip after us, so this only needs to outlast a slow round trip and a stalled loop.
 */
export const DUPLICATE_GRACE_MS = 3000;

/**
 * Below this many bytes of encoded topology (a full mesh of ~20), new neighbours and gossip rounds get the complete
 * state: it costs less than the round trip a summary's answer takes (topology-summary.ts).
 */
export const SUMMARY_ABOVE_BYTES = 16 * 1024;

/**
 * A peer found by discovery whose name is greater than ours is dialled this long after we learn of it, unless it
 * dialled us first (the smaller name dials first; see `firstDialDelay`). Lost peers are dialled by both at once.
 */
export const DISCOVERY_YIELD_MS = 1500;

export interface MeshDeps {
  transport: Transport;
  clock: Clock;
  random: Random;
  log: Logger;
  /** Given when this router has a password: connections are confirmed and sealed. */
  security?: ConnectionSecurity;
  /**
   * This host's own IP addresses (every interface; `systemLocalHosts` in dial-policy.ts): gossip never makes us dial
   * them, whatever the port (our listener, API, metrics). Read at each discovery pass. @default none
   */
  localHosts?: () => Iterable<string>;
}

export interface MeshOptions extends BackoffOptions, ConnectionMakerLimits, HealOptions {
  peerName: PeerName;
  nickname: string;
  /** Per-launch uid, decimal 64-bit. */
  uid: string;
  /** Where to accept control connections. @default '0.0.0.0:6783' */
  listenAddr?: string;
  /** Our data-plane UDP port, announced in the hello. @default 6784 */
  udpPort?: number;
  /** Dial peers learned from the topology. @default true */
  isDiscoveryEnabled?: boolean;
  /** @default 1000 */
  heartbeatMs?: number;
  /**
   * Close a connection silent for this long, not counting our own event-loop stalls meanwhile (a stall is a heartbeat
   * tick later than a quarter of `heartbeatMs`; none is closed within `heartbeatMs` after one). @default 5000
   */
  heartbeatTimeoutMs?: number;
  /** Period of complete-state gossip. @default 30000 */
  gossipIntervalMs?: number;
  /** Send topology summaries, not the complete state, once it is above this many bytes. @default SUMMARY_ABOVE_BYTES */
  summaryAboveBytes?: number;
  /** @default 5000 */
  dialTimeoutMs?: number;
  /** How long a confirmed duplicate that lost stays open, retired (see the header). @default DUPLICATE_GRACE_MS */
  duplicateGraceMs?: number;
  /** A dial to a lost peer (connected lately) whose TCP connect is unanswered this long is dropped and retried. @default 1500 */
  lostPeerConnectTimeoutMs?: number;
  /** Hold connections 'pending' until `setDataPathEstablished(peer, true)`. @default false */
  requireDataPathConfirm?: boolean;
  /** Limits on inbound handshakes, per address and in all (defaults in inbound-admission.ts). */
  inbound?: InboundAdmissionOptions;
  /** Features announced in the hello. @default [] */
  features?: string[];
}

/** A peer we have a ready control connection to. */
export interface Neighbour {
  name: PeerName;
  nickname: string;
  /** The peer's IP as seen on the control connection: where its UDP port is. */
  remoteHost: string;
  udpPort: number;
  isOutbound: boolean;
  /** Established in our topology entry (data path confirmed, or not required). */
  isEstablished: boolean;
  /** The crypto session to send under when both routers have a password, else null. */
  session: SecureSession | null;
  /**
   * While a duplicate connection to this peer is in its grace (see the header): the other of the two sessions, whose
   * datagrams open too (the peer may seal under either for a moment); else null.
   */
  graceSession: SecureSession | null;
}

export class Mesh {
  private readonly log: Logger;
  private readonly topology: Topology;
  private readonly gossip: Gossip;
  private readonly maker: ConnectionMaker;
  private readonly topologyChannel: GossipChannel;
  /** Topology changes to neighbours, coalesced (topology-spread.ts). */
  private readonly spread: TopologySpread;
  private readonly admission: InboundAdmission;
  /** Inbound connections admitted and not yet ready: each holds a place in `admission` until then. */
  private readonly pendingInbound = new Set<PeerConnection>();
  /** One line per address per minute about refused connections and refused discovered addresses. */
  private readonly refusalLog: LogLimiter;
  /** Discovered addresses refused and already counted (bounded: oldest forgotten first, then counted again). */
  private readonly refusedDiscoveries = new Set<string>();
  private readonly summaryAboveBytes: number;
  /** Per neighbour, the topology summaries we will still answer (each may cost our whole state). */
  private readonly summaryBudgets = new Map<PeerName, TokenBucket>();
  /** The peer at each address the last `discoveredAddresses` named (for `firstDialDelay`). */
  private readonly discoveredPeers = new Map<string, PeerName>();
  private readonly conns = new Set<PeerConnection>();
  /** The one confirmed connection per peer (a duplicate is resolved when it is confirmed, never earlier). */
  private readonly owners = new Map<PeerName, PeerConnection>();
  /** Per peer, the confirmed duplicate that lost (same uid), open until its grace ends (see the header). */
  private readonly retired = new Map<PeerName, { conn: PeerConnection; timer: Timer }>();
  /**
   * Peers whose data path (UDP) the datapath reports working. Kept per peer, not per connection: the UDP path does
   * not care which TCP connection carries control, so a connection that replaces another (a duplicate resolved, a
   * reconnect) is established at once if the path already works; the datapath reports only changes.
   */
  private readonly dataPathUp = new Set<PeerName>();
  private readonly listeners = new Set<() => void>();
  /**
   * Peers whose established connection dropped, by name: where to dial them (the address we dialled, or its host
   * at the control port when it had dialled us) and since when. Named as discovered addresses for
   * `lostPeerWindowMs`, so both sides dial (bounded: `maxTargets`, oldest first out).
   */
  private readonly lostPeers = new Map<PeerName, { address: string; nickname: string; lostAt: number }>();
  /** Peers in the topology (reachable), with their nicknames, as of the last topology change. */
  private reachable = new Map<PeerName, string>();
  /** When each peer that left the topology became unreachable (bounded like `lostPeers`). */
  private readonly unreachableSince = new Map<PeerName, number>();
  /** One warning per peer per half minute about partitions, and one line about its return. */
  private readonly partitionLog: LogLimiter;
  private readonly lostPeerWindowMs: number;
  private readonly maxLostPeers: number;
  private readonly counts = new Map<string, number>();
  private readonly localHello: Hello;
  private listener: TransportListener | null = null;
  private cachedRoutes: ControlRoutes = emptyRoutes;
  private cachedControlRoutes: ControlRoutes = emptyRoutes;
  /** Whether a jump of our own version past a copy of our entry was logged (once; later ones are counted). */
  private isOwnOutbidLogged = false;
  /** Which uid holds each peer name, and names two live routers share (name-holders.ts). */
  private readonly nameHolders = new NameHolders();
  private readonly collisionsLogged = new Set<string>();
  /** When our re-published entry last went out (clock ms), and the send waiting for the interval to pass. */
  private lastOwnOutbidAt = -Infinity;
  private ownOutbidTimer: Timer | null = null;
  /** Topology refusals already logged, by reason and entry name (bounded: past the bound only counted). */
  private readonly loggedRefusals = new Set<string>();
  private isRoutesDirty = true;
  private isChangeQueued = false;
  private nextConnId = 1;
  private phase: 'new' | 'starting' | 'running' | 'stopped' = 'new';

  private readonly listenAddr: string;
  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly dialTimeoutMs: number;
  private readonly duplicateGraceMs: number;
  private readonly lostPeerConnectTimeoutMs: number;
  private readonly requireDataPathConfirm: boolean;
  /** Our own event-loop stalls, as every connection's heartbeat tick sees them (issue 19). */
  private readonly stalls: StallWatch;

  constructor(
    private readonly deps: MeshDeps,
    options: MeshOptions,
  ) {
    const name = parsePeerName(options.peerName);
    this.log = deps.log;
    this.listenAddr = options.listenAddr ?? `0.0.0.0:${DEFAULT_CONTROL_PORT}`;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.summaryAboveBytes = options.summaryAboveBytes ?? SUMMARY_ABOVE_BYTES;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5000;
    this.dialTimeoutMs = options.dialTimeoutMs ?? 5000;
    this.duplicateGraceMs = options.duplicateGraceMs ?? DUPLICATE_GRACE_MS;
    this.lostPeerConnectTimeoutMs = options.lostPeerConnectTimeoutMs ?? 1500;
    this.stalls = new StallWatch({ thresholdMs: this.heartbeatMs / 4, graceMs: this.heartbeatMs });
    this.requireDataPathConfirm = options.requireDataPathConfirm ?? false;
    this.admission = new InboundAdmission(deps.clock.now(), options.inbound);
    this.refusalLog = new LogLimiter(deps.clock.now());
    this.partitionLog = new LogLimiter(deps.clock.now(), { intervalMs: 30_000 });
    this.lostPeerWindowMs = options.lostPeerWindowMs ?? 600_000;
    this.maxLostPeers = options.maxTargets ?? 256;
    this.localHello = {
      minVersion: PROTOCOL_MIN_VERSION,
      maxVersion: PROTOCOL_MAX_VERSION,
      name,
      nickname: options.nickname,
      uid: options.uid,
      features: [...(options.features ?? []), TOPOLOGY_SUMMARY_FEATURE, QUIET_HEARTBEATS_FEATURE],
      hasPassword: false, // set per connection from `security`
      publicKey: new Uint8Array(0),
      udpPort: options.udpPort ?? 6784,
    };
    this.topology = new Topology(
      { name, nickname: options.nickname, uid: options.uid },
      (e) =>
        this.log.warn(
          { reason: 'peer name collision', uid: e.uid },
          `the topology holds an entry for our name ${name} from uid ${e.uid} (ours ${options.uid}): an earlier run of this router, or a copied state dir / cloned VM; if it persists, remove <state-dir>/peer-name on one of them and restart it`,
        ),
      { onRefused: (reason, e) => this.topologyRefused(reason, e) },
    );
    const network = {
      localName: name,
      neighbourNames: () => this.readyNeighbourNames(),
      sendTo: (peer: PeerName, frame: Uint8Array) => {
        const c = this.owners.get(peer);
        if (!c || c.phase !== 'ready') return false;
        c.send(frame);
        return true;
      },
      routes: () => this.controlRoutes(),
      peerCount: () => this.topology.peers.size,
    };
    this.gossip = new Gossip(
      { clock: deps.clock, random: deps.random, log: this.log, network, count: (r) => this.count(r) },
      { gossipIntervalMs: options.gossipIntervalMs },
    );
    this.topologyChannel = this.gossip.channel(TOPOLOGY_CHANNEL, this.topologyGossiper());
    this.spread = new TopologySpread({
      clock: deps.clock,
      localName: name,
      neighbours: () => this.readyNeighbourNames(),
      entry: (name) => this.topology.peers.get(name),
      send: (peer, update) => this.topologyChannel.gossipTo(peer, update),
    });
    this.maker = new ConnectionMaker(
      {
        clock: deps.clock,
        random: deps.random,
        log: this.log,
        connect: (addr, isLostPeer) => this.dial(addr, isLostPeer),
        isConnected: (addr) => this.isConnectedTo(addr),
        discoveredAddresses: () => this.discoveredAddresses(),
        firstDialDelay: (addr) => this.firstDialDelay(addr),
      },
      {
        isDiscoveryEnabled: options.isDiscoveryEnabled ?? true,
        maxTargets: options.maxTargets,
        maxConcurrentDials: options.maxConcurrentDials,
        initialBackoffMs: options.initialBackoffMs,
        maxBackoffMs: options.maxBackoffMs,
        jitterFraction: options.jitterFraction,
        stableAfterMs: options.stableAfterMs,
        lostPeerMaxBackoffMs: options.lostPeerMaxBackoffMs,
        lostPeerWindowMs: options.lostPeerWindowMs,
        minDialSpacingMs: options.minDialSpacingMs,
        wakesPerSecond: options.wakesPerSecond,
      },
    );
  }

  /** Our peer name. */
  get name(): PeerName {
    return this.localHello.name;
  }

  /** The address the listener bound, once started. */
  get listenAddress(): string | null {
    return this.listener?.address ?? null;
  }

  /** Listen, then start gossip and the connection maker. Rejects if the listen address is unavailable. */
  async start(): Promise<void> {
    if (this.phase !== 'new') return;
    this.phase = 'starting';
    const listener = await this.deps.transport.listen(
      this.listenAddr,
      (t) => this.accept(t),
      (r: TransportRefusal) => this.refused(r.reason, r.remoteHost, r.message),
    );
    if (this.phase !== 'starting') {
      await listener.close(); // stopped while we were binding
      return;
    }
    this.listener = listener;
    this.phase = 'running';
    this.gossip.start();
    this.maker.start();
    this.log.info({ addr: listener.address, peer: this.name }, 'mesh listening');
  }

  /** Close every connection with "router stopping", stop timers, close the listener. Idempotent. */
  async stop(): Promise<void> {
    if (this.phase === 'stopped') return;
    this.phase = 'stopped';
    this.gossip.stop();
    this.spread.stop();
    this.maker.stop();
    this.ownOutbidTimer?.cancel();
    this.ownOutbidTimer = null;
    for (const r of this.retired.values()) r.timer.cancel();
    this.retired.clear();
    for (const c of [...this.conns]) c.close('router stopping');
    const l = this.listener;
    this.listener = null;
    await l?.close();
  }

  /** Add targets ("host" or "host:port"; port 6783 by default); `replace` forgets direct targets not listed. */
  connect(addrs: string[], replace: boolean): void {
    this.maker.connect(addrs.map(normalizeAddress), replace);
  }

  /** Stop dialling `addrs` (connections already up stay). */
  forget(addrs: string[]): void {
    this.maker.forget(addrs.map(normalizeAddress));
  }

  /** Register a gossip channel (the same name on every peer). Register before `start()` so no update is missed. */
  channel(name: string, gossiper: Gossiper): GossipChannel {
    return this.gossip.channel(name, gossiper);
  }

  /** Unicast and broadcast routes for every reachable peer; recomputed on topology change, never mutated. */
  routes(): Routes {
    this.refreshRoutes();
    return this.cachedRoutes;
  }

  /**
   * Routes for gossip unicasts and broadcasts: over every connection whose handshake is done, established or still
   * pending its data path. Control messages need only the TCP connection, so IPAM and DNS work from the moment peers
   * meet, not from the moment their UDP paths are confirmed.
   */
  controlRoutes(): ControlRoutes {
    this.refreshRoutes();
    return this.cachedControlRoutes;
  }

  private refreshRoutes(): void {
    if (!this.isRoutesDirty) return;
    this.cachedRoutes = computeRoutes(this.topology.peers, this.name);
    this.cachedControlRoutes = this.requireDataPathConfirm ? computeRoutes(this.topology.peers, this.name, false) : this.cachedRoutes;
    this.isRoutesDirty = false;
  }

  /** Peers with a ready control connection. */
  neighbours(): Neighbour[] {
    const out: Neighbour[] = [];
    for (const [name, c] of this.owners) {
      if (c.phase !== 'ready' || !c.remote) continue;
      out.push({
        name,
        nickname: c.remote.nickname,
        remoteHost: c.remoteHost,
        udpPort: c.remote.udpPort,
        isOutbound: c.isOutbound,
        isEstablished: this.isEstablished(c),
        ...this.dataSessions(c),
      });
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /**
   * The data path to `peer` works (true) or stopped working (false). With `requireDataPathConfirm` this moves the
   * connection between pending and established in our topology entry (remembered for `peer`, so it also holds for a
   * connection to it that opens later).
   */
  setDataPathEstablished(peer: PeerName, ok: boolean): void {
    if (ok === this.dataPathUp.has(peer)) return;
    if (ok) this.dataPathUp.add(peer);
    else this.dataPathUp.delete(peer);
    if (this.owners.has(peer)) this.updateLocalEntry();
  }

  /**
   * A sign of life from `peer` outside the control connection (the daemon calls it when the data path to a peer
   * answers): if we are not connected to it, dial it now (no sooner than the per-address spacing).
   */
  peerSeen(peer: PeerName): void {
    if (this.phase !== 'running' || this.owners.has(peer)) return;
    this.wakePeers([peer]);
  }

  /** Call `listener` after any topology, route or connection change (coalesced per tick). Returns unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The topology as we see it (read-only). */
  peers(): ReadonlyMap<PeerName, PeerEntry> {
    return this.topology.peers;
  }

  /** Event counters by reason (decode errors, refusals, timeouts, rate limiting). */
  counters(): Record<string, number> {
    const out = Object.fromEntries([...this.counts].sort());
    if (this.stalls.stalls > 0) {
      out['own_stalls'] = this.stalls.stalls;
      out['own_stall_ms'] = Math.round(this.stalls.totalMs);
      out['own_stall_longest_ms'] = Math.round(this.stalls.longestMs);
    }
    return out;
  }

  /** Periodic gossip statistics (simulations print them). */
  gossipStats(): Readonly<GossipReport> {
    return this.gossip.stats;
  }

  /** Run one periodic gossip round now (simulations). */
  gossipRound(): void {
    this.gossip.round();
  }

  /**
   * Close every connection whose remote hello's features fail `keep` (e.g. an identity no longer authorized), with
   * `reason` as the close reason the remote sees. Answers how the closed peers are named in messages.
   */
  closeConnectionsWhere(keep: (features: readonly string[]) => boolean, reason: string, code: string): string[] {
    const closed: string[] = [];
    for (const c of [...this.conns]) {
      if (c.remote === null || keep(c.remote.features)) continue;
      closed.push(describePeer(c.remote, c.remoteAddr));
      c.close(reason, new HandshakeError(code, `closed: ${reason}`));
    }
    return closed;
  }

  /** `targets`, `connections` and `peers` of `weft report`. */
  status(): MeshReport {
    const targets = this.maker.report();
    const connections: ConnectionReport[] = [];
    const liveAddrs = new Set<string>();
    for (const c of this.conns) {
      liveAddrs.add(c.remoteAddr);
      // A retired duplicate (see the header) is pending: out of the routes, closing after its grace.
      const isRetired = c.remote !== null && this.retired.get(c.remote.name)?.conn === c;
      const r: ConnectionReport = {
        direction: c.isOutbound ? '->' : '<-',
        address: c.remoteAddr,
        state: c.phase === 'ready' ? (this.isEstablished(c) && !isRetired ? 'established' : 'pending') : 'connecting',
        info:
          c.phase !== 'ready'
            ? c.phase
            : isRetired
              ? 'duplicate connection, closing'
              : this.isEstablished(c)
                ? c.session
                  ? 'encrypted'
                  : 'unencrypted'
                : 'waiting for the data path',
        isEncrypted: c.session !== null,
      };
      if (c.remote) {
        r.peer = c.remote.name;
        r.nickname = c.remote.nickname;
        // The identity key its hello showed (proven by the handshake once established), for --authorized-peers lists.
        const id = c.remote.features.find((f) => f.startsWith(IDENTITY_FEATURE_PREFIX));
        if (id !== undefined) r.identity = id.slice(IDENTITY_FEATURE_PREFIX.length);
      }
      if (c.session) {
        const s = c.session.stats();
        r.sessionAgeSeconds = s.ageSeconds;
        r.rekeyCount = s.rekeyCount;
        r.dataCipher = c.session.dataCipherName;
      }
      connections.push(r);
    }
    for (const t of targets) {
      // Every target not behind a live connection has a row, as in `status targets`: dials under way (before the
      // transport connected, so no connection exists yet), retries with their reason, failures.
      if (liveAddrs.has(t.address) || t.state === 'connected') continue;
      const retry = t.nextAttemptInSeconds !== undefined ? `, retry in ${t.nextAttemptInSeconds}s` : '';
      connections.push({
        direction: '->',
        address: t.address,
        state: t.state === 'failed' ? 'failed' : t.state === 'connecting' ? 'connecting' : 'retrying',
        info: t.state === 'connecting' ? 'dialling' : `${t.lastError ?? 'not connected'}${retry}`,
        isEncrypted: false,
      });
    }
    const peers: PeerReport[] = [...this.topology.peers.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((e) => ({
        name: e.name,
        nickname: e.nickname,
        uid: e.uid,
        version: e.version,
        connections: e.connections.map((c) => ({ ...c, nickname: this.topology.peers.get(c.name)?.nickname ?? '' })),
      }));
    return { targets, connections, peers };
  }

  // --- connections -------------------------------------------------------------------------------------------

  private accept(t: TransportConnection): void {
    if (this.phase !== 'running') {
      t.close('router stopping');
      return;
    }
    const refusal = this.admission.admit(t.remoteHost, this.deps.clock.now());
    if (refusal) {
      this.refused(refusal.reason, t.remoteHost, refusal.message);
      t.close(refusal.closeReason);
      return;
    }
    this.adopt(t, null);
  }

  /** Count a refused inbound connection or discovered address under `reason`; log it once per address a minute. */
  private refused(reason: string, host: string, message: string): void {
    this.count(reason);
    if (this.refusalLog.shouldLog(host, this.deps.clock.now())) {
      this.log.warn({ addr: host, reason: message, code: reason }, 'refused (logged once a minute per address; counted in weft report)');
    }
  }

  private async dial(addr: string, isLostPeer: boolean): Promise<void> {
    // A lost peer is redialled every second or so until it answers; a dial whose SYN went unanswered (the link still
    // down) is dropped after `lostPeerConnectTimeoutMs` rather than left in TCP's SYN retransmission (the next SYN 3 s
    // later), so the first SYN after the link returns is at most about a second and a half away.
    const t = await this.deps.transport.dial(
      addr,
      this.dialTimeoutMs,
      isLostPeer ? { connectTimeoutMs: Math.min(this.lostPeerConnectTimeoutMs, this.dialTimeoutMs) } : {},
    );
    if (this.phase !== 'running') {
      t.close('router stopping');
      throw new Error('router stopping');
    }
    return new Promise((resolve, reject) => this.adopt(t, { resolve, reject }));
  }

  private adopt(t: TransportConnection, waiter: { resolve: () => void; reject: (e: Error) => void } | null): void {
    const conn = new PeerConnection(
      { clock: this.deps.clock, log: this.log, security: this.deps.security, count: (r) => this.count(r), stalls: this.stalls },
      t,
      { local: this.localHello, connId: this.nextConnId++, heartbeatMs: this.heartbeatMs, heartbeatTimeoutMs: this.heartbeatTimeoutMs },
      {
        onHello: (c) => this.checkHello(c),
        onConfirmed: (c) => {
          this.refuseHeldName(c);
          this.claim(c);
        },
        onReady: (c) => {
          this.releasePending(c);
          waiter?.resolve();
          this.onReady(c);
        },
        onFrame: (c, type, body) => this.gossip.onFrame(c.remote!.name, type, body),
        // Quiet heartbeats while the data path shows the peer alive (connection.ts): the owner only, both ends willing.
        isPeerAlive: (c) =>
          c.remote !== null &&
          this.dataPathUp.has(c.remote.name) &&
          this.owners.get(c.remote.name) === c &&
          c.remote.features.includes(QUIET_HEARTBEATS_FEATURE),
        onHeard: (c) => {
          // The other side is done with `c`: the data path may send under its session now (`dataSessions`).
          if (this.retired.has(c.remote!.name)) this.changed();
        },
        onClose: (c, reason, err) => {
          this.releasePending(c);
          waiter?.reject(err ?? new Error(reason));
          this.onClosed(c);
        },
      },
    );
    this.conns.add(conn);
    if (!t.isOutbound) this.pendingInbound.add(conn);
    conn.start();
    this.changed();
  }

  private releasePending(c: PeerConnection): void {
    if (this.pendingInbound.delete(c)) this.admission.release(c.remoteHost);
  }

  /**
   * At the hello, before anything is proven: refuse a duplicate that would lose to the confirmed connection in
   * place anyway (it would be refused at confirmation too), touching nothing. One that would win goes on to prove
   * the password, and only `claim` replaces anything.
   */
  private checkHello(c: PeerConnection): void {
    const existing = this.owners.get(c.remote!.name);
    if (existing && existing !== c) this.resolveDuplicate(c, existing);
  }

  /**
   * Make the confirmed `c` the connection to its peer, or retire it as a duplicate that lost (see the header), or
   * refuse it (throws a HandshakeError: a name collision).
   */
  private claim(c: PeerConnection): void {
    const peer = c.remote!.name;
    const existing = this.owners.get(peer);
    if (existing && existing !== c) {
      let why: 'restarted' | 'preferred';
      try {
        why = this.resolveDuplicate(c, existing);
      } catch (err) {
        if (!(err instanceof DuplicateConnectionError)) throw err;
        // Confirmed, same peer, same launch: the other side may own it for a moment, so it is retired, not refused.
        this.retire(c);
        return;
      }
      this.owners.set(peer, c);
      if (why === 'restarted') {
        this.log.info(
          { peer, addr: c.remoteAddr, uid: c.remote!.uid, reason: 'restarted' },
          `peer ${peer} restarted (uid ${existing.remote!.uid} -> ${c.remote!.uid}): replacing its silent connection`,
        );
        existing.close(`replaced by a restarted ${peer} (uid ${c.remote!.uid})`);
      } else {
        this.retire(existing);
      }
      return;
    }
    this.owners.set(peer, c);
  }

  /**
   * The confirmed `c` lost to another connection to the same peer (same uid): keep it open, out of the routes,
   * for `duplicateGraceMs`, then close it as a duplicate. Replaces (closes) an earlier one retired for that peer.
   */
  private retire(c: PeerConnection): void {
    const peer = c.remote!.name;
    const earlier = this.retired.get(peer);
    if (earlier) {
      earlier.timer.cancel();
      this.retired.delete(peer);
      earlier.conn.close('duplicate connection', new DuplicateConnectionError(peer));
    }
    this.count('duplicate_connection');
    c.log.info(
      { reason: 'duplicate connection', graceMs: this.duplicateGraceMs },
      'duplicate connection retired (closing after the grace)',
    );
    const timer = this.deps.clock.setTimeout(() => {
      if (this.retired.get(peer)?.conn === c) this.retired.delete(peer);
      c.close('duplicate connection', new DuplicateConnectionError(peer));
    }, this.duplicateGraceMs);
    this.retired.set(peer, { conn: c, timer });
    this.changed();
  }

  /**
   * `c` and `existing` (the owner) lead to the same peer name: throws the refusal for `c`, or says why `c` would
   * replace `existing`. Decides only; the caller acts (and only once `c` is confirmed).
   */
  private resolveDuplicate(c: PeerConnection, existing: PeerConnection): 'restarted' | 'preferred' {
    const peer = c.remote!.name;
    const existingUid = existing.remote!.uid;
    if (existingUid !== c.remote!.uid) {
      // Same name, another launch uid. A restart (crash, reboot: the old link died without a close) leaves the old
      // connection silent; a clone keeps heartbeating on it. Two missed heartbeats tell them apart, so a restarted
      // router gets back in at once instead of being called a clone until the old link times out.
      if (existing.silentMs > 2 * this.heartbeatMs) return 'restarted';
      // Otherwise keep the connection we trust; the other retries and succeeds once the old one is really gone.
      throw new PeerNameCollisionError(peer, existingUid, c.remote!.uid, c.remoteAddr);
    }
    const preferredInitiator = this.name < peer ? this.name : peer;
    const initiatorOf = (x: PeerConnection) => (x.isOutbound ? this.name : peer);
    if (initiatorOf(c) === preferredInitiator && initiatorOf(existing) !== preferredInitiator) return 'preferred';
    throw new DuplicateConnectionError(describe(c));
  }

  private onReady(c: PeerConnection): void {
    if (this.owners.get(c.remote!.name) !== c) return;
    const lost = this.lostPeers.get(c.remote!.name);
    if (lost) {
      this.lostPeers.delete(c.remote!.name);
      this.log.info(
        {
          peer: c.remote!.name,
          nickname: c.remote!.nickname,
          addr: c.remoteAddr,
          downSeconds: (this.deps.clock.now() - lost.lostAt) / 1000,
        },
        'reconnected to peer',
      );
    }
    this.updateLocalEntry();
    this.gossip.onNewNeighbour(c.remote!.name);
    // (nothing queued for it is dropped: a summary exchange answers with what is queued, and a replaced duplicate may
    // hold answers to the first exchange)
    this.maker.refresh();
  }

  private onClosed(c: PeerConnection): void {
    this.conns.delete(c);
    const peer = c.remote?.name;
    const retired = peer === undefined ? undefined : this.retired.get(peer);
    if (retired?.conn === c) {
      retired.timer.cancel();
      this.retired.delete(peer!);
    }
    if (peer !== undefined && this.owners.get(peer) === c) {
      this.owners.delete(peer);
      this.spread.forget(peer);
      this.summaryBudgets.delete(peer);
      if (c.readyAt > 0 && this.phase === 'running') this.lostPeer(c);
      this.updateLocalEntry();
    }
    this.maker.refresh();
    this.changed();
  }

  /** The ready connection `c`, the one to its peer, closed while we run: warn, remember the peer, keep dialling it. */
  private lostPeer(c: PeerConnection): void {
    const remote = c.remote!;
    const now = this.deps.clock.now();
    const reason = c.reason ?? 'closed';
    let address: string;
    try {
      address = c.isOutbound ? c.remoteAddr : joinAddress(c.remoteHost, DEFAULT_CONTROL_PORT);
    } catch {
      return;
    }
    this.count('peer_lost');
    if (this.partitionLog.shouldLog(`lost:${remote.name}`, now)) {
      // A peer that said it is stopping left on purpose: info. Anything else may be a partition: warn.
      this.log[reason.includes('router stopping') ? 'info' : 'warn'](
        { peer: remote.name, nickname: remote.nickname, addr: c.remoteAddr, reason, upSeconds: (now - c.readyAt) / 1000 },
        'lost connection to peer (retrying; logged once per peer per 30 s)',
      );
    }
    this.lostPeers.delete(remote.name);
    this.lostPeers.set(remote.name, { address, nickname: remote.nickname, lostAt: now });
    while (this.lostPeers.size > this.maxLostPeers) this.lostPeers.delete(this.lostPeers.keys().next().value!);
    this.maker.peerLost(address, reason, now - c.readyAt);
  }

  /** Bring forward the dial to each of `names` we are not connected to (the connection maker spaces and caps it). */
  private wakePeers(names: Iterable<PeerName>): void {
    let addresses: Map<PeerName, string> | null = null;
    for (const name of names) {
      if (name === this.name || this.owners.has(name)) continue;
      addresses ??= this.peerAddresses();
      const addr = addresses.get(name);
      if (addr !== undefined && this.maker.wake(addr)) this.count('dial_woken');
    }
  }

  /**
   * The data sessions for the owner `c`: its own, unless a retired duplicate is in its grace and the other side may
   * not have `c`'s yet (we did not dial `c`, and nothing came over it since it was ready): then the retired one's,
   * with `c`'s accepted too (see the header).
   */
  private dataSessions(c: PeerConnection): { session: SecureSession | null; graceSession: SecureSession | null } {
    const retired = this.retired.get(c.remote!.name)?.conn.session ?? null;
    if (retired === null || c.session === null) return { session: c.session, graceSession: null };
    if (c.isOutbound || c.isHeardSinceReady) return { session: c.session, graceSession: retired };
    return { session: retired, graceSession: c.session };
  }

  private isEstablished(c: PeerConnection): boolean {
    return c.phase === 'ready' && (!this.requireDataPathConfirm || (c.remote !== null && this.dataPathUp.has(c.remote.name)));
  }

  private readyNeighbourNames(): PeerName[] {
    const out: PeerName[] = [];
    for (const [name, c] of this.owners) if (c.phase === 'ready') out.push(name);
    return out;
  }

  /** A ready connection leads to `addr`: we dialled it, or its host dialled us. */
  private isConnectedTo(addr: string): boolean {
    let host: string;
    try {
      host = splitAddress(addr).host;
    } catch {
      return false;
    }
    for (const c of this.owners.values()) {
      if (c.phase !== 'ready') continue;
      if (c.isOutbound ? c.remoteAddr === addr : c.remoteHost === host) return true;
    }
    return false;
  }

  /**
   * Where to dial each peer we have no connection to: the address its neighbours dialled (its listen address),
   * else its host at the control port, else where we reached it before we lost it. Not yet filtered by policy.
   */
  private peerAddresses(): Map<PeerName, string> {
    const byPeer = new Map<PeerName, string>();
    const now = this.deps.clock.now();
    for (const [name, lost] of this.lostPeers) {
      if (now - lost.lostAt >= this.lostPeerWindowMs) this.lostPeers.delete(name);
      else if (!this.owners.has(name)) byPeer.set(name, lost.address);
    }
    for (const e of this.topology.peers.values()) {
      if (e.name === this.name) continue;
      for (const c of e.connections) {
        if (c.name === this.name || this.owners.has(c.name)) continue;
        if (c.isOutbound)
          byPeer.set(c.name, c.address); // the address its peer dialled: its listen address
        else if (!byPeer.has(c.name)) {
          try {
            byPeer.set(c.name, joinAddress(splitAddress(c.address).host, DEFAULT_CONTROL_PORT));
          } catch {
            // an address we cannot parse: nothing to dial
          }
        }
      }
    }
    return byPeer;
  }

  /**
   * Two routers that learn of each other from the same gossip would both dial, and one of the two connections would
   * be thrown away (a second handshake, a duplicate in its grace, sessions to juggle): in a forming mesh that is every
   * pair. So the one with the smaller name (the initiator duplicate resolution prefers) dials at once, and the other
   * waits `DISCOVERY_YIELD_MS` for that dial before making its own (it may not come: the smaller one may not reach
   * us, e.g. we are behind NAT). Lost peers and user-given targets are dialled by both at once.
   */
  private firstDialDelay(addr: string): { ms: number; reason: string } | null {
    const peer = this.discoveredPeers.get(addr);
    if (peer === undefined || peer < this.name || this.lostPeers.has(peer)) return null;
    return { ms: DISCOVERY_YIELD_MS, reason: 'discovered: waiting for the peer to dial first (the smaller name dials)' };
  }

  /** Listen addresses of peers in the topology or lately lost that we have no connection to. */
  private discoveredAddresses(): string[] {
    const byPeer = this.peerAddresses();
    this.discoveredPeers.clear();
    for (const [name, addr] of byPeer) this.discoveredPeers.set(addr, name);
    const localHosts = new Set<string>();
    for (const h of this.deps.localHosts?.() ?? []) localHosts.add(canonicalHost(h));
    const listenHost = this.listener ? splitAddress(this.listener.address).host : '';
    if (listenHost !== '') localHosts.add(canonicalHost(listenHost));
    const out: string[] = [];
    for (const addr of byPeer.values()) {
      const why = discoveryRefusal(addr, localHosts);
      if (why === null) {
        out.push(addr);
        continue;
      }
      // Counted once per address (until 1024 others were refused since), not at every pass.
      if (this.refusedDiscoveries.has(addr)) continue;
      this.refusedDiscoveries.add(addr);
      if (this.refusedDiscoveries.size > 1024) this.refusedDiscoveries.delete(this.refusedDiscoveries.values().next().value!);
      this.refused(`discovery_refused_${why}`, addr, `gossip names ${addr} (${why.replace('_', ' ')}): not dialled`);
    }
    return out;
  }

  // --- topology ----------------------------------------------------------------------------------------------

  private updateLocalEntry(): void {
    const entries: ConnectionEntry[] = [];
    for (const [name, c] of this.owners) {
      if (c.phase !== 'ready') continue;
      entries.push({ name, address: c.remoteAddr, isOutbound: c.isOutbound, isEstablished: this.isEstablished(c) });
    }
    const before = new Set(this.topology.local.connections.map((c) => c.name));
    if (this.topology.setLocalConnections(entries)) {
      // Our entry, and the entries of peers newly connected to us, so receivers can attach them to their view. Not
      // every neighbour's entry each time: with N neighbours that made each change cost N entries of N connections.
      this.spread.queue([this.name, ...entries.filter((e) => !before.has(e.name)).map((e) => e.name)]);
      this.topologyChanged();
    }
  }

  private topologyGossiper(): Gossiper {
    // `via`: the neighbour the update came over (the source, for a broadcast), so a name's holders are told apart by path.
    const merge = (update: Uint8Array, via: PeerName): Uint8Array | null => {
      const before = this.topology.local.version;
      const entries = decodeTopology(update);
      const delta = this.topology.apply(entries);
      this.spread.heard(via, entries);
      if (delta.length === 0) return null;
      this.observeHolders(delta, via);
      this.topologyChanged();
      this.wakePeers(signsOfLife(delta, this.name));
      // What was new to us goes on to the other neighbours, coalesced; returned only to be counted as a merge.
      this.spread.queue(
        delta.filter((e) => e.name !== this.name).map((e) => e.name),
        via,
      );
      if (this.topology.local.version === before) return encodeTopology(delta);
      // We heard a copy of our own entry above ours (forged, or from an earlier run) and jumped past it. That is a
      // local change: it goes to every neighbour, the one that brought the copy included (it holds the copy for sure;
      // relaying the delta would skip it, and it would keep the copy until a periodic round).
      const { uid, version } = this.topology.local;
      this.outbidOwnEntry(
        before,
        entries.some((e) => e.name === this.name && e.uid === uid && e.version >= before && e.version < version),
      );
      const others = delta.filter((e) => e.name !== this.name);
      return others.length === 0 ? null : encodeTopology(others);
    };
    return {
      gossip: () => encodeTopologyChunks(this.topology.peers.values()),
      // A summary costs the receiver a round trip before it has our entries: only worth it once the state is big.
      gossipFor: (peer, kind) =>
        this.topology.stateBytes > this.summaryAboveBytes && this.owners.get(peer)?.remote?.features.includes(TOPOLOGY_SUMMARY_FEATURE)
          ? encodeSummary(kind, this.topology.peers.values())
          : encodeTopologyChunks(this.topology.peers.values()),
      onGossip: (update, via) => (isSummary(update) ? this.onSummary(update, via) : merge(update, via)),
      onGossipBroadcast: (src, update) => void merge(update, src),
      onGossipUnicast: () => {},
      spreadsItself: true,
    };
  }

  /**
   * A neighbour's topology summary (topology-summary.ts): queue it what it lacks; answer a round's summary with ours
   * when it holds something newer. Answered at most 4 at once and 1 a second per neighbour (each may cost us sending
   * our whole state): the rest are counted as `topology_summary_rate_limited` and dropped. Throws `DecodeError`.
   */
  private onSummary(update: Uint8Array, via: PeerName): null {
    const summary = decodeSummary(update);
    const now = this.deps.clock.now();
    let budget = this.summaryBudgets.get(via);
    if (budget === undefined) {
      // Dropped when its connection closes; frames come only over authenticated connections, so this stays small.
      if (this.summaryBudgets.size >= 4096) this.summaryBudgets.delete(this.summaryBudgets.keys().next().value!);
      this.summaryBudgets.set(via, (budget = new TokenBucket(4, 1, now)));
    }
    if (!budget.take(now)) {
      this.count('topology_summary_rate_limited');
      return null;
    }
    const { theyLack, theyHaveNewer } = compareSummary(this.topology.peers, summary.rows);
    this.spread.queueTo(via, theyLack);
    if (summary.kind === 'round' && theyHaveNewer) this.topologyChannel.gossipTo(via, encodeSummary('reply', this.topology.peers.values()));
    return null;
  }

  /**
   * Our entry jumped past a copy of itself from gossip: send it to every neighbour; counted. A copy with our own uid
   * can only be forged (we alone write our entry, and start each run with a new uid): logged once. One from an earlier
   * run (another uid) is normal after a restart and already logged as a possible name collision.
   */
  private outbidOwnEntry(previousVersion: number, isForged: boolean): void {
    const local = this.topology.local;
    this.count('topology_own_entry_outbid');
    this.sendOwnEntry();
    if (!isForged || this.isOwnOutbidLogged) return;
    this.isOwnOutbidLogged = true;
    this.log.warn(
      { version: local.version, previous: previousVersion, reason: 'forged copy of our own topology entry' },
      `heard a copy of our own topology entry with our uid at a version we never published (ours was ${previousVersion}): forged by a member; re-published ours above it at ${local.version} (counted as topology_own_entry_outbid)`,
    );
  }

  /** Our entry as it is now to every neighbour, at most once per `OWN_OUTBID_INTERVAL_MS` (later calls wait). */
  private sendOwnEntry(): void {
    if (this.ownOutbidTimer !== null || this.phase === 'stopped') return; // the waiting send will carry the newest
    const wait = this.lastOwnOutbidAt + OWN_OUTBID_INTERVAL_MS - this.deps.clock.now();
    if (wait > 0) {
      this.ownOutbidTimer = this.deps.clock.setTimeout(() => {
        this.ownOutbidTimer = null;
        this.sendOwnEntry();
      }, wait);
      return;
    }
    this.lastOwnOutbidAt = this.deps.clock.now();
    this.spread.queue([this.name]);
  }

  /** An entry refused by a topology cap or as implausible: counted always, logged once per reason and peer. */
  private topologyRefused(reason: TopologyRefusal, e: PeerEntry): void {
    this.count(`topology_refused_${reason}`);
    const key = `${reason}|${e.name}`;
    if (this.loggedRefusals.has(key) || this.loggedRefusals.size >= 256) return;
    this.loggedRefusals.add(key);
    const why =
      reason === 'implausible_version'
        ? `version ${e.version} is above the plausible bound (wall clock ms + 1 h)`
        : reason === 'peer_cap'
          ? `the topology already holds its cap of peers`
          : `the topology would exceed its cap of encoded bytes`;
    this.log.warn(
      { peer: e.name, version: e.version, reason: `topology ${reason.replace('_', ' ')}` },
      `refused a topology entry for ${e.name}: ${why}`,
    );
  }

  private topologyChanged(): void {
    this.isRoutesDirty = true;
    // A name nobody reachable holds any more is free again: a restarted holder gets back in at once.
    this.nameHolders.forgetUnless((name) => this.topology.peers.has(name));
    this.noteReachability();
    this.maker.refresh();
    this.changed();
  }

  /**
   * The topology drops peers we can no longer reach (topology.ts gc): warn for each peer that left it, and say at
   * info when one comes back.
   */
  private noteReachability(): void {
    const now = this.deps.clock.now();
    const next = new Map<PeerName, string>();
    for (const e of this.topology.peers.values()) if (e.name !== this.name) next.set(e.name, e.nickname);
    for (const [name, nickname] of this.reachable) {
      if (next.has(name)) continue;
      this.count('peer_unreachable');
      this.unreachableSince.delete(name);
      this.unreachableSince.set(name, now);
      while (this.unreachableSince.size > this.maxLostPeers) this.unreachableSince.delete(this.unreachableSince.keys().next().value!);
      if (this.partitionLog.shouldLog(`unreachable:${name}`, now)) {
        const lost = this.lostPeers.get(name);
        this.log.warn(
          { peer: name, nickname, addr: lost?.address, reason: 'no path in the topology' },
          'peer unreachable (logged once per peer per 30 s)',
        );
      }
    }
    for (const [name, nickname] of next) {
      if (this.reachable.has(name)) continue;
      const since = this.unreachableSince.get(name);
      if (since === undefined) continue; // first seen, not a return
      this.unreachableSince.delete(name);
      if (this.partitionLog.shouldLog(`reachable:${name}`, now)) {
        this.log.info({ peer: name, nickname, downSeconds: (now - since) / 1000 }, 'peer reachable again');
      }
    }
    this.reachable = next;
  }

  private changed(): void {
    if (this.isChangeQueued) return;
    this.isChangeQueued = true;
    queueMicrotask(() => {
      this.isChangeQueued = false;
      for (const l of this.listeners) {
        try {
          l();
        } catch (err) {
          this.log.error({ err }, 'mesh change listener failed');
        }
      }
    });
  }

  /**
   * Entries accepted from gossip: a name whose uid came back after another held it has two live routers
   * (name-holders.ts). Count and say so once per name; close our connection to the one that is not the holder.
   */
  private observeHolders(delta: readonly { name: PeerName; uid: string }[], via: PeerName): void {
    const now = this.deps.clock.now();
    for (const e of delta) {
      if (e.name === this.name) continue;
      const holder = this.nameHolders.observe(e.name, e.uid, via, now);
      if (holder === undefined) continue;
      this.count('peer_name_collision');
      const other = holder === e.uid ? undefined : e.uid;
      if (!this.collisionsLogged.has(e.name) && this.collisionsLogged.size < 256) {
        this.collisionsLogged.add(e.name);
        this.log.warn(
          { peer: e.name, uid: holder, other, reason: 'peer name collision' },
          `peer name ${e.name} is held by two live routers (their topology entries keep outbidding each other): keeping uid ${holder}, refusing the other for a minute; remove <state-dir>/peer-name on one of them and restart it`,
        );
      }
      const owner = this.owners.get(e.name);
      if (owner !== undefined && owner.remote!.uid !== holder) {
        owner.close('peer name collision', new PeerNameCollisionError(e.name, holder, owner.remote!.uid, owner.remoteAddr));
      }
    }
  }

  /** A confirmed connection from a peer whose name another live uid holds (name-holders.ts) is refused. */
  private refuseHeldName(c: PeerConnection): void {
    const remote = c.remote!;
    const holder = this.nameHolders.holder(remote.name, this.deps.clock.now());
    if (holder === undefined || holder === remote.uid) return;
    this.count('peer_name_collision');
    throw new PeerNameCollisionError(remote.name, holder, remote.uid, c.remoteAddr);
  }

  private count(reason: string): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
  }
}

/**
 * Peers a topology delta shows alive: each peer whose own entry got newer (it wrote it, or restarted with a new
 * uid), and each peer such an entry lists as established with it.
 */
function signsOfLife(delta: readonly PeerEntry[], self: PeerName): PeerName[] {
  const out: PeerName[] = [];
  for (const e of delta) {
    if (e.name !== self) out.push(e.name);
    for (const c of e.connections) if (c.isEstablished && c.name !== self) out.push(c.name);
  }
  return out;
}

function describe(c: PeerConnection): string {
  return `${c.remote?.nickname || c.remote?.name} (${c.remoteAddr})`;
}

/** "h2" → "h2:6783"; "h2:7000" stays. Throws `AddressError` on garbage. */
function normalizeAddress(addr: string): string {
  const { host, port } = splitAddress(addr.trim(), DEFAULT_CONTROL_PORT);
  return joinAddress(host, port);
}
