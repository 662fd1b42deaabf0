/**
 * Paxos over gossip: how peers started with `--ipalloc-init consensus=N` agree, once, on which peers split the ring.
 *
 * Single-decree Paxos where the messages are gossiped state instead of requests. Every participant keeps a table of
 * every participant's acceptor state (what it promised, what it accepted) and gossips the whole table; a node's row is
 * only ever written by that node, and only grows (promise, then accepted, compared as a pair), so merging the tables
 * is a per-row max and the gossip needs no ordering.
 *
 * - Prepare: a proposer picks `n = (highest round seen + 1, its name)` and promises `n` itself.
 * - Promise: every acceptor that sees a higher promise in the table adopts it (promising never to accept less). Its
 *   row then carries its promise together with whatever it accepted before: the "promise reply".
 * - Accept request: once a quorum of rows promise exactly `n`, the proposer accepts `(n, v)` in its own row, with `v`
 *   the value of the highest proposal those rows accepted, or else its own value (the sorted names of all
 *   participants it knows).
 * - Accepted: an acceptor that has promised `n` and sees any row that accepted `n` accepts the same `(n, v)`.
 * - Chosen: any node that sees a quorum of rows that accepted the same `n` knows `v` is chosen.
 *
 * Duelling proposers can delay a decision (the allocator retries with jittered back-off) but never split it. The table
 * must survive restarts (the allocator persists it) or a restarted acceptor could forget a promise.
 */
import { DecodeError } from './errors.js';

/** A proposal number: rounds first, names break ties, so two proposers never share one. */
export interface ProposalId {
  readonly round: number;
  readonly proposer: string;
}

/** One participant's row. */
export interface AcceptorState {
  promised: ProposalId | null;
  accepted: { id: ProposalId; value: string[] } | null;
}

/** Decode limits. */
export const CONSENSUS_LIMITS = { maxNodes: 1024, maxNameBytes: 64 } as const;

const NAME_RE = /^[\x21-\x7e]{1,64}$/;

/** Order of proposal ids; null is below everything. */
export function compareIds(a: ProposalId | null, b: ProposalId | null): number {
  if (a === null || b === null) return a === b ? 0 : a === null ? -1 : 1;
  if (a.round !== b.round) return a.round - b.round;
  return a.proposer < b.proposer ? -1 : a.proposer > b.proposer ? 1 : 0;
}

function compareRows(a: AcceptorState, b: AcceptorState): number {
  return compareIds(a.promised, b.promised) || compareIds(a.accepted?.id ?? null, b.accepted?.id ?? null);
}

/** The gossiped table plus this node's part in it. */
export class Consensus {
  private readonly rows = new Map<string, AcceptorState>();

  /**
   * @param self our name; null for a node that only relays and watches (it never writes a row).
   * @param quorum rows needed to promise or accept: a majority of the expected peer count (`floor(N/2) + 1`).
   */
  constructor(
    readonly self: string | null,
    readonly quorum: number,
  ) {
    if (!Number.isInteger(quorum) || quorum < 1) throw new Error(`quorum must be a positive integer, got ${quorum}`);
  }

  /** Add our (empty) row so others learn we take part. Returns whether the table changed. */
  join(): boolean {
    if (this.self === null || this.rows.has(this.self)) return false;
    this.rows.set(this.self, { promised: null, accepted: null });
    return true;
  }

  /** Participants known, sorted. */
  participants(): string[] {
    return [...this.rows.keys()].sort();
  }

  /** A copy of one row. */
  row(name: string): AcceptorState | undefined {
    const r = this.rows.get(name);
    return r ? structuredClone(r) : undefined;
  }

  /** Merge another table (a per-row max). Returns whether ours changed. Our own row is never lowered. */
  merge(other: Consensus): boolean {
    let changed = false;
    for (const [name, row] of other.rows) {
      const mine = this.rows.get(name);
      if (mine === undefined || compareRows(row, mine) > 0) {
        this.rows.set(name, structuredClone(row));
        changed = true;
      }
    }
    return changed;
  }

  /** Start a new proposal higher than any seen. Returns its id. */
  propose(): ProposalId {
    if (this.self === null) throw new Error('an observer does not propose');
    this.join();
    let round = 0;
    for (const r of this.rows.values()) round = Math.max(round, r.promised?.round ?? 0, r.accepted?.id.round ?? 0);
    const id = { round: round + 1, proposer: this.self };
    this.rows.get(this.self)!.promised = id;
    return id;
  }

  /** Whether our latest proposal is still the highest promise we know of (false once someone outbid us). */
  isLeading(): boolean {
    const mine = this.self === null ? undefined : this.rows.get(this.self);
    return mine?.promised?.proposer === this.self && this.maxPromised() === mine.promised;
  }

  /**
   * Run the acceptor and proposer rules on what we know now. Returns whether our row changed (gossip it if so).
   */
  step(): boolean {
    if (this.self === null) return false;
    const mine = this.rows.get(this.self);
    if (mine === undefined) return false;
    let changed = false;
    // Promise: adopt the highest promise anyone has made.
    const top = this.maxPromised();
    if (compareIds(top, mine.promised) > 0) {
      mine.promised = { ...top! };
      changed = true;
    }
    const n = mine.promised;
    if (n === null || compareIds(mine.accepted?.id ?? null, n) === 0) return changed;
    // Accepted: someone accepted exactly what we promised.
    for (const r of this.rows.values()) {
      if (r.accepted && compareIds(r.accepted.id, n) === 0) {
        mine.accepted = { id: { ...n }, value: r.accepted.value.slice() };
        return true;
      }
    }
    // Accept request: our own proposal holds a quorum of promises.
    if (n.proposer === this.self) {
      const promisers = [...this.rows.values()].filter((r) => compareIds(r.promised, n) === 0);
      if (promisers.length >= this.quorum) {
        let best: { id: ProposalId; value: string[] } | null = null;
        for (const r of promisers) if (r.accepted && compareIds(r.accepted.id, best?.id ?? null) > 0) best = r.accepted;
        mine.accepted = { id: { ...n }, value: best ? best.value.slice() : this.participants() };
        return true;
      }
    }
    return changed;
  }

  /** The chosen value (sorted peer names), once a quorum accepted one proposal; else undefined. */
  decision(): string[] | undefined {
    const counts = new Map<string, { n: number; value: string[] }>();
    for (const r of this.rows.values()) {
      if (!r.accepted) continue;
      const key = `${r.accepted.id.round}/${r.accepted.id.proposer}`;
      const c = counts.get(key) ?? { n: 0, value: r.accepted.value };
      c.n++;
      counts.set(key, c);
      if (c.n >= this.quorum) return c.value.slice();
    }
    return undefined;
  }

  private maxPromised(): ProposalId | null {
    let top: ProposalId | null = null;
    for (const r of this.rows.values()) if (compareIds(r.promised, top) > 0) top = r.promised;
    return top;
  }

  /**
   * Encoding (big-endian): `u16 rows`, then per row: `name`, `promised`, `accepted id`, `u16 value count`, `names`,
   * where a name is `u8 length + ASCII` and an id is `u32 round + name` (round 0 with an empty name means none).
   */
  encode(): Uint8Array {
    const parts: Buffer[] = [];
    const u16 = (v: number): void => void parts.push(Buffer.from([v >> 8, v & 255]));
    const name = (s: string): void => void parts.push(Buffer.from([s.length]), Buffer.from(s, 'latin1'));
    const id = (p: ProposalId | null): void => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(p?.round ?? 0);
      parts.push(b);
      name(p?.proposer ?? '');
    };
    const names = [...this.rows.keys()].sort();
    u16(names.length);
    for (const n of names) {
      const r = this.rows.get(n)!;
      name(n);
      id(r.promised);
      id(r.accepted?.id ?? null);
      const value = r.accepted?.value ?? [];
      u16(value.length);
      for (const v of value) name(v);
    }
    return Buffer.concat(parts);
  }

  /** Decode a table written by `encode` at `bytes[offset..]` into a watcher (self null). Throws `DecodeError`. */
  static decodeAt(bytes: Uint8Array, offset: number, quorum: number): { table: Consensus; offset: number } {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let o = offset;
    const need = (n: number): void => {
      if (o + n > buf.length) throw new DecodeError('IPAM consensus table truncated');
    };
    const u16 = (): number => {
      need(2);
      const v = buf.readUInt16BE(o);
      o += 2;
      return v;
    };
    const name = (isEmptyAllowed: boolean): string => {
      need(1);
      const len = buf.readUInt8(o++);
      if (len > CONSENSUS_LIMITS.maxNameBytes || (len === 0 && !isEmptyAllowed))
        throw new DecodeError(`IPAM consensus name of ${len} bytes`);
      need(len);
      const s = buf.toString('latin1', o, o + len);
      o += len;
      if (len > 0 && !NAME_RE.test(s)) throw new DecodeError('IPAM consensus name is not printable ASCII');
      return s;
    };
    const id = (): ProposalId | null => {
      need(4);
      const round = buf.readUInt32BE(o);
      o += 4;
      const proposer = name(true);
      if ((round === 0) !== (proposer === '')) throw new DecodeError('IPAM consensus proposal id half empty');
      return round === 0 ? null : { round, proposer };
    };
    const table = new Consensus(null, quorum);
    const count = u16();
    if (count > CONSENSUS_LIMITS.maxNodes)
      throw new DecodeError(`IPAM consensus table has ${count} rows (limit ${CONSENSUS_LIMITS.maxNodes})`);
    for (let k = 0; k < count; k++) {
      const n = name(false);
      const promised = id();
      const acceptedId = id();
      const valueCount = u16();
      if (valueCount > CONSENSUS_LIMITS.maxNodes) throw new DecodeError(`IPAM consensus value of ${valueCount} names`);
      const value: string[] = [];
      for (let v = 0; v < valueCount; v++) value.push(name(false));
      if (acceptedId === null && valueCount > 0) throw new DecodeError('IPAM consensus value without a proposal');
      if (acceptedId !== null && (valueCount === 0 || compareIds(acceptedId, promised) > 0)) {
        throw new DecodeError('IPAM consensus row accepted more than it promised, or an empty value');
      }
      if (table.rows.has(n)) throw new DecodeError('IPAM consensus table repeats a row');
      table.rows.set(n, { promised, accepted: acceptedId ? { id: acceptedId, value } : null });
    }
    return { table, offset: o };
  }
}
