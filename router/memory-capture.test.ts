import { describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { MemoryCapture } from './memory-capture.js';
import type { FrameBatch } from './capture.js';

describe('MemoryCapture', () => {
  it('delivers injected frames in batches from a timer, with headroom in front of each', async () => {
    const clock = new FakeClock();
    const cap = new MemoryCapture({ clock }, { batchSlots: 2, headroomBytes: 32 });
    const batches: Array<{ frames: string[]; gaps: number[] }> = [];
    await cap.start((b: FrameBatch) => {
      const frames: string[] = [];
      const gaps: number[] = [];
      let prevEnd = 0;
      for (let i = 0; i < b.count; i++) {
        frames.push(b.buffer.toString('utf8', b.offsets[i]!, b.offsets[i]! + b.lengths[i]!));
        gaps.push(b.offsets[i]! - prevEnd);
        prevEnd = b.offsets[i]! + b.lengths[i]!;
      }
      batches.push({ frames, gaps });
    });
    for (const f of ['a'.repeat(14), 'b'.repeat(14), 'c'.repeat(14)]) cap.inject(Buffer.from(f));
    expect(batches).toEqual([]);
    clock.advance(0);
    expect(batches.map((b) => b.frames.map((f) => f[0]).join(''))).toEqual(['ab', 'c']);
    for (const b of batches) for (const g of b.gaps) expect(g).toBeGreaterThanOrEqual(32);
  });

  it('records copies of written frames and refuses runts', async () => {
    const cap = new MemoryCapture({ clock: new FakeClock() });
    await cap.start(() => undefined);
    const f = Buffer.alloc(20, 7);
    expect(cap.write(f, 0, 20)).toBe(true);
    f.fill(0);
    expect(cap.written[0]!.equals(Buffer.alloc(20, 7))).toBe(true);
    expect(cap.write(f, 0, 13)).toBe(false);
    expect(cap.dropsBadLength).toBe(1);
  });
});
