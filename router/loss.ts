/**
 * Datagram loss between neighbours, and what it decides: how a TCP super-frame is cut for a neighbour.
 *
 * A super-frame (up to 64 KiB, ./offload.ts) can travel two ways (./pieces.ts): as pieces, joined whole at the far
 * end (cheapest: one copy each way, the receiving kernel takes 64 KiB at once), or cut into the TCP segments a NIC
 * would send, one per datagram, and coalesced again at the far end (./tcp-segments.ts, ./tcp-coalesce.ts: a
 * checksum pass per segment each way). Without loss pieces are about 20-28 % faster on a 2-core host; with loss
 * they are ruinous (one lost datagram loses a whole frame of ~46: 2 % datagram loss is ~60 % frame loss, and TCP
 * falls into timeouts), while a lost segment costs TCP one segment. So a router cuts pieces for a neighbour until
 * that neighbour says it is losing our datagrams, then segments for `SEGMENT_HOLD_MS` after its last such report.
 *
 * How loss is seen: every datagram carries its sender's per-neighbour, per-key sequence number (./sleeve-format.ts).
 * The receiver notes gaps in the sequence of authentic datagrams from each neighbour (`noteSeq`, per key phase), less
 * the late ones that fill a gap (reordering is not loss), and tells the neighbour in the body of each heartbeat-ack
 * how many went missing since its previous ack (`writeLossReport`, a u32: older routers ignore ack bodies, and
 * acks from older routers carry none, read as no loss). The receive socket overflowing counts as loss too, rightly:
 * the datagrams are gone either way.
 *
 * A relay passes pieces on whole, so loss beyond it must reach the capturing router: a router that relays pieces or
 * records from neighbour A to a neighbour that reports loss sets a flag in its next ack to A (`noteRelayed`), and A
 * cuts segments for it as if it had lost datagrams itself.
 *
 * A forged report cannot come from outside (acks are authentic datagrams of the neighbour); a member that reports
 * loss it does not see only makes us cut segments for it, which costs CPU, nothing else.
 */
import type { Neighbour } from './sleeve-neighbour.js';

/** Cut segments for a neighbour this long after it last reported loss. */
export const SEGMENT_HOLD_MS = 30_000;
/** A seq further than this from the one expected starts afresh (a restarted peer, a new key), counting no loss. */
export const MAX_SEQ_GAP = 65_536;
/** Bytes of the loss report in a heartbeat-ack body: u32 datagrams missed, u8 flags. */
export const LOSS_REPORT_BYTES = 5;
/** Loss report flag: what we relay for you goes on to a neighbour that reports loss (cut segments for us too). */
export const REPORT_RELAY_LOSS = 0x01;

/** How super-frames are cut: 'auto' decides per neighbour from its loss reports (the module comment). */
export type SegmentMode = 'auto' | 'always' | 'never';

/**
 * An authentic datagram with sequence number `seq` under key phase `phase` (0 or 1) came from `n`: note a gap before
 * it, or a late one filling a gap; `seq` -1 (not known) starts the count afresh. Returns how many datagrams it showed missing (0 mostly). Allocates nothing.
 */
export function noteSeq(n: Neighbour, phase: number, seq: number): number {
  const expected = n.seqInNext;
  if (seq < 0) {
    expected[phase] = -1; // not known (two sessions interleave): count afresh from the next one
    return 0;
  }
  const next = expected[phase]!;
  if (seq === next) {
    expected[phase] = seq + 1;
    return 0;
  }
  if (next < 0 || seq > next + MAX_SEQ_GAP || seq + MAX_SEQ_GAP < next) {
    expected[phase] = seq + 1; // the first, or a new sequence: no gap to speak of
    return 0;
  }
  if (seq > next) {
    const gap = seq - next;
    expected[phase] = seq + 1;
    n.lostInSinceAck += gap;
    n.lostIn += gap;
    return gap;
  }
  // Late: it fills a gap counted before (a duplicate never gets here sealed: the replay window drops it).
  if (n.lostInSinceAck > 0) n.lostInSinceAck--;
  if (n.lostIn > 0) n.lostIn--;
  return 0;
}

/** Write `n`'s loss report at `buf[at]` (LOSS_REPORT_BYTES) and start the next count; returns its byte count. */
export function writeLossReport(n: Neighbour, buf: Buffer, at: number): number {
  const lost = n.lostInSinceAck;
  buf.writeUInt32BE(lost > 0xffffffff ? 0xffffffff : lost, at);
  buf[at + 4] = n.isRelayingIntoLoss ? REPORT_RELAY_LOSS : 0;
  n.lostInSinceAck = 0;
  n.isRelayingIntoLoss = false;
  return LOSS_REPORT_BYTES;
}

/**
 * We relayed something from `from` to `to`: if `to` reports loss, `from` must cut segments too (a relay passes
 * pieces on as they are, so only their capturing router can send segments instead). Told in our next ack to `from`.
 */
export function noteRelayed(from: Neighbour, to: Neighbour, now: number): void {
  if (now < to.segmentUntilMs) from.isRelayingIntoLoss = true;
}

/**
 * A heartbeat-ack from `n` with a body of `bodyLength` bytes at `buf[body]` arrived at `now`: take its loss report.
 * Returns the datagrams it says it missed (at least 1 when it says only that loss is beyond it; 0 for no loss or an ack
 * without a report).
 */
export function takeLossReport(n: Neighbour, buf: Buffer, body: number, bodyLength: number, now: number): number {
  if (bodyLength < 4) return 0;
  const lost = buf.readUInt32BE(body);
  const isRelayLoss = bodyLength >= LOSS_REPORT_BYTES && (buf[body + 4]! & REPORT_RELAY_LOSS) !== 0;
  if (lost === 0 && !isRelayLoss) return 0;
  n.lostOut += lost;
  n.segmentUntilMs = now + SEGMENT_HOLD_MS;
  return lost > 0 ? lost : 1;
}

/** Whether super-frames for `n` are cut into TCP segments now (rather than pieces). */
export function isSegmentingFor(mode: SegmentMode, n: Neighbour, now: number): boolean {
  return mode === 'always' || (mode === 'auto' && now < n.segmentUntilMs);
}
