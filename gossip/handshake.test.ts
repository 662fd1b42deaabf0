import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DecodeError } from './decode-error.js';
import {
  checkHello,
  decodeHello,
  encodeHello,
  type Hello,
  MAX_HELLO_BYTES,
  negotiateVersion,
  PasswordMismatchError,
  PeerNameCollisionError,
  ConnectToSelfError,
  IncompatibleVersionError,
} from './handshake.js';
import { peerIdToName } from './peer-name.js';

const base: Hello = {
  minVersion: 1,
  maxVersion: 1,
  name: '7a:3b:01:22:c4:9e',
  nickname: 'h1',
  uid: '18446744073709551615',
  features: ['sleeve', 'ipam'],
  hasPassword: false,
  publicKey: new Uint8Array(0),
  udpPort: 6784,
};

const arbHello = fc
  .record({
    minVersion: fc.integer({ min: 0, max: 10 }),
    maxVersion: fc.integer({ min: 10, max: 255 }),
    name: fc.integer({ min: 0, max: 2 ** 48 - 1 }).map(peerIdToName),
    nickname: fc
      .string({ maxLength: 20 })
      .filter((s) => Buffer.byteLength(s) <= 64 && s === Buffer.from(s).toString() && !/[\p{Cc}\p{Cf}\u2028\u2029]/u.test(s)),
    uid: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }).map(String),
    features: fc.array(fc.stringMatching(/^[a-z0-9-]{1,64}$/), { maxLength: 32 }),
    hasPassword: fc.boolean(),
    udpPort: fc.integer({ min: 0, max: 65535 }),
    key: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  })
  .map(({ key, ...h }): Hello => ({ ...h, publicKey: h.hasPassword ? key : new Uint8Array(0) }));

describe('hello codec', () => {
  it('decode(encode(x)) equals x', () => {
    fc.assert(
      fc.property(arbHello, (h) => {
        expect(decodeHello(encodeHello(h))).toEqual(h);
      }),
    );
  });

  it('random bytes only ever fail with DecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        try {
          decodeHello(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(DecodeError);
          expect((e as DecodeError).code).toBe('ERR_DECODE');
        }
      }),
    );
  });

  it('every truncation and any trailing byte of a valid hello is refused', () => {
    const full = encodeHello({ ...base, hasPassword: true, publicKey: new Uint8Array(32).fill(7) });
    for (let n = 0; n < full.length; n++) expect(() => decodeHello(full.subarray(0, n))).toThrow(DecodeError);
    expect(() => decodeHello(Buffer.concat([full, Buffer.from([0])]))).toThrow(/trailing/);
  });

  it('refuses oversized input, bad magic and mismatched key/flag before trusting anything', () => {
    expect(() => decodeHello(new Uint8Array(MAX_HELLO_BYTES + 1))).toThrow(/over the 4096-byte limit/);
    const ok = Buffer.from(encodeHello(base));
    const bad = Buffer.from(ok);
    bad[0] = 0x47; // 'G' as in "GET /"
    expect(() => decodeHello(bad)).toThrow(/bad magic/);
    const flagOnly = Buffer.from(ok);
    flagOnly[22] = 1;
    expect(() => decodeHello(flagOnly)).toThrow(/claims a password but carries no public key/);
    const nickTooLong = Buffer.from(ok);
    nickTooLong[23] = 65;
    expect(() => decodeHello(nickTooLong)).toThrow(DecodeError);
  });

  it('refuses to encode what it would refuse to decode', () => {
    expect(() => encodeHello({ ...base, nickname: 'x'.repeat(65) })).toThrow(RangeError);
    expect(() => encodeHello({ ...base, features: Array(33).fill('f') })).toThrow(RangeError);
  });
});

describe('hello checks', () => {
  const remote: Hello = { ...base, name: '02:00:00:00:00:02', nickname: 'h2', uid: '2' };

  it('agrees on the highest common version, or none', () => {
    expect(negotiateVersion({ minVersion: 1, maxVersion: 3 }, { minVersion: 2, maxVersion: 5 })).toBe(3);
    expect(negotiateVersion({ minVersion: 1, maxVersion: 1 }, { minVersion: 2, maxVersion: 2 })).toBeNull();
    expect(checkHello(base, remote, '10.0.0.2:6783')).toBe(1);
    const e = catchError(() => checkHello(base, { ...remote, minVersion: 2, maxVersion: 3 }, '10.0.0.2:6783'));
    expect(e).toBeInstanceOf(IncompatibleVersionError);
    expect(e.message).toBe('peer h2 (10.0.0.2:6783) speaks protocol 2..3, this router 1..1; run the same weft release on both');
  });

  it('tells connecting to ourselves from a peer name collision', () => {
    expect(catchError(() => checkHello(base, { ...base }, '10.0.0.1:6783'))).toBeInstanceOf(ConnectToSelfError);
    const e = catchError(() => checkHello(base, { ...base, uid: '42' }, '10.0.0.9:6783'));
    expect(e).toBeInstanceOf(PeerNameCollisionError);
    expect((e as PeerNameCollisionError).code).toBe('ERR_PEER_NAME_COLLISION');
    expect(e.message).toContain('peer name 7a:3b:01:22:c4:9e is used by two routers (uids 18446744073709551615 and 42');
    expect(e.message).toContain('remove <state-dir>/peer-name on one of them and restart it');
  });

  it('refuses a one-sided password naming the peer and the fix', () => {
    const e = catchError(() => checkHello({ ...base, hasPassword: true, publicKey: new Uint8Array(32) }, remote, '10.0.0.2:6783'));
    expect(e).toBeInstanceOf(PasswordMismatchError);
    expect(e.message).toBe('peer h2 (10.0.0.2:6783) has no password but this router has one; every router needs the same --password');
    const f = catchError(() => checkHello(base, { ...remote, hasPassword: true, publicKey: new Uint8Array(32) }, '10.0.0.2:6783'));
    expect(f.message).toMatch(/has a password but this router has none/);
  });
});

describe('nicknames', () => {
  it('refuses control and format characters both ways (no terminal escapes reach logs or weft status)', () => {
    for (const nickname of ['h1\x1b[31m', 'a\nb', 'x\u202ey', 'nul\x00', 'del\x7f', 'c1\u009b']) {
      expect(() => encodeHello({ ...base, nickname })).toThrow(RangeError);
      const bytes = Buffer.from(encodeHello({ ...base, nickname: 'x'.repeat(Buffer.byteLength(nickname)) }));
      Buffer.from(nickname).copy(bytes, 24);
      expect(() => decodeHello(bytes)).toThrow(new DecodeError('hello nickname has control characters'));
    }
    expect(decodeHello(encodeHello({ ...base, nickname: 'hôte-ünï' })).nickname).toBe('hôte-ünï');
  });
});

function catchError(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}
