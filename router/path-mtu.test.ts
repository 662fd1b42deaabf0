import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PathMtu } from './path-mtu.js';

/** Run rounds against a path that carries packets up to `pathBytes`, acking what fits, until probing settles. */
function settle(p: PathMtu, pathBytes: number, startMs = 0): { now: number; rounds: number } {
  let now = startMs;
  let rounds = 0;
  // 20 s: well past the last refine round, short of the 30 s re-probe.
  for (let step = 0; step < 20; step++, now += 1000) {
    const round = p.poll(now);
    if (round === null) continue;
    rounds++;
    for (const size of round.sizes) if (size <= pathBytes) p.acked(round.id, size);
  }
  return { now, rounds };
}

describe('PathMtu probing', () => {
  it('keeps the ceiling when the first round proves it, after one round', () => {
    const p = new PathMtu(1500);
    const round = p.poll(0)!;
    expect(round.sizes[0]).toBe(1500);
    expect(round.sizes).toEqual([...round.sizes].sort((a, b) => b - a)); // largest first
    expect(round.sizes.every((s) => s <= 1500 && s >= 576)).toBe(true);
    for (const s of round.sizes) p.acked(round.id, s);
    expect(p.mtuBytes).toBe(1500);
    expect(p.isConfirmed).toBe(true);
    expect(p.poll(1000)).toBeNull(); // the round ends; the next one is due only after reprobeMs
    expect(p.poll(20_000)).toBeNull();
    expect(p.poll(31_000)).not.toBeNull();
  });

  it('finds a common MTU below the ceiling exactly in one round, lowering only when the round ends', () => {
    const p = new PathMtu(1500);
    const round = p.poll(0)!;
    for (const s of round.sizes) if (s <= 1280) p.acked(round.id, s);
    expect(p.mtuBytes).toBe(1500); // the large probes might still be on their way
    expect(p.poll(500)).toBeNull();
    // Round over: 1280 acked, 1300 lost, a bracket 20 wide: lowered, and one refine round inside it.
    expect(p.poll(1000)?.sizes).toEqual([1290]);
    expect(p.mtuBytes).toBe(1280);
    expect(p.isConfirmed).toBe(true);
  });

  it('narrows an odd MTU to within the granularity by refine rounds (binary search six ways wide)', () => {
    const p = new PathMtu(9000);
    const { rounds } = settle(p, 1337);
    expect(p.mtuBytes).toBeLessThanOrEqual(1337);
    expect(p.mtuBytes).toBeGreaterThan(1337 - 8);
    expect(rounds).toBeLessThanOrEqual(4);
  });

  it('raises the MTU the moment a larger size is acked during a round', () => {
    const p = new PathMtu(1500);
    const { now } = settle(p, 1400);
    expect(p.mtuBytes).toBe(1400);
    // The path grows (a re-route): the next confirm round proves the next common size up, and its ack raises the
    // MTU at once; a full round follows at once and proves 1500.
    let t = now;
    let round = p.poll(t);
    for (; round === null && t < now + 60_000; t += 1000) round = p.poll(t);
    expect(round!.sizes).toEqual([1420, 1400]);
    expect(p.acked(round!.id, 1420)).toBe(true);
    expect(p.mtuBytes).toBe(1420);
    p.acked(round!.id, 1400);
    t += 1000;
    round = p.poll(t); // ends the confirm round: the path grew, a full round at once
    expect(round!.sizes[0]).toBe(1500);
    expect(p.acked(round!.id, 1500)).toBe(true);
    expect(p.mtuBytes).toBe(1500);
  });

  it('confirms a known MTU with two probes every 30 s, and runs the whole ladder only every 10 minutes (issue 19)', () => {
    const p = new PathMtu(1500);
    const { now } = settle(p, 1400);
    let probes = 0;
    let fullRounds = 0;
    for (let t = now; t < now + 20 * 60_000; t += 1000) {
      const round = p.poll(t);
      if (round === null) continue;
      probes += round.sizes.length;
      if (round.sizes[0] === 1500) fullRounds++;
      else if (round.sizes.length === 2) expect(round.sizes).toEqual([1420, 1400]);
      else expect(round.sizes.every((size) => size > 1400 && size < 1420)).toBe(true); // refining after a full one
      for (const size of round.sizes) if (size <= 1400) p.acked(round.id, size);
    }
    expect(p.mtuBytes).toBe(1400);
    expect(fullRounds).toBeGreaterThanOrEqual(1);
    expect(fullRounds).toBeLessThanOrEqual(3); // every raiseMs, each perhaps with a refine round after it
    // 40 confirm rounds of 2, a few full ones of ~14: a full round every 30 s would have been ~560.
    expect(probes).toBeLessThan(160);
  });

  it('a confirm round whose MTU in use goes unanswered starts a full round at once, which lowers it', () => {
    const p = new PathMtu(1500);
    const { now } = settle(p, 1500);
    let t = now;
    let round = p.poll(t);
    for (; round === null; t += 1000) round = p.poll(t);
    expect(round.sizes).toEqual([1500]); // at the ceiling: nothing above to try
    t += 1000;
    round = p.poll(t)!; // no ack (the path shrank: a tunnel on the way): a full round at once
    expect(round.sizes.length).toBeGreaterThan(5); // the whole ladder
    for (const size of round.sizes) if (size <= 1380) p.acked(round.id, size);
    p.poll(t + 1000);
    expect(p.mtuBytes).toBe(1380);
  });

  it('lowers the MTU at the next full round when the path shrinks, and at once after suspect()', () => {
    const p = new PathMtu(1500);
    const { now } = settle(p, 1500); // 20 s: the next full round is not due yet
    expect(p.mtuBytes).toBe(1500);
    p.suspect(now);
    const round = p.poll(now)!;
    expect(round).not.toBeNull();
    for (const s of round.sizes) if (s <= 1400) p.acked(round.id, s);
    p.poll(now + 1000);
    expect(p.mtuBytes).toBe(1400);
  });

  it('ignores acks of another round or of sizes it did not probe', () => {
    const p = new PathMtu(1500);
    const first = p.poll(0)!;
    const second = p.poll(1000)!; // the first ends silently, the second begins
    expect(second.id).not.toBe(first.id);
    expect(p.acked(first.id, 1500)).toBe(false);
    expect(p.acked(second.id, 1499)).toBe(false);
    expect(p.isConfirmed).toBe(false);
  });

  it('keeps what it has when nothing is acked, and backs off after three silent rounds', () => {
    const p = new PathMtu(1500);
    let now = 0;
    let rounds = 0;
    for (let i = 0; i < 10; i++, now += 1000) if (p.poll(now) !== null) rounds++;
    expect(p.mtuBytes).toBe(1500);
    expect(p.isConfirmed).toBe(false);
    expect(rounds).toBe(3);
  });

  it('starts over from a new ceiling', () => {
    const p = new PathMtu(1500);
    settle(p, 1400);
    expect(p.mtuBytes).toBe(1400);
    p.setCeiling(9000, 100_000);
    expect(p.mtuBytes).toBe(9000);
    expect(p.isConfirmed).toBe(false);
    expect(p.poll(100_000)!.sizes[0]).toBe(9000);
  });

  it('settles on the largest size the path carries, never above it, for any path and ceiling (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1280, max: 9000 }), fc.integer({ min: 576, max: 9000 }), (ceiling, path) => {
        const p = new PathMtu(ceiling);
        settle(p, path);
        const truth = Math.min(ceiling, path);
        return p.mtuBytes <= truth && p.mtuBytes > truth - 8 && p.isConfirmed;
      }),
    );
  });
});
