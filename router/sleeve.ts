/**
 * `Sleeve`: the portable data path. Ethernet frames from the local bridge travel to neighbour peers in UDP
 * datagrams (format: ./sleeve-format.ts), are relayed along the control plane's routes, and come out on the far
 * peers' bridges. Behind the `Datapath` seam; the control plane feeds it `ForwardingSnapshot`s.
 *
 * This file assembles the parts and swaps snapshots; each part states its own pipeline:
 *   ./forwarding-decision.ts  where a frame goes: MAC learning, lookup, next hops (decides; carries nothing)
 *   ./sleeve-send.ts          capture batch -> records packed into per-neighbour datagrams -> seal -> underlay
 *   ./sleeve-receive.ts       underlay batch -> header, sender, open runs -> deliver to the bridge or relay
 *   ./pieces.ts               offloaded super-frames cut into piece datagrams and joined again
 *   ./heartbeats.ts           per-neighbour heartbeats and health, on a timer
 *   ./sleeve-counters.ts      the counters every part increments
 *   ./peer-numbers.ts         peers as small numbers inside the loops
 *   ./sleeve-neighbour.ts     per-neighbour state and the snapshot as the loops see it
 *
 * Single-threaded: `apply` runs between batches (never inside one), so a batch always sees one snapshot.
 */
import type { Capture } from './capture.js';
import type { Underlay } from './underlay.js';
import type { Datapath, ForwardingSnapshot, PeerHealth, PeerId } from './datapath.js';
import type { Clock } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { HEADER_BYTES, RECORD_HEADER_BYTES } from './sleeve-format.js';
import { MacTable, type MacEntry } from './mac-table.js';
import { checksumCompleteJs, type ChecksumComplete } from './offload.js';
import { ForwardingDecision } from './forwarding-decision.js';
import { PeerNumbers } from './peer-numbers.js';
import { newCounters } from './sleeve-counters.js';
import { ETHERNET_HEADER_BYTES, Neighbour, outerBytesOf, peerLabel, type SleeveView } from './sleeve-neighbour.js';
import { SleeveSend, defaultCopyBytes, type CopyBytes } from './sleeve-send.js';
import { SleeveReceive } from './sleeve-receive.js';
import { PieceCutter, type PiecesOptions } from './pieces.js';
import { TcpCoalescer, type TcpCoalescerOptions } from './tcp-coalesce.js';
import { Heartbeats, healthOf, type HeartbeatsOptions } from './heartbeats.js';
import { WeftError } from '../runtime/errors.js';

export { defaultCopyBytes, type CopyBytes } from './sleeve-send.js';
export type { SleeveCounters } from './sleeve-counters.js';

/** IPv4's minimum MTU (RFC 791): a snapshot leaving less for frames is refused. */
const MIN_OVERLAY_MTU_BYTES = 68;
/** Largest IPv4 UDP datagram. */
const MAX_UNDERLAY_MTU_BYTES = 65_535;
/** Most peers the sleeve knows at one time (Weave networks have hundreds at most); numbers of peers gone are reused. */
const MAX_PEER_NUMBERS = 4096;

/** A snapshot the sleeve cannot carry frames with (the control plane built it wrong). */
export class SleeveSnapshotError extends WeftError {
  readonly code = 'SLEEVE_BAD_SNAPSHOT';
  override readonly status = 500;
  constructor(detail: string) {
    super(`forwarding snapshot refused: ${detail}`);
  }
}

export interface SleeveDeps {
  capture: Capture;
  underlay: Underlay;
  clock: Clock;
  log: Logger;
  /** Copier for frame bytes into datagrams. @default defaultCopyBytes */
  copyBytes?: CopyBytes;
  /** Finishes partial checksums of captured frames (the addon's `checksumComplete`). @default checksumCompleteJs */
  checksumComplete?: ChecksumComplete;
}

export interface SleeveOptions extends HeartbeatsOptions, PiecesOptions, TcpCoalescerOptions {
  /** A MAC not seen for this long is forgotten and its frames flooded again. @default 300_000 */
  macExpiryMs?: number;
  /** Most MACs remembered (local and remote together). @default 8192 */
  macTableCapacity?: number;
  /** Most peers known at one time (numbers of peers that left are reused). @default 4096 */
  maxPeers?: number;
}

/** See the module comment for the parts. */
export class Sleeve implements Datapath {
  private readonly capture: Capture;
  private readonly underlay: Underlay;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly stats = newCounters();
  /** MAC -> peer number. */
  private readonly macs: MacTable;
  private readonly peers: PeerNumbers;
  private readonly decision: ForwardingDecision<Neighbour>;
  private readonly send: SleeveSend;
  private readonly receive: SleeveReceive;
  private readonly pieces: PieceCutter;
  private readonly heartbeats: Heartbeats;
  private view: SleeveView | null = null;
  private isRunning = false;
  private isStopped = false;

  constructor(deps: SleeveDeps, options: SleeveOptions = {}) {
    this.capture = deps.capture;
    this.underlay = deps.underlay;
    this.clock = deps.clock;
    this.log = deps.log;
    const counters = this.stats;
    this.macs = new MacTable({ expiryMs: options.macExpiryMs ?? 300_000, capacity: options.macTableCapacity ?? 8192 });
    this.peers = new PeerNumbers(options.maxPeers ?? MAX_PEER_NUMBERS);
    this.decision = new ForwardingDecision<Neighbour>(this.macs, this.peers, counters);
    const common = { capture: deps.capture, clock: deps.clock, counters, peers: this.peers, decision: this.decision };
    const checksumComplete = deps.checksumComplete ?? checksumCompleteJs;
    this.send = new SleeveSend({
      ...common,
      underlay: deps.underlay,
      copyBytes: deps.copyBytes ?? defaultCopyBytes,
      checksumComplete,
    });
    this.pieces = new PieceCutter({ ...common, send: this.send, checksumComplete }, options);
    this.send.cutter = this.pieces;
    const coalescer = new TcpCoalescer(
      { capture: deps.capture, counters, checksumComplete, copyBytes: deps.copyBytes ?? defaultCopyBytes },
      options,
    );
    this.receive = new SleeveReceive({ ...common, send: this.send, pieces: this.pieces, coalescer });
    this.heartbeats = new Heartbeats(
      {
        underlay: deps.underlay,
        clock: deps.clock,
        log: deps.log,
        send: this.send,
        counters,
        onTick: (now) => {
          this.macs.expire(now);
          this.pieces.expire(now);
        },
      },
      options,
    );
    this.send.onAwaiting = this.heartbeats.noteAwaiting;
  }

  /** Start the underlay, then the capture, then heartbeats. Idempotent; after `stop()` it does nothing. */
  async start(): Promise<void> {
    if (this.isRunning || this.isStopped) return;
    await this.underlay.start(this.receive.onDatagrams);
    await this.capture.start(this.send.onFrames);
    if (this.isStopped) return; // stopped while starting
    this.isRunning = this.send.isRunning = true;
    this.heartbeats.start();
  }

  /** Stop heartbeats, the capture and the underlay. Idempotent; safe after a failed start. */
  async stop(): Promise<void> {
    this.isStopped = true;
    this.isRunning = this.send.isRunning = false;
    this.heartbeats.stop();
    this.send.reset();
    await this.capture.stop();
    await this.underlay.stop();
  }

  /**
   * Swap in `snapshot` whole. Neighbours kept from the last snapshot keep their health and their buffer (unless
   * their MTU or tag size changed); MACs of peers no longer reachable are forgotten, and the numbers of peers no
   * longer in the snapshot are released; a neighbour that leaves while established is reported as not established.
   * New neighbours get a heartbeat at once (when running). Throws `SleeveSnapshotError` (and keeps the old snapshot)
   * when the underlay MTU leaves no room for a 68-byte IP packet.
   */
  apply(snapshot: ForwardingSnapshot): void {
    const mtu = snapshot.underlayMtuBytes;
    const old = this.view;
    if (!Number.isInteger(mtu) || mtu > MAX_UNDERLAY_MTU_BYTES) {
      throw new SleeveSnapshotError(`underlay MTU ${mtu} is not an integer in [0, ${MAX_UNDERLAY_MTU_BYTES}]`);
    }
    for (const path of snapshot.neighbours.values()) {
      const room =
        mtu - outerBytesOf(path.endpoint) - HEADER_BYTES - (path.session?.overheadBytes ?? 0) - RECORD_HEADER_BYTES - ETHERNET_HEADER_BYTES;
      if (room < MIN_OVERLAY_MTU_BYTES) {
        throw new SleeveSnapshotError(
          `underlay MTU ${mtu} leaves ${room} bytes for IP packets to peer ${peerLabel(path.peer)}, below IPv4's minimum of 68; fix the MTU the control plane measured`,
        );
      }
    }
    const local = snapshot.localPeer;
    const localNumber = this.numberOf(local);
    if (localNumber < 0) throw new SleeveSnapshotError(`local peer ${peerLabel(local)} is not a valid 48-bit name`);
    const kept = new Set<number>([localNumber]);

    const byPeer = new Map<PeerId, Neighbour>();
    const fresh: Neighbour[] = [];
    for (const path of snapshot.neighbours.values()) {
      const number = this.numberOf(path.peer);
      if (path.peer === local || number < 0) continue;
      kept.add(number);
      let n = old?.byPeer.get(path.peer);
      if (n === undefined) {
        n = new Neighbour(path.peer, number, path.endpoint, path.session, mtu);
        n.graceSession = path.graceSession ?? null;
        fresh.push(n);
      } else {
        if (n.session !== path.session) {
          n.clearSeq = 0;
          // Health seen under another session says nothing about this one, unless the two are a duplicate connection's
          // pair in its grace (same peer, same launch, same path: gossip/mesh.ts).
          const isSwap =
            n.session !== null && (path.graceSession === n.session || (path.session !== null && path.session === n.graceSession));
          if (!isSwap) {
            n.lastHeartbeatMs = n.lastAckMs = n.heartbeatSentMs = n.heartbeatOutMs = n.unackedSinceMs = -1;
            n.peerIdleHeartbeatMs = 0;
            n.idleBeatAtMs = -1;
          }
        }
        n.takeEndpoint(path.endpoint);
        if (n.session !== path.session || n.graceSession !== (path.graceSession ?? null)) {
          // A new sequence of datagrams (or two, interleaved, during a duplicate's grace): gaps count afresh.
          n.seqInNext[0] = n.seqInNext[1] = -1;
        }
        n.session = path.session;
        n.graceSession = path.graceSession ?? null;
        n.resize(mtu);
      }
      byPeer.set(path.peer, n);
    }
    const unicast = new Map<number, Neighbour>();
    for (const [dst, via] of snapshot.unicastNextHop) {
      const n = byPeer.get(via);
      const number = this.numberOf(dst);
      if (n !== undefined && dst !== local && number >= 0) {
        unicast.set(number, n);
        kept.add(number);
      }
    }
    const broadcast = new Map<number, Neighbour[]>();
    for (const [src, hops] of snapshot.broadcastNextHops) {
      const number = this.numberOf(src);
      if (number < 0) continue;
      kept.add(number);
      const ns: Neighbour[] = [];
      for (const h of hops) {
        const n = byPeer.get(h);
        if (n !== undefined && !ns.includes(n)) ns.push(n);
      }
      broadcast.set(number, ns);
    }
    const span = this.peers.span;
    const neighbourByNumber = new Array<Neighbour | null>(span).fill(null);
    const unicastByNumber = new Array<Neighbour | null>(span).fill(null);
    const broadcastByNumber = new Array<readonly Neighbour[] | null>(span).fill(null);
    for (const n of byPeer.values()) neighbourByNumber[n.number] = n;
    for (const [number, n] of unicast) unicastByNumber[number] = n;
    for (const [number, ns] of broadcast) broadcastByNumber[number] = ns;
    let capturedUnicastByNumber = unicastByNumber;
    if (snapshot.fastdpPeers !== undefined && snapshot.fastdpPeers.size > 0) {
      capturedUnicastByNumber = unicastByNumber.slice();
      for (const peer of snapshot.fastdpPeers) {
        const number = this.numberOf(peer);
        if (number >= 0 && number < span) capturedUnicastByNumber[number] = null;
      }
    }
    const neighbours = [...byPeer.values()];
    const view: SleeveView = {
      localPeer: local,
      localNumber,
      neighbours,
      byPeer,
      neighbourByNumber,
      unicastByNumber,
      capturedUnicastByNumber,
      broadcastByNumber,
      localBroadcast: broadcast.get(localNumber) ?? [],
    };
    this.view = this.send.view = this.receive.view = this.heartbeats.view = view;
    this.send.resetDirty(neighbours.length);

    if (old !== null) {
      for (let number = 0; number < old.unicastByNumber.length; number++) {
        if (old.unicastByNumber[number] !== null && !unicast.has(number)) this.macs.forgetPeer(number);
      }
      if (old.localNumber !== localNumber) this.macs.forgetPeer(old.localNumber);
      for (const n of old.neighbours) {
        if (byPeer.get(n.peer) !== n && n.isEstablished) {
          n.isEstablished = false;
          this.heartbeats.notify(n);
        }
      }
    }
    // Numbers of peers this snapshot no longer mentions go back, with whatever was kept for them.
    for (let number = 0; number < span; number++) {
      if (kept.has(number) || this.peers.idOf(number) < 0) continue;
      this.macs.forgetPeer(number);
      this.pieces.forget(number);
      this.peers.release(number);
    }
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug({ neighbours: neighbours.length, peers: unicast.size, mtu }, 'sleeve snapshot applied');
    }
    if (this.isRunning) this.heartbeats.greet(fresh);
  }

  counters(): Readonly<Record<string, number>> {
    return { ...this.stats };
  }

  peerHealth(): ReadonlyMap<PeerId, PeerHealth> {
    const out = new Map<PeerId, PeerHealth>();
    for (const n of this.view?.neighbours ?? []) out.set(n.peer, healthOf(n));
    return out;
  }

  onHealthChange(listener: (peer: PeerId, health: PeerHealth) => void): void {
    this.heartbeats.onHealthChange(listener);
  }

  /** The live MAC table with peer names (for reports and tests; allocates). */
  macEntries(): MacEntry[] {
    return this.macs.entries(this.clock.now()).map((e) => ({ ...e, peer: this.peers.idOf(e.peer) }));
  }

  /** Peer numbers held now (for tests: they are released when peers leave the snapshot). */
  get peerNumbersInUse(): number {
    return this.peers.size;
  }

  /** The number of peer `id`, handing out the next one on first sight; -1 when out of numbers or not a name. */
  private numberOf(id: PeerId): number {
    const number = this.peers.numberOf(id);
    if (number < 0 && Number.isInteger(id) && id > 0 && id < 2 ** 48) {
      this.log.warn(
        { peer: peerLabel(id) },
        `more than ${this.peers.capacity} peers known at once: frames to and from this one are dropped`,
      );
    }
    return number;
  }
}
