/**
 * Path MTU discovery for one neighbour: which IP packet size its underlay path really carries, found by probing.
 *
 * The underlay socket sends with Don't Fragment and never fragments locally (IP_PMTUDISC_PROBE /
 * IPV6_PMTUDISC_PROBE, native/src/udp.c), so a datagram too big for some link on the way simply vanishes (a bridge
 * or a tunnel drops it without a word, and ICMP may be filtered anyway). Each round sends probe datagrams of several
 * sizes at once, each padded to exactly its size as an IP packet; the neighbour acks every probe it receives, naming
 * the size. The largest size acked is the path MTU.
 *
 *   full round      every candidate size at or below the ceiling (the MTU the control plane measured for the
 *                   underlay), largest first: one round trip finds the common MTUs exactly (1500, 1492, 1480, 1460,
 *                   1400, 1280, ...), and brackets any other between the largest acked and the smallest lost.
 *   refine rounds   while that bracket is wider than `granularityBytes`, up to 6 sizes evenly spread inside it: a
 *                   binary search six ways wide, so two refine rounds narrow any bracket to a few bytes.
 *   confirm rounds  once the MTU is known, every `reprobeMs`: just the MTU in use and the next size above it (a
 *                   path may have shrunk, or grown). The MTU acked and the larger not: nothing changes. The larger
 *                   acked (the path grew) or nothing acked (it may have shrunk): a full round at once.
 *   full again      every `raiseMs` (a path may have grown past the next size), and at once after `suspect()` (the
 *                   neighbour moved or its heartbeats stopped: packets vanished).
 * Confirming with two probes instead of the whole ladder keeps an idle mesh quiet (issue 19: a full round every 30 s
 * was ~14 probes and acks each way, most of an idle router's underlay bytes).
 *
 * A round ends at the first `poll` `roundTimeoutMs` after it began; sizes sent and not acked by then count as lost.
 * During a round an ack larger than the MTU in use raises it at once (more room is safe the moment it is proven);
 * lowering waits for the round's end, since acks of small probes arrive before a large probe could be called lost.
 * A round with no ack at all says nothing (the neighbour may predate probes, or everything was lost): the MTU in use
 * stays, and after `maxSilentRounds` such rounds probing waits `reprobeMs`.
 *
 * Pure logic: time is passed in; nothing here sends. The sleeve asks `poll(now)` on its heartbeat timer for the sizes
 * to send, and hands acks to `acked`.
 */

/** Common link MTUs (bytes of IP packet): jumbo, Ethernet, PPPoE, and what VPNs and tunnels leave of 1500. */
const CANDIDATE_MTUS = [9000, 1500, 1492, 1480, 1460, 1440, 1420, 1400, 1380, 1360, 1340, 1300, 1280, 1200, 1100, 1000, 800, 576];

/** Sizes sent in one refine round at most. */
const REFINE_WIDTH = 6;

export interface PathMtuOptions {
  /** A round's probes not acked this long after it began count as lost. @default 1000 */
  roundTimeoutMs?: number;
  /** Time between confirm rounds once the MTU is known. @default 30_000 */
  reprobeMs?: number;
  /** Time between full rounds once the MTU is known (confirm rounds in between). @default 600_000 */
  raiseMs?: number;
  /** Stop refining once the largest acked and the smallest lost size are this close. @default 8 */
  granularityBytes?: number;
  /** Rounds in a row without any ack before probing waits `reprobeMs`. @default 3 */
  maxSilentRounds?: number;
  /** Smallest size ever probed (below it the overlay carries no useful frame). @default 576 */
  floorBytes?: number;
}

/** The probes of one round: its number and the sizes to send (bytes of IP packet, largest first). */
export interface ProbeRound {
  /** Round number, carried in each probe and echoed in its ack. */
  readonly id: number;
  readonly sizes: readonly number[];
}

export class PathMtu {
  /** The path MTU in use: the ceiling until probing proves otherwise. */
  mtuBytes: number;
  /** True once a round confirmed `mtuBytes` by an ack. */
  isConfirmed = false;
  /** Full and refine rounds begun (for reports and tests). */
  rounds = 0;
  private ceiling: number;
  private readonly roundTimeoutMs: number;
  private readonly reprobeMs: number;
  private readonly granularityBytes: number;
  private readonly maxSilentRounds: number;
  private readonly floorBytes: number;
  private roundId = 0;
  private sizes: number[] = [];
  private readonly ackedSizes = new Set<number>();
  private roundEndsMs = -1;
  private isRefining = false;
  /** Bracket: the largest size known to pass, the smallest known to vanish (Infinity: none). */
  private low = 0;
  private high = Infinity;
  private nextRoundMs = 0;
  private silentRounds = 0;
  private readonly raiseMs: number;
  /** When the last full round began; the next comes `raiseMs` later, or at once when `isFullDue`. */
  private lastFullMs = -Infinity;
  private isFullDue = true;
  /** The round under way is a confirm round of this size (0: it is not). */
  private confirmingBytes = 0;

  constructor(ceilingBytes: number, options: PathMtuOptions = {}) {
    this.roundTimeoutMs = options.roundTimeoutMs ?? 1000;
    this.reprobeMs = options.reprobeMs ?? 30_000;
    this.raiseMs = options.raiseMs ?? 600_000;
    this.granularityBytes = options.granularityBytes ?? 8;
    this.maxSilentRounds = options.maxSilentRounds ?? 3;
    this.floorBytes = options.floorBytes ?? 576;
    this.ceiling = ceilingBytes;
    this.mtuBytes = ceilingBytes;
  }

  /** The ceiling changed (a new snapshot): start over from it. */
  setCeiling(ceilingBytes: number, now: number): void {
    if (ceilingBytes === this.ceiling) return;
    this.ceiling = ceilingBytes;
    this.mtuBytes = ceilingBytes;
    this.isConfirmed = false;
    this.endRoundSilently();
    this.isFullDue = true;
    this.nextRoundMs = now;
  }

  /** Packets may be vanishing (the neighbour moved, heartbeats stopped): run a full round at the next `poll`. */
  suspect(now: number): void {
    this.isFullDue = true;
    if (this.roundEndsMs < 0) this.nextRoundMs = now;
  }

  /**
   * Called on a timer (and when a neighbour is new): ends a round whose time is up (which may lower `mtuBytes`),
   * and returns the round to send now, or null when none is due. The returned round's sizes are to be sent at once.
   */
  poll(now: number): ProbeRound | null {
    if (this.roundEndsMs >= 0) {
      if (now < this.roundEndsMs) return null;
      this.endRound(now);
    }
    if (now < this.nextRoundMs) return null;
    let sizes: number[];
    this.confirmingBytes = 0;
    if (this.isRefining) {
      sizes = this.refineSizes();
    } else if (this.isConfirmed && !this.isFullDue && now - this.lastFullMs < this.raiseMs) {
      sizes = this.confirmSizes();
      this.confirmingBytes = this.mtuBytes;
    } else {
      sizes = this.fullSizes();
      this.isFullDue = false;
      this.lastFullMs = now;
    }
    if (sizes.length === 0) {
      this.isRefining = false;
      this.nextRoundMs = now + this.reprobeMs;
      return null;
    }
    this.roundId = (this.roundId + 1) >>> 0 || 1;
    this.sizes = sizes;
    this.ackedSizes.clear();
    this.roundEndsMs = now + this.roundTimeoutMs;
    this.rounds++;
    return { id: this.roundId, sizes };
  }

  /**
   * The neighbour acked the probe of `size` from round `id`. Returns true when `mtuBytes` changed (it only grows
   * here). Acks of another round, or of a size not probed in this one, are ignored (false).
   */
  acked(id: number, size: number): boolean {
    if (this.roundEndsMs < 0 || id !== this.roundId || !this.sizes.includes(size)) return false;
    this.ackedSizes.add(size);
    if (size > this.low) this.low = size;
    if (size > this.mtuBytes || (!this.isConfirmed && size === this.mtuBytes)) {
      const isChanged = size !== this.mtuBytes;
      this.mtuBytes = size;
      this.isConfirmed = true;
      return isChanged;
    }
    return false;
  }

  private fullSizes(): number[] {
    this.low = 0;
    this.high = Infinity;
    const out = [this.ceiling];
    for (const m of CANDIDATE_MTUS) if (m < this.ceiling && m >= this.floorBytes) out.push(m);
    return out;
  }

  /** The next size above the MTU in use (the ceiling or a common MTU below it), then the MTU in use. */
  private confirmSizes(): number[] {
    let up = this.ceiling;
    for (const m of CANDIDATE_MTUS) if (m > this.mtuBytes && m < up) up = m;
    return up > this.mtuBytes ? [up, this.mtuBytes] : [this.mtuBytes];
  }

  private refineSizes(): number[] {
    const span = this.high - this.low;
    if (!(span > this.granularityBytes)) return [];
    const count = Math.max(1, Math.min(REFINE_WIDTH, Math.floor(span / this.granularityBytes) - 1));
    const out: number[] = [];
    for (let k = count; k >= 1; k--) {
      const size = this.low + Math.round((span * k) / (count + 1));
      if (size > this.low && size < this.high && !out.includes(size)) out.push(size);
    }
    return out;
  }

  private endRound(now: number): void {
    this.roundEndsMs = -1;
    const confirming = this.confirmingBytes;
    if (confirming > 0) {
      this.confirmingBytes = 0;
      // The MTU in use still passes and nothing larger does: all is as it was. Otherwise (the path grew: `acked`
      // raised the MTU already; or nothing came back: it may have shrunk) a full round finds out at once.
      const isSame = this.ackedSizes.has(confirming) && this.mtuBytes === confirming;
      if (!isSame) this.isFullDue = true;
      this.nextRoundMs = isSame ? now + this.reprobeMs : now;
      return;
    }
    const wasRefining = this.isRefining;
    if (this.ackedSizes.size === 0 && !wasRefining) {
      // Nothing came back: no news about the path. Keep what is in use; try again soon, then rarely.
      this.silentRounds++;
      this.nextRoundMs = this.silentRounds >= this.maxSilentRounds ? now + this.reprobeMs : now;
      return;
    }
    this.silentRounds = 0;
    let lost = Infinity;
    for (const s of this.sizes) if (!this.ackedSizes.has(s) && s > this.low && s < lost) lost = s;
    if (lost < this.high) this.high = lost;
    // The largest size proven this round (or before, while refining) is the MTU: lower it if a larger one vanished.
    if (this.low > 0 && this.mtuBytes !== this.low) this.mtuBytes = this.low;
    if (this.low > 0) this.isConfirmed = true;
    this.isRefining = this.high !== Infinity && this.high - this.low > this.granularityBytes;
    this.nextRoundMs = this.isRefining ? now : now + this.reprobeMs;
  }

  private endRoundSilently(): void {
    this.roundEndsMs = -1;
    this.isRefining = false;
    this.low = 0;
    this.high = Infinity;
  }
}
