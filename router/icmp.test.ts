import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FRAG_NEEDED_MAX_BYTES, internetChecksum, needsFragmentationReply, writeFragmentationNeeded } from './icmp.js';

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
