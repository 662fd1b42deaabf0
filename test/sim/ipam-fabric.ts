/**
 * An in-memory gossip fabric for IPAM simulations: N gossipers, each with a `GossipChannel`, over a FakeClock, with
 * latency, loss and partitions. It stands in for the mesh's gossip (which the IPAM code must not depend on).
 *
 * Model: peers in the same partition group are all neighbours (the real mesh routes around; reachability is what
 * matters to IPAM). `gossip` and `gossipBroadcast` reach every peer in the sender's group; `gossipUnicast` reaches
 * one, and returns false when it is in another group or absent. Every delivery takes `latencyMs` (plus jitter), may
 * be lost with probability `lossRate` (unicasts too: the allocator must survive lost requests and replies), and is
 * dropped if a partition separated the two peers while it was in flight. Every `gossipIntervalMs` each peer's
 * `gossip()` goes to its group, like the mesh's periodic rounds. A message arriving for a name goes to whichever
 * gossiper holds that name then (a restarted peer gets messages sent to its previous life).
 */
import type { GossipChannel, Gossiper } from '../../gossip/channel.js';
import type { FakeClock, Timer } from '../../runtime/clock.js';
import type { Random } from '../../runtime/random.js';

export interface FabricOptions {
  /** @default 2 */
  latencyMs?: number;
  /** Extra random delay 0..jitterMs. @default 3 */
  jitterMs?: number;
  /** @default 0 */
  lossRate?: number;
  /** @default 200 */
  gossipIntervalMs?: number;
}

export class IpamFabric {
  private readonly nodes = new Map<string, Gossiper>();
  private group = new Map<string, number>();
  private readonly latencyMs: number;
  private readonly jitterMs: number;
  lossRate: number;
  private readonly timer: Timer;
  /** Messages sent, delivered and lost, by kind. */
  readonly stats = { sent: 0, delivered: 0, lost: 0, cut: 0 };

  constructor(
    private readonly clock: FakeClock,
    private readonly random: Random,
    options: FabricOptions = {},
  ) {
    this.latencyMs = options.latencyMs ?? 2;
    this.jitterMs = options.jitterMs ?? 3;
    this.lossRate = options.lossRate ?? 0;
    this.timer = clock.setInterval(() => this.gossipRound(), options.gossipIntervalMs ?? 200);
  }

  /** Plug a gossiper in under `name` (replacing a previous one of that name) and return its channel. */
  add(name: string, gossiper: Gossiper): GossipChannel {
    this.nodes.set(name, gossiper);
    if (!this.group.has(name)) this.group.set(name, 0);
    return {
      name: 'ipam',
      gossip: (update) => this.toGroup(name, update, 'gossip'),
      gossipBroadcast: (update) => this.toGroup(name, update, 'broadcast'),
      gossipTo: () => false, // the allocator gossips to every neighbour, never to one
      gossipUnicast: (dst, message) => {
        if (!this.canReach(name, dst)) return false;
        this.send(name, dst, message, 'unicast');
        return true;
      },
    };
  }

  /** Take `name` off the fabric (crashed or stopping); messages to it are dropped until it is added again. */
  remove(name: string): void {
    this.nodes.delete(name);
  }

  /** Split into groups; every peer not listed stays in group 0 with the first list. */
  partition(groups: string[][]): void {
    const next = new Map<string, number>();
    for (const name of this.group.keys()) next.set(name, 0);
    groups.forEach((g, i) => g.forEach((n) => next.set(n, i)));
    this.group = next;
  }

  /** Everyone in one group again. */
  heal(): void {
    for (const name of this.group.keys()) this.group.set(name, 0);
  }

  /** Whether `a` can send to `b` now. */
  canReach(a: string, b: string): boolean {
    return a !== b && this.nodes.has(a) && this.nodes.has(b) && this.group.get(a) === this.group.get(b);
  }

  /** The peers `name` can reach now. */
  reachableFrom(name: string): string[] {
    return [...this.nodes.keys()].filter((n) => this.canReach(name, n));
  }

  /** Stop the periodic rounds. */
  close(): void {
    this.timer.cancel();
  }

  private gossipRound(): void {
    for (const [name, g] of [...this.nodes]) {
      const update = g.gossip();
      if (update) for (const u of update instanceof Uint8Array ? [update] : update) this.toGroup(name, u, 'gossip');
    }
  }

  private toGroup(src: string, update: Uint8Array, how: 'gossip' | 'broadcast'): void {
    for (const dst of this.nodes.keys()) if (this.canReach(src, dst)) this.send(src, dst, update, how);
  }

  private send(src: string, dst: string, bytes: Uint8Array, how: 'gossip' | 'broadcast' | 'unicast'): void {
    this.stats.sent++;
    if (this.random.next() < this.lossRate) {
      this.stats.lost++;
      return;
    }
    const copy = Uint8Array.from(bytes);
    const delay = this.latencyMs + this.random.next() * this.jitterMs;
    this.clock.setTimeout(() => {
      const g = this.nodes.get(dst);
      if (!g || !this.canReach(src, dst)) {
        this.stats.cut++;
        return;
      }
      this.stats.delivered++;
      if (how === 'gossip') g.onGossip(copy, src);
      else if (how === 'broadcast') g.onGossipBroadcast(src, copy);
      else g.onGossipUnicast(src, copy);
    }, delay);
  }
}

/** Let promise continuations run (they queue behind timers' synchronous work). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}

/** Advance `clock` by `ms` in `stepMs` slices, letting promise continuations run after each. */
export async function advance(clock: FakeClock, ms: number, stepMs = 1): Promise<void> {
  for (let t = 0; t < ms; t += stepMs) {
    clock.advance(Math.min(stepMs, ms - t));
    await settle();
  }
}
