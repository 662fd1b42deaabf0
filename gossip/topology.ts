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
 * Ownership (what a member of the mesh can do with forged entries; docs/security.md "Gossip from members"): entries
 * are relayed, so a receiver cannot tell who wrote one. Versions are therefore kept plausible instead: an entry whose
 * version is above the wall clock in milliseconds plus `VERSION_LEAD_MS` is refused (counted, never merged). Real
 * owners bump by one per change, so their versions stay far below that bound; a forged entry for peer P at any version
 * the bound allows is outbid by P itself (it re-publishes at that version + 1, which every receiver accepts a
 * millisecond later), so nobody can park P's entry where P cannot follow. A router never takes a newer copy of its
 * own entry: it keeps its content and re-publishes above it.
 *
 * Totals are capped, not just one message: at most `maxPeers` entries and `maxStateBytes` of encoded entries. An
 * entry for a new peer past the peer cap, or one that would take the total past the byte cap, is refused and
 * counted by cap. The complete state is sent in chunks of at most `TOPOLOGY_CHUNK_BYTES` (`encodeTopologyChunks`), so
 * it never becomes one message a neighbour's transport refuses (code 1009) at every reconnect.
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

/**
 * Caps on the merged view (all messages together), the defaults of `TopologyOptions`. 4096 peers with a few
 * connections each take well under 4 MiB; the byte cap is what bounds memory when entries are large.
 */
export const TOPOLOGY_STATE_CAPS = {
  maxPeers: 4096,
  maxStateBytes: 4 * 1024 * 1024,
} as const;

/** How far above the wall clock (ms) a version may be and still be plausible: covers clock skew between hosts. */
export const VERSION_LEAD_MS = 60 * 60 * 1000;

/**
 * Largest encoded chunk of complete-state gossip: a quarter of the 1 MiB message limit, so a chunk always fits with
 * the frame header and sealing. One entry is at most ~300 KiB (1024 connections with the longest addresses).
 */
export const TOPOLOGY_CHUNK_BYTES = 256 * 1024;

/** Why an entry from gossip was refused: `implausible_version`, `peer_cap` or `state_cap`. */
export type TopologyRefusal = 'implausible_version' | 'peer_cap' | 'state_cap';

export interface TopologyOptions {
  /** Wall-clock milliseconds (versions are bounded by it). @default Date.now */
  wallClockMs?: () => number;
  /** Called for every refused entry (the mesh counts and logs). */
  onRefused?: (reason: TopologyRefusal, entry: PeerEntry) => void;
  /** Entries in the merged view, ours included. @default TOPOLOGY_STATE_CAPS.maxPeers */
  maxPeers?: number;
  /** Encoded bytes of the merged view. @default TOPOLOGY_STATE_CAPS.maxStateBytes */
  maxStateBytes?: number;
}

/** Foreign uids warned about under our own name; more are only counted (a liar could send one per message). */
const MAX_WARNED_UIDS = 64;

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
  return [...conns].sort((x, y) =>
    x.name < y.name ? -1 : x.name > y.name ? 1 : x.address < y.address ? -1 : x.address > y.address ? 1 : 0,
  );
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
  /** Encoded size of each entry, and their sum: what the byte cap counts. */
  private readonly sizes = new Map<PeerName, number>();
  private totalBytes = 0;
  private localEntry: PeerEntry;
  private readonly warnedUids = new Set<string>();
  private readonly wallClockMs: () => number;
  private readonly onRefused: (reason: TopologyRefusal, entry: PeerEntry) => void;
  private readonly maxPeers: number;
  private readonly maxStateBytes: number;

  /**
   * @param onForeignSelf called when an entry under our name from another uid beats ours (an old incarnation, or
   *   another router using our name); the mesh logs it. Called for at most 64 distinct uids.
   */
  constructor(
    local: { name: PeerName; nickname: string; uid: string },
    private readonly onForeignSelf: (remote: PeerEntry) => void = () => {},
    options: TopologyOptions = {},
  ) {
    this.wallClockMs = options.wallClockMs ?? Date.now;
    this.onRefused = options.onRefused ?? (() => {});
    this.maxPeers = options.maxPeers ?? TOPOLOGY_STATE_CAPS.maxPeers;
    this.maxStateBytes = options.maxStateBytes ?? TOPOLOGY_STATE_CAPS.maxStateBytes;
    this.localEntry = { name: local.name, nickname: local.nickname, uid: local.uid, version: 1, connections: [] };
    this.put(this.localEntry);
  }

  /** Encoded bytes of the merged view (what `maxStateBytes` caps). */
  get stateBytes(): number {
    return this.totalBytes;
  }

  /** The highest version a received entry may carry now. */
  versionCeiling(): number {
    return Math.floor(this.wallClockMs()) + VERSION_LEAD_MS;
  }

  private put(e: PeerEntry): void {
    const size = entryBytes(e);
    this.totalBytes += size - (this.sizes.get(e.name) ?? 0);
    this.sizes.set(e.name, size);
    this.entries.set(e.name, e);
  }

  private drop(name: PeerName): void {
    this.totalBytes -= this.sizes.get(name) ?? 0;
    this.sizes.delete(name);
    this.entries.delete(name);
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
    this.put(this.localEntry);
    this.gc();
    return true;
  }

  /**
   * Merge received entries. Returns the entries that changed our view (including our own entry when we had to jump
   * its version), after dropping unreachable peers: exactly what is worth passing on.
   */
  apply(update: readonly PeerEntry[]): PeerEntry[] {
    const changed = new Map<PeerName, PeerEntry>();
    const ceiling = this.versionCeiling();
    for (const e of update) {
      // Above the bound no real owner could have got there: refusing it is what leaves room for the owner to outbid
      // any forged copy it will see (ours included).
      if (e.version > ceiling) {
        this.onRefused('implausible_version', e);
        continue;
      }
      if (e.name === this.localEntry.name) {
        if (compareEntries(e, this.localEntry) > 0) {
          if (e.uid !== this.localEntry.uid && !this.warnedUids.has(e.uid) && this.warnedUids.size < MAX_WARNED_UIDS) {
            this.warnedUids.add(e.uid);
            this.onForeignSelf(e);
          }
          // Never take it: keep our content and re-publish just above it (bounded by the ceiling checked above).
          this.localEntry = { ...this.localEntry, version: e.version + 1 };
          this.put(this.localEntry);
          changed.set(this.localEntry.name, this.localEntry);
        }
        continue;
      }
      const mine = this.entries.get(e.name);
      if (mine && compareEntries(e, mine) <= 0) continue;
      if (!mine && this.entries.size >= this.maxPeers) {
        this.onRefused('peer_cap', e);
        continue;
      }
      if (this.totalBytes - (this.sizes.get(e.name) ?? 0) + entryBytes(e) > this.maxStateBytes) {
        this.onRefused('state_cap', e);
        continue;
      }
      this.put(e);
      changed.set(e.name, e);
    }
    if (changed.size === 0) return [];
    this.gc();
    return [...changed.values()].filter((e) => this.entries.get(e.name) === e);
  }

  /** Drop peers we cannot reach; returns their names. */
  gc(): PeerName[] {
    const reachable = reachableFrom(this.entries, this.localEntry.name);
    const removed: PeerName[] = [];
    for (const name of [...this.entries.keys()]) {
      if (!reachable.has(name)) {
        this.drop(name);
        removed.push(name);
      }
    }
    return removed;
  }
}

/** Each entry's row, encoded once: entries are never changed in place (a change is a new entry object). */
const rows = new WeakMap<PeerEntry, string>();

function row(e: PeerEntry): string {
  let r = rows.get(e);
  if (r === undefined) rows.set(e, (r = encodeRow(e)));
  return r;
}

function encodeRow(e: PeerEntry): string {
  return JSON.stringify([
    e.name,
    e.nickname,
    e.uid,
    e.version,
    e.connections.map((c) => [c.name, c.address, (c.isOutbound ? 1 : 0) | (c.isEstablished ? 2 : 0)]),
  ]);
}

/** Bytes one entry takes in an encoded update (its row and a separating comma). */
export function entryBytes(e: PeerEntry): number {
  return Buffer.byteLength(row(e), 'utf8') + 1;
}

/** Encode entries (see the format at the top). */
export function encodeTopology(entries: Iterable<PeerEntry>): Uint8Array {
  const rows: string[] = [];
  for (const e of entries) rows.push(row(e));
  return Buffer.from(`[${rows.join(',')}]`, 'utf8');
}

/**
 * Encode entries as several updates of at most `maxBytes` each (any subset of entries is a valid update, so the
 * receiver merges each on its own). An entry bigger than `maxBytes` goes alone in its chunk.
 */
export function encodeTopologyChunks(entries: Iterable<PeerEntry>, maxBytes = TOPOLOGY_CHUNK_BYTES): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let rows: string[] = [];
  let bytes = 2;
  for (const e of entries) {
    const r = row(e);
    const n = Buffer.byteLength(r, 'utf8') + 1;
    if (rows.length > 0 && bytes + n > maxBytes) {
      chunks.push(Buffer.from(`[${rows.join(',')}]`, 'utf8'));
      rows = [];
      bytes = 2;
    }
    rows.push(r);
    bytes += n;
  }
  if (rows.length > 0) chunks.push(Buffer.from(`[${rows.join(',')}]`, 'utf8'));
  return chunks;
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
    if (typeof name !== 'string' || !isPeerName(name) || name !== name.toLowerCase())
      throw new DecodeError(`topology peer ${i} has a bad name`);
    if (seen.has(name)) throw new DecodeError(`topology lists peer ${name} twice`);
    seen.add(name);
    if (typeof nickname !== 'string' || Buffer.byteLength(nickname) > L.maxNicknameBytes)
      throw new DecodeError(`topology peer ${name} has a bad nickname`);
    if (typeof uid !== 'string' || !/^\d{1,20}$/.test(uid) || BigInt(uid) >= 1n << 64n || String(BigInt(uid)) !== uid)
      throw new DecodeError(`topology peer ${name} has a bad uid`);
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)
      throw new DecodeError(`topology peer ${name} has a bad version`);
    if (!Array.isArray(conns) || conns.length > L.maxConnectionsPerPeer)
      throw new DecodeError(`topology peer ${name} has a bad connection list`);
    const connections = conns.map((c, j): ConnectionEntry => {
      if (!Array.isArray(c) || c.length !== 3) throw new DecodeError(`topology peer ${name} connection ${j} is not a 3-item list`);
      const [cname, address, flags] = c as unknown[];
      if (typeof cname !== 'string' || !isPeerName(cname) || cname !== cname.toLowerCase())
        throw new DecodeError(`topology peer ${name} connection ${j} has a bad name`);
      if (typeof address !== 'string' || address.length > L.maxAddressLength)
        throw new DecodeError(`topology peer ${name} connection ${j} has a bad address`);
      if (typeof flags !== 'number' || !Number.isInteger(flags) || flags < 0 || flags > 3)
        throw new DecodeError(`topology peer ${name} connection ${j} has bad flags`);
      return { name: cname, address, isOutbound: (flags & 1) !== 0, isEstablished: (flags & 2) !== 0 };
    });
    return { name, nickname, uid, version, connections: canonicalConnections(connections) };
  });
}
