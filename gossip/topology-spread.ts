/**
 * Spreading topology changes to neighbours, coalesced: what keeps a mesh forming or healing from flooding itself.
 *
 * Each change to the topology (our own entry, or entries new to us from a neighbour) must reach every neighbour. Sent
 * one message per change, a mesh of N routers forming its full mesh costs about N^4 messages (N^2 connections, each
 * changing two entries; each change relayed once by every router to every neighbour): 54,000 messages and 50 MiB at
 * 16 peers in the simulation (test/sim/mesh-scale.test.ts), and at 32 the routers drown in it.
 *
 * So changes are queued by name, per neighbour, and go out together: the first change after a quiet spell goes at
 * once (a microtask later, so one turn's changes share a message), later ones wait until `windowMs` after the last
 * send. A message carries the entry as it is when it goes out, so ten versions of one entry queued in a window cost
 * one row. A neighbour is not sent an entry it sent us at the version we hold (it has it), which is what "to every
 * neighbour but the one it came from" becomes once updates are merged, nor another router's entry that lists it as
 * connected (the owner sends it that entry itself: `hasItFromOwner`). A new neighbour gets the complete state from
 * the full exchange instead (gossip.ts), so its queue starts empty.
 *
 * Cost: a router sends at most one topology message per neighbour per window however fast changes arrive, and
 * each row at most once per neighbour per window.
 */
import type { Clock, Timer } from '../runtime/clock.js';
import type { PeerName } from './peer-name.js';
import { compareEntries, encodeTopologyChunks, type PeerEntry } from './topology.js';

/**
 * Topology messages to one neighbour go out at most once per this many ms (the first after a pause at once), times
 * one more for every `TOPOLOGY_SPREAD_NEIGHBOURS_PER_STEP` neighbours, up to `TOPOLOGY_SPREAD_MAX_WINDOW_MS`: a
 * router with many neighbours sends fewer, larger messages (each entry holds N connections and changes N times while
 * a mesh forms, so what a window costs grows as N^3).
 */
export const TOPOLOGY_SPREAD_WINDOW_MS = 50;
export const TOPOLOGY_SPREAD_NEIGHBOURS_PER_STEP = 16;
export const TOPOLOGY_SPREAD_MAX_WINDOW_MS = 1000;

export interface TopologySpreadDeps {
  clock: Clock;
  /** Our own name: our entry goes to every neighbour. */
  localName: PeerName;
  /** Neighbours that take gossip now (ready connections). */
  neighbours(): Iterable<PeerName>;
  /** The entry for `name` as the topology holds it now (undefined once gone). */
  entry(name: PeerName): PeerEntry | undefined;
  /** Send one encoded update to neighbour `peer`; false when it is no longer there. */
  send(peer: PeerName, update: Uint8Array): boolean;
}

/** Each entry's connected names, built once per entry object (entries are never changed in place). */
const connectedNames = new WeakMap<PeerEntry, Set<PeerName>>();

export class TopologySpread {
  /** Per neighbour, the names whose entries it is still to be sent. */
  private readonly pending = new Map<PeerName, Set<PeerName>>();
  /** Per neighbour, the queued names it asked for (its summary said it lacks them): sent even if their owner lists it. */
  private readonly asked = new Map<PeerName, Set<PeerName>>();
  private timer: Timer | null = null;
  private isFlushQueued = false;
  private lastFlushAt = -Infinity;
  private neighbourCount = 0;
  private isStopped = false;

  constructor(
    private readonly deps: TopologySpreadDeps,
    private readonly windowMs = TOPOLOGY_SPREAD_WINDOW_MS,
  ) {}

  /** Entries `names` changed here: to every neighbour except `except` (the one they came from, if any). */
  queue(names: Iterable<PeerName>, except?: PeerName): void {
    if (this.isStopped) return;
    const list = [...names];
    if (list.length === 0) return;
    let count = 0;
    for (const n of this.deps.neighbours()) {
      count++;
      if (n === except) continue;
      let set = this.pending.get(n);
      if (!set) this.pending.set(n, (set = new Set()));
      for (const name of list) set.add(name);
    }
    this.neighbourCount = count;
    this.schedule();
  }

  /** Entries `names` to neighbour `peer` alone (it lacks them: its summary said so). */
  queueTo(peer: PeerName, names: Iterable<PeerName>): void {
    if (this.isStopped) return;
    const list = [...names];
    if (list.length === 0) return;
    let set = this.pending.get(peer);
    if (!set) this.pending.set(peer, (set = new Set()));
    let asked = this.asked.get(peer);
    if (!asked) this.asked.set(peer, (asked = new Set()));
    for (const name of list) {
      set.add(name);
      asked.add(name);
    }
    this.schedule();
  }

  /** Neighbour `from` sent us `entries`: it holds them, so nothing it already has at our version is queued for it. */
  heard(from: PeerName, entries: readonly PeerEntry[]): void {
    const set = this.pending.get(from);
    if (!set) return;
    for (const e of entries) {
      if (!set.has(e.name)) continue;
      const ours = this.deps.entry(e.name);
      if (ours === undefined || compareEntries(ours, e) <= 0) set.delete(e.name);
    }
    if (set.size === 0) this.pending.delete(from);
  }

  /** A neighbour gone: nothing queued for it. */
  forget(peer: PeerName): void {
    this.pending.delete(peer);
    this.asked.delete(peer);
  }

  stop(): void {
    this.isStopped = true;
    this.timer?.cancel();
    this.timer = null;
    this.pending.clear();
    this.asked.clear();
  }

  private schedule(): void {
    if (this.timer !== null || this.isFlushQueued) return;
    const steps = Math.max(1, Math.ceil(this.neighbourCount / TOPOLOGY_SPREAD_NEIGHBOURS_PER_STEP));
    const windowMs = Math.min(TOPOLOGY_SPREAD_MAX_WINDOW_MS, this.windowMs * steps);
    const wait = this.lastFlushAt + windowMs - this.deps.clock.now();
    if (wait <= 0) {
      this.isFlushQueued = true;
      queueMicrotask(() => {
        this.isFlushQueued = false;
        this.flush();
      });
      return;
    }
    this.timer = this.deps.clock.setTimeout(() => {
      this.timer = null;
      this.flush();
    }, wait);
  }

  /**
   * Another router's entry that lists `peer` as an established connection: its owner sends every change of it to
   * `peer` itself (as we send ours to every neighbour), so relaying it there would only duplicate. In a full mesh this
   * is every relay: each change then costs one message per neighbour of its owner, not one per pair of routers.
   * Established, not merely listed: a connection whose path died stays open (and listed) until its heartbeats time
   * out, and what the owner sends over it is lost; the data path calls it pending within a second or five (the
   * owner's entry changes then, and that is relayed). A neighbour that still lacks an entry says so in its next
   * summary, and answers to summaries are never suppressed.
   */
  private hasItFromOwner(e: PeerEntry, peer: PeerName): boolean {
    if (e.name === this.deps.localName || e.name === peer) return false;
    let names = connectedNames.get(e);
    if (names === undefined) connectedNames.set(e, (names = new Set(e.connections.filter((c) => c.isEstablished).map((c) => c.name))));
    return names.has(peer);
  }

  private flush(): void {
    if (this.isStopped || this.pending.size === 0) return;
    this.lastFlushAt = this.deps.clock.now();
    const batches = [...this.pending];
    const asked = new Map(this.asked);
    this.pending.clear();
    this.asked.clear();
    for (const [peer, names] of batches) {
      const entries: PeerEntry[] = [];
      const askedNames = asked.get(peer);
      for (const name of names) {
        const e = this.deps.entry(name);
        if (e !== undefined && (askedNames?.has(name) === true || !this.hasItFromOwner(e, peer))) entries.push(e);
      }
      if (entries.length === 0) continue;
      for (const update of encodeTopologyChunks(entries)) if (!this.deps.send(peer, update)) break;
    }
  }
}
