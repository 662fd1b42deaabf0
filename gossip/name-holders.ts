/**
 * Which launch (uid) holds each peer name, as the topology entries gossip brings show it, and when two hold one name
 * at once. Pure: time is passed in.
 *
 * Every router starts each run with a new uid, so a name's entries change uid when its router restarts: once, from
 * the old uid to the new one, and never back (the old process is gone). Two live routers with one name (a cloned VM,
 * a copied state dir) outbid each other's entry for as long as both run (topology.ts: an owner re-publishes above any
 * newer copy of its own entry), so the name's uid goes from X to Y and back to X, each side's entries arriving over the
 * path towards its own router. That return is the evidence, when it comes over another path (a neighbour, or for a
 * broadcast its source) than the change away from X did: one neighbour flipping a name both ways proves only that
 * it says so (a member can forge entries), and is left to the topology's outbidding. From then on, for `windowMs` after the last such return, the name is held by the uid that held it first in the window, and
 * a connection from the other is refused (Weave Net refuses only a peer that claims our own name; a clone of someone
 * else's name there is left to the topology's order of versions and uids, which two live clones keep flipping).
 */
import type { PeerName } from './peer-name.js';

/** How long a collision is remembered after the last sign of it. */
export const NAME_COLLISION_WINDOW_MS = 60_000;
/** Names tracked at most (the oldest is forgotten first): the topology holds at most 4096 peers at once. */
export const MAX_TRACKED_NAMES = 8192;

interface Holding {
  uid: string;
  /** Uid changes of the name within the window, oldest first. */
  changes: Array<{ from: string; to: string; via: PeerName; atMs: number }>;
  /** While a collision is active: the uid that holds the name, and until when. */
  collision?: { holder: string; untilMs: number };
}

export class NameHolders {
  private readonly names = new Map<PeerName, Holding>();
  /** Names with a collision recorded (expired ones are dropped as they are met). */
  private readonly active = new Set<PeerName>();

  constructor(private readonly windowMs = NAME_COLLISION_WINDOW_MS) {}

  /**
   * An entry for `name` with `uid` was accepted into the topology at `nowMs`, brought by `via`. Returns the uid that holds the name when
   * this entry shows a collision that was not active before (the caller refuses the other one), else undefined.
   */
  observe(name: PeerName, uid: string, via: PeerName, nowMs: number): string | undefined {
    const h = this.names.get(name);
    if (h === undefined) {
      if (this.names.size >= MAX_TRACKED_NAMES) {
        const oldest = this.names.keys().next().value!;
        this.names.delete(oldest);
        this.active.delete(oldest);
      }
      this.names.set(name, { uid, changes: [] });
      return undefined;
    }
    if (h.uid === uid) return undefined;
    h.changes = h.changes.filter((c) => nowMs - c.atMs < this.windowMs);
    h.changes.push({ from: h.uid, to: uid, via, atMs: nowMs });
    h.uid = uid;
    const wasActive = this.holder(name, nowMs) !== undefined;
    // `uid` held the name earlier in the window, lost it over one path and has it again over another: its router is
    // alive, and so is the other.
    if (h.changes.slice(0, -1).some((c) => c.from === uid && c.via !== via)) {
      const holder = h.changes[0]!.from;
      h.collision = { holder, untilMs: nowMs + this.windowMs };
      this.active.add(name);
      return wasActive ? undefined : holder;
    }
    return undefined;
  }

  /**
   * Forget the collisions of names `isHeld` says no reachable router holds now (both left, or the holder is gone and
   * its entry with it): whoever comes next under the name is taken. Costs one call per active collision.
   */
  forgetUnless(isHeld: (name: PeerName) => boolean): void {
    for (const name of this.active) {
      if (isHeld(name)) continue;
      this.active.delete(name);
      this.names.delete(name);
    }
  }

  /** The uid that holds `name` while a collision is active, else undefined (any uid may connect). */
  holder(name: PeerName, nowMs: number): string | undefined {
    const h = this.names.get(name);
    const c = h?.collision;
    if (c === undefined) return undefined;
    if (nowMs < c.untilMs) return c.holder;
    delete h!.collision;
    this.active.delete(name);
    return undefined;
  }
}
