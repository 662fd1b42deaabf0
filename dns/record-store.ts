/**
 * The weftDNS record store: a CRDT of name -> address records, one writer per record (its owner), merged by gossip.
 *
 * A record is keyed by (owner, name, address). Its state is (version, isTombstone): the owner stamps every change of
 * its own records with a version higher than any it used before (nameserver.ts), so a newer state replaces an older
 * one wherever it arrives. States are ordered by version, then a tombstone above a live record of the same version
 * (never made by a correct owner; the rule only keeps merges deterministic). Merge keeps the greater state: it is
 * commutative, associative and idempotent, so the order and number of gossip deliveries do not matter.
 *
 * Tombstones are forgotten: each carries a deadline (local clock ms). Two copies of one tombstone keep the earlier
 * deadline, and the wire carries "ms remaining", never a fresh lifetime, so a tombstone cannot bounce between two
 * routers and live forever; once its deadline passes everywhere it is gone everywhere. `expire(now)` does the
 * forgetting (time is passed in, the store holds no clock).
 *
 * A peer removal (`weft rmpeer`) is a tombstone for a whole owner: while it lives every record of that owner is
 * dropped and none is accepted. It is forgotten like record tombstones.
 *
 * What a tombstone cannot do: a router cut off for longer than the tombstone lifetime still holds the live record
 * when it comes back, and gossips it. If the owner is reachable it answers with a new tombstone (it is the only
 * writer and knows the record is gone: nameserver.ts); if the owner is gone for good, `weft rmpeer` removes it all.
 */
import type { PeerName } from '../gossip/peer-name.js';

/** One record's replicated state. */
export interface RecordEntry {
  /** The router that owns (and alone changes) this record. */
  readonly owner: PeerName;
  /** Lower-case fully qualified name with the trailing dot, e.g. 'web.weft.local.'. */
  readonly name: string;
  /** Canonical IP address text ('10.32.0.1', 'fd00::1'). */
  readonly address: string;
  /** The owner's version stamp for this state (a positive integer, at most 2^53 - 1). */
  readonly version: number;
  readonly isTombstone: boolean;
  /** Local clock ms after which a tombstone is forgotten; Infinity for a live record. */
  readonly expiresAtMs: number;
}

/** `weft rmpeer`: every record of `peer` is gone until `expiresAtMs` (local clock ms). */
export interface PeerRemoval {
  readonly peer: PeerName;
  readonly expiresAtMs: number;
}

/** What a merge changed: the parts of an update that were new here (what gossip passes on). */
export interface RecordDelta {
  entries: RecordEntry[];
  removals: PeerRemoval[];
}

export function recordKey(e: { owner: string; name: string; address: string }): string {
  return `${e.owner}|${e.name}|${e.address}`;
}

/** -1, 0, 1: how state `a` orders against `b` (version, then tombstone above live); deadlines are not compared. */
export function compareStates(a: RecordEntry, b: RecordEntry): number {
  if (a.version !== b.version) return a.version < b.version ? -1 : 1;
  if (a.isTombstone !== b.isTombstone) return a.isTombstone ? 1 : -1;
  return 0;
}

export class RecordStore {
  private readonly entries = new Map<string, RecordEntry>();
  private readonly removals = new Map<PeerName, PeerRemoval>();
  /** Lookup indexes, rebuilt on the first lookup after a change. */
  private byName: Map<string, string[]> | undefined;
  private byAddress: Map<string, string[]> | undefined;

  /**
   * Merge entries and removals (from gossip or from the owner itself). Returns what was new here: entries whose
   * state is now greater than before, and removals not known before (or with an earlier deadline).
   */
  merge(update: RecordDelta): RecordDelta {
    const delta: RecordDelta = { entries: [], removals: [] };
    for (const r of update.removals) {
      const have = this.removals.get(r.peer);
      if (have && have.expiresAtMs <= r.expiresAtMs) continue;
      this.removals.set(r.peer, { peer: r.peer, expiresAtMs: r.expiresAtMs });
      delta.removals.push(r);
      if (!have) for (const [k, e] of this.entries) if (e.owner === r.peer) this.entries.delete(k);
      this.invalidate();
    }
    for (const e of update.entries) {
      if (this.removals.has(e.owner)) continue;
      const key = recordKey(e);
      const have = this.entries.get(key);
      const order = have ? compareStates(e, have) : 1;
      if (order < 0) continue;
      if (order === 0) {
        // The same state: only an earlier tombstone deadline is news.
        if (!e.isTombstone || e.expiresAtMs >= have!.expiresAtMs) continue;
      }
      const stored: RecordEntry = { ...e, expiresAtMs: e.isTombstone ? e.expiresAtMs : Infinity };
      this.entries.set(key, stored);
      delta.entries.push(stored);
      this.invalidate();
    }
    return delta;
  }

  /** Forget tombstones and removals whose deadline is at or before `nowMs`. Returns how many were forgotten. */
  expire(nowMs: number): number {
    let n = 0;
    for (const [k, e] of this.entries) {
      if (e.isTombstone && e.expiresAtMs <= nowMs) {
        this.entries.delete(k);
        n++;
      }
    }
    for (const [p, r] of this.removals) {
      if (r.expiresAtMs <= nowMs) {
        this.removals.delete(p);
        n++;
      }
    }
    if (n > 0) this.invalidate();
    return n;
  }

  /** The state of one record, if known (live or tombstone). */
  get(owner: PeerName, name: string, address: string): RecordEntry | undefined {
    return this.entries.get(recordKey({ owner, name, address }));
  }

  isRemoved(peer: PeerName): boolean {
    return this.removals.has(peer);
  }

  /** Everything, live and tombstones, in key order (stable for tests and full-state gossip). */
  snapshot(): RecordDelta {
    const keys = [...this.entries.keys()].sort();
    return {
      entries: keys.map((k) => this.entries.get(k)!),
      removals: [...this.removals.values()].sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0)),
    };
  }

  /** Live records, in key order. */
  live(): RecordEntry[] {
    return this.snapshot().entries.filter((e) => !e.isTombstone);
  }

  /** Entries of one owner (live and tombstones). */
  ownedBy(owner: PeerName): RecordEntry[] {
    return [...this.entries.values()].filter((e) => e.owner === owner);
  }

  /** Live addresses of `name` (lower-case FQDN), each once, in address order. */
  addressesOf(name: string): string[] {
    this.index();
    return this.byName!.get(name) ?? [];
  }

  /** Live names that point at `address`, each once, sorted. */
  namesOf(address: string): string[] {
    this.index();
    return this.byAddress!.get(address) ?? [];
  }

  /** True if some live name equals `name` or ends with `.name` (an empty non-terminal exists too). */
  hasName(name: string): boolean {
    this.index();
    return this.byName!.has(name) || this.ancestors!.has(name);
  }

  get size(): number {
    return this.entries.size;
  }

  private ancestors: Set<string> | undefined;

  private invalidate(): void {
    this.byName = undefined;
    this.byAddress = undefined;
    this.ancestors = undefined;
  }

  private index(): void {
    if (this.byName) return;
    const byName = new Map<string, Set<string>>();
    const byAddress = new Map<string, Set<string>>();
    const ancestors = new Set<string>();
    for (const e of this.entries.values()) {
      if (e.isTombstone) continue;
      let s = byName.get(e.name);
      if (!s) byName.set(e.name, (s = new Set()));
      s.add(e.address);
      let t = byAddress.get(e.address);
      if (!t) byAddress.set(e.address, (t = new Set()));
      t.add(e.name);
      for (let i = e.name.indexOf('.'); i >= 0 && i < e.name.length - 1; i = e.name.indexOf('.', i + 1)) ancestors.add(e.name.slice(i + 1));
    }
    this.byName = new Map([...byName].map(([k, v]) => [k, [...v].sort()]));
    this.byAddress = new Map([...byAddress].map(([k, v]) => [k, [...v].sort()]));
    this.ancestors = ancestors;
  }
}
