/**
 * The weftDNS gossip channel's one message: a batch of record states and peer removals (record-store.ts).
 *
 * ```
 *  0       1       2               4               6
 *  +-------+-------+---------------+---------------+----------------------+-------------------+
 *  | ver=1 | flags | entries u16 E | removals u16 R| E entries            | R removals        |
 *  +-------+-------+---------------+---------------+----------------------+-------------------+
 *   flags: 0 (reserved; anything else is refused)
 *
 *  entry:
 *  +-------------+-------------+------+---------------+--------+-----------------+-------+---------------+
 *  | owner (6)   | version u64 | kind | remaining u32 | family | address (4|16)  | len N | name (N bytes)|
 *  +-------------+-------------+------+---------------+--------+-----------------+-------+---------------+
 *   kind 0 = live, 1 = tombstone; remaining = ms until a tombstone is forgotten (0 for live records)
 *   family 4 or 6; name: lower-case FQDN with the trailing dot, 2..254 bytes of [a-z0-9-_.]
 *
 *  removal (weft rmpeer):
 *  +-------------+---------------+
 *  | peer (6)    | remaining u32 |
 *  +-------------+---------------+
 * ```
 * All integers big-endian. Limits: at most MAX_ENTRIES entries and MAX_REMOVALS removals per message, versions at
 * most 2^53 - 1 (exact in a JavaScript number), remaining at most MAX_REMAINING_MS. Decoding is strict: any other
 * version, flag, kind, family, name, or a truncated or over-long message throws `DecodeError` and nothing else.
 * "Remaining" turns into a local deadline on arrival (now + remaining), so a tombstone's lifetime never restarts
 * when it is passed on.
 */
import ipaddr from 'ipaddr.js';
import { DecodeError } from '../gossip/decode-error.js';
import { peerIdToName, peerNameToId } from '../gossip/peer-name.js';
import type { PeerRemoval, RecordDelta, RecordEntry } from './record-store.js';

const WIRE_VERSION = 1;
/** Entries per message: 3000 of the largest (291 bytes) stay under the control connection's 1 MiB message limit. */
export const MAX_ENTRIES = 3000;
export const MAX_REMOVALS = 1000;
/** A day: far above any tombstone lifetime we use. */
export const MAX_REMAINING_MS = 86_400_000;
const HEADER_BYTES = 6;
const NAME_RE = /^(?=.{2,254}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+$/;

/** True for a name the wire (and the store) accepts: lower-case FQDN with the trailing dot. */
export function isRecordName(name: string): boolean {
  return NAME_RE.test(name);
}

/**
 * Encode a batch; deadlines become "ms remaining" relative to `nowMs` (expired tombstones are left out). Throws
 * RangeError when over the limits (callers split: see `splitBatches`).
 */
export function encodeRecords(batch: RecordDelta, nowMs: number): Uint8Array {
  const entries = batch.entries.filter((e) => !e.isTombstone || e.expiresAtMs > nowMs);
  const removals = batch.removals.filter((r) => r.expiresAtMs > nowMs);
  if (entries.length > MAX_ENTRIES || removals.length > MAX_REMOVALS) throw new RangeError('record batch over the message limits');
  const parts: Buffer[] = [];
  const head = Buffer.alloc(HEADER_BYTES);
  head[0] = WIRE_VERSION;
  head[1] = 0;
  head.writeUInt16BE(entries.length, 2);
  head.writeUInt16BE(removals.length, 4);
  parts.push(head);
  for (const e of entries) {
    if (!isRecordName(e.name)) throw new RangeError(`record name ${JSON.stringify(e.name)} is not encodable`);
    const addr = ipaddr.parse(e.address).toByteArray();
    const name = Buffer.from(e.name, 'ascii');
    const b = Buffer.alloc(6 + 8 + 1 + 4 + 1 + addr.length + 1 + name.length);
    let o = b.writeUIntBE(peerNameToId(e.owner), 0, 6);
    o = b.writeBigUInt64BE(BigInt(e.version), o);
    o = b.writeUInt8(e.isTombstone ? 1 : 0, o);
    o = b.writeUInt32BE(e.isTombstone ? remaining(e.expiresAtMs, nowMs) : 0, o);
    o = b.writeUInt8(addr.length === 4 ? 4 : 6, o);
    b.set(addr, o);
    o += addr.length;
    o = b.writeUInt8(name.length, o);
    b.set(name, o);
    parts.push(b);
  }
  for (const r of removals) {
    const b = Buffer.alloc(10);
    b.writeUIntBE(peerNameToId(r.peer), 0, 6);
    b.writeUInt32BE(remaining(r.expiresAtMs, nowMs), 6);
    parts.push(b);
  }
  return Buffer.concat(parts);
}

/** Split a large state into batches within the limits. */
export function splitBatches(state: RecordDelta): RecordDelta[] {
  const out: RecordDelta[] = [];
  for (let i = 0; i < Math.max(state.entries.length, 1) || out.length === 0; i += MAX_ENTRIES) {
    out.push({ entries: state.entries.slice(i, i + MAX_ENTRIES), removals: out.length === 0 ? state.removals.slice(0, MAX_REMOVALS) : [] });
    if (i + MAX_ENTRIES >= state.entries.length) break;
  }
  return out;
}

/** Decode a batch, turning "remaining" into deadlines at `nowMs`. Throws `DecodeError` on anything malformed. */
export function decodeRecords(bytes: Uint8Array, nowMs: number): RecordDelta {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < HEADER_BYTES) throw new DecodeError(`DNS record message of ${buf.length} bytes is shorter than its header`);
  if (buf[0] !== WIRE_VERSION) throw new DecodeError(`DNS record message version ${buf[0]} unknown (this weft speaks ${WIRE_VERSION})`);
  if (buf[1] !== 0) throw new DecodeError(`DNS record message has unknown flags ${buf[1]}`);
  const entryCount = buf.readUInt16BE(2);
  const removalCount = buf.readUInt16BE(4);
  if (entryCount > MAX_ENTRIES) throw new DecodeError(`DNS record message has ${entryCount} entries (at most ${MAX_ENTRIES})`);
  if (removalCount > MAX_REMOVALS) throw new DecodeError(`DNS record message has ${removalCount} removals (at most ${MAX_REMOVALS})`);
  let o = HEADER_BYTES;
  const need = (n: number, what: string) => {
    if (o + n > buf.length) throw new DecodeError(`DNS record message truncated in ${what}`);
  };
  const entries: RecordEntry[] = [];
  for (let i = 0; i < entryCount; i++) {
    need(20, 'an entry');
    const owner = peerIdToName(buf.readUIntBE(o, 6));
    const big = buf.readBigUInt64BE(o + 6);
    if (big < 1n || big > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError(`DNS record version ${big} out of range`);
    const kind = buf[o + 14]!;
    if (kind > 1) throw new DecodeError(`DNS record kind ${kind} unknown`);
    const rem = buf.readUInt32BE(o + 15);
    if (rem > MAX_REMAINING_MS) throw new DecodeError(`DNS tombstone lifetime ${rem} ms over the limit`);
    if (kind === 0 && rem !== 0) throw new DecodeError('DNS live record with a lifetime');
    const family = buf[o + 19]!;
    if (family !== 4 && family !== 6) throw new DecodeError(`DNS record address family ${family} unknown`);
    o += 20;
    const alen = family === 4 ? 4 : 16;
    need(alen + 1, 'an address');
    const address = ipaddr.fromByteArray([...buf.subarray(o, o + alen)]).toString();
    o += alen;
    const nlen = buf[o]!;
    o += 1;
    need(nlen, 'a name');
    const name = buf.toString('latin1', o, o + nlen);
    o += nlen;
    if (!isRecordName(name)) throw new DecodeError(`DNS record name ${JSON.stringify(name.slice(0, 64))} is not a lower-case FQDN`);
    entries.push({ owner, name, address, version: Number(big), isTombstone: kind === 1, expiresAtMs: kind === 1 ? nowMs + rem : Infinity });
  }
  const removals: PeerRemoval[] = [];
  for (let i = 0; i < removalCount; i++) {
    need(10, 'a removal');
    const peer = peerIdToName(buf.readUIntBE(o, 6));
    const rem = buf.readUInt32BE(o + 6);
    if (rem > MAX_REMAINING_MS) throw new DecodeError(`DNS peer removal lifetime ${rem} ms over the limit`);
    removals.push({ peer, expiresAtMs: nowMs + rem });
    o += 10;
  }
  if (o !== buf.length) throw new DecodeError(`DNS record message has ${buf.length - o} trailing bytes`);
  return { entries, removals };
}

function remaining(expiresAtMs: number, nowMs: number): number {
  return Math.max(0, Math.min(MAX_REMAINING_MS, Math.ceil(expiresAtMs - nowMs)));
}
