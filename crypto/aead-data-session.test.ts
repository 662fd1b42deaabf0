import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import sodium from 'sodium-native';
import { OpenResult } from './data-session.js';
import { AeadDataSession } from './aead-data-session.js';
import { detachedAead, wrapperAead } from './sodium-aead.js';

/** The sleeve's clear header: magic(1) flags(1) sender(6) seq(8, big-endian); flags bit 1 is KEY_PHASE. */
const HEADER_BYTES = 16;
const KEY_PHASE_FLAG = 0x02;

function writeHeader(buf: Buffer, off: number, sender: number, seq: number, phase: number): void {
  buf[off] = 0x57;
  buf[off + 1] = phase ? KEY_PHASE_FLAG : 0;
  buf.writeUIntBE(sender, off + 2, 6);
  buf.writeUInt32BE(Math.floor(seq / 2 ** 32), off + 8);
  buf.writeUInt32BE(seq >>> 0, off + 12);
}

function readHeader(buf: Buffer, off: number): { seq: number; phase: number } {
  return { seq: buf.readUInt32BE(off + 8) * 2 ** 32 + buf.readUInt32BE(off + 12), phase: (buf[off + 1]! & KEY_PHASE_FLAG) >> 1 };
}

function randomKey(): Buffer {
  const k = Buffer.alloc(32);
  sodium.randombytes_buf(k);
  return k;
}

/** Initiator and responder sessions with matching phase-0 keys in both directions. */
function pair(options: { views?: null } = {}): { a: AeadDataSession; b: AeadDataSession; ir: Buffer; ri: Buffer } {
  const a = new AeadDataSession({ isInitiator: true, ...options });
  const b = new AeadDataSession({ isInitiator: false, ...options });
  const ir = randomKey();
  const ri = randomKey();
  a.installSendKey(0, ir);
  a.switchSendKey(0);
  a.installReceiveKey(0, ri);
  b.installSendKey(0, ri);
  b.switchSendKey(0);
  b.installReceiveKey(0, ir);
  return { a, b, ir, ri };
}

const HEADROOM = 4; // the sleeve reads frames at an offset; make sure offsets are honoured

/** Seal `body` from `from` into a fresh datagram buffer: [headroom][header][body][tag]. */
function sealDatagram(from: AeadDataSession, body: Buffer, sender = 0x020000000001): { buf: Buffer; sealedLength: number } {
  const buf = Buffer.alloc(HEADROOM + HEADER_BYTES + body.length + from.overheadBytes);
  const seq = from.nextSeq();
  writeHeader(buf, HEADROOM, sender, seq, from.sendKeyPhase);
  body.copy(buf, HEADROOM + HEADER_BYTES);
  const sealedLength = from.seal(buf, HEADROOM, HEADROOM + HEADER_BYTES, body.length, seq);
  return { buf, sealedLength };
}

function openDatagram(to: AeadDataSession, d: { buf: Buffer; sealedLength: number }): number {
  const { seq, phase } = readHeader(d.buf, HEADROOM);
  return to.open(d.buf, HEADROOM, HEADROOM + HEADER_BYTES, d.sealedLength, seq, phase);
}

describe('AeadDataSession', () => {
  it('uses the addon directly (no exception per forged datagram) and agrees with the public wrapper', () => {
    expect(detachedAead.isDirect).toBe(true);
    const k = randomKey();
    const n = Buffer.alloc(24, 3);
    const a = Buffer.from('same bytes either way');
    const b = Buffer.from(a);
    const ta = Buffer.alloc(16);
    const tb = Buffer.alloc(16);
    detachedAead.encrypt(a, ta, a, null, n, k);
    wrapperAead.encrypt(b, tb, b, null, n, k);
    expect(a).toEqual(b);
    expect(ta).toEqual(tb);
    tb[3]! ^= 0x10;
    expect(detachedAead.decrypt(b, b, tb, null, n, k)).toBeLessThan(0);
    expect(wrapperAead.decrypt(a, a, tb, null, n, k)).toBeLessThan(0);
  });

  for (const views of [undefined, null] as const) {
    it(`seals in place and opens to the same plaintext (${views === null ? 'subarray views' : 'cached views'})`, () => {
      const { a, b } = pair(views === null ? { views: null } : {});
      const body = Buffer.from('an ethernet frame, more or less'.repeat(40));
      const d = sealDatagram(a, body);
      expect(d.sealedLength).toBe(body.length + 16);
      // Encrypted in place, header left clear.
      expect(d.buf.subarray(HEADROOM + HEADER_BYTES, HEADROOM + HEADER_BYTES + body.length).equals(body)).toBe(false);
      expect(readHeader(d.buf, HEADROOM).seq).toBe(0);
      expect(openDatagram(b, d)).toBe(body.length);
      expect(d.buf.subarray(HEADROOM + HEADER_BYTES, HEADROOM + HEADER_BYTES + body.length)).toEqual(body);
      // And back the other way.
      const back = sealDatagram(b, Buffer.from('reply'));
      expect(openDatagram(a, back)).toBe(5);
    });
  }

  it('opens an empty body', () => {
    const { a, b } = pair();
    expect(openDatagram(b, sealDatagram(a, Buffer.alloc(0)))).toBe(0);
  });

  it('refuses a tampered header, body or tag as BadTag', () => {
    const { a, b } = pair();
    for (const at of [HEADROOM + 1, HEADROOM + 5, HEADROOM + HEADER_BYTES + 3, HEADROOM + HEADER_BYTES + 100 + 2]) {
      const d = sealDatagram(a, Buffer.alloc(100, 0xab));
      d.buf[at]! ^= 0x01;
      expect(openDatagram(b, d)).toBe(OpenResult.BadTag);
    }
  });

  it('refuses a datagram with a seq other than the one sealed (the nonce differs)', () => {
    const { a, b } = pair();
    const d = sealDatagram(a, Buffer.alloc(20));
    expect(b.open(d.buf, HEADROOM, HEADROOM + HEADER_BYTES, d.sealedLength, 1, 0)).toBe(OpenResult.BadTag);
  });

  it('refuses a replay as Replay and a datagram behind the window as Stale', () => {
    const a = new AeadDataSession({ isInitiator: true });
    const b = new AeadDataSession({ isInitiator: false, replayWindow: 64 });
    const k = randomKey();
    a.installSendKey(0, k);
    a.switchSendKey(0);
    b.installReceiveKey(0, k);
    const first = sealDatagram(a, Buffer.from('x'));
    const copy = { buf: Buffer.from(first.buf), sealedLength: first.sealedLength };
    expect(openDatagram(b, first)).toBe(1);
    expect(openDatagram(b, copy)).toBe(OpenResult.Replay);
    const late = sealDatagram(a, Buffer.from('late')); // seq 1, delivered after 100 newer ones
    for (let i = 0; i < 100; i++) expect(openDatagram(b, sealDatagram(a, Buffer.from('y')))).toBe(1);
    expect(openDatagram(b, late)).toBe(OpenResult.Stale);
  });

  it('a forgery does not move the replay window', () => {
    const { a, b } = pair();
    const genuine = sealDatagram(a, Buffer.from('genuine')); // seq 0
    const forged = Buffer.alloc(HEADROOM + HEADER_BYTES + 40);
    writeHeader(forged, HEADROOM, 1, 5_000_000, 0);
    expect(b.open(forged, HEADROOM, HEADROOM + HEADER_BYTES, 40, 5_000_000, 0)).toBe(OpenResult.BadTag);
    expect(openDatagram(b, genuine)).toBe(7);
  });

  it('refuses short or out-of-bounds datagrams as Short and unknown phases as NoKey', () => {
    const { a, b } = pair();
    const d = sealDatagram(a, Buffer.alloc(10));
    expect(b.open(d.buf, HEADROOM, HEADROOM + HEADER_BYTES, 15, 0, 0)).toBe(OpenResult.Short);
    expect(b.open(d.buf, HEADROOM, HEADROOM + HEADER_BYTES, d.sealedLength + 1, 0, 0)).toBe(OpenResult.Short);
    expect(b.open(d.buf, HEADROOM + HEADER_BYTES + 1, HEADROOM + HEADER_BYTES, d.sealedLength, 0, 0)).toBe(OpenResult.Short);
    expect(b.open(d.buf, HEADROOM, HEADROOM + HEADER_BYTES, d.sealedLength, 0, 1)).toBe(OpenResult.NoKey);
    // No room for the tag: nothing is written.
    const tight = Buffer.alloc(HEADER_BYTES + 10);
    expect(a.seal(tight, 0, HEADER_BYTES, 10, a.nextSeq())).toBe(OpenResult.Short);
  });

  it('refuses to seal with a seq not handed out for the current key, and after destroy', () => {
    const { a } = pair();
    const buf = Buffer.alloc(HEADER_BYTES + 10 + 16);
    expect(a.seal(buf, 0, HEADER_BYTES, 10, 0)).toBe(OpenResult.Stale); // nextSeq() not called yet
    const seq = a.nextSeq();
    a.destroy();
    expect(a.seal(buf, 0, HEADER_BYTES, 10, seq)).toBe(OpenResult.NoKey);
  });

  it('keeps old and new receive keys during a rekey overlap, and refuses the old one once dropped', () => {
    const { a, b } = pair();
    const oldInFlight = sealDatagram(a, Buffer.from('old'));
    const oldVeryLate = sealDatagram(a, Buffer.from('old, very late'));
    const next = randomKey();
    b.installReceiveKey(1, next); // receiver first
    a.installSendKey(1, next);
    a.switchSendKey(1); // then the sender switches
    expect(a.sendKeyPhase).toBe(1);
    const fresh = sealDatagram(a, Buffer.from('new!'));
    expect(readHeader(fresh.buf, HEADROOM)).toEqual({ seq: 0, phase: 1 }); // seq restarts for the new key
    expect(openDatagram(b, fresh)).toBe(4);
    expect(openDatagram(b, oldInFlight)).toBe(3); // reordered behind the switch: still opens in the overlap
    b.dropReceiveKey(0); // the overlap ended
    expect(openDatagram(b, oldVeryLate)).toBe(OpenResult.NoKey);
    expect(openDatagram(b, sealDatagram(a, Buffer.from('still fine')))).toBe(10);
  });

  it('refuses to reinstall the send key in use or to switch to a used key', () => {
    const { a } = pair();
    expect(() => a.installSendKey(0, randomKey())).toThrow(/in use/);
    expect(() => a.switchSendKey(0)).toThrow(/fresh/);
    expect(() => a.switchSendKey(1)).toThrow(/fresh/);
  });

  it('never uses a (key, nonce) pair twice across any sequence of seals and rekeys', () => {
    // Sealing zero bytes yields the raw keystream of (key, nonce): a repeated pair would repeat a keystream.
    fc.assert(
      fc.property(
        fc.array(fc.oneof({ weight: 8, arbitrary: fc.constant('seal' as const) }, fc.constant('rekey' as const)), {
          maxLength: 300,
        }),
        fc.boolean(),
        (ops, isInitiator) => {
          const s = new AeadDataSession({ isInitiator });
          s.installSendKey(0, randomKey());
          s.switchSendKey(0);
          const seen = new Set<string>();
          const buf = Buffer.alloc(HEADER_BYTES + 32 + 16);
          let sealed = 0;
          for (const op of ops) {
            if (op === 'rekey') {
              const next = 1 - s.sendKeyPhase;
              s.installSendKey(next, randomKey());
              s.switchSendKey(next);
              continue;
            }
            buf.fill(0);
            const seq = s.nextSeq();
            writeHeader(buf, 0, 1, seq, s.sendKeyPhase);
            expect(s.seal(buf, 0, HEADER_BYTES, 32, seq)).toBe(48);
            seen.add(buf.toString('hex', HEADER_BYTES, HEADER_BYTES + 32));
            sealed++;
          }
          expect(seen.size).toBe(sealed);
        },
      ),
      { numRuns: 100 },
    );
  });
});
