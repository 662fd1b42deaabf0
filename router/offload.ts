/**
 * The virtio_net_hdr that a TAP opened with offloads puts in front of every frame (linux/virtio_net.h), as far as
 * the sleeve reads it. Ten bytes; the u16 fields are little-endian (virtio 1.0, and host order on every machine
 * weft runs on):
 *
 *    0       1          2          4           6            8             10
 *    +-------+----------+----------+-----------+------------+-------------+
 *    | flags | gso_type | hdr_len  | gso_size  | csum_start | csum_offset |
 *    +-------+----------+----------+-----------+------------+-------------+
 *
 *   flags        bit 0 NEEDS_CSUM: the TCP/UDP checksum is partial: the one's complement sum from csum_start to
 *                the end still has to be stored at csum_start + csum_offset. bit 1 DATA_VALID (receive side).
 *   gso_type     0 none: an ordinary frame. 1 TCPV4, 4 TCPV6: a TCP super-frame the kernel cuts into gso_size
 *                segments on the way out; bit 7 ECN. Others (UDP) are never requested, so never read.
 *   hdr_len      bytes of Ethernet + IP + TCP header in front of the payload (a hint).
 *   gso_size     payload bytes per segment.
 */

export const VNET_HEADER_BYTES = 10;
export const VNET_F_NEEDS_CSUM = 0x01;
export const VNET_GSO_NONE = 0;
export const VNET_GSO_TCPV4 = 1;
export const VNET_GSO_TCPV6 = 4;
export const VNET_GSO_ECN = 0x80;

/** Finish a partial checksum in place (the native addon's `checksumComplete`); false when the offsets do not fit. */
export type ChecksumComplete = (buffer: Buffer, frameOffset: number, frameLength: number, csumStart: number, csumOffset: number) => boolean;

/** The same in JavaScript, for tests and for running without the addon. Allocates nothing. */
export const checksumCompleteJs: ChecksumComplete = (buffer, frameOffset, frameLength, csumStart, csumOffset) => {
  if (frameOffset + frameLength > buffer.length || csumStart + csumOffset + 2 > frameLength) return false;
  let sum = 0;
  const end = frameOffset + frameLength;
  let p = frameOffset + csumStart;
  for (; p + 1 < end; p += 2) sum += (buffer[p]! << 8) | buffer[p + 1]!;
  if (p < end) sum += buffer[p]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  const folded = ~sum & 0xffff;
  buffer.writeUInt16BE(folded === 0 ? 0xffff : folded, frameOffset + csumStart + csumOffset);
  return true;
};

/**
 * Whether the header at `buffer[h, h+10)` is one the sleeve may hand to a kernel for a frame of `frameLength`
 * bytes: a known gso_type, a segment size for super-frames, checksum offsets inside the frame. Peers are
 * authenticated, but a bug (or a compromised peer) must not get to feed the kernel nonsense.
 */
export function isSaneVnetHeader(buffer: Buffer, h: number, frameLength: number): boolean {
  const flags = buffer[h]!;
  const gsoType = buffer[h + 1]! & ~VNET_GSO_ECN;
  if ((flags & ~0x03) !== 0) return false;
  if ((flags & VNET_F_NEEDS_CSUM) !== 0 && buffer.readUInt16LE(h + 6) + buffer.readUInt16LE(h + 8) + 2 > frameLength) return false;
  if (gsoType === VNET_GSO_NONE) return true;
  if (gsoType !== VNET_GSO_TCPV4 && gsoType !== VNET_GSO_TCPV6) return false;
  const gsoSize = buffer.readUInt16LE(h + 4);
  return gsoSize > 0 && (flags & VNET_F_NEEDS_CSUM) !== 0;
}

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const ETHERTYPE_VLAN = 0x8100;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
/** Offset of the checksum field in a TCP header, and in a UDP header. */
const TCP_CSUM_OFFSET = 16;
const UDP_CSUM_OFFSET = 6;

/**
 * Whether the header at `buffer[h, h+10)` matches the frame right after it (`frameLength` bytes) as a kernel will
 * read it: a super-frame is TCP over the IP version its gso_type names; a partial checksum starts where the TCP or
 * UDP header starts and points at that header's checksum field; `hdr_len` and `gso_size` lie within the frame.
 * `isSaneVnetHeader` checks the header alone; this one the header against the frame's protocol. For headers that
 * came from the network (pieces joined from a peer), before they reach the TAP. Allocates nothing.
 */
export function isVnetHeaderForFrame(buffer: Buffer, h: number, frameLength: number): boolean {
  const f = h + VNET_HEADER_BYTES;
  const flags = buffer[h]!;
  const gsoType = buffer[h + 1]! & ~VNET_GSO_ECN;
  const needsCsum = (flags & VNET_F_NEEDS_CSUM) !== 0;
  if (gsoType === VNET_GSO_NONE && !needsCsum) return true;
  if (frameLength < 14 || f + frameLength > buffer.length) return false;
  let l3 = 14;
  let etherType = buffer.readUInt16BE(f + 12);
  if (etherType === ETHERTYPE_VLAN) {
    if (frameLength < 18) return false;
    etherType = buffer.readUInt16BE(f + 16);
    l3 = 18;
  }
  let l4: number;
  let proto: number;
  if (etherType === ETHERTYPE_IPV4) {
    if (frameLength < l3 + 20 || buffer[f + l3]! >> 4 !== 4) return false;
    l4 = l3 + (buffer[f + l3]! & 0x0f) * 4;
    proto = buffer[f + l3 + 9]!;
    if (l4 < l3 + 20 || gsoType === VNET_GSO_TCPV6) return false;
  } else if (etherType === ETHERTYPE_IPV6) {
    if (frameLength < l3 + 40 || buffer[f + l3]! >> 4 !== 6) return false;
    l4 = l3 + 40; // extension headers: not offloaded by the kernels we talk to; refused below (proto mismatch)
    proto = buffer[f + l3 + 6]!;
    if (gsoType === VNET_GSO_TCPV4) return false;
  } else {
    return false;
  }
  if (gsoType !== VNET_GSO_NONE) {
    if (proto !== IPPROTO_TCP || frameLength < l4 + 20) return false;
    const tcpHeaderBytes = (buffer[f + l4 + 12]! >> 4) * 4;
    const hdrLen = buffer.readUInt16LE(h + 2);
    const gsoSize = buffer.readUInt16LE(h + 4);
    if (tcpHeaderBytes < 20 || l4 + tcpHeaderBytes > frameLength) return false;
    if (hdrLen > frameLength || gsoSize === 0 || gsoSize > frameLength) return false;
  }
  if (needsCsum) {
    const csumStart = buffer.readUInt16LE(h + 6);
    const csumOffset = buffer.readUInt16LE(h + 8);
    if (csumStart !== l4) return false;
    if (proto === IPPROTO_TCP) return csumOffset === TCP_CSUM_OFFSET;
    if (proto === IPPROTO_UDP) return csumOffset === UDP_CSUM_OFFSET;
    return false;
  }
  return true;
}
