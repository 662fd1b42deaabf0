/**
 * The sleeve's send side: frames from the local bridge, and records relayed for other peers, into datagrams to
 * neighbours. It carries; where a frame goes is ./forwarding-decision.ts's answer.
 *
 * Pipeline (one synchronous pass per capture batch; nothing allocated, awaited or logged per packet):
 *   capture batch -> per frame: runt check -> offloads (virtio_net_hdr): a TCP super-frame goes to ./pieces.ts
 *       (cut into piece datagrams built in place in the underlay's send buffer); a partial checksum is finished ->
 *       forwarding decision (learn, look up, next hops) ->
 *     append a record to that neighbour's pending datagram (a preallocated buffer per neighbour: the one copy we
 *       pay); a full datagram, and every pending one at the end of the batch, gets its header, is sealed in place
 *       when the neighbour has a session, and is handed to `underlay.send`; `underlay.flush()` once per batch.
 *   piece datagrams are claimed in the underlay's send buffer, and sealed as one run (consecutive sequence numbers
 *     of one session) just before the underlay sends them (`Underlay.beforeSend`).
 *   heartbeats and acks (`sendControl`) are sealed and sent one by one.
 *
 * A frame too big for the path (its record does not fit a datagram) is dropped; when it is unicast IPv4 with Don't
 * Fragment, the container is told the overlay MTU with an ICMP "fragmentation needed" written to the bridge.
 */
import type { Capture, FrameBatch } from './capture.js';
import type { Underlay } from './underlay.js';
import type { DataSession } from '../crypto/data-session.js';
import type { Clock } from '../runtime/clock.js';
import {
  HEADER_BYTES,
  HEARTBEAT_FIELDS_BYTES,
  MIN_FRAME_BYTES,
  MessageType,
  PROBE_FIELDS_BYTES,
  RECORD_HEADER_BYTES,
  SLEEVE_MAGIC,
  flagsFor,
  withRelays,
} from './sleeve-format.js';
import { DROP, FLOOD, type ForwardingDecision } from './forwarding-decision.js';
import { FRAG_NEEDED_MAX_BYTES, PACKET_TOO_BIG_MAX_BYTES, writeFragmentationNeeded, writePacketTooBig } from './icmp.js';
import { VNET_F_NEEDS_CSUM, VNET_GSO_NONE, type ChecksumComplete } from './offload.js';
import type { PeerNumbers } from './peer-numbers.js';
import type { SleeveCounters } from './sleeve-counters.js';
import { outerBytesOf, withFront, type Neighbour, type SleeveView } from './sleeve-neighbour.js';
import type { PieceCutter } from './pieces.js';
import { writeLossReport } from './loss.js';

/** Room for a heartbeat: header plus the largest tag a session may append. */
const CONTROL_BUFFER_BYTES = HEADER_BYTES + 256;
/** Piece datagrams sealed in one call at most (a 64 KiB super-frame is about 45). */
const SEAL_RUN_MAX = 128;
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

export interface SleeveSendDeps {
  capture: Capture;
  underlay: Underlay;
  clock: Clock;
  counters: SleeveCounters;
  peers: PeerNumbers;
  decision: ForwardingDecision<Neighbour>;
  copyBytes: CopyBytes;
  checksumComplete: ChecksumComplete;
}

/** See the module comment for the pipeline. */
export class SleeveSend {
  /** The current snapshot (set by `Sleeve.apply`, between batches). */
  view: SleeveView | null = null;
  /** Cuts offloaded frames; set once by the sleeve (pieces and the send side use each other). */
  cutter: PieceCutter | null = null;
  isRunning = false;
  /**
   * Called when data leaves for a neighbour we have heard nothing from since the last data we sent it (once per
   * such stretch, not per datagram): the heartbeats start watching for an answer. Set once by the sleeve.
   */
  onAwaiting: ((n: Neighbour) => void) | null = null;
  /** What our heartbeats announce as the longest we leave between them on an idle path (ms; 0: never idle). */
  idleHeartbeatMs = 0;
  private readonly capture: Capture;
  private readonly underlay: Underlay;
  private readonly clock: Clock;
  private readonly stats: SleeveCounters;
  private readonly peers: PeerNumbers;
  private readonly decision: ForwardingDecision<Neighbour>;
  readonly copyBytes: CopyBytes;
  private readonly checksumComplete: ChecksumComplete;
  private readonly controlBuffer = Buffer.alloc(CONTROL_BUFFER_BYTES);
  private readonly icmpBuffer = Buffer.alloc(Math.max(FRAG_NEEDED_MAX_BYTES, PACKET_TOO_BIG_MAX_BYTES));
  /** MTU probes are built here: room for the largest IP packet's datagram and a tag, front room for the AEAD. */
  private readonly probeBuffer = withFront(65_535);
  /** Neighbours with records pending in this batch; sized by `resetDirty` to hold every neighbour once. */
  private dirty: Neighbour[] = [];
  private dirtyCount = 0;
  /**
   * Claimed piece datagrams whose headers are written but which are not sealed yet: consecutive sequence numbers of
   * one session, sealed in one call (`sealPendingRun`) before the underlay sends any of them.
   */
  private runSession: DataSession | null = null;
  private runFirstSeq = 0;
  private runCount = 0;
  private readonly runOffsets = new Uint32Array(SEAL_RUN_MAX);
  private readonly runLengths = new Uint32Array(SEAL_RUN_MAX);

  constructor(deps: SleeveSendDeps) {
    this.capture = deps.capture;
    this.underlay = deps.underlay;
    this.clock = deps.clock;
    this.stats = deps.counters;
    this.peers = deps.peers;
    this.decision = deps.decision;
    this.copyBytes = deps.copyBytes;
    this.checksumComplete = deps.checksumComplete;
    this.underlay.beforeSend = this.sealPendingRun;
  }

  /** Make room to mark each of `neighbours` dirty once (after a snapshot). */
  resetDirty(neighbours: number): void {
    this.dirty = new Array<Neighbour>(neighbours);
    this.dirtyCount = 0;
  }

  /** Forget unsealed piece datagrams (the underlay discards its queue on stop). */
  reset(): void {
    this.runCount = 0;
    this.runSession = null;
  }

  // ---- Frames from the bridge ----

  readonly onFrames = (batch: FrameBatch): void => {
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
    const decision = this.decision;
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
          this.cutter!.captured(view, buf, h, len, now);
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
      const peer = decision.decideCaptured(view, buf, off, now);
      if (peer === FLOOD) {
        this.floodCaptured(view, buf, off, len);
      } else if (peer !== DROP) {
        const n = decision.nextHop!;
        if (!this.appendCaptured(n, local, peer, buf, off, len)) {
          s.drop_too_big++;
          this.replyTooBig(n, buf, off, len);
        }
      }
    }
    this.flushPending();
  };

  private floodCaptured(view: SleeveView, buf: Buffer, off: number, len: number): void {
    const hops = view.localBroadcast;
    let isTooBig = false;
    for (let h = 0; h < hops.length; h++) {
      if (!this.appendCaptured(hops[h]!, view.localNumber, -1, buf, off, len)) isTooBig = true;
    }
    if (isTooBig) this.stats.drop_too_big++;
  }

  /**
   * A frame too big for `n`'s path: tell its sender the overlay MTU of that path, as a router would (ICMP
   * "fragmentation needed" for IPv4 with DF, ICMPv6 "packet too big" for IPv6), so its TCP sends smaller segments at
   * once. Only frames that came without offloads get here: super-frames are cut into pieces that fit any path.
   */
  private replyTooBig(n: Neighbour, buf: Buffer, off: number, len: number): void {
    const out = this.icmpBuffer;
    let replyBytes = writeFragmentationNeeded(out, 0, buf, off, len, n.overlayMtuBytes);
    if (replyBytes > 0) {
      if (this.capture.write(out, 0, replyBytes)) this.stats.icmp_frag_needed++;
      return;
    }
    replyBytes = writePacketTooBig(out, 0, buf, off, len, n.overlayMtuBytes);
    if (replyBytes > 0 && this.capture.write(out, 0, replyBytes)) this.stats.icmp_packet_too_big++;
  }

  // ---- Records into datagrams ----

  /**
   * Make room for a record of `recordBytes` in `n`'s pending datagram (sending it first if full) and return where
   * the record goes, or -1 when it can never fit the path MTU.
   */
  private reserve(n: Neighbour, recordBytes: number): number {
    if (recordBytes > n.bodyCapacityBytes) {
      n.dropsOutTooBig++;
      return -1;
    }
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
    const ids = this.peers.idBytes;
    for (let k = 0; k < 6; k++) {
      out[at + k] = ids[local * 6 + k]!;
      out[at + 6 + k] = dest < 0 ? 0 : ids[dest * 6 + k]!;
    }
    out.writeUInt16BE(len, at + 12);
    this.copyBytes(buf, off, out, at + RECORD_HEADER_BYTES, len);
    return true;
  }

  /**
   * Append a received record (header and frame) unchanged. `relays`: the relay count it leaves with (a unicast's
   * count on arrival + 1; 0 for a broadcast, whose tree bounds it). False when too big for the path.
   */
  appendRelayed(n: Neighbour, buf: Buffer, record: number, frameLength: number, relays = 0): boolean {
    const recordBytes = RECORD_HEADER_BYTES + frameLength;
    const at = this.reserve(n, recordBytes);
    if (at < 0) return false;
    this.copyBytes(buf, record, n.buffer, at, recordBytes);
    if (relays > n.pendingRelays) n.pendingRelays = relays;
    return true;
  }

  /** Send every pending datagram of this batch, then flush the underlay. */
  flushPending(): void {
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
    const length = this.sealAt(n, n.buffer, 0, MessageType.Frames, n.used, n.pendingRelays);
    n.used = 0;
    n.pendingRelays = 0;
    if (length < 0) return;
    this.underlay.send(n.buffer, 0, length, n.endpoint);
    this.stats.datagrams_out++;
    this.stats.bytes_out += length;
    n.datagramsOut++;
    n.bytesOut += length;
    if (!n.isAwaiting) this.onAwaiting?.(n);
  }

  // ---- Piece datagrams (built by ./pieces.ts) ----

  /**
   * Where to build the next piece datagram for `n`, whose body will be `bodyLength` bytes: straight in the
   * underlay's send buffer (`Underlay.claim`: no copy on the way out). Returns the datagram's offset in
   * `underlay.claimBuffer`, or -1 when the underlay refused (counted there). Frames already pending for `n` go
   * first: TCP takes segments arriving out of order as loss.
   */
  beginPiece(n: Neighbour, bodyLength: number): number {
    if (n.used > 0) this.sendPending(n);
    if (!n.isAwaiting) this.onAwaiting?.(n);
    return this.underlay.claim(HEADER_BYTES + bodyLength + (n.session?.overheadBytes ?? 0), n.endpoint);
  }

  /** The buffer `beginPiece` offsets point into. */
  get pieceOut(): Buffer {
    return this.underlay.claimBuffer;
  }

  /**
   * Header (and, for a sealed hop, a place in the pending seal run) for the claimed datagram whose body is at
   * `pieceOut[d + 16..]`: a piece, or (`type` Frames) one TCP segment cut from an offloaded frame, leaving with relay
   * count `relays` (0 from the capturing router). False (the claim given back) when it could not be sealed.
   */
  endPiece(n: Neighbour, d: number, bodyLength: number, type: MessageType = MessageType.Piece, relays = 0): boolean {
    const out = this.underlay.claimBuffer;
    const session = n.session;
    let length: number;
    if (session === null) {
      length = HEADER_BYTES + bodyLength;
      this.writeHeader(out, d, withRelays(flagsFor(type, false, 0), relays), this.nextClearSeq(n));
    } else {
      length = this.deferSeal(session, out, d, bodyLength, type, relays);
    }
    if (length < 0) {
      n.dropsOutSeal++;
      this.underlay.unclaim();
      return false;
    }
    this.stats.datagrams_out++;
    this.stats.bytes_out += length;
    if (type === MessageType.Piece) this.stats.pieces_out++;
    else this.stats.frames_out++;
    n.datagramsOut++;
    n.bytesOut += length;
    return true;
  }

  /**
   * Header for the claimed piece datagram at `out[d]` (body already there), queued to be sealed with the pending
   * run: it leaves only after `sealPendingRun`, which the underlay calls before it sends anything. Returns the
   * datagram's sealed length, or -1 (counted) when the tag would not fit.
   */
  private deferSeal(session: DataSession, out: Buffer, d: number, bodyLength: number, type: MessageType, relays: number): number {
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
    this.writeHeader(out, d, withRelays(flagsFor(type, true, session.sendKeyPhase), relays), seq);
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
    const session = this.runSession;
    if (count === 0 || session === null) return;
    this.runCount = 0;
    this.runSession = null;
    const buffer = this.underlay.claimBuffer;
    if (session.sealRun(buffer, this.runOffsets, this.runLengths, count, HEADER_BYTES, this.runFirstSeq) === count) return;
    for (let i = 0; i < count; i++) {
      const body = this.runOffsets[i]! + HEADER_BYTES;
      buffer.fill(0, body, body + this.runLengths[i]!);
    }
    this.stats.drop_seal += count;
  };

  // ---- Headers and sealing ----

  private writeHeader(buffer: Buffer, at: number, flags: number, seq: number): void {
    buffer[at] = SLEEVE_MAGIC;
    buffer[at + 1] = flags;
    const ids = this.peers.idBytes;
    const local = this.view!.localNumber * 6;
    for (let k = 0; k < 6; k++) buffer[at + 2 + k] = ids[local + k]!;
    buffer.writeUInt32BE(Math.floor(seq / TWO_POW_32), at + 8);
    buffer.writeUInt32BE(seq >>> 0, at + 12);
  }

  private nextClearSeq(n: Neighbour): number {
    const seq = n.clearSeq;
    n.clearSeq = seq + 1 < TWO_POW_53 ? seq + 1 : 0;
    return seq;
  }

  /**
   * Write the header for a body of `bodyLength` already at `buffer[at + 16..]` and seal it when `n` has a session.
   * `relays`: the datagram's RELAYS flag. Returns the datagram's length, or -1 (counted) when it could not be sealed.
   */
  private sealAt(n: Neighbour, buffer: Buffer, at: number, type: MessageType, bodyLength: number, relays = 0): number {
    const session = n.session;
    if (session === null) {
      this.writeHeader(buffer, at, withRelays(flagsFor(type, false, 0), relays), this.nextClearSeq(n));
      return HEADER_BYTES + bodyLength;
    }
    if (at + HEADER_BYTES + bodyLength + session.overheadBytes > buffer.length) {
      this.stats.drop_seal++;
      n.dropsOutSeal++;
      return -1;
    }
    const seq = session.nextSeq();
    this.writeHeader(buffer, at, withRelays(flagsFor(type, true, session.sendKeyPhase), relays), seq);
    const sealed = session.seal(buffer, at, at + HEADER_BYTES, bodyLength, seq);
    if (sealed < 0) {
      this.stats.drop_seal++;
      n.dropsOutSeal++;
      return -1;
    }
    return HEADER_BYTES + sealed;
  }

  /**
   * Send `n` an MTU probe of round `round` padded to `sizeBytes` of IP packet (outer headers included), as a message
   * of its own (never part of a GSO run: a run's segments must all fit the device). False when that size leaves no
   * room for the probe's fields or it could not be sealed. Called from the heartbeat timer, never inside a batch.
   */
  sendProbe(n: Neighbour, round: number, sizeBytes: number): boolean {
    if (!this.isRunning) return false;
    const b = this.probeBuffer;
    const bodyLength = sizeBytes - outerBytesOf(n.endpoint) - HEADER_BYTES - (n.session?.overheadBytes ?? 0);
    if (bodyLength < PROBE_FIELDS_BYTES || HEADER_BYTES + bodyLength + 16 > b.length) return false;
    b.writeUInt32BE(round >>> 0, HEADER_BYTES);
    b.writeUInt16BE(sizeBytes & 0xffff, HEADER_BYTES + 4);
    b.fill(0, HEADER_BYTES + PROBE_FIELDS_BYTES, HEADER_BYTES + bodyLength);
    const length = this.sealAt(n, b, 0, MessageType.MtuProbe, bodyLength);
    if (length < 0) return false;
    this.underlay.flush();
    this.underlay.send(b, 0, length, n.endpoint);
    this.underlay.flush();
    this.stats.datagrams_out++;
    this.stats.bytes_out += length;
    n.datagramsOut++;
    n.bytesOut += length;
    n.controlDatagrams++;
    this.stats.mtu_probes_out++;
    return true;
  }

  /** Count a path MTU change found outside the receive loop (a probe round ended). */
  countPathMtuChange(): void {
    this.stats.path_mtu_changes++;
  }

  /** Ack `n`'s MTU probe of round `round` and size `sizeBytes` (sealed when `n` has a session). */
  sendProbeAck(n: Neighbour, round: number, sizeBytes: number): void {
    if (!this.isRunning) return;
    const b = this.controlBuffer;
    b.writeUInt32BE(round >>> 0, HEADER_BYTES);
    b.writeUInt16BE(sizeBytes, HEADER_BYTES + 4);
    const length = this.sealAt(n, b, 0, MessageType.MtuProbeAck, PROBE_FIELDS_BYTES);
    if (length < 0) return;
    this.underlay.send(b, 0, length, n.endpoint);
    this.stats.datagrams_out++;
    this.stats.bytes_out += length;
    n.datagramsOut++;
    n.bytesOut += length;
    n.controlDatagrams++;
    this.stats.mtu_probe_acks_out++;
  }

  /**
   * Send a heartbeat or an ack to `n` now (sealed when `n` has a session). A heartbeat says how long we may leave
   * between heartbeats while the path is idle (`idleHeartbeatMs`, ./heartbeats.ts); an ack carries a loss report.
   */
  sendControl(n: Neighbour, type: MessageType): void {
    if (!this.isRunning) return;
    // An ack tells the loss seen from `n` since the last one (./loss.ts).
    let bodyLength = HEARTBEAT_FIELDS_BYTES;
    if (type === MessageType.HeartbeatAck) {
      bodyLength = writeLossReport(n, this.controlBuffer, HEADER_BYTES);
    } else {
      this.controlBuffer.writeUInt32BE(this.idleHeartbeatMs, HEADER_BYTES);
      // Owed an answer from here on, sent or not (one that could not be sealed is never answered either).
      const now = this.clock.now();
      n.heartbeatOutMs = now;
      if (n.unackedSinceMs < 0) n.unackedSinceMs = now;
    }
    const length = this.sealAt(n, this.controlBuffer, 0, type, bodyLength);
    if (length < 0) return;
    this.underlay.send(this.controlBuffer, 0, length, n.endpoint);
    this.stats.datagrams_out++;
    this.stats.bytes_out += length;
    n.datagramsOut++;
    n.bytesOut += length;
    n.controlDatagrams++;
    if (type === MessageType.Heartbeat) {
      this.stats.heartbeats_out++;
      n.heartbeatSentMs = n.heartbeatOutMs; // an unanswered earlier one is timed no more
    } else this.stats.heartbeat_acks_out++;
  }
}
