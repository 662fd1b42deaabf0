/**
 * The connection maker keeps us connected to our targets: the addresses given at launch or by `weft connect`, and,
 * with discovery on, the addresses of peers we learn from the topology. A target that is not connected is dialled;
 * a failed dial or a dropped connection is retried with exponential back-off and jitter.
 *
 * It owns no connections: the mesh dials (`deps.connect`) and says whether an address is connected
 * (`deps.isConnected`), and calls `refresh()` whenever connections or the topology change. Decisions are made in
 * one place, `reconcile()`, so the state after any event is the same whatever the order of events.
 *
 * Gossip must not be able to make us dial without bound: targets are capped (`maxTargets`; the user's own always
 * get a place, discovered ones take what is left), at most `maxConcurrentDials` dials run at once (the rest wait
 * their turn), and a discovered target that leaves and comes back resumes its back-off instead of starting over
 * (remembered for up to `maxTargets` forgotten addresses). The mesh filters what discovery may dial at all.
 *
 * Healing (docs/architecture.md, "Failure detection and healing"): a connection that was established and dropped
 * is a lost peer (`peerLost`); for `lostPeerWindowMs` after that its address is retried with delays capped at
 * `lostPeerMaxBackoffMs` instead of `maxBackoffMs`, so a partition heals within seconds of the link returning. Any
 * sign that the peer is back (`wake`: gossip that reaches it, its restart, its data-path heartbeat) forgets the
 * back-off and dials at once, no sooner than `minDialSpacingMs` after the previous dial to that address and within
 * `maxConcurrentDials`, so signs of life can never become a dial storm.
 */
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { TargetReport } from './report.js';
import { TokenBucket } from './token-bucket.js';

export interface BackoffOptions {
  /** Delay before the first retry. @default 1000 */
  initialBackoffMs?: number;
  /** Delays double per failed attempt up to this cap. @default 15000 */
  maxBackoffMs?: number;
  /**
   * Up to this fraction is taken off each delay at random, so routers that failed together do not retry in
   * lock-step (and the cap stays a cap). @default 0.2
   */
  jitterFraction?: number;
}

export interface ConnectionMakerLimits {
  /**
   * Targets kept, direct and discovered together; discovered addresses beyond this are ignored until a place frees
   * (direct targets are always kept). @default 256
   */
  maxTargets?: number;
  /** Dials in flight at once; due targets wait for a free slot. @default 8 */
  maxConcurrentDials?: number;
}

export interface ConnectionMakerOptions extends BackoffOptions, ConnectionMakerLimits, HealOptions {
  /** Use addresses learned from the topology as targets too. @default true */
  isDiscoveryEnabled?: boolean;
}

/** How lost peers are retried and how signs of life bring a dial forward. */
export interface HealOptions {
  /** A connection that lasted this long resets the back-off when it drops. @default 10000 */
  stableAfterMs?: number;
  /** Cap on the delays of a lost peer (one that was connected), for `lostPeerWindowMs` after the loss. @default 1000 */
  lostPeerMaxBackoffMs?: number;
  /** How long a lost peer is retried at the short cap before `maxBackoffMs` applies again. @default 600000 */
  lostPeerWindowMs?: number;
  /** A wake-up never dials an address sooner than this after the previous dial to it. @default 500 */
  minDialSpacingMs?: number;
  /** Wake-ups (dials brought forward) per second over all targets, with a burst of four times this. @default 4 */
  wakesPerSecond?: number;
}

/** The delay before retry number `attempt` (0-based), with jitter from `random`. */
export function backoffDelayMs(attempt: number, random: Random, options: BackoffOptions = {}): number {
  const initial = options.initialBackoffMs ?? 1000;
  const max = options.maxBackoffMs ?? 15_000;
  const jitter = options.jitterFraction ?? 0.2;
  const base = Math.min(max, initial * 2 ** Math.min(attempt, 30));
  return Math.round(base * (1 - jitter * random.next()));
}

export interface ConnectionMakerDeps {
  clock: Clock;
  random: Random;
  log: Logger;
  /**
   * Dial and handshake `address`; resolves once the connection is ready, rejects with why it failed. `isLostPeer`:
   * the address led to a connection lost lately (the mesh gives up sooner on a dial whose SYN goes unanswered).
   */
  connect(address: string, isLostPeer: boolean): Promise<void>;
  /** True if a ready connection leads to the peer at `address`. */
  isConnected(address: string): boolean;
  /** Listen addresses of peers known from the topology that we are not connected to. */
  discoveredAddresses(): Iterable<string>;
  /**
   * For a newly discovered address, how long to wait before its first dial and why (null: dial at once). The mesh
   * lets the peer with the smaller name dial first, so two routers that learn of each other together do not both
   * dial (a crossing dial costs a second handshake and a duplicate to retire).
   */
  firstDialDelay?(address: string): { ms: number; reason: string } | null;
}

type TargetState = 'connecting' | 'connected' | 'retrying' | 'failed';

interface Target {
  address: string;
  /** Given by the user (kept until forgotten) rather than discovered (dropped when the topology forgets it). */
  isDirect: boolean;
  state: TargetState;
  attempt: number;
  nextAttemptAt: number;
  connectedAt: number;
  /** When its connection was lost (-Infinity: never connected, or not lately). */
  lostAt: number;
  /** When the last dial to it started (-Infinity: never). */
  lastDialAt: number;
  lastError?: string;
  isDialling: boolean;
}

export class ConnectionMaker {
  private readonly targets = new Map<string, Target>();
  /** Back-off of discovered targets that left the topology, by address (bounded, oldest forgotten first). */
  private readonly pastBackoff = new Map<string, { attempt: number; nextAttemptAt: number; lastError?: string }>();
  private dialsInFlight = 0;
  /**
   * Wake-ups over all targets: gossip from a member could otherwise name every target alive twice a second. A woken
   * target beyond this waits for its back-off as before.
   */
  private readonly wakes: TokenBucket;
  private readonly options: Required<ConnectionMakerOptions>;
  private timer: Timer | null = null;
  private timerAt = Infinity;
  private isRunning = false;
  private isRefreshQueued = false;

  constructor(
    private readonly deps: ConnectionMakerDeps,
    options: ConnectionMakerOptions = {},
  ) {
    this.options = {
      initialBackoffMs: options.initialBackoffMs ?? 1000,
      maxBackoffMs: options.maxBackoffMs ?? 15_000,
      jitterFraction: options.jitterFraction ?? 0.2,
      isDiscoveryEnabled: options.isDiscoveryEnabled ?? true,
      stableAfterMs: options.stableAfterMs ?? 10_000,
      maxTargets: options.maxTargets ?? 256,
      maxConcurrentDials: options.maxConcurrentDials ?? 8,
      lostPeerMaxBackoffMs: options.lostPeerMaxBackoffMs ?? 1000,
      lostPeerWindowMs: options.lostPeerWindowMs ?? 600_000,
      minDialSpacingMs: options.minDialSpacingMs ?? 500,
      wakesPerSecond: options.wakesPerSecond ?? 4,
    };
    this.wakes = new TokenBucket(4 * this.options.wakesPerSecond, this.options.wakesPerSecond, deps.clock.now());
  }

  start(): void {
    this.isRunning = true;
    this.refresh();
  }

  stop(): void {
    this.isRunning = false;
    this.timer?.cancel();
    this.timer = null;
    this.timerAt = Infinity;
  }

  /** Add targets; with `replace`, direct targets not in `addresses` are forgotten first. */
  connect(addresses: readonly string[], replace: boolean): void {
    if (replace) {
      const keep = new Set(addresses);
      for (const [addr, t] of this.targets) if (t.isDirect && !keep.has(addr)) this.targets.delete(addr);
    }
    for (const address of addresses) {
      const t = this.targets.get(address);
      if (t) {
        t.isDirect = true;
        if (t.state === 'failed' || t.state === 'retrying') t.nextAttemptAt = this.deps.clock.now(); // the user asked: try now
      } else {
        this.targets.set(address, this.newTarget(address, true));
      }
    }
    this.refresh();
  }

  /** Stop trying `addresses` (open connections stay; the mesh closes them if asked). */
  forget(addresses: readonly string[]): void {
    for (const a of addresses) this.targets.delete(a);
  }

  /** Re-examine every target soon (debounced to one pass per tick). */
  refresh(): void {
    if (this.isRefreshQueued || !this.isRunning) return;
    this.isRefreshQueued = true;
    queueMicrotask(() => {
      this.isRefreshQueued = false;
      this.reconcile();
    });
  }

  /**
   * A ready connection to the peer at `address` (ours or its, `livedMs` after it became ready) closed with `reason`:
   * retry it as a lost peer. The back-off starts over if the connection had been up `stableAfterMs`; a shorter one
   * keeps growing it, so a peer that flaps cannot make us dial in a loop. With `isDiscovered`, the address is kept
   * as a target only while `discoveredAddresses` names it (the mesh names lost peers for their window).
   */
  peerLost(address: string, reason: string, livedMs: number, isDiscovered = true): void {
    const now = this.deps.clock.now();
    let t = this.targets.get(address);
    if (!t) {
      if (!isDiscovered || !this.options.isDiscoveryEnabled || this.targets.size >= this.options.maxTargets) return;
      t = this.newTarget(address, false);
      this.targets.set(address, t);
    }
    if (t.isDialling) return; // a dial is already under way; its result decides
    if (livedMs >= this.options.stableAfterMs) t.attempt = 0;
    t.lostAt = now;
    t.lastError = `connection lost: ${reason}`;
    this.scheduleRetry(t, now);
    this.refresh();
  }

  /**
   * Something says the peer at `address` is back (gossip shows it connected to another router with a newer
   * version, it restarted, its data path answered): forget the back-off and dial as soon as the spacing allows.
   * Unknown, connected, failed and dialling targets are left alone. Answers whether a dial was brought forward.
   */
  wake(address: string): boolean {
    const t = this.targets.get(address);
    this.pastBackoff.delete(address);
    if (!t || t.isDialling || t.state === 'connected' || t.state === 'failed') return false;
    if (this.deps.isConnected(address)) return false;
    t.attempt = 0;
    const at = Math.max(this.deps.clock.now(), t.lastDialAt + this.options.minDialSpacingMs);
    if (at >= t.nextAttemptAt) return false;
    if (!this.wakes.take(this.deps.clock.now())) return false;
    t.nextAttemptAt = at;
    this.refresh();
    return true;
  }

  /** Direct targets (as given to `connect`). */
  directTargets(): string[] {
    return [...this.targets.values()].filter((t) => t.isDirect).map((t) => t.address);
  }

  /** For `weft status targets`. */
  report(): TargetReport[] {
    const now = this.deps.clock.now();
    return [...this.targets.values()]
      .sort((a, b) => (a.address < b.address ? -1 : 1))
      .map((t) => {
        const r: TargetReport = { address: t.address, state: t.state };
        if (t.lastError) r.lastError = t.lastError;
        if (t.state === 'retrying') r.nextAttemptInSeconds = Math.max(0, Math.ceil((t.nextAttemptAt - now) / 1000));
        return r;
      });
  }

  private newTarget(address: string, isDirect: boolean): Target {
    const t: Target = {
      address,
      isDirect,
      state: 'connecting',
      attempt: 0,
      nextAttemptAt: this.deps.clock.now(),
      connectedAt: 0,
      lostAt: -Infinity,
      lastDialAt: -Infinity,
      isDialling: false,
    };
    const past = isDirect ? undefined : this.pastBackoff.get(address);
    const delay = isDirect || past ? null : (this.deps.firstDialDelay?.(address) ?? null);
    if (delay !== null && delay.ms > 0) {
      t.nextAttemptAt += delay.ms;
      t.state = 'retrying';
      t.lastError = delay.reason;
    }
    if (past) {
      // Gossip that drops an address and names it again must not buy an immediate dial each time.
      this.pastBackoff.delete(address);
      t.attempt = past.attempt;
      t.nextAttemptAt = Math.max(t.nextAttemptAt, past.nextAttemptAt);
      if (past.lastError !== undefined) t.lastError = past.lastError;
      if (t.nextAttemptAt > this.deps.clock.now()) t.state = 'retrying';
    }
    return t;
  }

  private rememberBackoff(t: Target): void {
    this.pastBackoff.delete(t.address);
    this.pastBackoff.set(t.address, { attempt: t.attempt, nextAttemptAt: t.nextAttemptAt, lastError: t.lastError });
    while (this.pastBackoff.size > this.options.maxTargets) this.pastBackoff.delete(this.pastBackoff.keys().next().value!);
  }

  /** Dials running now (never above `maxConcurrentDials`). */
  get dialsRunning(): number {
    return this.dialsInFlight;
  }

  private reconcile(): void {
    if (!this.isRunning) return;
    const now = this.deps.clock.now();
    if (this.options.isDiscoveryEnabled) {
      const discovered = new Set(this.deps.discoveredAddresses());
      for (const [addr, t] of this.targets) {
        if (t.isDirect || discovered.has(addr) || t.isDialling) continue;
        this.targets.delete(addr);
        if (t.attempt > 0) this.rememberBackoff(t);
      }
      for (const addr of discovered) {
        if (this.targets.size >= this.options.maxTargets) break;
        if (!this.targets.has(addr)) this.targets.set(addr, this.newTarget(addr, false));
      }
    }
    let earliest = Infinity;
    for (const t of this.targets.values()) {
      if (t.isDialling) continue;
      if (this.deps.isConnected(t.address)) {
        if (t.state !== 'connected') {
          t.state = 'connected';
          t.connectedAt = now;
          delete t.lastError;
        }
        continue;
      }
      if (t.state === 'connected') {
        // The connection dropped: retry, from the start of the schedule if it had been up a while.
        if (now - t.connectedAt >= this.options.stableAfterMs) t.attempt = 0;
        t.lostAt = now;
        t.lastError ??= 'connection lost';
        this.scheduleRetry(t, now);
      }
      if (t.state === 'failed') continue;
      if (t.nextAttemptAt > now) earliest = Math.min(earliest, t.nextAttemptAt);
      else if (this.dialsInFlight < this.options.maxConcurrentDials) this.dial(t);
      // else: due, waiting for a dial to finish (each finish refreshes)
    }
    this.armTimer(earliest, now);
  }

  private dial(t: Target): void {
    t.state = 'connecting';
    t.isDialling = true;
    t.lastDialAt = this.deps.clock.now();
    this.dialsInFlight++;
    this.deps.connect(t.address, t.lastDialAt - t.lostAt < this.options.lostPeerWindowMs).then(
      () => {
        this.dialsInFlight--;
        t.isDialling = false;
        t.state = 'connected';
        t.connectedAt = this.deps.clock.now();
        delete t.lastError;
        this.refresh();
      },
      (err: Error & { code?: string }) => {
        this.dialsInFlight--;
        t.isDialling = false;
        t.lastError = err.message;
        if (err.code === 'ERR_CONNECT_TO_SELF') {
          t.state = 'failed'; // retrying cannot help: it is our own address
        } else if (!this.deps.isConnected(t.address)) {
          this.scheduleRetry(t, this.deps.clock.now());
          this.deps.log.debug(
            { addr: t.address, reason: err.message, retryInMs: t.nextAttemptAt - this.deps.clock.now() },
            'connect failed',
          );
        }
        this.refresh();
      },
    );
  }

  private scheduleRetry(t: Target, now: number): void {
    t.state = 'retrying';
    const isLostPeer = now - t.lostAt < this.options.lostPeerWindowMs;
    const cap = isLostPeer ? Math.min(this.options.lostPeerMaxBackoffMs, this.options.maxBackoffMs) : this.options.maxBackoffMs;
    t.nextAttemptAt = now + backoffDelayMs(t.attempt, this.deps.random, { ...this.options, maxBackoffMs: cap });
    t.attempt++;
  }

  private armTimer(at: number, now: number): void {
    if (at === Infinity || at >= this.timerAt) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      this.reconcile();
    }, at - now);
  }
}
