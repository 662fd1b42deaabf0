/**
 * `Fastdp`: the switch that puts each peer on the kernel's VXLAN (fastdp) or keeps it on the sleeve, and falls back
 * and comes back by itself. Control plane only: the kernel carries fastdp frames without this process; what this
 * class does is decide, per peer, and program the kernel through the `FastdpKernel` seam (docs/fastdp.md).
 *
 * Per peer, from each forwarding snapshot (the same routes the forwarding decision uses):
 *   not a candidate (encrypted, relayed, relaying for others, IPv6 underlay): sleeve, with that reason
 *   candidate: route heartbeats to it -> ask every `heartbeatMs` ->
 *       `confirmAnswers` answers in a row: flood entry on the VXLAN device, then the sleeve stops carrying to it
 *       (`sleeveSnapshot`), then the bridge forgets what it learned on the TAP                       -> fastdp
 *       no answer within `timeoutMs` (never confirmed): warn once, ask every `retryMs`                 -> sleeve
 *   fastdp, no answer for `timeoutMs`: the sleeve carries again, the flood entry goes, the bridge forgets what it
 *       learned on the VXLAN port; warn, count; ask every `retryMs` until answers come back            -> sleeve
 *   fastdp: each heartbeat from the peer lists the MACs behind it; they get VXLAN entries pointing at it, so known
 *       unicast goes to that peer alone (the flood entries carry the rest)
 *
 * Heartbeats are not authenticated (fastdp carries only clear peers), and the kernel's VXLAN device takes them from
 * any underlay address, so whoever can send UDP to port+1 can write any peer's name into one. What such a forgery
 * could change is tied to what a stranger cannot see: each ask carries a fresh random sequence number, and only an
 * answer echoing one of the last two confirms a path, keeps it up, or sets the MACs pointing at the peer. Asks are
 * answered (to the named peer's own address, at the ask's own length: no amplification) but change nothing. Answers
 * that echo no recent ask are counted (`fastdp_heartbeats_stale`) and dropped.
 *
 * One copy of every broadcast reaches each peer: the bridge floods a local broadcast to both carriers, the VXLAN
 * device sends it to each fastdp peer, and the sleeve's snapshot leaves fastdp peers out of the local broadcast
 * hops. Both carriers are isolated bridge ports, so what one delivers never leaves through the other.
 */
import { isIPv4 } from 'node:net';
import { randomInt } from 'node:crypto';
import type { ForwardingSnapshot, PeerId, PeerPath } from './datapath.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Carrier } from './report.js';
import {
  HEARTBEAT_ANSWER,
  HEARTBEAT_ASK,
  HEARTBEAT_OVERHEAD_BYTES,
  MIN_HEARTBEAT_MTU_BYTES,
  decodeHeartbeat,
  encodeHeartbeat,
  macNumber,
  macText,
} from './fastdp-heartbeat.js';
import { peerLabel } from './sleeve-neighbour.js';

/** The kernel side of fastdp: devices and entries. Calls are made one at a time, in order. */
export interface FastdpKernel {
  /** Create the VXLAN devices (the data device on the bridge, the heartbeat device). */
  start(): Promise<void>;
  /** Delete the devices and with them every entry. Idempotent; safe after a failed start. */
  stop(): Promise<void>;
  /** Make heartbeats to `peer` leave toward underlay `address` (IPv4). */
  addHeartbeatRoute(peer: PeerId, address: string): Promise<void>;
  removeHeartbeatRoute(peer: PeerId, address: string): Promise<void>;
  /** Send broadcast and unknown-unicast frames to `address` through the data device (an all-zeros entry). */
  addFlood(address: string): Promise<void>;
  removeFlood(address: string): Promise<void>;
  /** Make the bridge forget the MACs it learned on the sleeve's port (the TAP) or on the VXLAN port. */
  forgetLearned(carrier: 'sleeve' | 'fastdp'): Promise<void>;
  /** Send frames for `mac` ("aa:bb:...") to `address` through the data device (replacing any entry for it). */
  addMac(mac: string, address: string): Promise<void>;
  removeMac(mac: string, address: string): Promise<void>;
  /** The unicast MACs the bridge learned on container ports (what this host has behind it). */
  localMacs(): Promise<string[]>;
}

export interface FastdpDeps {
  kernel: FastdpKernel;
  /** Send a heartbeat to `peer`'s heartbeat address (never throws; a failed send is a missed heartbeat). */
  sendHeartbeat: (peer: PeerId, buf: Buffer) => void;
  clock: Clock;
  log: Logger;
}

export interface FastdpOptions {
  /** The data device's UDP port (for messages). */
  port: number;
  /** Overlay MTU: heartbeats fill it. */
  mtuBytes: number;
  /** Ask each candidate this often. @default 1000 */
  heartbeatMs?: number;
  /** No answer for this long: not (or no longer) fastdp. @default 3500 */
  timeoutMs?: number;
  /** After a failure ask this often until answers come back. @default 10000 */
  retryMs?: number;
  /** Answers in a row before a path is used. @default 2 */
  confirmAnswers?: number;
  /** Read this host's MACs (sent in heartbeats) this often. @default 5000 */
  macRefreshMs?: number;
}

/** How one peer's frames travel, and why. */
export interface FastdpPeerMode {
  readonly mode: Carrier;
  readonly reason: string;
}

export interface FastdpCounters {
  fastdp_heartbeats_sent: number;
  fastdp_heartbeats_answered: number;
  fastdp_heartbeat_asks: number;
  fastdp_heartbeats_bad: number;
  fastdp_heartbeats_unknown_peer: number;
  /** Answers echoing no ask of ours still outstanding: late, or forged by someone who cannot see our asks. */
  fastdp_heartbeats_stale: number;
  fastdp_fallbacks: number;
  fastdp_recoveries: number;
  fastdp_kernel_errors: number;
  fastdp_peers: number;
  fastdp_mac_entries: number;
}

interface Path {
  readonly peer: PeerId;
  readonly address: string;
  mode: Carrier;
  reason: string;
  /** Failed once (never confirmed, or heartbeats stopped): asked every `retryMs`. */
  hasFailed: boolean;
  isRouted: boolean;
  isSwitching: boolean;
  isGone: boolean;
  /** Times it failed (not confirmed, or heartbeats stopped): a path that comes up after one is "back". */
  failures: number;
  answers: number;
  /** MACs its last heartbeat listed, and those with a VXLAN entry pointing at it. */
  remoteMacs: Set<number>;
  programmedMacs: Set<number>;
  sinceMs: number;
  lastAnswerMs: number;
  lastAskMs: number;
  /** The sequence number of our last ask (random, fresh each ask) and of the one before. */
  seq: number;
  prevSeq: number;
}

export class Fastdp {
  private readonly heartbeatMs: number;
  private readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly confirmAnswers: number;
  private readonly heartbeatBytes: number;
  private readonly paths = new Map<PeerId, Path>();
  private readonly ineligible = new Map<PeerId, string>();
  private readonly listeners: Array<() => void> = [];
  private readonly stats: FastdpCounters = {
    fastdp_heartbeats_sent: 0,
    fastdp_heartbeats_answered: 0,
    fastdp_heartbeat_asks: 0,
    fastdp_heartbeats_bad: 0,
    fastdp_heartbeats_unknown_peer: 0,
    fastdp_heartbeats_stale: 0,
    fastdp_fallbacks: 0,
    fastdp_recoveries: 0,
    fastdp_kernel_errors: 0,
    fastdp_peers: 0,
    fastdp_mac_entries: 0,
  };
  private readonly macRefreshMs: number;
  private localMacs: number[] = [];
  private lastMacRefreshMs = -Infinity;
  private isReadingMacs = false;
  private snapshot: ForwardingSnapshot | undefined;
  private timer: Timer | undefined;
  private work: Promise<void> = Promise.resolve();
  private isRunning = false;

  constructor(
    private readonly deps: FastdpDeps,
    private readonly options: FastdpOptions,
  ) {
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.timeoutMs = options.timeoutMs ?? 3500;
    this.retryMs = options.retryMs ?? 10_000;
    this.confirmAnswers = options.confirmAnswers ?? 2;
    this.heartbeatBytes = options.mtuBytes - HEARTBEAT_OVERHEAD_BYTES;
    this.macRefreshMs = options.macRefreshMs ?? 5000;
  }

  async start(): Promise<void> {
    if (this.isRunning) return;
    await this.deps.kernel.start();
    this.isRunning = true;
    this.timer = this.deps.clock.setInterval(() => this.tick(), this.heartbeatMs);
    if (this.snapshot) this.apply(this.snapshot);
  }

  /** Stop asking, let queued kernel work finish, delete the devices. Idempotent. */
  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    this.isRunning = false;
    for (const p of this.paths.values()) p.isGone = true;
    this.paths.clear();
    this.stats.fastdp_peers = 0;
    this.stats.fastdp_mac_entries = 0;
    await this.work;
    // Also after a failed start: a half-made device must not outlive the daemon.
    await this.deps.kernel.stop();
  }

  /** Called when the set of fastdp peers changes (re-apply `sleeveSnapshot` to the sleeve). */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** A new forwarding snapshot: candidates come and go. */
  apply(snapshot: ForwardingSnapshot): void {
    this.snapshot = snapshot;
    if (!this.isRunning) return;
    this.ineligible.clear();
    for (const [peer, n] of snapshot.neighbours) {
      const reason = this.ineligibleReason(snapshot, peer, n);
      const path = this.paths.get(peer);
      if (reason !== undefined) {
        this.ineligible.set(peer, reason);
        if (path) this.drop(path, reason);
      } else if (!path || path.address !== n.endpoint.address) {
        if (path) this.drop(path, 'its underlay address changed');
        this.add(peer, n.endpoint.address);
      }
    }
    for (const path of [...this.paths.values()]) if (!snapshot.neighbours.has(path.peer)) this.drop(path, 'no longer a neighbour');
  }

  /**
   * The snapshot the sleeve should carry: fastdp peers are no destination of the frames it captures (the bridge
   * sends their MACs to the VXLAN port; a frame for them that still reaches the TAP was flooded to both) and no hop
   * of our own broadcasts. Frames other peers send through us to them are still relayed.
   */
  sleeveSnapshot(snapshot: ForwardingSnapshot): ForwardingSnapshot {
    const fast = this.fastdpPeers();
    if (fast.size === 0) return snapshot;
    const broadcastNextHops = new Map(snapshot.broadcastNextHops);
    const local = broadcastNextHops.get(snapshot.localPeer);
    if (local) broadcastNextHops.set(snapshot.localPeer, Object.freeze(local.filter((h) => !fast.has(h))));
    return Object.freeze({ ...snapshot, broadcastNextHops, fastdpPeers: fast });
  }

  /** Peers whose frames the kernel carries now. */
  fastdpPeers(): Set<PeerId> {
    const out = new Set<PeerId>();
    for (const p of this.paths.values()) if (p.mode === 'fastdp') out.add(p.peer);
    return out;
  }

  /** Each neighbour of the last snapshot: fastdp or sleeve, and why. */
  peerModes(): Map<PeerId, FastdpPeerMode> {
    const out = new Map<PeerId, FastdpPeerMode>();
    for (const [peer, reason] of this.ineligible) out.set(peer, { mode: 'sleeve', reason });
    for (const p of this.paths.values()) out.set(p.peer, { mode: p.mode, reason: p.reason });
    return out;
  }

  counters(): Readonly<FastdpCounters> {
    return this.stats;
  }

  /** A datagram from the heartbeat socket (`buf[0, length)`); answers asks, counts answers. */
  receive(buf: Buffer, length = buf.length): void {
    const h = decodeHeartbeat(buf, length);
    const local = this.snapshot?.localPeer;
    if (!h || local === undefined || h.to !== local) {
      this.stats.fastdp_heartbeats_bad++;
      return;
    }
    const path = this.paths.get(h.from);
    if (!path || !path.isRouted) {
      this.stats.fastdp_heartbeats_unknown_peer++;
      return;
    }
    if (h.kind === HEARTBEAT_ASK) {
      // Anyone can send this one; it is answered to the named peer's own address and changes nothing here.
      this.stats.fastdp_heartbeat_asks++;
      this.deps.sendHeartbeat(
        h.from,
        encodeHeartbeat({ kind: HEARTBEAT_ANSWER, from: local, to: h.from, seq: h.seq, macs: this.localMacs }, length),
      );
      return;
    }
    if (h.seq !== path.seq && h.seq !== path.prevSeq) {
      this.stats.fastdp_heartbeats_stale++;
      return;
    }
    // Echoes an ask of ours: from the peer, or from someone who sees our traffic to it (and could change it anyway).
    path.prevSeq = -1;
    if (h.seq === path.seq) path.seq = -1; // one answer per ask: a replay of it is stale
    this.stats.fastdp_heartbeats_answered++;
    path.remoteMacs = new Set(h.macs);
    if (path.mode === 'fastdp') this.syncMacs(path);
    const now = this.deps.clock.now();
    path.lastAnswerMs = now;
    if (path.mode === 'fastdp' || path.isSwitching) return;
    if (path.hasFailed) {
      // The path answers again: ask at the normal rate and confirm it as if new.
      path.hasFailed = false;
      path.sinceMs = now;
      path.answers = 0;
      path.reason = this.confirmingReason();
    }
    path.answers++;
    if (path.answers >= this.confirmAnswers) this.enter(path);
    else this.ask(path, now);
  }

  private ineligibleReason(s: ForwardingSnapshot, peer: PeerId, n: PeerPath): string | undefined {
    if (n.session !== null) return 'encrypted (a password, and not in --trusted-subnets)';
    if (!isIPv4(n.endpoint.address)) return 'IPv6 underlay (fastdp carries IPv4 only)';
    if (this.heartbeatBytes + HEARTBEAT_OVERHEAD_BYTES < MIN_HEARTBEAT_MTU_BYTES)
      return `overlay MTU ${this.options.mtuBytes} below ${MIN_HEARTBEAT_MTU_BYTES} (heartbeats need IPv6)`;
    if (s.unicastNextHop.get(peer) !== peer) return 'relayed (no direct path)';
    for (const [dst, via] of s.unicastNextHop) if (via === peer && dst !== peer) return 'relays for other peers';
    return undefined;
  }

  private confirmingReason(): string {
    return `confirming the path (heartbeats on UDP ${this.options.port})`;
  }

  private add(peer: PeerId, address: string): void {
    const now = this.deps.clock.now();
    const path: Path = {
      peer,
      address,
      mode: 'sleeve',
      reason: this.confirmingReason(),
      hasFailed: false,
      isRouted: false,
      isSwitching: false,
      isGone: false,
      failures: 0,
      answers: 0,
      remoteMacs: new Set(),
      programmedMacs: new Set(),
      sinceMs: now,
      lastAnswerMs: -1,
      lastAskMs: -Infinity,
      seq: -1,
      prevSeq: -1,
    };
    this.paths.set(peer, path);
    this.queue('heartbeat route', () => this.deps.kernel.addHeartbeatRoute(peer, address)).then(
      () => {
        if (path.isGone) return;
        path.isRouted = true;
        path.sinceMs = this.deps.clock.now();
        this.ask(path, path.sinceMs);
      },
      () => {
        path.reason = 'the kernel refused the heartbeat route (see the log)';
        path.hasFailed = true;
      },
    );
  }

  private drop(path: Path, reason: string): void {
    if (path.mode === 'fastdp') this.leave(path, reason, false);
    path.isGone = true;
    this.paths.delete(path.peer);
    void this.queue('heartbeat route', () => this.deps.kernel.removeHeartbeatRoute(path.peer, path.address)).catch(() => {});
  }

  private tick(): void {
    const now = this.deps.clock.now();
    if (now - this.lastMacRefreshMs >= this.macRefreshMs && !this.isReadingMacs && this.paths.size > 0) {
      this.lastMacRefreshMs = now;
      this.isReadingMacs = true;
      this.deps.kernel.localMacs().then(
        (macs) => {
          this.isReadingMacs = false;
          this.localMacs = macs.map(macNumber).filter((m) => Number.isFinite(m));
        },
        (err: unknown) => {
          this.isReadingMacs = false;
          this.stats.fastdp_kernel_errors++;
          this.deps.log.debug({ err }, 'fastdp: reading the local MACs failed');
        },
      );
    }
    for (const path of this.paths.values()) {
      if (!path.isRouted || path.isSwitching) continue;
      if (path.mode === 'fastdp') {
        if (now - path.lastAnswerMs > this.timeoutMs) {
          this.leave(
            path,
            `heartbeats stopped (none answered for ${this.timeoutMs / 1000} s); retrying every ${this.retryMs / 1000} s`,
            true,
          );
          continue;
        }
      } else if (!path.hasFailed && now - path.sinceMs > this.timeoutMs) {
        path.hasFailed = true;
        path.failures++;
        path.answers = 0;
        path.reason = `no heartbeat answered on UDP ${this.options.port} (blocked, or the peer runs --no-fastdp); retrying every ${this.retryMs / 1000} s`;
        this.deps.log.warn(
          { peer: peerLabel(path.peer), addr: path.address, reason: path.reason },
          'fastdp: path not confirmed, using the sleeve',
        );
      }
      const interval = path.hasFailed ? this.retryMs : this.heartbeatMs;
      // Half a heartbeat of slack: the interval timer and the ask times drift against each other.
      if (now - path.lastAskMs >= interval - this.heartbeatMs / 2) this.ask(path, now);
    }
  }

  private ask(path: Path, now: number): void {
    const local = this.snapshot?.localPeer;
    if (local === undefined) return;
    path.lastAskMs = now;
    // Unanswered, the previous ask's answer may still be on its way: it is taken too.
    if (path.seq >= 0) path.prevSeq = path.seq;
    path.seq = randomInt(2 ** 32);
    this.stats.fastdp_heartbeats_sent++;
    this.deps.sendHeartbeat(
      path.peer,
      encodeHeartbeat({ kind: HEARTBEAT_ASK, from: local, to: path.peer, seq: path.seq, macs: this.localMacs }, this.heartbeatBytes),
    );
  }

  /** Flood entry first, then the sleeve lets go, then the bridge forgets the TAP's MACs: no moment without a carrier. */
  private enter(path: Path): void {
    path.isSwitching = true;
    this.queue('flood entry', () => this.deps.kernel.addFlood(path.address)).then(
      () => {
        path.isSwitching = false;
        if (path.isGone) {
          void this.queue('flood entry', () => this.deps.kernel.removeFlood(path.address)).catch(() => {});
          return;
        }
        path.mode = 'fastdp';
        path.reason = `heartbeats of ${this.options.mtuBytes} bytes answered`;
        path.lastAnswerMs = this.deps.clock.now();
        this.stats.fastdp_recoveries++;
        this.stats.fastdp_peers = this.fastdpPeers().size;
        this.deps.log.info(
          { peer: peerLabel(path.peer), addr: path.address, reason: path.reason },
          path.failures > 0 ? 'fastdp: path back' : 'fastdp: path up',
        );
        this.notify();
        void this.queue('forget learned', () => this.deps.kernel.forgetLearned('sleeve')).catch(() => {});
        this.syncMacs(path);
      },
      () => {
        path.isSwitching = false;
        path.answers = 0;
        path.hasFailed = true;
        path.reason = 'the kernel refused the VXLAN entry (see the log)';
      },
    );
  }

  /** The sleeve carries again first, then the flood entry goes and the bridge forgets the VXLAN port's MACs. */
  private leave(path: Path, reason: string, isFailure: boolean): void {
    path.mode = 'sleeve';
    path.reason = reason;
    path.hasFailed = true;
    path.failures++;
    path.answers = 0;
    path.sinceMs = this.deps.clock.now();
    this.stats.fastdp_peers = this.fastdpPeers().size;
    if (isFailure) {
      this.stats.fastdp_fallbacks++;
      this.deps.log.warn({ peer: peerLabel(path.peer), addr: path.address, reason }, 'fastdp: falling back to the sleeve');
    }
    this.notify();
    const macs = [...path.programmedMacs];
    path.programmedMacs.clear();
    this.stats.fastdp_mac_entries -= macs.length;
    void this.queue('flood entry', async () => {
      for (const mac of macs) await this.deps.kernel.removeMac(macText(mac), path.address);
      await this.deps.kernel.removeFlood(path.address);
      await this.deps.kernel.forgetLearned('fastdp');
    }).catch(() => {});
  }

  /** Make the VXLAN entries pointing at a fastdp peer match the MACs it last listed. */
  private syncMacs(path: Path): void {
    const added = [...path.remoteMacs].filter((m) => !path.programmedMacs.has(m));
    const removed = [...path.programmedMacs].filter((m) => !path.remoteMacs.has(m));
    if (added.length === 0 && removed.length === 0) return;
    for (const m of added) path.programmedMacs.add(m);
    for (const m of removed) path.programmedMacs.delete(m);
    this.stats.fastdp_mac_entries += added.length - removed.length;
    void this.queue('MAC entries', async () => {
      for (const m of removed) await this.deps.kernel.removeMac(macText(m), path.address);
      for (const m of added) await this.deps.kernel.addMac(macText(m), path.address);
    }).catch(() => {});
  }

  private notify(): void {
    for (const l of this.listeners) l();
  }

  /** Run kernel work one call at a time, in order; a failure is logged and counted, and rejects the returned promise. */
  private queue(what: string, fn: () => Promise<void>): Promise<void> {
    const p = this.work.then(fn);
    this.work = p.catch((err: unknown) => {
      this.stats.fastdp_kernel_errors++;
      this.deps.log.warn({ err, reason: what }, 'fastdp: kernel programming failed');
    });
    return p;
  }
}
