/**
 * The nameserver: this router's view of every weftDNS record, kept in step with the other routers on the `dns`
 * gossip channel, and the only writer of the records this router owns.
 *
 * Ownership: a record belongs to the router that registered it (`weft attach --name`, `weft dns-add`, the Docker
 * plugin or CNI on that host). Only the owner changes it: it stamps each change with a version above any it used
 * (wall-clock ms, or one more than the last, whichever is larger; the last one is persisted), so its newest word
 * wins everywhere (record-store.ts).
 *
 * Restart: the owner's records (with what registered them) are persisted in the Store. On start they are published
 * again, and `reconcile(live)` withdraws those whose container no longer exists. Records of ours that come back by
 * gossip in a state we did not choose (an older incarnation's, a wiped state dir) are corrected at once: a new
 * version of our truth (live if we hold it, else a tombstone) goes out in the delta.
 *
 * Gossip: full state (live records, tombstones, peer removals) to a few neighbours every round and to each new
 * neighbour; a local change goes to every neighbour at once; what a received update changed is passed on.
 */
import ipaddr from 'ipaddr.js';
import type { GossipChannel, Gossiper } from '../gossip/channel.js';
import { parsePeerName, type PeerName } from '../gossip/peer-name.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Store } from '../runtime/store.js';
import { decodeRecords, encodeRecords, isRecordName, MAX_ENTRIES } from './record-message.js';
import { RecordStore, type RecordDelta, type RecordEntry } from './record-store.js';
import type { DnsRecordReport } from './report.js';
import { WeftError } from '../runtime/errors.js';

/** A name or address the user gave that weftDNS cannot hold. */
export class DnsInputError extends WeftError {
  readonly code = 'ERR_DNS_INPUT';
}

/** `weft rmpeer` of ourselves, or of a peer that is still reachable. */
export class DnsRmpeerError extends WeftError {
  readonly code = 'ERR_DNS_RMPEER';
  override readonly status = 409;
}

export interface NameserverDeps {
  clock: Clock;
  log: Logger;
  /** Persists this router's own records across restarts; none: nothing persisted. */
  store?: Store;
  /** Wall-clock ms for version stamps. @default Date.now */
  wallNow?: () => number;
}

export interface NameserverOptions {
  ourName: PeerName;
  /** The weftDNS domain, lower case with the trailing dot. @default 'weft.local.' */
  domain?: string;
  /** How long a tombstone (and a peer removal) is kept before it is forgotten. @default 600000 (10 min) */
  tombstoneLifetimeMs?: number;
  /** How often expired tombstones are swept. @default 10000 */
  expireIntervalMs?: number;
}

/** What registered one of our own records: 'manual' (dns-add), 'attach:<target>', 'docker:<id>', ... */
export type RecordSource = string;

interface OwnRecord {
  name: string;
  address: string;
  sources: Set<RecordSource>;
}

const STORE_KEY = 'dns-records';

export class Nameserver implements Gossiper {
  readonly records = new RecordStore();
  readonly domain: string;
  private readonly ourName: PeerName;
  private readonly tombstoneLifetimeMs: number;
  private readonly expireIntervalMs: number;
  private readonly wallNow: () => number;
  private readonly own = new Map<string, OwnRecord>();
  private lastVersion = 0;
  private channel: GossipChannel | undefined;
  private timer: Timer | undefined;
  /** Where full-state gossip starts when the state is larger than one message (rotates each round). */
  private gossipOffset = 0;
  readonly counters = { dns_gossip_corrections: 0 };

  constructor(
    private readonly deps: NameserverDeps,
    options: NameserverOptions,
  ) {
    this.ourName = options.ourName;
    this.domain = normalizeDomain(options.domain ?? 'weft.local.');
    this.tombstoneLifetimeMs = options.tombstoneLifetimeMs ?? 600_000;
    this.expireIntervalMs = options.expireIntervalMs ?? 10_000;
    this.wallNow = deps.wallNow ?? Date.now;
  }

  attach(channel: GossipChannel): void {
    this.channel = channel;
  }

  /** Load our persisted records and publish them; start sweeping tombstones. Idempotent. */
  start(): void {
    if (this.timer) return;
    this.load();
    const now = this.deps.clock.now();
    const entries = [...this.own.values()].map((r) => this.entry(r.name, r.address, false, now));
    if (entries.length > 0) this.publish({ entries, removals: [] });
    this.timer = this.deps.clock.setInterval(() => this.records.expire(this.deps.clock.now()), this.expireIntervalMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Turn a user's name into a record name: lower case, in the domain unless it ends with a dot. */
  qualify(name: string): string {
    const lower = name.toLowerCase();
    const fqdn = lower.endsWith('.') ? lower : `${lower}.${this.domain}`;
    if (!isRecordName(fqdn)) {
      throw new DnsInputError(
        `${JSON.stringify(name.slice(0, 80))} is not a DNS name: use letters, digits, '-' and '.', labels of at most 63 characters, e.g. web or web.example.com.`,
      );
    }
    return fqdn;
  }

  /** Register `name` -> each address as ours, on behalf of `source`. Returns the record name. */
  register(name: string, addresses: readonly string[], source: RecordSource): string {
    const fqdn = this.qualify(name);
    const canon = addresses.map(canonicalAddress);
    const now = this.deps.clock.now();
    const entries: RecordEntry[] = [];
    for (const address of canon) {
      const key = `${fqdn}|${address}`;
      let r = this.own.get(key);
      if (!r) this.own.set(key, (r = { name: fqdn, address, sources: new Set() }));
      r.sources.add(source);
      const have = this.records.get(this.ourName, fqdn, address);
      if (!have || have.isTombstone) entries.push(this.entry(fqdn, address, false, now));
    }
    this.persist();
    if (entries.length > 0) this.publish({ entries, removals: [] });
    return fqdn;
  }

  /**
   * Withdraw what `source` registered: all of it, or only `name` (and only `addresses` of it when given). A record
   * another source still holds stays. Returns how many records were withdrawn.
   */
  withdraw(source: RecordSource, name?: string, addresses?: readonly string[]): number {
    const fqdn = name === undefined ? undefined : this.qualify(name);
    const canon = addresses?.map(canonicalAddress);
    const now = this.deps.clock.now();
    const entries: RecordEntry[] = [];
    for (const [key, r] of this.own) {
      if (fqdn !== undefined && r.name !== fqdn) continue;
      if (canon !== undefined && !canon.includes(r.address)) continue;
      if (!r.sources.delete(source) || r.sources.size > 0) continue;
      this.own.delete(key);
      entries.push(this.entry(r.name, r.address, true, now));
    }
    this.persist();
    if (entries.length > 0) this.publish({ entries, removals: [] });
    return entries.length;
  }

  /** Sources that registered records of ours. */
  sources(): Set<RecordSource> {
    const out = new Set<RecordSource>();
    for (const r of this.own.values()) for (const s of r.sources) out.add(s);
    return out;
  }

  /** After a restart: withdraw what sources that no longer exist registered (`isLive(source)` false). */
  reconcile(isLive: (source: RecordSource) => boolean): number {
    let n = 0;
    for (const s of this.sources()) if (!isLive(s)) n += this.withdraw(s);
    return n;
  }

  /** `weft rmpeer NAME`: every record of `peer` goes, everywhere, for the tombstone lifetime. */
  removePeer(name: string, isReachable: boolean): number {
    const peer = parsePeerName(name);
    if (peer === this.ourName) throw new DnsRmpeerError(`cannot rmpeer ${peer}: that is this router`);
    if (isReachable) throw new DnsRmpeerError(`cannot rmpeer ${peer}: it is reachable; stop it first, then retry`);
    const count = this.records.ownedBy(peer).filter((e) => !e.isTombstone).length;
    this.publish({ entries: [], removals: [{ peer, expiresAtMs: this.deps.clock.now() + this.tombstoneLifetimeMs }] });
    this.deps.log.info({ peer, count }, `dns: removed the records of ${peer}`);
    return count;
  }

  /** Live addresses of a record name (lower-case FQDN). */
  addressesOf(fqdn: string): string[] {
    return this.records.addressesOf(fqdn);
  }

  /** Every record (live and tombstones) for `weft status dns`. */
  report(): DnsRecordReport[] {
    return this.records
      .snapshot()
      .entries.map((e) => ({ name: e.name, address: e.address, owner: e.owner, version: e.version, isTombstone: e.isTombstone }));
  }

  // ---- Gossiper ----------------------------------------------------------------------------------------------------

  gossip(): Uint8Array | null {
    const now = this.deps.clock.now();
    this.records.expire(now);
    const state = this.records.snapshot();
    if (state.entries.length === 0 && state.removals.length === 0) return null;
    let entries = state.entries;
    if (entries.length > MAX_ENTRIES) {
      // Larger than one message: a different window each round, so every record goes out within a few rounds.
      const start = this.gossipOffset % entries.length;
      entries = [...entries, ...entries].slice(start, start + MAX_ENTRIES);
      this.gossipOffset = start + MAX_ENTRIES;
    }
    return encodeRecords({ entries, removals: state.removals.slice(0, 1000) }, now);
  }

  onGossip(update: Uint8Array): Uint8Array | null {
    const now = this.deps.clock.now();
    const received = decodeRecords(update, now);
    const delta = this.records.merge(received);
    const corrections = this.correctOwn(received.entries, now);
    if (corrections.length > 0) delta.entries.push(...this.records.merge({ entries: corrections, removals: [] }).entries);
    this.records.expire(now);
    if (delta.entries.length === 0 && delta.removals.length === 0) return null;
    return encodeRecords(delta, now);
  }

  onGossipBroadcast(_src: string, update: Uint8Array): void {
    this.onGossip(update);
  }

  onGossipUnicast(_src: string, message: Uint8Array): void {
    this.onGossip(message);
  }

  // ---- inside ------------------------------------------------------------------------------------------------------

  /** Records of ours that arrived in a state we did not choose: our truth again, with a newer version. */
  private correctOwn(received: readonly RecordEntry[], now: number): RecordEntry[] {
    const out: RecordEntry[] = [];
    for (const e of received) {
      if (e.owner !== this.ourName) continue;
      this.lastVersion = Math.max(this.lastVersion, e.version);
      const isOurs = this.own.has(`${e.name}|${e.address}`);
      const have = this.records.get(this.ourName, e.name, e.address);
      const isLiveHere = have !== undefined && !have.isTombstone;
      if (isOurs === isLiveHere && !(isOurs && have!.version < e.version)) continue;
      if (!isOurs && !isLiveHere) continue;
      out.push(this.entry(e.name, e.address, !isOurs, now));
      this.counters.dns_gossip_corrections++;
    }
    if (out.length > 0) this.persist();
    return out;
  }

  private entry(name: string, address: string, isTombstone: boolean, now: number): RecordEntry {
    const version = Math.max(this.lastVersion + 1, Math.floor(this.wallNow()));
    this.lastVersion = version;
    return {
      owner: this.ourName,
      name,
      address,
      version,
      isTombstone,
      expiresAtMs: isTombstone ? now + this.tombstoneLifetimeMs : Infinity,
    };
  }

  private publish(update: RecordDelta): void {
    const delta = this.records.merge(update);
    this.persist();
    if (!this.channel || (delta.entries.length === 0 && delta.removals.length === 0)) return;
    this.channel.gossip(encodeRecords(delta, this.deps.clock.now()));
  }

  private persist(): void {
    if (!this.deps.store) return;
    const doc = {
      lastVersion: this.lastVersion,
      records: [...this.own.values()].map((r) => ({ name: r.name, address: r.address, sources: [...r.sources] })),
    };
    try {
      this.deps.store.write(STORE_KEY, JSON.stringify(doc));
    } catch (err) {
      this.deps.log.warn({ err }, 'dns: cannot persist our records');
    }
  }

  private load(): void {
    const raw = this.deps.store?.read(STORE_KEY);
    if (!raw) return;
    try {
      const doc = JSON.parse(raw.toString('utf8')) as { lastVersion?: unknown; records?: unknown };
      if (typeof doc.lastVersion === 'number' && Number.isSafeInteger(doc.lastVersion)) this.lastVersion = doc.lastVersion;
      if (!Array.isArray(doc.records)) return;
      for (const r of doc.records as Array<{ name?: unknown; address?: unknown; sources?: unknown }>) {
        if (typeof r.name !== 'string' || !isRecordName(r.name) || typeof r.address !== 'string' || !Array.isArray(r.sources)) continue;
        const sources = (r.sources as unknown[]).filter((s): s is string => typeof s === 'string');
        if (sources.length === 0) continue;
        let address: string;
        try {
          address = canonicalAddress(r.address);
        } catch {
          continue;
        }
        this.own.set(`${r.name}|${address}`, { name: r.name, address, sources: new Set(sources) });
      }
    } catch (err) {
      this.deps.log.warn({ err }, 'dns: our persisted records do not parse; starting without them');
    }
  }
}

/** 'Weft.Local' -> 'weft.local.'. Throws `DnsInputError`. */
export function normalizeDomain(domain: string): string {
  const d = domain.toLowerCase().endsWith('.') ? domain.toLowerCase() : `${domain.toLowerCase()}.`;
  if (!isRecordName(d)) throw new DnsInputError(`${JSON.stringify(domain.slice(0, 80))} is not a DNS domain, e.g. weft.local.`);
  return d;
}

/** '10.32.0.1' or '10.32.0.1/12' -> '10.32.0.1'; IPv6 in RFC 5952 form. Throws `DnsInputError`. */
export function canonicalAddress(text: string): string {
  const bare = text.includes('/') ? text.slice(0, text.indexOf('/')) : text;
  if (!(ipaddr.IPv4.isValidFourPartDecimal(bare) || (bare.includes(':') && ipaddr.IPv6.isValid(bare)))) {
    throw new DnsInputError(`${JSON.stringify(text.slice(0, 80))} is not an IP address, e.g. 10.32.0.5`);
  }
  const a = ipaddr.parse(bare);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address().toString();
  return a.toString();
}
