/**
 * Our own stalls, seen as timer lateness: a timer that fires long after it was due means this process's event loop
 * was busy (garbage collection, a burst of work, a machine short of CPU), and everything that arrived meanwhile is
 * still unread in the sockets. Node runs due timers before it polls for I/O, so a failure detector whose timer fires
 * after a stall would blame peers for answers it has not read yet. Detectors note each timer's lateness here
 * (`fired`) and declare nothing dead while `isInGrace`: for a grace period after the stall, at least as long as the
 * stall itself (a deadline is extended by the stall observed).
 *
 * One watch may be shared by many timers (a connection's stall is every connection's). Pure logic: the time is passed
 * in, so tests drive it with a `FakeClock`.
 */

export interface StallWatchOptions {
  /** Lateness up to this is ordinary timer jitter, not a stall. @default 100 */
  thresholdMs?: number;
  /** After a stall, nothing is declared dead for this long (or the stall's length, if longer). @default 2000 */
  graceMs?: number;
}

export class StallWatch {
  /** Stalls seen (timers later than `thresholdMs`). */
  stalls = 0;
  /** The longest lateness seen, in ms. */
  longestMs = 0;
  /** Total lateness of the stalls seen, in ms. */
  totalMs = 0;
  private readonly thresholdMs: number;
  private readonly graceMs: number;
  private graceUntilMs = -Infinity;

  constructor(options: StallWatchOptions = {}) {
    this.thresholdMs = options.thresholdMs ?? 100;
    this.graceMs = options.graceMs ?? 2000;
  }

  /** A timer due at `dueMs` fired at `now`: note how late it was. Returns the lateness (ms, 0 if on time). */
  fired(now: number, dueMs: number): number {
    const lateMs = Math.max(0, now - dueMs);
    if (lateMs > this.thresholdMs) {
      this.stalls++;
      this.totalMs += lateMs;
      if (lateMs > this.longestMs) this.longestMs = lateMs;
      this.graceUntilMs = Math.max(this.graceUntilMs, now + Math.max(this.graceMs, lateMs));
    }
    return lateMs;
  }

  /** Whether `now` is within the grace period after a stall: a detector declares no peer dead then. */
  isInGrace(now: number): boolean {
    return now < this.graceUntilMs;
  }
}
