/**
 * `Sleeve`: the portable data path. Ethernet frames from the local bridge travel to neighbour peers in UDP
 * datagrams (format: ./sleeve-format.ts), are relayed along the control plane's routes, and come out on the far
 * peers' bridges. Behind the `Datapath` seam; the control plane feeds it `ForwardingSnapshot`s.
 *
 * Pipeline (one synchronous pass per batch; nothing allocated, awaited or logged per packet):
 *   capture batch -> per frame: learn the source MAC as local -> destination MAC lookup:
 *       local (the bridge already delivered it): drop | remote peer: its unicast next hop |
 *       group, unknown or expired: flood to the broadcast next hops of our own tree
 *     -> append a record to that neighbour's pending datagram (a preallocated buffer per neighbour: the one copy we
 *        pay); a full datagram, and every pending one at the end of the batch, is sealed in place when the
 *        neighbour has a session, then handed to `underlay.send`; `underlay.flush()` once per batch.
 *   underlay batch -> per datagram: header (length, magic, type, seq) -> sender must be a neighbour -> open in place
 *       (replay window inside the session) when sealed; sealed/clear must match the neighbour's session ->
 *       frames: per record: for us or broadcast: learn source MAC -> capturing peer, write to the bridge;
 *                unicast for another peer: relay to its next hop, neither learned nor delivered;
 *                broadcast: also relay along the capturing peer's tree (never back to the sender)
 *       heartbeat: note the time, answer with an ack; ack: note the time.
 *     -> pending datagrams flushed as above; `capture.flush()` once per batch.
 *   heartbeat timer (every `heartbeatMs`, control-plane side): heartbeat each neighbour, decide `isEstablished`
 *     from the times the loops noted, fire `onHealthChange` on transitions, expire MACs.
 *
 * A frame too big for the path (its record does not fit a datagram) is dropped; when it is unicast IPv4 with Don't
 * Fragment, the container is told the overlay MTU with an ICMP "fragmentation needed" written to the bridge.
 *
 * Peers inside the loops are small numbers (0, 1, 2, ... in order of first appearance in a snapshot), not 48-bit
 * names: a 48-bit value read from a packet and handed to another function is boxed on the heap unless the call is
 * inlined, while small integers never are. Names in headers are mapped to numbers by a typed-array table read
 * straight from the packet (`MacTable.lookupAt`, without expiry), and written back from `idBytes`; per-number
 * arrays replace maps keyed by name.
 *
 * Single-threaded: `apply` runs between batches (never inside one), so a batch always sees one snapshot.
 */
import type { Capture, FrameBatch } from './capture.js';
import type { DatagramBatch, Endpoint, Underlay } from './underlay.js';
import type { Datapath, ForwardingSnapshot, PeerHealth, PeerId } from './datapath.js';
import { OpenResult, type DataSession } from '../crypto/data-session.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import {
  BROADCAST_PEER,
  HEADER_BYTES,
  HeaderDrop,
  MAX_OFFLOADED_FRAME_BYTES,
  MIN_FRAME_BYTES,
  MessageType,
  PIECE_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  SLEEVE_MAGIC,
  checkHeader,
  countRecords,
  flagsFor,
  isEncryptedFlags,
  keyPhaseOf,
  readSeq,
} from './sleeve-format.js';
import { LearnResult, MacTable, type MacEntry } from './mac-table.js';
import { FRAG_NEEDED_MAX_BYTES, writeFragmentationNeeded } from './icmp.js';
import { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_HEADER_BYTES, checksumCompleteJs, isSaneVnetHeader, type ChecksumComplete } from './offload.js';

/** Outer IPv4 + UDP headers, which the underlay MTU counts and a datagram's payload does not. */
const OUTER_IP_UDP_BYTES = 20 + 8;
/** Inner Ethernet header (the overlay MTU counts the IP packet; a record carries the whole frame). */
const ETHERNET_HEADER_BYTES = 14;
/** IPv4's minimum MTU (RFC 791): a snapshot leaving less for frames is refused. */
const MIN_OVERLAY_MTU_BYTES = 68;
/** Largest IPv4 UDP datagram. */
const MAX_UNDERLAY_MTU_BYTES = 65_535;
/** Most distinct peers the sleeve numbers over its life (Weave networks have hundreds at most). */
const MAX_PEER_NUMBERS = 4096;
/** The largest tag a data session appends (ChaCha20-Poly1305's); pieces leave room for it on every hop. */
const MAX_TAG_BYTES = 16;
/** Room for a heartbeat: header plus the largest tag a session may append. */
const CONTROL_BUFFER_BYTES = HEADER_BYTES + 256;
/** Piece datagrams sealed in one call at most (a 64 KiB super-frame is about 45). */
const SEAL_RUN_MAX = 128;
/** Received datagrams opened in one call at most. */
const OPEN_RUN_MAX = 256;
const TWO_POW_32 = 0x1_0000_0000;
const TWO_POW_53 = 2 ** 53;

/** Copies `length` bytes between buffers and returns `length` (e.g. the native addon's `copyBytes`). */
export type CopyBytes = (source: Buffer, sourceOffset: number, target: Buffer, targetOffset: number, length: number) => number;

/**
 * Byte loop for short frames, `Buffer#copy` for the rest. `Buffer#copy` of a range makes a view per call on Node 20
 * (one small allocation per frame); pass the native addon's `copyBytes` to avoid even that.
 */
export const defaultCopyBytes: CopyBytes = (source, sourceOffset, target, targetOffset, length) => {
  if (length <= 128) {
    for (let i = 0; i < length; i++) target[targetOffset + i] = source[sourceOffset + i]!;
    return length;
  }
  return source.copy(target, targetOffset, sourceOffset, sourceOffset + length);
};

/** A snapshot the sleeve cannot carry frames with (the control plane built it wrong). */
export class SleeveSnapshotError extends Error {
  readonly code = 'SLEEVE_BAD_SNAPSHOT';
  constructor(detail: string) {
    super(`forwarding snapshot refused: ${detail}`);
    this.name = 'SleeveSnapshotError';
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

export interface SleeveOptions {
  /** Interval between heartbeats to each neighbour (and between health decisions). @default 1000 */
  heartbeatMs?: number;
  /**
   * A neighbour is established while both its last heartbeat (its packets reach us) and its last ack of ours (ours
   * reach it) are at most this old. @default 5000 (five heartbeats: one lost datagram does not flap the state)
   */
  heartbeatTimeoutMs?: number;
  /** A MAC not seen for this long is forgotten and its frames flooded again. @default 300_000 */
  macExpiryMs?: number;
  /** Most MACs remembered (local and remote together). @default 8192 */
  macTableCapacity?: number;
}

/**
 * Counters, read at scrape time. Frames are counted per copy: a broadcast sent to two neighbours is two
 * `frames_out`. Every drop is counted under `drop_<reason>`.
 */
export interface SleeveCounters {
  /** Frames read from the bridge. */
  frames_captured: number;
  /** Records appended to datagrams for neighbours (captured or relayed). */
  frames_out: number;
  /** Records received in accepted datagrams. */
  frames_in: number;
  /** Frames written to the bridge. */
  frames_delivered: number;
  /** Records relayed to another neighbour (unicast through us, or broadcast along a tree). */
  frames_forwarded: number;
  datagrams_out: number;
  datagrams_in: number;
  /** UDP payload bytes sent. */
  bytes_out: number;
  /** UDP payload bytes received (accepted or not). */
  bytes_in: number;
  heartbeats_out: number;
  heartbeats_in: number;
  heartbeat_acks_out: number;
  heartbeat_acks_in: number;
  /** A MAC seen behind a different peer than before (a container moved, or a loop). */
  mac_moves: number;
  /** A new MAC not learned because the table was full. */
  mac_table_full: number;
  /** ICMP "fragmentation needed" replies written to the bridge. */
  icmp_frag_needed: number;
  /** Frames captured before the first snapshot. */
  drop_no_snapshot: number;
  /** Captured frames shorter than an Ethernet header. */
  drop_runt: number;
  /** Captured frames to a MAC on our own bridge (the bridge already delivered them). */
  drop_local_dest: number;
  /** Frames to a peer with no route. */
  drop_no_route: number;
  /** Frames too big for the path MTU to the next hop. */
  drop_too_big: number;
  /** Records that came back to their capturing peer or would go back to their sender. */
  drop_loop: number;
  /** Frames the bridge would not take. */
  drop_capture_full: number;
  /** Datagrams the session refused to seal (no current key). */
  drop_seal: number;
  /** Datagrams shorter than the header, or too short to hold a tag. */
  drop_short: number;
  drop_magic: number;
  /** Reserved message type or flag bits. */
  drop_unknown_type: number;
  drop_bad_seq: number;
  /** Datagrams whose sender is not a neighbour in the snapshot. */
  drop_unknown_sender: number;
  /** Clear datagrams from a neighbour we share a session with. */
  drop_cleartext: number;
  /** Sealed datagrams from a neighbour we share no session with. */
  drop_unexpected_sealed: number;
  /** Authentication failed. */
  drop_decrypt: number;
  /** Sequence number already seen or behind the replay window. */
  drop_replay: number;
  /** No receive key for the datagram's key phase. */
  drop_no_key: number;
  /** A record cut short, overrunning the body, or holding less than an Ethernet header. */
  drop_bad_record: number;
  /** Records whose capturing peer is not in the snapshot (nowhere to learn its MACs to, no tree to relay on). */
  drop_unknown_peer: number;
  /** Captured frames with a partial checksum that we finished (offloads). */
  checksums_completed: number;
  /** Offloaded frames (TCP super-frames) sent in pieces, per next hop. */
  offloaded_out: number;
  /** Offloaded frames joined from their pieces and written to the bridge whole. */
  offloaded_delivered: number;
  /** Piece datagrams sent (captured or relayed). */
  pieces_out: number;
  /** Piece datagrams received. */
  pieces_in: number;
  /** Pieces relayed to another neighbour. */
  pieces_forwarded: number;
  /** Pieces that did not continue their frame (a piece lost or reordered before them), or whose frame was given up. */
  drop_piece_gap: number;
  /** Piece headers that make no sense (lengths, offsets, an offload header no kernel should see). */
  drop_bad_piece: number;
  /** Captured frames whose offload header we cannot act on (checksum offsets outside the frame, unknown kind). */
  drop_bad_offload: number;
  /** Offloaded frames for a bridge that takes no offloads (a capture without a virtio_net_hdr). */
  drop_offload_unsupported: number;
}

function newCounters(): SleeveCounters {
  return {
    frames_captured: 0,
    frames_out: 0,
    frames_in: 0,
    frames_delivered: 0,
    frames_forwarded: 0,
    datagrams_out: 0,
    datagrams_in: 0,
    bytes_out: 0,
    bytes_in: 0,
    heartbeats_out: 0,
    heartbeats_in: 0,
    heartbeat_acks_out: 0,
    heartbeat_acks_in: 0,
    mac_moves: 0,
    mac_table_full: 0,
    icmp_frag_needed: 0,
    drop_no_snapshot: 0,
    drop_runt: 0,
    drop_local_dest: 0,
    drop_no_route: 0,
    drop_too_big: 0,
    drop_loop: 0,
    drop_capture_full: 0,
    drop_seal: 0,
    drop_short: 0,
    drop_magic: 0,
    drop_unknown_type: 0,
    drop_bad_seq: 0,
    drop_unknown_sender: 0,
    drop_cleartext: 0,
    drop_unexpected_sealed: 0,
    drop_decrypt: 0,
    drop_replay: 0,
    drop_no_key: 0,
    drop_bad_record: 0,
    drop_unknown_peer: 0,
    checksums_completed: 0,
    offloaded_out: 0,
    offloaded_delivered: 0,
    pieces_out: 0,
    pieces_in: 0,
    pieces_forwarded: 0,
    drop_piece_gap: 0,
    drop_bad_piece: 0,
    drop_bad_offload: 0,
    drop_offload_unsupported: 0,
  };
}

/**
 * An offloaded frame being joined from its pieces, one per capturing peer (a capturing peer sends the pieces of one
 * frame back to back, and they follow one path, so they arrive in order unless the underlay reorders). Allocated the
 * first time a peer sends one; reused after.
 */
class Joiner {
  /** [virtio_net_hdr | frame]. */
  readonly buffer = Buffer.alloc(VNET_HEADER_BYTES + MAX_OFFLOADED_FRAME_BYTES);
  /** Frame id being joined, or -1 (waiting for a first piece). */
  id = -1;
  length = 0;
  /** Bytes joined so far: the offset the next piece must have. */
  next = 0;
}

/** Per-neighbour state: the pending datagram and what the loops noted for health. Reused across snapshots. */
class Neighbour {
  endpoint: Endpoint;
  session: DataSession | null;
  /** [header | records ... | room for the tag]; reallocated only by `apply`. */
  buffer: Buffer;
  /** Where piece datagrams are built, one at a time (sent at once); the size of `buffer`. */
  pieceBuffer: Buffer;
  /** Most record bytes one datagram carries. */
  bodyCapacityBytes: number;
  /**
   * Frame bytes per piece we cut: sized as if the datagram were sealed even when this hop is clear, so a relay can
   * pass the piece on to a sealed hop (trusted subnets mix the two), as the overlay MTU leaves room for the tag.
   */
  pieceRoomBytes: number;
  /** The IP MTU containers must keep to for frames through this neighbour (told in ICMP replies). */
  overlayMtuBytes: number;
  /** Record bytes pending in `buffer`. */
  used = 0;
  isDirty = false;
  /** seq of clear datagrams (receivers ignore it; a cheap sanity mark in captures). */
  clearSeq = 0;
  lastHeardMs = -1;
  lastHeartbeatMs = -1;
  lastAckMs = -1;
  isEstablished = false;

  constructor(
    readonly peer: PeerId,
    /** The sleeve's small number for `peer`. */
    readonly number: number,
    endpoint: Endpoint,
    session: DataSession | null,
    underlayMtuBytes: number,
  ) {
    this.endpoint = endpoint;
    this.session = session;
    this.buffer = Buffer.alloc(0);
    this.pieceBuffer = this.buffer;
    this.bodyCapacityBytes = 0;
    this.pieceRoomBytes = 0;
    this.overlayMtuBytes = 0;
    this.resize(underlayMtuBytes);
  }

  /** Size the datagram buffer for the path MTU and this session's tag; allocates only if the size changed. */
  resize(underlayMtuBytes: number): void {
    const tagBytes = this.session?.overheadBytes ?? 0;
    const datagramBytes = underlayMtuBytes - OUTER_IP_UDP_BYTES;
    this.bodyCapacityBytes = datagramBytes - HEADER_BYTES - tagBytes;
    this.pieceRoomBytes = datagramBytes - HEADER_BYTES - MAX_TAG_BYTES - PIECE_HEADER_BYTES;
    this.overlayMtuBytes = this.bodyCapacityBytes - RECORD_HEADER_BYTES - ETHERNET_HEADER_BYTES;
    if (this.buffer.length !== datagramBytes) {
      this.buffer = withFront(datagramBytes);
      this.pieceBuffer = withFront(datagramBytes);
    }
  }
}

/**
 * A datagram buffer with memory in front of it that belongs to nobody else: the native AEAD borrows the 64 bytes in
 * front of a body to compute the Poly1305 key in the same pass as the encryption (native/src/aead.c), and the body
 * starts 16 bytes in, after the header.
 */
function withFront(bytes: number): Buffer {
  return Buffer.alloc(SEAL_FRONT_BYTES + bytes).subarray(SEAL_FRONT_BYTES);
}
const SEAL_FRONT_BYTES = 64 - HEADER_BYTES;

/**
 * The snapshot as the loops use it: peers as numbers, neighbours resolved to their state objects. Built by `apply`,
 * never mutated. The per-number arrays cover every number handed out when it was built (null: no such relation).
 */
interface View {
  readonly localPeer: PeerId;
  readonly localNumber: number;
  readonly neighbours: readonly Neighbour[];
  readonly byPeer: ReadonlyMap<PeerId, Neighbour>;
  /** Neighbour by its number. */
  readonly neighbourByNumber: ReadonlyArray<Neighbour | null>;
  /** Unicast next hop by destination peer number. */
  readonly unicastByNumber: ReadonlyArray<Neighbour | null>;
  /** Broadcast next hops by capturing peer number; null for a peer the snapshot does not know. */
  readonly broadcastByNumber: ReadonlyArray<readonly Neighbour[] | null>;
  /** Next hops of frames we capture and flood. */
  readonly localBroadcast: readonly Neighbour[];
}

/** See the module comment for the pipeline. */
export class Sleeve implements Datapath {
  private readonly capture: Capture;
  private readonly underlay: Underlay;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly copyBytes: CopyBytes;
  private readonly checksumComplete: ChecksumComplete;
  /** Offloaded frames being joined, by capturing peer number. */
  private readonly joiners: Array<Joiner | undefined> = [];
  /** Id of the last offloaded frame we captured and sent. */
  private lastPieceFrameId = 0;
  /** Where `beginPiece` said to build the piece datagram in progress. */
  private pieceOut: Buffer = Buffer.alloc(0);
  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  /** MAC -> peer number. */
  private readonly macs: MacTable;
  /** Peer name (read from a packet) -> peer number; never expires, only grows (in `apply`). */
  private readonly peerNumbers = new MacTable({ capacity: MAX_PEER_NUMBERS, expiryMs: Infinity });
  /** Peer number -> name. */
  private readonly peerIds: PeerId[] = [];
  /** Peer number n's name as 6 bytes at `n * 6`, for writing record headers without a 48-bit number. */
  private readonly idBytes = Buffer.alloc(MAX_PEER_NUMBERS * 6);
  private readonly stats = newCounters();
  private readonly listeners: Array<(peer: PeerId, health: PeerHealth) => void> = [];
  private readonly controlBuffer = Buffer.alloc(CONTROL_BUFFER_BYTES);
  private readonly icmpBuffer = Buffer.alloc(FRAG_NEEDED_MAX_BYTES);
  private view: View | null = null;
  /**
   * Claimed piece datagrams whose headers are written but which are not sealed yet: consecutive sequence numbers of
   * one session, sealed in one call (`sealPendingRun`) before the underlay sends any of them.
   */
  private runSession: DataSession | null = null;
  private runFirstSeq = 0;
  private runCount = 0;
  private readonly runOffsets = new Uint32Array(SEAL_RUN_MAX);
  private readonly runLengths = new Uint32Array(SEAL_RUN_MAX);
  /** Received sealed datagrams from one neighbour under one key phase, opened in one call (`openPendingRun`). */
  private openNeighbour: Neighbour | null = null;
  private openPhase = 0;
  private openCount = 0;
  private readonly openOffsets = new Uint32Array(OPEN_RUN_MAX);
  private readonly openLengths = new Uint32Array(OPEN_RUN_MAX);
  private readonly openSeqs = new Float64Array(OPEN_RUN_MAX);
  private readonly openResults = new Int32Array(OPEN_RUN_MAX);
  private readonly openTypes = new Uint8Array(OPEN_RUN_MAX);
  /** Neighbours with records pending in this batch; sized by `apply` to hold every neighbour once. */
  private dirty: Neighbour[] = [];
  private dirtyCount = 0;
  private isRunning = false;
  private isStopped = false;
  private timer: Timer | null = null;

  constructor(deps: SleeveDeps, options: SleeveOptions = {}) {
    this.capture = deps.capture;
    this.underlay = deps.underlay;
    this.clock = deps.clock;
    this.log = deps.log;
    this.copyBytes = deps.copyBytes ?? defaultCopyBytes;
    this.checksumComplete = deps.checksumComplete ?? checksumCompleteJs;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5000;
    this.macs = new MacTable({ expiryMs: options.macExpiryMs ?? 300_000, capacity: options.macTableCapacity ?? 8192 });
    if (this.underlay.claim !== undefined) this.underlay.beforeSend = this.sealPendingRun;
  }

  /** Start the underlay, then the capture, then heartbeats. Idempotent; after `stop()` it does nothing. */
  async start(): Promise<void> {
    if (this.isRunning || this.isStopped) return;
    await this.underlay.start(this.onDatagrams);
    await this.capture.start(this.onFrames);
    if (this.isStopped) return; // stopped while starting
    this.isRunning = true;
    this.timer = this.clock.setInterval(this.onHeartbeatTimer, this.heartbeatMs);
    const view = this.view;
    if (view !== null) {
      for (const n of view.neighbours) this.sendControl(n, MessageType.Heartbeat);
      this.underlay.flush();
    }
  }

  /** Stop heartbeats, the capture and the underlay. Idempotent; safe after a failed start. */
  async stop(): Promise<void> {
    this.isStopped = true;
    this.isRunning = false;
    this.timer?.cancel();
    this.timer = null;
    this.runCount = 0;
    this.runSession = null;
    await this.capture.stop();
    await this.underlay.stop();
  }

  /**
   * Swap in `snapshot` whole. Neighbours kept from the last snapshot keep their health and their buffer (unless
   * their MTU or tag size changed); MACs of peers no longer reachable are forgotten; a neighbour that leaves while
   * established is reported as not established. New neighbours get a heartbeat at once (when running). Throws
   * `SleeveSnapshotError` (and keeps the old snapshot) when the underlay MTU leaves no room for a 68-byte IP packet.
   */
  apply(snapshot: ForwardingSnapshot): void {
    const mtu = snapshot.underlayMtuBytes;
    const old = this.view;
    if (!Number.isInteger(mtu) || mtu > MAX_UNDERLAY_MTU_BYTES) {
      throw new SleeveSnapshotError(`underlay MTU ${mtu} is not an integer in [0, ${MAX_UNDERLAY_MTU_BYTES}]`);
    }
    for (const path of snapshot.neighbours.values()) {
      const room = mtu - OUTER_IP_UDP_BYTES - HEADER_BYTES - (path.session?.overheadBytes ?? 0) - RECORD_HEADER_BYTES - ETHERNET_HEADER_BYTES;
      if (room < MIN_OVERLAY_MTU_BYTES) {
        throw new SleeveSnapshotError(
          `underlay MTU ${mtu} leaves ${room} bytes for IP packets to peer ${peerLabel(path.peer)}, below IPv4's minimum of 68; fix the MTU the control plane measured`,
        );
      }
    }
    const local = snapshot.localPeer;
    const localNumber = this.numberOf(local);
    if (localNumber < 0) throw new SleeveSnapshotError(`local peer ${peerLabel(local)} is not a valid 48-bit name`);

    const byPeer = new Map<PeerId, Neighbour>();
    const fresh: Neighbour[] = [];
    for (const path of snapshot.neighbours.values()) {
      const number = this.numberOf(path.peer);
      if (path.peer === local || number < 0) continue;
      let n = old?.byPeer.get(path.peer);
      if (n === undefined) {
        n = new Neighbour(path.peer, number, path.endpoint, path.session, mtu);
        fresh.push(n);
      } else {
        if (n.session !== path.session) {
          n.clearSeq = 0;
          // Health seen under another session says nothing about this one.
          n.lastHeartbeatMs = n.lastAckMs = -1;
        }
        n.endpoint = path.endpoint;
        n.session = path.session;
        n.resize(mtu);
      }
      byPeer.set(path.peer, n);
    }
    const unicast = new Map<number, Neighbour>();
    for (const [dst, via] of snapshot.unicastNextHop) {
      const n = byPeer.get(via);
      const number = this.numberOf(dst);
      if (n !== undefined && dst !== local && number >= 0) unicast.set(number, n);
    }
    const broadcast = new Map<number, Neighbour[]>();
    for (const [src, hops] of snapshot.broadcastNextHops) {
      const number = this.numberOf(src);
      if (number < 0) continue;
      const ns: Neighbour[] = [];
      for (const h of hops) {
        const n = byPeer.get(h);
        if (n !== undefined && !ns.includes(n)) ns.push(n);
      }
      broadcast.set(number, ns);
    }
    const count = this.peerIds.length;
    const neighbourByNumber = new Array<Neighbour | null>(count).fill(null);
    const unicastByNumber = new Array<Neighbour | null>(count).fill(null);
    const broadcastByNumber = new Array<readonly Neighbour[] | null>(count).fill(null);
    for (const n of byPeer.values()) neighbourByNumber[n.number] = n;
    for (const [number, n] of unicast) unicastByNumber[number] = n;
    for (const [number, ns] of broadcast) broadcastByNumber[number] = ns;
    const neighbours = [...byPeer.values()];
    this.view = {
      localPeer: local,
      localNumber,
      neighbours,
      byPeer,
      neighbourByNumber,
      unicastByNumber,
      broadcastByNumber,
      localBroadcast: broadcast.get(localNumber) ?? [],
    };
    this.dirty = new Array<Neighbour>(neighbours.length);
    this.dirtyCount = 0;

    if (old !== null) {
      for (let number = 0; number < old.unicastByNumber.length; number++) {
        if (old.unicastByNumber[number] !== null && !unicast.has(number)) this.macs.forgetPeer(number);
      }
      if (old.localNumber !== localNumber) this.macs.forgetPeer(old.localNumber);
      for (const n of old.neighbours) {
        if (byPeer.get(n.peer) !== n && n.isEstablished) {
          n.isEstablished = false;
          this.notify(n);
        }
      }
    }
    if (this.log.isLevelEnabled('debug')) {
      this.log.debug({ neighbours: neighbours.length, peers: unicast.size, mtu }, 'sleeve snapshot applied');
    }
    if (this.isRunning && fresh.length > 0) {
      for (const n of fresh) this.sendControl(n, MessageType.Heartbeat);
      this.underlay.flush();
    }
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
    this.listeners.push(listener);
  }

  /** The live MAC table with peer names (for reports and tests; allocates). */
  macEntries(): MacEntry[] {
    return this.macs.entries(this.clock.now()).map((e) => ({ ...e, peer: this.peerIds[e.peer]! }));
  }

  /** The number of peer `id`, handing out the next one on first sight; -1 when out of numbers or not a name. */
  private numberOf(id: PeerId): number {
    if (!Number.isInteger(id) || id <= BROADCAST_PEER || id >= 2 ** 48) return -1;
    const known = this.peerNumbers.lookup(id, 0);
    if (known >= 0) return known;
    const number = this.peerIds.length;
    if (number >= MAX_PEER_NUMBERS || this.peerNumbers.learn(id, number, 0) !== LearnResult.Added) {
      this.log.warn({ peer: peerLabel(id) }, `more than ${MAX_PEER_NUMBERS} peers seen: frames to and from this one are dropped`);
      return -1;
    }
    this.peerIds.push(id);
    this.idBytes.writeUIntBE(id, number * 6, 6);
    return number;
  }

  // ---- Frames from the bridge ----

  private readonly onFrames = (batch: FrameBatch): void => {
    const s = this.stats;
    const view = this.view;
    const count = batch.count;
    s.frames_captured += count;
    if (view === null) {
      s.drop_no_snapshot += count;
      return;
    }
    const now = this.clock.now();
    const buf = batch.buffer;
    const local = view.localNumber;
    const vnet = this.capture.vnetHeaderBytes;
    for (let i = 0; i < count; i++) {
      const off = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      if (len < MIN_FRAME_BYTES) {
        s.drop_runt++;
        continue;
      }
      if (vnet !== 0) {
        const h = off - vnet;
        if (buf[h + 1] !== VNET_GSO_NONE) {
          if ((buf[off + 6]! & 1) === 0) this.learn(buf, off + 6, local, now);
          this.captureOffloaded(view, buf, h, len, now);
          continue;
        }
        if ((buf[h]! & VNET_F_NEEDS_CSUM) !== 0) {
          if (!this.checksumComplete(buf, off, len, buf.readUInt16LE(h + 6), buf.readUInt16LE(h + 8))) {
            s.drop_bad_offload++;
            continue;
          }
          s.checksums_completed++;
        }
      }
      if ((buf[off + 6]! & 1) === 0) this.learn(buf, off + 6, local, now);
      if ((buf[off]! & 1) !== 0) {
        this.floodCaptured(view, buf, off, len);
        continue;
      }
      const peer = this.macs.lookupAt(buf, off, now);
      if (peer < 0) {
        this.floodCaptured(view, buf, off, len);
      } else if (peer === local) {
        s.drop_local_dest++;
      } else {
        const n = view.unicastByNumber[peer];
        if (!n) {
          s.drop_no_route++;
        } else if (!this.appendCaptured(n, local, peer, buf, off, len)) {
          s.drop_too_big++;
          this.replyTooBig(n, buf, off, len);
        }
      }
    }
    this.flushPending();
  };

  private floodCaptured(view: View, buf: Buffer, off: number, len: number): void {
    const hops = view.localBroadcast;
    let isTooBig = false;
    for (let h = 0; h < hops.length; h++) {
      if (!this.appendCaptured(hops[h]!, view.localNumber, -1, buf, off, len)) isTooBig = true;
    }
    if (isTooBig) this.stats.drop_too_big++;
  }

  /**
   * A frame the capture handed over with offloads (a TCP super-frame, header at `buf[h]`, frame right after it):
   * send it in pieces to the unicast next hop of its destination, or along our broadcast tree when the destination
   * MAC is a group or unknown. The MAC was learned by the caller.
   */
  private captureOffloaded(view: View, buf: Buffer, h: number, len: number, now: number): void {
    const s = this.stats;
    const off = h + VNET_HEADER_BYTES;
    if (len > MAX_OFFLOADED_FRAME_BYTES || !isSaneVnetHeader(buf, h, len)) {
      s.drop_bad_offload++;
      return;
    }
    const local = view.localNumber;
    const id = (this.lastPieceFrameId = (this.lastPieceFrameId + 1) >>> 0);
    const peer = (buf[off]! & 1) !== 0 ? -1 : this.macs.lookupAt(buf, off, now);
    if (peer < 0) {
      const hops = view.localBroadcast;
      for (let k = 0; k < hops.length; k++) this.sendPieces(hops[k]!, local, -1, id, buf, h, len);
    } else if (peer === local) {
      s.drop_local_dest++;
    } else {
      const n = view.unicastByNumber[peer];
      if (!n) s.drop_no_route++;
      else this.sendPieces(n, local, peer, id, buf, h, len);
    }
  }

  /** Cut the offloaded frame at `buf[h]` (header, then `len` frame bytes) into piece datagrams for `n`, sent now. */
  private sendPieces(n: Neighbour, capturing: number, dest: number, id: number, buf: Buffer, h: number, len: number): void {
    const room = n.pieceRoomBytes;
    const ids = this.idBytes;
    for (let at = 0; at < len; at += room) {
      const piece = len - at < room ? len - at : room;
      const d = this.beginPiece(n, PIECE_HEADER_BYTES + piece);
      if (d < 0) return;
      const out = this.pieceOut;
      const p = d + HEADER_BYTES;
      for (let k = 0; k < 6; k++) {
        out[p + k] = ids[capturing * 6 + k]!;
        out[p + 6 + k] = dest < 0 ? 0 : ids[dest * 6 + k]!;
      }
      out.writeUInt32BE(id, p + 12);
      out.writeUInt32BE(len, p + 16);
      out.writeUInt32BE(at, p + 20);
      for (let k = 0; k < VNET_HEADER_BYTES; k++) out[p + 24 + k] = buf[h + k]!; // 10 bytes: cheaper than a call
      this.copyBytes(buf, h + VNET_HEADER_BYTES + at, out, p + PIECE_HEADER_BYTES, piece);
      if (!this.endPiece(n, d, PIECE_HEADER_BYTES + piece)) return;
    }
    this.stats.offloaded_out++;
  }

  /**
   * Where to build the next piece datagram for `n`, whose body will be `bodyLength` bytes: straight in the
   * underlay's send buffer when it lends one (`claim`: no copy on the way out), else in `n.pieceBuffer`. Sets
   * `pieceOut` and returns the datagram's offset in it, or -1 when the underlay refused (counted there). Frames
   * already pending for `n` go first: TCP takes segments arriving out of order as loss.
   */
  private beginPiece(n: Neighbour, bodyLength: number): number {
    if (n.used > 0) this.sendPending(n);
    const u = this.underlay;
    if (u.claim !== undefined) {
      const at = u.claim(HEADER_BYTES + bodyLength + (n.session?.overheadBytes ?? 0), n.endpoint);
      if (at >= 0) this.pieceOut = u.claimBuffer!;
      return at;
    }
    this.pieceOut = n.pieceBuffer;
    return 0;
  }

  /** Header, seal and send the piece whose body is built at `pieceOut[d + 16..]`. False when it could not be sealed. */
  private endPiece(n: Neighbour, d: number, bodyLength: number): boolean {
    const out = this.pieceOut;
    const isClaimed = out !== n.pieceBuffer;
    const session = n.session;
    const length =
      isClaimed && session !== null && session.sealRun !== undefined
        ? this.deferSeal(session, out, d, bodyLength)
        : this.sealAt(n, out, d, MessageType.Piece, bodyLength);
    if (length < 0) {
      if (isClaimed) this.underlay.unclaim?.();
      return false;
    }
    if (!isClaimed) this.underlay.send(out, 0, length, n.endpoint);
    this.stats.datagrams_out++;
    this.stats.bytes_out += length;
    this.stats.pieces_out++;
    return true;
  }

  private replyTooBig(n: Neighbour, buf: Buffer, off: number, len: number): void {
    const replyBytes = writeFragmentationNeeded(this.icmpBuffer, 0, buf, off, len, n.overlayMtuBytes);
    if (replyBytes > 0 && this.capture.write(this.icmpBuffer, 0, replyBytes)) this.stats.icmp_frag_needed++;
  }

  // ---- Datagrams from neighbours ----

  /** Returns whether the batch carried frames (a reply may follow) rather than only heartbeats and drops. */
  private readonly onDatagrams = (batch: DatagramBatch): boolean => {
    const s = this.stats;
    let hasFrames = false;
    const view = this.view;
    const now = this.clock.now();
    const buf = batch.buffer;
    const count = batch.count;
    s.datagrams_in += count;
    for (let i = 0; i < count; i++) {
      const off = batch.offsets[i]!;
      const len = batch.lengths[i]!;
      s.bytes_in += len;
      const type = checkHeader(buf, off, len);
      if (type < 0) {
        if (type === HeaderDrop.Short) s.drop_short++;
        else if (type === HeaderDrop.Magic) s.drop_magic++;
        else if (type === HeaderDrop.UnknownType) s.drop_unknown_type++;
        else s.drop_bad_seq++;
        continue;
      }
      const sender = this.peerNumbers.lookupAt(buf, off + 2, 0);
      const n = view === null || sender < 0 ? null : view.neighbourByNumber[sender];
      if (!n) {
        s.drop_unknown_sender++;
        continue;
      }
      const flags = buf[off + 1]!;
      let bodyLength = len - HEADER_BYTES;
      const session = n.session;
      if (isEncryptedFlags(flags)) {
        if (session === null) {
          s.drop_unexpected_sealed++;
          continue;
        }
        const seq = readSeq(buf, off);
        const phase = keyPhaseOf(flags);
        if (session.openRun !== undefined) {
          // Opened with the run it joins, in one call; handled then, in arrival order.
          const verdict = session.checkOpen!(seq, phase);
          if (verdict < 0) {
            this.countOpenDrop(verdict);
            continue;
          }
          const k = this.openCount;
          if (k > 0 && (this.openNeighbour !== n || this.openPhase !== phase || k === OPEN_RUN_MAX)) {
            if (this.openPendingRun(view!, buf, now)) hasFrames = true;
          }
          const j = this.openCount++;
          this.openNeighbour = n;
          this.openPhase = phase;
          this.openOffsets[j] = off;
          this.openLengths[j] = bodyLength;
          this.openSeqs[j] = seq;
          this.openTypes[j] = type;
          continue;
        }
        const r = session.open(buf, off, off + HEADER_BYTES, bodyLength, seq, phase);
        if (r < 0) {
          this.countOpenDrop(r);
          continue;
        }
        bodyLength = r;
      } else if (session !== null) {
        s.drop_cleartext++;
        continue;
      }
      if (this.openCount > 0 && this.openPendingRun(view!, buf, now)) hasFrames = true;
      if (this.handle(view!, n, type, buf, off, bodyLength, now)) hasFrames = true;
    }
    if (this.openCount > 0 && this.openPendingRun(view!, buf, now)) hasFrames = true;
    if (view !== null) this.flushPending();
    this.capture.flush();
    return hasFrames;
  };

  private countOpenDrop(r: number): void {
    const s = this.stats;
    if (r === OpenResult.BadTag) s.drop_decrypt++;
    else if (r === OpenResult.Replay || r === OpenResult.Stale) s.drop_replay++;
    else if (r === OpenResult.NoKey) s.drop_no_key++;
    else s.drop_short++;
  }

  /** Open the pending run of sealed datagrams in `buf` in one call and handle each; true if any carried frames. */
  private openPendingRun(view: View, buf: Buffer, now: number): boolean {
    const count = this.openCount;
    const n = this.openNeighbour!;
    this.openCount = 0;
    this.openNeighbour = null;
    const results = this.openResults;
    n.session!.openRun!(buf, this.openOffsets, this.openLengths, this.openSeqs, count, HEADER_BYTES, this.openPhase, results);
    let hasFrames = false;
    for (let j = 0; j < count; j++) {
      const r = results[j]!;
      if (r < 0) this.countOpenDrop(r);
      else if (this.handle(view, n, this.openTypes[j]!, buf, this.openOffsets[j]!, r, now)) hasFrames = true;
    }
    return hasFrames;
  }

  /** One authentic datagram from `n` (body in the clear at `buf[off + 16]`); true if it carried frames. */
  private handle(view: View, n: Neighbour, type: number, buf: Buffer, off: number, bodyLength: number, now: number): boolean {
    const s = this.stats;
    n.lastHeardMs = now;
    if (type === MessageType.Frames) {
      this.receiveFrames(view, n, buf, off + HEADER_BYTES, bodyLength, now);
      return true;
    }
    if (type === MessageType.Piece) {
      this.receivePiece(view, n, buf, off + HEADER_BYTES, bodyLength, now);
      return true;
    }
    if (type === MessageType.Heartbeat) {
      s.heartbeats_in++;
      n.lastHeartbeatMs = now;
      this.sendControl(n, MessageType.HeartbeatAck);
    } else {
      s.heartbeat_acks_in++;
      n.lastAckMs = now;
    }
    return false;
  }

  private receiveFrames(view: View, from: Neighbour, buf: Buffer, bodyOff: number, bodyLength: number, now: number): void {
    const s = this.stats;
    // Validate every record first: a datagram is taken whole or not at all.
    if (countRecords(buf, bodyOff, bodyLength) < 0) {
      s.drop_bad_record++;
      return;
    }
    const names = this.peerNumbers;
    const local = view.localNumber;
    const end = bodyOff + bodyLength;
    let p = bodyOff;
    while (p < end) {
      const record = p;
      const frameLength = buf.readUInt16BE(p + 12);
      const frame = p + RECORD_HEADER_BYTES;
      p = frame + frameLength;
      s.frames_in++;
      const capturing = names.lookupAt(buf, record, 0);
      if (capturing < 0) {
        s.drop_unknown_peer++;
        continue;
      }
      if (capturing === local) {
        s.drop_loop++;
        continue;
      }
      if (buf.readUInt16BE(record + 6) === 0 && buf.readUInt32BE(record + 8) === 0) {
        // Broadcast (destination BROADCAST_PEER): pass it on along the capturing peer's tree, and deliver.
        const hops = view.broadcastByNumber[capturing];
        if (hops) {
          for (let h = 0; h < hops.length; h++) {
            const n = hops[h]!;
            if (n === from || n.number === capturing) continue;
            if (this.appendRelayed(n, buf, record, frameLength)) s.frames_forwarded++;
            else s.drop_too_big++;
          }
        }
        this.deliver(buf, frame, frameLength, capturing, now);
        continue;
      }
      const dest = names.lookupAt(buf, record + 6, 0);
      if (dest === local) {
        this.deliver(buf, frame, frameLength, capturing, now);
        continue;
      }
      const n = dest < 0 ? null : view.unicastByNumber[dest];
      if (!n) s.drop_no_route++;
      else if (n === from) s.drop_loop++;
      else if (this.appendRelayed(n, buf, record, frameLength)) s.frames_forwarded++;
      else s.drop_too_big++;
    }
  }

  private deliver(buf: Buffer, off: number, len: number, capturing: number, now: number): void {
    if ((buf[off + 6]! & 1) === 0) this.learn(buf, off + 6, capturing, now);
    if (this.capture.write(buf, off, len)) this.stats.frames_delivered++;
    else this.stats.drop_capture_full++;
  }

  /** A piece of an offloaded frame: relay it on, and join it into its frame when the frame is for us. */
  private receivePiece(view: View, from: Neighbour, buf: Buffer, p: number, bodyLength: number, now: number): void {
    const s = this.stats;
    s.pieces_in++;
    const piece = bodyLength - PIECE_HEADER_BYTES;
    if (piece <= 0) {
      s.drop_bad_piece++;
      return;
    }
    const frameLength = buf.readUInt32BE(p + 16);
    const at = buf.readUInt32BE(p + 20);
    if (frameLength < MIN_FRAME_BYTES || frameLength > MAX_OFFLOADED_FRAME_BYTES || at + piece > frameLength) {
      s.drop_bad_piece++;
      return;
    }
    const capturing = this.peerNumbers.lookupAt(buf, p, 0);
    if (capturing < 0) {
      s.drop_unknown_peer++;
      return;
    }
    const local = view.localNumber;
    if (capturing === local) {
      s.drop_loop++;
      return;
    }
    if (buf.readUInt16BE(p + 6) === 0 && buf.readUInt32BE(p + 8) === 0) {
      const hops = view.broadcastByNumber[capturing];
      if (hops) {
        for (let k = 0; k < hops.length; k++) {
          const n = hops[k]!;
          if (n !== from && n.number !== capturing) this.relayPiece(n, buf, p, bodyLength);
        }
      }
      this.joinPiece(buf, p, piece, frameLength, at, capturing, now);
      return;
    }
    const dest = this.peerNumbers.lookupAt(buf, p + 6, 0);
    if (dest === local) {
      this.joinPiece(buf, p, piece, frameLength, at, capturing, now);
      return;
    }
    const n = dest < 0 ? null : view.unicastByNumber[dest];
    if (!n) s.drop_no_route++;
    else if (n === from) s.drop_loop++;
    else this.relayPiece(n, buf, p, bodyLength);
  }

  /** Pass a piece body on to `n` unchanged (its own datagram, sealed for `n`). */
  private relayPiece(n: Neighbour, buf: Buffer, p: number, bodyLength: number): void {
    if (bodyLength > n.bodyCapacityBytes) {
      this.stats.drop_too_big++;
      return;
    }
    const d = this.beginPiece(n, bodyLength);
    if (d < 0) return;
    this.copyBytes(buf, p, this.pieceOut, d + HEADER_BYTES, bodyLength);
    if (this.endPiece(n, d, bodyLength)) this.stats.pieces_forwarded++;
  }

  /** Add a piece to the frame `capturing` is sending us; write the frame to the bridge when it is whole. */
  private joinPiece(buf: Buffer, p: number, piece: number, frameLength: number, at: number, capturing: number, now: number): void {
    const s = this.stats;
    let j = this.joiners[capturing];
    if (j === undefined) j = this.joiners[capturing] = new Joiner();
    const id = buf.readUInt32BE(p + 12);
    if (at === 0) {
      if (j.id !== -1) s.drop_piece_gap++; // the frame before never completed
      j.id = id;
      j.length = frameLength;
      j.next = 0;
      for (let k = 0; k < VNET_HEADER_BYTES; k++) j.buffer[k] = buf[p + 24 + k]!;
    } else if (j.id !== id || j.next !== at || j.length !== frameLength) {
      s.drop_piece_gap++;
      j.id = -1;
      return;
    }
    this.copyBytes(buf, p + PIECE_HEADER_BYTES, j.buffer, VNET_HEADER_BYTES + at, piece);
    j.next = at + piece;
    if (j.next < frameLength) return;
    j.id = -1;
    if (!isSaneVnetHeader(j.buffer, 0, frameLength)) {
      s.drop_bad_piece++;
      return;
    }
    if (this.capture.vnetHeaderBytes !== VNET_HEADER_BYTES) {
      s.drop_offload_unsupported++;
      return;
    }
    if ((j.buffer[VNET_HEADER_BYTES + 6]! & 1) === 0) this.learn(j.buffer, VNET_HEADER_BYTES + 6, capturing, now);
    if (this.capture.writeOffloaded(j.buffer, 0, frameLength)) s.offloaded_delivered++;
    else s.drop_capture_full++;
  }

  private learn(buf: Buffer, macOffset: number, peer: number, now: number): void {
    const r = this.macs.learnAt(buf, macOffset, peer, now);
    if (r === LearnResult.Moved) this.stats.mac_moves++;
    else if (r === LearnResult.Full) this.stats.mac_table_full++;
  }

  // ---- Datagrams to neighbours ----

  /**
   * Make room for a record of `recordBytes` in `n`'s pending datagram (sending it first if full) and return where
   * the record goes, or -1 when it can never fit the path MTU.
   */
  private reserve(n: Neighbour, recordBytes: number): number {
    if (recordBytes > n.bodyCapacityBytes) return -1;
    if (n.used + recordBytes > n.bodyCapacityBytes) this.sendPending(n);
    if (!n.isDirty) {
      n.isDirty = true;
      this.dirty[this.dirtyCount++] = n;
    }
    const at = HEADER_BYTES + n.used;
    n.used += recordBytes;
    this.stats.frames_out++;
    return at;
  }

  /** Append a frame we captured, for peer number `dest` (-1: broadcast). False when too big for the path. */
  private appendCaptured(n: Neighbour, local: number, dest: number, buf: Buffer, off: number, len: number): boolean {
    const at = this.reserve(n, RECORD_HEADER_BYTES + len);
    if (at < 0) return false;
    const out = n.buffer;
    const ids = this.idBytes;
    for (let k = 0; k < 6; k++) {
      out[at + k] = ids[local * 6 + k]!;
      out[at + 6 + k] = dest < 0 ? 0 : ids[dest * 6 + k]!;
    }
    out.writeUInt16BE(len, at + 12);
    this.copyBytes(buf, off, out, at + RECORD_HEADER_BYTES, len);
    return true;
  }

  /** Append a received record (header and frame) unchanged. False when too big for the path. */
  private appendRelayed(n: Neighbour, buf: Buffer, record: number, frameLength: number): boolean {
    const recordBytes = RECORD_HEADER_BYTES + frameLength;
    const at = this.reserve(n, recordBytes);
    if (at < 0) return false;
    this.copyBytes(buf, record, n.buffer, at, recordBytes);
    return true;
  }

  /** Send every pending datagram of this batch, then flush the underlay. */
  private flushPending(): void {
    const dirty = this.dirty;
    for (let i = 0; i < this.dirtyCount; i++) {
      const n = dirty[i]!;
      if (n.used > 0) this.sendPending(n);
      n.isDirty = false;
    }
    this.dirtyCount = 0;
    this.underlay.flush();
  }

  /** Header, seal in place if `n` has a session, send. The buffer is free again on return (the underlay copies). */
  private sendPending(n: Neighbour): void {
    const length = this.seal(n, n.buffer, MessageType.Frames, n.used);
    n.used = 0;
    if (length < 0) return;
    this.underlay.send(n.buffer, 0, length, n.endpoint);
    this.stats.datagrams_out++;
    this.stats.bytes_out += length;
  }

  /**
   * Write the header for a body of `bodyLength` already at `buffer[16..]` and seal it when `n` has a session.
   * Returns the datagram's length, or -1 (counted) when it could not be sealed.
   */
  private seal(n: Neighbour, buffer: Buffer, type: MessageType, bodyLength: number): number {
    return this.sealAt(n, buffer, 0, type, bodyLength);
  }

  /**
   * Header for the claimed piece datagram at `out[d]` (body already there), queued to be sealed with the pending
   * run: it leaves only after `sealPendingRun`, which the underlay calls before it sends anything. Returns the
   * datagram's sealed length, or -1 (counted) when the tag would not fit.
   */
  private deferSeal(session: DataSession, out: Buffer, d: number, bodyLength: number): number {
    if (d + HEADER_BYTES + bodyLength + session.overheadBytes > out.length) {
      this.stats.drop_seal++;
      return -1;
    }
    const seq = session.nextSeq();
    const count = this.runCount;
    if (count > 0 && (this.runSession !== session || seq !== this.runFirstSeq + count || count === SEAL_RUN_MAX)) {
      this.sealPendingRun();
    }
    if (this.runCount === 0) {
      this.runSession = session;
      this.runFirstSeq = seq;
    }
    this.writeHeader(out, d, flagsFor(MessageType.Piece, true, session.sendKeyPhase), seq);
    const i = this.runCount++;
    this.runOffsets[i] = d;
    this.runLengths[i] = bodyLength;
    return HEADER_BYTES + bodyLength + session.overheadBytes;
  }

  /**
   * Seal the pending run of claimed piece datagrams in one call. The underlay calls this before it sends (so it
   * must not send itself). If sealing fails, their bodies are blanked instead: nothing leaves in the clear.
   */
  private readonly sealPendingRun = (): void => {
    const count = this.runCount;
    if (count === 0) return;
    const session = this.runSession!;
    this.runCount = 0;
    this.runSession = null;
    const buffer = this.underlay.claimBuffer!;
    if (session.sealRun!(buffer, this.runOffsets, this.runLengths, count, HEADER_BYTES, this.runFirstSeq) === count) return;
    for (let i = 0; i < count; i++) {
      const body = this.runOffsets[i]! + HEADER_BYTES;
      buffer.fill(0, body, body + this.runLengths[i]!);
    }
    this.stats.drop_seal += count;
  };

  private writeHeader(buffer: Buffer, at: number, flags: number, seq: number): void {
    buffer[at] = SLEEVE_MAGIC;
    buffer[at + 1] = flags;
    const ids = this.idBytes;
    const local = this.view!.localNumber * 6;
    for (let k = 0; k < 6; k++) buffer[at + 2 + k] = ids[local + k]!;
    buffer.writeUInt32BE(Math.floor(seq / TWO_POW_32), at + 8);
    buffer.writeUInt32BE(seq >>> 0, at + 12);
  }

  /** `seal` for a datagram starting at `buffer[at]` (header there, body after it). */
  private sealAt(n: Neighbour, buffer: Buffer, at: number, type: MessageType, bodyLength: number): number {
    const session = n.session;
    let seq: number;
    let flags: number;
    if (session === null) {
      seq = n.clearSeq;
      n.clearSeq = seq + 1 < TWO_POW_53 ? seq + 1 : 0;
      flags = flagsFor(type, false, 0);
    } else {
      if (at + HEADER_BYTES + bodyLength + session.overheadBytes > buffer.length) {
        this.stats.drop_seal++;
        return -1;
      }
      flags = flagsFor(type, true, session.sendKeyPhase);
      seq = session.nextSeq();
    }
    this.writeHeader(buffer, at, flags, seq);
    if (session === null) return HEADER_BYTES + bodyLength;
    const sealed = session.seal(buffer, at, at + HEADER_BYTES, bodyLength, seq);
    if (sealed < 0) {
      this.stats.drop_seal++;
      return -1;
    }
    return HEADER_BYTES + sealed;
  }

  /** Send a heartbeat or an ack to `n` now (an empty body, sealed when `n` has a session). */
  private sendControl(n: Neighbour, type: MessageType): void {
    if (!this.isRunning) return;
    const length = this.seal(n, this.controlBuffer, type, 0);
    if (length < 0) return;
    this.underlay.send(this.controlBuffer, 0, length, n.endpoint);
    this.stats.datagrams_out++;
    this.stats.bytes_out += length;
    if (type === MessageType.Heartbeat) this.stats.heartbeats_out++;
    else this.stats.heartbeat_acks_out++;
  }

  // ---- Heartbeats and health (timer: control-plane side) ----

  private readonly onHeartbeatTimer = (): void => {
    const view = this.view;
    if (view === null || !this.isRunning) return;
    const now = this.clock.now();
    for (const n of view.neighbours) {
      const isEstablished =
        n.lastAckMs >= 0 &&
        n.lastHeartbeatMs >= 0 &&
        now - n.lastAckMs <= this.heartbeatTimeoutMs &&
        now - n.lastHeartbeatMs <= this.heartbeatTimeoutMs;
      if (isEstablished !== n.isEstablished) {
        n.isEstablished = isEstablished;
        this.log.info({ peer: peerLabel(n.peer), addr: `${n.endpoint.address}:${n.endpoint.port}` }, isEstablished ? 'sleeve established' : 'sleeve lost');
        this.notify(n);
      }
      this.sendControl(n, MessageType.Heartbeat);
    }
    this.underlay.flush();
    this.macs.expire(now);
  };

  private notify(n: Neighbour): void {
    const health = healthOf(n);
    for (const l of this.listeners) {
      try {
        l(n.peer, health);
      } catch (err) {
        this.log.error({ err, peer: peerLabel(n.peer) }, 'health listener threw');
      }
    }
  }
}

function healthOf(n: Neighbour): PeerHealth {
  return { isEstablished: n.isEstablished, lastHeardMs: n.lastHeardMs };
}

/** A peer id as weave prints peer names: six hex octets joined by colons. */
function peerLabel(peer: PeerId): string {
  const hex = peer.toString(16).padStart(12, '0');
  return hex.replace(/(..)(?!$)/g, '$1:');
}
