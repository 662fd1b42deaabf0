/**
 * The ring: who owns which part of the IPAM range, as a CRDT every peer holds a copy of and gossips.
 *
 * The range is cut at tokens (addresses). Entry i says: the segment `[token_i, token_{i+1})` (the last one runs to the
 * end of the range) belongs to `owner`, at `version`, and had `free` unallocated addresses when the owner last said.
 * The first token is always the start of the range, so the segments cover the range exactly once by construction.
 *
 * Rules that make merging safe without a coordinator:
 * - Only a segment's owner changes its entry (gives it away, splits it, updates its free count), and every change bumps
 *   the entry's version. The one exception is `transfer` (`weft rmpeer`), which takes over a dead peer's entries.
 * - Tokens are only ever added, never removed: a missing token is "not heard of yet", never "deleted".
 * - Merge takes, per token, the entry with the higher version; tokens known on one side only are kept. That is a
 *   per-key max, hence commutative, associative and idempotent.
 * - The same token at the same version with two different owners means two peers changed one entry independently
 *   (rmpeer on both sides of a partition, or a removed peer still running): the merge is refused with
 *   `RingConflictError` rather than resolved, because either resolution could already have handed out an address twice.
 * - Rings from different ranges or seed sets were initialised separately: refused with `RingMismatchError`.
 * - Tombstones record `removed peer -> peer that took its space over`, so the removed peer can tell why, and a second
 *   `rmpeer` for the same name is recognised.
 */
import { type Address, type AddressRange, type Cidr, cidrRange, formatCidr, formatRange, rangeIntersect, rangeSize } from './address.js';
import { DecodeError, RingCapError, RingConflictError, RingMismatchError } from './errors.js';

/** One token of the ring. `free` is a hint for donors: the owner's last count of unallocated addresses in it. */
export interface RingEntry {
  token: Address;
  owner: string;
  version: number;
  free: number;
}

/** A segment as queries return it. */
export interface Segment {
  readonly range: AddressRange;
  readonly owner: string;
  readonly version: number;
  readonly free: number;
}

/** Limits applied when decoding a ring from the network or the store. */
export const RING_LIMITS = {
  /** Distinct peer names in one ring (owners, seeds, tombstones). */
  maxNames: 4096,
  /** Bytes in one peer name. */
  maxNameBytes: 64,
  /**
   * Entries in one ring, received, merged, grown by donations, saved and loaded alike. Sized so that the largest
   * ring (with 4096 names of 64 bytes) still encodes under the 1 MiB gossip frame: 8 + 4096·65 + 2·4096 + 4 +
   * 14·32768 + 2 + 4·4096 ≈ 752 KiB.
   */
  maxEntries: 1 << 15,
} as const;

const FORMAT_VERSION = 1;
const ENTRY_BYTES = 14;
const NAME_RE = /^[\x21-\x7e]{1,64}$/;

/** The ring CRDT. Mutating methods check their preconditions and throw plain `Error` on misuse (a bug in the caller). */
export class Ring {
  readonly cidr: Cidr;
  readonly range: AddressRange;
  private seedList: string[] = [];
  private entries: RingEntry[] = [];
  private readonly removed = new Map<string, string>();

  constructor(cidr: Cidr) {
    this.cidr = cidr;
    this.range = cidrRange(cidr);
  }

  /** True until the ring is seeded (by `claimForPeers` or by merging a seeded ring). */
  get isEmpty(): boolean {
    return this.entries.length === 0;
  }

  /** The sorted peer names the ring was first divided between; they identify the ring. */
  get seeds(): readonly string[] {
    return this.seedList;
  }

  /** Number of tokens. */
  get entryCount(): number {
    return this.entries.length;
  }

  /** "10.32.0.0/12 seeded by [a, b]": what two rings must share to merge. */
  describe(): string {
    return `${formatCidr(this.cidr)} seeded by [${this.seedList.join(', ')}]`;
  }

  /** A deep copy. */
  clone(): Ring {
    const r = new Ring(this.cidr);
    r.seedList = this.seedList.slice();
    r.entries = this.entries.map((e) => ({ ...e }));
    for (const [k, v] of this.removed) r.removed.set(k, v);
    return r;
  }

  /**
   * Divide an empty ring evenly between `peers` (duplicates ignored; order does not matter: every peer computing this
   * from the same set gets the same ring, which is what lets seeded peers start without talking).
   */
  claimForPeers(peers: readonly string[]): void {
    if (!this.isEmpty) throw new Error('claimForPeers on a ring that is already seeded');
    const names = [...new Set(peers)].sort();
    if (names.length === 0) throw new Error('claimForPeers needs at least one peer');
    for (const n of names) checkName(n);
    const total = rangeSize(this.range);
    const share = Math.floor(total / names.length);
    const extra = total % names.length;
    let at = this.range.start;
    names.forEach((owner, i) => {
      const size = share + (i < extra ? 1 : 0);
      if (size === 0) return;
      this.entries.push({ token: at, owner, version: 0, free: size });
      at += size;
    });
    this.seedList = names;
  }

  /** Segments in address order. */
  segments(): Segment[] {
    return this.entries.map((e, i) => ({
      range: { start: e.token, end: this.endOf(i) },
      owner: e.owner,
      version: e.version,
      free: e.free,
    }));
  }

  /** The owner of `addr`, or undefined when the ring is empty or `addr` is outside the range. */
  ownerOf(addr: Address): string | undefined {
    if (addr < this.range.start || addr >= this.range.end) return undefined;
    const i = this.indexAt(addr);
    return i < 0 ? undefined : this.entries[i]!.owner;
  }

  /** The spans `peer` owns, adjacent segments joined, in address order. */
  ownedBy(peer: string): AddressRange[] {
    const out: Array<{ start: number; end: number }> = [];
    this.entries.forEach((e, i) => {
      if (e.owner !== peer) return;
      const end = this.endOf(i);
      const last = out[out.length - 1];
      if (last && last.end === e.token) last.end = end;
      else out.push({ start: e.token, end });
    });
    return out;
  }

  /** Per owner: addresses owned in total and the free hint, for `weft status ipam`. */
  ownership(): Map<string, { addresses: number; free: number }> {
    const out = new Map<string, { addresses: number; free: number }>();
    this.entries.forEach((e, i) => {
      const o = out.get(e.owner) ?? { addresses: 0, free: 0 };
      o.addresses += this.endOf(i) - e.token;
      o.free += e.free;
      out.set(e.owner, o);
    });
    return out;
  }

  /**
   * Per owner of some part of `r`: how many of its addresses lie in `r` and the free hint for that part (the segment's
   * hint scaled down to the overlap, as the hint does not say where in the segment the free addresses are).
   */
  ownersIn(r: AddressRange): Map<string, { addresses: number; freeHint: number }> {
    const out = new Map<string, { addresses: number; freeHint: number }>();
    this.entries.forEach((e, i) => {
      const seg = { start: e.token, end: this.endOf(i) };
      const n = rangeSize(rangeIntersect(seg, r));
      if (n === 0) return;
      const o = out.get(e.owner) ?? { addresses: 0, freeHint: 0 };
      o.addresses += n;
      o.freeHint += Math.min(n, e.free);
      out.set(e.owner, o);
    });
    return out;
  }

  /** Who took over `peer`'s space with `rmpeer`, if anyone did. */
  removedBy(peer: string): string | undefined {
    return this.removed.get(peer);
  }

  /** Every tombstone, removed peer -> the peer that took over. */
  tombstones(): ReadonlyMap<string, string> {
    return this.removed;
  }

  /**
   * Give `r` (which `self` must own entirely) to `peer`: split at its ends if needed, then hand every segment inside
   * it over with a version bump. The granted segments' free hints say "all free" (only free space is donated).
   */
  grantTo(self: string, peer: string, r: AddressRange): void {
    checkName(peer);
    if (rangeSize(r) === 0) throw new Error('grantTo an empty range');
    if (r.start < this.range.start || r.end > this.range.end) throw new Error(`grantTo ${formatRange(r)} outside the ring`);
    for (let i = this.indexAt(r.start); i < this.entries.length && this.entries[i]!.token < r.end; i++) {
      if (this.entries[i]!.owner !== self) throw new Error(`grantTo: ${self} does not own all of ${formatRange(r)}`);
    }
    if (!this.canSplit(2))
      throw new RingCapError(`IPAM ring has ${this.entries.length} entries; a grant would pass the cap of ${RING_LIMITS.maxEntries}`);
    this.splitAt(r.start);
    this.splitAt(r.end);
    for (let i = this.indexAt(r.start); i < this.entries.length && this.entries[i]!.token < r.end; i++) {
      const e = this.entries[i]!;
      e.owner = peer;
      e.version++;
      e.free = this.endOf(i) - e.token;
    }
  }

  /**
   * Hand every segment of `from` (a peer gone for good) to `to`, bump their versions and record a tombstone.
   * Returns the number of addresses moved. Refusal rules (reachable peers, second takeovers) belong to the caller.
   */
  transfer(from: string, to: string): number {
    checkName(to);
    if (from === to) throw new Error('transfer to the same peer');
    let moved = 0;
    this.entries.forEach((e, i) => {
      if (e.owner !== from) return;
      e.owner = to;
      e.version++;
      moved += this.endOf(i) - e.token;
    });
    this.removed.set(from, to);
    return moved;
  }

  /** Update the free hint of `self`'s segment at `token`; bumps the version when it changes. Returns whether it did. */
  setFree(self: string, token: Address, free: number): boolean {
    const i = this.indexAt(token);
    const e = this.entries[i];
    if (!e || e.token !== token) throw new Error(`setFree: no token ${token}`);
    if (e.owner !== self) throw new Error(`setFree: ${self} does not own token ${token}`);
    const clamped = Math.max(0, Math.min(free, this.endOf(i) - token));
    if (e.free === clamped) return false;
    e.free = clamped;
    e.version++;
    return true;
  }

  /**
   * Merge `other` into this ring. Returns whether anything changed. Throws `RingMismatchError` for rings initialised
   * separately and `RingConflictError` for two owners at one version; on a throw nothing changes.
   *
   * With `self` (our peer name) it also refuses updates that only a bug or a misuse could produce for *our* segments:
   * a newer version of an entry we own, or a new token inside a segment we own. Only we change those; accepting it
   * would mean handing out addresses someone else now believes are theirs.
   */
  merge(other: Ring, self?: string): boolean {
    if (this.cidr.start !== other.cidr.start || this.cidr.prefix !== other.cidr.prefix) {
      throw new RingMismatchError(this.describe(), other.describe());
    }
    if (other.isEmpty) return false;
    if (!this.isEmpty && !sameList(this.seedList, other.seedList)) throw new RingMismatchError(this.describe(), other.describe());

    const merged: RingEntry[] = [];
    let changed = false;
    const a = this.entries;
    const b = other.entries;
    let i = 0;
    let j = 0;
    while (i < a.length || j < b.length) {
      const x = a[i];
      const y = b[j];
      if (y === undefined || (x !== undefined && x.token < y.token)) {
        merged.push({ ...x! });
        i++;
        continue;
      }
      if (x === undefined || y.token < x.token) {
        if (self !== undefined && i > 0 && a[i - 1]!.owner === self) {
          throw this.ownConflict(other, self, `peer ${y.owner} split our segment at token ${y.token}`);
        }
        merged.push({ ...y });
        changed = true;
        j++;
        continue;
      }
      // Same token on both sides.
      if (x.version === y.version) {
        if (x.owner !== y.owner) {
          throw new RingConflictError(
            `IPAM ring conflict at ${formatRange({ start: x.token, end: x.token + 1 })}: owned by both ${x.owner} and ${y.owner} ` +
              `at version ${x.version}; two peers took over the same space (rmpeer on both sides of a partition?). ` +
              `Run 'weft reset' on the peers of one side.`,
            this.removedByFor(other, self),
          );
        }
        const free = Math.min(x.free, y.free);
        if (free !== x.free) changed = true;
        merged.push({ ...x, free });
      } else if (x.version > y.version) {
        merged.push({ ...x });
      } else {
        if (self !== undefined && x.owner === self) {
          throw this.ownConflict(
            other,
            self,
            `peer ${y.owner} changed our entry at token ${x.token} (version ${x.version} -> ${y.version})`,
          );
        }
        merged.push({ ...y });
        changed = true;
      }
      i++;
      j++;
    }
    if (merged.length > RING_LIMITS.maxEntries) {
      throw new RingCapError(`IPAM ring merge would hold ${merged.length} entries, over the cap of ${RING_LIMITS.maxEntries}; refused`);
    }
    // A free count is the owner's hint for its segment as it saw it. An entry taken from `other` may now end sooner (a
    // token only we know splits it): its count cannot exceed the segment it has here (a member's forged count, found by
    // the fuzzer, otherwise broke the ring's invariants after the merge).
    for (let k = 0; k < merged.length; k++) {
      const e = merged[k]!;
      const span = (k + 1 < merged.length ? merged[k + 1]!.token : this.range.end) - e.token;
      if (e.free > span) e.free = Math.max(0, span);
    }
    const removed = new Map(this.removed);
    for (const [k, v] of other.removed) {
      const mine = removed.get(k);
      // Two takers for one peer also shows as an entry conflict above; keep the choice deterministic regardless.
      if (mine === undefined || v < mine) {
        removed.set(k, v);
        changed = true;
      }
    }
    if (!changed) return false;
    this.entries = merged;
    if (this.seedList.length === 0) this.seedList = other.seedList.slice();
    this.removed.clear();
    for (const [k, v] of removed) this.removed.set(k, v);
    return true;
  }

  /** Whether `extra` more tokens fit under `RING_LIMITS.maxEntries`. */
  canSplit(extra: number): boolean {
    return this.entries.length + extra <= RING_LIMITS.maxEntries;
  }

  /** The entry at exactly `token`, if it is one. */
  entryAt(token: Address): RingEntry | undefined {
    const e = this.entries[this.indexAt(token)];
    return e && e.token === token ? { ...e } : undefined;
  }

  /** Every entry, in token order (copies). */
  entryList(): RingEntry[] {
    return this.entries.map((e) => ({ ...e }));
  }

  /**
   * A copy with the claims we cannot attribute taken out: the entry at each token in `replace` becomes the given
   * entry (ours, so the merge keeps what we have), or goes when it is null (a token we never heard of); tombstones
   * naming `removedPeers` as removed go too. Free hints are clamped to the segments that result.
   */
  screened(replace: ReadonlyMap<Address, RingEntry | null>, removedPeers: ReadonlySet<string>): Ring {
    const r = this.clone();
    const out: RingEntry[] = [];
    for (const e of r.entries) {
      const sub = replace.get(e.token);
      if (sub === undefined) out.push(e);
      else if (sub !== null) out.push({ ...sub, token: e.token });
    }
    if (out.length === 0 || out[0]!.token !== this.range.start) throw new Error('screened: the first token cannot be dropped');
    r.entries = out;
    r.entries.forEach((e, i) => (e.free = Math.min(e.free, r.endOf(i) - e.token)));
    for (const p of removedPeers) r.removed.delete(p);
    return r;
  }

  /**
   * Re-publish `self`'s entry at `token` above `version` (a forged newer copy of it is circulating): our entry, at
   * `version + 1`, wins again everywhere. Returns false when `version` leaves no room (the u32 maximum).
   */
  outbid(self: string, token: Address, version: number): boolean {
    const e = this.entries[this.indexAt(token)];
    if (!e || e.token !== token || e.owner !== self) throw new Error(`outbid: ${self} does not own token ${token}`);
    if (version >= 0xffffffff) return false;
    if (e.version <= version) e.version = version + 1;
    return true;
  }

  /** Throws if the ring's structure is broken: a bug, never a runtime condition. Cheap: O(entries). */
  checkInvariants(): void {
    const fail = (why: string): never => {
      throw new Error(`IPAM ring invariant broken: ${why}`);
    };
    if (this.entries.length === 0) {
      if (this.seedList.length !== 0) fail('seeds without entries');
      return;
    }
    if (this.seedList.length === 0) fail('entries without seeds');
    if (this.entries[0]!.token !== this.range.start) fail(`first token ${this.entries[0]!.token} is not the range start`);
    this.entries.forEach((e, i) => {
      const end = this.endOf(i);
      if (!Number.isInteger(e.token) || end <= e.token) fail(`token ${e.token} out of order (segments overlap or are empty)`);
      if (end > this.range.end) fail(`token ${e.token} outside the range`);
      if (!NAME_RE.test(e.owner)) fail(`bad owner ${JSON.stringify(e.owner)}`);
      if (!Number.isInteger(e.version) || e.version < 0) fail(`bad version ${e.version}`);
      if (!Number.isInteger(e.free) || e.free < 0 || e.free > end - e.token) fail(`free ${e.free} outside 0..${end - e.token}`);
    });
  }

  /** Structural equality (same range, seeds, entries, tombstones). */
  equals(other: Ring): boolean {
    return Buffer.from(this.encode()).equals(Buffer.from(other.encode()));
  }

  /**
   * Binary encoding (big-endian):
   *
   * ```
   *  0      1          5      6       8
   *  +------+----------+------+-------+------------------------------+
   *  | ver  | range    | pfx  | N u16 | N names: u8 len, len bytes   |
   *  +------+----------+------+-------+------------------------------+
   *  | S u16 | S seed name indexes (u16)                             |
   *  +-------+-------------------------------------------------------+
   *  | E u32 | E entries: token u32, owner index u16, version u32,   |
   *  |       |            free u32                       (14 bytes)  |
   *  +-------+-------------------------------------------------------+
   *  | T u16 | T tombstones: removed index u16, taker index u16      |
   *  +-------+-------------------------------------------------------+
   * ```
   * Names (seeds, owners, tombstones) are printable ASCII, 1..64 bytes, each stored once in the table.
   */
  encode(): Uint8Array {
    const names: string[] = [];
    const index = new Map<string, number>();
    const idx = (n: string): number => {
      let k = index.get(n);
      if (k === undefined) {
        k = names.length;
        names.push(n);
        index.set(n, k);
      }
      return k;
    };
    const seedIdx = this.seedList.map(idx);
    const entryIdx = this.entries.map((e) => idx(e.owner));
    const tomb = [...this.removed].sort((p, q) => (p[0] < q[0] ? -1 : 1)).map(([k, v]) => [idx(k), idx(v)] as const);
    const nameBytes = names.reduce((s, n) => s + 1 + n.length, 0);
    const buf = Buffer.alloc(8 + nameBytes + 2 + 2 * seedIdx.length + 4 + ENTRY_BYTES * this.entries.length + 2 + 4 * tomb.length);
    let o = 0;
    o = buf.writeUInt8(FORMAT_VERSION, o);
    o = buf.writeUInt32BE(this.cidr.start, o);
    o = buf.writeUInt8(this.cidr.prefix, o);
    o = buf.writeUInt16BE(names.length, o);
    for (const n of names) {
      o = buf.writeUInt8(n.length, o);
      o += buf.write(n, o, 'latin1');
    }
    o = buf.writeUInt16BE(seedIdx.length, o);
    for (const s of seedIdx) o = buf.writeUInt16BE(s, o);
    o = buf.writeUInt32BE(this.entries.length, o);
    this.entries.forEach((e, i) => {
      o = buf.writeUInt32BE(e.token, o);
      o = buf.writeUInt16BE(entryIdx[i]!, o);
      o = buf.writeUInt32BE(e.version, o);
      o = buf.writeUInt32BE(e.free, o);
    });
    o = buf.writeUInt16BE(tomb.length, o);
    for (const [k, v] of tomb) {
      o = buf.writeUInt16BE(k, o);
      o = buf.writeUInt16BE(v, o);
    }
    return buf;
  }

  /**
   * Decode what `encode` wrote, at `bytes[offset..]`. Returns the ring and the offset after it. Anything malformed,
   * oversized or structurally broken throws `DecodeError`.
   */
  static decodeAt(bytes: Uint8Array, offset = 0): { ring: Ring; offset: number } {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let o = offset;
    const need = (n: number, what: string): void => {
      if (o + n > buf.length) throw new DecodeError(`IPAM ring truncated in ${what}`);
    };
    need(8, 'header');
    const ver = buf.readUInt8(o);
    if (ver !== FORMAT_VERSION) throw new DecodeError(`IPAM ring format ${ver} unknown (this weft reads ${FORMAT_VERSION})`);
    const start = buf.readUInt32BE(o + 1);
    const prefix = buf.readUInt8(o + 5);
    if (prefix > 32 || start % 2 ** (32 - prefix) !== 0) throw new DecodeError('IPAM ring range is not a CIDR block');
    const nameCount = buf.readUInt16BE(o + 6);
    o += 8;
    if (nameCount > RING_LIMITS.maxNames) throw new DecodeError(`IPAM ring has ${nameCount} names (limit ${RING_LIMITS.maxNames})`);
    const names: string[] = [];
    for (let k = 0; k < nameCount; k++) {
      need(1, 'names');
      const len = buf.readUInt8(o++);
      if (len === 0 || len > RING_LIMITS.maxNameBytes) throw new DecodeError(`IPAM ring name of ${len} bytes`);
      need(len, 'names');
      const n = buf.toString('latin1', o, o + len);
      if (!NAME_RE.test(n)) throw new DecodeError('IPAM ring name is not printable ASCII');
      names.push(n);
      o += len;
    }
    const name = (k: number): string => {
      const n = names[k];
      if (n === undefined) throw new DecodeError(`IPAM ring name index ${k} out of range`);
      return n;
    };
    need(2, 'seeds');
    const seedCount = buf.readUInt16BE(o);
    o += 2;
    if (seedCount > nameCount) throw new DecodeError('IPAM ring has more seeds than names');
    need(2 * seedCount, 'seeds');
    const seeds: string[] = [];
    for (let k = 0; k < seedCount; k++, o += 2) seeds.push(name(buf.readUInt16BE(o)));
    need(4, 'entries');
    const entryCount = buf.readUInt32BE(o);
    o += 4;
    if (entryCount > RING_LIMITS.maxEntries) throw new DecodeError(`IPAM ring has ${entryCount} entries (limit ${RING_LIMITS.maxEntries})`);
    need(ENTRY_BYTES * entryCount, 'entries');
    const entries: RingEntry[] = [];
    for (let k = 0; k < entryCount; k++, o += ENTRY_BYTES) {
      entries.push({
        token: buf.readUInt32BE(o),
        owner: name(buf.readUInt16BE(o + 4)),
        version: buf.readUInt32BE(o + 6),
        free: buf.readUInt32BE(o + 10),
      });
    }
    need(2, 'tombstones');
    const tombCount = buf.readUInt16BE(o);
    o += 2;
    if (tombCount > nameCount) throw new DecodeError('IPAM ring has more tombstones than names');
    need(4 * tombCount, 'tombstones');
    const ring = new Ring({ start, prefix });
    for (let k = 0; k < tombCount; k++, o += 4) ring.removed.set(name(buf.readUInt16BE(o)), name(buf.readUInt16BE(o + 2)));
    if (!sameList(seeds, [...new Set(seeds)].sort())) throw new DecodeError('IPAM ring seeds are not sorted and unique');
    ring.seedList = seeds;
    ring.entries = entries;
    try {
      ring.checkInvariants();
    } catch (err) {
      throw new DecodeError(`IPAM ring is malformed: ${(err as Error).message}`);
    }
    return { ring, offset: o };
  }

  /** Decode a whole buffer holding one ring (trailing bytes are an error). */
  static decode(bytes: Uint8Array): Ring {
    const { ring, offset } = Ring.decodeAt(bytes, 0);
    if (offset !== bytes.length) throw new DecodeError(`IPAM ring has ${bytes.length - offset} trailing bytes`);
    return ring;
  }

  private endOf(i: number): number {
    const next = this.entries[i + 1];
    return next ? next.token : this.range.end;
  }

  /** Index of the entry whose segment contains `addr` (-1 when the ring is empty). */
  private indexAt(addr: Address): number {
    let lo = 0;
    let hi = this.entries.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.entries[mid]!.token <= addr) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return best;
  }

  /**
   * Make `addr` a token. The new entry keeps the owner of the segment it was cut from, so no other peer's view of who
   * owns what changes; its version starts at 0 because no peer can have heard of this token before (tokens are added
   * only by the owner of the segment, and never removed). The old free hint is shared out between the halves (the owner refreshes both right after).
   */
  private splitAt(addr: Address): void {
    if (addr >= this.range.end) return;
    const i = this.indexAt(addr);
    const e = this.entries[i]!;
    if (e.token === addr) return;
    const end = this.endOf(i);
    const tailSize = end - addr;
    const tailFree = Math.min(tailSize, e.free);
    this.entries.splice(i + 1, 0, { token: addr, owner: e.owner, version: 0, free: tailFree });
    e.free = Math.min(addr - e.token, e.free - tailFree);
  }

  private ownConflict(other: Ring, self: string, what: string): RingConflictError {
    const by = other.removed.get(self);
    if (by !== undefined) {
      return new RingConflictError(`IPAM: this peer (${self}) was removed by 'weft rmpeer' on ${by}; ${what}. Run 'weft reset' here.`, by);
    }
    return new RingConflictError(
      `IPAM ring conflict: ${what}; only the owner may change its segments. Run 'weft reset' on the misbehaving peer.`,
    );
  }

  private removedByFor(other: Ring, self: string | undefined): string | undefined {
    return self === undefined ? undefined : (other.removed.get(self) ?? this.removed.get(self));
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function checkName(n: string): void {
  if (!NAME_RE.test(n)) throw new Error(`invalid peer name ${JSON.stringify(n)} (printable ASCII, 1..64 bytes)`);
}
