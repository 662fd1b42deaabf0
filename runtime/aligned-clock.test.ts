import { describe, expect, it } from 'vitest';
import { FakeClock } from './clock.js';
import { AlignedClock } from './aligned-clock.js';

/** An AlignedClock over a FakeClock whose time is the grid's (grid tick k*P at fake time k*P). */
function make(startMs = 0, phaseMs = 0) {
  const base = new FakeClock(startMs);
  const clock = new AlignedClock(base, { gridNow: () => base.now(), phaseMs });
  return { base, clock };
}

describe('AlignedClock', () => {
  it('fires repeating timers of one period on the same grid ticks, whenever they were set', () => {
    const { base, clock } = make(0);
    const at: Array<[string, number]> = [];
    base.advance(130);
    clock.setInterval(() => at.push(['a', base.now()]), 1000);
    base.advance(600);
    clock.setInterval(() => at.push(['b', base.now()]), 1000);
    base.advance(2270); // to 3000
    expect(at).toEqual([
      ['a', 1000],
      ['b', 1000],
      ['a', 2000],
      ['b', 2000],
      ['a', 3000],
      ['b', 3000],
    ]);
    // One underlying timer for both.
    expect(base.pendingCount).toBe(1);
  });

  it('meets timers whose periods divide each other on the same ticks, with one underlying timer', () => {
    const { base, clock } = make(250);
    const at: Array<[number, number]> = [];
    clock.setInterval(() => at.push([1000, base.now()]), 1000);
    clock.setInterval(() => at.push([2000, base.now()]), 2000);
    base.advance(3750); // to 4000
    expect(at).toEqual([
      [1000, 1000],
      [1000, 2000],
      [2000, 2000],
      [1000, 3000],
      [1000, 4000],
      [2000, 4000],
    ]);
    expect(base.pendingCount).toBe(1);
  });

  it('shifts the grid by phaseMs', () => {
    const { base, clock } = make(0, 300);
    const at: number[] = [];
    clock.setInterval(() => at.push(base.now()), 1000);
    base.advance(2500);
    expect(at).toEqual([300, 1300, 2300]);
  });

  it('stops a cancelled timer at once (also one cancelled by another in the same tick) and drops the driver when none is left', () => {
    const { base, clock } = make(0);
    let a = 0;
    let b = 0;
    const tb = clock.setInterval(() => b++, 1000);
    const ta = clock.setInterval(() => {
      a++;
      if (a === 2) tb.cancel();
    }, 1000);
    // tb runs before ta in a tick (set first), so it ran at 1000 and 2000; cancelled during 2000, never again.
    base.advance(4000);
    expect([a, b]).toEqual([4, 2]);
    ta.cancel();
    ta.cancel(); // idempotent
    expect(clock.repeatingCount).toBe(0);
    expect(base.pendingCount).toBe(0);
    base.advance(5000);
    expect(a).toBe(4);
  });

  it('runs a timer set by a callback from the next tick on, not in the tick that set it', () => {
    const { base, clock } = make(0);
    const at: Array<[string, number]> = [];
    clock.setInterval(() => {
      at.push(['outer', base.now()]);
      if (at.length === 1) clock.setInterval(() => at.push(['inner', base.now()]), 1000);
    }, 1000);
    base.advance(2000);
    expect(at).toEqual([
      ['outer', 1000],
      ['outer', 2000],
      ['inner', 2000],
    ]);
  });

  it('skips the ticks a stall missed instead of bursting to catch up', () => {
    const { base, clock } = make(0);
    const at: number[] = [];
    clock.setInterval(() => at.push(base.now()), 1000);
    base.advance(1000);
    base.stall(3400); // to 4400: the ticks at 2000, 3000 and 4000 are missed
    base.advance(0);
    base.advance(1600); // to 6000
    expect(at).toEqual([1000, 4400, 5000, 6000]);
  });

  it('restarts from now, without running, when grid time goes back', () => {
    let grid = 10_000;
    const base = new FakeClock(0);
    const clock = new AlignedClock(base, { gridNow: () => grid + base.now() });
    const at: number[] = [];
    clock.setInterval(() => at.push(base.now()), 1000); // grid tick 11000, fake time 1000
    grid = 0; // the grid clock jumps back by 10 s before that tick
    base.advance(1000); // fires the driver: nothing due, re-armed for grid 2000 (fake time 2000)
    expect(at).toEqual([]);
    base.advance(1000);
    expect(at).toEqual([2000]);
    base.advance(1000);
    expect(at).toEqual([2000, 3000]);
  });

  it('runs every timer of a tick even when one throws, then surfaces the failure', () => {
    const { base, clock } = make(0);
    let ran = 0;
    clock.setInterval(() => {
      throw new Error('boom');
    }, 1000);
    clock.setInterval(() => ran++, 1000);
    expect(() => base.advance(1000)).toThrow('boom');
    expect(ran).toBe(1);
    // The grid is still armed: the next tick runs both again.
    expect(() => base.advance(1000)).toThrow('boom');
    expect(ran).toBe(2);
  });

  it('passes one-shot timers and now() through to the base clock', () => {
    const { base, clock } = make(500);
    let fired = 0;
    const t = clock.setTimeout(() => fired++, 10);
    expect(clock.now()).toBe(500);
    base.advance(10);
    expect(fired).toBe(1);
    t.cancel();
  });

  it('by default puts ticks on wall-clock time, so two processes share them', () => {
    const base = new FakeClock(123.4);
    const clock = new AlignedClock(base);
    let fired = 0;
    clock.setInterval(() => fired++, 1000);
    const wall = performance.timeOrigin + 123.4;
    const untilTick = 1000 - (wall % 1000);
    base.advance(untilTick - 5);
    expect(fired).toBe(0);
    base.advance(5);
    expect(fired).toBe(1);
  });
});
