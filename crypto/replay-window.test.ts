import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DEFAULT_REPLAY_WINDOW, ReplayCheck, ReplayWindow } from './replay-window.js';

/** The obviously correct model: every accepted number in a Set, the window rule spelled out. */
class SetModel {
  private readonly seen = new Set<number>();
  private last = -1;
  constructor(private readonly windowSize: number) {}
  check(seq: number): number {
    if (seq > this.last) return ReplayCheck.Fresh;
    if (this.last - seq > this.windowSize) return ReplayCheck.Stale;
    return this.seen.has(seq) ? ReplayCheck.Replay : ReplayCheck.Fresh;
  }
  accept(seq: number): number {
    const r = this.check(seq);
    if (r === ReplayCheck.Fresh) {
      this.seen.add(seq);
      if (seq > this.last) this.last = seq;
    }
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
    const w = new ReplayWindow();
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
  });

  for (const windowSize of [32, 96, 1024, DEFAULT_REPLAY_WINDOW]) {
    it(`agrees with a Set model on random traffic (window ${windowSize})`, () => {
      fc.assert(
        fc.property(fc.nat(1000), operations(windowSize), (start, ops) => {
          const w = new ReplayWindow(windowSize);
          const model = new SetModel(windowSize);
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
