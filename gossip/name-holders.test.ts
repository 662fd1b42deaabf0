import { describe, expect, it } from 'vitest';
import { NameHolders } from './name-holders.js';

const N = '02:00:00:00:00:07';
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';

describe('NameHolders', () => {
  it('takes restarts (a new uid, never back) as no collision', () => {
    const h = new NameHolders(60_000);
    expect(h.observe(N, '1', A, 0)).toBeUndefined();
    expect(h.observe(N, '2', B, 1_000)).toBeUndefined();
    expect(h.observe(N, '3', A, 2_000)).toBeUndefined();
    expect(h.holder(N, 2_000)).toBeUndefined();
  });

  it('sees two live routers when a uid comes back, keeps the first holder, and forgets after the window', () => {
    const h = new NameHolders(60_000);
    h.observe(N, '1', A, 0);
    h.observe(N, '2', B, 1_000);
    expect(h.observe(N, '1', A, 2_000)).toBe('1');
    expect(h.holder(N, 2_000)).toBe('1');
    // Still flipping: the collision goes on (reported once), and lasts a window past the last flip.
    expect(h.observe(N, '2', B, 3_000)).toBeUndefined();
    expect(h.observe(N, '1', A, 4_000)).toBeUndefined();
    expect(h.holder(N, 63_000)).toBe('1');
    expect(h.holder(N, 64_000)).toBeUndefined();
    // A flip back after the window is a fresh change, not a collision.
    expect(h.observe(N, '2', B, 200_000)).toBeUndefined();
    expect(h.holder(N, 200_000)).toBeUndefined();
  });

  it('takes no flips from one neighbour as proof (it may be forging them)', () => {
    const h = new NameHolders(60_000);
    h.observe(N, '1', A, 0);
    h.observe(N, '2', A, 1);
    expect(h.observe(N, '1', A, 2)).toBeUndefined();
    expect(h.holder(N, 2)).toBeUndefined();
  });

  it('forgets a collision once no reachable router holds the name', () => {
    const h = new NameHolders(60_000);
    h.observe(N, '1', A, 0);
    h.observe(N, '2', B, 1);
    h.observe(N, '1', A, 2);
    h.forgetUnless(() => true);
    expect(h.holder(N, 3)).toBe('1');
    h.forgetUnless(() => false);
    expect(h.holder(N, 3)).toBeUndefined();
    expect(h.observe(N, '3', A, 4)).toBeUndefined();
  });
});
