/**
 * The sleeve wire format: Ethernet frames between peers in UDP datagrams. Described for outsiders in
 * docs/sleeve-format.md; keep the two in step.
 *
 * Every datagram starts with a 16-byte header in clear. Encryption (crypto/data-session) wraps only the body and
 * authenticates the header, so the forwarding code reads the same fields whether the datagram is sealed or not.
 *
 *    0       1       2                               8                              16
 *    +-------+-------+-------------------------------+------------------------------+
 *    | magic | flags |  sender peer (48-bit name)    |  seq (u64 big-endian)        |
 *    +-------+-------+-------------------------------+------------------------------+
 *    | body (sealed when flags.ENCRYPTED: body || 16-byte tag) ...
 *
 *   magic   0x57 ('W'): weft sleeve, format version 1. A later version takes a new magic byte, so an old router
 *           drops its datagrams as `drop_magic` instead of misreading them.
 *   flags   bit 0 ENCRYPTED (the body is sealed and a tag follows it), bit 1 KEY_PHASE (which of the two data keys
 *           sealed it, for rekeying), bits 2-3 RELAYS (how many routers already relayed the unicast records or
 *           the piece this datagram carries: 0 from the capturing router, at most MAX_RELAYS; a relay that would
 *           pass one on past that drops it as `drop_hop_limit`), bits 4-7 message type: 0 frames, 1 heartbeat,
 *           2 heartbeat-ack, 3 piece of an offloaded frame, 4 MTU probe, 5 MTU probe ack; 6-15 reserved (dropped).
 *   sender  the sending peer's name (a neighbour: the peer the datagram came from, not the frame's origin).
 *   seq     per-sender, per-key sequence number. Sealed datagrams: `DataSession.nextSeq()`, checked by the replay
 *           window and bound into the nonce. Clear datagrams: a per-neighbour counter, ignored by receivers.
 *           Always < 2^53 (a JavaScript number); a larger value is dropped as `drop_bad_seq`.
 *
 * Body of a frames datagram: one or more records, back to back, filling the datagram (no count, no padding):
 *
 *    0                               6                              12       14
 *    +-------------------------------+------------------------------+--------+---------------- ...
 *    | capturing peer (48-bit name)  | destination peer (48-bit)    | length | frame (length bytes)
 *    +-------------------------------+------------------------------+--------+---------------- ...
 *
 *   capturing peer     the peer whose bridge the frame came from (the root of its broadcast tree).
 *   destination peer   the peer the frame is for, or 0 (`BROADCAST_PEER`) for a broadcast/multicast/unknown
 *                      destination that is flooded along the capturing peer's broadcast tree.
 *   length             u16 big-endian, the frame's bytes (Ethernet header onward, no FCS); at least 14.
 *
 * Offloaded TCP super-frames are normally cut into TCP segments (./tcp-segments.ts), each an ordinary record alone
 * in a frames datagram, and coalesced again before the destination's bridge (./tcp-coalesce.ts): no type of their
 * own. Pieces are the fallback for offloaded frames that are not cut that way.
 *
 * Body of a piece datagram: one piece of one frame that came with offloads (a TCP super-frame of up to 64 KiB that
 * no kernel has cut into segments yet, see ./offload.ts), too big for one datagram. Its pieces go back to back in
 * order, one per datagram, and the destination joins them and writes the whole frame to its bridge in one go:
 *
 *    0              6              12         16             20              24               34
 *    +--------------+--------------+----------+--------------+---------------+----------------+------------ ...
 *    | capturing    | destination  | frame id | frame length | piece offset  | virtio_net_hdr | piece bytes
 *    +--------------+--------------+----------+--------------+---------------+----------------+------------ ...
 *
 *   capturing, destination   as in a record (destination 0: flooded along the capturing peer's tree).
 *   frame id                 u32 big-endian, per capturing peer, the same in every piece of a frame.
 *   frame length, offset     u32 big-endian: the whole frame's bytes, and where this piece starts in it.
 *   virtio_net_hdr           the frame's 10-byte offload header as the capturing kernel wrote it (./offload.ts).
 *
 * A piece that does not continue the frame its capturing peer is sending (a lost or reordered datagram) drops the
 * frame; TCP sends it again. Relays pass pieces on unchanged, without joining them.
 *
 * A heartbeat's body is empty, or a u32 big-endian: the longest the sender may leave between heartbeats while the
 * path is idle, in ms (./heartbeats.ts "idle heartbeats"; 0 or absent: every heartbeat period, as senders before it
 * did). A heartbeat-ack's body is a loss report (./loss.ts). Receivers ignore body bytes past what they know.
 *
 * MTU probe and probe-ack bodies (./path-mtu.ts): a probe is padded so that, with the outer IP and UDP headers, it is
 * exactly `size` bytes of IP packet; its ack is just the first six bytes back. Receivers ignore bytes past them.
 *
 *    0                6         8
 *    +----------------+---------+------------------------ ...
 *    | round (u32 BE) | size    | padding (probe only)
 *    +----------------+---------+------------------------ ...
 *
 *   round   the prober's round number, echoed so an ack from an earlier round is not taken for this one.
 *   size    u16 big-endian: the IP packet size the probe was sent as (its ack says this size arrived).
 */

/** First byte of every sleeve datagram: 'W', format version 1. */
export const SLEEVE_MAGIC = 0x57;
/** Bytes of the clear header. */
export const HEADER_BYTES = 16;
/** Bytes in front of each frame in a frames body. */
export const RECORD_HEADER_BYTES = 14;
/** Smallest frame a record may hold: an Ethernet header (two MACs and an EtherType). */
export const MIN_FRAME_BYTES = 14;
/** Largest frame a record can describe (the u16 length). */
export const MAX_FRAME_BYTES = 0xffff;
/** Destination peer of a record flooded along the capturing peer's broadcast tree. Never a real peer's name. */
export const BROADCAST_PEER = 0;

/** flags bit 0: the body is sealed. */
export const FLAG_ENCRYPTED = 0x01;
/** flags bit 1: the key phase that sealed the body. */
export const FLAG_KEY_PHASE = 0x02;
/**
 * flags bits 2-3: RELAYS, the relay count of the unicasts in the datagram (the highest of its records'). It bounds
 * unicast forwarding loops while routes converge (A -> B -> C -> A: each thinks the next is closer); loops of two
 * are caught without it (`drop_loop`: never back to the sender or the capturing peer).
 */
export const FLAGS_RELAYS = 0x0c;
const RELAYS_SHIFT = 2;
/** The most relays a unicast record or piece may pass through (all that 2 bits can say). */
export const MAX_RELAYS = 3;
/** No flag bits are reserved any more; kept so the header check reads as before. */
export const FLAGS_RESERVED = 0x00;
const TYPE_SHIFT = 4;

/** Message types (flags bits 4-7). */
export const MessageType = {
  Frames: 0,
  Heartbeat: 1,
  HeartbeatAck: 2,
  Piece: 3,
  MtuProbe: 4,
  MtuProbeAck: 5,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];
const LAST_TYPE = MessageType.MtuProbeAck;

/** Bytes of an MTU probe's fields (round and size); also the whole body of its ack. */
export const PROBE_FIELDS_BYTES = 6;

/** Bytes of a heartbeat's field (the sender's idle heartbeat interval, u32 BE ms). */
export const HEARTBEAT_FIELDS_BYTES = 4;
/** The longest idle heartbeat interval a receiver takes from a heartbeat (a larger one is taken as this). */
export const MAX_IDLE_HEARTBEAT_MS = 60_000;

/** Bytes in front of the piece bytes in a piece body. */
export const PIECE_HEADER_BYTES = 34;
/** Largest offloaded frame a piece header is accepted for: a 64 KiB IP packet, Ethernet and VLAN headers. */
export const MAX_OFFLOADED_FRAME_BYTES = 65535 + 14 + 4;

/** Why a header was refused (negative results of `checkHeader`). Each maps to a `drop_<reason>` counter. */
export const HeaderDrop = {
  /** Shorter than the header. */
  Short: -1,
  /** First byte is not `SLEEVE_MAGIC`. */
  Magic: -2,
  /** Reserved message type. */
  UnknownType: -3,
  /** Sequence number >= 2^53. */
  BadSeq: -4,
} as const;

/** Upper 32-bit word of the largest seq allowed (2^53 - 1). */
const MAX_SEQ_HIGH = 0x1f_ffff;
const TWO_POW_32 = 0x1_0000_0000;

/** The flags byte for a datagram of `type`. `keyPhase` is 0 or 1 and only meaningful when `isEncrypted`. */
export function flagsFor(type: MessageType, isEncrypted: boolean, keyPhase: number): number {
  return (type << TYPE_SHIFT) | (isEncrypted ? FLAG_ENCRYPTED | (keyPhase === 1 ? FLAG_KEY_PHASE : 0) : 0);
}

/**
 * Write the 16-byte header at `buffer[offset]`. `sender` and `seq` must be integers in [0, 2^48) and [0, 2^53).
 * Allocates nothing.
 */
export function writeHeader(buffer: Buffer, offset: number, flags: number, sender: number, seq: number): void {
  buffer[offset] = SLEEVE_MAGIC;
  buffer[offset + 1] = flags;
  buffer.writeUIntBE(sender, offset + 2, 6);
  buffer.writeUInt32BE(Math.floor(seq / TWO_POW_32), offset + 8);
  buffer.writeUInt32BE(seq >>> 0, offset + 12);
}

/**
 * Check the header of the datagram `buffer[offset, offset+length)`: length, magic, flags, seq, in that order.
 * Returns the message type (>= 0) or a `HeaderDrop` code (< 0). Never throws for an in-range slice.
 */
export function checkHeader(buffer: Buffer, offset: number, length: number): number {
  if (length < HEADER_BYTES) return HeaderDrop.Short;
  if (buffer[offset] !== SLEEVE_MAGIC) return HeaderDrop.Magic;
  const flags = buffer[offset + 1]!;
  const type = flags >>> TYPE_SHIFT;
  if ((flags & FLAGS_RESERVED) !== 0 || type > LAST_TYPE) return HeaderDrop.UnknownType;
  if (buffer.readUInt32BE(offset + 8) > MAX_SEQ_HIGH) return HeaderDrop.BadSeq;
  return type;
}

/** The sender peer of a datagram whose header passed `checkHeader`. */
export function readSender(buffer: Buffer, offset: number): number {
  return buffer.readUIntBE(offset + 2, 6);
}

/** The seq of a datagram whose header passed `checkHeader` (exact: it is < 2^53). */
export function readSeq(buffer: Buffer, offset: number): number {
  return buffer.readUInt32BE(offset + 8) * TWO_POW_32 + buffer.readUInt32BE(offset + 12);
}

/** True when flags say the body is sealed. */
export function isEncryptedFlags(flags: number): boolean {
  return (flags & FLAG_ENCRYPTED) !== 0;
}

/** The relay count (0..MAX_RELAYS) in flags. */
export function relaysOf(flags: number): number {
  return (flags & FLAGS_RELAYS) >>> RELAYS_SHIFT;
}

/** `flags` with the relay count set to `relays` (0..MAX_RELAYS). */
export function withRelays(flags: number, relays: number): number {
  return (flags & ~FLAGS_RELAYS) | (relays << RELAYS_SHIFT);
}

/** The key phase (0 or 1) in flags. */
export function keyPhaseOf(flags: number): number {
  return (flags & FLAG_KEY_PHASE) >>> 1;
}

/** Write a record header at `buffer[offset]` (the frame's bytes follow it). Allocates nothing. */
export function writeRecordHeader(
  buffer: Buffer,
  offset: number,
  capturingPeer: number,
  destinationPeer: number,
  frameLength: number,
): void {
  buffer.writeUIntBE(capturingPeer, offset, 6);
  buffer.writeUIntBE(destinationPeer, offset + 6, 6);
  buffer.writeUInt16BE(frameLength, offset + 12);
}

/**
 * Walk the records of a clear frames body `buffer[offset, offset+length)` without acting on them. Returns the number
 * of records, or -1 when a record header is cut short, a length runs past the body, or a frame is shorter than an
 * Ethernet header. An empty body has 0 records (valid, and useless).
 */
export function countRecords(buffer: Buffer, offset: number, length: number): number {
  const end = offset + length;
  let p = offset;
  let records = 0;
  while (p < end) {
    if (p + RECORD_HEADER_BYTES > end) return -1;
    const frameLength = buffer.readUInt16BE(p + 12);
    if (frameLength < MIN_FRAME_BYTES) return -1;
    p += RECORD_HEADER_BYTES + frameLength;
    if (p > end) return -1;
    records++;
  }
  return records;
}

// ---- Whole-datagram codec: allocates; for tests, fuzzers and tools, never the data path. ----

/** One frame in a frames datagram. */
export interface SleeveRecord {
  capturingPeer: number;
  destinationPeer: number;
  frame: Buffer;
}

/** A decoded sleeve datagram. */
export interface SleeveDatagram {
  type: MessageType;
  isEncrypted: boolean;
  /** 0 or 1; 0 when not encrypted. */
  keyPhase: number;
  sender: number;
  seq: number;
  /** Records of a clear frames datagram; empty for other types and for sealed bodies. */
  records: SleeveRecord[];
  /** The raw body (a sealed body with its tag, or a heartbeat's ignored bytes); empty for clear frames. */
  body: Buffer;
}

/** Why `decodeDatagram` refused a datagram; the names match the sleeve's `drop_<reason>` counters. */
export type DecodeDropReason = 'short' | 'magic' | 'unknown_type' | 'bad_seq' | 'bad_record';

/** Encode a datagram (records for clear frames, `body` otherwise). Throws RangeError for an unencodable value. */
export function encodeDatagram(d: SleeveDatagram): Buffer {
  const isFramesInClear = d.type === MessageType.Frames && !d.isEncrypted;
  let bodyBytes = 0;
  if (isFramesInClear) {
    for (const r of d.records) {
      if (r.frame.length < MIN_FRAME_BYTES || r.frame.length > MAX_FRAME_BYTES) {
        throw new RangeError(`frame length ${r.frame.length} outside [${MIN_FRAME_BYTES}, ${MAX_FRAME_BYTES}]`);
      }
      bodyBytes += RECORD_HEADER_BYTES + r.frame.length;
    }
  } else {
    bodyBytes = d.body.length;
  }
  const out = Buffer.alloc(HEADER_BYTES + bodyBytes);
  writeHeader(out, 0, flagsFor(d.type, d.isEncrypted, d.keyPhase), d.sender, d.seq);
  if (isFramesInClear) {
    let p = HEADER_BYTES;
    for (const r of d.records) {
      writeRecordHeader(out, p, r.capturingPeer, r.destinationPeer, r.frame.length);
      r.frame.copy(out, p + RECORD_HEADER_BYTES);
      p += RECORD_HEADER_BYTES + r.frame.length;
    }
  } else {
    d.body.copy(out, HEADER_BYTES);
  }
  return out;
}

/**
 * Decode a whole datagram with the same checks as the data path (header, then records of clear frames). Returns
 * the datagram or `{ drop }` with the reason; never throws.
 */
export function decodeDatagram(buffer: Buffer): SleeveDatagram | { drop: DecodeDropReason } {
  const type = checkHeader(buffer, 0, buffer.length);
  switch (type) {
    case HeaderDrop.Short:
      return { drop: 'short' };
    case HeaderDrop.Magic:
      return { drop: 'magic' };
    case HeaderDrop.UnknownType:
      return { drop: 'unknown_type' };
    case HeaderDrop.BadSeq:
      return { drop: 'bad_seq' };
  }
  const flags = buffer[1]!;
  const isEncrypted = isEncryptedFlags(flags);
  const d: SleeveDatagram = {
    type: type as MessageType,
    isEncrypted,
    keyPhase: isEncrypted ? keyPhaseOf(flags) : 0,
    sender: readSender(buffer, 0),
    seq: readSeq(buffer, 0),
    records: [],
    body: Buffer.alloc(0),
  };
  const bodyLength = buffer.length - HEADER_BYTES;
  if (type === MessageType.Frames && !isEncrypted) {
    if (countRecords(buffer, HEADER_BYTES, bodyLength) < 0) return { drop: 'bad_record' };
    let p = HEADER_BYTES;
    while (p < buffer.length) {
      const frameLength = buffer.readUInt16BE(p + 12);
      d.records.push({
        capturingPeer: buffer.readUIntBE(p, 6),
        destinationPeer: buffer.readUIntBE(p + 6, 6),
        frame: Buffer.from(buffer.subarray(p + RECORD_HEADER_BYTES, p + RECORD_HEADER_BYTES + frameLength)),
      });
      p += RECORD_HEADER_BYTES + frameLength;
    }
  } else {
    d.body = Buffer.from(buffer.subarray(HEADER_BYTES));
  }
  return d;
}
