/**
 * Log lines about hostile input, limited: at most one line per key (an address) per `intervalMs`, at most
 * `linesPerSecond` in all, and a bounded memory of keys (the oldest is forgotten first), so a flood from many
 * addresses can neither fill the log nor grow this map. What is not logged is still counted by the caller.
 */
import { TokenBucket } from './token-bucket.js';

export interface LogLimiterOptions {
  /** One line per key per this long. @default 60000 */
  intervalMs?: number;
  /** Keys remembered; past this the least recently logged is forgotten. @default 1024 */
  maxKeys?: number;
  /** Lines per second over all keys, sustained (a burst of twice this). @default 5 */
  linesPerSecond?: number;
}

export class LogLimiter {
  private readonly lastLoggedAt = new Map<string, number>();
  private readonly intervalMs: number;
  private readonly maxKeys: number;
  private readonly lines: TokenBucket;

  constructor(nowMs: number, options: LogLimiterOptions = {}) {
    this.intervalMs = options.intervalMs ?? 60_000;
    this.maxKeys = options.maxKeys ?? 1024;
    const perSecond = options.linesPerSecond ?? 5;
    this.lines = new TokenBucket(2 * perSecond, perSecond, nowMs);
  }

  /** True when a line about `key` may be written now (and records that it was). */
  shouldLog(key: string, nowMs: number): boolean {
    const last = this.lastLoggedAt.get(key);
    if (last !== undefined && nowMs - last < this.intervalMs) return false;
    if (!this.lines.take(nowMs)) return false;
    this.lastLoggedAt.delete(key); // re-insert at the end: Map order is the eviction order
    this.lastLoggedAt.set(key, nowMs);
    while (this.lastLoggedAt.size > this.maxKeys) this.lastLoggedAt.delete(this.lastLoggedAt.keys().next().value!);
    return true;
  }

  /** Keys remembered now (never above `maxKeys`). */
  get size(): number {
    return this.lastLoggedAt.size;
  }
}
