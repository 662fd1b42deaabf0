/**
 * Gossip channels: the general mechanism other subsystems (IPAM, DNS, topology) use to spread state over the mesh.
 *
 * A subsystem implements `Gossiper` and gets a `GossipChannel` from `Mesh.channel(name, gossiper)`. State travels as
 * opaque bytes the subsystem encodes. `onGossip` merges must be commutative, associative and idempotent, so the order
 * and number of times updates arrive does not matter.
 *
 * Gossiper callbacks run on the control plane's event loop; they must not block (no sync I/O beyond a small write to
 * the Store), and must treat every input as untrusted (decode with limits, throw a DecodeError on garbage: the mesh
 * counts it and drops the message, the connection stays up).
 */

export interface Gossiper {
  /**
   * A complete encoding of our current state, sent periodically and to new neighbours: one message, or several that
   * are each a valid update on their own (each must fit one gossip frame, `MAX_GOSSIP_FRAME_BYTES`). Null when empty.
   */
  gossip(): Uint8Array | readonly Uint8Array[] | null;
  /**
   * Optional: what to send neighbour `peer` in place of `gossip()`, for a new neighbour (`exchange`) or a periodic
   * round (`round`): a summary it answers, say (topology-summary.ts).
   */
  gossipFor?(peer: string, kind: 'exchange' | 'round'): Uint8Array | readonly Uint8Array[] | null;
  /**
   * Merge a received update from neighbour `from` (the authenticated peer of the connection it came over; the
   * content may have been relayed from anyone). Return what in it was new to us (the delta to pass on), or null.
   */
  onGossip(update: Uint8Array, from: string): Uint8Array | null;
  /**
   * Merge a broadcast from `src`. The mesh has checked that it arrived along a shortest path from `src` (from `src`
   * itself, or from a neighbour one hop closer to it), so `src` is who sent it unless a router on that path lies.
   */
  onGossipBroadcast(src: string, update: Uint8Array): void;
  /** A message addressed to this peer alone, from `src` (checked as for broadcasts). */
  onGossipUnicast(src: string, message: Uint8Array): void;
  /**
   * True when the subsystem passes its deltas on itself (with `GossipChannel.gossipTo`, coalesced: topology-spread.ts);
   * the delta `onGossip` returns is then only counted as a merge, not relayed.
   */
  readonly spreadsItself?: boolean;
}

export interface GossipChannel {
  /** The channel name; the same name on every peer. */
  readonly name: string;
  /** Send `update` to every neighbour now; each passes on what was new to it. */
  gossip(update: Uint8Array): void;
  /** Send `update` to neighbour `peer` alone; false when it is not a ready neighbour (or the update is over the cap). */
  gossipTo(peer: string, update: Uint8Array): boolean;
  /** Deliver `update` to every reachable peer once, along the broadcast routes. */
  gossipBroadcast(update: Uint8Array): void;
  /** Deliver `message` to the peer named `dst` along unicast routes. Returns false if `dst` is unreachable. */
  gossipUnicast(dst: string, message: Uint8Array): boolean;
}
