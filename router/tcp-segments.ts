/**
 * TCP segmentation in software: a TCP super-frame the kernel handed over with offloads (a virtio_net_hdr with
 * gso_type TCPV4 or TCPV6, see ./offload.ts) cut into the real TCP segments a NIC with TSO would have sent, each a
 * whole Ethernet frame with its own headers and checksums. The sleeve sends each segment in its own datagram, so a
 * lost datagram is one lost TCP segment (as on a plain link), not a lost 64 KiB frame.
 *
 * Per segment i of n (payload `gso_size` bytes, the last one the rest), as the kernel's own GSO does it:
 *   Ethernet (and 802.1Q) header   copied
 *   IPv4                           total length; id = first id + i (mod 2^16); header checksum recomputed
 *   IPv6                           payload length (no extension headers: refused)
 *   TCP                            seq = first seq + i * gso_size; CWR only on the first segment, FIN and PSH only
 *                                  on the last; options copied; checksum computed in full (pseudo-header included)
 *
 * Usage, allocation-free: `parse` a super-frame once, then `writeSegment(i, ...)` for i in [0, count).
 */
import { VNET_HEADER_BYTES, VNET_GSO_ECN, VNET_GSO_TCPV4, VNET_GSO_TCPV6, type ChecksumComplete } from './offload.js';

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const IPPROTO_TCP = 6;
/** Offset of the checksum in a TCP header. */
export const TCP_CSUM_OFFSET = 16;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/**
 * The one's complement sum (not folded, not complemented) of the TCP pseudo-header for a TCP header + payload of
 * `tcpLength` bytes: source and destination addresses of the IP header at `buf[l3]`, protocol, length.
 */
export function pseudoHeaderSum(buf: Buffer, l3: number, isV6: boolean, tcpLength: number): number {
  let sum = IPPROTO_TCP + tcpLength;
  const from = isV6 ? l3 + 8 : l3 + 12;
  const to = isV6 ? l3 + 40 : l3 + 20;
  for (let p = from; p < to; p += 2) sum += (buf[p]! << 8) | buf[p + 1]!;
  return sum;
}

/** Fold a one's complement sum to 16 bits (not complemented). */
export function fold16(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** Write the IPv4 header checksum of the header at `buf[l3]` (`ihlBytes` long). */
export function writeIpv4HeaderChecksum(buf: Buffer, l3: number, ihlBytes: number): void {
  buf[l3 + 10] = 0;
  buf[l3 + 11] = 0;
  let sum = 0;
  for (let p = l3; p < l3 + ihlBytes; p += 2) sum += (buf[p]! << 8) | buf[p + 1]!;
  buf.writeUInt16BE(~fold16(sum) & 0xffff, l3 + 10);
}

/** Cuts one TCP super-frame at a time into segments. See the module comment. */
export class TcpSegmenter {
  /** Segments of the parsed super-frame. */
  count = 0;
  /** Bytes of Ethernet + IP + TCP header in front of the payload of every segment. */
  headerBytes = 0;
  /** Payload bytes per segment (the last may have fewer). */
  segmentBytes = 0;
  /** Length of the largest segment frame (the first): `headerBytes + min(segmentBytes, payload)`. */
  largestFrameBytes = 0;
  private buf: Buffer = Buffer.alloc(0);
  private frame = 0;
  private l3 = 0;
  private l4 = 0;
  private isV6 = false;
  private payloadBytes = 0;
  private firstId = 0;
  private firstSeq = 0;
  private flags = 0;

  constructor(private readonly checksumComplete: ChecksumComplete) {}

  /**
   * Read the super-frame whose virtio_net_hdr is at `buf[h]` and whose `frameLength` bytes follow it. Returns the
   * number of segments (>= 1), or 0 when it is not a TCP super-frame this segmenter cuts (no TCP GSO type, an IP
   * header that does not match it, IPv6 extension headers, no payload): the caller keeps its other path for those.
   * The frame must stay unchanged until the last `writeSegment`.
   */
  parse(buf: Buffer, h: number, frameLength: number): number {
    this.count = 0;
    const gsoType = buf[h + 1]! & ~VNET_GSO_ECN;
    const segmentBytes = buf.readUInt16LE(h + 4);
    if ((gsoType !== VNET_GSO_TCPV4 && gsoType !== VNET_GSO_TCPV6) || segmentBytes === 0) return 0;
    const f = h + VNET_HEADER_BYTES;
    if (frameLength < 14 || f + frameLength > buf.length) return 0;
    let l3 = 14;
    let etherType = buf.readUInt16BE(f + 12);
    if (etherType === ETHERTYPE_VLAN) {
      if (frameLength < 18) return 0;
      etherType = buf.readUInt16BE(f + 16);
      l3 = 18;
    }
    let l4: number;
    const isV6 = gsoType === VNET_GSO_TCPV6;
    if (!isV6) {
      if (etherType !== ETHERTYPE_IPV4 || frameLength < l3 + 20 || buf[f + l3]! >> 4 !== 4) return 0;
      l4 = l3 + (buf[f + l3]! & 0x0f) * 4;
      if (l4 < l3 + 20 || buf[f + l3 + 9] !== IPPROTO_TCP) return 0;
      if ((buf.readUInt16BE(f + l3 + 6) & 0x3fff) !== 0) return 0; // a fragment
    } else {
      if (etherType !== ETHERTYPE_IPV6 || frameLength < l3 + 40 || buf[f + l3]! >> 4 !== 6) return 0;
      l4 = l3 + 40;
      if (buf[f + l3 + 6] !== IPPROTO_TCP) return 0;
    }
    if (frameLength < l4 + 20) return 0;
    const tcpHeaderBytes = (buf[f + l4 + 12]! >> 4) * 4;
    const headerBytes = l4 + tcpHeaderBytes;
    if (tcpHeaderBytes < 20 || headerBytes >= frameLength) return 0;
    const payloadBytes = frameLength - headerBytes;
    this.buf = buf;
    this.frame = f;
    this.l3 = l3;
    this.l4 = l4;
    this.isV6 = isV6;
    this.headerBytes = headerBytes;
    this.segmentBytes = segmentBytes;
    this.payloadBytes = payloadBytes;
    this.largestFrameBytes = headerBytes + (payloadBytes < segmentBytes ? payloadBytes : segmentBytes);
    this.firstId = isV6 ? 0 : buf.readUInt16BE(f + l3 + 4);
    this.firstSeq = buf.readUInt32BE(f + l4 + 4);
    this.flags = buf[f + l4 + 13]!;
    this.count = Math.ceil(payloadBytes / segmentBytes);
    return this.count;
  }

  /** Frame bytes of segment `i` of the parsed super-frame. */
  segmentFrameBytes(i: number): number {
    const rest = this.payloadBytes - i * this.segmentBytes;
    return this.headerBytes + (rest < this.segmentBytes ? rest : this.segmentBytes);
  }

  /**
   * Write segment `i` of the parsed super-frame as a whole Ethernet frame at `out[at]` (room for
   * `largestFrameBytes` needed; `copy` moves the payload) and return its length. Allocates nothing.
   */
  writeSegment(i: number, out: Buffer, at: number, copy: (s: Buffer, so: number, t: Buffer, to: number, n: number) => number): number {
    const buf = this.buf;
    const f = this.frame;
    const hb = this.headerBytes;
    const start = i * this.segmentBytes;
    const rest = this.payloadBytes - start;
    const payload = rest < this.segmentBytes ? rest : this.segmentBytes;
    const length = hb + payload;
    for (let k = 0; k < hb; k++) out[at + k] = buf[f + k]!;
    copy(buf, f + hb + start, out, at + hb, payload);
    const l3 = at + this.l3;
    const l4 = at + this.l4;
    if (this.isV6) {
      out.writeUInt16BE(length - this.l3 - 40, l3 + 4);
    } else {
      out.writeUInt16BE(length - this.l3, l3 + 2);
      out.writeUInt16BE((this.firstId + i) & 0xffff, l3 + 4);
      writeIpv4HeaderChecksum(out, l3, this.l4 - this.l3);
    }
    out.writeUInt32BE((this.firstSeq + start) >>> 0, l4 + 4);
    let flags = this.flags;
    if (i > 0) flags &= ~TCP_CWR;
    if (i < this.count - 1) flags &= ~(TCP_FIN | TCP_PSH);
    out[l4 + 13] = flags;
    const tcpLength = length - this.l4;
    out.writeUInt16BE(fold16(pseudoHeaderSum(out, l3, this.isV6, tcpLength)), l4 + TCP_CSUM_OFFSET);
    this.checksumComplete(out, at, length, this.l4, TCP_CSUM_OFFSET);
    return length;
  }
}
