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
