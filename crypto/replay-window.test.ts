import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DEFAULT_REPLAY_WINDOW, INITIAL_REPLAY_WINDOW, ReplayCheck, ReplayWindow } from './replay-window.js';

/**
 * The obviously correct model: every accepted number in a Set, the window rules spelled out: a window that starts at
 * `initial` and doubles (up to `windowSize`) when an accepted number comes from further behind, refusing it and
 * everything that had fallen out of the smaller window.
 */
class SetModel {
  private readonly seen = new Set<number>();
  private last = -1;
  private floor = 0;
  tracked: number;
  constructor(
    private readonly windowSize: number,
    initial = windowSize,
  ) {
    this.tracked = Math.min(initial, windowSize);
  }
  check(seq: number): number {
    if (seq > this.last) return ReplayCheck.Fresh;
    if (this.last - seq > this.windowSize || seq < this.floor) return ReplayCheck.Stale;
    if (this.last - seq > this.tracked) return ReplayCheck.Fresh;
    return this.seen.has(seq) ? ReplayCheck.Replay : ReplayCheck.Fresh;
  }
  accept(seq: number): number {
    const r = this.check(seq);
    if (r !== ReplayCheck.Fresh) return r;
    if (seq <= this.last && this.last - seq > this.tracked) {
      this.floor = Math.max(this.floor, this.last - this.tracked);
      while (this.tracked < this.last - seq && this.tracked < this.windowSize) this.tracked *= 2;
      this.tracked = Math.min(this.tracked, this.windowSize);
      return ReplayCheck.Stale;
    }
    this.seen.add(seq);
    if (seq > this.last) this.last = seq;
    return r;
  }
}

/** Sequence numbers near a moving point: mostly in order, some reordered, duplicated, far behind or far ahead. */
function operations(windowSize: number) {
  const step = fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 3 }) },
    { weight: 3, arbitrary: fc.integer({ min: -windowSize - 40, max: 0 }) },
    { weight: 1, arbitrary: fc.integer({ min: windowSize - 40, max: windowSize * 3 }) },
    { weight: 1, arbitrary: fc.integer({ min: -windowSize * 3, max: -windowSize + 40 }) },
  );
  return fc.array(fc.tuple(step, fc.boolean()), { minLength: 1, maxLength: 400 });
}

describe('ReplayWindow', () => {
  it('accepts in-order numbers once and refuses duplicates as Replay', () => {
    const w = new ReplayWindow(64);
    for (let s = 0; s < 1000; s++) expect(w.accept(s)).toBe(ReplayCheck.Fresh);
    expect(w.accept(999)).toBe(ReplayCheck.Replay);
    expect(w.accept(990)).toBe(ReplayCheck.Replay);
    expect(w.highest).toBe(999);
  });

  it('accepts numbers reordered within the window, refuses them behind it as Stale', () => {
    const w = new ReplayWindow(64);
    expect(w.accept(100)).toBe(ReplayCheck.Fresh);
    expect(w.accept(36)).toBe(ReplayCheck.Fresh); // exactly windowSize behind
    expect(w.accept(35)).toBe(ReplayCheck.Stale);
    expect(w.accept(99)).toBe(ReplayCheck.Fresh);
    expect(w.accept(99)).toBe(ReplayCheck.Replay);
  });

  it('forgets bits that a far-ahead jump moved out, and keeps refusing older ones', () => {
    const w = new ReplayWindow(64);
    for (let s = 0; s < 64; s++) w.accept(s);
    expect(w.accept(10_000)).toBe(ReplayCheck.Fresh);
    expect(w.accept(63)).toBe(ReplayCheck.Stale);
    // Numbers whose ring words were reused must read as unseen, not as leftovers of 0..63.
    for (let s = 10_000 - 64; s < 10_000; s++) expect(w.accept(s)).toBe(ReplayCheck.Fresh);
  });

  it('check never changes state', () => {
    const w = new ReplayWindow(64);
    expect(w.check(5)).toBe(ReplayCheck.Fresh);
    expect(w.check(5)).toBe(ReplayCheck.Fresh);
    expect(w.highest).toBe(-1);
    w.accept(5);
    expect(w.check(5)).toBe(ReplayCheck.Replay);
  });

  it('treats non-integers, negatives and values past 2^53 as Stale', () => {
    const w = new ReplayWindow(64);
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(w.check(bad)).toBe(ReplayCheck.Stale);
      expect(w.accept(bad)).toBe(ReplayCheck.Stale);
    }
  });

  it('handles numbers above 2^32 (bit and word indexing stay exact)', () => {
    const w = new ReplayWindow(DEFAULT_REPLAY_WINDOW, DEFAULT_REPLAY_WINDOW);
    const base = 2 ** 40 + 7;
    expect(w.accept(base)).toBe(ReplayCheck.Fresh);
    expect(w.accept(base - 1)).toBe(ReplayCheck.Fresh);
    expect(w.accept(base)).toBe(ReplayCheck.Replay);
    expect(w.accept(base - DEFAULT_REPLAY_WINDOW - 1)).toBe(ReplayCheck.Stale);
  });

  it('reset forgets everything', () => {
    const w = new ReplayWindow(64);
    w.accept(500);
    w.reset();
    expect(w.accept(1)).toBe(ReplayCheck.Fresh);
    expect(w.accept(500)).toBe(ReplayCheck.Fresh);
  });

  it('refuses a window that is not a positive multiple of 32', () => {
    expect(() => new ReplayWindow(0)).toThrow(RangeError);
    expect(() => new ReplayWindow(100)).toThrow(RangeError);
    expect(() => new ReplayWindow(1024, 100)).toThrow(RangeError);
  });

  it('starts with a 1 KiB bitmap and grows it only for authentic deep reordering (issue 19)', () => {
    const w = new ReplayWindow();
    expect(w.bitmapBytes).toBeLessThanOrEqual(1100);
    expect(w.trackedWindow).toBe(INITIAL_REPLAY_WINDOW);
    for (let s = 0; s <= 100_000; s++) w.accept(s);
    expect(w.bitmapBytes).toBeLessThanOrEqual(1100); // in-order traffic needs no more
    // 50,000 behind: `check` lets it be authenticated, `accept` refuses it once and grows.
    expect(w.check(50_000)).toBe(ReplayCheck.Fresh);
    expect(w.bitmapBytes).toBeLessThanOrEqual(1100); // check changes nothing
    expect(w.accept(50_000)).toBe(ReplayCheck.Stale);
    expect(w.trackedWindow).toBe(65_536);
    // Numbers that had fallen out of the small ring may have been seen: still refused.
    expect(w.accept(90_000)).toBe(ReplayCheck.Stale);
    expect(w.accept(100_000 - INITIAL_REPLAY_WINDOW)).toBe(ReplayCheck.Replay); // kept across the growth
    for (let s = 100_001; s <= 160_000; s++) expect(w.accept(s)).toBe(ReplayCheck.Fresh);
    for (let s = 100_001; s <= 100_010; s++) expect(w.accept(s)).toBe(ReplayCheck.Replay); // 60,000 behind
    // Held out of order in the new window: taken once.
    expect(w.accept(200_000)).toBe(ReplayCheck.Fresh);
    expect(w.accept(150_000 + 1)).toBe(ReplayCheck.Replay);
    expect(w.accept(160_001)).toBe(ReplayCheck.Fresh);
    expect(w.accept(160_001)).toBe(ReplayCheck.Replay);
    // Never past the window.
    const base = 200_000 + 3 * DEFAULT_REPLAY_WINDOW;
    expect(w.accept(base)).toBe(ReplayCheck.Fresh);
    expect(w.accept(base - DEFAULT_REPLAY_WINDOW - 1)).toBe(ReplayCheck.Stale);
    expect(w.trackedWindow).toBe(65_536);
    expect(w.accept(base - DEFAULT_REPLAY_WINDOW + 10)).toBe(ReplayCheck.Stale);
    expect(w.trackedWindow).toBe(DEFAULT_REPLAY_WINDOW);
    expect(w.accept(base - 70_000)).toBe(ReplayCheck.Stale); // fell out of the 64k ring before it grew
    expect(w.accept(base - 1000)).toBe(ReplayCheck.Fresh);
    expect(w.accept(base + 100_000)).toBe(ReplayCheck.Fresh);
    expect(w.accept(base - 65_537)).toBe(ReplayCheck.Stale); // below the floor still
    expect(w.accept(base - 999)).toBe(ReplayCheck.Fresh);
    expect(w.accept(base + 100_000 - 500_000)).toBe(ReplayCheck.Stale);
    expect(w.accept(base + 50_000)).toBe(ReplayCheck.Fresh);
  });

  for (const [windowSize, initial] of [
    [32, 32],
    [96, 96],
    [1024, 1024],
    [DEFAULT_REPLAY_WINDOW, DEFAULT_REPLAY_WINDOW],
    [1024, 32],
    [4096, 96],
    [DEFAULT_REPLAY_WINDOW, INITIAL_REPLAY_WINDOW],
  ] as const) {
    it(`agrees with a Set model on random traffic (window ${windowSize}, starting at ${initial})`, () => {
      fc.assert(
        fc.property(fc.nat(1000), operations(initial), (start, ops) => {
          const w = new ReplayWindow(windowSize, initial);
          const model = new SetModel(windowSize, initial);
          let point = start;
          for (const [step, isCheckOnly] of ops) {
            point = Math.max(0, point + step);
            if (isCheckOnly) expect(w.check(point)).toBe(model.check(point));
            else expect(w.accept(point)).toBe(model.accept(point));
          }
        }),
        { numRuns: windowSize === DEFAULT_REPLAY_WINDOW ? 30 : 300 },
      );
    });
  }
});
