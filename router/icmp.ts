/**
 * ICMPv4 "fragmentation needed" (type 3, code 4, RFC 1191) for frames too big for the overlay path.
 *
 * When a container sends an IPv4 packet with Don't Fragment set that does not fit in one sleeve datagram, the sleeve
 * answers on the bridge as if a router on the path had: the container's kernel lowers its path MTU for that
 * destination and TCP resends smaller segments. Without it such a connection stalls silently (a PMTU black hole).
 *
 * The reply is built into a caller-owned buffer; nothing is allocated. Its Ethernet source is the original frame's
 * destination MAC and its IP source the original destination address, so it looks like it came from the host the
 * container was talking to, which is what Linux's PMTU handling keys on (the quoted inner header).
 */

/** Bytes of the largest reply: Ethernet 14 + IP 20 + ICMP 8 + quoted IP header (up to 60) + 8 bytes of payload. */
export const FRAG_NEEDED_MAX_BYTES = 14 + 20 + 8 + 60 + 8;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERNET_BYTES = 14;
const IP_PROTO_ICMP = 1;
const IP_FLAG_DF = 0x4000;
const IP_FRAGMENT_OFFSET_MASK = 0x1fff;

/** RFC 1071 Internet checksum of `buffer[offset, offset+length)`: the ones' complement of the ones'-complement sum. */
export function internetChecksum(buffer: Buffer, offset: number, length: number): number {
  let sum = 0;
  const end = offset + length - 1;
  let i = offset;
  for (; i < end; i += 2) sum += (buffer[i]! << 8) | buffer[i + 1]!;
  if (i === end) sum += buffer[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * True when `frame` (Ethernet, no VLAN tag) is a unicast IPv4 packet with Don't Fragment set, the first fragment
 * and not itself an ICMP error: the packets RFC 1191/1122 allow a "fragmentation needed" reply to.
 */
export function needsFragmentationReply(buffer: Buffer, offset: number, length: number): boolean {
  if (length < ETHERNET_BYTES + 20) return false;
  if ((buffer[offset]! & 1) !== 0) return false; // to a group address: RFC 1122 3.2.2 forbids ICMP errors
  if (buffer.readUInt16BE(offset + 12) !== ETHERTYPE_IPV4) return false;
  const ip = offset + ETHERNET_BYTES;
  const versionIhl = buffer[ip]!;
  const headerBytes = (versionIhl & 0x0f) * 4;
  if (versionIhl >>> 4 !== 4 || headerBytes < 20 || ETHERNET_BYTES + headerBytes > length) return false;
  const flagsFragment = buffer.readUInt16BE(ip + 6);
  if ((flagsFragment & IP_FLAG_DF) === 0 || (flagsFragment & IP_FRAGMENT_OFFSET_MASK) !== 0) return false;
  const firstByteOfDestination = buffer[ip + 16]!;
  if (firstByteOfDestination >= 224) return false; // multicast or reserved
  if (buffer[ip + 9] === IP_PROTO_ICMP && ETHERNET_BYTES + headerBytes < length) {
    const icmpType = buffer[ip + headerBytes]!;
    // Never answer an ICMP error with another (RFC 1122 3.2.2): unreachable, source quench, redirect, time
    // exceeded, parameter problem.
    if (icmpType === 3 || icmpType === 4 || icmpType === 5 || icmpType === 11 || icmpType === 12) return false;
  }
  return true;
}

/**
 * Write an Ethernet frame holding an ICMPv4 "fragmentation needed" reply to `frame` into `out[outOffset..]`, with
 * `nextHopMtuBytes` as the MTU to use. `out` must have `FRAG_NEEDED_MAX_BYTES` free at `outOffset`. Returns the
 * reply's length, or 0 when `frame` is not one `needsFragmentationReply` accepts (nothing is written then).
 */
export function writeFragmentationNeeded(
  out: Buffer,
  outOffset: number,
  frame: Buffer,
  frameOffset: number,
  frameLength: number,
  nextHopMtuBytes: number,
): number {
  if (!needsFragmentationReply(frame, frameOffset, frameLength)) return 0;
  const inIp = frameOffset + ETHERNET_BYTES;
  const inHeaderBytes = (frame[inIp]! & 0x0f) * 4;
  const quotedBytes = Math.min(inHeaderBytes + 8, frameLength - ETHERNET_BYTES);
  const ipBytes = 20 + 8 + quotedBytes;

  // Ethernet: back to the sender, from the MAC it sent to.
  const o = outOffset;
  for (let i = 0; i < 6; i++) {
    out[o + i] = frame[frameOffset + 6 + i]!;
    out[o + 6 + i] = frame[frameOffset + i]!;
  }
  out.writeUInt16BE(ETHERTYPE_IPV4, o + 12);

  // IPv4 header.
  const ip = o + ETHERNET_BYTES;
  out[ip] = 0x45;
  out[ip + 1] = 0xc0; // precedence "internetwork control", as Linux sends its ICMP errors
  out.writeUInt16BE(ipBytes, ip + 2);
  out.writeUInt16BE(0, ip + 4); // identification
  out.writeUInt16BE(0, ip + 6); // flags, fragment offset
  out[ip + 8] = 64; // TTL
  out[ip + 9] = IP_PROTO_ICMP;
  out.writeUInt16BE(0, ip + 10);
  for (let i = 0; i < 4; i++) {
    out[ip + 12 + i] = frame[inIp + 16 + i]!; // source: the original destination
    out[ip + 16 + i] = frame[inIp + 12 + i]!; // destination: the original source
  }
  out.writeUInt16BE(internetChecksum(out, ip, 20), ip + 10);

  // ICMP: type 3 code 4, unused, next-hop MTU, then the original IP header and 8 bytes of its payload.
  const icmp = ip + 20;
  out[icmp] = 3;
  out[icmp + 1] = 4;
  out.writeUInt16BE(0, icmp + 2);
  out.writeUInt16BE(0, icmp + 4);
  out.writeUInt16BE(Math.min(nextHopMtuBytes, 0xffff), icmp + 6);
  for (let i = 0; i < quotedBytes; i++) out[icmp + 8 + i] = frame[inIp + i]!;
  out.writeUInt16BE(internetChecksum(out, icmp, 8 + quotedBytes), icmp + 2);
  return ETHERNET_BYTES + ipBytes;
}

/**
 * Bytes of the largest ICMPv6 "packet too big" reply: Ethernet 14 + IPv6 40 + ICMPv6 8 + the first 128 bytes of the
 * packet it answers (enough for its IPv6 header, extension headers and the TCP/UDP ports the sender's kernel looks
 * up; RFC 4443 allows up to what fits in 1280).
 */
export const PACKET_TOO_BIG_MAX_BYTES = 14 + 40 + 8 + 128;
const PTB_QUOTE_MAX_BYTES = 128;
const ETHERTYPE_IPV6 = 0x86dd;
const IPV6_HEADER_BYTES = 40;
const NEXT_HEADER_ICMPV6 = 58;

/** Ones'-complement sum of `buffer[offset, offset+length)` as big-endian 16-bit words, added to `sum` (unfolded). */
function onesSum(buffer: Buffer, offset: number, length: number, sum: number): number {
  const end = offset + length - 1;
  let i = offset;
  for (; i < end; i += 2) sum += (buffer[i]! << 8) | buffer[i + 1]!;
  if (i === end) sum += buffer[i]! << 8;
  return sum;
}

function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/**
 * The ICMPv6 checksum (RFC 4443 2.3) of the message at `buffer[icmpOffset, +icmpLength)` inside the IPv6 packet
 * whose header is at `ipOffset`: over the pseudo-header (source, destination, upper-layer length, next header 58)
 * and the message with its checksum field taken as it is (write 0 there first). Returns the value to store.
 */
export function icmpv6Checksum(buffer: Buffer, ipOffset: number, icmpOffset: number, icmpLength: number): number {
  let sum = onesSum(buffer, ipOffset + 8, 32, 0); // source and destination addresses
  sum += Math.floor(icmpLength / 0x10000) + (icmpLength & 0xffff) + NEXT_HEADER_ICMPV6;
  sum = onesSum(buffer, icmpOffset, icmpLength, sum);
  return ~fold(sum) & 0xffff;
}

/**
 * True when `frame` (Ethernet, no VLAN tag) is a unicast IPv6 packet from a real source that is not itself an ICMPv6
 * error: the packets a "packet too big" may answer here (RFC 4443 2.4 (e); multicast is not answered either,
 * although the RFC would allow it, since one oversized group packet would fan out into a reply per listener).
 */
export function needsPacketTooBigReply(buffer: Buffer, offset: number, length: number): boolean {
  if (length < ETHERNET_BYTES + IPV6_HEADER_BYTES) return false;
  if ((buffer[offset]! & 1) !== 0) return false;
  if (buffer.readUInt16BE(offset + 12) !== ETHERTYPE_IPV6) return false;
  const ip = offset + ETHERNET_BYTES;
  if (buffer[ip]! >>> 4 !== 6) return false;
  if (buffer[ip + 24] === 0xff) return false; // multicast destination
  let isUnspecifiedSource = true;
  for (let i = 0; i < 16; i++) if (buffer[ip + 8 + i] !== 0) isUnspecifiedSource = false;
  if (isUnspecifiedSource) return false;
  if (buffer[ip + 6] === NEXT_HEADER_ICMPV6 && ETHERNET_BYTES + IPV6_HEADER_BYTES < length) {
    if (buffer[ip + IPV6_HEADER_BYTES]! < 128) return false; // ICMPv6 types below 128 are errors
  }
  return true;
}

/**
 * Write an Ethernet frame holding an ICMPv6 "packet too big" (type 2, code 0) for `frame` into `out[outOffset..]`,
 * telling `mtuBytes` as the MTU. Like `writeFragmentationNeeded`, it comes from the MAC and address the container
 * sent to, so the container's kernel lowers its path MTU to that destination. `out` must have
 * `PACKET_TOO_BIG_MAX_BYTES` free at `outOffset`. Returns the reply's length, or 0 (nothing written) when `frame` is
 * not one `needsPacketTooBigReply` accepts. Linux takes no MTU below 1280 for IPv6: a path narrower than that
 * cannot carry IPv6 at its minimum MTU, and such frames stay dropped.
 */
export function writePacketTooBig(
  out: Buffer,
  outOffset: number,
  frame: Buffer,
  frameOffset: number,
  frameLength: number,
  mtuBytes: number,
): number {
  if (!needsPacketTooBigReply(frame, frameOffset, frameLength)) return 0;
  const inIp = frameOffset + ETHERNET_BYTES;
  const quotedBytes = Math.min(PTB_QUOTE_MAX_BYTES, frameLength - ETHERNET_BYTES);
  const icmpBytes = 8 + quotedBytes;

  const o = outOffset;
  for (let i = 0; i < 6; i++) {
    out[o + i] = frame[frameOffset + 6 + i]!;
    out[o + 6 + i] = frame[frameOffset + i]!;
  }
  out.writeUInt16BE(ETHERTYPE_IPV6, o + 12);

  const ip = o + ETHERNET_BYTES;
  out.writeUInt32BE(0x60000000, ip); // version 6, traffic class 0, flow label 0
  out.writeUInt16BE(icmpBytes, ip + 4);
  out[ip + 6] = NEXT_HEADER_ICMPV6;
  out[ip + 7] = 255; // hop limit
  for (let i = 0; i < 16; i++) {
    out[ip + 8 + i] = frame[inIp + 24 + i]!; // source: the original destination
    out[ip + 24 + i] = frame[inIp + 8 + i]!; // destination: the original source
  }

  const icmp = ip + IPV6_HEADER_BYTES;
  out[icmp] = 2;
  out[icmp + 1] = 0;
  out.writeUInt16BE(0, icmp + 2);
  out.writeUInt32BE(Math.min(Math.max(mtuBytes, 0), 0xffffffff) >>> 0, icmp + 4);
  for (let i = 0; i < quotedBytes; i++) out[icmp + 8 + i] = frame[inIp + i]!;
  out.writeUInt16BE(icmpv6Checksum(out, ip, icmp, icmpBytes), icmp + 2);
  return ETHERNET_BYTES + IPV6_HEADER_BYTES + icmpBytes;
}
