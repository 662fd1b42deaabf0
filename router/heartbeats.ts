/**
 * Heartbeats and health: whether each neighbour's UDP path works, in both directions.
 *
 * Pipeline (a repeating timer, every `heartbeatMs`; control-plane side of the loop, never inside a batch):
 *   per neighbour: decide `isEstablished` from the times the receive side noted (its last heartbeat: its packets
 *     reach us; its last ack of ours: ours reach it) -> on a transition, log it and tell the listeners ->
 *     send it a heartbeat; path MTU upkeep (./path-mtu.ts: end a probe round, send the next, resize its datagrams);
 *   then flush the underlay, and let the periodic housekeeping run (`onTick`: MAC expiry, idle reassembly buffers).
 * The receive side (./sleeve-receive.ts) answers heartbeats with acks at once and notes the times; nothing here
 * runs per packet.
 *
 * Fast detection while traffic flows (in the spirit of wireguard-go's "new handshake when data goes unanswered"
 * timers): the send side calls `noteAwaiting` when data leaves for a neighbour we have heard nothing from since the
 * last data we sent it (once per stretch; the receive side clears the mark on any datagram from it). A single
 * one-shot check timer, armed only then and shared by all neighbours (nothing runs at idle), probes such a neighbour
 * with a heartbeat once the data has gone unanswered for the deadline (`probeMs`, or four round trips if longer),
 * and declares the path lost after `probeMisses` probes in a row go unacked, each within the deadline: about
 * `(probeMisses + 1) * probeMs` after the first unanswered datagram (0.8 s by default) instead of the 5 s timeout.
 * A path is lost that way only when nothing at all came from the neighbour for a heartbeat period as well (a peer
 * whose heartbeats still arrive is alive, only too busy to answer: a flood of our data filling its socket).
 * One lost heartbeat never moves traffic (it takes `probeMisses` in a row), a timer that fired late (our own stall,
 * the answers still unread) counts no miss, and a lost path is trusted again only after acks newer than
 * `recoverMs` past the loss, so a flapping link does not pull traffic back and forth.
 *
 * Idle heartbeats (issue 19: idle cost that does not grow with connections): an established path that carried no
 * data for `idleAfterMs` is heartbeated every `idleHeartbeatMs` instead of every `heartbeatMs`, when the neighbour's
 * own heartbeats say it knows the rule (their body carries its idle interval; routers before it send none and get a
 * heartbeat a second, as they expect). A heartbeat left unacked is sent again every `heartbeatMs`, and the path is
 * lost when one stays unacked for `heartbeatTimeoutMs`: at idle a dead path is found within `idleHeartbeatMs +
 * heartbeatTimeoutMs` (15 s by default; the control connection, and data's fast detection, are unchanged), and one
 * lost datagram still moves nothing. Its heartbeats are expected up to its interval plus the timeout apart. An ack
 * answers a heartbeat both ways (ours reached it, its reached us), so the slower side's heartbeats are never needed
 * for the decision while ours are answered. Data restarts the heartbeat a second at the next round (loss reports
 * ride on acks), and the first unanswered datagram probes at once as before.
 */
import type { Underlay } from './underlay.js';
import type { PeerHealth, PeerId } from './datapath.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { StallWatch } from '../runtime/stall-watch.js';
import { MAX_IDLE_HEARTBEAT_MS, MessageType } from './sleeve-format.js';
import { peerLabel, type Neighbour, type SleeveView } from './sleeve-neighbour.js';
import type { SleeveSend } from './sleeve-send.js';
import type { SleeveCounters } from './sleeve-counters.js';

export interface HeartbeatsDeps {
  underlay: Underlay;
  clock: Clock;
  log: Logger;
  send: SleeveSend;
  counters: SleeveCounters;
  /** Housekeeping after each round, with the time. */
  onTick: (now: number) => void;
}

export interface HeartbeatsOptions {
  /** Interval between heartbeats to each neighbour (and between health decisions). @default 1000 */
  heartbeatMs?: number;
  /**
   * A neighbour is established while both its last heartbeat (its packets reach us) and its last ack of ours (ours
   * reach it) are at most this old, not counting our own event-loop stalls since (nor is a path lost right after
   * one). @default 5000 (five heartbeats: one lost datagram does not flap the state)
   */
  heartbeatTimeoutMs?: number;
  /**
   * While traffic flows: how long data may go unanswered before the neighbour is probed, and how long a probe may go
   * unacked before it counts as missed (four smoothed round trips if longer, never more than `heartbeatMs`).
   * @default 200
   */
  probeMs?: number;
  /** Probes in a row without an ack that declare the path lost. @default 3 */
  probeMisses?: number;
  /** After a loss, acks must keep coming for this long before the path is trusted again (hysteresis). @default 2000 */
  recoverMs?: number;
  /**
   * Interval between heartbeats to an established neighbour that knows idle heartbeats, once no data went either way
   * for `idleAfterMs`; 0 or <= `heartbeatMs`: never slower than `heartbeatMs`. @default 10000
   */
  idleHeartbeatMs?: number;
  /** No data either way for this long makes a path idle. @default 5000 */
  idleAfterMs?: number;
}

export class Heartbeats {
  /** The current snapshot (set by `Sleeve.apply`). */
  view: SleeveView | null = null;
  private readonly underlay: Underlay;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly send: SleeveSend;
  private readonly stats: SleeveCounters;
  private readonly onTick: (now: number) => void;
  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly probeMs: number;
  private readonly probeMisses: number;
  private readonly recoverMs: number;
  /** 0 when idle heartbeats are off. */
  readonly idleHeartbeatMs: number;
  private readonly idleAfterMs: number;
  /** Our own stalls, seen as lateness of the check timer: no probe counts as missed right after one. */
  readonly stalls: StallWatch;
  private readonly listeners: Array<(peer: PeerId, health: PeerHealth) => void> = [];
  private timer: Timer | null = null;
  /** The fast check (armed only while some neighbour awaits an answer) and when it is due. */
  private checkTimer: Timer | null = null;
  private checkDueMs = 0;
  /** When the next heartbeat round is due (its lateness is a stall of ours). */
  private tickDueMs = 0;

  constructor(deps: HeartbeatsDeps, options: HeartbeatsOptions = {}) {
    this.underlay = deps.underlay;
    this.clock = deps.clock;
    this.log = deps.log;
    this.send = deps.send;
    this.stats = deps.counters;
    this.onTick = deps.onTick;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5000;
    this.probeMs = options.probeMs ?? 200;
    this.probeMisses = options.probeMisses ?? 3;
    this.recoverMs = options.recoverMs ?? 2000;
    const idle = options.idleHeartbeatMs ?? 10_000;
    this.idleHeartbeatMs = idle > this.heartbeatMs ? Math.min(idle, MAX_IDLE_HEARTBEAT_MS) : 0;
    this.idleAfterMs = options.idleAfterMs ?? 5000;
    this.send.idleHeartbeatMs = this.idleHeartbeatMs;
    // Lateness beyond half the check period is a stall of ours; the grace lets the queued answers be read.
    this.stalls = new StallWatch({ thresholdMs: this.probeMs / 2, graceMs: this.probeMs });
  }

  /** Start the timer and greet the neighbours of the current snapshot. */
  start(): void {
    if (this.timer === null) {
      this.tickDueMs = this.clock.now() + this.heartbeatMs;
      this.timer = this.clock.setInterval(this.onTimer, this.heartbeatMs);
    }
    const view = this.view;
    if (view !== null) {
      for (const n of view.neighbours) n.isAwaiting = false; // data sent while stopped armed nothing
      this.greet(view.neighbours);
    }
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
    this.checkTimer?.cancel();
    this.checkTimer = null;
  }

  /**
   * Data left for `n` and we have heard nothing from it since the last data we sent it: watch for an answer. Called
   * by the send side once per such stretch (not per datagram); arms the shared check timer if it is not armed.
   */
  readonly noteAwaiting = (n: Neighbour): void => {
    n.isAwaiting = true;
    const now = this.clock.now();
    n.awaitingSinceMs = now;
    // A new stretch: we heard from it since the last one, so earlier probes count no more (a busy peer answering
    // between floods of our data must not collect misses across stretches).
    n.probeSentMs = -1;
    n.probeMisses = 0;
    if (this.checkTimer === null && this.timer !== null) this.armCheck(now);
  };

  private armCheck(now: number): void {
    // Half the deadline between checks: a probe leaves at most half a deadline late.
    const delayMs = this.probeMs / 2;
    this.checkDueMs = now + delayMs;
    this.checkTimer = this.clock.setTimeout(this.onCheck, delayMs);
  }

  /** How long `n` may leave data or a probe unanswered: `probeMs`, or four round trips on a slow path. */
  private deadlineOf(n: Neighbour): number {
    return Math.min(this.heartbeatMs, Math.max(this.probeMs, 4 * n.smoothedRttMs));
  }

  private readonly onCheck = (): void => {
    this.checkTimer = null;
    const view = this.view;
    if (view === null || !this.send.isRunning || this.timer === null) return;
    const now = this.clock.now();
    if (this.stalls.fired(now, this.checkDueMs) > this.probeMs / 2) this.stats.own_stalls++;
    const isInGrace = this.stalls.isInGrace(now);
    let isWatching = false;
    let hasSent = false;
    for (const n of view.neighbours) {
      if (!n.isAwaiting || !n.isEstablished) {
        // Answered, or not in use (a path not established carries no data; the heartbeat timer decides it).
        n.isAwaiting = false;
        n.probeSentMs = -1;
        n.probeMisses = 0;
        continue;
      }
      isWatching = true;
      const deadlineMs = this.deadlineOf(n);
      if (n.probeSentMs < 0) {
        if (now - n.awaitingSinceMs >= deadlineMs) hasSent = this.probe(n, now);
        continue;
      }
      if (now - n.probeSentMs < deadlineMs) continue;
      // A probe went unanswered. Right after a stall of ours its ack may be unread in the socket: ask again, count
      // nothing.
      // Lost only after a whole heartbeat period of silence too: a peer whose own heartbeats still arrive is alive,
      // only too busy to answer every probe (a flood of our data filling its socket), and moving its traffic to
      // another path would not help. A one-way failure is then left to the heartbeat timeout.
      if (!isInGrace && ++n.probeMisses >= this.probeMisses && now - n.lastHeardMs >= this.heartbeatMs) {
        this.stats.paths_lost_probes++;
        this.lose(n, now, `no answer to ${n.probeMisses} probes in ${Math.round(now - n.awaitingSinceMs)}ms while sending`);
        continue;
      }
      hasSent = this.probe(n, now);
    }
    if (hasSent) this.underlay.flush();
    if (isWatching) this.armCheck(now);
  };

  private probe(n: Neighbour, now: number): true {
    n.probeSentMs = now;
    this.send.sendControl(n, MessageType.Heartbeat);
    this.stats.probes_out++;
    return true;
  }

  /** Declare `n`'s path lost (it carried traffic; routes move off it) and tell the listeners. */
  private lose(n: Neighbour, now: number, reason: string): void {
    n.isEstablished = false;
    n.lostAtMs = now;
    n.isAwaiting = false;
    n.probeSentMs = -1;
    n.probeMisses = 0;
    n.pathMtu.suspect(now); // packets vanish: the path may have narrowed
    this.log.info({ peer: peerLabel(n.peer), addr: `${n.endpoint.address}:${n.endpoint.port}`, reason }, 'sleeve lost');
    this.notify(n);
  }

  /** Heartbeat and MTU-probe `neighbours` now (new ones, so they need not wait for the timer). */
  greet(neighbours: readonly Neighbour[]): void {
    if (neighbours.length === 0) return;
    const now = this.clock.now();
    for (const n of neighbours) {
      this.send.sendControl(n, MessageType.Heartbeat);
      this.probeMtu(n, now);
    }
    this.underlay.flush();
  }

  /**
   * Path MTU upkeep for `n` (./path-mtu.ts): end a round whose time is up, send the next round's probes, size the
   * datagrams for what was found, and log a change.
   */
  private probeMtu(n: Neighbour, now: number): void {
    const path = n.pathMtu;
    const before = path.mtuBytes;
    const round = path.poll(now);
    if (path.mtuBytes !== before) this.send.countPathMtuChange();
    if (round !== null) for (const size of round.sizes) this.send.sendProbe(n, round.id, size);
    const used = n.mtuBytes;
    if (n.takePathMtu() && n.mtuBytes !== used) {
      this.log.info(
        { peer: peerLabel(n.peer), addr: `${n.endpoint.address}:${n.endpoint.port}`, mtu: n.mtuBytes, was: used },
        'path MTU changed',
      );
    }
  }

  onHealthChange(listener: (peer: PeerId, health: PeerHealth) => void): void {
    this.listeners.push(listener);
  }

  /** Tell the listeners that `n`'s health changed. */
  notify(n: Neighbour): void {
    const health = healthOf(n);
    for (const l of this.listeners) {
      try {
        l(n.peer, health);
      } catch (err) {
        this.log.error({ err, peer: peerLabel(n.peer) }, 'health listener threw');
      }
    }
  }

  private readonly onTimer = (): void => {
    const view = this.view;
    if (view === null || !this.send.isRunning) return;
    const now = this.clock.now();
    if (this.tickDueMs > 0 && this.stalls.fired(now, this.tickDueMs) > this.probeMs / 2) this.stats.own_stalls++;
    this.tickDueMs = now + this.heartbeatMs;
    // Right after a stall of ours the heartbeats and acks that came meanwhile are unread: declare nothing lost now.
    const isInGrace = this.stalls.isInGrace(now);
    const timeoutMs = this.heartbeatTimeoutMs;
    for (const n of view.neighbours) {
      // After a loss, only acks and heartbeats newer than the loss plus the hold count (hysteresis).
      const since = n.lostAtMs < 0 ? -1 : n.lostAtMs + this.recoverMs;
      // A recent ack; or, while we heartbeat it slowly (and for a timeout after: its acks are a period old when data
      // makes us heartbeat every second again), no heartbeat of ours unanswered for too long: the timeout less a
      // period, as the first unanswered heartbeat leaves up to a period after the last ack.
      const isAckFresh =
        now - n.lastAckMs <= timeoutMs + this.stalls.stalledSince(n.lastAckMs) ||
        (n.idleBeatAtMs >= 0 &&
          now - n.idleBeatAtMs <= timeoutMs &&
          (n.unackedSinceMs < 0 || now - n.unackedSinceMs <= timeoutMs - this.heartbeatMs + this.stalls.stalledSince(n.unackedSinceMs)));
      const isEstablished =
        n.lastAckMs > since &&
        n.lastHeartbeatMs > since &&
        n.lastAckMs >= 0 &&
        n.lastHeartbeatMs >= 0 &&
        isAckFresh &&
        now - n.lastHeartbeatMs <= timeoutMs + n.peerIdleHeartbeatMs + this.stalls.stalledSince(n.lastHeartbeatMs);
      if (isEstablished !== n.isEstablished && (isEstablished || !isInGrace)) {
        if (isEstablished) {
          n.isEstablished = true;
          n.lastDataMs = now; // idle heartbeats only after idleAfterMs established without data
          n.dataSeen = n.dataDatagrams;
          this.log.info({ peer: peerLabel(n.peer), addr: `${n.endpoint.address}:${n.endpoint.port}` }, 'sleeve established');
          this.notify(n);
        } else {
          this.stats.paths_lost_timeout++;
          this.lose(n, now, `no heartbeat or ack for ${this.heartbeatTimeoutMs}ms`);
        }
      }
      const data = n.dataDatagrams;
      if (data !== n.dataSeen) {
        n.dataSeen = data;
        n.lastDataMs = now;
      }
      const isIdle =
        this.idleHeartbeatMs > 0 &&
        n.isEstablished &&
        n.peerIdleHeartbeatMs > 0 &&
        (n.lastDataMs < 0 || now - n.lastDataMs >= this.idleAfterMs);
      if (isIdle) n.idleBeatAtMs = now;
      // Idle: a heartbeat every idleHeartbeatMs (half a period early rather than a period late), or again each
      // period while one is unanswered.
      if (!isIdle || n.unackedSinceMs >= 0 || now - n.heartbeatOutMs >= this.idleHeartbeatMs - this.heartbeatMs / 2) {
        this.send.sendControl(n, MessageType.Heartbeat);
      }
      this.probeMtu(n, now);
    }
    this.underlay.flush();
    this.onTick(now);
  };
}

export function healthOf(n: Neighbour): PeerHealth {
  return {
    isEstablished: n.isEstablished,
    lastHeardMs: n.lastHeardMs,
    endpoint: n.endpoint,
    traffic: {
      datagramsIn: n.datagramsIn,
      bytesIn: n.bytesIn,
      datagramsOut: n.datagramsOut,
      bytesOut: n.bytesOut,
      dropsIn: { source: n.dropsInSource, auth: n.dropsInAuth, record: n.dropsInRecord, lost: n.lostIn },
      dropsOut: { seal: n.dropsOutSeal, too_big: n.dropsOutTooBig, lost: n.lostOut },
    },
    rttMs: n.smoothedRttMs,
    pathMtuBytes: n.mtuBytes,
    isPathMtuConfirmed: n.pathMtu.isConfirmed,
  };
}

/**
 * An ack from `n` arrived at `now`: the first one after our heartbeat times the round trip (acks carry nothing that
 * pairs them with a heartbeat, so a late ack of an earlier one reads long; heartbeats are a second apart and a round
 * trip is far shorter, so it is rare and the smoothing damps it). Allocates nothing.
 */
export function noteAck(n: Neighbour, now: number): void {
  const sent = n.heartbeatSentMs;
  if (sent < 0 || now < sent) return;
  n.heartbeatSentMs = -1;
  const rtt = now - sent;
  n.rttMs = rtt;
  n.smoothedRttMs = n.smoothedRttMs < 0 ? rtt : n.smoothedRttMs + (rtt - n.smoothedRttMs) / 8;
}
