import { describe, expect, it } from 'vitest';
import { NameHolders } from './name-holders.js';

const N = '02:00:00:00:00:07';

describe('NameHolders', () => {
  it('takes restarts (a new uid, never back) as no collision', () => {
    const h = new NameHolders(60_000);
    expect(h.observe(N, '1', 0)).toBeUndefined();
    expect(h.observe(N, '2', 1_000)).toBeUndefined();
    expect(h.observe(N, '3', 2_000)).toBeUndefined();
    expect(h.holder(N, 2_000)).toBeUndefined();
  });

  it('sees two live routers when a uid comes back, keeps the first holder, and forgets after the window', () => {
    const h = new NameHolders(60_000);
    h.observe(N, '1', 0);
    h.observe(N, '2', 1_000);
    expect(h.observe(N, '1', 2_000)).toBe('1');
    expect(h.holder(N, 2_000)).toBe('1');
    // Still flipping: the collision goes on (reported once), and lasts a window past the last flip.
    expect(h.observe(N, '2', 3_000)).toBeUndefined();
    expect(h.observe(N, '1', 4_000)).toBeUndefined();
    expect(h.holder(N, 63_000)).toBe('1');
    expect(h.holder(N, 64_000)).toBeUndefined();
    // A flip back after the window is a fresh change, not a collision.
    expect(h.observe(N, '2', 200_000)).toBeUndefined();
    expect(h.holder(N, 200_000)).toBeUndefined();
  });

  it('forgets a collision once no reachable router holds the name', () => {
    const h = new NameHolders(60_000);
    h.observe(N, '1', 0);
    h.observe(N, '2', 1);
    h.observe(N, '1', 2);
    h.forgetUnless(() => true);
    expect(h.holder(N, 3)).toBe('1');
    h.forgetUnless(() => false);
    expect(h.holder(N, 3)).toBeUndefined();
    expect(h.observe(N, '3', 4)).toBeUndefined();
  });
});
