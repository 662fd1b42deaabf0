/**
 * The MAC table: which peer captured the frames from each MAC address (a 48-bit number), and when it was last seen.
 *
 * An open-addressed hash table (linear probing) over typed arrays of fixed capacity: a lookup, and the learning of
 * a MAC already known (the common case: every frame refreshes its source), allocate nothing and touch no objects.
 * Time is passed in (`now`, in the caller's `Clock.now()` milliseconds); the table holds no clock.
 *
 * An entry is live while `now - lastSeenMs <= expiryMs`. Expired entries are invisible to `lookup`, are reused by
 * `learn`, and are removed by `expire(now)` (the sleeve calls it from its heartbeat timer).
 *
 * When every slot of `capacity` holds a live entry, a new MAC is not learned (`LearnResult.Full`); frames to it
 * are then flooded as unknown, which is correct, only wasteful. This bounds memory against a flood of forged
 * source MACs.
 */
import type { PeerId } from './datapath.js';

/** What `learn` did. */
export const LearnResult = {
  /** The MAC was known at this peer; its time was refreshed. */
  Refreshed: 0,
  /** The MAC was new (or had expired). */
  Added: 1,
  /** The MAC was live at another peer and now belongs to this one (a container moved, or a loop). */
  Moved: 2,
  /** The table is full of live entries; the MAC was not learned. */
  Full: -1,
} as const;

export interface MacTableOptions {
  /** Most MACs held at once. @default 8192 */
  capacity?: number;
  /** An entry not refreshed for this long is gone. @default 300_000 (5 minutes, as Weave and Linux bridges) */
  expiryMs?: number;
}

/** One entry, for reports and tests (allocates; not for the data path). */
export interface MacEntry {
  mac: number;
  peer: PeerId;
  lastSeenMs: number;
}

const EMPTY = -1;
const TWO_POW_32 = 0x1_0000_0000;

export class MacTable {
  readonly capacity: number;
  readonly expiryMs: number;
  /** Slots: twice the capacity (a power of two), so probe chains stay short at full load. */
  private readonly mask: number;
  private readonly keys: Float64Array;
  private readonly peers: Float64Array;
  private readonly lastSeen: Float64Array;
  /** Occupied slots, live or expired. */
  private used = 0;

  constructor(options: MacTableOptions = {}) {
    this.capacity = options.capacity ?? 8192;
    this.expiryMs = options.expiryMs ?? 300_000;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError(`MAC table capacity must be an integer >= 1, got ${this.capacity}`);
    }
    let slots = 2;
    while (slots < 2 * this.capacity) slots *= 2;
    this.mask = slots - 1;
    this.keys = new Float64Array(slots).fill(EMPTY);
    this.peers = new Float64Array(slots);
    this.lastSeen = new Float64Array(slots);
  }

  /** Occupied entries, including expired ones not yet removed by `expire`. */
  get size(): number {
    return this.used;
  }

  /** The peer that captured frames from `mac`, or -1 when unknown or expired. */
  lookup(mac: number, now: number): PeerId {
    const keys = this.keys;
    const mask = this.mask;
    for (let i = this.home(mac); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === EMPTY) return -1;
      if (k === mac) return now - this.lastSeen[i]! <= this.expiryMs ? this.peers[i]! : -1;
    }
  }

  /** Record that `peer` captured a frame from `mac` at `now`. Allocates nothing. */
  learn(mac: number, peer: PeerId, now: number): number {
    const keys = this.keys;
    const mask = this.mask;
    let reusable = -1;
    let i = this.home(mac);
    for (; ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === EMPTY) break;
      const isLive = now - this.lastSeen[i]! <= this.expiryMs;
      if (k === mac) {
        const wasPeer = this.peers[i]!;
        this.peers[i] = peer;
        this.lastSeen[i] = now;
        if (!isLive) return LearnResult.Added;
        return wasPeer === peer ? LearnResult.Refreshed : LearnResult.Moved;
      }
      if (!isLive && reusable < 0) reusable = i;
    }
    // Not present: take an expired slot on the way (chains stay intact: the slot stays occupied), else the empty one.
    if (reusable >= 0) {
      i = reusable;
    } else {
      if (this.used >= this.capacity) {
        if (this.expire(now) === 0) return LearnResult.Full;
        return this.learn(mac, peer, now);
      }
      this.used++;
    }
    keys[i] = mac;
    this.peers[i] = peer;
    this.lastSeen[i] = now;
    return LearnResult.Added;
  }

  /** Remove entries expired at `now`. Returns how many. O(slots); call from a timer, not per packet. */
  expire(now: number): number {
    let removed = 0;
    for (let i = 0; i <= this.mask; ) {
      if (this.keys[i] !== EMPTY && now - this.lastSeen[i]! > this.expiryMs) {
        this.removeAt(i);
        removed++;
        continue; // removeAt may have shifted a later entry into slot i
      }
      i++;
    }
    return removed;
  }

  /** Remove every entry of `peer` (it left the network). Returns how many. O(slots). */
  forgetPeer(peer: PeerId): number {
    let removed = 0;
    for (let i = 0; i <= this.mask; ) {
      if (this.keys[i] !== EMPTY && this.peers[i] === peer) {
        this.removeAt(i);
        removed++;
        continue;
      }
      i++;
    }
    return removed;
  }

  /** Live entries at `now` (allocates; for reports and tests). */
  entries(now: number): MacEntry[] {
    const out: MacEntry[] = [];
    for (let i = 0; i <= this.mask; i++) {
      if (this.keys[i] !== EMPTY && now - this.lastSeen[i]! <= this.expiryMs) {
        out.push({ mac: this.keys[i]!, peer: this.peers[i]!, lastSeenMs: this.lastSeen[i]! });
      }
    }
    return out;
  }

  private home(mac: number): number {
    // Mix both words: MACs of one vendor share their high bytes, containers' often differ only in the last ones.
    const low = mac >>> 0;
    const high = (mac / TWO_POW_32) | 0;
    return (Math.imul(low ^ Math.imul(high, 0x85ebca6b), 0x9e3779b1) >>> 0) & this.mask;
  }

  /** Backward-shift deletion: keeps every probe chain unbroken without tombstones. */
  private removeAt(slot: number): void {
    const mask = this.mask;
    let hole = slot;
    for (let j = (hole + 1) & mask; this.keys[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.home(this.keys[j]!);
      // Move j into the hole unless its home lies cyclically in (hole, j]: then it must stay after the hole.
      const isBetween = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (isBetween) continue;
      this.keys[hole] = this.keys[j]!;
      this.peers[hole] = this.peers[j]!;
      this.lastSeen[hole] = this.lastSeen[j]!;
      hole = j;
    }
    this.keys[hole] = EMPTY;
    this.used--;
  }
}
