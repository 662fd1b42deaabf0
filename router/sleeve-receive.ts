/**
 * The sleeve's receive side: datagrams from neighbours, out to the local bridge or on to other neighbours.
 *
 * Pipeline (one synchronous pass per underlay batch; nothing allocated, awaited or logged per packet):
 *   underlay batch -> per datagram: header (length, magic, type, seq) -> sender must be a neighbour ->
 *       source: a clear datagram must come from the neighbour's endpoint; a sealed one from elsewhere is opened,
 *         and moves the endpoint there only if it is authentic (roaming, NAT rebinding, as WireGuard does) ->
 *       sealed/clear must match the neighbour's session -> sealed: replay verdict (`checkOpen`), then queued in a
 *       run of consecutive datagrams from one neighbour under one key phase, opened in place in one call
 *       (`openRun`) when the run ends (while the neighbour has a `graceSession`, a duplicate connection's grace of
 *       a few seconds: one at a time, under the current session, else under the previous one) -> handled in
 *       arrival order:
 *       frames: every record validated first (taken whole or not at all); per record, the forwarding decision
 *         (./forwarding-decision.ts): deliver to the bridge (learning the source MAC as the capturing peer's),
 *         relay to another neighbour (appended to its pending datagram, ./sleeve-send.ts), or both (broadcast);
 *       pieces: to ./pieces.ts (relayed, or joined into their frame);
 *       every authentic datagram: its seq notes gaps from that neighbour (./loss.ts);
 *       heartbeat: note the time, answer with an ack carrying the loss seen since the last one; ack: note the time
 *         and the loss the neighbour reports (it decides how super-frames are cut for it, ./loss.ts);
 *       MTU probe: answer with a probe ack; probe ack: to the neighbour's ./path-mtu.ts (a larger MTU proven resizes
 *         its datagrams once this batch's pending ones are out).
 *       frames for the bridge go through ./tcp-coalesce.ts: consecutive TCP segments of a flow are joined into one
 *         large frame (software GRO), anything else is written as it comes;
 *     -> pending datagrams flushed (`SleeveSend.flushPending`), held TCP frames written (`TcpCoalescer.flush`);
 *       `capture.flush()` once per batch.
 */
import type { Capture } from './capture.js';
import type { DatagramBatch } from './underlay.js';
import type { Clock } from '../runtime/clock.js';
import {
  HEADER_BYTES,
  HEARTBEAT_FIELDS_BYTES,
  MAX_IDLE_HEARTBEAT_MS,
  HeaderDrop,
  MAX_RELAYS,
  MessageType,
  PROBE_FIELDS_BYTES,
  RECORD_HEADER_BYTES,
  checkHeader,
  countRecords,
  isEncryptedFlags,
  keyPhaseOf,
  readSeq,
  relaysOf,
} from './sleeve-format.js';
import { BROADCAST, DELIVER, DROP, type ForwardingDecision } from './forwarding-decision.js';
import type { PeerNumbers } from './peer-numbers.js';
import { countOpenDrop, type SleeveCounters } from './sleeve-counters.js';
import type { Neighbour, SleeveView } from './sleeve-neighbour.js';
import type { SleeveSend } from './sleeve-send.js';
import type { PieceCutter } from './pieces.js';
import { noteAck } from './heartbeats.js';
import { noteRelayed, noteSeq, takeLossReport } from './loss.js';
import type { TcpCoalescer } from './tcp-coalesce.js';

/** Received datagrams opened in one call at most. */
const OPEN_RUN_MAX = 256;
/** The largest sealed body a datagram can carry (a UDP payload is under 64 KiB): the copy `openEither` keeps. */
const MAX_SEALED_BODY_BYTES = 65_536;

export interface SleeveReceiveDeps {
  capture: Capture;
  clock: Clock;
  counters: SleeveCounters;
  peers: PeerNumbers;
  decision: ForwardingDecision<Neighbour>;
  send: SleeveSend;
  pieces: PieceCutter;
  coalescer: TcpCoalescer;
}

/** See the module comment for the pipeline. */
export class SleeveReceive {
  /** The current snapshot (set by `Sleeve.apply`, between batches). */
  view: SleeveView | null = null;
  private readonly capture: Capture;
  private readonly clock: Clock;
  private readonly stats: SleeveCounters;
  private readonly peers: PeerNumbers;
  private readonly decision: ForwardingDecision<Neighbour>;
  private readonly send: SleeveSend;
  private readonly pieces: PieceCutter;
  private readonly coalescer: TcpCoalescer;
  /** Received sealed datagrams from one neighbour under one key phase, opened in one call (`openPendingRun`). */
  private openNeighbour: Neighbour | null = null;
  private openPhase = 0;
  private openCount = 0;
  private readonly openOffsets = new Uint32Array(OPEN_RUN_MAX);
  private readonly openLengths = new Uint32Array(OPEN_RUN_MAX);
  private readonly openSeqs = new Float64Array(OPEN_RUN_MAX);
  private readonly openResults = new Int32Array(OPEN_RUN_MAX);
  private readonly openTypes = new Uint8Array(OPEN_RUN_MAX);
  /** Per run entry: -1 when it came from its neighbour's endpoint, else its index in `batch` (roams if authentic). */
  private readonly openElsewhere = new Int32Array(OPEN_RUN_MAX);
  /** An ack raised some neighbour's path MTU in this batch: resize after the pending datagrams are out. */
  private hasPathMtuChange = false;
  /** The batch being handled (for the source of a datagram that roams). */
  private batch: DatagramBatch | null = null;
  /** A sealed body as it came, for a second try under another session (`openEither`); allocated once. */
  private scratch: Buffer | null = null;

  constructor(deps: SleeveReceiveDeps) {
    this.capture = deps.capture;
    this.clock = deps.clock;
    this.stats = deps.counters;
    this.peers = deps.peers;
    this.decision = deps.decision;
    this.send = deps.send;
    this.pieces = deps.pieces;
    this.coalescer = deps.coalescer;
  }

  /** Returns whether the batch carried frames (a reply may follow) rather than only heartbeats and drops. */
  readonly onDatagrams = (batch: DatagramBatch): boolean => {
    const s = this.stats;
    let hasFrames = false;
    const view = this.view;
    const now = this.clock.now();
    const buf = batch.buffer;
    const count = batch.count;
    s.datagrams_in += count;
    this.batch = batch;
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
      const sender = this.peers.lookupAt(buf, off + 2);
      const n = view === null || sender < 0 ? null : view.neighbourByNumber[sender];
      if (!n) {
        s.drop_unknown_sender++;
        continue;
      }
      const flags = buf[off + 1]!;
      const bodyLength = len - HEADER_BYTES;
      const session = n.session;
      const isAtEndpoint = n.isAt(batch.addresses[i]!, batch.ports[i]!);
      if (isEncryptedFlags(flags)) {
        if (session === null) {
          s.drop_unexpected_sealed++;
          n.dropsInAuth++;
          continue;
        }
        const seq = readSeq(buf, off);
        const phase = keyPhaseOf(flags);
        if (n.graceSession !== null) {
          // A duplicate connection's grace: the peer may seal under either session. One at a time, in order.
          if (this.openCount > 0 && this.openPendingRun(view!, buf, now)) hasFrames = true;
          const r = this.openEither(n, buf, off, bodyLength, seq, phase);
          if (r < 0) {
            countOpenDrop(s, r);
            n.dropsInAuth++;
            continue;
          }
          n.datagramsIn++;
          n.bytesIn += len;
          if (!isAtEndpoint) this.roam(n, i);
          // Two sequences interleave here: no gaps are counted (seq -1) until the grace ends.
          if (this.handle(view!, n, type, buf, off, r, phase, -1, now)) hasFrames = true;
          continue;
        }
        // Opened with the run it joins, in one call; handled then, in arrival order.
        const verdict = session.checkOpen(seq, phase);
        if (verdict < 0) {
          countOpenDrop(s, verdict);
          n.dropsInAuth++;
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
        this.openElsewhere[j] = isAtEndpoint ? -1 : i;
        continue;
      }
      if (!isAtEndpoint) {
        // Anyone can write a neighbour's name into a clear header: only where the neighbour is counts.
        s.drop_bad_source++;
        n.dropsInSource++;
        continue;
      }
      if (session !== null) {
        s.drop_cleartext++;
        n.dropsInAuth++;
        continue;
      }
      n.datagramsIn++;
      n.bytesIn += len;
      if (this.openCount > 0 && this.openPendingRun(view!, buf, now)) hasFrames = true;
      if (this.handle(view!, n, type, buf, off, bodyLength, 0, readSeq(buf, off), now)) hasFrames = true;
    }
    if (this.openCount > 0 && this.openPendingRun(view!, buf, now)) hasFrames = true;
    this.batch = null;
    if (view !== null) this.send.flushPending();
    this.coalescer.flush();
    if (this.hasPathMtuChange && view !== null) {
      this.hasPathMtuChange = false;
      for (const n of view.neighbours) n.takePathMtu();
    }
    this.capture.flush();
    return hasFrames;
  };

  /** Open the pending run of sealed datagrams in `buf` in one call and handle each; true if any carried frames. */
  private openPendingRun(view: SleeveView, buf: Buffer, now: number): boolean {
    const count = this.openCount;
    const n = this.openNeighbour!;
    this.openCount = 0;
    this.openNeighbour = null;
    const results = this.openResults;
    n.session!.openRun(buf, this.openOffsets, this.openLengths, this.openSeqs, count, HEADER_BYTES, this.openPhase, results);
    let hasFrames = false;
    for (let j = 0; j < count; j++) {
      const r = results[j]!;
      const elsewhere = this.openElsewhere[j]!;
      if (r < 0) {
        // From its endpoint or not, a sealed datagram that does not open is counted for why (drop_decrypt, ...).
        countOpenDrop(this.stats, r);
        n.dropsInAuth++;
        continue;
      }
      n.datagramsIn++;
      n.bytesIn += HEADER_BYTES + this.openLengths[j]!;
      if (elsewhere >= 0) this.roam(n, elsewhere);
      if (this.handle(view, n, this.openTypes[j]!, buf, this.openOffsets[j]!, r, this.openPhase, this.openSeqs[j]!, now)) hasFrames = true;
    }
    return hasFrames;
  }

  /**
   * Open the sealed datagram at `off` under `n.session`, else under `n.graceSession` (the peer may still seal
   * under the session of a duplicate connection in its grace). An AEAD may wipe a body that fails, so the body is
   * copied first when both sessions could take it. Returns the plaintext length or the current session's refusal.
   */
  private openEither(n: Neighbour, buf: Buffer, off: number, sealedLength: number, seq: number, phase: number): number {
    const current = n.session!;
    const grace = n.graceSession!;
    const body = off + HEADER_BYTES;
    const currentVerdict = current.checkOpen(seq, phase);
    const graceVerdict = grace.checkOpen(seq, phase);
    if (graceVerdict < 0) return currentVerdict < 0 ? currentVerdict : current.open(buf, off, body, sealedLength, seq, phase);
    if (currentVerdict < 0) return grace.open(buf, off, body, sealedLength, seq, phase);
    this.scratch ??= Buffer.alloc(MAX_SEALED_BODY_BYTES);
    const isCopied = sealedLength <= this.scratch.length;
    if (isCopied) buf.copy(this.scratch, 0, body, body + sealedLength);
    const r = current.open(buf, off, body, sealedLength, seq, phase);
    if (r >= 0 || !isCopied) return r;
    this.scratch.copy(buf, body, 0, sealedLength);
    const again = grace.open(buf, off, body, sealedLength, seq, phase);
    return again >= 0 ? again : r;
  }

  /**
   * An authentic datagram from `n` came from another endpoint: send there from now on. Allocates (an endpoint), but
   * only when a neighbour moves, which only its key can make happen.
   */
  private roam(n: Neighbour, i: number): void {
    const batch = this.batch!;
    const address = batch.addresses[i]!;
    const port = batch.ports[i]!;
    if (n.isAt(address, port)) return; // an earlier datagram of this run moved it already
    n.endpoint = { address, port };
    this.stats.endpoint_moves++;
  }

  /**
   * One authentic datagram from `n` (body in the clear at `buf[off + 16]`, key phase and seq from its header; seq -1:
   * not counted for loss); true if it carried frames.
   */
  private handle(
    view: SleeveView,
    n: Neighbour,
    type: number,
    buf: Buffer,
    off: number,
    bodyLength: number,
    phase: number,
    seq: number,
    now: number,
  ): boolean {
    const s = this.stats;
    n.lastHeardMs = now;
    n.isAwaiting = false;
    if (seq >= 0) s.datagrams_missed += noteSeq(n, phase, seq);
    if (type === MessageType.Frames) {
      this.receiveFrames(view, n, buf, off + HEADER_BYTES, bodyLength, now);
      return true;
    }
    if (type === MessageType.Piece) {
      this.coalescer.flush(); // a frame joined from pieces may continue a flow whose segments are held
      this.pieces.received(view, n, buf, off + HEADER_BYTES, bodyLength, now);
      return true;
    }
    n.controlDatagrams++;
    if (type === MessageType.Heartbeat) {
      s.heartbeats_in++;
      n.lastHeartbeatMs = now;
      // How far apart its heartbeats may come while the path is idle (absent from routers before idle heartbeats).
      n.peerIdleHeartbeatMs =
        bodyLength >= HEARTBEAT_FIELDS_BYTES ? Math.min(buf.readUInt32BE(off + HEADER_BYTES), MAX_IDLE_HEARTBEAT_MS) : 0;
      this.send.sendControl(n, MessageType.HeartbeatAck);
    } else if (type === MessageType.MtuProbe || type === MessageType.MtuProbeAck) {
      const body = off + HEADER_BYTES;
      if (bodyLength < PROBE_FIELDS_BYTES) {
        s.drop_short++;
      } else if (type === MessageType.MtuProbe) {
        this.send.sendProbeAck(n, buf.readUInt32BE(body), buf.readUInt16BE(body + 4));
      } else {
        s.mtu_probe_acks_in++;
        if (n.pathMtu.acked(buf.readUInt32BE(body), buf.readUInt16BE(body + 4))) {
          s.path_mtu_changes++;
          this.hasPathMtuChange = true;
        }
      }
    } else {
      s.heartbeat_acks_in++;
      n.lastAckMs = now;
      n.unackedSinceMs = -1;
      noteAck(n, now);
      if (takeLossReport(n, buf, off + HEADER_BYTES, bodyLength, now) > 0) s.loss_reports_in++;
    }
    return false;
  }

  private receiveFrames(view: SleeveView, from: Neighbour, buf: Buffer, bodyOff: number, bodyLength: number, now: number): void {
    const s = this.stats;
    // Validate every record first: a datagram is taken whole or not at all.
    if (countRecords(buf, bodyOff, bodyLength) < 0) {
      s.drop_bad_record++;
      from.dropsInRecord++;
      return;
    }
    const decision = this.decision;
    const send = this.send;
    const end = bodyOff + bodyLength;
    const relays = relaysOf(buf[bodyOff - HEADER_BYTES + 1]!);
    let p = bodyOff;
    while (p < end) {
      const record = p;
      const frameLength = buf.readUInt16BE(p + 12);
      const frame = p + RECORD_HEADER_BYTES;
      p = frame + frameLength;
      s.frames_in++;
      const verdict = decision.decideReceived(view, from, buf, record);
      if (verdict === DROP) continue;
      const capturing = decision.capturing;
      if (verdict === BROADCAST) {
        // Pass it on along the capturing peer's tree, and deliver.
        const hops = view.broadcastByNumber[capturing];
        if (hops) {
          for (let h = 0; h < hops.length; h++) {
            const n = hops[h]!;
            if (!decision.mayRelay(n, from, capturing)) continue;
            if (send.appendRelayed(n, buf, record, frameLength)) s.frames_forwarded++;
            else s.drop_too_big++;
          }
        }
        this.deliver(buf, frame, frameLength, capturing, now);
      } else if (verdict === DELIVER) {
        this.deliver(buf, frame, frameLength, capturing, now);
      } else if (relays >= MAX_RELAYS) {
        s.drop_hop_limit++;
      } else if (send.appendRelayed(decision.nextHop!, buf, record, frameLength, relays + 1)) {
        noteRelayed(from, decision.nextHop!, now);
        s.frames_forwarded++;
      } else {
        s.drop_too_big++;
      }
    }
  }

  private deliver(buf: Buffer, off: number, len: number, capturing: number, now: number): void {
    this.decision.learn(buf, off + 6, capturing, now);
    this.coalescer.deliver(buf, off, len);
  }
}
