/**
 * A token bucket with time passed in: `take(now)` spends a token if one is there. Used to rate-limit inbound
 * handshakes (Weave does the same), so a flood of connections costs us a close each, not a handshake each.
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;

  /**
   * @param capacity most tokens held (the burst allowed after a quiet spell)
   * @param refillPerSecond tokens added per second
   */
  constructor(
    private readonly capacity: number,
    private readonly refillPerSecond: number,
    nowMs: number,
  ) {
    this.tokens = capacity;
    this.lastMs = nowMs;
  }

  /** Spend one token; false (and nothing spent) when the bucket is empty. */
  take(nowMs: number): boolean {
    const elapsed = Math.max(0, nowMs - this.lastMs);
    this.lastMs = nowMs;
    this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.refillPerSecond) / 1000);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
