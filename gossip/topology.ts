/**
 * The topology: every peer's own account of its connections, spread by gossip (it is the "topology" channel).
 *
 * Each peer owns one entry and is the only one that changes it, bumping `version` each time. Merging two views
 * keeps, per peer name, the greater entry in a total order (version, then uid, then content), so merge is
 * commutative, associative and idempotent whatever order updates arrive in. Two refinements need the local peer:
 * - A peer that restarts gets a new uid and starts again at version 1, so its old entry would win. When we see an
 *   entry for our own name that beats ours, we jump our version past it (as Weave does), and ours wins again.
 * - Peers not reachable from us over connections (as each peer reports them, either direction) are dropped: they
 *   left, or we are partitioned from them. They come back with their next update.
 *
 * Wire format (JSON, decoded with explicit limits; arrays to keep 100-peer states small):
 *
 *     [[name, nickname, uid, version, [[peerName, address, flags], ...]], ...]
 *     flags: bit 0 isOutbound, bit 1 isEstablished
 */
import { DecodeError } from './decode-error.js';
import { isPeerName, type PeerName } from './peer-name.js';

export interface ConnectionEntry {
  /** The peer at the other end. */
  name: PeerName;
  /** The remote "host:port" as the owner sees it (its listen address when the owner dialled). */
  address: string;
  isOutbound: boolean;
  /** The owner counts the connection usable (handshake done and, when required, the data path confirmed). */
  isEstablished: boolean;
}

export interface PeerEntry {
  name: PeerName;
  nickname: string;
  /** Per-launch uid, decimal. */
  uid: string;
  /** Bumped by the owner on every change. */
  version: number;
  /** Sorted by (name, address): one canonical form per content. */
  connections: ConnectionEntry[];
}

/** Limits on decoded input: a state bigger than this is not one we produced. */
export const TOPOLOGY_LIMITS = {
  maxBytes: 1024 * 1024,
  maxPeers: 4096,
  maxConnectionsPerPeer: 1024,
  maxNicknameBytes: 64,
  maxAddressLength: 262,
} as const;

/** Total order on two entries for the same name: > 0 when `a` should win. */
export function compareEntries(a: PeerEntry, b: PeerEntry): number {
  if (a.version !== b.version) return a.version - b.version;
  if (a.uid !== b.uid) return BigInt(a.uid) > BigInt(b.uid) ? 1 : -1;
  // Same version and uid yet different content only comes from a bug or a liar; still pick one deterministically.
  const ca = contentKey(a);
  const cb = contentKey(b);
  return ca === cb ? 0 : ca > cb ? 1 : -1;
}

function contentKey(e: PeerEntry): string {
  return JSON.stringify([e.nickname, e.connections.map((c) => [c.name, c.address, c.isOutbound, c.isEstablished])]);
}

/** Pure merge of two views: per name, the greater entry. */
export function mergeStates(a: ReadonlyMap<PeerName, PeerEntry>, b: ReadonlyMap<PeerName, PeerEntry>): Map<PeerName, PeerEntry> {
  const out = new Map(a);
  for (const [name, e] of b) {
    const mine = out.get(name);
    if (!mine || compareEntries(e, mine) > 0) out.set(name, e);
  }
  return out;
}

/** Sort connections into canonical order. */
export function canonicalConnections(conns: readonly ConnectionEntry[]): ConnectionEntry[] {
  return [...conns].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : x.address < y.address ? -1 : x.address > y.address ? 1 : 0));
}

/** Names reachable from `from` following connections as each peer reports them (one-sided). */
export function reachableFrom(state: ReadonlyMap<PeerName, PeerEntry>, from: PeerName): Set<PeerName> {
  const seen = new Set<PeerName>([from]);
  const queue = [from];
  while (queue.length > 0) {
    const e = state.get(queue.pop()!);
    if (!e) continue;
    for (const c of e.connections) {
      if (!seen.has(c.name)) {
        seen.add(c.name);
        queue.push(c.name);
      }
    }
  }
  return seen;
}

export class Topology {
  private readonly entries = new Map<PeerName, PeerEntry>();
  private localEntry: PeerEntry;
  private readonly warnedUids = new Set<string>();

  /**
   * @param onForeignSelf called when an entry under our name from another uid beats ours (an old incarnation, or
   *   another router using our name); the mesh logs it.
   */
  constructor(
    local: { name: PeerName; nickname: string; uid: string },
    private readonly onForeignSelf: (remote: PeerEntry) => void = () => {},
  ) {
    this.localEntry = { name: local.name, nickname: local.nickname, uid: local.uid, version: 1, connections: [] };
    this.entries.set(local.name, this.localEntry);
  }

  get localName(): PeerName {
    return this.localEntry.name;
  }

  /** Our own entry. */
  get local(): PeerEntry {
    return this.localEntry;
  }

  /** The current view (do not mutate). */
  get peers(): ReadonlyMap<PeerName, PeerEntry> {
    return this.entries;
  }

  /** Replace our connections; bumps our version if they changed. Returns true when changed. */
  setLocalConnections(conns: readonly ConnectionEntry[]): boolean {
    const next = canonicalConnections(conns);
    if (contentKey({ ...this.localEntry, connections: next }) === contentKey(this.localEntry)) return false;
    this.localEntry = { ...this.localEntry, version: this.localEntry.version + 1, connections: next };
    this.entries.set(this.localEntry.name, this.localEntry);
    this.gc();
    return true;
  }

  /**
   * Merge received entries. Returns the entries that changed our view (including our own entry when we had to jump
   * its version), after dropping unreachable peers: exactly what is worth passing on.
   */
  apply(update: readonly PeerEntry[]): PeerEntry[] {
    const changed = new Map<PeerName, PeerEntry>();
    for (const e of update) {
      if (e.name === this.localEntry.name) {
        if (compareEntries(e, this.localEntry) > 0) {
          if (e.uid !== this.localEntry.uid && !this.warnedUids.has(e.uid)) {
            this.warnedUids.add(e.uid);
            this.onForeignSelf(e);
          }
          this.localEntry = { ...this.localEntry, version: e.version + 1 };
          this.entries.set(this.localEntry.name, this.localEntry);
          changed.set(this.localEntry.name, this.localEntry);
        }
        continue;
      }
      const mine = this.entries.get(e.name);
      if (!mine || compareEntries(e, mine) > 0) {
        this.entries.set(e.name, e);
        changed.set(e.name, e);
      }
    }
    if (changed.size === 0) return [];
    this.gc();
    return [...changed.values()].filter((e) => this.entries.get(e.name) === e);
  }

  /** Drop peers we cannot reach; returns their names. */
  gc(): PeerName[] {
    const reachable = reachableFrom(this.entries, this.localEntry.name);
    const removed: PeerName[] = [];
    for (const name of this.entries.keys()) {
      if (!reachable.has(name)) {
        this.entries.delete(name);
        removed.push(name);
      }
    }
    return removed;
  }

  /** Our entry plus the entries of the peers it connects to: a local change receivers can attach to their view. */
  localUpdate(): PeerEntry[] {
    const out = [this.localEntry];
    for (const c of this.localEntry.connections) {
      const e = this.entries.get(c.name);
      if (e && !out.includes(e)) out.push(e);
    }
    return out;
  }
}

/** Encode entries (see the format at the top). */
export function encodeTopology(entries: Iterable<PeerEntry>): Uint8Array {
  const rows = [];
  for (const e of entries) {
    rows.push([e.name, e.nickname, e.uid, e.version, e.connections.map((c) => [c.name, c.address, (c.isOutbound ? 1 : 0) | (c.isEstablished ? 2 : 0)])]);
  }
  return Buffer.from(JSON.stringify(rows), 'utf8');
}

/** Decode untrusted bytes; anything off-format or over the limits throws `DecodeError`. */
export function decodeTopology(bytes: Uint8Array): PeerEntry[] {
  const L = TOPOLOGY_LIMITS;
  if (bytes.length > L.maxBytes) throw new DecodeError(`topology update is ${bytes.length} bytes, over ${L.maxBytes}`);
  let rows: unknown;
  try {
    rows = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new DecodeError('topology update is not valid UTF-8 JSON');
  }
  if (!Array.isArray(rows)) throw new DecodeError('topology update is not a list');
  if (rows.length > L.maxPeers) throw new DecodeError(`topology update lists ${rows.length} peers, over ${L.maxPeers}`);
  const seen = new Set<string>();
  return rows.map((row, i): PeerEntry => {
    if (!Array.isArray(row) || row.length !== 5) throw new DecodeError(`topology peer ${i} is not a 5-item list`);
    const [name, nickname, uid, version, conns] = row as unknown[];
    if (typeof name !== 'string' || !isPeerName(name) || name !== name.toLowerCase()) throw new DecodeError(`topology peer ${i} has a bad name`);
    if (seen.has(name)) throw new DecodeError(`topology lists peer ${name} twice`);
    seen.add(name);
    if (typeof nickname !== 'string' || Buffer.byteLength(nickname) > L.maxNicknameBytes) throw new DecodeError(`topology peer ${name} has a bad nickname`);
    if (typeof uid !== 'string' || !/^\d{1,20}$/.test(uid) || BigInt(uid) >= 1n << 64n || String(BigInt(uid)) !== uid) throw new DecodeError(`topology peer ${name} has a bad uid`);
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1) throw new DecodeError(`topology peer ${name} has a bad version`);
    if (!Array.isArray(conns) || conns.length > L.maxConnectionsPerPeer) throw new DecodeError(`topology peer ${name} has a bad connection list`);
    const connections = conns.map((c, j): ConnectionEntry => {
      if (!Array.isArray(c) || c.length !== 3) throw new DecodeError(`topology peer ${name} connection ${j} is not a 3-item list`);
      const [cname, address, flags] = c as unknown[];
      if (typeof cname !== 'string' || !isPeerName(cname) || cname !== cname.toLowerCase()) throw new DecodeError(`topology peer ${name} connection ${j} has a bad name`);
      if (typeof address !== 'string' || address.length > L.maxAddressLength) throw new DecodeError(`topology peer ${name} connection ${j} has a bad address`);
      if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < 0 || flags > 3) throw new DecodeError(`topology peer ${name} connection ${j} has bad flags`);
      return { name: cname, address, isOutbound: (flags & 1) !== 0, isEstablished: (flags & 2) !== 0 };
    });
    return { name, nickname, uid, version, connections: canonicalConnections(connections) };
  });
}
