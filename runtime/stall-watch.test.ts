import { describe, expect, it } from 'vitest';
import { StallWatch } from './stall-watch.js';

describe('StallWatch', () => {
  it('takes lateness up to the threshold as jitter: no stall, no grace', () => {
    const w = new StallWatch({ thresholdMs: 100 });
    expect(w.fired(1_080, 1_000)).toBe(80);
    expect(w.stalls).toBe(0);
    expect(w.isInGrace(1_080)).toBe(false);
    expect(w.stalledSince(0)).toBe(0);
  });

  it('counts a stall seen by many timers once, and extends deadlines by exactly its length', () => {
    const w = new StallWatch({ thresholdMs: 100, graceMs: 1_000 });
    // The loop is stuck from 1 000 to 7 000; three timers due at 1 000, 1 500 and 6 900 fire at 7 000-7 002.
    w.fired(7_000, 1_000);
    w.fired(7_001, 1_500);
    w.fired(7_002, 6_900);
    expect(w.stalls).toBe(1);
    expect(w.totalMs).toBe(6_002);
    expect(w.longestMs).toBe(6_000);
    expect(w.stalledSince(0)).toBe(6_002);
    expect(w.stalledSince(4_000)).toBe(3_002); // a peer last heard at 4 000: 3 s of its silence were ours
    expect(w.stalledSince(8_000)).toBe(0);
  });

  it('grants a grace after a stall, then none', () => {
    const w = new StallWatch({ thresholdMs: 100, graceMs: 1_000 });
    w.fired(5_000, 3_000);
    expect(w.isInGrace(5_000)).toBe(true);
    expect(w.isInGrace(5_999)).toBe(true);
    expect(w.isInGrace(6_000)).toBe(false);
  });

  it('keeps separate stalls apart and forgets the oldest beyond its history', () => {
    const w = new StallWatch({ thresholdMs: 10 });
    for (let i = 0; i < 40; i++) w.fired(i * 1_000 + 500, i * 1_000); // 40 stalls of 500 ms
    expect(w.stalls).toBe(40);
    expect(w.totalMs).toBe(20_000);
    expect(w.stalledSince(0)).toBe(32 * 500); // only the last 32 are remembered
    expect(w.stalledSince(39_200)).toBe(300);
  });
});
