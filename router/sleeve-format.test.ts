import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  BROADCAST_PEER,
  HEADER_BYTES,
  HeaderDrop,
  MAX_RELAYS,
  MessageType,
  RECORD_HEADER_BYTES,
  SLEEVE_MAGIC,
  checkHeader,
  countRecords,
  decodeDatagram,
  encodeDatagram,
  flagsFor,
  isEncryptedFlags,
  keyPhaseOf,
  readSender,
  readSeq,
  relaysOf,
  withRelays,
  writeHeader,
  type SleeveDatagram,
} from './sleeve-format.js';

const peer = fc.integer({ min: 0, max: 2 ** 48 - 1 });
const seq = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const frame = fc.uint8Array({ minLength: 14, maxLength: 200 }).map((a) => Buffer.from(a));

const framesDatagram: fc.Arbitrary<SleeveDatagram> = fc.record({
  type: fc.constant(MessageType.Frames),
  isEncrypted: fc.constant(false),
  keyPhase: fc.constant(0),
  sender: peer,
  seq,
  records: fc.array(fc.record({ capturingPeer: peer, destinationPeer: peer, frame }), { maxLength: 8 }),
  body: fc.constant(Buffer.alloc(0)),
});

const otherDatagram: fc.Arbitrary<SleeveDatagram> = fc
  .record({
    type: fc.constantFrom(MessageType.Frames, MessageType.Heartbeat, MessageType.HeartbeatAck, MessageType.Piece),
    isEncrypted: fc.boolean(),
    keyPhase: fc.integer({ min: 0, max: 1 }),
    sender: peer,
    seq,
    body: fc.uint8Array({ maxLength: 100 }).map((a) => Buffer.from(a)),
  })
  // Clear frames carry records, not a raw body; a clear datagram has no key phase.
  .filter((d) => d.isEncrypted || d.type !== MessageType.Frames)
  .map((d) => ({ ...d, keyPhase: d.isEncrypted ? d.keyPhase : 0, records: [] }));

describe('sleeve format', () => {
  it('decode(encode(x)) equals x for clear frames datagrams', () => {
    fc.assert(
      fc.property(framesDatagram, (d) => {
        expect(decodeDatagram(encodeDatagram(d))).toEqual(d);
      }),
    );
  });

  it('decode(encode(x)) equals x for sealed and control datagrams', () => {
    fc.assert(
      fc.property(otherDatagram, (d) => {
        expect(decodeDatagram(encodeDatagram(d))).toEqual(d);
      }),
    );
  });

  it('random bytes only ever decode or yield a drop reason, never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, withMagic) => {
        const b = Buffer.from(bytes);
        if (withMagic && b.length > 1) {
          b[0] = SLEEVE_MAGIC;
          b[1] = b[1]! & 0x0f; // frames type, so the record walker runs on random lengths
        }
        const r = decodeDatagram(b);
        if ('drop' in r) expect(['short', 'magic', 'unknown_type', 'bad_seq', 'bad_record']).toContain(r.drop);
        else expect(r.sender).toBe(b.readUIntBE(2, 6));
      }),
      { numRuns: 5000 },
    );
  });

  it('pins the byte layout of the header and a record', () => {
    const d = encodeDatagram({
      type: MessageType.Frames,
      isEncrypted: false,
      keyPhase: 0,
      sender: 0x0a0b0c0d0e0f,
      seq: 2 ** 32 + 5,
      records: [{ capturingPeer: 1, destinationPeer: BROADCAST_PEER, frame: Buffer.alloc(14, 0xee) }],
      body: Buffer.alloc(0),
    });
    expect(d.subarray(0, HEADER_BYTES).toString('hex')).toBe('5700' + '0a0b0c0d0e0f' + '0000000100000005');
    expect(d.subarray(HEADER_BYTES, HEADER_BYTES + RECORD_HEADER_BYTES).toString('hex')).toBe('000000000001' + '000000000000' + '000e');
    expect(flagsFor(MessageType.HeartbeatAck, true, 1)).toBe(0x23);
  });

  it('refuses short, bad magic, reserved types, and seq >= 2^53; reads the relay count in flags bits 2-3', () => {
    const b = Buffer.alloc(HEADER_BYTES);
    writeHeader(b, 0, flagsFor(MessageType.Heartbeat, false, 0), 7, 9);
    expect(checkHeader(b, 0, 16)).toBe(MessageType.Heartbeat);
    expect(readSender(b, 0)).toBe(7);
    expect(readSeq(b, 0)).toBe(9);
    expect(checkHeader(b, 0, 15)).toBe(HeaderDrop.Short);
    b[0] = 0x58;
    expect(checkHeader(b, 0, 16)).toBe(HeaderDrop.Magic);
    b[0] = SLEEVE_MAGIC;
    b[1] = 3 << 4;
    expect(checkHeader(b, 0, 16)).toBe(MessageType.Piece);
    b[1] = 5 << 4;
    expect(checkHeader(b, 0, 16)).toBe(MessageType.MtuProbeAck);
    b[1] = 6 << 4;
    expect(checkHeader(b, 0, 16)).toBe(HeaderDrop.UnknownType);
    b[1] = withRelays(flagsFor(MessageType.Frames, true, 1), MAX_RELAYS);
    expect(checkHeader(b, 0, 16)).toBe(MessageType.Frames);
    expect(relaysOf(b[1])).toBe(3);
    expect(isEncryptedFlags(b[1]) && keyPhaseOf(b[1]) === 1).toBe(true);
    expect(relaysOf(withRelays(b[1], 1))).toBe(1);
    b[1] = 0;
    b.writeUInt32BE(0x20_0000, 8);
    expect(checkHeader(b, 0, 16)).toBe(HeaderDrop.BadSeq);
  });

  it('refuses records that overrun the body or hold less than an Ethernet header', () => {
    const b = Buffer.alloc(RECORD_HEADER_BYTES + 20);
    b.writeUInt16BE(20, 12);
    expect(countRecords(b, 0, b.length)).toBe(1);
    b.writeUInt16BE(21, 12);
    expect(countRecords(b, 0, b.length)).toBe(-1);
    b.writeUInt16BE(13, 12);
    expect(countRecords(b, 0, b.length)).toBe(-1);
    expect(countRecords(b, 0, 10)).toBe(-1);
    expect(countRecords(b, 0, 0)).toBe(0);
  });
});
