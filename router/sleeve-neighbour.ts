/**
 * What the sleeve keeps per neighbour (its datagram buffers, path sizes, health marks) and the snapshot as its
 * loops see it (`SleeveView`). Shared by the send side (./sleeve-send.ts), the receive side (./sleeve-receive.ts),
 * pieces (./pieces.ts) and heartbeats (./heartbeats.ts); built by `Sleeve.apply` (./sleeve.ts).
 */
import type { Endpoint } from './underlay.js';
import type { PeerId } from './datapath.js';
import type { DataSession } from '../crypto/data-session.js';
import type { ForwardingView } from './forwarding-decision.js';
import { HEADER_BYTES, PIECE_HEADER_BYTES, RECORD_HEADER_BYTES } from './sleeve-format.js';
import { PathMtu } from './path-mtu.js';

/** Outer IPv4 + UDP headers, which the underlay MTU counts and a datagram's payload does not. */
export const OUTER_IP_UDP_BYTES = 20 + 8;
/** The same over IPv6 (a 40-byte header). */
export const OUTER_IP6_UDP_BYTES = 40 + 8;

/** Outer header bytes on the way to `endpoint`: IPv6 addresses are the ones with a ':'. */
export function outerBytesOf(endpoint: Endpoint): number {
  return endpoint.address.includes(':') ? OUTER_IP6_UDP_BYTES : OUTER_IP_UDP_BYTES;
}
/** Inner Ethernet header (the overlay MTU counts the IP packet; a record carries the whole frame). */
export const ETHERNET_HEADER_BYTES = 14;
/** The largest tag a data session appends (ChaCha20-Poly1305's); pieces leave room for it on every hop. */
export const MAX_TAG_BYTES = 16;

/** Per-neighbour state: the pending datagram and what the loops noted for health. Reused across snapshots. */
export class Neighbour {
  /**
   * Where its datagrams go, and the only source its datagrams are taken from: the endpoint the control plane
   * confirmed, or where an authentic sealed datagram last came from (roaming, NAT rebinding).
   */
  endpoint: Endpoint;
  /** The endpoint the last snapshot gave: a new snapshot moves `endpoint` only when this changes. */
  snapshotEndpoint: Endpoint;
  session: DataSession | null;
  /**
   * The other session of a duplicate connection's grace (`PeerPath.graceSession`): sealed datagrams that do not open
   * under `session` are tried under it. Null almost always.
   */
  graceSession: DataSession | null = null;
  /** [header | records ... | room for the tag]; reallocated only by `apply`. */
  buffer: Buffer;
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
  /** The highest relay count of the unicast records pending in `buffer` (the datagram's RELAYS flag). */
  pendingRelays = 0;
  isDirty = false;
  /** seq of clear datagrams (receivers ignore it; a cheap sanity mark in captures). */
  clearSeq = 0;
  lastHeardMs = -1;
  lastHeartbeatMs = -1;
  lastAckMs = -1;
  isEstablished = false;
  // Traffic with this neighbour, read at scrape time (`Sleeve.peerHealth`): plain fields on the slot the loops hold
  // anyway, so counting costs an add and allocates nothing. A neighbour that leaves the snapshot takes them along (a
  // counter reset, as after a restart).
  /** Authentic datagrams from it, and their UDP payload bytes (forged ones naming it count only in the totals). */
  datagramsIn = 0;
  bytesIn = 0;
  /** Datagrams sent to it, and their UDP payload bytes. */
  datagramsOut = 0;
  bytesOut = 0;
  /** Clear datagrams naming it from another address (`drop_bad_source`). */
  dropsInSource = 0;
  /** Datagrams naming it that were not authentic, replayed, or sealed when they should not be or the reverse. */
  dropsInAuth = 0;
  /** Authentic frames datagrams from it with malformed records (`drop_bad_record`). */
  dropsInRecord = 0;
  /** Datagrams for it that could not be sealed (`drop_seal`). */
  dropsOutSeal = 0;
  /** Frames for it too big for the path (`drop_too_big`). */
  dropsOutTooBig = 0;
  /** `Clock.now()` of our last heartbeat not yet acked, or -1. */
  heartbeatSentMs = -1;
  // Idle heartbeats (./heartbeats.ts): an idle path is heartbeated every `idleHeartbeatMs`, not every second.
  /** When our last heartbeat (or probe) left, or -1. */
  heartbeatOutMs = -1;
  /** When the first of our heartbeats not acked since the last ack left, or -1 (all acked). */
  unackedSinceMs = -1;
  /** The longest it said it may leave between heartbeats when idle (its heartbeats' body), 0 before it said. */
  peerIdleHeartbeatMs = 0;
  /** When a heartbeat round last found this path idle (heartbeated slowly), or -1. */
  idleBeatAtMs = -1;
  /** Heartbeats, acks and MTU probes to and from it (what is not data), for telling an idle path. */
  controlDatagrams = 0;
  /** Data datagrams (in and out) as the last heartbeat round counted them, and when that count last moved. */
  dataSeen = 0;
  lastDataMs = -1;
  /** Round trip of the last heartbeat acked, and the smoothed round trip (RFC 6298's SRTT, gain 1/8), or -1. */
  rttMs = -1;
  smoothedRttMs = -1;
  // Fast dead-path detection while traffic flows (./heartbeats.ts): data sent and nothing heard back.
  /** Data went to it since we last heard from it (set by the send side, cleared by the receive side). */
  isAwaiting = false;
  /** When `isAwaiting` became true. */
  awaitingSinceMs = -1;
  /** When the outstanding probe (a heartbeat sent because data went unanswered) left, or -1. */
  probeSentMs = -1;
  /** Probes in a row that got no ack within the deadline. */
  probeMisses = 0;
  /** When the path was last declared lost, or -1: it is trusted again only after acks newer than this plus a hold. */
  lostAtMs = -1;
  // Datagram loss on the way from it and on the way to it (./loss.ts): which way a super-frame is cut for it.
  /** The seq expected next from it, per key phase (clear datagrams: phase 0), or -1 before the first. */
  readonly seqInNext = [-1, -1];
  /** Datagrams from it missing since our last ack to it (gaps in its seqs, less the late ones that filled them). */
  lostInSinceAck = 0;
  /** We relayed something from it to a neighbour that reports loss since our last ack to it (./loss.ts). */
  isRelayingIntoLoss = false;
  /** Datagrams from it found missing, in all (read at scrape time). */
  lostIn = 0;
  /** Datagrams of ours it reported missing in its acks, in all. */
  lostOut = 0;
  /** Until when super-frames for it are cut into TCP segments (it reported loss), or -1: in pieces until then. */
  segmentUntilMs = -1;
  /** What probing found this path carries (./path-mtu.ts); the datagrams are sized for the smaller of it and the
   * snapshot's underlay MTU. */
  readonly pathMtu: PathMtu;
  /** The underlay MTU the last snapshot gave (the probing ceiling). */
  snapshotMtuBytes = 0;
  /** The IP packet size datagrams to this neighbour are sized for now. */
  mtuBytes = 0;

  constructor(
    readonly peer: PeerId,
    /** The sleeve's small number for `peer` (./peer-numbers.ts). */
    readonly number: number,
    endpoint: Endpoint,
    session: DataSession | null,
    underlayMtuBytes: number,
  ) {
    this.endpoint = endpoint;
    this.snapshotEndpoint = endpoint;
    this.session = session;
    this.buffer = Buffer.alloc(0);
    this.bodyCapacityBytes = 0;
    this.pieceRoomBytes = 0;
    this.overlayMtuBytes = 0;
    this.pathMtu = new PathMtu(underlayMtuBytes);
    this.resize(underlayMtuBytes);
  }

  /** Data datagrams to and from it so far (everything counted but heartbeats, acks and MTU probes). */
  get dataDatagrams(): number {
    return this.datagramsIn + this.datagramsOut - this.controlDatagrams;
  }

  /** Whether a datagram from `address`:`port` comes from where this neighbour is. */
  isAt(address: string, port: number): boolean {
    const e = this.endpoint;
    return e.port === port && e.address === address;
  }

  /** Take the snapshot's endpoint, unless it is the one the last snapshot gave and the neighbour roamed since. */
  takeEndpoint(endpoint: Endpoint): void {
    const last = this.snapshotEndpoint;
    if (endpoint.address !== last.address || endpoint.port !== last.port) {
      this.endpoint = endpoint;
      this.pathMtu.suspect(0); // another path: probe it at the next chance
    }
    this.snapshotEndpoint = endpoint;
  }

  /**
   * Size the datagrams for what probing found, if that changed. Only between batches with nothing pending for this
   * neighbour (the buffer may be replaced); false when it had to wait (call again later).
   */
  takePathMtu(): boolean {
    const mtu = Math.min(this.snapshotMtuBytes, this.pathMtu.mtuBytes);
    if (mtu === this.mtuBytes) return true;
    if (this.used > 0) return false;
    this.resize(this.snapshotMtuBytes);
    return true;
  }

  /**
   * Size the datagram buffer for `underlayMtuBytes` (the snapshot's; probing may have found the path narrower), the
   * endpoint's family (its outer header) and this session's tag; allocates only if the size changed.
   */
  resize(underlayMtuBytes: number): void {
    this.snapshotMtuBytes = underlayMtuBytes;
    this.pathMtu.setCeiling(underlayMtuBytes, 0);
    const mtu = (this.mtuBytes = Math.min(underlayMtuBytes, this.pathMtu.mtuBytes));
    const tagBytes = this.session?.overheadBytes ?? 0;
    const datagramBytes = mtu - outerBytesOf(this.endpoint);
    this.bodyCapacityBytes = datagramBytes - HEADER_BYTES - tagBytes;
    this.pieceRoomBytes = datagramBytes - HEADER_BYTES - MAX_TAG_BYTES - PIECE_HEADER_BYTES;
    this.overlayMtuBytes = this.bodyCapacityBytes - RECORD_HEADER_BYTES - ETHERNET_HEADER_BYTES;
    if (this.buffer.length !== datagramBytes) this.buffer = withFront(datagramBytes);
  }
}

/**
 * A datagram buffer with memory in front of it that belongs to nobody else: the native AEAD borrows the 64 bytes in
 * front of a body to compute the Poly1305 key in the same pass as the encryption (native/src/aead.c), and the body
 * starts 16 bytes in, after the header.
 */
export function withFront(bytes: number): Buffer {
  return Buffer.alloc(SEAL_FRONT_BYTES + bytes).subarray(SEAL_FRONT_BYTES);
}
const SEAL_FRONT_BYTES = 64 - HEADER_BYTES;

/**
 * The snapshot as the loops use it: peers as numbers, neighbours resolved to their state objects. Built by `apply`,
 * never mutated. The per-number arrays cover every number handed out when it was built (null: no such relation).
 */
export interface SleeveView extends ForwardingView<Neighbour> {
  readonly localPeer: PeerId;
  readonly neighbours: readonly Neighbour[];
  readonly byPeer: ReadonlyMap<PeerId, Neighbour>;
  /** Neighbour by its number. */
  readonly neighbourByNumber: ReadonlyArray<Neighbour | null>;
}

/** A peer id as weave prints peer names: six hex octets joined by colons. */
export function peerLabel(peer: PeerId): string {
  const hex = peer.toString(16).padStart(12, '0');
  return hex.replace(/(..)(?!$)/g, '$1:');
}
