/**
 * TCP frames for tests of software segmentation and coalescing: a builder of Ethernet + IPv4/IPv6 + TCP frames
 * (with options, an optional 802.1Q tag) and of the virtio_net_hdr a kernel puts in front of a TSO super-frame, a
 * checksum verifier that checks what a receiving kernel checks (IPv4 header checksum, TCP checksum with the
 * pseudo-header), and fast-check arbitraries for both. Written from the RFCs (791, 793, 8200, 1071), independent of
 * router/tcp-segments.ts so one checks the other.
 */
import fc from 'fast-check';

export interface TcpFrameSpec {
  isV6: boolean;
  vlan: number | null;
  /** TCP options bytes (a multiple of 4, at most 40). */
  options: Uint8Array;
  ipv4Options: Uint8Array;
  payload: Uint8Array;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  ipId: number;
  ttl: number;
  tos: number;
  flowLabel: number;
  srcPort: number;
  dstPort: number;
  src: Uint8Array;
  dst: Uint8Array;
  srcMac: number;
  dstMac: number;
}

/** One's complement sum of big-endian 16-bit words of `b[from, to)`, plus `initial`; not folded. */
export function sum16(b: Uint8Array, from: number, to: number, initial = 0): number {
  let sum = initial;
  let p = from;
  for (; p + 1 < to; p += 2) sum += (b[p]! << 8) | b[p + 1]!;
  if (p < to) sum += b[p]! << 8;
  return sum;
}

export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** Offsets of the IP and TCP headers and the payload in an Ethernet frame, or null when it is not TCP. */
export function tcpLayout(f: Buffer): { l3: number; l4: number; payload: number; isV6: boolean; end: number } | null {
  let l3 = 14;
  let type = f.readUInt16BE(12);
  if (type === 0x8100) {
    type = f.readUInt16BE(16);
    l3 = 18;
  }
  if (type === 0x0800) {
    const l4 = l3 + (f[l3]! & 15) * 4;
    if (f[l3 + 9] !== 6) return null;
    return { l3, l4, payload: l4 + (f[l4 + 12]! >> 4) * 4, isV6: false, end: l3 + f.readUInt16BE(l3 + 2) };
  }
  if (type === 0x86dd) {
    if (f[l3 + 6] !== 6) return null;
    const l4 = l3 + 40;
    return { l3, l4, payload: l4 + (f[l4 + 12]! >> 4) * 4, isV6: true, end: l4 + f.readUInt16BE(l3 + 4) };
  }
  return null;
}

/**
 * Why a TCP frame's checksums or lengths are wrong, or '' when a receiving kernel would take it: IP length field
 * equals the frame's, IPv4 header checksum, TCP checksum over pseudo-header + segment.
 */
export function checksumProblem(f: Buffer): string {
  const t = tcpLayout(f);
  if (!t) return 'not TCP';
  if (t.end !== f.length) return `IP length says ${t.end} bytes, frame has ${f.length}`;
  if (!t.isV6 && fold(sum16(f, t.l3, t.l4)) !== 0xffff) return 'IPv4 header checksum';
  const tcpLength = f.length - t.l4;
  const pseudo = t.isV6 ? sum16(f, t.l3 + 8, t.l3 + 40) : sum16(f, t.l3 + 12, t.l3 + 20);
  if (fold(sum16(f, t.l4, f.length, pseudo + 6 + tcpLength)) !== 0xffff) return 'TCP checksum';
  return '';
}

/** Build the frame `spec` describes, checksums filled in. */
export function buildTcpFrame(spec: TcpFrameSpec): Buffer {
  const l3 = spec.vlan === null ? 14 : 18;
  const ipHeader = spec.isV6 ? 40 : 20 + spec.ipv4Options.length;
  const l4 = l3 + ipHeader;
  const tcpHeader = 20 + spec.options.length;
  const length = l4 + tcpHeader + spec.payload.length;
  const f = Buffer.alloc(length);
  f.writeUIntBE(spec.dstMac, 0, 6);
  f.writeUIntBE(spec.srcMac, 6, 6);
  if (spec.vlan !== null) {
    f.writeUInt16BE(0x8100, 12);
    f.writeUInt16BE(spec.vlan, 14);
  }
  f.writeUInt16BE(spec.isV6 ? 0x86dd : 0x0800, l3 - 2);
  if (spec.isV6) {
    f.writeUInt32BE(((6 << 28) | (spec.tos << 20) | spec.flowLabel) >>> 0, l3);
    f.writeUInt16BE(length - l4, l3 + 4);
    f[l3 + 6] = 6;
    f[l3 + 7] = spec.ttl;
    f.set(spec.src, l3 + 8);
    f.set(spec.dst, l3 + 24);
  } else {
    f[l3] = 0x40 | (ipHeader / 4);
    f[l3 + 1] = spec.tos;
    f.writeUInt16BE(length - l3, l3 + 2);
    f.writeUInt16BE(spec.ipId, l3 + 4);
    f.writeUInt16BE(0x4000, l3 + 6); // DF
    f[l3 + 8] = spec.ttl;
    f[l3 + 9] = 6;
    f.set(spec.src.subarray(0, 4), l3 + 12);
    f.set(spec.dst.subarray(0, 4), l3 + 16);
    f.set(spec.ipv4Options, l3 + 20);
    f.writeUInt16BE(~fold(sum16(f, l3, l4)) & 0xffff, l3 + 10);
  }
  f.writeUInt16BE(spec.srcPort, l4);
  f.writeUInt16BE(spec.dstPort, l4 + 2);
  f.writeUInt32BE(spec.seq >>> 0, l4 + 4);
  f.writeUInt32BE(spec.ack >>> 0, l4 + 8);
  f[l4 + 12] = (tcpHeader / 4) << 4;
  f[l4 + 13] = spec.flags;
  f.writeUInt16BE(spec.window, l4 + 14);
  f.set(spec.options, l4 + 20);
  f.set(spec.payload, l4 + tcpHeader);
  const tcpLength = length - l4;
  const pseudo = spec.isV6 ? sum16(f, l3 + 8, l3 + 40) : sum16(f, l3 + 12, l3 + 20);
  f.writeUInt16BE(~fold(sum16(f, l4, length, pseudo + 6 + tcpLength)) & 0xffff, l4 + 16);
  return f;
}

/**
 * [virtio_net_hdr | frame] for a TSO super-frame as a kernel hands it over: NEEDS_CSUM at the TCP checksum, whose
 * field holds the pseudo-header sum (not complemented), gso_type TCPV4/TCPV6 (ECN bit when CWR is set).
 */
export function tsoSuperFrame(spec: TcpFrameSpec, gsoSize: number): Buffer {
  const f = buildTcpFrame(spec);
  const t = tcpLayout(f)!;
  const pseudo = t.isV6 ? sum16(f, t.l3 + 8, t.l3 + 40) : sum16(f, t.l3 + 12, t.l3 + 20);
  f.writeUInt16BE(fold(pseudo + 6 + (f.length - t.l4)), t.l4 + 16);
  const h = Buffer.alloc(10);
  h[0] = 1;
  h[1] = (spec.isV6 ? 4 : 1) | ((spec.flags & 0x80) !== 0 ? 0x80 : 0);
  h.writeUInt16LE(t.payload, 2);
  h.writeUInt16LE(gsoSize, 4);
  h.writeUInt16LE(t.l4, 6);
  h.writeUInt16LE(16, 8);
  return Buffer.concat([h, f]);
}

/** A timestamps option (NOP, NOP, TS) as Linux sends on every segment. */
export function timestampsOption(value: number, echo: number): Uint8Array {
  const o = Buffer.alloc(12);
  o[0] = 1;
  o[1] = 1;
  o[2] = 8;
  o[3] = 10;
  o.writeUInt32BE(value >>> 0, 4);
  o.writeUInt32BE(echo >>> 0, 8);
  return o;
}

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

/** TCP options: none, timestamps, or timestamps plus SACK-permitted-style padding to another length. */
export const arbitraryTcpOptions = fc.oneof(
  fc.constant(new Uint8Array(0)),
  fc.tuple(u32, u32).map(([v, e]) => timestampsOption(v, e)),
  fc.tuple(u32, u32, fc.integer({ min: 1, max: 4 })).map(([v, e, nops]) => {
    const o = Buffer.alloc(12 + nops * 4, 1);
    Buffer.from(timestampsOption(v, e)).copy(o, nops * 4);
    return new Uint8Array(o);
  }),
);

/**
 * A TCP frame spec for a super-frame: IPv4 or IPv6, options, payload of 1 to `maxPayload` bytes, flags from
 * ACK with any of PSH, FIN, CWR, ECE.
 */
export function arbitraryTcpSpec(maxPayload: number, options: { vlan?: boolean; ipv4Options?: boolean } = {}): fc.Arbitrary<TcpFrameSpec> {
  return fc.record({
    isV6: fc.boolean(),
    vlan: options.vlan ? fc.option(fc.integer({ min: 1, max: 4094 })) : fc.constant(null),
    options: arbitraryTcpOptions,
    ipv4Options: options.ipv4Options
      ? fc.option(fc.constant(new Uint8Array([1, 1, 1, 0])), { nil: new Uint8Array(0) })
      : fc.constant(new Uint8Array(0)),
    payload: fc.integer({ min: 1, max: maxPayload }).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })),
    seq: u32,
    ack: u32,
    flags: fc.subarray([0x08, 0x01, 0x80, 0x40]).map((bits) => bits.reduce((a, b) => a | b, 0x10)),
    window: fc.integer({ min: 0, max: 0xffff }),
    ipId: fc.integer({ min: 0, max: 0xffff }),
    ttl: fc.integer({ min: 1, max: 255 }),
    tos: fc.integer({ min: 0, max: 255 }),
    flowLabel: fc.integer({ min: 0, max: 0xfffff }),
    srcPort: fc.integer({ min: 1, max: 0xffff }),
    dstPort: fc.integer({ min: 1, max: 0xffff }),
    src: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    dst: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    srcMac: fc.integer({ min: 0, max: 0xffff_ffff }).map((n) => 0x0200_0000_0000 + n),
    dstMac: fc.integer({ min: 0, max: 0xffff_ffff }).map((n) => 0x0200_0000_0000 + n),
  });
}
