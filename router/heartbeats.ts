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
 */
import type { Underlay } from './underlay.js';
import type { PeerHealth, PeerId } from './datapath.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import { MessageType } from './sleeve-format.js';
import { peerLabel, type Neighbour, type SleeveView } from './sleeve-neighbour.js';
import type { SleeveSend } from './sleeve-send.js';

export interface HeartbeatsDeps {
  underlay: Underlay;
  clock: Clock;
  log: Logger;
  send: SleeveSend;
  /** Housekeeping after each round, with the time. */
  onTick: (now: number) => void;
}

export interface HeartbeatsOptions {
  /** Interval between heartbeats to each neighbour (and between health decisions). @default 1000 */
  heartbeatMs?: number;
  /**
   * A neighbour is established while both its last heartbeat (its packets reach us) and its last ack of ours (ours
   * reach it) are at most this old. @default 5000 (five heartbeats: one lost datagram does not flap the state)
   */
  heartbeatTimeoutMs?: number;
}

export class Heartbeats {
  /** The current snapshot (set by `Sleeve.apply`). */
  view: SleeveView | null = null;
  private readonly underlay: Underlay;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly send: SleeveSend;
  private readonly onTick: (now: number) => void;
  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly listeners: Array<(peer: PeerId, health: PeerHealth) => void> = [];
  private timer: Timer | null = null;

  constructor(deps: HeartbeatsDeps, options: HeartbeatsOptions = {}) {
    this.underlay = deps.underlay;
    this.clock = deps.clock;
    this.log = deps.log;
    this.send = deps.send;
    this.onTick = deps.onTick;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5000;
  }

  /** Start the timer and greet the neighbours of the current snapshot. */
  start(): void {
    this.timer ??= this.clock.setInterval(this.onTimer, this.heartbeatMs);
    const view = this.view;
    if (view !== null) this.greet(view.neighbours);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** Heartbeat and MTU-probe `neighbours` now (new ones, so they need not wait for the timer). */
  greet(neighbours: readonly Neighbour[]): void {
    if (neighbours.length === 0) return;
    const now = this.clock.now();
    for (const n of neighbours) {
      this.send.sendControl(n, MessageType.Heartbeat);
      this.probe(n, now);
    }
    this.underlay.flush();
  }

  /**
   * Path MTU upkeep for `n` (./path-mtu.ts): end a round whose time is up, send the next round's probes, size the
   * datagrams for what was found, and log a change.
   */
  private probe(n: Neighbour, now: number): void {
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
    for (const n of view.neighbours) {
      const isEstablished =
        n.lastAckMs >= 0 &&
        n.lastHeartbeatMs >= 0 &&
        now - n.lastAckMs <= this.heartbeatTimeoutMs &&
        now - n.lastHeartbeatMs <= this.heartbeatTimeoutMs;
      if (isEstablished !== n.isEstablished) {
        n.isEstablished = isEstablished;
        if (!isEstablished) n.pathMtu.suspect(now); // packets vanish: the path may have narrowed
        this.log.info(
          { peer: peerLabel(n.peer), addr: `${n.endpoint.address}:${n.endpoint.port}` },
          isEstablished ? 'sleeve established' : 'sleeve lost',
        );
        this.notify(n);
      }
      this.send.sendControl(n, MessageType.Heartbeat);
      this.probe(n, now);
    }
    this.underlay.flush();
    this.onTick(now);
  };
}

export function healthOf(n: Neighbour): PeerHealth {
  return {
    isEstablished: n.isEstablished,
    lastHeardMs: n.lastHeardMs,
    pathMtuBytes: n.mtuBytes,
    isPathMtuConfirmed: n.pathMtu.isConfirmed,
  };
}
