/**
 * Per-peer token buckets with time passed in: how the allocator bounds what one peer may ask of it (space requests,
 * ring queries, donations). The map is bounded: past `maxPeers` the peer heard from longest ago is forgotten (it then
 * starts again with a full bucket, which costs at most one burst).
 */
export interface PeerLimiterOptions {
  /** Requests allowed in a burst. */
  burst: number;
  /** Requests allowed per second, sustained. */
  perSecond: number;
  /** Peers tracked at once. @default 4096 */
  maxPeers?: number;
}

export class PeerLimiter {
  private readonly buckets = new Map<string, { tokens: number; lastMs: number }>();
  private readonly maxPeers: number;

  constructor(private readonly options: PeerLimiterOptions) {
    this.maxPeers = options.maxPeers ?? 4096;
  }

  /** Spend one of `peer`'s tokens at `nowMs`; false (nothing spent) when it has none left. */
  take(peer: string, nowMs: number): boolean {
    let b = this.buckets.get(peer);
    if (b)
      this.buckets.delete(peer); // re-inserted below: the map stays in least-recently-heard order
    else {
      b = { tokens: this.options.burst, lastMs: nowMs };
      if (this.buckets.size >= this.maxPeers) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(peer, b);
    b.tokens = Math.min(this.options.burst, b.tokens + (Math.max(0, nowMs - b.lastMs) * this.options.perSecond) / 1000);
    b.lastMs = nowMs;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Peers tracked now (tests check the bound). */
  get size(): number {
    return this.buckets.size;
  }
}
