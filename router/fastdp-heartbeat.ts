/**
 * fastdp heartbeats: what two routers send each other over the heartbeat VXLAN device (docs/fastdp.md) to prove that
 * the kernel path between them carries datagrams of the overlay MTU both ways. Control-plane traffic: one heartbeat
 * per peer per second at most, so this codec may allocate.
 *
 * A heartbeat is the payload of a UDP datagram between the two routers' link-local addresses on that device, padded
 * so the inner IPv6 packet is exactly the overlay MTU (the outer packet then has the don't-fragment bit and the
 * VXLAN overhead on top: it passes only if the underlay carries the data device's largest packet):
 *
 *   offset    bytes  field
 *        0        4  magic "WFDP" (0x57 0x46 0x44 0x50)
 *        4        1  kind: 1 ask, 2 answer
 *        5        6  sender's peer name
 *       11        6  receiver's peer name
 *       17        4  sequence number
 *       21        2  MAC count N
 *       23      6*N  the sender's local MACs
 *   23+6*N     rest  zeros, to the overlay MTU
 *
 * An answer echoes the ask's sequence number and length, with sender and receiver swapped, and carries its own sender's MACs. The MACs are
 * those the sender's bridge learned on container ports: the receiver points VXLAN entries for them at the sender's
 * underlay address, so unicast to them goes to that one peer instead of every fastdp peer. As many as fit are sent
 * (about 220 at a 1400-byte MTU); the rest are flooded, which is slower but correct.
 */
import type { PeerId } from './datapath.js';

export const HEARTBEAT_MAGIC = 0x57464450;
export const HEARTBEAT_ASK = 1;
export const HEARTBEAT_ANSWER = 2;
/** Bytes before the MACs. */
export const HEARTBEAT_HEADER_BYTES = 23;
/** IPv6 header + UDP header around a heartbeat on the heartbeat device. */
export const HEARTBEAT_OVERHEAD_BYTES = 48;
/** IPv6's minimum link MTU (RFC 8200): the heartbeat device cannot run below it. */
export const MIN_HEARTBEAT_MTU_BYTES = 1280;

export interface Heartbeat {
  kind: typeof HEARTBEAT_ASK | typeof HEARTBEAT_ANSWER;
  from: PeerId;
  to: PeerId;
  seq: number;
  /** The sender's local MACs as 48-bit numbers. @default [] */
  macs?: readonly number[];
}

/** How many MACs fit a heartbeat of `length` bytes. */
export function macsThatFit(length: number): number {
  return Math.max(0, Math.floor((length - HEARTBEAT_HEADER_BYTES) / 6));
}

/** A heartbeat padded to `length` bytes (>= HEARTBEAT_HEADER_BYTES); MACs beyond what fits are left out. */
export function encodeHeartbeat(h: Heartbeat, length: number): Buffer {
  const buf = Buffer.alloc(Math.max(length, HEARTBEAT_HEADER_BYTES));
  buf.writeUInt32BE(HEARTBEAT_MAGIC, 0);
  buf[4] = h.kind;
  buf.writeUIntBE(h.from, 5, 6);
  buf.writeUIntBE(h.to, 11, 6);
  buf.writeUInt32BE(h.seq >>> 0, 17);
  const macs = h.macs ?? [];
  const count = Math.min(macs.length, macsThatFit(buf.length), 0xffff);
  buf.writeUInt16BE(count, 21);
  for (let i = 0; i < count; i++) buf.writeUIntBE(macs[i]!, HEARTBEAT_HEADER_BYTES + 6 * i, 6);
  return buf;
}

/** The heartbeat in `buf[0, length)`, or null if it is not one (wrong magic or kind, MACs beyond its length). */
export function decodeHeartbeat(buf: Buffer, length = buf.length): (Heartbeat & { macs: number[] }) | null {
  if (length < HEARTBEAT_HEADER_BYTES || length > buf.length) return null;
  if (buf.readUInt32BE(0) !== HEARTBEAT_MAGIC) return null;
  const kind = buf[4];
  if (kind !== HEARTBEAT_ASK && kind !== HEARTBEAT_ANSWER) return null;
  const count = buf.readUInt16BE(21);
  if (count > macsThatFit(length)) return null;
  const macs: number[] = [];
  for (let i = 0; i < count; i++) {
    const mac = buf.readUIntBE(HEARTBEAT_HEADER_BYTES + 6 * i, 6);
    // Only unicast MACs name a container; a group MAC would hijack broadcast.
    if (mac !== 0 && buf[HEARTBEAT_HEADER_BYTES + 6 * i]! % 2 === 0) macs.push(mac);
  }
  return { kind, from: buf.readUIntBE(5, 6), to: buf.readUIntBE(11, 6), seq: buf.readUInt32BE(17), macs };
}

/** "aa:bb:cc:dd:ee:ff" of a 48-bit MAC. */
export function macText(mac: number): string {
  return mac
    .toString(16)
    .padStart(12, '0')
    .replace(/(..)(?!$)/g, '$1:');
}

/** A 48-bit MAC of "aa:bb:cc:dd:ee:ff" (NaN if it is not one). */
export function macNumber(text: string): number {
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(text) ? parseInt(text.replace(/:/g, ''), 16) : NaN;
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
