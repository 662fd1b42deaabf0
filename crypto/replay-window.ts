/**
 * A sliding replay filter over 64-bit-ish sequence numbers (any integer in [0, 2^53)), in the manner of WireGuard's
 * `replay.Filter` but larger: the default window tracks 2^20 numbers behind the highest seen, because UDP through
 * busy multi-path underlays reorders by more than WireGuard's 8k at multi-gigabit rates.
 *
 * The bitmap is a ring of 32-bit words. One word more than the window needs is kept, so moving forward only has to
 * zero whole words that fall out (no bit-by-bit shifting) and the word holding the oldest tracked number is never the
 * one being cleared. A jump further than the ring clears it entirely, once.
 *
 * Contract: `accept(seq)` returns `ReplayCheck.Fresh` for the first sighting of any `seq` that is above the highest
 * accepted so far, or at most `windowSize` below it; `Replay` for a second sighting; `Stale` for anything older (and
 * for values that are not integers in [0, 2^53)). `check` answers the same without recording, so the caller can
 * authenticate between the two and never let a forgery move the window.
 *
 * The ring starts small (`INITIAL_REPLAY_WINDOW`, WireGuard's 8k: a 1 KiB bitmap) and grows only when an authentic
 * datagram arrives further behind than it tracks, up to `windowSize`: an idle or slow neighbour costs 1 KiB per key
 * instead of 128 KiB (issue 19: memory per peer). Numbers that fell out of the smaller ring before it grew may have
 * been seen, so they stay refused (`floor`); the datagram that made it grow is refused as `Stale`, as it would have
 * been without the growth. Growing happens in `accept` only (after authentication), so a forgery never costs memory.
 *
 * Allocates nothing except when the ring grows (at most log2(windowSize / 8192) times per key); all operations are
 * O(1) except a forward jump, which is O(words cleared), and a growth, which is O(words copied).
 */
import { OpenResult } from './data-session.js';

/** Results of `check`/`accept`: fresh is 0, the refusals reuse the `OpenResult` codes the data plane counts. */
export const ReplayCheck = {
  Fresh: 0,
  Replay: OpenResult.Replay,
  Stale: OpenResult.Stale,
} as const;

/** Default window: 2^20 sequence numbers (a 128 KiB bitmap once grown to it). */
export const DEFAULT_REPLAY_WINDOW = 2 ** 20;
/** What the ring tracks at first: 2^13 numbers (a 1 KiB bitmap), grown on demand up to the window. */
export const INITIAL_REPLAY_WINDOW = 2 ** 13;

const WORD_BITS = 32;

/** One receive key's replay filter; see the contract at the top of this file. Not shared between keys. */
export class ReplayWindow {
  /** How far below the highest accepted number a number may be tracked, once the ring has grown to it. */
  readonly windowSize: number;
  /** How far below the highest accepted number a number is tracked now (<= windowSize). */
  private tracked: number;
  private ring: Uint32Array;
  private ringWords: number;
  /** Highest accepted sequence number, -1 before the first. */
  private last = -1;
  /** Numbers below this are refused: they fell out of the ring before it grew, and may have been seen. */
  private floor = 0;

  /**
   * @param windowSize a positive multiple of 32. @default DEFAULT_REPLAY_WINDOW (2^20)
   * @param initialWindow what the ring tracks until deeper reordering is seen (a multiple of 32, clamped to
   *   windowSize). @default INITIAL_REPLAY_WINDOW (2^13)
   */
  constructor(windowSize: number = DEFAULT_REPLAY_WINDOW, initialWindow: number = INITIAL_REPLAY_WINDOW) {
    if (!Number.isInteger(windowSize) || windowSize < WORD_BITS || windowSize % WORD_BITS !== 0) {
      throw new RangeError(`replay window ${windowSize} must be a positive multiple of ${WORD_BITS}`);
    }
    if (!Number.isInteger(initialWindow) || initialWindow < WORD_BITS || initialWindow % WORD_BITS !== 0) {
      throw new RangeError(`initial replay window ${initialWindow} must be a positive multiple of ${WORD_BITS}`);
    }
    this.windowSize = windowSize;
    this.tracked = Math.min(windowSize, initialWindow);
    this.ringWords = this.tracked / WORD_BITS + 1;
    this.ring = new Uint32Array(this.ringWords);
  }

  /** The highest accepted sequence number, or -1 if none yet. */
  get highest(): number {
    return this.last;
  }

  /** How far behind the highest the ring tracks now; grows up to `windowSize` with reordering. */
  get trackedWindow(): number {
    return this.tracked;
  }

  /** Bytes the bitmap holds now. */
  get bitmapBytes(): number {
    return this.ring.byteLength;
  }

  /**
   * Would `accept(seq)` take it? No state changes. A number further behind than the ring tracks now, but within
   * `windowSize`, reads `Fresh`: only an authentic one may grow the ring, and `accept` then refuses it as `Stale`.
   */
  check(seq: number): number {
    if (!(seq >= 0 && seq <= Number.MAX_SAFE_INTEGER) || seq !== Math.floor(seq)) return ReplayCheck.Stale;
    if (seq > this.last) return ReplayCheck.Fresh;
    if (this.last - seq > this.windowSize || seq < this.floor) return ReplayCheck.Stale;
    if (this.last - seq > this.tracked) return ReplayCheck.Fresh;
    // `seq & 31` is exact for integers below 2^53: ToInt32 keeps the value modulo 2^32.
    return (this.ring[Math.floor(seq / WORD_BITS) % this.ringWords]! & (1 << (seq & 31))) !== 0 ? ReplayCheck.Replay : ReplayCheck.Fresh;
  }

  /** Record `seq` if fresh. Returns the same codes as `check`; only `Fresh` changes state. */
  accept(seq: number): number {
    if (!(seq >= 0 && seq <= Number.MAX_SAFE_INTEGER) || seq !== Math.floor(seq)) return ReplayCheck.Stale;
    const block = Math.floor(seq / WORD_BITS);
    if (seq > this.last) {
      const current = this.last < 0 ? -1 : Math.floor(this.last / WORD_BITS);
      this.clearBlocks(current + 1, Math.min(block - current, this.ringWords));
      this.last = seq;
    } else if (this.last - seq > this.windowSize || seq < this.floor) {
      return ReplayCheck.Stale;
    } else if (this.last - seq > this.tracked) {
      this.grow(this.last - seq);
      return ReplayCheck.Stale;
    }
    const index = block % this.ringWords;
    const bit = 1 << (seq & 31);
    const word = this.ring[index]!;
    if ((word & bit) !== 0) return ReplayCheck.Replay;
    this.ring[index] = word | bit;
    return ReplayCheck.Fresh;
  }

  /** Forget everything (for a new key). The ring keeps its size: this neighbour's traffic needed it. */
  reset(): void {
    this.ring.fill(0);
    this.last = -1;
    this.floor = 0;
  }

  /**
   * Track at least `depth` numbers behind the highest (a power-of-two multiple of the current window, at most
   * `windowSize`). Bits of the numbers tracked now are kept; older ones stay refused (`floor`).
   */
  private grow(depth: number): void {
    let next = this.tracked;
    while (next < depth && next < this.windowSize) next *= 2;
    next = Math.min(next, this.windowSize);
    const words = next / WORD_BITS + 1;
    const ring = new Uint32Array(words);
    const lastBlock = Math.floor(this.last / WORD_BITS);
    const firstBlock = Math.max(0, lastBlock - this.ringWords + 1);
    for (let b = firstBlock; b <= lastBlock; b++) ring[b % words] = this.ring[b % this.ringWords]!;
    this.floor = Math.max(this.floor, this.last - this.tracked);
    this.ring = ring;
    this.ringWords = words;
    this.tracked = next;
  }

  /** Zero `count` ring words starting at block number `firstBlock` (wrapping). */
  private clearBlocks(firstBlock: number, count: number): void {
    if (count <= 0) return;
    const start = firstBlock % this.ringWords;
    const end = start + count;
    if (end <= this.ringWords) {
      this.ring.fill(0, start, end);
    } else {
      this.ring.fill(0, start, this.ringWords);
      this.ring.fill(0, 0, end - this.ringWords);
    }
  }
}
