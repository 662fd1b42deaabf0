/**
 * Which inbound control connections get a handshake. One address must not lock everyone else out, so every limit
 * that counts one address is checked before the shared ones, and a refused attempt spends nothing shared:
 *
 *   pending (unconfirmed) connections from this address < maxPendingPerAddress
 *   pending connections in all                          < maxPending
 *   this address's token bucket                         (perAddressBurst, then perAddressPerSecond)
 *   the shared token bucket                             (totalBurst, then totalPerSecond)
 *
 * Buckets are kept for at most `maxTrackedAddresses` addresses (least recently seen forgotten first; a forgotten
 * address starts again with a full bucket, and the shared bucket still applies). Time is passed in.
 */
import { TokenBucket } from './token-bucket.js';

export interface InboundAdmissionOptions {
  /** Handshakes per second from one address, sustained. @default 2 */
  perAddressPerSecond?: number;
  /** Handshakes from one address in a burst. @default 5 */
  perAddressBurst?: number;
  /** Handshakes per second from all addresses together, sustained. @default 20 */
  totalPerSecond?: number;
  /** Handshakes from all addresses in a burst. @default 40 */
  totalBurst?: number;
  /** Connections accepted but not yet confirmed, in all. @default 64 */
  maxPending?: number;
  /** Connections accepted but not yet confirmed, from one address. @default 4 */
  maxPendingPerAddress?: number;
  /** Addresses whose bucket is remembered. @default 4096 */
  maxTrackedAddresses?: number;
}

/** Why a connection was refused: `reason` is the counter name, `closeReason` what the remote is told. */
export interface AdmissionRefusal {
  reason: 'inbound_pending_cap_address' | 'inbound_pending_cap' | 'inbound_rate_limited_address' | 'inbound_rate_limited';
  message: string;
  closeReason: string;
}

export class InboundAdmission {
  private readonly buckets = new Map<string, TokenBucket>();
  private readonly pendingByAddress = new Map<string, number>();
  private pendingTotal = 0;
  private readonly total: TokenBucket;
  private readonly o: Required<InboundAdmissionOptions>;

  constructor(nowMs: number, options: InboundAdmissionOptions = {}) {
    this.o = {
      perAddressPerSecond: options.perAddressPerSecond ?? 2,
      perAddressBurst: options.perAddressBurst ?? 5,
      totalPerSecond: options.totalPerSecond ?? 20,
      totalBurst: options.totalBurst ?? 40,
      maxPending: options.maxPending ?? 64,
      maxPendingPerAddress: options.maxPendingPerAddress ?? 4,
      maxTrackedAddresses: options.maxTrackedAddresses ?? 4096,
    };
    this.total = new TokenBucket(this.o.totalBurst, this.o.totalPerSecond, nowMs);
  }

  /** Admit a connection from `host` (it is then pending until `release(host)`), or say why not. */
  admit(host: string, nowMs: number): AdmissionRefusal | null {
    const pendingHere = this.pendingByAddress.get(host) ?? 0;
    if (pendingHere >= this.o.maxPendingPerAddress) {
      return {
        reason: 'inbound_pending_cap_address',
        message: `${pendingHere} unconfirmed connections from this address already`,
        closeReason: 'too many pending connections; retry later',
      };
    }
    if (this.pendingTotal >= this.o.maxPending) {
      return {
        reason: 'inbound_pending_cap',
        message: `${this.pendingTotal} unconfirmed connections already`,
        closeReason: 'too many pending connections; retry later',
      };
    }
    if (!this.bucketOf(host, nowMs).take(nowMs)) {
      return {
        reason: 'inbound_rate_limited_address',
        message: `over ${this.o.perAddressPerSecond} handshakes/s from this address`,
        closeReason: 'too many connection attempts; retry later',
      };
    }
    if (!this.total.take(nowMs)) {
      return {
        reason: 'inbound_rate_limited',
        message: `over ${this.o.totalPerSecond} handshakes/s in all`,
        closeReason: 'too many connection attempts; retry later',
      };
    }
    this.pendingByAddress.set(host, pendingHere + 1);
    this.pendingTotal++;
    return null;
  }

  /** A connection admitted from `host` is confirmed or closed: it no longer counts as pending. */
  release(host: string): void {
    const n = this.pendingByAddress.get(host);
    if (n === undefined) return;
    if (n > 1) this.pendingByAddress.set(host, n - 1);
    else this.pendingByAddress.delete(host);
    this.pendingTotal--;
  }

  /** Connections admitted and not yet released. */
  get pending(): number {
    return this.pendingTotal;
  }

  /** Addresses with a remembered bucket (never above `maxTrackedAddresses`). */
  get trackedAddresses(): number {
    return this.buckets.size;
  }

  private bucketOf(host: string, nowMs: number): TokenBucket {
    let b = this.buckets.get(host);
    if (b) {
      this.buckets.delete(host); // re-insert at the end: Map order is least recently seen first
    } else {
      b = new TokenBucket(this.o.perAddressBurst, this.o.perAddressPerSecond, nowMs);
      while (this.buckets.size >= this.o.maxTrackedAddresses) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(host, b);
    return b;
  }
}
