/**
 * Our own stalls, seen as timer lateness: a timer that fires long after it was due means this process's event loop
 * was busy (garbage collection, a burst of work, a machine short of CPU), and everything that arrived meanwhile is
 * still unread in the sockets. Node runs due timers before it polls for I/O, so a failure detector whose timer fires
 * after a stall would blame peers for answers it has not read yet, and under load the mesh would close healthy
 * connections, reconnect at more cost, and stall more (issue 19).
 *
 * Detectors note each timer's lateness (`fired`), and before declaring a peer dead they
 * - extend the deadline by the stall time since they last heard from it (`stalledSince`): silence of ours is not
 *   silence of the peer's;
 * - and wait out a short grace after a stall (`isInGrace`), so the answers queued meanwhile are read first.
 *
 * One watch may be shared by many timers (a stall of the loop is every timer's): overlapping lateness is counted
 * once. Pure logic: the time is passed in, so tests drive it with a `FakeClock`.
 */

export interface StallWatchOptions {
  /** Lateness up to this is ordinary timer jitter, not a stall. @default 100 */
  thresholdMs?: number;
  /** After a stall, nothing is declared dead for this long. @default 1000 */
  graceMs?: number;
}

/** Stalls remembered for `stalledSince`; older ones no longer extend a deadline (conservative: less extension). */
const HISTORY = 32;

export class StallWatch {
  /** Stalls seen (timers later than the threshold, overlapping lateness counted once). */
  stalls = 0;
  /** The longest single lateness seen, in ms. */
  longestMs = 0;
  /** Total stalled time, in ms. */
  totalMs = 0;
  private readonly thresholdMs: number;
  private readonly graceMs: number;
  private graceUntilMs = -Infinity;
  /** End of the stalled time counted so far: a later timer's lateness before it is the same stall. */
  private coveredUntilMs = -Infinity;
  private readonly starts = new Float64Array(HISTORY);
  private readonly ends = new Float64Array(HISTORY);
  private next = 0;

  constructor(options: StallWatchOptions = {}) {
    this.thresholdMs = options.thresholdMs ?? 100;
    this.graceMs = options.graceMs ?? 1000;
  }

  /** A timer due at `dueMs` fired at `now`: note how late it was. Returns the lateness (ms, 0 if on time). */
  fired(now: number, dueMs: number): number {
    const lateMs = Math.max(0, now - dueMs);
    if (lateMs <= this.thresholdMs) return lateMs;
    if (lateMs > this.longestMs) this.longestMs = lateMs;
    this.graceUntilMs = Math.max(this.graceUntilMs, now + this.graceMs);
    const start = Math.max(dueMs, this.coveredUntilMs);
    if (now > start) {
      if (start > this.coveredUntilMs) this.stalls++;
      this.totalMs += now - start;
      // A stall continuing the last one extends its entry; a new one takes the next slot.
      const last = (this.next + HISTORY - 1) % HISTORY;
      if (start === this.coveredUntilMs && this.ends[last] === start) {
        this.ends[last] = now;
      } else {
        this.starts[this.next] = start;
        this.ends[this.next] = now;
        this.next = (this.next + 1) % HISTORY;
      }
      this.coveredUntilMs = now;
    }
    return lateMs;
  }

  /** Whether `now` is within the grace after a stall: a detector declares no peer dead then. */
  isInGrace(now: number): boolean {
    return now < this.graceUntilMs;
  }

  /** Milliseconds of the remembered stalls that fall after `sinceMs`: extend a deadline running since then by this. */
  stalledSince(sinceMs: number): number {
    let sum = 0;
    for (let i = 0; i < HISTORY; i++) {
      const end = this.ends[i]!;
      if (end > sinceMs) sum += end - Math.max(this.starts[i]!, sinceMs);
    }
    return sum;
  }
}
