/**
 * The IPAM gossip channel's messages. Every message starts with a version byte and a kind byte:
 *
 * ```
 *  0     1      2
 *  +-----+------+---------------------------------------------------------------+
 *  | 1   | kind | body                                                          |
 *  +-----+------+---------------------------------------------------------------+
 *
 *  kind 1 STATE (gossip, broadcast): what this peer knows
 *  +-------+----------------------+---------------------------------+
 *  | flags | ring (if flags & 1)  | consensus table (if flags & 2)  |
 *  +-------+----------------------+---------------------------------+
 *
 *  kind 2 SPACE_REQUEST (unicast): "give me space in this subnet" or "give me exactly this address"
 *  +----------------+------+----------------+--------+
 *  | request id u32 | mode | address u32    | prefix |   mode 1 = subnet (address/prefix), 2 = exact address
 *  +----------------+------+----------------+--------+
 *
 *  kind 3 SPACE_REPLY (unicast): the donor's answer, with its ring so the requester sees the grant at once
 *  +----------------+--------+---------+----------------+-----------------------------+
 *  | request id u32 | result | len u8  | holder (len B) | ring (if the donor has one) |
 *  +----------------+--------+---------+----------------+-----------------------------+
 *    result 1 = granted, 2 = none to give, 3 = held (holder = the ident holding the exact address)
 *
 *  kind 4 RING_QUERY (unicast): "send me your ring"; no body. The answer is a STATE by unicast, which the asker
 *  can attribute to the peer it asked (used to check a claim relayed by someone else: a tombstone or a grant)
 *  +  (nothing)  +
 * ```
 * Ring and consensus table formats are described beside their codecs (ring.ts, consensus.ts). Decoding is strict:
 * unknown versions or kinds, bad lengths and trailing bytes throw `DecodeError`.
 */
import { Consensus } from './consensus.js';
import { DecodeError } from './errors.js';
import { Ring } from './ring.js';

const WIRE_VERSION = 1;
const KIND_STATE = 1;
const KIND_REQUEST = 2;
const KIND_REPLY = 3;
const KIND_QUERY = 4;

export interface StateMessage {
  kind: 'state';
  ring: Ring | null;
  consensus: Consensus | null;
}

export interface SpaceRequest {
  kind: 'request';
  id: number;
  mode: 'subnet' | 'exact';
  address: number;
  prefix: number;
}

export interface SpaceReply {
  kind: 'reply';
  id: number;
  result: 'granted' | 'none' | 'held';
  holder: string;
  ring: Ring | null;
}

export interface RingQuery {
  kind: 'query';
}

export type IpamMessage = StateMessage | SpaceRequest | SpaceReply | RingQuery;

const RESULTS = ['granted', 'none', 'held'] as const;

/** Encode one message. */
export function encodeMessage(m: IpamMessage): Uint8Array {
  if (m.kind === 'state') {
    const ring = m.ring && !m.ring.isEmpty ? m.ring.encode() : null;
    const table = m.consensus ? m.consensus.encode() : null;
    return Buffer.concat([
      Buffer.from([WIRE_VERSION, KIND_STATE, (ring ? 1 : 0) | (table ? 2 : 0)]),
      ...(ring ? [ring] : []),
      ...(table ? [table] : []),
    ]);
  }
  if (m.kind === 'query') return Buffer.from([WIRE_VERSION, KIND_QUERY]);
  if (m.kind === 'request') {
    const b = Buffer.alloc(12);
    b.writeUInt8(WIRE_VERSION, 0);
    b.writeUInt8(KIND_REQUEST, 1);
    b.writeUInt32BE(m.id, 2);
    b.writeUInt8(m.mode === 'subnet' ? 1 : 2, 6);
    b.writeUInt32BE(m.address, 7);
    b.writeUInt8(m.prefix, 11);
    return b;
  }
  const holder = Buffer.from(m.holder, 'utf8');
  if (holder.length > 255) throw new Error('holder ident longer than 255 bytes');
  const head = Buffer.alloc(8);
  head.writeUInt8(WIRE_VERSION, 0);
  head.writeUInt8(KIND_REPLY, 1);
  head.writeUInt32BE(m.id, 2);
  head.writeUInt8(RESULTS.indexOf(m.result) + 1, 6);
  head.writeUInt8(holder.length, 7);
  const ring = m.ring && !m.ring.isEmpty ? m.ring.encode() : new Uint8Array(0);
  return Buffer.concat([head, holder, ring]);
}

/** Decode one message; `quorum` is only carried into a decoded consensus table. Throws `DecodeError`. */
export function decodeMessage(bytes: Uint8Array, quorum = 1): IpamMessage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 2) throw new DecodeError('IPAM message shorter than its header');
  if (buf[0] !== WIRE_VERSION) throw new DecodeError(`IPAM message version ${buf[0]} unknown (this weft speaks ${WIRE_VERSION})`);
  const kind = buf[1];
  if (kind === KIND_STATE) {
    if (buf.length < 3) throw new DecodeError('IPAM state message truncated');
    const flags = buf[2]!;
    if (flags & ~3) throw new DecodeError(`IPAM state message has unknown flags ${flags}`);
    let o = 3;
    let ring: Ring | null = null;
    let consensus: Consensus | null = null;
    if (flags & 1) ({ ring, offset: o } = Ring.decodeAt(buf, o));
    if (flags & 2) ({ table: consensus, offset: o } = Consensus.decodeAt(buf, o, quorum));
    if (o !== buf.length) throw new DecodeError(`IPAM state message has ${buf.length - o} trailing bytes`);
    return { kind: 'state', ring, consensus };
  }
  if (kind === KIND_REQUEST) {
    if (buf.length !== 12) throw new DecodeError(`IPAM space request of ${buf.length} bytes (want 12)`);
    const mode = buf[6];
    const prefix = buf[11]!;
    const address = buf.readUInt32BE(7);
    if (mode !== 1 && mode !== 2) throw new DecodeError(`IPAM space request mode ${mode} unknown`);
    if (prefix > 32 || (mode === 1 && address % 2 ** (32 - prefix) !== 0))
      throw new DecodeError('IPAM space request subnet is not a CIDR block');
    return { kind: 'request', id: buf.readUInt32BE(2), mode: mode === 1 ? 'subnet' : 'exact', address, prefix };
  }
  if (kind === KIND_REPLY) {
    if (buf.length < 8) throw new DecodeError('IPAM space reply truncated');
    const result = RESULTS[buf[6]! - 1];
    if (result === undefined) throw new DecodeError(`IPAM space reply result ${buf[6]} unknown`);
    const len = buf[7]!;
    if (buf.length < 8 + len) throw new DecodeError('IPAM space reply truncated in holder');
    const holder = buf.toString('utf8', 8, 8 + len);
    const ring = buf.length > 8 + len ? Ring.decode(buf.subarray(8 + len)) : null;
    return { kind: 'reply', id: buf.readUInt32BE(2), result, holder, ring };
  }
  if (kind === KIND_QUERY) {
    if (buf.length !== 2) throw new DecodeError(`IPAM ring query of ${buf.length} bytes (want 2)`);
    return { kind: 'query' };
  }
  throw new DecodeError(`IPAM message kind ${kind} unknown`);
}
