/**
 * The Random seam: fan-out choice, jitter, tie-breaks. Never keys or nonces: those come from sodium-native.
 * Tests use `SeededRandom` and print the seed on failure so a run can be replayed.
 */
export interface Random {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  /** `k` distinct items of `items` in random order (all of them when k >= length). */
  sample<T>(items: readonly T[], k: number): T[];
}

abstract class RandomBase implements Random {
  abstract next(): number;
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  sample<T>(items: readonly T[], k: number): T[] {
    const copy = items.slice();
    const n = Math.min(k, copy.length);
    for (let i = 0; i < n; i++) {
      const j = i + this.int(copy.length - i);
      const tmp = copy[i]!;
      copy[i] = copy[j]!;
      copy[j] = tmp;
    }
    return copy.slice(0, n);
  }
}

class MathRandom extends RandomBase {
  next(): number {
    return Math.random();
  }
}

/** `Math.random` behind the seam. */
export const systemRandom: Random = new MathRandom();

/** A deterministic generator (mulberry32); same seed, same sequence. */
export class SeededRandom extends RandomBase {
  private state: number;
  constructor(readonly seed: number) {
    super();
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}
