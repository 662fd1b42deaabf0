import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';

describe('FakeClock', () => {
  it('fires timers in time order, only when advanced past them', () => {
    const clock = new FakeClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b'), 20);
    clock.setTimeout(() => fired.push('a'), 10);
    clock.advance(9);
    expect(fired).toEqual([]);
    clock.advance(11);
    expect(fired).toEqual(['a', 'b']);
    expect(clock.now()).toBe(20);
  });

  it('repeats intervals and stops after cancel', () => {
    const clock = new FakeClock();
    let n = 0;
    const t = clock.setInterval(() => n++, 5);
    clock.advance(25);
    expect(n).toBe(5);
    t.cancel();
    clock.advance(25);
    expect(n).toBe(5);
  });

  it('runs timers scheduled by a callback within the same advance', () => {
    const clock = new FakeClock();
    const at: number[] = [];
    clock.setTimeout(() => {
      at.push(clock.now());
      clock.setTimeout(() => at.push(clock.now()), 3);
    }, 2);
    clock.advance(10);
    expect(at).toEqual([2, 5]);
  });
});
