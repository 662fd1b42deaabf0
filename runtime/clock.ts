/**
 * The Clock seam: the only way weft code reads time or schedules work. Real code gets `systemClock`; tests get a
 * `FakeClock` and advance it by hand, so no test waits on the wall clock.
 */

/** A scheduled callback; `cancel()` is idempotent and safe after it fired. */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds on a monotonic scale (not wall time). */
  now(): number;
  /** Run `fn` once after `delayMs`. */
  setTimeout(fn: () => void, delayMs: number): Timer;
  /**
   * Run `fn` every `intervalMs` until cancelled. The first run may come sooner than `intervalMs` (the daemon's
   * `AlignedClock` puts it on the next tick of a shared grid); callers must not count on its phase.
   */
  setInterval(fn: () => void, intervalMs: number): Timer;
}

/** Node timers; timers are unref'd so a stopped component never keeps the process alive. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, delayMs) {
    const t = setTimeout(fn, delayMs);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, intervalMs) {
    const t = setInterval(fn, intervalMs);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};

interface Scheduled {
  at: number;
  seq: number;
  fn: () => void;
  intervalMs: number;
  isCancelled: boolean;
}

/**
 * A clock that moves only when told. `advance(ms)` runs every timer due within that span in time order (timers
 * scheduled by callbacks during the advance run too if they fall inside it).
 */
export class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private queue: Scheduled[] = [];

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, delayMs: number): Timer {
    return this.schedule(fn, delayMs, 0);
  }

  setInterval(fn: () => void, intervalMs: number): Timer {
    return this.schedule(fn, intervalMs, Math.max(1, intervalMs));
  }

  /** Number of timers still pending. */
  get pendingCount(): number {
    return this.queue.filter((s) => !s.isCancelled).length;
  }

  /** Move time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.popDue(end);
      if (!next) break;
      // A timer overdue after `stall` fires late, at the current time, as Node's would.
      this.t = Math.max(this.t, next.at);
      if (next.intervalMs > 0) {
        // Node schedules the next run from when this one ran: a late interval does not catch up.
        next.at = Math.max(next.at, this.t) + next.intervalMs;
        next.seq = this.seq++;
        this.queue.push(next);
      }
      next.fn();
    }
    this.t = end;
  }

  /**
   * The event loop was busy for `ms`: time moves on and no timer fires. The timers that fell due meanwhile fire late
   * on the next `advance` (even `advance(0)`), each once, as after a real stall.
   */
  stall(ms: number): void {
    this.t += ms;
  }

  /** Advance to the next pending timer and fire it; returns false if none is pending. */
  step(): boolean {
    const live = this.queue.filter((s) => !s.isCancelled);
    if (live.length === 0) return false;
    const at = Math.min(...live.map((s) => s.at));
    this.advance(Math.max(0, at - this.t));
    return true;
  }

  private schedule(fn: () => void, delayMs: number, intervalMs: number): Timer {
    const s: Scheduled = { at: this.t + Math.max(0, delayMs), seq: this.seq++, fn, intervalMs, isCancelled: false };
    this.queue.push(s);
    return {
      cancel: () => {
        s.isCancelled = true;
      },
    };
  }

  private popDue(end: number): Scheduled | undefined {
    let best = -1;
    for (let i = 0; i < this.queue.length; i++) {
      const s = this.queue[i]!;
      if (s.isCancelled || s.at > end) continue;
      if (best < 0 || s.at < this.queue[best]!.at || (s.at === this.queue[best]!.at && s.seq < this.queue[best]!.seq)) best = i;
    }
    if (best < 0) {
      this.queue = this.queue.filter((s) => !s.isCancelled);
      return undefined;
    }
    return this.queue.splice(best, 1)[0];
  }
}
