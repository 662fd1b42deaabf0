/**
 * A Clock whose repeating timers share wake-ups (issue 19). An idle router had a one-second timer per control
 * connection (heartbeat), another per connection (rekey policy), one for data-path heartbeats and one for fastdp,
 * each at its own phase: 2N + 2 wake-ups a second for N neighbours, each costing more to wake for than to run.
 *
 * Here every repeating timer runs on a grid: a timer of period P fires at the multiples of P (plus `phaseMs`), so
 * all timers of one period fire in one wake-up, and timers whose periods divide each other (1 s, 2 s, 10 s) meet on
 * the same ticks. One underlying one-shot timer drives the whole grid. The first run of a new repeating timer comes
 * at the next grid tick, between 0 and P after it was set (not exactly P); a late tick skips the ticks it missed
 * (no burst to catch up), as Node's intervals do. One-shot timers pass through untouched.
 */
import type { Clock, Timer } from './clock.js';

export interface AlignedClockOptions {
  /**
   * Where the grid's ticks fall: a timer of period P fires when `(gridNow() - phaseMs) % P` is 0. Grid time only has
   * to be monotonic; with wall-clock time, routers of one host share their ticks too.
   * @default performance.timeOrigin + base.now() (wall-clock time when the process started, moving monotonically)
   */
  gridNow?: () => number;
  /** Shift of the grid in ms (0 to the smallest period). @default 0 */
  phaseMs?: number;
}

/**
 * A tick may fire up to this early by grid time (Node's loop time is whole milliseconds, the grid's is not): it still
 * counts as the tick it was set for.
 */
const EARLY_MS = 2;

interface Repeat {
  readonly fn: () => void;
  isCancelled: boolean;
}

interface Group {
  readonly periodMs: number;
  /** Grid time of the next tick. */
  nextAtMs: number;
  repeats: Repeat[];
}

export class AlignedClock implements Clock {
  private readonly gridNow: () => number;
  private readonly phaseMs: number;
  private readonly groups = new Map<number, Group>();
  private driver: Timer | null = null;
  private driverAtMs = Infinity;
  private isFiring = false;

  constructor(
    private readonly base: Clock,
    options: AlignedClockOptions = {},
  ) {
    this.gridNow = options.gridNow ?? (() => performance.timeOrigin + base.now());
    this.phaseMs = options.phaseMs ?? 0;
  }

  now(): number {
    return this.base.now();
  }

  setTimeout(fn: () => void, delayMs: number): Timer {
    return this.base.setTimeout(fn, delayMs);
  }

  setInterval(fn: () => void, intervalMs: number): Timer {
    const periodMs = Math.max(1, intervalMs);
    let group = this.groups.get(periodMs);
    if (group === undefined) {
      group = { periodMs, nextAtMs: this.tickAfter(this.gridNow(), periodMs), repeats: [] };
      this.groups.set(periodMs, group);
    }
    const repeat: Repeat = { fn, isCancelled: false };
    group.repeats.push(repeat);
    this.arm();
    return {
      cancel: () => {
        if (repeat.isCancelled) return;
        repeat.isCancelled = true;
        const g = this.groups.get(periodMs);
        if (g === undefined) return;
        g.repeats = g.repeats.filter((r) => r !== repeat);
        if (g.repeats.length === 0) {
          this.groups.delete(periodMs);
          this.arm();
        }
      },
    };
  }

  /** Repeating timers pending (for tests and the report). */
  get repeatingCount(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.repeats.length;
    return n;
  }

  /** The first grid tick of `periodMs` strictly after grid time `t`. */
  private tickAfter(t: number, periodMs: number): number {
    return (Math.floor((t - this.phaseMs) / periodMs) + 1) * periodMs + this.phaseMs;
  }

  /** Keep one underlying timer, set for the earliest tick of any group (none when no repeating timer is left). */
  private arm(): void {
    if (this.isFiring) return;
    let earliest = Infinity;
    for (const g of this.groups.values()) earliest = Math.min(earliest, g.nextAtMs);
    if (earliest === this.driverAtMs && this.driver !== null) return;
    this.driver?.cancel();
    this.driver = null;
    this.driverAtMs = earliest;
    if (earliest === Infinity) return;
    this.driver = this.base.setTimeout(this.onDriver, Math.max(0, earliest - this.gridNow()));
  }

  private readonly onDriver = (): void => {
    this.driver = null;
    this.driverAtMs = Infinity;
    const t = this.gridNow();
    let failure: unknown = null;
    let hasFailed = false;
    this.isFiring = true;
    try {
      for (const g of [...this.groups.values()]) {
        if (g.nextAtMs > t + g.periodMs) {
          // Grid time went back (a grid on a clock that is not monotonic): start again from now, without running.
          g.nextAtMs = this.tickAfter(t, g.periodMs);
          continue;
        }
        if (g.nextAtMs > t + EARLY_MS) continue;
        // The next tick after this one; after a stall, the next one still ahead (missed ticks are not made up).
        g.nextAtMs = Math.max(g.nextAtMs + g.periodMs, this.tickAfter(t, g.periodMs));
        // Timers set by these callbacks join the group for its next tick, not this one.
        for (const r of g.repeats.slice()) {
          if (r.isCancelled) continue;
          try {
            r.fn();
          } catch (err) {
            // One failing timer does not starve the others of this tick; the first failure surfaces afterwards.
            if (!hasFailed) failure = err;
            hasFailed = true;
          }
        }
      }
    } finally {
      this.isFiring = false;
      this.arm();
    }
    if (hasFailed) throw failure;
  };
}
