import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FRAG_NEEDED_MAX_BYTES,
  PACKET_TOO_BIG_MAX_BYTES,
  internetChecksum,
  needsFragmentationReply,
  needsPacketTooBigReply,
  writeFragmentationNeeded,
  writePacketTooBig,
} from './icmp.js';

/** An Ethernet + IPv4 + UDP frame of `totalBytes` with DF set (header checksum filled in). */
function ipv4Frame(totalBytes: number, options: { isDf?: boolean; proto?: number; dstMac0?: number } = {}): Buffer {
  const f = Buffer.alloc(totalBytes);
  Buffer.from('0a0000000002', 'hex').copy(f, 0);
  f[0] = options.dstMac0 ?? 0x0a;
  Buffer.from('0a0000000001', 'hex').copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(totalBytes - 14, 16);
  f.writeUInt16BE(0x1234, 18);
  f.writeUInt16BE(options.isDf === false ? 0 : 0x4000, 20);
  f[22] = 64;
  f[23] = options.proto ?? 17;
  Buffer.from([10, 47, 1, 1]).copy(f, 26);
  Buffer.from([10, 47, 1, 2]).copy(f, 30);
  f.writeUInt16BE(internetChecksum(f, 14, 20), 24);
  for (let i = 34; i < totalBytes; i++) f[i] = i & 0xff;
  return f;
}

describe('ICMP fragmentation needed', () => {
  it('answers a DF IPv4 frame with a valid reply: swapped addresses, type 3 code 4, MTU, quoted header', () => {
    const frame = ipv4Frame(1600);
    const out = Buffer.alloc(FRAG_NEEDED_MAX_BYTES + 10);
    const n = writeFragmentationNeeded(out, 10, frame, 0, frame.length, 1412);
    expect(n).toBe(14 + 20 + 8 + 28);
    const r = out.subarray(10, 10 + n);
    expect(r.subarray(0, 6).toString('hex')).toBe('0a0000000001');
    expect(r.subarray(6, 12).toString('hex')).toBe('0a0000000002');
    expect(r.readUInt16BE(12)).toBe(0x0800);
    expect(internetChecksum(r, 14, 20)).toBe(0); // a valid header sums to zero
    expect(r.readUInt16BE(16)).toBe(n - 14);
    expect([...r.subarray(26, 30)]).toEqual([10, 47, 1, 2]);
    expect([...r.subarray(30, 34)]).toEqual([10, 47, 1, 1]);
    expect(r[34]).toBe(3);
    expect(r[35]).toBe(4);
    expect(r.readUInt16BE(40)).toBe(1412);
    expect(internetChecksum(r, 34, n - 34)).toBe(0);
    expect(r.subarray(42).equals(frame.subarray(14, 14 + 28))).toBe(true);
  });

  it('does not answer without DF, to a group MAC, or an ICMP error', () => {
    const out = Buffer.alloc(FRAG_NEEDED_MAX_BYTES);
    for (const f of [ipv4Frame(1600, { isDf: false }), ipv4Frame(1600, { dstMac0: 0x01 })]) {
      expect(writeFragmentationNeeded(out, 0, f, 0, f.length, 1400)).toBe(0);
    }
    const icmpError = ipv4Frame(1600, { proto: 1 });
    icmpError[34] = 3;
    expect(needsFragmentationReply(icmpError, 0, icmpError.length)).toBe(false);
    icmpError[34] = 8; // echo request: answered
    expect(needsFragmentationReply(icmpError, 0, icmpError.length)).toBe(true);
  });

  it('never throws on random frames, and every reply it writes has valid checksums', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 120 }), fc.boolean(), (bytes, asIpv4) => {
        const f = Buffer.from(bytes);
        if (asIpv4 && f.length >= 34) {
          f[0] &= 0xfe;
          f.writeUInt16BE(0x0800, 12);
          f[14] = 0x40 | (f[14]! & 0x0f);
          f[20] = 0x40;
          f[21] = 0;
        }
        const out = Buffer.alloc(FRAG_NEEDED_MAX_BYTES);
        const n = writeFragmentationNeeded(out, 0, f, 0, f.length, 1400);
        if (n > 0) {
          expect(internetChecksum(out, 14, 20)).toBe(0);
          expect(internetChecksum(out, 34, n - 34)).toBe(0);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

/** An Ethernet + IPv6 + `nextHeader` frame of `totalBytes` from fd00::1 to `dst` (16 bytes). */
function ipv6Frame(totalBytes: number, options: { nextHeader?: number; dst?: Buffer; firstPayloadByte?: number } = {}): Buffer {
  const f = Buffer.alloc(totalBytes);
  Buffer.from('0a0000000002', 'hex').copy(f, 0);
  Buffer.from('0a0000000001', 'hex').copy(f, 6);
  f.writeUInt16BE(0x86dd, 12);
  f.writeUInt32BE(0x60000000, 14);
  f.writeUInt16BE(totalBytes - 54, 18);
  f[20] = options.nextHeader ?? 6;
  f[21] = 64;
  Buffer.from('fd000000000000000000000000000001', 'hex').copy(f, 22);
  (options.dst ?? Buffer.from('fd000000000000000000000000000002', 'hex')).copy(f, 38);
  for (let i = 54; i < totalBytes; i++) f[i] = i & 0xff;
  if (options.firstPayloadByte !== undefined) f[54] = options.firstPayloadByte;
  return f;
}

/** The ICMPv6 checksum the slow way: a pseudo-header built as bytes, then RFC 1071 over pseudo-header + message. */
function referenceIcmpv6Checksum(packet: Buffer): number {
  const payloadLength = packet.readUInt16BE(4);
  const pseudo = Buffer.alloc(40 + payloadLength);
  packet.copy(pseudo, 0, 8, 40); // source, destination
  pseudo.writeUInt32BE(payloadLength, 32);
  pseudo[39] = 58;
  packet.copy(pseudo, 40, 40, 40 + payloadLength);
  pseudo.writeUInt16BE(0, 42); // the checksum field counts as zero
  return internetChecksum(pseudo, 0, pseudo.length);
}

describe('ICMPv6 packet too big', () => {
  it('answers a unicast IPv6 frame: swapped MACs and addresses, type 2 code 0, the MTU, the quoted packet, a valid checksum', () => {
    const frame = ipv6Frame(1500);
    const out = Buffer.alloc(PACKET_TOO_BIG_MAX_BYTES + 7);
    const n = writePacketTooBig(out, 7, frame, 0, frame.length, 1392);
    expect(n).toBe(14 + 40 + 8 + 128);
    const r = out.subarray(7, 7 + n);
    expect(r.subarray(0, 6).toString('hex')).toBe('0a0000000001');
    expect(r.subarray(6, 12).toString('hex')).toBe('0a0000000002');
    expect(r.readUInt16BE(12)).toBe(0x86dd);
    expect(r[14]! >> 4).toBe(6);
    expect(r.readUInt16BE(18)).toBe(8 + 128);
    expect(r[20]).toBe(58);
    expect(r.subarray(22, 38).equals(frame.subarray(38, 54))).toBe(true); // from the original destination
    expect(r.subarray(38, 54).equals(frame.subarray(22, 38))).toBe(true); // to the original source
    expect(r[54]).toBe(2);
    expect(r[55]).toBe(0);
    expect(r.readUInt32BE(58)).toBe(1392);
    expect(r.subarray(62, 62 + 128).equals(frame.subarray(14, 14 + 128))).toBe(true);
    const ip = r.subarray(14);
    expect(ip.readUInt16BE(42)).toBe(referenceIcmpv6Checksum(ip));
    expect(ip.readUInt16BE(42)).not.toBe(0);
  });

  it('quotes a short packet whole, and its checksum still verifies', () => {
    const frame = ipv6Frame(14 + 40 + 21);
    const out = Buffer.alloc(PACKET_TOO_BIG_MAX_BYTES);
    const n = writePacketTooBig(out, 0, frame, 0, frame.length, 1280);
    expect(n).toBe(14 + 40 + 8 + 61);
    const ip = out.subarray(14, n);
    expect(ip.readUInt16BE(42)).toBe(referenceIcmpv6Checksum(ip));
  });

  it('checksums right for any addresses, MTU and length (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 54, max: 2000 }), fc.nat(65_535), (dst, len, mtu) => {
        const d = Buffer.from(dst);
        d[0] = d[0]! === 0xff ? 0xfe : d[0]!; // not multicast
        const frame = ipv6Frame(len, { dst: d });
        const out = Buffer.alloc(PACKET_TOO_BIG_MAX_BYTES);
        const n = writePacketTooBig(out, 0, frame, 0, frame.length, mtu);
        const ip = out.subarray(14, n);
        return n > 0 && ip.readUInt16BE(42) === referenceIcmpv6Checksum(ip) && ip.readUInt32BE(44) === mtu;
      }),
    );
  });

  it('never answers multicast, a group MAC, an ICMPv6 error, an unspecified source, IPv4 or a runt', () => {
    const multicast = ipv6Frame(1500, { dst: Buffer.from('ff020000000000000000000000000001', 'hex') });
    const groupMac = ipv6Frame(1500);
    groupMac[0] = 0x33;
    const icmpError = ipv6Frame(1500, { nextHeader: 58, firstPayloadByte: 1 });
    const icmpEcho = ipv6Frame(1500, { nextHeader: 58, firstPayloadByte: 128 });
    const unspecified = ipv6Frame(1500);
    unspecified.fill(0, 22, 38);
    for (const f of [multicast, groupMac, icmpError, unspecified, ipv4Frame(1500), ipv6Frame(1500).subarray(0, 50)]) {
      expect(needsPacketTooBigReply(f, 0, f.length)).toBe(false);
      expect(writePacketTooBig(Buffer.alloc(PACKET_TOO_BIG_MAX_BYTES), 0, f, 0, f.length, 1280)).toBe(0);
    }
    expect(needsPacketTooBigReply(icmpEcho, 0, icmpEcho.length)).toBe(true);
  });
});
