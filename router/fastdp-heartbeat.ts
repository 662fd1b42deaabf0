/**
 * fastdp heartbeats: what two routers send each other over the heartbeat VXLAN device (docs/fastdp.md) to prove that
 * the kernel path between them carries datagrams of the overlay MTU both ways. Control-plane traffic: one heartbeat
 * per peer per second at most, so this codec may allocate.
 *
 * A heartbeat is the payload of a UDP datagram between the two routers' link-local addresses on that device, padded
 * so the inner IPv6 packet is exactly the overlay MTU (the outer packet then has the don't-fragment bit and the
 * VXLAN overhead on top: it passes only if the underlay carries the data device's largest packet):
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                  magic "WFDP" (0x57 0x46 0x44 0x50)            |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  kind (1 ask, 2 answer)   |  sender's peer name (48 bits) ...   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  ... sender's peer name   |  receiver's peer name (48 bits) ... |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  ...                      |  sequence number (32 bits) ...      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |  ...   |  zero padding to the overlay MTU ...                   |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * (1 byte kind, 6 + 6 bytes names, 4 bytes sequence: 21 bytes before the padding.) An answer echoes the ask's
 * sequence number and length, with sender and receiver swapped.
 */
import type { PeerId } from './datapath.js';

export const HEARTBEAT_MAGIC = 0x57464450;
export const HEARTBEAT_ASK = 1;
export const HEARTBEAT_ANSWER = 2;
/** Bytes before the padding. */
export const HEARTBEAT_HEADER_BYTES = 21;
/** IPv6 header + UDP header around a heartbeat on the heartbeat device. */
export const HEARTBEAT_OVERHEAD_BYTES = 48;
/** IPv6's minimum link MTU (RFC 8200): the heartbeat device cannot run below it. */
export const MIN_HEARTBEAT_MTU_BYTES = 1280;

export interface Heartbeat {
  kind: typeof HEARTBEAT_ASK | typeof HEARTBEAT_ANSWER;
  from: PeerId;
  to: PeerId;
  seq: number;
}

/** A heartbeat padded to `length` bytes (>= HEARTBEAT_HEADER_BYTES). */
export function encodeHeartbeat(h: Heartbeat, length: number): Buffer {
  const buf = Buffer.alloc(Math.max(length, HEARTBEAT_HEADER_BYTES));
  buf.writeUInt32BE(HEARTBEAT_MAGIC, 0);
  buf[4] = h.kind;
  buf.writeUIntBE(h.from, 5, 6);
  buf.writeUIntBE(h.to, 11, 6);
  buf.writeUInt32BE(h.seq >>> 0, 17);
  return buf;
}

/** The heartbeat in `buf[0, length)`, or null if it is not one (wrong magic, kind or length). */
export function decodeHeartbeat(buf: Buffer, length = buf.length): Heartbeat | null {
  if (length < HEARTBEAT_HEADER_BYTES || length > buf.length) return null;
  if (buf.readUInt32BE(0) !== HEARTBEAT_MAGIC) return null;
  const kind = buf[4];
  if (kind !== HEARTBEAT_ASK && kind !== HEARTBEAT_ANSWER) return null;
  return { kind, from: buf.readUIntBE(5, 6), to: buf.readUIntBE(11, 6), seq: buf.readUInt32BE(17) };
}

/**
 * The heartbeat device's MAC of a peer: its 48-bit name with the locally administered bit set and the group bit
 * clear, so every router derives every other's without asking.
 */
export function heartbeatMac(peer: PeerId): string {
  const b = Buffer.alloc(6);
  b.writeUIntBE(peer, 0, 6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** The heartbeat device's IPv6 link-local address of a peer: fe80:: with the 48-bit name as interface id. */
export function heartbeatAddress(peer: PeerId): string {
  const b = Buffer.alloc(6);
  b.writeUIntBE(peer, 0, 6);
  const w = (i: number) => b.readUInt16BE(i).toString(16);
  return `fe80::${w(0)}:${w(2)}:${w(4)}`;
}
