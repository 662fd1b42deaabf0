/**
 * Structure-aware sleeve datagrams for the fuzzer, each with what the receiving router must do with it.
 *
 * Every datagram is built from docs/sleeve-format.md (router/sleeve-format.ts, router/offload.ts): a valid header from
 * a known neighbour (the fuzzer itself, a member of the network), then one mutation at one layer: the header (magic,
 * flags, seq, sender), the seal (tag, key phase, seq bound into the nonce, a replay, clear where sealed is due and
 * the reverse), the records (lengths, capturing and destination peers, Ethernet headers) or the pieces of an
 * offloaded super-frame (frame id, lengths, offsets, order, the virtio_net_hdr). Most datagrams are valid in the
 * layers above the one mutated, so they reach deep into the receive path instead of dying at the magic byte.
 *
 * Beside each datagram the generator keeps a model of the receiver (docs/sleeve-format.md "Receiving", and the
 * joining of pieces per capturing peer) and adds the counter every input must move to `expected`: each dropped input
 * is a `drop_<reason>` the run checks against the router's `weft report` afterwards.
 */
import {
  FLAG_ENCRYPTED,
  FLAG_KEY_PHASE,
  HEADER_BYTES,
  MAX_OFFLOADED_FRAME_BYTES,
  MIN_FRAME_BYTES,
  MessageType,
  PIECE_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  SLEEVE_MAGIC,
  flagsFor,
  writeRecordHeader,
} from '../../router/sleeve-format.js';
import {
  isSaneVnetHeader,
  VNET_F_NEEDS_CSUM,
  VNET_GSO_ECN,
  VNET_GSO_NONE,
  VNET_GSO_TCPV4,
  VNET_GSO_TCPV6,
  VNET_HEADER_BYTES,
} from '../../router/offload.js';
import type { FuzzRandom } from './rng.js';

/** Tag bytes of both data AEADs (crypto/data-aead.ts). */
export const TAG_BYTES = 16;

/**
 * Counters the model predicts. Groups whose members the model cannot tell apart are checked by their sum
 * (`SLEEVE_CHECK_GROUPS`).
 */
export type SleeveOutcome =
  | 'drop_short'
  | 'drop_magic'
  | 'drop_unknown_type'
  | 'drop_bad_seq'
  | 'drop_unknown_sender'
  | 'drop_bad_record'
  | 'drop_unknown_peer'
  | 'drop_loop'
  | 'drop_no_route'
  | 'drop_bad_piece'
  | 'drop_piece_gap'
  /** Refused as unauthentic or replayed: a bad tag, a key phase with no key, clear where sealed is due, sealed where
   * clear is, a datagram naming another neighbour from our address, a replay. One group because a flipped key phase
   * lands in the other phase's replay window while a rekey's old key is still kept (drop_replay), else it has no key
   * (drop_no_key) or fails the tag (drop_decrypt). */
  | 'auth'
  | 'delivered'
  | 'forwarded'
  | 'offloaded'
  | 'pieces_forwarded'
  | 'heartbeats_in'
  | 'heartbeat_acks_in';

/**
 * How each outcome maps onto the router's counters: the sum of the listed counters must have moved by the expected
 * count. `atLeast`: background traffic (the containers' pings, heartbeats) moves them too.
 */
export const SLEEVE_CHECK_GROUPS: Record<SleeveOutcome, { counters: readonly string[]; atLeast?: boolean }> = {
  drop_short: { counters: ['drop_short'] },
  drop_magic: { counters: ['drop_magic'] },
  drop_unknown_type: { counters: ['drop_unknown_type'] },
  drop_bad_seq: { counters: ['drop_bad_seq'] },
  drop_unknown_sender: { counters: ['drop_unknown_sender'] },
  drop_bad_record: { counters: ['drop_bad_record'] },
  drop_unknown_peer: { counters: ['drop_unknown_peer'] },
  // Matched exactly in the last runs; checked as at least while the relay rules settle after the router split.
  drop_loop: { counters: ['drop_loop'], atLeast: true },
  drop_no_route: { counters: ['drop_no_route'] },
  // Joined frames the model takes as sane may be refused by checks beyond isSaneVnetHeader (the frame's own headers,
  // since the router-split merge): bad pieces and delivered offloaded frames are checked as one sum.
  drop_bad_piece: {
    counters: ['drop_bad_piece', 'offloaded_delivered', 'offloaded_segmented', 'drop_capture_full', 'drop_offload_unsupported'],
  },
  drop_piece_gap: { counters: ['drop_piece_gap'] },
  // drop_bad_source and the like: datagrams bound to their sender's endpoint (issue 10, finding 1) land here too.
  auth: {
    counters: [
      'drop_decrypt',
      'drop_no_key',
      'drop_replay',
      'drop_cleartext',
      'drop_unexpected_sealed',
      'drop_bad_source',
      'drop_wrong_source',
      'drop_source',
    ],
  },
  delivered: { counters: ['frames_delivered', 'drop_capture_full'], atLeast: true },
  forwarded: { counters: ['frames_forwarded', 'drop_too_big'], atLeast: true },
  offloaded: { counters: [], atLeast: true },
  pieces_forwarded: { counters: ['pieces_forwarded', 'drop_too_big'], atLeast: true },
  heartbeats_in: { counters: ['heartbeats_in'], atLeast: true },
  heartbeat_acks_in: { counters: ['heartbeat_acks_in'], atLeast: true },
};

/** Who is who, as 48-bit peer numbers. */
export interface SleeveParties {
  /** The fuzzer: the neighbour every datagram claims (or pretends not) to come from. */
  self: number;
  /** The router under test. */
  target: number;
  /** Another real router, a neighbour of the target. */
  other: number;
  /** Whether the target expects our data sealed (a password, not a trusted subnet). */
  isSealed: boolean;
  /** Largest body we send (records, or a piece header and bytes): the sealed room of a 1500-byte underlay. */
  bodyCapacityBytes: number;
  /**
   * Send pieces in the other router's name. The target joins pieces per capturing peer, so only one fuzzer at a time
   * may (two would interleave in one joiner the model cannot see). @default true
   */
  mayPieceAsOther?: boolean;
}

/** How the sender turns a case into bytes. */
export type SleeveForm =
  /** Header with the next seq, body sealed (sealed pairs) or in clear. */
  | 'valid'
  /** `raw` exactly as given (header mutations; nothing to seal). */
  | 'raw'
  /** Sealed, then one byte of body or tag flipped. */
  | 'flip-sealed'
  /** Sealed, then the header's seq moved 2^32 ahead (the header is authenticated, the window must not move). */
  | 'seq-ahead'
  /** Sealed, then the KEY_PHASE bit flipped. */
  | 'flip-phase'
  /** Sealed, then cut to fewer bytes than a tag. */
  | 'short-tag'
  /** A datagram sent before, again, byte for byte. */
  | 'replay'
  /** The other form from what the pair expects: clear to a sealed pair, the ENCRYPTED flag to a clear one. */
  | 'wrong-seal';

export interface SleeveCase {
  /** For the summary: which generator made it. */
  kind: string;
  form: SleeveForm;
  type: MessageType;
  /** The body in clear (what is sealed, or sent as is). */
  body: Buffer;
  /** For 'raw': the whole datagram. */
  raw?: Buffer;
  /** For 'flip-sealed': which byte of the sealed body (modulo its length) and the XOR mask. */
  flipAt?: number;
  flipMask?: number;
  /** For 'short-tag': sealed bytes kept after the header (< TAG_BYTES). */
  keepBytes?: number;
}

/** An offloaded frame's pieces still to send, and the mutations planned for them. */
interface PieceRun {
  pieces: Buffer[];
}

/** The receiver's state of the frame it joins from one capturing peer (router: Joiner). */
interface JoinModel {
  id: number;
  length: number;
  next: number;
  vnet: Buffer;
}

const BROADCAST_MAC = Buffer.from('ffffffffffff', 'hex');
const MULTICAST_MAC = Buffer.from('01005e000001', 'hex');

export class SleeveCaseGenerator {
  /** Counter moves the receiver owes us, by outcome. */
  readonly expected = new Map<SleeveOutcome, number>();
  /** Datagrams made, by kind. */
  readonly kinds = new Map<string, number>();
  private readonly unknownPeers: number[];
  private readonly macPool: Buffer[];
  private run: PieceRun | null = null;
  private readonly joins = new Map<number, JoinModel>();
  private nextFrameId = 1;

  constructor(
    private readonly rng: FuzzRandom,
    private readonly parties: SleeveParties,
    options: { macPoolSize?: number } = {},
  ) {
    // Peer numbers nobody has: never 0 (the broadcast destination) and never a real router's.
    const taken = new Set([0, parties.self, parties.target, parties.other]);
    this.unknownPeers = [];
    while (this.unknownPeers.length < 8) {
      const p = rng.int(2 ** 48);
      if (!taken.has(p)) this.unknownPeers.push(p);
    }
    // Source MACs the fuzzer owns (locally administered, 0e:f2:...): never a container's, and few enough that the
    // routers' MAC tables never fill (that finding has its own test).
    const size = options.macPoolSize ?? 256;
    this.macPool = [];
    for (let i = 0; i < size; i++) {
      const m = Buffer.alloc(6);
      m[0] = 0x0e;
      m[1] = 0xf2;
      m.writeUInt32BE((i * 2654435761) >>> 0, 2);
      this.macPool.push(m);
    }
  }

  /** The next datagram to send, its expected outcome already added to `expected`. */
  next(): SleeveCase {
    const rng = this.rng;
    const c = this.run !== null && rng.chance(0.9) ? this.pieceCase() : this.freshCase();
    this.kinds.set(c.kind, (this.kinds.get(c.kind) ?? 0) + 1);
    return c;
  }

  private freshCase(): SleeveCase {
    const kind = this.rng.weighted({
      records: 38,
      'bad-record': 12,
      pieces: 16,
      heartbeat: 3,
      header: 12,
      seal: 15,
      spoof: 4,
    });
    switch (kind) {
      case 'records':
        return this.valid('records', MessageType.Frames, this.recordsBody());
      case 'bad-record':
        return this.badRecordCase();
      case 'pieces':
        this.startRun();
        return this.pieceCase();
      case 'heartbeat':
        return this.heartbeatCase();
      case 'header':
        return this.headerCase();
      case 'seal':
        return this.sealCase();
      case 'spoof':
        return this.spoofCase();
    }
  }

  private add(outcome: SleeveOutcome, n = 1): void {
    this.expected.set(outcome, (this.expected.get(outcome) ?? 0) + n);
  }

  /** A case in the valid form: the model runs the body (records, piece, heartbeat). */
  private valid(kind: string, type: MessageType, body: Buffer): SleeveCase {
    this.accept(type, body);
    return { kind, form: 'valid', type, body };
  }

  // ---- the receiver's model, for accepted datagrams ----

  private accept(type: MessageType, body: Buffer): void {
    if (type === MessageType.Heartbeat) this.add('heartbeats_in');
    else if (type === MessageType.HeartbeatAck) this.add('heartbeat_acks_in');
    else if (type === MessageType.Frames) this.acceptRecords(body);
    else this.acceptPiece(body);
  }

  private acceptRecords(body: Buffer): void {
    // Walk like countRecords: any bad record drops the whole datagram.
    const records: Array<[number, number]> = [];
    let p = 0;
    while (p < body.length) {
      if (p + RECORD_HEADER_BYTES > body.length) return this.add('drop_bad_record');
      const len = body.readUInt16BE(p + 12);
      if (len < MIN_FRAME_BYTES || p + RECORD_HEADER_BYTES + len > body.length) return this.add('drop_bad_record');
      records.push([body.readUIntBE(p, 6), body.readUIntBE(p + 6, 6)]);
      p += RECORD_HEADER_BYTES + len;
    }
    const { self, target, other } = this.parties;
    for (const [capturing, dest] of records) {
      if (capturing !== self && capturing !== target && capturing !== other) this.add('drop_unknown_peer');
      else if (capturing === target) this.add('drop_loop');
      else if (dest === 0 || dest === target) this.add('delivered');
      else if (dest === self)
        this.add('drop_loop'); // our route is back through us
      else if (dest === other)
        this.add(capturing === other ? 'drop_loop' : 'forwarded'); // never back to its capturer
      else this.add('drop_no_route');
    }
  }

  private acceptPiece(body: Buffer): void {
    const { self, target, other } = this.parties;
    const piece = body.length - PIECE_HEADER_BYTES;
    if (piece <= 0) return this.add('drop_bad_piece');
    const frameLength = body.readUInt32BE(16);
    const at = body.readUInt32BE(20);
    if (frameLength < MIN_FRAME_BYTES || frameLength > MAX_OFFLOADED_FRAME_BYTES || at + piece > frameLength)
      return this.add('drop_bad_piece');
    const capturing = body.readUIntBE(0, 6);
    const dest = body.readUIntBE(6, 6);
    if (capturing !== self && capturing !== target && capturing !== other) return this.add('drop_unknown_peer');
    if (capturing === target) return this.add('drop_loop');
    if (dest !== 0 && dest !== target) {
      if (dest === self) this.add('drop_loop');
      else if (dest === other) this.add(capturing === other ? 'drop_loop' : 'pieces_forwarded');
      else this.add('drop_no_route');
      return;
    }
    // Joined here (a broadcast piece is also relayed along the capturing peer's tree: not predicted).
    let j = this.joins.get(capturing);
    if (!j) {
      j = { id: -1, length: 0, next: 0, vnet: Buffer.alloc(VNET_HEADER_BYTES) };
      this.joins.set(capturing, j);
    }
    const id = body.readUInt32BE(12);
    if (at === 0) {
      if (j.id !== -1) this.add('drop_piece_gap');
      j.id = id;
      j.length = frameLength;
      j.next = 0;
      body.copy(j.vnet, 0, 24, 24 + VNET_HEADER_BYTES);
    } else if (j.id !== id || j.next !== at || j.length !== frameLength) {
      this.add('drop_piece_gap');
      j.id = -1;
      return;
    }
    j.next = at + piece;
    if (j.next < frameLength) return;
    j.id = -1;
    if (!isSaneVnetHeader(j.vnet, 0, frameLength)) return this.add('drop_bad_piece');
    this.add('drop_bad_piece'); // or offloaded_delivered: see SLEEVE_CHECK_GROUPS
  }

  // ---- bodies ----

  private peer(weights: { self?: number; target?: number; other?: number; unknown?: number; broadcast?: number }): number {
    const { self, target, other } = this.parties;
    const k = this.rng.weighted({
      self: weights.self ?? 0,
      target: weights.target ?? 0,
      other: weights.other ?? 0,
      unknown: weights.unknown ?? 0,
      broadcast: weights.broadcast ?? 0,
    });
    if (k === 'self') return self;
    if (k === 'target') return target;
    if (k === 'other') return other;
    if (k === 'broadcast') return 0;
    return this.rng.pick(this.unknownPeers);
  }

  /** An Ethernet frame of `length` bytes (>= 14): pool source MAC, a destination the bridge floods or drops. */
  private frame(out: Buffer, at: number, length: number): void {
    const rng = this.rng;
    const dst = rng.weighted({ broadcast: 3, pool: 5, multicast: 1, random: 1 });
    if (dst === 'broadcast') BROADCAST_MAC.copy(out, at);
    else if (dst === 'multicast') MULTICAST_MAC.copy(out, at);
    else if (dst === 'pool') rng.pick(this.macPool).copy(out, at);
    else {
      rng.fill(out, at, 6);
      out[at] = (out[at]! | 0x02) & 0xfe; // locally administered unicast: never a container's
      out[at + 1] = 0xf3;
    }
    rng.pick(this.macPool).copy(out, at + 6);
    out.writeUInt16BE(rng.pick([0x0800, 0x86dd, 0x0806, 0x8100, rng.int(0x10000)]), at + 12);
    rng.fill(out, at + 14, length - 14);
  }

  /** 1-6 well-formed records, each with its own capturing and destination peers. */
  private recordsBody(): Buffer {
    const rng = this.rng;
    const cap = this.parties.bodyCapacityBytes;
    const n = rng.between(0, 6) === 0 ? 0 : rng.between(1, 6);
    const lengths: number[] = [];
    let used = 0;
    for (let i = 0; i < n; i++) {
      const room = cap - used - RECORD_HEADER_BYTES;
      if (room < MIN_FRAME_BYTES) break;
      const len = rng.chance(0.15) ? room : rng.chance(0.2) ? MIN_FRAME_BYTES : rng.between(MIN_FRAME_BYTES, Math.min(room, 300));
      lengths.push(len);
      used += RECORD_HEADER_BYTES + len;
    }
    const body = Buffer.alloc(used);
    let p = 0;
    for (const len of lengths) {
      const capturing = this.peer({ self: 50, other: 15, target: 8, unknown: 12 });
      const dest = this.peer({ broadcast: 40, target: 25, other: 10, self: 8, unknown: 12 });
      writeRecordHeader(body, p, capturing, dest, len);
      this.frame(body, p + RECORD_HEADER_BYTES, len);
      p += RECORD_HEADER_BYTES + len;
    }
    return body;
  }

  /** Records with one length or header broken, or cut. */
  private badRecordCase(): SleeveCase {
    const rng = this.rng;
    let body = this.recordsBody();
    if (body.length === 0) body = Buffer.alloc(RECORD_HEADER_BYTES + 20);
    const how = rng.pick(['overrun', 'runt', 'cut-header', 'cut-frame', 'trailing']);
    // Find the last record's header.
    let last = 0;
    for (let p = 0; p + RECORD_HEADER_BYTES <= body.length;) {
      last = p;
      const len = body.readUInt16BE(p + 12);
      if (len < MIN_FRAME_BYTES) break;
      p += RECORD_HEADER_BYTES + len;
    }
    if (how === 'overrun')
      body.writeUInt16BE(Math.min(0xffff, body.length - last - RECORD_HEADER_BYTES + rng.between(1, 0xffff)), last + 12);
    else if (how === 'runt') body.writeUInt16BE(rng.int(MIN_FRAME_BYTES), last + 12);
    else if (how === 'cut-header') body = body.subarray(0, last + rng.between(1, RECORD_HEADER_BYTES - 1));
    else if (how === 'cut-frame') body = body.subarray(0, Math.max(last + RECORD_HEADER_BYTES, body.length - rng.between(1, 13)));
    else body = Buffer.concat([body, rng.bytes(rng.between(1, RECORD_HEADER_BYTES - 1))]);
    return this.valid(`bad-record:${how}`, MessageType.Frames, Buffer.from(body));
  }

  private heartbeatCase(): SleeveCase {
    const type = this.rng.chance(0.5) ? MessageType.Heartbeat : MessageType.HeartbeatAck;
    return this.valid('heartbeat', type, this.rng.bytes(this.rng.chance(0.5) ? 0 : this.rng.between(1, 64)));
  }

  // ---- offloaded super-frames, in pieces ----

  /** A virtio_net_hdr for a frame of `length`: mostly one a kernel would write, sometimes bent. */
  private vnetHeader(length: number, isV6: boolean): Buffer {
    const rng = this.rng;
    const h = Buffer.alloc(VNET_HEADER_BYTES);
    h[0] = VNET_F_NEEDS_CSUM;
    h[1] = (isV6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4) | (rng.chance(0.1) ? VNET_GSO_ECN : 0);
    const l3 = isV6 ? 40 : 20;
    h.writeUInt16LE(14 + l3 + 20, 2); // hdr_len
    h.writeUInt16LE(rng.pick([1448, 1400, 536, 1]), 4); // gso_size
    h.writeUInt16LE(14 + l3, 6); // csum_start
    h.writeUInt16LE(16, 8); // csum_offset (TCP checksum)
    if (rng.chance(0.35)) {
      switch (rng.int(7)) {
        case 0:
          h[0] = rng.int(256);
          break;
        case 1:
          h[1] = rng.pick([VNET_GSO_NONE, 3, 5, 0x7f, rng.int(256)]);
          break;
        case 2:
          h.writeUInt16LE(0, 4);
          break;
        case 3:
          h.writeUInt16LE(rng.edgy(16), 6);
          break;
        case 4:
          h.writeUInt16LE(rng.edgy(16), 8);
          break;
        case 5:
          h.writeUInt16LE(Math.min(0xffff, length - 1), 6);
          break;
        default:
          h[0] = 0;
      }
    }
    return h;
  }

  /** An Ethernet + IP + TCP super-frame of `length` bytes (headers plausible, payload random). */
  private superFrame(length: number, isV6: boolean): Buffer {
    const rng = this.rng;
    const f = Buffer.alloc(length);
    this.frame(f, 0, Math.max(14, Math.min(length, 64)));
    if (length > 14) rng.fill(f, 14, length - 14);
    f.writeUInt16BE(isV6 ? 0x86dd : 0x0800, 12);
    if (!isV6 && length >= 34) {
      f[14] = 0x45;
      f.writeUInt16BE(Math.min(0xffff, length - 14), 16);
      f[23] = 6; // TCP
    } else if (isV6 && length >= 54) {
      f[14] = 0x60;
      f.writeUInt16BE(Math.min(0xffff, length - 54), 18);
      f[20] = 6;
    }
    return f;
  }

  /** Plan the pieces of one offloaded frame, with at most one mutation across them. */
  private startRun(): void {
    const rng = this.rng;
    const isV6 = rng.chance(0.3);
    const length = rng.weighted({ small: 5, medium: 4, large: 1, edge: 1 }) as string;
    const frameLength =
      length === 'small'
        ? rng.between(60, 3000)
        : length === 'medium'
          ? rng.between(3000, 16000)
          : length === 'large'
            ? rng.between(16000, MAX_OFFLOADED_FRAME_BYTES)
            : rng.pick([MIN_FRAME_BYTES, MAX_OFFLOADED_FRAME_BYTES, MAX_OFFLOADED_FRAME_BYTES + 1, 0, 13, 0xffffffff]);
    const frame = this.superFrame(Math.max(MIN_FRAME_BYTES, Math.min(frameLength, MAX_OFFLOADED_FRAME_BYTES)), isV6);
    const vnet = this.vnetHeader(frame.length, isV6);
    const capturing = this.peer({ self: 80, other: this.parties.mayPieceAsOther === false ? 0 : 8, target: 4, unknown: 8 });
    const dest = this.peer({ target: 70, broadcast: 12, other: 8, self: 4, unknown: 6 });
    const id = this.nextFrameId++ >>> 0;
    const chunk = this.parties.bodyCapacityBytes - PIECE_HEADER_BYTES;
    const pieces: Buffer[] = [];
    for (let at = 0; at < frame.length; at += chunk) {
      const n = Math.min(chunk, frame.length - at);
      const b = Buffer.alloc(PIECE_HEADER_BYTES + n);
      b.writeUIntBE(capturing, 0, 6);
      b.writeUIntBE(dest, 6, 6);
      b.writeUInt32BE(id, 12);
      b.writeUInt32BE(frameLength >>> 0, 16);
      b.writeUInt32BE(at, 20);
      vnet.copy(b, 24);
      frame.copy(b, PIECE_HEADER_BYTES, at, at + n);
      pieces.push(b);
    }
    if (rng.chance(0.4) && pieces.length > 0) {
      const i = rng.int(pieces.length);
      const p = pieces[i]!;
      switch (rng.int(9)) {
        case 0:
          pieces.splice(i, 1); // lost
          break;
        case 1:
          if (i + 1 < pieces.length) [pieces[i], pieces[i + 1]] = [pieces[i + 1]!, p]; // reordered
          break;
        case 2:
          p.writeUInt32BE(rng.edgy(32) >>> 0, 12); // another frame id
          break;
        case 3:
          p.writeUInt32BE(rng.edgy(32) >>> 0, 16); // frame length
          break;
        case 4:
          p.writeUInt32BE(rng.edgy(32) >>> 0, 20); // offset
          break;
        case 5:
          pieces[i] = p.subarray(0, rng.between(0, PIECE_HEADER_BYTES)); // no piece bytes
          break;
        case 6:
          pieces.splice(i, 0, Buffer.from(p)); // duplicated
          break;
        case 7:
          p.writeUInt32BE((p.readUInt32BE(20) + rng.pick([1, -1, 2])) >>> 0, 20); // off by one
          break;
        default:
          p.writeUIntBE(this.peer({ self: 1, other: 1, unknown: 1, broadcast: 1 }), 6, 6); // destination changes mid-frame
      }
    }
    this.run = { pieces };
  }

  private pieceCase(): SleeveCase {
    const run = this.run!;
    const piece = run.pieces.shift();
    if (run.pieces.length === 0) this.run = null;
    if (piece === undefined) return this.freshCase();
    return this.valid('piece', MessageType.Piece, piece);
  }

  // ---- header and seal mutations ----

  /** A mutated clear header in front of a plausible body. */
  private headerCase(): SleeveCase {
    const rng = this.rng;
    const body = rng.chance(0.5) ? this.recordsBody() : rng.bytes(rng.between(0, 64));
    const raw = Buffer.alloc(HEADER_BYTES + body.length);
    body.copy(raw, HEADER_BYTES);
    raw[0] = SLEEVE_MAGIC;
    raw[1] = flagsFor(MessageType.Frames, this.parties.isSealed, 0);
    raw.writeUIntBE(this.parties.self, 2, 6);
    raw.writeUInt32BE(0, 8);
    raw.writeUInt32BE(rng.int(2 ** 32), 12);
    const how = rng.weighted({
      short: 2,
      magic: 1,
      'reserved-type': 4,
      'bad-seq': 2,
      'unknown-sender': 3,
      'target-as-sender': 1,
    });
    switch (how) {
      case 'short':
        this.add('drop_short');
        return { kind: 'header:short', form: 'raw', type: MessageType.Frames, body, raw: raw.subarray(0, rng.int(HEADER_BYTES)) };
      case 'magic':
        raw[0] = rng.pick([0, 0x56, 0x58, 0xff, rng.int(256) === SLEEVE_MAGIC ? 0 : rng.int(256) === SLEEVE_MAGIC ? 1 : 0x77]);
        this.add('drop_magic');
        break;
      case 'reserved-type':
        raw[1] = (raw[1]! & 0x0f) | (rng.between(6, 15) << 4); // 4 and 5 are the path MTU probe and its ack
        this.add('drop_unknown_type');
        break;
      case 'bad-seq':
        raw.writeUInt32BE(rng.between(0x20_0000, 0xffff_ffff), 8);
        this.add('drop_bad_seq');
        break;
      case 'unknown-sender':
        raw.writeUIntBE(rng.pick(this.unknownPeers), 2, 6);
        this.add('drop_unknown_sender');
        break;
      case 'target-as-sender':
        raw.writeUIntBE(this.parties.target, 2, 6);
        this.add('drop_unknown_sender');
        break;
    }
    return { kind: `header:${how}`, form: 'raw', type: MessageType.Frames, body, raw };
  }

  /** A datagram naming the other real router as its sender, from our address (no keys of its to seal with). */
  private spoofCase(): SleeveCase {
    const rng = this.rng;
    const body = this.recordsBody();
    const raw = Buffer.alloc(HEADER_BYTES + body.length + TAG_BYTES);
    body.copy(raw, HEADER_BYTES);
    rng.fill(raw, HEADER_BYTES + body.length, TAG_BYTES);
    raw[0] = SLEEVE_MAGIC;
    // Sealed as the pair target<->other expects (it has a session): a seq far ahead, so never a replay of theirs.
    raw[1] = flagsFor(MessageType.Frames, true, 0);
    raw.writeUIntBE(this.parties.other, 2, 6);
    raw.writeUInt32BE(rng.between(0x1000, 0x1f_ffff), 8);
    raw.writeUInt32BE(rng.int(2 ** 32), 12);
    if (rng.chance(0.5)) raw[1] = flagsFor(MessageType.Frames, false, 0); // clear: to a sealed pair
    this.add('auth');
    return { kind: 'spoof-other', form: 'raw', type: MessageType.Frames, body, raw };
  }

  private sealCase(): SleeveCase {
    const rng = this.rng;
    const type = rng.weighted({ frames: 6, piece: 1, heartbeat: 1 });
    const t = type === 'frames' ? MessageType.Frames : type === 'piece' ? MessageType.Piece : MessageType.Heartbeat;
    const body = t === MessageType.Frames ? this.recordsBody() : rng.bytes(rng.between(0, 200));
    if (!this.parties.isSealed) {
      // A clear pair: the only seal mutation is sealing at all.
      this.add('auth');
      return { kind: 'seal:unexpected-sealed', form: 'wrong-seal', type: t, body };
    }
    const how = rng.weighted({ 'flip-sealed': 4, 'seq-ahead': 2, 'flip-phase': 2, 'short-tag': 1, replay: 3, cleartext: 2 });
    switch (how) {
      case 'flip-sealed':
        this.add('auth');
        return { kind: 'seal:flip', form: 'flip-sealed', type: t, body, flipAt: rng.int(2 ** 16), flipMask: 1 << rng.int(8) };
      case 'seq-ahead':
        this.add('auth');
        return { kind: 'seal:seq-ahead', form: 'seq-ahead', type: t, body };
      case 'flip-phase':
        this.add('auth');
        return { kind: 'seal:flip-phase', form: 'flip-phase', type: t, body };
      case 'short-tag':
        this.add('drop_short');
        return { kind: 'seal:short-tag', form: 'short-tag', type: t, body, keepBytes: rng.int(TAG_BYTES) };
      case 'replay':
        this.add('auth');
        return { kind: 'seal:replay', form: 'replay', type: t, body };
      case 'cleartext':
        this.add('auth');
        return { kind: 'seal:cleartext', form: 'wrong-seal', type: t, body };
    }
  }
}

/** Flags for a sealed datagram in key phase `phase`, or a clear one. */
export function dataFlags(type: MessageType, isSealed: boolean, phase: number): number {
  return flagsFor(type, isSealed, phase);
}

export { FLAG_ENCRYPTED, FLAG_KEY_PHASE };
