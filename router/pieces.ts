/**
 * Pieces: offloaded frames (TCP super-frames of up to 64 KiB, see ./offload.ts) cut into piece datagrams on the way
 * out and joined from them on the way in (wire format: ./sleeve-format.ts, "Body of a piece datagram").
 *
 * Pipeline:
 *   cut (send side, per captured super-frame): sanity of its virtio_net_hdr -> forwarding decision -> per next hop,
 *     per piece: claim a datagram in the underlay's send buffer (./sleeve-send.ts `beginPiece`), write the piece
 *     header and copy the piece in place, queue it for the seal run (`endPiece`). Nothing waits: pieces leave with
 *     the underlay's next flush.
 *   relay (receive side): a piece for another peer is passed on unchanged in its own datagram.
 *   join (receive side, per piece for us): the piece must continue the frame its capturing peer is sending (same
 *     frame id, the next offset) or that frame is given up; a whole frame's header is checked against the frame
 *     (./offload.ts `isSaneVnetHeader`) before it is written to the bridge with it, or, when the capture takes no
 *     offloads (pcap), cut into ordinary MTU-sized segments with complete checksums (./tcp-segments.ts).
 *
 * Reassembly memory: one buffer of 64 KiB per capturing peer that is sending us a frame now, taken from a budget
 * (`maxReassemblyBytes`) when its first piece arrives (not per packet: per sender that starts after being idle),
 * given back when the sender has been idle for `reassemblyIdleMs` (`expire`, from the heartbeat timer) or when its
 * peer number is released. A first piece that finds the budget spent is dropped and counted
 * (`drop_reassembly_full`); TCP sends the frame again.
 */
import type { Capture } from './capture.js';
import { DROP, FLOOD, BROADCAST, DELIVER, type ForwardingDecision } from './forwarding-decision.js';
import {
  HEADER_BYTES,
  MAX_OFFLOADED_FRAME_BYTES,
  MAX_RELAYS,
  MIN_FRAME_BYTES,
  MessageType,
  PIECE_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  relaysOf,
} from './sleeve-format.js';
import { VNET_HEADER_BYTES, checksumCompleteJs, isSaneVnetHeader, isVnetHeaderForFrame, type ChecksumComplete } from './offload.js';
import { TcpSegmenter } from './tcp-segments.js';
import { isSegmentingFor, noteRelayed, type SegmentMode } from './loss.js';
import type { PeerNumbers } from './peer-numbers.js';
import type { SleeveCounters } from './sleeve-counters.js';
import type { Neighbour, SleeveView } from './sleeve-neighbour.js';
import type { SleeveSend } from './sleeve-send.js';

const JOINER_BYTES = VNET_HEADER_BYTES + MAX_OFFLOADED_FRAME_BYTES;

/**
 * An offloaded frame being joined from its pieces, one per capturing peer (a capturing peer sends the pieces of one
 * frame back to back, and they follow one path, so they arrive in order unless the underlay reorders).
 */
class Joiner {
  /** [virtio_net_hdr | frame]. */
  readonly buffer = Buffer.alloc(JOINER_BYTES);
  /** Frame id being joined, or -1 (waiting for a first piece). */
  id = -1;
  length = 0;
  /** Bytes joined so far: the offset the next piece must have. */
  next = 0;
  /** When the last piece arrived. */
  lastMs = 0;
}

export interface PiecesDeps {
  capture: Capture;
  counters: SleeveCounters;
  peers: PeerNumbers;
  decision: ForwardingDecision<Neighbour>;
  send: SleeveSend;
  /** Finishes the checksums of TCP segments cut from super-frames. @default checksumCompleteJs */
  checksumComplete?: ChecksumComplete;
}

export interface PiecesOptions {
  /**
   * Cut TCP super-frames into TCP segments, one per datagram (./tcp-segments.ts), rather than into pieces: a lost
   * datagram then loses one segment, not the whole frame. 'auto': for a neighbour that reports loss (./loss.ts);
   * true ('always') or false ('never'). @default 'auto'
   */
  segmentOffloads?: boolean | SegmentMode;
  /** Most bytes of reassembly buffers held at once (one 64 KiB buffer per sender). @default 16 MiB (256 senders) */
  maxReassemblyBytes?: number;
  /** A sender's reassembly buffer is freed after this long without a piece. @default 10_000 */
  reassemblyIdleMs?: number;
}

/** Cuts captured super-frames into pieces (`captured`), relays pieces (`relay`) and joins them (`join`). */
export class PieceCutter {
  private readonly capture: Capture;
  private readonly stats: SleeveCounters;
  private readonly peers: PeerNumbers;
  private readonly decision: ForwardingDecision<Neighbour>;
  private readonly send: SleeveSend;
  /** Cuts joined super-frames for a capture without offloads (pcap), into `segmentOut` one segment at a time. */
  private readonly joinSegmenter: TcpSegmenter;
  private readonly segmentOut = Buffer.alloc(MAX_OFFLOADED_FRAME_BYTES);
  private readonly maxJoiners: number;
  private readonly idleMs: number;
  /** Offloaded frames being joined, by capturing peer number. */
  private readonly joiners: Array<Joiner | null> = [];
  private joinerCount = 0;
  /** Id of the last offloaded frame we captured and sent. */
  private lastFrameId = 0;
  private readonly segmenter: TcpSegmenter;
  private readonly segmentMode: SegmentMode;
  /** The captured super-frame being sent: its segments once parsed (0: cannot be cut), -1 before. */
  private segments = -1;

  constructor(deps: PiecesDeps, options: PiecesOptions = {}) {
    this.capture = deps.capture;
    this.stats = deps.counters;
    this.peers = deps.peers;
    this.decision = deps.decision;
    this.send = deps.send;
    this.maxJoiners = Math.floor((options.maxReassemblyBytes ?? 16 * 1024 * 1024) / JOINER_BYTES);
    this.idleMs = options.reassemblyIdleMs ?? 10_000;
    this.segmenter = new TcpSegmenter(deps.checksumComplete ?? checksumCompleteJs);
    this.joinSegmenter = new TcpSegmenter(deps.checksumComplete ?? checksumCompleteJs);
    const mode = options.segmentOffloads ?? 'auto';
    this.segmentMode = mode === true ? 'always' : mode === false ? 'never' : mode;
  }

  /** Bytes of reassembly buffers held now. */
  get reassemblyBytes(): number {
    return this.joinerCount * JOINER_BYTES;
  }

  // ---- Cut ----

  /**
   * A frame the capture handed over with offloads (a TCP super-frame, header at `buf[h]`, frame right after it):
   * send it to the unicast next hop of its destination, or along our broadcast tree when the destination MAC is a
   * group or unknown; as TCP segments, one per datagram, where they fit the hop's datagrams, else in pieces.
   */
  captured(view: SleeveView, buf: Buffer, h: number, len: number, now: number): void {
    const off = h + VNET_HEADER_BYTES;
    if (len > MAX_OFFLOADED_FRAME_BYTES || !isSaneVnetHeader(buf, h, len)) {
      this.stats.drop_bad_offload++;
      return;
    }
    const id = (this.lastFrameId = (this.lastFrameId + 1) >>> 0);
    const peer = this.decision.decideCaptured(view, buf, off, now);
    if (peer === DROP) return;
    const local = view.localNumber;
    this.segments = -1; // parsed when a hop wants segments
    if (peer === FLOOD) {
      const hops = view.localBroadcast;
      for (let k = 0; k < hops.length; k++) this.send1(hops[k]!, local, -1, id, buf, h, len, now);
    } else {
      this.send1(this.decision.nextHop!, local, peer, id, buf, h, len, now);
    }
  }

  /**
   * One copy of a captured offloaded frame for `n`: in segments when `n` is to get them (./loss.ts) and the frame
   * can be cut so that they fit its datagrams, else in pieces.
   */
  private send1(n: Neighbour, capturing: number, dest: number, id: number, buf: Buffer, h: number, len: number, now: number): void {
    if (isSegmentingFor(this.segmentMode, n, now)) {
      if (this.segments < 0) this.segments = this.segmenter.parse(buf, h, len);
      if (this.segments > 0 && RECORD_HEADER_BYTES + this.segmenter.largestFrameBytes <= n.bodyCapacityBytes) {
        this.segment(n, capturing, dest, this.segments);
        return;
      }
    }
    this.cut(n, capturing, dest, id, buf, h, len);
  }

  /** Send the parsed super-frame's `count` TCP segments to `n`, each a record alone in a frames datagram. */
  private segment(n: Neighbour, capturing: number, dest: number, count: number): void {
    const seg = this.segmenter;
    const ids = this.peers.idBytes;
    const send = this.send;
    for (let i = 0; i < count; i++) {
      const frameBytes = seg.segmentFrameBytes(i);
      const d = send.beginPiece(n, RECORD_HEADER_BYTES + frameBytes);
      if (d < 0) return;
      const out = send.pieceOut;
      const p = d + HEADER_BYTES;
      for (let k = 0; k < 6; k++) {
        out[p + k] = ids[capturing * 6 + k]!;
        out[p + 6 + k] = dest < 0 ? 0 : ids[dest * 6 + k]!;
      }
      out.writeUInt16BE(frameBytes, p + 12);
      seg.writeSegment(i, out, p + RECORD_HEADER_BYTES, send.copyBytes);
      if (!send.endPiece(n, d, RECORD_HEADER_BYTES + frameBytes, MessageType.Frames)) return;
      this.stats.segments_out++;
    }
    this.stats.segmented_out++;
  }

  /** Cut the offloaded frame at `buf[h]` (header, then `len` frame bytes) into piece datagrams for `n`. */
  private cut(n: Neighbour, capturing: number, dest: number, id: number, buf: Buffer, h: number, len: number): void {
    const room = n.pieceRoomBytes;
    const ids = this.peers.idBytes;
    const send = this.send;
    for (let at = 0; at < len; at += room) {
      const piece = len - at < room ? len - at : room;
      const d = send.beginPiece(n, PIECE_HEADER_BYTES + piece);
      if (d < 0) return;
      const out = send.pieceOut;
      const p = d + HEADER_BYTES;
      for (let k = 0; k < 6; k++) {
        out[p + k] = ids[capturing * 6 + k]!;
        out[p + 6 + k] = dest < 0 ? 0 : ids[dest * 6 + k]!;
      }
      out.writeUInt32BE(id, p + 12);
      out.writeUInt32BE(len, p + 16);
      out.writeUInt32BE(at, p + 20);
      for (let k = 0; k < VNET_HEADER_BYTES; k++) out[p + 24 + k] = buf[h + k]!; // 10 bytes: cheaper than a call
      send.copyBytes(buf, h + VNET_HEADER_BYTES + at, out, p + PIECE_HEADER_BYTES, piece);
      if (!send.endPiece(n, d, PIECE_HEADER_BYTES + piece)) return;
    }
    this.stats.offloaded_out++;
  }

  // ---- Receive: relay and join ----

  /** A piece datagram's body (at `buf[p]`, `bodyLength` bytes) from neighbour `from`: relay it, join it, or both. */
  received(view: SleeveView, from: Neighbour, buf: Buffer, p: number, bodyLength: number, now: number): void {
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
    const decision = this.decision;
    const verdict = decision.decideReceived(view, from, buf, p);
    if (verdict === DROP) return;
    const capturing = decision.capturing;
    if (verdict === BROADCAST) {
      const hops = view.broadcastByNumber[capturing];
      if (hops) {
        for (let k = 0; k < hops.length; k++) {
          const n = hops[k]!;
          if (decision.mayRelay(n, from, capturing)) {
            noteRelayed(from, n, now);
            this.relay(n, buf, p, bodyLength);
          }
        }
      }
      this.join(buf, p, piece, frameLength, at, capturing, now);
    } else if (verdict === DELIVER) {
      this.join(buf, p, piece, frameLength, at, capturing, now);
    } else {
      const relays = relaysOf(buf[p - HEADER_BYTES + 1]!);
      if (relays >= MAX_RELAYS) s.drop_hop_limit++;
      else {
        noteRelayed(from, decision.nextHop!, now);
        this.relay(decision.nextHop!, buf, p, bodyLength, relays + 1);
      }
    }
  }

  /** Pass a piece body on to `n` unchanged (its own datagram, sealed for `n`). */
  private relay(n: Neighbour, buf: Buffer, p: number, bodyLength: number, relays = 0): void {
    if (bodyLength > n.bodyCapacityBytes) {
      this.stats.drop_too_big++;
      n.dropsOutTooBig++;
      return;
    }
    const send = this.send;
    const d = send.beginPiece(n, bodyLength);
    if (d < 0) return;
    send.copyBytes(buf, p, send.pieceOut, d + HEADER_BYTES, bodyLength);
    if (send.endPiece(n, d, bodyLength, MessageType.Piece, relays)) this.stats.pieces_forwarded++;
  }

  /** Add a piece to the frame `capturing` is sending us; write the frame to the bridge when it is whole. */
  private join(buf: Buffer, p: number, piece: number, frameLength: number, at: number, capturing: number, now: number): void {
    const s = this.stats;
    let j = this.joiners[capturing] ?? null;
    if (j === null) {
      if (at !== 0) {
        s.drop_piece_gap++; // its frame's first piece never reached us (or we gave the frame up)
        return;
      }
      if (this.joinerCount >= this.maxJoiners) {
        s.drop_reassembly_full++;
        return;
      }
      while (this.joiners.length <= capturing) this.joiners.push(null);
      j = this.joiners[capturing] = new Joiner();
      this.joinerCount++;
    }
    j.lastMs = now;
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
    this.send.copyBytes(buf, p + PIECE_HEADER_BYTES, j.buffer, VNET_HEADER_BYTES + at, piece);
    j.next = at + piece;
    if (j.next < frameLength) return;
    j.id = -1;
    if (!isSaneVnetHeader(j.buffer, 0, frameLength) || !isVnetHeaderForFrame(j.buffer, 0, frameLength)) {
      s.drop_bad_piece++;
      return;
    }
    this.decision.learn(j.buffer, VNET_HEADER_BYTES + 6, capturing, now);
    if (this.capture.vnetHeaderBytes !== VNET_HEADER_BYTES) {
      // A bridge without offloads (pcap): cut into ordinary segments here, as the peer's NIC would have.
      const seg = this.joinSegmenter;
      const count = seg.parse(j.buffer, 0, frameLength);
      if (count === 0) {
        s.drop_offload_unsupported++;
        return;
      }
      let written = 0;
      for (let i = 0; i < count; i++) {
        const length = seg.writeSegment(i, this.segmentOut, 0, this.send.copyBytes);
        if (this.capture.write(this.segmentOut, 0, length)) written++;
      }
      if (written > 0) s.offloaded_segmented++;
      else s.drop_capture_full++;
      return;
    }
    if (this.capture.writeOffloaded(j.buffer, 0, frameLength)) s.offloaded_delivered++;
    else s.drop_capture_full++;
  }

  /** Free the reassembly buffers of senders idle for `reassemblyIdleMs` (from the heartbeat timer). */
  expire(now: number): void {
    const joiners = this.joiners;
    for (let i = 0; i < joiners.length; i++) {
      const j = joiners[i];
      if (j && now - j.lastMs > this.idleMs) this.forget(i);
    }
  }

  /** Drop what is kept for peer number `n` (it is being released). */
  forget(n: number): void {
    if (this.joiners[n]) {
      this.joiners[n] = null;
      this.joinerCount--;
    }
  }
}
