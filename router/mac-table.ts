/**
 * The MAC table: which peer captured the frames from each MAC address (a 48-bit number), and when it was last seen.
 *
 * An open-addressed hash table (linear probing) over typed arrays of fixed capacity: a lookup, and the learning of
 * a MAC already known (the common case: every frame refreshes its source), allocate nothing and touch no objects.
 * The data path calls `lookupAt`/`learnAt`, which read the MAC from the frame as two 32-bit words: a 48-bit number
 * computed in one function and passed to another is boxed (a heap allocation) unless the call is inlined, so no
 * MAC ever crosses a call as a number. `lookup`/`learn` take numbers, for tests and the control plane.
 * Time is passed in (`now`, in the caller's `Clock.now()` milliseconds); the table holds no clock.
 *
 * Values ("peers") are integers in [0, 2^31): the sleeve stores small peer numbers of its own, not 48-bit names,
 * for the same reason. Peer names are 48-bit too, so the sleeve also uses this table (without expiry) to map a
 * name read from a header to its number.
 *
 * An entry is live while `now - lastSeenMs <= expiryMs`. Expired entries are invisible to `lookup`, are reused by
 * `learn`, and are removed by `expire(now)` (the sleeve calls it from its heartbeat timer).
 *
 * When every slot of `capacity` holds a live entry, a new MAC is not learned (`LearnResult.Full`); frames to it
 * are then flooded as unknown, which is correct, only wasteful. This bounds memory against a flood of forged
 * source MACs.
 *
 * Every operation on the data path is O(1), also when the table is full: entries sit on an intrusive list in the
 * order they were last seen (`prev`/`next` by slot, most recent at `head`), so the entry to give up for a new MAC
 * is the `tail`, taken if it has expired; if the tail is live, every entry is (times only grow), and the answer is
 * `Full` without a scan. Before, a full table scanned every slot for expired entries on each new MAC: a container
 * sending random source MACs cost every router 16,384 slot visits per frame and stalled its loop. `expire` walks
 * from the tail and stops at the first live entry.
 */
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
  peer: number;
  lastSeenMs: number;
}

const EMPTY = -1;
const NONE = -1;
const TWO_POW_32 = 0x1_0000_0000;

export class MacTable {
  readonly capacity: number;
  readonly expiryMs: number;
  /** Slots: twice the capacity (a power of two), so probe chains stay short at full load. */
  private readonly mask: number;
  /** Upper 16 bits of the MAC, or EMPTY. */
  private readonly keysHigh: Int32Array;
  /** Lower 32 bits of the MAC, as a signed int32 (`| 0`). */
  private readonly keysLow: Int32Array;
  private readonly peers: Int32Array;
  private readonly lastSeen: Float64Array;
  /** Occupied slots, live or expired. */
  private used = 0;
  /** The recency list: previous (more recent) and next (older) slot, NONE at the ends. */
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  /** Most recently seen slot, and least; NONE when empty. */
  private head = NONE;
  private tail = NONE;
  /** Slots visited by whole-table walks (`forgetPeer`); the data path and `expire` make none. For tests. */
  scannedSlots = 0;
  /** Where `lookup`/`learn` put a number's bytes for the `...At` methods. */
  private readonly scratch = Buffer.alloc(6);

  constructor(options: MacTableOptions = {}) {
    this.capacity = options.capacity ?? 8192;
    this.expiryMs = options.expiryMs ?? 300_000;
    if (!Number.isInteger(this.capacity) || this.capacity < 1) {
      throw new RangeError(`MAC table capacity must be an integer >= 1, got ${this.capacity}`);
    }
    let slots = 2;
    while (slots < 2 * this.capacity) slots *= 2;
    this.mask = slots - 1;
    this.keysHigh = new Int32Array(slots).fill(EMPTY);
    this.keysLow = new Int32Array(slots);
    this.peers = new Int32Array(slots);
    this.lastSeen = new Float64Array(slots);
    this.prev = new Int32Array(slots).fill(NONE);
    this.next = new Int32Array(slots).fill(NONE);
  }

  /** Occupied entries, including expired ones not yet removed by `expire`. */
  get size(): number {
    return this.used;
  }

  /** The peer for the MAC at `buffer[offset, offset+6)`, or -1 when unknown or expired. Allocates nothing. */
  lookupAt(buffer: Buffer, offset: number, now: number): number {
    const high = (buffer[offset]! << 8) | buffer[offset + 1]!;
    const low = buffer.readInt32BE(offset + 2);
    const mask = this.mask;
    for (let i = slotOf(high, low, mask); ; i = (i + 1) & mask) {
      const k = this.keysHigh[i]!;
      if (k === EMPTY) return -1;
      if (k === high && this.keysLow[i] === low) return now - this.lastSeen[i]! <= this.expiryMs ? this.peers[i]! : -1;
    }
  }

  /**
   * Record that `peer` (an integer in [0, 2^31)) sent from the MAC at `buffer[offset, offset+6)` at `now`.
   * Returns a `LearnResult`. Allocates nothing.
   */
  learnAt(buffer: Buffer, offset: number, peer: number, now: number): number {
    const high = (buffer[offset]! << 8) | buffer[offset + 1]!;
    const low = buffer.readInt32BE(offset + 2);
    const mask = this.mask;
    let reusable = -1;
    let i = slotOf(high, low, mask);
    for (; ; i = (i + 1) & mask) {
      const k = this.keysHigh[i]!;
      if (k === EMPTY) break;
      const isLive = now - this.lastSeen[i]! <= this.expiryMs;
      if (k === high && this.keysLow[i] === low) {
        const wasPeer = this.peers[i]!;
        this.peers[i] = peer;
        this.lastSeen[i] = now;
        this.touch(i);
        if (!isLive) return LearnResult.Added;
        return wasPeer === peer ? LearnResult.Refreshed : LearnResult.Moved;
      }
      if (!isLive && reusable < 0) reusable = i;
    }
    // Not present: take an expired slot on the way (chains stay intact: the slot stays occupied), else the empty one.
    if (reusable >= 0) {
      i = reusable;
      this.unlink(i);
    } else {
      if (this.used >= this.capacity) {
        // The least recently seen entry: if even it is live, all are (O(1), no scan).
        const oldest = this.tail;
        if (oldest === NONE || now - this.lastSeen[oldest]! <= this.expiryMs) return LearnResult.Full;
        this.removeAt(oldest);
        return this.learnAt(buffer, offset, peer, now);
      }
      this.used++;
    }
    this.keysHigh[i] = high;
    this.keysLow[i] = low;
    this.peers[i] = peer;
    this.lastSeen[i] = now;
    this.linkHead(i);
    return LearnResult.Added;
  }

  /** `lookupAt` for a MAC given as a number in [0, 2^48). */
  lookup(mac: number, now: number): number {
    this.scratch.writeUIntBE(mac, 0, 6);
    return this.lookupAt(this.scratch, 0, now);
  }

  /** `learnAt` for a MAC given as a number in [0, 2^48). */
  learn(mac: number, peer: number, now: number): number {
    this.scratch.writeUIntBE(mac, 0, 6);
    return this.learnAt(this.scratch, 0, peer, now);
  }

  /** Remove the entry for `mac` (a number in [0, 2^48)), live or expired. True if there was one. */
  remove(mac: number): boolean {
    this.scratch.writeUIntBE(mac, 0, 6);
    const high = (this.scratch[0]! << 8) | this.scratch[1]!;
    const low = this.scratch.readInt32BE(2);
    const mask = this.mask;
    for (let i = slotOf(high, low, mask); ; i = (i + 1) & mask) {
      const k = this.keysHigh[i]!;
      if (k === EMPTY) return false;
      if (k === high && this.keysLow[i] === low) {
        this.removeAt(i);
        return true;
      }
    }
  }

  /** Remove entries expired at `now`. Returns how many. O(removed): walks from the least recently seen. */
  expire(now: number): number {
    let removed = 0;
    for (let i = this.tail; i !== NONE && now - this.lastSeen[i]! > this.expiryMs; i = this.tail) {
      this.removeAt(i);
      removed++;
    }
    return removed;
  }

  /** Remove every entry of `peer` (it left the network). Returns how many. O(slots). */
  forgetPeer(peer: number): number {
    let removed = 0;
    this.scannedSlots += this.mask + 1;
    for (let i = 0; i <= this.mask;) {
      if (this.keysHigh[i] !== EMPTY && this.peers[i] === peer) {
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
      if (this.keysHigh[i] !== EMPTY && now - this.lastSeen[i]! <= this.expiryMs) {
        out.push({ mac: this.keysHigh[i]! * TWO_POW_32 + (this.keysLow[i]! >>> 0), peer: this.peers[i]!, lastSeenMs: this.lastSeen[i]! });
      }
    }
    return out;
  }

  /**
   * Throws when the recency list does not hold every occupied slot exactly once, most recent first, with `prev`
   * and `next` agreeing. O(slots); for tests.
   */
  checkInvariants(): void {
    let count = 0;
    let last = NONE;
    for (let i = this.head; i !== NONE; i = this.next[i]!) {
      if (this.keysHigh[i] === EMPTY) throw new Error(`MacTable: empty slot ${i} on the recency list`);
      if (this.prev[i] !== last) throw new Error(`MacTable: slot ${i}'s prev is ${this.prev[i]}, not ${last}`);
      if (last !== NONE && this.lastSeen[i]! > this.lastSeen[last]!)
        throw new Error(`MacTable: slot ${i} seen after slot ${last} but listed later`);
      if (++count > this.used) throw new Error('MacTable: recency list longer than the occupied slots (a cycle?)');
      last = i;
    }
    if (this.tail !== last) throw new Error(`MacTable: tail is ${this.tail}, the list ends at ${last}`);
    if (count !== this.used) throw new Error(`MacTable: ${count} slots on the recency list, ${this.used} occupied`);
  }

  /** Backward-shift deletion: keeps every probe chain unbroken without tombstones. */
  private removeAt(slot: number): void {
    const mask = this.mask;
    this.unlink(slot);
    let hole = slot;
    for (let j = (hole + 1) & mask; this.keysHigh[j] !== EMPTY; j = (j + 1) & mask) {
      const home = slotOf(this.keysHigh[j]!, this.keysLow[j]!, mask);
      // Move j into the hole unless its home lies cyclically in (hole, j]: then it must stay after the hole.
      const isBetween = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (isBetween) continue;
      this.keysHigh[hole] = this.keysHigh[j]!;
      this.keysLow[hole] = this.keysLow[j]!;
      this.peers[hole] = this.peers[j]!;
      this.lastSeen[hole] = this.lastSeen[j]!;
      this.relink(j, hole);
      hole = j;
    }
    this.keysHigh[hole] = EMPTY;
    this.prev[hole] = this.next[hole] = NONE;
    this.used--;
  }

  /** Make slot `i` (on the list) the most recently seen. */
  private touch(i: number): void {
    if (this.head === i) return;
    this.unlink(i);
    this.linkHead(i);
  }

  private linkHead(i: number): void {
    const h = this.head;
    this.prev[i] = NONE;
    this.next[i] = h;
    if (h !== NONE) this.prev[h] = i;
    else this.tail = i;
    this.head = i;
  }

  private unlink(i: number): void {
    const p = this.prev[i]!;
    const n = this.next[i]!;
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
    this.prev[i] = this.next[i] = NONE;
  }

  /** The entry in slot `from` moved to the free slot `to`: take its place in the list. */
  private relink(from: number, to: number): void {
    const p = this.prev[from]!;
    const n = this.next[from]!;
    this.prev[to] = p;
    this.next[to] = n;
    if (p !== NONE) this.next[p] = to;
    else this.head = to;
    if (n !== NONE) this.prev[n] = to;
    else this.tail = to;
    this.prev[from] = this.next[from] = NONE;
  }
}

/**
 * Home slot of a key. Mixes both words: MACs of one vendor share their high bytes, containers' often differ only in
 * the last ones. The result is below `mask` (< 2^30), so it is a small integer even when this is not inlined.
 */
function slotOf(high: number, low: number, mask: number): number {
  return Math.imul(low ^ Math.imul(high, 0x85ebca6b), 0x9e3779b1) & mask;
}
