/**
 * The fuzzers' seeded generator: `runtime/random.ts`'s `SeededRandom` (mulberry32) plus the few draws a
 * structure-aware fuzzer needs. Every fuzzer prints its seed; the same seed and counts replay the same inputs.
 */
import { SeededRandom } from '../../runtime/random.js';

export class FuzzRandom extends SeededRandom {
  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** An integer in [lo, hi]. */
  between(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** `n` random bytes written into `out` at `offset`. */
  fill(out: Buffer, offset: number, n: number): void {
    for (let i = 0; i < n; i++) out[offset + i] = this.int(256);
  }

  /** `n` random bytes in a new buffer. */
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    this.fill(b, 0, n);
    return b;
  }

  /** A weighted choice: `weights` maps a name to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as Array<[K, number]>;
    let total = 0;
    for (const [, w] of entries) total += w;
    let x = this.next() * total;
    for (const [k, w] of entries) {
      x -= w;
      if (x < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }

  /** An interesting integer for a field of `bits` bits: edges, powers of two and their neighbours, or random. */
  edgy(bits: number): number {
    const max = 2 ** bits - 1;
    switch (this.int(6)) {
      case 0:
        return this.pick([0, 1, max, max - 1]);
      case 1: {
        const p = 2 ** this.int(bits);
        return Math.min(max, Math.max(0, p + this.between(-1, 1)));
      }
      default:
        return Math.floor(this.next() * (max + 1));
    }
  }
}

/** A seed from the clock, printed by every fuzzer so the run can be replayed with `--seed`. */
export function freshSeed(): number {
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}
