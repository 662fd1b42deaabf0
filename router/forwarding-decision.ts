/**
 * The forwarding decision: where an Ethernet frame goes, for any datapath that carries frames between peers (the
 * sleeve today; a kernel fast path would ask the same questions). It decides, it never carries: callers pack, seal
 * and send what it chose.
 *
 * Pipeline (called per frame from a carrier's synchronous batch loop; allocates, awaits and logs nothing):
 *   captured from our bridge: learn the source MAC as ours -> destination MAC lookup:
 *       group or unknown: flood along our own broadcast tree | ours (the bridge delivered it): drop |
 *       another peer's: its unicast next hop | a peer with no route: drop |
 *       a peer the kernel carries our frames to (fastdp; the bridge flooded this one to both carriers): drop
 *   received from neighbour F, record header [capturing peer | destination peer]:
 *       capturing peer unknown: drop | it is us (a loop): drop |
 *       destination 0 (broadcast): deliver, and relay along the capturing peer's tree except back to F or to the
 *         capturing peer |
 *       destination us: deliver | another peer: relay to its unicast next hop, never back to F nor to the
 *         capturing peer (longer cycles while routes converge are cut by the carrier's relay count: the sleeve's
 *         RELAYS flag, at most MAX_RELAYS relays)
 *   delivering to our bridge: learn the source MAC as the capturing peer's.
 *
 * Peers are the small numbers of ./peer-numbers.ts; next hops are whatever the carrier keeps per neighbour (`H`),
 * looked up in a `ForwardingView` the carrier builds from each snapshot and swaps whole. Drops are counted here
 * under their reason; the decision's outputs beyond the return value (`nextHop`, `capturing`) are fields, so a
 * decision allocates nothing.
 */
import { LearnResult, type MacTable } from './mac-table.js';
import type { PeerNumbers } from './peer-numbers.js';

/** The forwarding part of a snapshot, by peer number. Built by the carrier, never mutated. */
export interface ForwardingView<H> {
  readonly localNumber: number;
  /** Unicast next hop by destination peer number (null: no route). */
  readonly unicastByNumber: ReadonlyArray<H | null>;
  /**
   * The same for frames we capture: null also for peers the kernel carries our frames to (fastdp), whose frames we
   * relay for others all the same. The same array as `unicastByNumber` when there are none.
   */
  readonly capturedUnicastByNumber: ReadonlyArray<H | null>;
  /** Broadcast next hops by capturing peer number; null for a peer the snapshot does not know. */
  readonly broadcastByNumber: ReadonlyArray<readonly H[] | null>;
  /** Next hops of frames we capture and flood. */
  readonly localBroadcast: readonly H[];
}

/** The counters a decision increments (a subset of the carrier's). */
export interface DecisionCounters {
  mac_moves: number;
  mac_table_full: number;
  drop_local_dest: number;
  drop_no_route: number;
  drop_fastdp: number;
  drop_loop: number;
  drop_unknown_peer: number;
}

/** `decideCaptured`: flood along `localBroadcast`. */
export const FLOOD = -1;
/** `decideCaptured`/`decideReceived`: dropped and counted. */
export const DROP = -2;
/** `decideReceived`: for us; deliver to the bridge. */
export const DELIVER = 0;
/** `decideReceived`: a broadcast; deliver, and relay to each `broadcastByNumber[capturing]` hop that `mayRelay`. */
export const BROADCAST = 1;
/** `decideReceived`: for another peer; relay to `nextHop`. */
export const RELAY = 2;

export class ForwardingDecision<H extends { readonly number: number }> {
  /** The next hop chosen by the last decision that returned a peer number or `RELAY`. */
  nextHop: H | null = null;
  /** The capturing peer of the last record `decideReceived` looked at (a number, or -1). */
  capturing = -1;

  constructor(
    /** MAC -> peer number. */
    readonly macs: MacTable,
    private readonly peers: PeerNumbers,
    private readonly counters: DecisionCounters,
  ) {}

  /** Learn that the unicast source MAC at `buf[macOffset]` sits behind peer number `peer` (group MACs are not). */
  learn(buf: Buffer, macOffset: number, peer: number, now: number): void {
    if ((buf[macOffset]! & 1) !== 0) return;
    const r = this.macs.learnAt(buf, macOffset, peer, now);
    if (r === LearnResult.Moved) this.counters.mac_moves++;
    else if (r === LearnResult.Full) this.counters.mac_table_full++;
  }

  /**
   * A frame captured from our bridge, its Ethernet header at `buf[off]`: learn its source as ours, then return the
   * destination's peer number (>= 0, with `nextHop` set), `FLOOD`, or `DROP` (counted).
   */
  decideCaptured(view: ForwardingView<H>, buf: Buffer, off: number, now: number): number {
    const local = view.localNumber;
    this.learn(buf, off + 6, local, now);
    if ((buf[off]! & 1) !== 0) return FLOOD;
    const peer = this.macs.lookupAt(buf, off, now);
    if (peer < 0) return FLOOD;
    if (peer === local) {
      this.counters.drop_local_dest++;
      return DROP;
    }
    const n = view.capturedUnicastByNumber[peer];
    if (!n) {
      if (view.unicastByNumber[peer]) this.counters.drop_fastdp++;
      else this.counters.drop_no_route++;
      return DROP;
    }
    this.nextHop = n;
    return peer;
  }

  /**
   * A record or piece from neighbour `from`, its [capturing peer | destination peer] header at `buf[p]`: `DELIVER`,
   * `BROADCAST`, `RELAY` (with `nextHop` set) or `DROP` (counted). Sets `capturing` unless the capturing peer is
   * unknown. Learning is left to delivery (`learn`), which has the frame.
   */
  decideReceived(view: ForwardingView<H>, from: H, buf: Buffer, p: number): number {
    const capturing = this.peers.lookupAt(buf, p);
    this.capturing = capturing;
    if (capturing < 0) {
      this.counters.drop_unknown_peer++;
      return DROP;
    }
    const local = view.localNumber;
    if (capturing === local) {
      this.counters.drop_loop++;
      return DROP;
    }
    if (buf.readUInt16BE(p + 6) === 0 && buf.readUInt32BE(p + 8) === 0) return BROADCAST;
    const dest = this.peers.lookupAt(buf, p + 6);
    if (dest === local) return DELIVER;
    const n = dest < 0 ? null : view.unicastByNumber[dest];
    if (!n) {
      this.counters.drop_no_route++;
      return DROP;
    }
    // Never back the way it came: not to the neighbour it came from, nor to the peer that captured it (whose
    // routes sent it here; handing it back would start a loop that only route convergence ends).
    if (n === from || n.number === capturing) {
      this.counters.drop_loop++;
      return DROP;
    }
    this.nextHop = n;
    return RELAY;
  }

  /** Whether a broadcast from `capturing`, received from `from`, is relayed to tree hop `h`: never back. */
  mayRelay(h: H, from: H, capturing: number): boolean {
    return h !== from && h.number !== capturing;
  }
}
