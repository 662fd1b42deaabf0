import { describe, expect, it } from 'vitest';
import sodium from 'sodium-native';
import { FakeClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import type { SecureSession } from './connection-security.js';
import { OpenResult, type DataSession } from './data-session.js';
import { HandshakeError, InvalidKeyError, UnauthorizedPeerError } from './errors.js';
import { generateIdentity, keyToText } from './identity.js';
import { PasswordSecurity, type PasswordSecurityOptions } from './password-security.js';
import { RekeyType, encodeRekeyMessage } from './rekey-message.js';
import { AEGIS256X2_FEATURE } from './aegis256x2.js';
import { sodiumDataAead } from './data-aead.js';
import { referenceAegis256x2 } from '../test/harness/aegis256-reference.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
/** Cheap Argon2 so each test can stretch passwords; the production cost is pinned in kdf.test.ts. */
const CHEAP = { passwordOpsLimit: sodium.crypto_pwhash_OPSLIMIT_MIN, passwordMemLimitBytes: sodium.crypto_pwhash_MEMLIMIT_MIN };

function security(clock: FakeClock, password = 'swordfish', options: Partial<PasswordSecurityOptions> = {}): PasswordSecurity {
  return new PasswordSecurity({ clock }, { password, ...CHEAP, ...options });
}

/** Run the handshake as two gossip connections would: exchange hellos, derive, exchange confirmations. */
function handshake(
  initiator: PasswordSecurity,
  responder: PasswordSecurity,
  names: { initiator: string; responder: string } = { initiator: A, responder: B },
  /** What each side's hello features look like on arrival (default: as sent). */
  inTransit: { toResponder?: (f: readonly string[]) => string[]; toInitiator?: (f: readonly string[]) => string[] } = {},
): { i: SecureSession; r: SecureSession; iVerified: boolean; rVerified: boolean } {
  const hi = initiator.begin();
  const hr = responder.begin();
  const i = hi.derive({
    isInitiator: true,
    localName: names.initiator,
    remoteName: names.responder,
    remotePublicKey: hr.publicKey,
    protocolVersion: 1,
    remoteFeatures: inTransit.toInitiator ? inTransit.toInitiator(hr.features) : hr.features,
  });
  const r = hr.derive({
    isInitiator: false,
    localName: names.responder,
    remoteName: names.initiator,
    remotePublicKey: hi.publicKey,
    protocolVersion: 1,
    remoteFeatures: inTransit.toResponder ? inTransit.toResponder(hi.features) : hi.features,
  });
  // The initiator proves first; the responder's tag exists only once the initiator's verified.
  const rVerified = r.verifyConfirmation(i.confirmation);
  return { i, r, iVerified: rVerified && i.verifyConfirmation(r.confirmation), rVerified };
}

/** The sleeve's 16-byte clear header: magic(1) flags(1, bit 1 = KEY_PHASE) sender(6) seq(8, big-endian). */
const HEADER_BYTES = 16;
interface Datagram {
  buf: Buffer;
  sealedLength: number;
  seq: number;
  phase: number;
}

function sealDatagram(from: DataSession, text: string): Datagram {
  const body = Buffer.from(text);
  const buf = Buffer.alloc(HEADER_BYTES + body.length + from.overheadBytes);
  const seq = from.nextSeq();
  const phase = from.sendKeyPhase;
  buf[0] = 0x57;
  buf[1] = phase << 1;
  buf.writeUIntBE(0x020000000001, 2, 6);
  buf.writeUInt32BE(Math.floor(seq / 2 ** 32), 8);
  buf.writeUInt32BE(seq >>> 0, 12);
  body.copy(buf, HEADER_BYTES);
  const sealedLength = from.seal(buf, 0, HEADER_BYTES, body.length, seq);
  expect(sealedLength).toBe(body.length + from.overheadBytes);
  return { buf, sealedLength, seq, phase };
}

function openDatagram(to: DataSession, d: Datagram): number {
  const phase = (d.buf[1]! >> 1) & 1;
  const seq = d.buf.readUInt32BE(8) * 2 ** 32 + d.buf.readUInt32BE(12);
  return to.open(d.buf, 0, HEADER_BYTES, d.sealedLength, seq, phase);
}

function text(d: Datagram, length: number): string {
  return d.buf.toString('utf8', HEADER_BYTES, HEADER_BYTES + length);
}

/**
 * Carry rekey messages between two sessions the way the control connection does: sealed, in order, after
 * `latencyMs` on the fake clock. Returns the messages' types as they were sent, for the narrative assertions.
 */
function wireRekeying(clock: FakeClock, i: SecureSession, r: SecureSession, latencyMs = 25): string[] {
  const log: string[] = [];
  const names = ['', 'OFFER', 'ANSWER', 'DONE'];
  const carry = (from: SecureSession, to: SecureSession, label: string) => (message: Uint8Array) => {
    log.push(`${label} ${names[message[0]!]} ${Buffer.from(message).readUInt32BE(1)}`);
    const sealed = from.seal(message);
    clock.setTimeout(() => {
      const opened = to.open(sealed);
      expect(opened).not.toBeNull();
      to.onRekeyMessage(opened!);
    }, latencyMs);
  };
  i.startRekeying(carry(i, r, 'i->r'));
  r.startRekeying(carry(r, i, 'r->i'));
  return log;
}

describe('PasswordSecurity handshake', () => {
  for (const polarity of ['A dials B', 'B dials A'] as const) {
    it(`confirms keys and carries control and data both ways (${polarity})`, () => {
      const clock = new FakeClock();
      const a = security(clock);
      const b = security(clock);
      const [dialer, listener] = polarity === 'A dials B' ? [a, b] : [b, a];
      const { i, r, iVerified, rVerified } = handshake(dialer, listener);
      expect(iVerified).toBe(true);
      expect(rVerified).toBe(true);
      expect(Buffer.from(r.open(i.seal(Buffer.from('hello from initiator')))!).toString()).toBe('hello from initiator');
      expect(Buffer.from(i.open(r.seal(Buffer.from('hello back')))!).toString()).toBe('hello back');
      const d1 = sealDatagram(i.data, 'frame i->r');
      expect(openDatagram(r.data, d1)).toBe(10);
      expect(text(d1, 10)).toBe('frame i->r');
      const d2 = sealDatagram(r.data, 'frame r->i');
      expect(openDatagram(i.data, d2)).toBe(10);
    });
  }

  it('agrees on AEGIS-256X2 when both hellos offer it, else ChaCha20-Poly1305, and data crosses either way', () => {
    const clock = new FakeClock();
    const withAegis = () => security(clock, 'swordfish', { aegis256x2: referenceAegis256x2 });
    const cases = [
      { i: withAegis(), r: withAegis(), cipher: 'AEGIS-256X2' },
      { i: withAegis(), r: security(clock), cipher: 'ChaCha20-Poly1305' },
      { i: security(clock), r: withAegis(), cipher: 'ChaCha20-Poly1305' },
      { i: security(clock), r: security(clock), cipher: 'ChaCha20-Poly1305' },
    ];
    for (const c of cases) {
      const { i, r, iVerified, rVerified } = handshake(c.i, c.r);
      expect([iVerified, rVerified, i.dataCipherName, r.dataCipherName]).toEqual([true, true, c.cipher, c.cipher]);
      const d = sealDatagram(i.data, 'frame i->r');
      expect(openDatagram(r.data, d)).toBe(10);
      expect(text(d, 10)).toBe('frame i->r');
      expect(openDatagram(i.data, sealDatagram(r.data, 'frame r->i'))).toBe(10);
    }
    expect(withAegis().begin().features).toEqual([AEGIS256X2_FEATURE]);
    expect(security(clock).begin().features).toEqual([]);
  });

  it('an AEGIS-256X2 offer removed from one hello in transit fails key confirmation (no silent downgrade)', () => {
    const clock = new FakeClock();
    const a = security(clock, 'swordfish', { aegis256x2: referenceAegis256x2 });
    const b = security(clock, 'swordfish', { aegis256x2: referenceAegis256x2 });
    const strip = (f: readonly string[]) => f.filter((x) => x !== AEGIS256X2_FEATURE);
    for (const inTransit of [{ toResponder: strip }, { toInitiator: strip }]) {
      const { iVerified, rVerified } = handshake(a, b, { initiator: A, responder: B }, inTransit);
      expect([iVerified, rVerified]).toEqual([false, false]);
    }
    // Removed from both: both settle on ChaCha20-Poly1305, which every router has; still confidential.
    const both = handshake(a, b, { initiator: A, responder: B }, { toResponder: strip, toInitiator: strip });
    expect([both.iVerified, both.rVerified, both.i.dataCipherName]).toEqual([true, true, 'ChaCha20-Poly1305']);
  });

  it('refuses a ChaCha20-Poly1305 implementation passed as AEGIS-256X2 and the reverse', () => {
    const clock = new FakeClock();
    expect(() => security(clock, 'x', { aegis256x2: sodiumDataAead() })).toThrow(/aegis256x2 computes chacha20-poly1305/);
    expect(() => security(clock, 'x', { dataAead: referenceAegis256x2 })).toThrow(/must compute ChaCha20-Poly1305/);
  });

  it('with identities on both sides: sessions work, and keys differ from a password-only session', () => {
    const clock = new FakeClock();
    const a = security(clock, 'swordfish', { identity: generateIdentity() });
    const b = security(clock, 'swordfish', { identity: generateIdentity() });
    const { i, r, iVerified, rVerified } = handshake(a, b);
    expect([iVerified, rVerified]).toEqual([true, true]);
    const d = sealDatagram(i.data, 'frame i->r');
    expect(openDatagram(r.data, d)).toBe(10);
    expect(Buffer.from(i.open(r.seal(Buffer.from('hi')))!).toString()).toBe('hi');
    // One side without an identity: password-only keys, still working (no allow-list asks for more).
    const plain = handshake(a, security(clock));
    expect([plain.iVerified, plain.rVerified]).toEqual([true, true]);
  });

  it("a router showing another router's identity without its private key fails key confirmation", () => {
    const clock = new FakeClock();
    const victim = generateIdentity();
    const a = security(clock, 'swordfish', { identity: generateIdentity(), authorizedPeers: new Set([keyToText(victim.publicKey)]) });
    // The impostor has the password and shows the victim's public key as its own, without the private key behind it.
    const impostor = security(clock, 'swordfish', { identity: { publicKey: victim.publicKey, secretKey: generateIdentity().secretKey } });
    for (const [initiator, responder] of [
      [a, impostor],
      [impostor, a],
    ] as const) {
      const { iVerified, rVerified } = handshake(initiator, responder);
      expect([iVerified, rVerified]).toEqual([false, false]);
    }
    // The real victim is accepted.
    const real = security(clock, 'swordfish', { identity: victim });
    const ok = handshake(real, a);
    expect([ok.iVerified, ok.rVerified]).toEqual([true, true]);
  });

  it('--authorized-peers: an unlisted identity, no identity or a malformed one is refused before any key is derived', () => {
    const clock = new FakeClock();
    const mine = generateIdentity();
    const listed = generateIdentity();
    const a = security(clock, 'swordfish', { identity: mine, authorizedPeers: new Set([keyToText(listed.publicKey)]) });
    const derive = (remote: PasswordSecurity) => {
      const h = remote.begin();
      return () =>
        a.begin().derive({
          isInitiator: true,
          localName: A,
          remoteName: B,
          remotePublicKey: h.publicKey,
          protocolVersion: 1,
          remoteFeatures: h.features,
        });
    };
    const stranger = generateIdentity();
    expect(derive(security(clock, 'swordfish', { identity: stranger }))).toThrow(UnauthorizedPeerError);
    expect(derive(security(clock, 'swordfish', { identity: stranger }))).toThrow(
      `its identity ${keyToText(stranger.publicKey)} is not in --authorized-peers`,
    );
    expect(derive(security(clock))).toThrow(/shows no identity/);
    const h = security(clock).begin();
    expect(() =>
      a.begin().derive({
        isInitiator: true,
        localName: A,
        remoteName: B,
        remotePublicKey: h.publicKey,
        protocolVersion: 1,
        remoteFeatures: ['id=nonsense'],
      }),
    ).toThrow(/malformed identity/);
    expect(derive(security(clock, 'swordfish', { identity: listed }))).not.toThrow();
    expect(() => security(clock, 'x', { authorizedPeers: new Set([keyToText(listed.publicKey)]) })).toThrow(/needs an identity/);
    // The list can be replaced (weft reload); the next handshake uses it.
    const strangerSecurity = security(clock, 'swordfish', { identity: stranger });
    a.setAuthorizedPeers(new Set([keyToText(stranger.publicKey)]));
    expect(derive(strangerSecurity)).not.toThrow();
    expect(derive(security(clock, 'swordfish', { identity: listed }))).toThrow(UnauthorizedPeerError);
    a.setAuthorizedPeers(undefined);
    expect(derive(security(clock))).not.toThrow();
    expect(() => security(clock).setAuthorizedPeers(new Set())).toThrow(/needs an identity/);
  });

  it('simultaneous open: two crossing handshakes give two independent sessions', () => {
    const clock = new FakeClock();
    const a = security(clock);
    const b = security(clock);
    const ab = handshake(a, b); // A dialled B
    const ba = handshake(b, a, { initiator: B, responder: A }); // and B dialled A at the same moment
    expect([ab.iVerified, ab.rVerified, ba.iVerified, ba.rVerified]).toEqual([true, true, true, true]);
    // Whichever connection gossip keeps works; nothing sealed on one opens on the other.
    const d = sealDatagram(ab.i.data, 'on connection 1');
    expect(openDatagram(ba.r.data, { ...d, buf: Buffer.from(d.buf) })).toBe(OpenResult.BadTag);
    expect(openDatagram(ab.r.data, d)).toBe(15);
    expect(ba.i.open(ab.r.seal(Buffer.from('x')))).toBeNull();
  });

  it('a wrong password fails key confirmation on both sides, and nothing else works', () => {
    const clock = new FakeClock();
    const { i, r, iVerified, rVerified } = handshake(security(clock, 'swordfish'), security(clock, 'swordfish2'));
    expect(iVerified).toBe(false);
    expect(rVerified).toBe(false);
    expect(() => i.seal(Buffer.from('x'))).toThrow(HandshakeError);
    expect(r.open(Buffer.alloc(40))).toBeNull();
    expect(openDatagram(r.data, sealDatagram(i.data, 'frame'))).toBe(OpenResult.BadTag);
  });

  it('different views of the peer names (a tampered hello) fail key confirmation', () => {
    const clock = new FakeClock();
    const a = security(clock);
    const b = security(clock);
    const hi = a.begin();
    const hr = b.begin();
    const i = hi.derive({ isInitiator: true, localName: A, remoteName: B, remotePublicKey: hr.publicKey, protocolVersion: 1 });
    const r = hr.derive({
      isInitiator: false,
      localName: B,
      remoteName: '02:00:00:00:00:0c',
      remotePublicKey: hi.publicKey,
      protocolVersion: 1,
    });
    expect(r.verifyConfirmation(i.confirmation)).toBe(false);
    expect(() => r.confirmation).toThrow(HandshakeError);
  });

  it("gives the responder's key confirmation only after the initiator's verified (no tag for a party that proved nothing)", () => {
    const clock = new FakeClock();
    const hi = security(clock).begin();
    const hr = security(clock).begin();
    const r = hr.derive({ isInitiator: false, localName: B, remoteName: A, remotePublicKey: hi.publicKey, protocolVersion: 1 });
    const i = hi.derive({ isInitiator: true, localName: A, remoteName: B, remotePublicKey: hr.publicKey, protocolVersion: 1 });
    expect(() => r.confirmation).toThrow(/only after the initiator's verified/);
    expect(r.verifyConfirmation(new Uint8Array(32))).toBe(false); // a guess
    expect(() => r.confirmation).toThrow(HandshakeError); // still nothing, and the session stays failed
    const r2 = security(clock).begin();
    const s2 = r2.derive({
      isInitiator: false,
      localName: B,
      remoteName: A,
      remotePublicKey: security(clock).begin().publicKey,
      protocolVersion: 1,
    });
    expect(() => s2.confirmation).toThrow(HandshakeError);
    expect(i.confirmation).toHaveLength(32); // the initiator's is there at once
    for (const s of [i, r, s2]) s.destroy();
  });

  it('refuses low-order keys with InvalidKeyError, and derive twice or after destroy with HandshakeError', () => {
    const clock = new FakeClock();
    const a = security(clock);
    const params = { isInitiator: true, localName: A, remoteName: B, protocolVersion: 1 };
    expect(() => a.begin().derive({ ...params, remotePublicKey: new Uint8Array(32) })).toThrow(InvalidKeyError);
    expect(() => a.begin().derive({ ...params, remotePublicKey: new Uint8Array(31) })).toThrow(InvalidKeyError);
    const h = a.begin();
    const other = security(clock).begin();
    h.derive({ ...params, remotePublicKey: other.publicKey });
    expect(() => h.derive({ ...params, remotePublicKey: other.publicKey })).toThrow(HandshakeError);
    const dead = a.begin();
    dead.destroy();
    dead.destroy();
    expect(() => dead.derive({ ...params, remotePublicKey: other.publicKey })).toThrow(HandshakeError);
    a.destroy();
    expect(() => a.begin()).toThrow(HandshakeError);
  });

  it('control messages: replayed, reordered or forged ones open to null; the next genuine one still opens', () => {
    const clock = new FakeClock();
    const { i, r } = handshake(security(clock), security(clock));
    const m1 = i.seal(Buffer.from('one'));
    const m2 = i.seal(Buffer.from('two'));
    const m3 = i.seal(Buffer.from('three'));
    expect(r.open(m2)).toBeNull(); // reordered
    expect(Buffer.from(r.open(m1)!).toString()).toBe('one');
    expect(r.open(m1)).toBeNull(); // replayed
    const forged = Buffer.from(m2);
    forged[0]! ^= 1;
    expect(r.open(forged)).toBeNull(); // forged
    expect(r.open(m2.subarray(0, 10))).toBeNull(); // truncated
    expect(r.open(i.seal(Buffer.from('x')).subarray(0, 3))).toBeNull(); // shorter than a tag
    expect(Buffer.from(r.open(m2)!).toString()).toBe('two');
    expect(Buffer.from(r.open(m3)!).toString()).toBe('three');
    expect(i.open(m3)).toBeNull(); // reflected back to its sender
  });

  it('stats reports age from the clock and completed rekeys; destroy stops timers and wipes keys', () => {
    const clock = new FakeClock(5_000);
    const { i, r } = handshake(security(clock), security(clock));
    wireRekeying(clock, i, r);
    clock.advance(30_000);
    expect(i.stats()).toEqual({ ageSeconds: 30, rekeyCount: 0 });
    i.destroy();
    r.destroy();
    i.destroy();
    expect(clock.pendingCount).toBe(0);
    const buf = Buffer.alloc(HEADER_BYTES + 4 + 16);
    expect(i.data.seal(buf, 0, HEADER_BYTES, 4, i.data.nextSeq())).toBe(OpenResult.NoKey);
    expect(i.open(Buffer.alloc(30))).toBeNull();
    expect(() => i.seal(Buffer.from('x'))).toThrow(HandshakeError);
  });
});

describe('PasswordSecurity rekey', () => {
  it('the offerer switches on the answer, the answerer on DONE; both drop the old key after the overlap', () => {
    const clock = new FakeClock();
    // Only the responder's timer is short, so the responder offers and nobody collides.
    const { i, r } = handshake(security(clock), security(clock, 'swordfish', { rekeyIntervalMs: 60_000 }));
    const log = wireRekeying(clock, i, r);
    const oldFromI = sealDatagram(i.data, 'old i');
    clock.advance(60_000); // r offers
    expect(log).toEqual(['r->i OFFER 1']);
    clock.advance(25); // i answers, having installed its new receive key
    expect(log).toEqual(['r->i OFFER 1', 'i->r ANSWER 1']);
    expect(i.data.sendKeyPhase).toBe(0);
    clock.advance(25); // r switches and says DONE
    expect(r.data.sendKeyPhase).toBe(1);
    expect(openDatagram(i.data, sealDatagram(r.data, 'new r'))).toBe(5);
    clock.advance(25); // i switches
    expect(i.data.sendKeyPhase).toBe(1);
    expect(openDatagram(r.data, sealDatagram(i.data, 'new i'))).toBe(5);
    expect(openDatagram(r.data, oldFromI)).toBe(5); // in the overlap
    expect([i.stats().rekeyCount, r.stats().rekeyCount]).toEqual([1, 1]);
    clock.advance(10_000);
    expect(r.data.open(Buffer.alloc(60), 0, HEADER_BYTES, 40, 7, 0)).toBe(OpenResult.NoKey); // old phase dropped
  });

  it('simultaneous offers resolve to the connection initiator offer, in either delivery order', () => {
    for (const latencies of [
      [25, 25],
      [5, 60],
      [60, 5],
    ] as const) {
      const clock = new FakeClock();
      const { i, r } = handshake(security(clock), security(clock));
      const log: string[] = [];
      const names = ['', 'OFFER', 'ANSWER', 'DONE'];
      const carry = (from: SecureSession, to: SecureSession, label: string, latencyMs: number) => (m: Uint8Array) => {
        log.push(`${label} ${names[m[0]!]}`);
        const sealed = from.seal(m);
        clock.setTimeout(() => to.onRekeyMessage(to.open(sealed)!), latencyMs);
      };
      i.startRekeying(carry(i, r, 'i->r', latencies[0]));
      r.startRekeying(carry(r, i, 'r->i', latencies[1]));
      clock.advance(120_000); // both timers fire in the same tick
      clock.advance(1_000);
      expect(log).toEqual(['i->r OFFER', 'r->i OFFER', 'r->i ANSWER', 'i->r DONE']);
      expect([i.stats().rekeyCount, r.stats().rekeyCount]).toEqual([1, 1]);
      expect([i.data.sendKeyPhase, r.data.sendKeyPhase]).toEqual([1, 1]);
      expect(openDatagram(r.data, sealDatagram(i.data, 'agreed'))).toBe(6);
      expect(openDatagram(i.data, sealDatagram(r.data, 'agreed'))).toBe(6);
    }
  });

  it('rekeys after rekeyAfterMessages datagrams even before the interval', () => {
    const clock = new FakeClock();
    const { i, r } = handshake(security(clock, 'swordfish', { rekeyAfterMessages: 100 }), security(clock));
    wireRekeying(clock, i, r);
    for (let n = 0; n < 99; n++) sealDatagram(i.data, 'x');
    clock.advance(2_000);
    expect(i.stats().rekeyCount).toBe(0);
    sealDatagram(i.data, 'x');
    clock.advance(1_100);
    expect(i.stats().rekeyCount).toBe(1);
    expect(i.data.nextSeq()).toBe(0); // a new key restarts the sequence
  });

  it('refuses malformed and out-of-turn rekey messages with HandshakeError', () => {
    const clock = new FakeClock();
    const { i, r } = handshake(security(clock), security(clock));
    expect(() => r.onRekeyMessage(new Uint8Array([1]))).toThrow(HandshakeError); // before startRekeying
    wireRekeying(clock, i, r);
    expect(() => r.onRekeyMessage(new Uint8Array([9, 0, 0, 0, 1]))).toThrow(HandshakeError);
    expect(() => r.onRekeyMessage(new Uint8Array(36).fill(1))).toThrow(HandshakeError);
    expect(() => r.onRekeyMessage(encodeRekeyMessage({ type: RekeyType.Done, epoch: 1 }))).toThrow(HandshakeError);
    const pk = Buffer.alloc(32, 9);
    expect(() => r.onRekeyMessage(encodeRekeyMessage({ type: RekeyType.Answer, epoch: 1, publicKey: pk }))).toThrow(HandshakeError);
    expect(() => r.onRekeyMessage(encodeRekeyMessage({ type: RekeyType.Offer, epoch: 2, publicKey: pk }))).toThrow(HandshakeError);
    expect(() => r.onRekeyMessage(encodeRekeyMessage({ type: RekeyType.Offer, epoch: 1, publicKey: Buffer.alloc(32) }))).toThrow(
      InvalidKeyError,
    );
    expect(() => i.startRekeying(() => {})).toThrow(HandshakeError); // twice
  });

  it('under continuous reordered traffic through many rekeys, every datagram opens within the overlap and stale-key ones do not after it', () => {
    const seed = 0x5eed;
    const random = new SeededRandom(seed);
    const clock = new FakeClock();
    const overlapMs = 10_000;
    const { i, r } = handshake(security(clock, 'swordfish', { overlapMs }), security(clock, 'swordfish', { overlapMs }));
    wireRekeying(clock, i, r, 25);
    let delivered = 0;
    let failures: string[] = [];
    const held: { d: Datagram; to: DataSession; sealedAtEpoch: number; from: SecureSession }[] = [];
    const tick = 20;
    const durationMs = 7 * 60_000; // three rekeys at the 2-minute interval
    for (let t = 0; t < durationMs; t += tick) {
      for (const [from, to, label] of [
        [i, r, 'i->r'],
        [r, i, 'r->i'],
      ] as const) {
        const d = sealDatagram(from.data, `${label}@${t}`);
        const epoch = from.stats().rekeyCount;
        if (random.int(200) === 0) {
          held.push({ d, to: to.data, sealedAtEpoch: epoch, from });
          continue;
        }
        // Up to 3 s of reordering: well inside the 10 s overlap.
        clock.setTimeout(() => {
          const n = openDatagram(to.data, d);
          if (n < 0) failures.push(`${label} sealed at ${t} (epoch ${epoch}) failed with ${n} at ${clock.now()}`);
          else delivered++;
        }, random.int(3_000));
      }
      clock.advance(tick);
    }
    clock.advance(5_000);
    expect(failures, `seed ${seed}`).toEqual([]);
    expect(delivered).toBeGreaterThan(30_000);
    expect([i.stats().rekeyCount, r.stats().rekeyCount]).toEqual([3, 3]);
    // Stragglers sealed with a key two or more epochs old, delivered long after its overlap: all refused.
    failures = [];
    let refused = 0;
    for (const h of held) {
      if (h.sealedAtEpoch >= h.from.stats().rekeyCount) continue; // still current
      const n = openDatagram(h.to, h.d);
      if (n >= 0) failures.push(`epoch ${h.sealedAtEpoch} datagram opened after its overlap`);
      else refused++;
    }
    expect(failures, `seed ${seed}`).toEqual([]);
    expect(refused).toBeGreaterThan(50);
  });
});
