import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PeerNumbers } from './peer-numbers.js';

describe('PeerNumbers', () => {
  it('hands out small numbers, finds them by the name in a packet, and writes the name back', () => {
    const p = new PeerNumbers(8);
    const a = p.numberOf(0x7a3b_0122_c49e);
    const b = p.numberOf(0xd2f1_5a00_0b17);
    expect([a, b]).toEqual([0, 1]);
    expect(p.numberOf(0x7a3b_0122_c49e)).toBe(0);
    const packet = Buffer.from('00d2f15a000b17', 'hex');
    expect(p.lookupAt(packet, 1)).toBe(1);
    expect(p.idBytes.subarray(6, 12)).toEqual(packet.subarray(1));
    expect(p.numberOf(0)).toBe(-1); // the broadcast destination is never a peer
    expect(p.numberOf(2 ** 48)).toBe(-1);
  });

  it('reuses released numbers, so peers that come and go never run it out', () => {
    const p = new PeerNumbers(4);
    for (let round = 0; round < 10_000; round++) {
      const n = p.numberOf(1000 + round);
      expect(n).toBeGreaterThanOrEqual(0);
      expect(n).toBeLessThan(4);
      p.release(n);
      expect(p.idOf(n)).toBe(-1);
    }
    expect(p.size).toBe(0);
    expect(p.span).toBe(1);
  });

  it('refuses a new peer while `capacity` are held, and takes it once one is released', () => {
    const p = new PeerNumbers(2);
    expect(p.numberOf(1)).toBe(0);
    expect(p.numberOf(2)).toBe(1);
    expect(p.numberOf(3)).toBe(-1);
    p.release(0);
    expect(p.numberOf(3)).toBe(0);
    expect(p.lookupAt(Buffer.from('000000000001', 'hex'), 0)).toBe(-1);
  });

  it('agrees with a Map model on random hand-outs and releases', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 12 })), { maxLength: 200 }), (ops) => {
        const p = new PeerNumbers(6);
        const model = new Map<number, number>();
        const scratch = Buffer.alloc(6);
        for (const [isTake, id] of ops) {
          if (isTake) {
            const n = p.numberOf(id);
            if (model.has(id)) expect(n).toBe(model.get(id));
            else if (model.size >= 6) expect(n).toBe(-1);
            else {
              expect([...model.values()]).not.toContain(n);
              model.set(id, n);
            }
          } else if (model.has(id)) {
            p.release(model.get(id)!);
            model.delete(id);
          }
          for (const [k, n] of model) {
            scratch.writeUIntBE(k, 0, 6);
            expect(p.lookupAt(scratch, 0)).toBe(n);
            expect(p.idOf(n)).toBe(k);
          }
          expect(p.size).toBe(model.size);
        }
      }),
      { numRuns: 500 },
    );
  });
});
