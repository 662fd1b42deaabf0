import type { FakeClock } from '../../runtime/clock.js';

/**
 * Advance simulated time in 10 ms steps, letting I/O callbacks run between steps, until `done()` (checked every
 * 100 ms simulated) or `limitMs`; returns the simulated ms taken, or Infinity.
 */
export async function runUntil(clock: FakeClock, done: () => boolean, limitMs: number): Promise<number> {
  const start = clock.now();
  for (let step = 0; clock.now() - start < limitMs; step++) {
    clock.advance(10);
    await new Promise((r) => setImmediate(r));
    if (step % 10 === 0 && done()) return clock.now() - start;
  }
  return Infinity;
}
