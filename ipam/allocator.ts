/**
 * The allocator: this peer's IPAM service. It hands out addresses from the space the ring says we own, asks other
 * peers for space when it runs short, gives space away when asked, and keeps the ring, the consensus table and its
 * holdings in one Store document so a restart comes back exactly where it was.
 *
 * How a ring comes to exist (`init`):
 * - `seed`: every peer started with the same seed list builds the same ring on its own (`Ring.claimForPeers` is
 *   deterministic), so seeded peers are ready at once and the rest learn the ring by gossip.
 * - `consensus` (N peers expected): peers without a ring run Paxos over gossip (consensus.ts) once an allocation,
 *   a claim or `prime()` needs a ring; the chosen set of participants divides the ring evenly.
 * - `observer`: takes no part; waits for a ring by gossip and gets space by asking for it.
 * A peer that already has a ring (from the Store or gossip) ignores `init`.
 *
 * Asking for space: when an allocation in subnet S finds nothing free here, the allocator asks the peers that own
 * part of S (most free first, per the ring's free hints) one at a time by unicast. A donor gives the upper half of its
 * largest free span in S (`Ring.grantTo`, a version bump) and replies with its ring, so the requester can allocate at
 * once; the ring also goes out by gossip. Only when every owner it could reach said "none" (and no reply changed the
 * ring meanwhile) does the allocation fail with `IpamExhaustedError`: it fails fast instead of waiting for a partition
 * to heal, and names the unreachable owners.
 *
 * rmpeer rule: `weft rmpeer NAME` moves NAME's space to this peer and records a tombstone. Run it on one peer only,
 * and only for a peer that is gone for good. Enforced here: never for ourselves, never for a peer currently
 * reachable, and a second rmpeer of a name already taken over is a no-op (by us) or refused (by someone else). Run on
 * both sides of a partition, the two takeovers conflict when the partition heals: the merge is refused and logged
 * (`RingConflictError`), never resolved by guessing. A removed peer that comes back with its old state learns from
 * the tombstone that it was removed and refuses to allocate until `weft reset`.
 *
 * What arrives is attributed to who sent it (docs/security.md, "Gossip from members"): a gossip frame to the
 * neighbour it came from, a unicast or broadcast to its source (gossip.ts checks the relay path). A peer changes only
 * what it owns, so before merging a ring we take out the claims its sender cannot make (`screenRing`):
 * - a change to one of our entries, or a token inside our segment: we keep ours and re-publish above the forged
 *   version (`Ring.outbid`), unless it comes with a tombstone naming us, in which case we ask the taker itself
 *   (RING_QUERY) and accept the removal only from it (a taker that denies it gets our entries outbid);
 * - an entry that becomes ours: only its previous owner can give it (a donation reply, a reset heir broadcast);
 *   relayed by anyone else we ask that owner and keep waiting for its word;
 * - a tombstone naming us as the taker that we did not record, or naming the same peer as both, is dropped;
 * - an entry whose version is above the wall clock in seconds plus an hour is dropped (no owner gets there, so the
 *   owner can always outbid a forged copy).
 * Each is counted by reason (`counters`) and logged once per reason and peer. Space requests and ring queries are
 * rate-limited per requester (no reply, no write when over), and donations per requester too.
 */
import type { Gossiper, GossipChannel } from '../gossip/channel.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { Store } from '../runtime/store.js';
import {
  type Address,
  type AddressRange,
  type Cidr,
  cidrRange,
  formatAddress,
  formatCidr,
  formatRange,
  parseAddress,
  parseCidr,
  rangeContains,
  rangeCovers,
  rangeIntersect,
  rangeSize,
  usableRange,
} from './address.js';
import { Consensus } from './consensus.js';
import {
  DecodeError,
  InvalidAddressError,
  RingCapError,
  IpamConflictError,
  IpamExhaustedError,
  IpamNotReadyError,
  IpamOwnerUnreachableError,
  IpamRangeChangedError,
  IpamRemovedError,
  IpamRmpeerError,
  IpamStoppedError,
  RingConflictError,
  RingMismatchError,
} from './errors.js';
import { decodeMessage, encodeMessage, type SpaceReply, type SpaceRequest } from './message.js';
import { PeerLimiter } from './peer-limiter.js';
import { Ring, type RingEntry } from './ring.js';
import type { IpamReport } from './report.js';
import { Space } from './space.js';

/** How the ring comes to exist when no state is stored (Weave's --ipalloc-init). */
export type IpamInit =
  /** Paxos among the peers started this way; `quorum` is the number of peers expected (N), a majority must agree. */
  | { mode: 'consensus'; quorum: number }
  /** These peer names split the range between them from the start. */
  | { mode: 'seed'; peers: string[] }
  /** Own nothing until asking for space. */
  | { mode: 'observer' };

export interface AllocatorDeps {
  clock: Clock;
  random: Random;
  log: Logger;
  store: Store;
  /** Wall-clock milliseconds, which bound plausible ring versions. @default Date.now */
  wallClockMs?: () => number;
}

/** How far above the wall clock (seconds) a ring entry's version may be: covers clock skew between hosts. */
export const RING_VERSION_LEAD_S = 3600;

/** Largest stored IPAM document read at start: far above any real one (a /12 fully allocated is ~40 MiB of JSON). */
export const MAX_STATE_DOC_BYTES = 64 * 1024 * 1024;

export interface AllocatorOptions {
  /** Our peer name (as in the ring). */
  ourName: string;
  /** Our nickname, for `status`. */
  ourNickname: string;
  /** The whole range IPAM allocates from (the daemon passes `--ipalloc-range`, whose default is declared in config/launch.ts). */
  range: string;
  /** The subnet `allocate` uses when none is given; inside `range`. @default the range */
  defaultSubnet?: string;
  /** @default { mode: 'observer' } */
  init?: IpamInit;
  /** How long `allocate` and `claim` wait for a ring before `IpamNotReadyError`. @default 30000 */
  readyTimeoutMs?: number;
  /** How long to wait for a peer's reply to a space request before asking the next one. @default 2000 */
  requestTimeoutMs?: number;
  /** Base delay before a consensus proposer tries again (jittered 1x..2x). @default 1000 */
  consensusRetryMs?: number;
  /** Store key of the document. @default 'ipam' */
  storeKey?: string;
  /** Space requests and ring queries accepted from one peer in a burst. @default 8 */
  requestBurst?: number;
  /** ... and per second, sustained. @default 0.5 */
  requestsPerSecond?: number;
  /** Donations made to one peer in a burst. @default 4 */
  donationBurst?: number;
  /** ... and per second, sustained (each donation is half of a free span, so a few suffice). @default 1/30 */
  donationsPerSecond?: number;
}

/** The persisted document (JSON). Ring and consensus table in their wire encodings, base64. */
interface StoredState {
  format: 1;
  range: string;
  ourName: string;
  ring: string | null;
  consensus: string | null;
  /** [address, prefix, ident] */
  held: Array<[number, number, string]>;
}

interface PendingRequest {
  dst: string;
  resolve: (reply: SpaceReply | 'timeout' | 'gone') => void;
  timer: Timer;
}

interface ReadyWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: Timer | undefined;
}

const MAX_SPACE_ROUNDS = 4;

export class Allocator implements Gossiper {
  readonly cidr: Cidr;
  readonly defaultSubnet: Cidr;
  private readonly ourName: string;
  private readonly ourNickname: string;
  private readonly init: IpamInit;
  private readonly readyTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly consensusRetryMs: number;
  private readonly storeKey: string;
  private readonly majority: number;

  private ring: Ring;
  private space = new Space();
  private consensus: Consensus | null = null;
  private readonly prefixes = new Map<Address, number>();
  private readonly byIdent = new Map<string, Set<Address>>();
  private ownedKey = '';
  private isFreeHintStale = false;
  private removedBy: string | undefined;

  private channel: GossipChannel | undefined;
  private isStarted = false;
  private isStopped = false;
  private readonly reachable = new Set<string>();
  private hasReachability = false;
  private readonly readyWaiters = new Set<ReadyWaiter>();
  private readonly pending = new Map<number, PendingRequest>();
  private nextRequestId: number;
  private readonly spaceSearches = new Map<string, { seq: number; promise: Promise<void> }>();
  /** Orders allocations and space searches: a search that began before an allocation did is stale for it. */
  private seq = 0;
  private proposeTimer: Timer | undefined;
  private readonly warned = new Set<string>();
  /** Bumped on every change to the ring: lets a space search tell whether a round taught it anything. */
  private ringChanges = 0;
  /** Event counts by reason, for the report and tests. */
  readonly counters: Record<string, number> = {};
  private readonly requestLimiter: PeerLimiter;
  private readonly donationLimiter: PeerLimiter;
  /** Our own ring queries: at most one per peer per 10 s. */
  private readonly queryLimiter = new PeerLimiter({ burst: 1, perSecond: 0.1 });
  /** Forged-looking changes to our entries that came with a tombstone naming taker T: outbid if T denies it. */
  private readonly removalClaims = new Map<string, Map<number, number>>();
  private readonly wallClockMs: () => number;

  constructor(
    private readonly deps: AllocatorDeps,
    options: AllocatorOptions,
  ) {
    this.ourName = options.ourName;
    this.ourNickname = options.ourNickname;
    this.cidr = parseCidr(options.range);
    this.defaultSubnet = options.defaultSubnet ? parseCidr(options.defaultSubnet) : this.cidr;
    if (!rangeCovers(cidrRange(this.cidr), cidrRange(this.defaultSubnet))) {
      throw new InvalidAddressError(
        `default subnet ${formatCidr(this.defaultSubnet)} is not inside the IPAM range ${formatCidr(this.cidr)}`,
      );
    }
    this.init = options.init ?? { mode: 'observer' };
    if (this.init.mode === 'consensus' && (!Number.isInteger(this.init.quorum) || this.init.quorum < 1)) {
      throw new Error(`consensus needs the number of peers (>= 1), got ${this.init.quorum}`);
    }
    this.majority = this.init.mode === 'consensus' ? Math.floor(this.init.quorum / 2) + 1 : 1;
    this.readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 2_000;
    this.consensusRetryMs = options.consensusRetryMs ?? 1_000;
    this.storeKey = options.storeKey ?? 'ipam';
    this.ring = new Ring(this.cidr);
    this.nextRequestId = deps.random.int(0x7fffffff);
    this.requestLimiter = new PeerLimiter({ burst: options.requestBurst ?? 8, perSecond: options.requestsPerSecond ?? 0.5 });
    this.donationLimiter = new PeerLimiter({ burst: options.donationBurst ?? 4, perSecond: options.donationsPerSecond ?? 1 / 30 });
    this.wallClockMs = deps.wallClockMs ?? Date.now;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Lifecycle

  /**
   * Load the stored document (or apply `init` when there is none). Idempotent. Throws `IpamRangeChangedError` when
   * the stored state is for another range, `DecodeError` when it is corrupt (never silently starts afresh: that could
   * hand out addresses our containers still use).
   */
  start(): void {
    if (this.isStarted) return;
    let doc: Buffer | undefined;
    try {
      doc = this.deps.store.read(this.storeKey);
    } catch (err) {
      throw new DecodeError(`IPAM state in the Store cannot be read (${(err as Error).message}); run 'weft reset' to drop it`);
    }
    if (doc !== undefined && doc.length > MAX_STATE_DOC_BYTES) {
      throw new DecodeError(
        `IPAM state in the Store is ${doc.length} bytes, over the cap of ${MAX_STATE_DOC_BYTES}; run 'weft reset' to drop it`,
      );
    }
    if (doc !== undefined) this.load(doc);
    else this.applyInit();
    this.syncSpace();
    this.isStarted = true;
    this.persist();
    this.gossipState();
  }

  /** Hand us the gossip channel (the mesh creates it with this gossiper). Sends our state if we have any. */
  attach(channel: GossipChannel): void {
    this.channel = channel;
    if (this.isStarted) this.gossipState();
  }

  /** Cancel timers and fail everything waiting with `IpamStoppedError`. Idempotent. State stays in the Store. */
  stop(): void {
    if (this.isStopped) return;
    this.isStopped = true;
    this.proposeTimer?.cancel();
    for (const w of this.readyWaiters) {
      w.timer?.cancel();
      w.reject(new IpamStoppedError('wait for IPAM'));
    }
    this.readyWaiters.clear();
    for (const [, p] of this.pending) {
      p.timer.cancel();
      p.resolve('gone');
    }
    this.pending.clear();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The API

  /** True once a ring exists and this peer was not removed from it. */
  get isReady(): boolean {
    return !this.ring.isEmpty && this.removedBy === undefined;
  }

  /**
   * An address for `ident` in `subnet` (CIDR inside the range; @default the default subnet), as "a.b.c.d/prefix".
   * Idempotent: the same ident and subnet give the same address until released. Waits for a ring (up to
   * `readyTimeoutMs`, then `IpamNotReadyError`) and for donations; fails with `IpamExhaustedError` when neither this
   * peer nor any reachable peer has a free address in the subnet.
   */
  async allocate(ident: string, subnet?: string): Promise<string> {
    const s = this.parseSubnet(subnet);
    const usable = rangeIntersect(usableRange(s), cidrRange(this.cidr));
    const what = `allocate in ${formatCidr(s)} for ${ident}`;
    const callSeq = ++this.seq;
    await this.whenReady(what, this.readyTimeoutMs);
    for (let attempt = 0; attempt < 10_000; attempt++) {
      this.checkUsable(what);
      for (const a of this.byIdent.get(ident) ?? []) {
        if (rangeContains(usable, a) && this.prefixes.get(a) === s.prefix) return `${formatAddress(a)}/${s.prefix}`;
      }
      const addr = this.space.allocate(usable, ident);
      if (addr !== undefined) {
        this.recordHeld(addr, s.prefix, ident);
        this.persist();
        return `${formatAddress(addr)}/${s.prefix}`;
      }
      await this.findSpace(s, usable, callSeq);
    }
    throw new Error(`IPAM: allocation for ${ident} did not settle`);
  }

  /**
   * Hold exactly `address` ("a.b.c.d" or "a.b.c.d/prefix"; without a prefix, the default subnet's when it contains
   * the address, else the range's) for `ident`, and return it with its prefix. Idempotent for the same ident.
   * Addresses outside the range are not IPAM's to manage and come back unchanged. If another peer owns the address it
   * is asked to give it up; held anywhere by another ident -> `IpamConflictError` naming the holder and its peer.
   */
  async claim(ident: string, address: string): Promise<string> {
    const { addr, prefix } = this.parseClaim(address);
    const text = `${formatAddress(addr)}/${prefix}`;
    if (!rangeContains(cidrRange(this.cidr), addr)) return text;
    const what = `claim ${formatAddress(addr)} for ${ident}`;
    await this.whenReady(what, this.readyTimeoutMs);
    for (let attempt = 0; attempt < MAX_SPACE_ROUNDS; attempt++) {
      this.checkUsable(what);
      const result = this.space.claim(addr, ident);
      if (result === 'ok') {
        this.recordHeld(addr, prefix, ident);
        this.persist();
        return text;
      }
      if (result === 'held') throw new IpamConflictError(formatAddress(addr), this.space.holderOf(addr)!, this.ourName);
      const owner = this.ring.ownerOf(addr)!;
      if (owner === this.ourName) throw new Error(`IPAM: ${formatAddress(addr)} is ours by the ring but not in our space`);
      const reply = await this.request(owner, { mode: 'exact', address: addr, prefix: 32 });
      if (reply === 'unreachable' || reply === 'timeout' || reply === 'gone') {
        if (reply === 'gone') throw new IpamStoppedError(what);
        throw new IpamOwnerUnreachableError(formatAddress(addr), owner);
      }
      if (reply.result === 'held') throw new IpamConflictError(formatAddress(addr), reply.holder, owner);
    }
    throw new IpamOwnerUnreachableError(formatAddress(addr), this.ring.ownerOf(addr) ?? '(nobody)');
  }

  /** Release every address `ident` holds here. Returns how many were released. */
  release(ident: string): number {
    const addrs = [...(this.byIdent.get(ident) ?? [])];
    for (const a of addrs) this.dropHeld(a);
    if (addrs.length > 0) this.persist();
    return addrs.length;
  }

  /** Release one address ("a.b.c.d", a prefix is ignored). Returns false when this peer did not hold it. */
  releaseAddress(address: string): boolean {
    const addr = parseAddress(address.split('/')[0]!);
    if (this.space.holderOf(addr) === undefined) return false;
    this.dropHeld(addr);
    this.persist();
    return true;
  }

  /** The addresses `ident` holds here, "a.b.c.d/prefix", sorted. */
  addressesOf(ident: string): string[] {
    return [...(this.byIdent.get(ident) ?? [])].sort((a, b) => a - b).map((a) => `${formatAddress(a)}/${this.prefixes.get(a)}`);
  }

  /** Every holding here: address "a.b.c.d/prefix" -> ident. */
  holdings(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [a, ident] of this.space.holdings()) out.set(`${formatAddress(a)}/${this.prefixes.get(a)}`, ident);
    return out;
  }

  /** Addresses this peer could hand out in `subnet` right now without asking anyone (@default the default subnet). */
  freeIn(subnet?: string): number {
    const s = this.parseSubnet(subnet);
    return this.space.freeIn(rangeIntersect(usableRange(s), cidrRange(this.cidr)));
  }

  /** Resolves once a ring exists (starting consensus if that is how this peer initialises). */
  async prime(timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    await this.whenReady('prime', timeoutMs);
  }

  /**
   * `weft rmpeer NAME`: take over the space of `name`, a peer gone for good, and return how many addresses moved.
   * Refused (`IpamRmpeerError`) for ourselves, for a peer currently reachable, and for a peer another router already
   * took over; a no-op (0) when we already did, or when it owns nothing.
   */
  async rmpeer(name: string): Promise<number> {
    if (name === this.ourName) {
      throw new IpamRmpeerError(`cannot rmpeer ${name}: that is this peer; to drop this peer's IPAM state use 'weft reset' here`);
    }
    await this.whenReady(`rmpeer ${name}`, this.readyTimeoutMs);
    this.checkUsable(`rmpeer ${name}`);
    if (this.reachable.has(name)) {
      throw new IpamRmpeerError(`cannot rmpeer ${name}: it is reachable; stop it (or run 'weft reset' on it) first, then retry`);
    }
    const owned = this.ring.ownedBy(name).reduce((n, r) => n + rangeSize(r), 0);
    const by = this.ring.removedBy(name);
    if (owned === 0) {
      if (by !== undefined && by !== this.ourName) {
        throw new IpamRmpeerError(`cannot rmpeer ${name}: its space was already taken over by ${by}; nothing to do`);
      }
      return 0;
    }
    const moved = this.ring.transfer(name, this.ourName);
    this.ring.checkInvariants();
    this.ringChanged();
    this.deps.log.warn({ peer: name, addresses: moved }, 'ipam: took over the space of a removed peer');
    this.refreshFreeHints();
    this.persist();
    this.gossipState(true);
    return moved;
  }

  /**
   * `weft reset`: give our space to a reachable peer (if one is known; otherwise it stays ours in the others' view
   * until someone runs `weft rmpeer` for us), then drop all IPAM state here, persisted and in memory, and stop.
   * Addresses held here are forgotten: reset is for a peer whose containers are gone.
   */
  async reset(): Promise<void> {
    if (!this.ring.isEmpty && this.removedBy === undefined) {
      const heir = [...this.ring.ownership().keys(), ...this.reachable].find((p) => p !== this.ourName && this.reachable.has(p));
      if (heir !== undefined && this.ring.ownedBy(this.ourName).length > 0) {
        const moved = this.ring.transfer(this.ourName, heir);
        this.deps.log.info({ peer: heir, addresses: moved }, 'ipam: handed our space over before reset');
        this.gossipState(true);
      }
    }
    this.stop();
    this.deps.store.remove(this.storeKey);
    this.ring = new Ring(this.cidr);
    this.space = new Space();
    this.consensus = null;
    this.prefixes.clear();
    this.byIdent.clear();
    this.ownedKey = '';
  }

  /**
   * Tell the allocator which peers are reachable now (the daemon calls this on every topology change). Used to
   * refuse `rmpeer` of a live peer, to pick a `reset` heir and for `status`. Requests to a peer that left fail at
   * once instead of waiting for their timeout.
   */
  setReachablePeers(peers: Iterable<string>): void {
    const next = new Set(peers);
    next.delete(this.ourName);
    for (const name of this.reachable) if (!next.has(name)) this.onPeerGone(name);
    this.reachable.clear();
    for (const n of next) this.reachable.add(n);
    this.hasReachability = true;
  }

  /** A peer became unreachable: stop waiting for its replies. */
  onPeerGone(name: string): void {
    this.reachable.delete(name);
    for (const [id, p] of this.pending) {
      if (p.dst !== name) continue;
      p.timer.cancel();
      this.pending.delete(id);
      p.resolve('timeout');
    }
  }

  /** `weft status ipam`: how the range is split (`share` is a fraction of the range, 0..1). */
  status(reachablePeers: Set<string>, nicknames: Map<string, string>): IpamReport {
    let status: IpamReport['status'];
    if (!this.ring.isEmpty) status = 'ready';
    else status = this.readyWaiters.size > 0 || this.proposeTimer !== undefined ? 'awaiting consensus' : 'idle';
    const total = rangeSize(cidrRange(this.cidr));
    const peers = [...this.ring.ownership()].map(([name, o]) => ({
      name,
      nickname: name === this.ourName ? this.ourNickname : (nicknames.get(name) ?? ''),
      addresses: o.addresses,
      share: o.addresses / total,
      isReachable: name === this.ourName || reachablePeers.has(name),
    }));
    const counters = Object.fromEntries(Object.entries(this.counters).sort(([x], [y]) => (x < y ? -1 : 1)));
    const free = this.space.freeIn(rangeIntersect(usableRange(this.cidr), cidrRange(this.cidr)));
    return {
      status,
      range: formatCidr(this.cidr),
      defaultSubnet: formatCidr(this.defaultSubnet),
      peers,
      counters,
      allocated: this.prefixes.size,
      free,
    };
  }

  /** A copy of the ring (tests check its invariants and compare peers' views). */
  ringSnapshot(): Ring {
    return this.ring.clone();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Gossiper

  /** Our ring (or, before there is one, our consensus table); null when we know nothing worth sending. */
  gossip(): Uint8Array | null {
    if (!this.isStarted || this.isStopped) return null;
    if (!this.ring.isEmpty) {
      if (this.isFreeHintStale && this.removedBy === undefined) {
        if (this.refreshFreeHints()) this.persist();
      }
      return encodeMessage({ kind: 'state', ring: this.ring, consensus: null });
    }
    if (this.consensus && this.consensus.participants().length > 0)
      return encodeMessage({ kind: 'state', ring: null, consensus: this.consensus });
    return null;
  }

  onGossip(update: Uint8Array, from: string): Uint8Array | null {
    return this.onState(update, from) ? update : null;
  }

  onGossipBroadcast(src: string, update: Uint8Array): void {
    this.onState(update, src);
  }

  onGossipUnicast(src: string, message: Uint8Array): void {
    if (!this.isStarted || this.isStopped) return;
    const m = decodeMessage(message, this.majority);
    if (m.kind === 'request' || m.kind === 'query') {
      // Checked before anything costs us a reply (with our ring), a donation or a write.
      if (!this.requestLimiter.take(src, this.deps.clock.now())) {
        this.refuse(
          'space_request_rate_limited',
          src,
          `ipam: ${src} sends space requests or ring queries faster than the per-peer limit; dropping them`,
        );
        return;
      }
      if (m.kind === 'request') this.onSpaceRequest(src, m);
      else this.onRingQuery(src);
    } else if (m.kind === 'reply') this.onSpaceReply(src, m);
    else this.onState(message, src);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Merging what others tell us

  /** Merge a STATE message from `src` (see the top: attribution). Returns whether we learned anything. */
  private onState(bytes: Uint8Array, src: string): boolean {
    if (!this.isStarted || this.isStopped) return false;
    const m = decodeMessage(bytes, this.majority);
    if (m.kind !== 'state') throw new DecodeError('IPAM gossip carried a non-state message');
    let changed = false;
    if (m.ring) changed = this.mergeRing(m.ring, src) || changed;
    if (m.consensus && this.consensus && this.ring.isEmpty) {
      if (this.consensus.merge(m.consensus)) changed = true;
      this.runConsensus();
    }
    return changed;
  }

  /** Merge a ring from `src`; refusals are logged once per kind and peer and counted, never thrown into the mesh. */
  private mergeRing(received: Ring, src: string): boolean {
    const wasEmpty = this.ring.isEmpty;
    const { ring: incoming, outbids } = this.screenRing(received, src);
    let changed: boolean;
    try {
      changed = this.ring.merge(incoming, this.ourName);
    } catch (err) {
      if (err instanceof RingCapError) {
        this.refuse('ring_entry_cap', src, `ipam: refused a ring from ${src}: ${err.message}`);
        return false;
      }
      if (err instanceof RingMismatchError) {
        this.count('ring_mismatch');
        this.warnOnce(`mismatch|${incoming.describe()}`, { peer: src, err }, 'ipam: refused a ring initialised separately');
        return false;
      }
      if (err instanceof RingConflictError) {
        this.count('ring_conflict');
        // Only the taker's own word removes us (screenRing has taken the claim out of anyone else's ring).
        if (err.removedBy !== undefined && this.removedBy === undefined && err.removedBy === src) {
          this.removedBy = err.removedBy;
          this.deps.log.error({ peer: err.removedBy, err }, 'ipam: this peer was removed by rmpeer; allocations refused until weft reset');
          this.failWaiters(new IpamRemovedError(this.ourName, err.removedBy));
        } else {
          this.warnOnce(`conflict|${src ?? ''}|${err.message}`, { peer: src, err }, 'ipam: refused a conflicting ring update');
        }
        return false;
      }
      throw err;
    }
    if (this.applyOutbids(outbids)) changed = true;
    if (!changed) return false;
    this.ring.checkInvariants();
    this.ringChanged();
    if (wasEmpty) {
      this.consensus = null;
      this.proposeTimer?.cancel();
      this.proposeTimer = undefined;
      this.deps.log.info({ peer: src, ring: this.ring.describe() }, 'ipam: ring received');
    }
    this.syncSpace();
    this.persist();
    if (this.isReady) this.wakeWaiters();
    return true;
  }

  /**
   * Take out of `received` what `src` cannot claim (see the top of the file). Returns the ring to merge and the
   * entries of ours to re-publish above a forged version (token -> that version).
   */
  private screenRing(received: Ring, src: string): { ring: Ring; outbids: Map<number, number> } {
    const me = this.ourName;
    const outbids = new Map<number, number>();
    const replace = new Map<number, RingEntry | null>();
    const dropTombs = new Set<string>();
    for (const [removed, taker] of received.tombstones()) {
      if (this.ring.removedBy(removed) === taker) continue; // known already
      if (removed === taker) {
        dropTombs.add(removed);
        this.refuse('ring_bad_tombstone', src, `ipam: dropped a tombstone from ${src} naming ${removed} as its own taker`);
      } else if (taker === me && src !== removed) {
        // Only a peer giving its own space away (reset) names us as its heir; we record our own rmpeer ourselves.
        dropTombs.add(removed);
        this.refuse('ring_forged_tombstone', src, `ipam: dropped a tombstone from ${src} saying this peer took over ${removed}`);
      }
    }
    const taker = received.removedBy(me);
    const isRemovalClaim = taker !== undefined && this.ring.removedBy(me) !== taker;
    const isTakersWord = isRemovalClaim && src === taker;
    if (isRemovalClaim && !isTakersWord) {
      dropTombs.add(me);
      this.refuse('ring_unattributed_removal', src, `ipam: ${src} relays a claim that ${taker} removed this peer; asking ${taker} itself`);
      this.query(taker!);
    }
    if (taker !== undefined && src === taker) {
      // The taker itself says it removed us: the claim stands (the merge below finds the conflict).
      this.removalClaims.delete(taker);
    } else if (this.removalClaims.has(src)) {
      // The peer named as taker speaks and does not say it: the claim was forged; outbid what it changed.
      const claim = this.removalClaims.get(src)!;
      this.removalClaims.delete(src);
      for (const [t, v] of claim) outbids.set(t, v);
      this.refuse(
        'ring_removal_denied',
        src,
        `ipam: ${src} does not say it removed this peer: the claim was forged; re-publishing our entries`,
      );
    }
    const ceiling = Math.floor(this.wallClockMs() / 1000) + RING_VERSION_LEAD_S;
    if (this.ring.isEmpty) {
      for (const y of received.entryList()) if (y.version > ceiling) replace.set(y.token, null);
      if (replace.has(received.range.start)) {
        this.refuse('ring_implausible_version', src, `ipam: refused a ring from ${src} with implausible versions`);
        return { ring: new Ring(this.cidr), outbids };
      }
    } else {
      for (const y of received.entryList()) {
        const x = this.ring.entryAt(y.token);
        if (x && y.version <= x.version) continue; // the merge keeps ours
        if (y.version > ceiling) {
          replace.set(y.token, x ?? null);
          this.refuse('ring_implausible_version', src, `ipam: dropped ring entries from ${src} with versions above the wall clock`);
          continue;
        }
        const ownerHere = x ? x.owner : this.ring.ownerOf(y.token);
        if (ownerHere === me) {
          if (isTakersWord) continue; // the merge finds the conflict and we learn we were removed
          replace.set(y.token, x ?? null);
          if (isRemovalClaim) {
            if (x) {
              const claim = this.removalClaims.get(taker!) ?? new Map<number, number>();
              claim.set(y.token, Math.max(y.version, claim.get(y.token) ?? 0));
              if (this.removalClaims.size < 64 || this.removalClaims.has(taker!)) this.removalClaims.set(taker!, claim);
            }
          } else {
            if (x) outbids.set(y.token, Math.max(y.version, outbids.get(y.token) ?? 0));
            this.refuse(
              'ring_foreign_change',
              src,
              `ipam: ${src} relays a change to this peer's own ring entries; keeping ours and re-publishing above it`,
            );
          }
          continue;
        }
        if (y.owner === me && ownerHere !== undefined && src !== ownerHere) {
          replace.set(y.token, x ?? null);
          this.refuse(
            'ring_unattributed_gain',
            src,
            `ipam: ${src} relays space given to this peer by ${ownerHere}; asking ${ownerHere} itself`,
          );
          this.query(ownerHere);
        }
      }
    }
    if (replace.size === 0 && dropTombs.size === 0) return { ring: received, outbids };
    return { ring: received.screened(replace, dropTombs), outbids };
  }

  /** Re-publish our entries above forged versions; returns whether any changed. */
  private applyOutbids(outbids: ReadonlyMap<number, number>): boolean {
    let changed = false;
    for (const [token, version] of outbids) {
      const x = this.ring.entryAt(token);
      if (!x || x.owner !== this.ourName || x.version > version) continue;
      if (this.ring.outbid(this.ourName, token, version)) changed = true;
      else
        this.refuse('ring_outbid_impossible', this.ourName, `ipam: cannot re-publish our entry at token ${token} above version ${version}`);
    }
    if (changed) this.count('ring_outbids');
    return changed;
  }

  /** Ask `peer` for its ring (its answer is its own word); at most once per peer per 10 s. */
  private query(peer: string): void {
    if (!this.channel || peer === this.ourName || !this.queryLimiter.take(peer, this.deps.clock.now())) return;
    this.count('ring_queries');
    this.channel.gossipUnicast(peer, encodeMessage({ kind: 'query' }));
  }

  /** A peer asks for our ring: answer with our STATE, by unicast. */
  private onRingQuery(src: string): void {
    const state = this.gossip();
    if (state) this.channel?.gossipUnicast(src, state);
  }

  /** Count a refusal and log it once per reason and peer (bounded). */
  private refuse(reason: string, peer: string, msg: string): void {
    this.count(reason);
    if (this.warned.has(`${reason}|${peer}`) || this.warned.size >= 1024) return;
    this.warned.add(`${reason}|${peer}`);
    this.deps.log.warn({ peer, reason }, msg);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Consensus

  /** Start (or restart) proposing, if this peer initialises by consensus and still has no ring. */
  private ensureConsensus(): void {
    if (!this.ring.isEmpty || this.consensus === null || this.isStopped || this.proposeTimer !== undefined) return;
    this.propose();
  }

  private propose(): void {
    if (!this.ring.isEmpty || this.consensus === null || this.isStopped) return;
    const id = this.consensus.propose();
    this.deps.log.debug({ round: id.round }, 'ipam: proposing a ring');
    this.count('consensus_proposals');
    this.runConsensus(true);
    const delay = this.consensusRetryMs * (1 + this.deps.random.next());
    this.proposeTimer = this.deps.clock.setTimeout(() => {
      this.proposeTimer = undefined;
      if (this.ring.isEmpty && this.readyWaiters.size > 0) this.propose();
    }, delay);
  }

  /** Apply the Paxos rules to what we know; adopt the ring once a value is chosen. */
  private runConsensus(isChanged = false): void {
    const c = this.consensus;
    if (c === null || !this.ring.isEmpty) return;
    let changed = isChanged;
    while (c.step()) changed = true;
    const chosen = c.decision();
    if (chosen !== undefined) {
      this.ring.claimForPeers(chosen);
      this.ring.checkInvariants();
      this.ringChanged();
      this.consensus = null;
      this.proposeTimer?.cancel();
      this.proposeTimer = undefined;
      this.deps.log.info({ ring: this.ring.describe() }, 'ipam: consensus reached');
      this.syncSpace();
      this.persist();
      this.gossipState(true);
      this.wakeWaiters();
      return;
    }
    if (changed) {
      this.persist();
      this.gossipState();
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Asking for and giving space

  /**
   * Get more space in `s` from other peers, coalescing concurrent searches for the same subnet. Resolves when a
   * donation arrived (the caller retries its allocation); rejects with `IpamExhaustedError` when nobody reachable
   * has any.
   */
  private async findSpace(s: Cidr, usable: AddressRange, callSeq: number): Promise<void> {
    const key = formatCidr(s);
    const current = this.spaceSearches.get(key);
    if (current) {
      try {
        return await current.promise;
      } catch (err) {
        // A search that began before this allocation asked peers before it existed; their answers may be stale (a
        // peer may have released addresses since), so a "none anywhere" from it does not count for us.
        if (!(err instanceof IpamExhaustedError) || current.seq > callSeq) throw err;
      }
    }
    const again = this.spaceSearches.get(key);
    if (again && again.seq > callSeq) return again.promise;
    const search = { seq: ++this.seq, promise: this.searchSpace(s, usable) };
    this.spaceSearches.set(key, search);
    try {
      return await search.promise;
    } finally {
      if (this.spaceSearches.get(key) === search) this.spaceSearches.delete(key);
    }
  }

  private async searchSpace(s: Cidr, usable: AddressRange): Promise<void> {
    const unreachable = new Set<string>();
    for (let round = 0; round < MAX_SPACE_ROUNDS; round++) {
      const changesBefore = this.ringChanges;
      let hadTimeout = false;
      const owners = [...this.ring.ownersIn(usable)].filter(([name]) => name !== this.ourName);
      // Most free first (by the hint), ties in random order so requesters spread over donors.
      const order = this.deps.random.sample(owners, owners.length).sort((a, b) => b[1].freeHint - a[1].freeHint);
      for (const [owner] of order) {
        if (this.hasReachability && !this.reachable.has(owner)) {
          unreachable.add(owner);
          continue;
        }
        const freeBefore = this.space.freeIn(usable);
        const reply = await this.request(owner, { mode: 'subnet', address: s.start, prefix: s.prefix });
        if (reply === 'gone') throw new IpamStoppedError(`allocate in ${formatCidr(s)}`);
        if (reply === 'unreachable') {
          unreachable.add(owner);
          continue;
        }
        if (reply === 'timeout') {
          hadTimeout = true;
          continue;
        }
        unreachable.delete(owner);
        if (this.space.freeIn(usable) > freeBefore || (reply.result === 'granted' && this.space.freeIn(usable) > 0)) return;
      }
      if (this.space.freeIn(usable) > 0) return;
      if (this.ringChanges === changesBefore && !hadTimeout) break;
    }
    this.count('exhausted');
    throw new IpamExhaustedError(formatCidr(s), [...unreachable].sort());
  }

  /** Send a space request; resolves with the reply, 'unreachable' (no route), 'timeout', or 'gone' (stopping). */
  private request(dst: string, body: Omit<SpaceRequest, 'kind' | 'id'>): Promise<SpaceReply | 'unreachable' | 'timeout' | 'gone'> {
    if (this.isStopped) return Promise.resolve('gone');
    if (!this.channel) return Promise.resolve('unreachable');
    const id = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId + 1) >>> 0;
    this.count('space_requests');
    if (!this.channel.gossipUnicast(dst, encodeMessage({ kind: 'request', id, ...body }))) return Promise.resolve('unreachable');
    return new Promise((resolve) => {
      const timer = this.deps.clock.setTimeout(() => {
        this.pending.delete(id);
        this.count('space_request_timeouts');
        resolve('timeout');
      }, this.requestTimeoutMs);
      this.pending.set(id, { dst, resolve, timer });
    });
  }

  private onSpaceReply(src: string, m: SpaceReply): void {
    if (m.ring) this.mergeRing(m.ring, src);
    const p = this.pending.get(m.id);
    if (!p || p.dst !== src) return;
    this.pending.delete(m.id);
    p.timer.cancel();
    p.resolve(m);
  }

  /**
   * A peer asks for space. We give the upper half of our largest free span in the subnet (keeping the lower part,
   * where our own next allocations come from), or exactly the address asked for if it is free here.
   */
  private onSpaceRequest(src: string, m: SpaceRequest): void {
    const reply = (result: SpaceReply['result'], holder = ''): void => {
      this.channel?.gossipUnicast(
        src,
        encodeMessage({ kind: 'reply', id: m.id, result, holder, ring: this.ring.isEmpty ? null : this.ring }),
      );
    };
    if (!this.isReady || src === this.ourName) return reply('none');
    let gift: AddressRange | undefined;
    if (m.mode === 'exact') {
      const holder = this.space.holderOf(m.address);
      if (holder !== undefined) return reply('held', holder);
      if (this.space.freeIn({ start: m.address, end: m.address + 1 }) === 1) gift = { start: m.address, end: m.address + 1 };
    } else {
      const usable = rangeIntersect(usableRange({ start: m.address, prefix: m.prefix }), cidrRange(this.cidr));
      const block = rangeSize(usable) > 0 ? this.space.largestFreeIn(usable) : undefined;
      if (block) {
        const size = Math.ceil(rangeSize(block) / 2);
        gift = { start: block.end - size, end: block.end };
      }
    }
    if (gift && !this.ring.canSplit(2)) {
      this.refuse('ring_entry_cap', src, `ipam: the ring holds its cap of entries; no more space can be split off for ${src}`);
      gift = undefined;
    }
    if (gift && !this.donationLimiter.take(src, this.deps.clock.now())) {
      this.refuse('space_donation_limited', src, `ipam: ${src} asked for more donations than the per-peer limit; answering none`);
      return reply('none');
    }
    if (!gift) {
      this.count('space_refused');
      // Our hints may say we have space we do not: correct them, so the requester's next round skips us.
      if (this.isFreeHintStale && this.refreshFreeHints()) this.persist();
      return reply('none');
    }
    this.space.give(gift);
    this.ring.grantTo(this.ourName, src, gift);
    this.ring.checkInvariants();
    this.ringChanged();
    this.ownedKey = JSON.stringify(this.space.ownedRanges());
    this.refreshFreeHints();
    this.persist();
    this.count('space_donated');
    this.deps.log.debug({ peer: src, range: formatRange(gift) }, 'ipam: donated space');
    reply('granted');
    this.gossipState();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // Internals

  private whenReady(what: string, timeoutMs: number): Promise<void> {
    if (this.isStopped) return Promise.reject(new IpamStoppedError(what));
    if (this.removedBy !== undefined) return Promise.reject(new IpamRemovedError(this.ourName, this.removedBy));
    if (this.isReady) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w: ReadyWaiter = { resolve, reject, timer: undefined };
      if (Number.isFinite(timeoutMs)) {
        w.timer = this.deps.clock.setTimeout(() => {
          this.readyWaiters.delete(w);
          reject(new IpamNotReadyError(what, this.ring.isEmpty && this.consensus ? 'awaiting consensus' : 'without a ring', timeoutMs));
        }, timeoutMs);
      }
      this.readyWaiters.add(w);
      this.ensureConsensus();
    });
  }

  private wakeWaiters(): void {
    for (const w of this.readyWaiters) {
      w.timer?.cancel();
      w.resolve();
    }
    this.readyWaiters.clear();
  }

  private failWaiters(err: Error): void {
    for (const w of this.readyWaiters) {
      w.timer?.cancel();
      w.reject(err);
    }
    this.readyWaiters.clear();
  }

  private checkUsable(what: string): void {
    if (this.isStopped) throw new IpamStoppedError(what);
    if (this.removedBy !== undefined) throw new IpamRemovedError(this.ourName, this.removedBy);
  }

  private parseSubnet(subnet: string | undefined): Cidr {
    if (subnet === undefined || subnet === '' || subnet === 'default') return this.defaultSubnet;
    const s = parseCidr(subnet);
    if (!rangeCovers(cidrRange(this.cidr), cidrRange(s))) {
      throw new InvalidAddressError(`subnet ${formatCidr(s)} is not inside the IPAM range ${formatCidr(this.cidr)}; pick a subnet of it`);
    }
    return s;
  }

  private parseClaim(address: string): { addr: Address; prefix: number } {
    if (address.includes('/')) {
      const [a, p] = address.split('/');
      const addr = parseAddress(a!);
      return { addr, prefix: parseCidr(`${a}/${p}`).prefix };
    }
    const addr = parseAddress(address);
    const prefix = rangeContains(cidrRange(this.defaultSubnet), addr) ? this.defaultSubnet.prefix : this.cidr.prefix;
    return { addr, prefix };
  }

  private recordHeld(addr: Address, prefix: number, ident: string): void {
    this.prefixes.set(addr, prefix);
    let set = this.byIdent.get(ident);
    if (!set) this.byIdent.set(ident, (set = new Set()));
    set.add(addr);
    this.isFreeHintStale = true;
  }

  private dropHeld(addr: Address): void {
    const ident = this.space.holderOf(addr);
    this.space.release(addr);
    this.prefixes.delete(addr);
    if (ident !== undefined) {
      const set = this.byIdent.get(ident);
      set?.delete(addr);
      if (set?.size === 0) this.byIdent.delete(ident);
    }
    this.isFreeHintStale = true;
  }

  /** Make the Space follow the ring's view of what we own (changes only when space is granted to us). */
  private syncSpace(): void {
    const owned = this.ring.ownedBy(this.ourName);
    const key = JSON.stringify(owned);
    if (key === this.ownedKey) return;
    this.ownedKey = key;
    this.space.setOwned(owned);
    this.isFreeHintStale = true;
  }

  /** Write our free counts into our ring entries (version bumps only where they changed). Returns whether any did. */
  private refreshFreeHints(): boolean {
    let changed = false;
    for (const seg of this.ring.segments()) {
      if (seg.owner !== this.ourName) continue;
      if (this.ring.setFree(this.ourName, seg.range.start, this.space.freeIn(seg.range))) changed = true;
    }
    this.isFreeHintStale = false;
    if (changed) this.ringChanged();
    return changed;
  }

  private ringChanged(): void {
    this.ringChanges++;
  }

  private gossipState(isBroadcast = false): void {
    if (!this.channel || !this.isStarted || this.isStopped) return;
    const bytes = this.gossip();
    if (bytes === null) return;
    if (isBroadcast) this.channel.gossipBroadcast(bytes);
    else this.channel.gossip(bytes);
  }

  private applyInit(): void {
    if (this.init.mode === 'seed') {
      this.ring.claimForPeers(this.init.peers);
      this.ring.checkInvariants();
      this.ringChanged();
      this.deps.log.info({ ring: this.ring.describe() }, 'ipam: ring seeded');
    } else if (this.init.mode === 'consensus') {
      this.consensus = new Consensus(this.ourName, this.majority);
      this.consensus.join();
    }
  }

  private load(doc: Buffer): void {
    let state: StoredState;
    try {
      state = JSON.parse(doc.toString('utf8')) as StoredState;
      if (state.format !== 1 || typeof state.range !== 'string' || !Array.isArray(state.held)) throw new Error('unknown layout');
    } catch (err) {
      throw new DecodeError(`IPAM state in the Store is corrupt (${(err as Error).message}); run 'weft reset' to drop it`);
    }
    if (state.range !== formatCidr(this.cidr)) throw new IpamRangeChangedError(state.range, formatCidr(this.cidr));
    if (state.ourName !== this.ourName) {
      this.deps.log.warn({ peer: state.ourName }, 'ipam: stored state belongs to another peer name; starting afresh');
      this.applyInit();
      return;
    }
    let table: Consensus | null = null;
    try {
      if (state.ring) this.ring = Ring.decode(Buffer.from(state.ring, 'base64'));
      if (state.consensus) table = Consensus.decodeAt(Buffer.from(state.consensus, 'base64'), 0, this.majority).table;
      for (const h of state.held) {
        if (!Array.isArray(h) || !Number.isInteger(h[0]) || !Number.isInteger(h[1]) || typeof h[2] !== 'string')
          throw new Error('bad holding');
      }
    } catch (err) {
      this.ring = new Ring(this.cidr);
      throw new DecodeError(`IPAM state in the Store is corrupt (${(err as Error).message}); run 'weft reset' to drop it`);
    }
    if (table && this.ring.isEmpty) {
      this.consensus = new Consensus(this.ourName, this.majority);
      this.consensus.merge(table);
      this.consensus.join();
    } else if (this.ring.isEmpty) {
      this.applyInit();
    }
    for (const [addr, prefix, ident] of state.held) {
      this.space.hold(addr, ident);
      this.recordHeld(addr, prefix, ident);
    }
    const by = this.ring.removedBy(this.ourName);
    if (by !== undefined && this.ring.ownedBy(this.ourName).length === 0 && state.held.length > 0) this.removedBy = by;
  }

  private persist(): void {
    if (!this.isStarted) return;
    const held: Array<[number, number, string]> = [];
    for (const [a, ident] of this.space.holdings()) held.push([a, this.prefixes.get(a)!, ident]);
    const doc: StoredState = {
      format: 1,
      range: formatCidr(this.cidr),
      ourName: this.ourName,
      ring: this.ring.isEmpty ? null : Buffer.from(this.ring.encode()).toString('base64'),
      consensus: this.consensus ? Buffer.from(this.consensus.encode()).toString('base64') : null,
      held,
    };
    this.deps.store.write(this.storeKey, JSON.stringify(doc));
  }

  private count(reason: string): void {
    this.counters[reason] = (this.counters[reason] ?? 0) + 1;
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(key) || this.warned.size >= 1024) return;
    this.warned.add(key);
    this.deps.log.error(fields, msg);
  }
}
