/**
 * TCP coalescing in software (GRO) on the way to the bridge: consecutive TCP segments of one flow, as they arrive
 * from peers (cut by ./tcp-segments.ts, one per datagram), are joined back into one large frame and written to
 * the TAP with a virtio_net_hdr that marks it a TCP super-frame (gso_type TCPV4/TCPV6, `gso_size` the segments'
 * payload) with a partial checksum, so the local kernel takes 64 KiB at a time as it would from a NIC with GRO.
 *
 * A segment joins the frame held for its flow when, as in the kernel's GRO: same MACs (and 802.1Q tag), IP
 * addresses, ports, IPv4 TOS/TTL/DF (no options, not a fragment) or IPv6 traffic class/flow label/hop limit (no
 * extension headers); same ack, window and TCP options (timestamps equal); flags ACK (with ECE and PSH only as the
 * held frame has them; PSH ends the frame); its seq continues the frame; the IPv4 id is the next one; its payload
 * is no larger than the first segment's (a shorter one ends the frame); the frame stays within 64 KiB of IP. Its
 * TCP checksum must be right (checked before it is taken: the joined frame's checksum is computed again by the
 * kernel, so a bad segment must not be hidden in it). Anything else (SYN, FIN, RST, URG, CWR, no payload, not
 * TCP) is written as it is, after every held frame, so a flow's frames keep their order.
 *
 * A frame of one segment goes to the bridge unchanged (`Capture.write`). Held frames are written when their flow
 * needs the slot for something else, when all slots are taken (the oldest), and at the end of every receive batch
 * (`flush`): nothing waits for a later batch.
 *
 * Memory: `coalesceFlows` buffers of 64 KiB, made at construction. Per segment: one checksum pass and one copy of its
 * payload; nothing allocated, awaited or logged.
 */
import type { Capture } from './capture.js';
import { MAX_OFFLOADED_FRAME_BYTES } from './sleeve-format.js';
import { VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HEADER_BYTES, type ChecksumComplete } from './offload.js';
import type { SleeveCounters } from './sleeve-counters.js';
import type { CopyBytes } from './sleeve-send.js';
import { TCP_ACK, TCP_CSUM_OFFSET, TCP_ECE, TCP_PSH, fold16, pseudoHeaderSum, writeIpv4HeaderChecksum } from './tcp-segments.js';

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const IPPROTO_TCP = 6;
/** Flags a segment may have and still be joined: ACK always, ECE and PSH. */
const JOINABLE_FLAGS = TCP_ACK | TCP_ECE | TCP_PSH;

/** A frame being joined for one flow. */
class HeldFrame {
  /** [virtio_net_hdr | frame]. */
  readonly buffer = Buffer.alloc(VNET_HEADER_BYTES + MAX_OFFLOADED_FRAME_BYTES);
  isHeld = false;
  /** Frame bytes held (after the header). */
  length = 0;
  l3 = 0;
  l4 = 0;
  /** Bytes of Ethernet + IP + TCP header. */
  headerBytes = 0;
  isV6 = false;
  /** Payload bytes of the first segment: every later one has at most this many. */
  segmentBytes = 0;
  /** The seq the next segment must have. */
  nextSeq = 0;
  lastId = 0;
  segments = 0;
  /** A segment with PSH or a short payload came: nothing more joins. */
  isClosed = false;
}

export interface TcpCoalescerDeps {
  capture: Capture;
  counters: SleeveCounters;
  /** Finishes a partial checksum (the addon's `checksumComplete`); used to check received segments. */
  checksumComplete: ChecksumComplete;
  /** Copies payload bytes into held frames (the addon's `copyBytes`: no allocation). */
  copyBytes: CopyBytes;
}

export interface TcpCoalescerOptions {
  /** Flows joined at once (one 64 KiB buffer each); 0 writes every frame as it comes. @default 8 */
  coalesceFlows?: number;
}

/** See the module comment. */
export class TcpCoalescer {
  private readonly capture: Capture;
  private readonly stats: SleeveCounters;
  private readonly checksumComplete: ChecksumComplete;
  private readonly copyBytes: CopyBytes;
  private readonly held: HeldFrame[];
  /** Next slot to give up when all are taken. */
  private victim = 0;
  private heldCount = 0;
  // The segment being looked at (set by `parse`).
  private l3 = 0;
  private l4 = 0;
  private headerBytes = 0;
  private frameBytes = 0;
  private isV6 = false;

  constructor(deps: TcpCoalescerDeps, options: TcpCoalescerOptions = {}) {
    this.capture = deps.capture;
    this.stats = deps.counters;
    this.checksumComplete = deps.checksumComplete;
    this.copyBytes = deps.copyBytes;
    const flows = Math.max(0, options.coalesceFlows ?? 8);
    this.held = [];
    for (let i = 0; i < flows; i++) this.held.push(new HeldFrame());
  }

  /**
   * A frame for the bridge (`buf[off, off+len)`, a whole Ethernet frame). Joined to a held frame, held as the start
   * of one, or written now (after every held frame). The caller keeps `buf`; counted in `frames_delivered` (or
   * `drop_capture_full`) when it reaches the capture. May rewrite and restore the TCP checksum bytes in `buf`.
   */
  deliver(buf: Buffer, off: number, len: number): void {
    if (this.held.length === 0 || this.capture.vnetHeaderBytes !== VNET_HEADER_BYTES || !this.parse(buf, off, len)) {
      this.writeAsIs(buf, off, len);
      return;
    }
    const l4 = off + this.l4;
    const flags = buf[l4 + 13]!;
    const seq = buf.readUInt32BE(l4 + 4);
    const payload = this.frameBytes - this.headerBytes;
    const held = this.held;
    let free = -1;
    for (let i = 0; i < held.length; i++) {
      const h = held[i]!;
      if (!h.isHeld) {
        if (free < 0) free = i;
        continue;
      }
      if (!this.isSameFlow(h, buf, off)) continue;
      if (this.canJoin(h, buf, off, flags, seq, payload)) {
        this.join(h, buf, off, flags, payload);
        return;
      }
      if (seq !== h.nextSeq) this.stats.segment_gaps++;
      this.writeHeld(h);
      this.hold(h, buf, off, flags, seq, payload);
      return;
    }
    if (free < 0) {
      free = this.victim;
      this.victim = (this.victim + 1) % held.length;
      this.writeHeld(held[free]!);
    }
    this.hold(held[free]!, buf, off, flags, seq, payload);
  }

  /** Write every held frame (end of a receive batch, before `Capture.flush`). */
  flush(): void {
    if (this.heldCount === 0) return;
    const held = this.held;
    for (let i = 0; i < held.length; i++) if (held[i]!.isHeld) this.writeHeld(held[i]!);
  }

  /** Whether the frame is a TCP segment that may be joined (sets l3, l4, headerBytes, frameBytes, isV6). */
  private parse(buf: Buffer, off: number, len: number): boolean {
    if (len < 54) return false;
    let l3 = 14;
    let etherType = buf.readUInt16BE(off + 12);
    if (etherType === ETHERTYPE_VLAN) {
      etherType = buf.readUInt16BE(off + 16);
      l3 = 18;
    }
    const ip = off + l3;
    let l4: number;
    let frameBytes: number;
    if (etherType === ETHERTYPE_IPV4) {
      if (buf[ip] !== 0x45 || buf[ip + 9] !== IPPROTO_TCP || (buf.readUInt16BE(ip + 6) & 0xbfff) !== 0) return false;
      l4 = l3 + 20;
      frameBytes = l3 + buf.readUInt16BE(ip + 2);
    } else if (etherType === ETHERTYPE_IPV6) {
      if (buf[ip]! >> 4 !== 6 || buf[ip + 6] !== IPPROTO_TCP) return false;
      l4 = l3 + 40;
      frameBytes = l4 + buf.readUInt16BE(ip + 4);
    } else {
      return false;
    }
    if (frameBytes > len || frameBytes < l4 + 20) return false;
    const headerBytes = l4 + (buf[off + l4 + 12]! >> 4) * 4;
    if (headerBytes < l4 + 20 || headerBytes >= frameBytes) return false;
    const flags = buf[off + l4 + 13]!;
    if ((flags & TCP_ACK) === 0 || (flags & ~JOINABLE_FLAGS) !== 0) return false;
    // The checksum must be right before the segment disappears into a frame whose checksum the kernel recomputes.
    const field = off + l4 + TCP_CSUM_OFFSET;
    const received = buf.readUInt16BE(field);
    const isV6 = etherType === ETHERTYPE_IPV6;
    buf.writeUInt16BE(fold16(pseudoHeaderSum(buf, ip, isV6, frameBytes - l4)), field);
    this.checksumComplete(buf, off, frameBytes, l4, TCP_CSUM_OFFSET);
    const computed = buf.readUInt16BE(field);
    buf.writeUInt16BE(received, field);
    if (computed !== received && !((computed === 0xffff && received === 0) || (computed === 0 && received === 0xffff))) return false;
    this.l3 = l3;
    this.l4 = l4;
    this.headerBytes = headerBytes;
    this.frameBytes = frameBytes;
    this.isV6 = isV6;
    return true;
  }

  /** Same MACs, VLAN, IP addresses and unchanging IP fields, ports as the frame `h` holds. */
  private isSameFlow(h: HeldFrame, buf: Buffer, off: number): boolean {
    if (h.l3 !== this.l3 || h.isV6 !== this.isV6 || h.headerBytes !== this.headerBytes) return false;
    const b = h.buffer;
    const f = VNET_HEADER_BYTES;
    const l3 = this.l3;
    for (let k = 0; k < l3; k++) if (b[f + k] !== buf[off + k]) return false;
    if (this.isV6) {
      for (let k = 0; k < 4; k++) if (b[f + l3 + k] !== buf[off + l3 + k]) return false;
      for (let k = 6; k < 40; k++) if (b[f + l3 + k] !== buf[off + l3 + k]) return false;
    } else {
      if (b[f + l3 + 1] !== buf[off + l3 + 1]) return false;
      for (let k = 6; k < 10; k++) if (b[f + l3 + k] !== buf[off + l3 + k]) return false;
      for (let k = 12; k < 20; k++) if (b[f + l3 + k] !== buf[off + l3 + k]) return false;
    }
    const l4 = this.l4;
    for (let k = 0; k < 4; k++) if (b[f + l4 + k] !== buf[off + l4 + k]) return false;
    return true;
  }

  /** Whether the segment continues the frame `h` holds of its flow (see the module comment). */
  private canJoin(h: HeldFrame, buf: Buffer, off: number, flags: number, seq: number, payload: number): boolean {
    if (h.isClosed || seq !== h.nextSeq || payload > h.segmentBytes) return false;
    if (h.length + payload - h.l3 > 65_535) return false;
    const b = h.buffer;
    const f = VNET_HEADER_BYTES;
    const l4 = this.l4;
    if ((b[f + l4 + 13]! & ~TCP_PSH) !== (flags & ~TCP_PSH)) return false;
    for (let k = 8; k < 16; k++) if (k !== 12 && k !== 13 && b[f + l4 + k] !== buf[off + l4 + k]) return false; // ack, window
    for (let k = l4 + 20; k < this.headerBytes; k++) if (b[f + k] !== buf[off + k]) return false; // options
    if (!this.isV6 && buf.readUInt16BE(off + this.l3 + 4) !== ((h.lastId + 1) & 0xffff)) return false;
    return true;
  }

  private hold(h: HeldFrame, buf: Buffer, off: number, flags: number, seq: number, payload: number): void {
    const length = this.frameBytes;
    this.copyBytes(buf, off, h.buffer, VNET_HEADER_BYTES, length);
    h.isHeld = true;
    this.heldCount++;
    h.length = length;
    h.l3 = this.l3;
    h.l4 = this.l4;
    h.headerBytes = this.headerBytes;
    h.isV6 = this.isV6;
    h.segmentBytes = payload;
    h.nextSeq = (seq + payload) >>> 0;
    h.lastId = this.isV6 ? 0 : buf.readUInt16BE(off + this.l3 + 4);
    h.segments = 1;
    h.isClosed = (flags & TCP_PSH) !== 0;
  }

  private join(h: HeldFrame, buf: Buffer, off: number, flags: number, payload: number): void {
    this.copyBytes(buf, off + this.headerBytes, h.buffer, VNET_HEADER_BYTES + h.length, payload);
    h.length += payload;
    h.nextSeq = (h.nextSeq + payload) >>> 0;
    if (!h.isV6) h.lastId = (h.lastId + 1) & 0xffff;
    h.segments++;
    if ((flags & TCP_PSH) !== 0) {
      h.buffer[VNET_HEADER_BYTES + h.l4 + 13] = h.buffer[VNET_HEADER_BYTES + h.l4 + 13]! | TCP_PSH;
      h.isClosed = true;
    } else if (payload < h.segmentBytes) {
      h.isClosed = true;
    }
  }

  /** Write the frame `h` holds: as it came when one segment, else as a super-frame with a partial checksum. */
  private writeHeld(h: HeldFrame): void {
    h.isHeld = false;
    this.heldCount--;
    const s = this.stats;
    const b = h.buffer;
    const segments = h.segments;
    if (segments === 1) {
      if (this.capture.write(b, VNET_HEADER_BYTES, h.length)) s.frames_delivered++;
      else s.drop_capture_full++;
      return;
    }
    const f = VNET_HEADER_BYTES;
    const l3 = f + h.l3;
    if (h.isV6) {
      b.writeUInt16BE(h.length - h.l3 - 40, l3 + 4);
    } else {
      b.writeUInt16BE(h.length - h.l3, l3 + 2);
      writeIpv4HeaderChecksum(b, l3, 20);
    }
    b.writeUInt16BE(fold16(pseudoHeaderSum(b, l3, h.isV6, h.length - h.l4)), f + h.l4 + TCP_CSUM_OFFSET);
    b[0] = VNET_F_NEEDS_CSUM;
    b[1] = h.isV6 ? VNET_GSO_TCPV6 : VNET_GSO_TCPV4;
    b.writeUInt16LE(h.headerBytes, 2);
    b.writeUInt16LE(h.segmentBytes, 4);
    b.writeUInt16LE(h.l4, 6);
    b.writeUInt16LE(TCP_CSUM_OFFSET, 8);
    if (this.capture.writeOffloaded(b, 0, h.length)) {
      s.frames_delivered += segments;
      s.segments_coalesced += segments;
      s.coalesced_delivered++;
    } else {
      s.drop_capture_full += segments;
    }
  }

  /** Write a frame that is not joined, after every held frame (order within a flow). */
  private writeAsIs(buf: Buffer, off: number, len: number): void {
    this.flush();
    if (this.capture.write(buf, off, len)) this.stats.frames_delivered++;
    else this.stats.drop_capture_full++;
  }
}
