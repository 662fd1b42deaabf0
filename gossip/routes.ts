/**
 * Routes over the topology, recomputed whole on every topology change and swapped in (like weaveworks/mesh
 * routes.go): nobody sees a half-built table.
 *
 * Only connections that BOTH ends report as established count: a connection one side still calls pending (data
 * path unconfirmed) or has already dropped is no route.
 *
 * - unicast: for every reachable peer, the neighbour to hand a message to (shortest path, BFS).
 * - broadcast: for every source S, the neighbours to pass S's broadcast to: our children in the BFS tree rooted at
 *   S. Every peer computes the same tree from the same topology, so each peer receives exactly one copy.
 *
 * Determinism: peers are indexed in name order and BFS visits neighbours in that order, so the first parent found
 * is the one with the smallest name at the shallowest depth, on every peer alike.
 *
 * Cost: one BFS per source, O(N·(N+E)) per recompute over typed arrays; printed at 100 peers by routes.test.ts.
 */
import type { PeerName } from './peer-name.js';
import type { PeerEntry } from './topology.js';

export interface Routes {
  /** Destination → next hop (a direct neighbour). Has an entry for every reachable peer except ourselves. */
  readonly unicast: ReadonlyMap<PeerName, PeerName>;
  /** Source → the neighbours we pass its broadcasts on to (possibly none). Every reachable source, ourselves too. */
  readonly broadcast: ReadonlyMap<PeerName, readonly PeerName[]>;
}

/** Routes as `computeRoutes` builds them, with what gossip needs to attribute relayed messages. */
export interface ControlRoutes extends Routes {
  /**
   * Source → the neighbours a message from that source reaches us through on some shortest path (those one hop
   * closer to it than we are; the source itself when it is a neighbour). A unicast or broadcast naming a source and
   * arriving from any other neighbour did not come the way that source's messages travel: gossip.ts drops it.
   */
  readonly upstream: ReadonlyMap<PeerName, readonly PeerName[]>;
}

export const emptyRoutes: ControlRoutes = { unicast: new Map(), broadcast: new Map(), upstream: new Map() };

/**
 * Neighbours of each peer over connections both ends report, in name order: only established ones (the data plane's
 * view, the default) or every listed one (`isEstablishedRequired` false: the control plane's view, where a connection
 * whose handshake is done carries gossip even while its UDP path is still being confirmed).
 */
export function establishedGraph(
  peers: ReadonlyMap<PeerName, PeerEntry>,
  isEstablishedRequired = true,
): { names: PeerName[]; adjacency: Int32Array[] } {
  const names = [...peers.keys()].sort();
  const index = new Map(names.map((n, i) => [n, i]));
  const established = names.map((n) => {
    const s = new Set<PeerName>();
    for (const c of peers.get(n)!.connections) if (c.isEstablished || !isEstablishedRequired) s.add(c.name);
    return s;
  });
  const adjacency = names.map((n, i) => {
    const out: number[] = [];
    for (const other of established[i]!) {
      const j = index.get(other);
      if (j !== undefined && j !== i && established[j]!.has(n)) out.push(j);
    }
    return Int32Array.from(new Set(out)).sort();
  });
  return { names, adjacency };
}

/**
 * Compute unicast and broadcast routes as seen from `local`, over established connections (data plane) or, with
 * `isEstablishedRequired` false, over every connection both ends list (control plane: gossip unicast and broadcast).
 */
export function computeRoutes(peers: ReadonlyMap<PeerName, PeerEntry>, local: PeerName, isEstablishedRequired = true): ControlRoutes {
  if (!peers.has(local)) return emptyRoutes;
  const { names, adjacency } = establishedGraph(peers, isEstablishedRequired);
  const n = names.length;
  const me = names.indexOf(local);
  const parent = new Int32Array(n);
  const queue = new Int32Array(n);

  // Unicast: BFS from us; a node's next hop is its parent's, or itself when its parent is us.
  const unicast = new Map<PeerName, PeerName>();
  const nextHop = new Int32Array(n).fill(-1);
  const reachable: number[] = [me];
  parent.fill(-1);
  parent[me] = me;
  let head = 0;
  let tail = 0;
  queue[tail++] = me;
  while (head < tail) {
    const u = queue[head++]!;
    const adj = adjacency[u]!;
    for (let k = 0; k < adj.length; k++) {
      const v = adj[k]!;
      if (parent[v] !== -1) continue;
      parent[v] = u;
      nextHop[v] = u === me ? v : nextHop[u]!;
      queue[tail++] = v;
      reachable.push(v);
      unicast.set(names[v]!, names[nextHop[v]!]!);
    }
  }

  // Broadcast: for each reachable source, our children in its BFS tree. Upstream: our neighbours one level above us.
  const broadcast = new Map<PeerName, PeerName[]>();
  const upstream = new Map<PeerName, PeerName[]>();
  const depth = new Int32Array(n);
  for (const s of reachable) {
    parent.fill(-1);
    parent[s] = s;
    depth[s] = 0;
    head = 0;
    tail = 0;
    queue[tail++] = s;
    const hops: PeerName[] = [];
    while (head < tail) {
      const u = queue[head++]!;
      const adj = adjacency[u]!;
      for (let k = 0; k < adj.length; k++) {
        const v = adj[k]!;
        if (parent[v] !== -1) continue;
        parent[v] = u;
        depth[v] = depth[u]! + 1;
        queue[tail++] = v;
        if (u === me) hops.push(names[v]!);
      }
      // Once we are dequeued our children are known; the rest of the tree does not matter to us. Every node of a
      // lower level has been dequeued before us, so their depths are final.
      if (u === me) break;
    }
    broadcast.set(names[s]!, hops);
    if (s !== me) {
      const up: PeerName[] = [];
      const adj = adjacency[me]!;
      for (let k = 0; k < adj.length; k++) {
        const v = adj[k]!;
        if (parent[v] !== -1 && depth[v] === depth[me]! - 1) up.push(names[v]!);
      }
      upstream.set(names[s]!, up);
    }
  }
  return { unicast, broadcast, upstream };
}
