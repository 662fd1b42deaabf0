/**
 * The native ChaCha20-Poly1305 (native/src/aead.c, OpenSSL's code inside Node) against libsodium's, and the daemon's
 * choice between them. Needs `npm run build:native` (skipped with a reason otherwise; a failure under CI).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import sodium from 'sodium-native';
import { isNativeAddonBuilt, loadNative, nativeAddonPath } from '../native/addon.js';
import { crossCheckDataAead, sodiumDataAead, withRuns, type DataAead } from '../crypto/data-aead.js';
import { AeadDataSession } from '../crypto/aead-data-session.js';
import { OpenResult } from '../crypto/data-session.js';
import { createMemoryLogger } from '../runtime/logger.js';
import { aeadInputs, checkRfcVector } from '../test/harness/rfc8439.js';
import { nativeDataAead, pickDataAeads } from './data-aead.js';

const isBuilt = isNativeAddonBuilt();
if (!isBuilt) {
  const reason = `native addon not built at ${nativeAddonPath()}: run \`npm run build:native\``;
  if (process.env.CI) throw new Error(reason);
  console.warn(`SKIP native AEAD tests: ${reason}`);
}

describe.skipIf(!isBuilt)('native ChaCha20-Poly1305', () => {
  const native = isBuilt ? loadNative() : (undefined as never);
  const aead = isBuilt ? nativeDataAead(native) : (undefined as never);
  const reference = sodiumDataAead();

  it('reproduces the RFC 8439 test vector and passes the cross-check against libsodium', () => {
    checkRfcVector(aead);
    expect(crossCheckDataAead(aead, reference)).toBeUndefined();
  });

  it('agrees with libsodium byte for byte on any key, nonce, AD and body, and each opens the other (property)', () => {
    fc.assert(
      fc.property(aeadInputs, ({ key: k, nonce: n, ad, body, offset }) => {
        const make = (): Buffer => Buffer.concat([Buffer.alloc(offset, 9), ad, body, Buffer.alloc(16)]);
        const a = make();
        const b = make();
        const at = offset + ad.length;
        expect(aead.seal(a, offset, ad.length, at, body.length, n, k)).toBe(body.length + 16);
        expect(reference.seal(b, offset, ad.length, at, body.length, n, k)).toBe(body.length + 16);
        expect(a).toEqual(b);
        expect(reference.open(a, offset, ad.length, at, body.length + 16, n, k)).toBe(body.length);
        expect(aead.open(b, offset, ad.length, at, body.length + 16, n, k)).toBe(body.length);
        expect(a).toEqual(b);
        expect(a.subarray(at, at + body.length)).toEqual(body);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses ranges outside the buffer and malformed nonces or keys with a clear error', () => {
    const buf = Buffer.alloc(64);
    const key = Buffer.alloc(32);
    const nonce = Buffer.alloc(12);
    expect(native.aeadSeal(buf, 0, 0, 10, 50, nonce, key)).toBe(-1);
    expect(native.aeadOpen(buf, 0, 0, 10, 15, nonce, key)).toBe(-1);
    expect(native.aeadOpen(buf, 60, 8, 0, 16, nonce, key)).toBe(-1);
    expect(() => native.aeadSeal(buf, 0, 0, 0, 8, Buffer.alloc(24), key)).toThrow(/nonce must be 12 bytes and key 32/);
    expect(() => native.aeadSeal(buf, -1, 0, 0, 8, nonce, key)).toThrow(/adOffset/);
  });

  it('carries a data session: a datagram sealed by one implementation opens in the other, forgeries do not', () => {
    const k = Buffer.alloc(32);
    sodium.randombytes_buf(k);
    const session = (isInitiator: boolean, impl: DataAead): AeadDataSession => {
      const s = new AeadDataSession({ isInitiator, aead: impl });
      if (isInitiator) {
        s.installSendKey(0, k);
        s.switchSendKey(0);
      } else {
        s.installReceiveKey(0, k);
      }
      return s;
    };
    for (const [from, to] of [
      [aead, reference],
      [reference, aead],
    ] as const) {
      const tx = session(true, from);
      const rx = session(false, to);
      const buf = Buffer.alloc(16 + 1440 + 16);
      buf.fill(0x5a, 16, 16 + 1440);
      const seq = tx.nextSeq();
      expect(tx.seal(buf, 0, 16, 1440, seq)).toBe(1456);
      const forged = Buffer.from(buf);
      forged[100]! ^= 1;
      expect(rx.open(forged, 0, 16, 1456, seq, 0)).toBe(OpenResult.BadTag);
      expect(rx.open(buf, 0, 16, 1456, seq, 0)).toBe(1440);
      expect(buf.subarray(16, 16 + 1440)).toEqual(Buffer.alloc(1440, 0x5a));
      expect(rx.open(buf, 0, 16, 1456, seq, 0)).toBe(OpenResult.Replay);
    }
  });
});

describe('pickDataAeads', () => {
  const broken: DataAead = withRuns({ name: 'broken', cipher: 'chacha20-poly1305', nonceBytes: 12, seal: () => -1, open: () => -1 });
  type Native = Parameters<typeof pickDataAeads>[0];
  const fakeNative = (aead: DataAead, aegis?: { seal: DataAead['seal']; open: DataAead['open'] }) =>
    ({
      aeadSeal: aead.seal,
      aeadOpen: aead.open,
      aegis256x2Implementation: () => (aegis !== undefined ? 'aes-ni' : ''),
      aegis256x2Seal: aegis?.seal,
      aegis256x2Open: aegis?.open,
    }) as unknown as Native;

  it.skipIf(!isBuilt)('takes the native code when it passes its checks, offers AEGIS-256X2 on this CPU, and says so', () => {
    const { log, lines } = createMemoryLogger();
    const native = loadNative();
    const aeads = pickDataAeads(native, log, {});
    const implementation = native.aegis256x2Implementation();
    expect(aeads.chacha.name).toBe('openssl');
    expect(aeads.aegis256x2?.name).toBe(implementation === '' ? undefined : implementation);
    const says =
      implementation !== ''
        ? new RegExp(`AEGIS-256X2 \\(${implementation}\\) or ChaCha20-Poly1305 \\(openssl\\)`)
        : /ChaCha20-Poly1305 \(openssl\)/;
    expect(lines().some((e) => says.test(String(e.msg)))).toBe(true);
  });

  it('falls back to libsodium, with a warning naming the problem, when the native ChaCha20 disagrees', () => {
    const { log, lines } = createMemoryLogger();
    expect(pickDataAeads(fakeNative(broken), log, {}).chacha.name).toBe('sodium-native');
    expect(lines().some((e) => e.level === 40 && /failed its check against libsodium \(seal failed/.test(String(e.msg)))).toBe(true);
  });

  it('does not offer an AEGIS-256X2 that fails its known-answer tests, and says which', () => {
    const { log, lines } = createMemoryLogger();
    const wrong = { seal: () => -1, open: () => -1 };
    expect(pickDataAeads(fakeNative(sodiumDataAead(), wrong), log, {}).aegis256x2).toBeUndefined();
    expect(
      lines().some((e) => e.level === 40 && /AEGIS-256X2 failed its known-answer tests \(Test Vector 1: seal failed/.test(String(e.msg))),
    ).toBe(true);
  });

  it('offers ChaCha20-Poly1305 only when told to, or when there is no addon or no AES', () => {
    const log = createMemoryLogger().log;
    expect(pickDataAeads(fakeNative(broken), log, { WEFT_DATA_AEAD: 'sodium' })).toEqual({
      chacha: expect.objectContaining({ name: 'sodium-native' }),
    });
    expect(pickDataAeads(undefined, log, {})).toEqual({ chacha: expect.objectContaining({ name: 'sodium-native' }) });
    expect(pickDataAeads(fakeNative(sodiumDataAead()), log, {}).aegis256x2).toBeUndefined();
    if (isBuilt) expect(pickDataAeads(loadNative(), log, { WEFT_DATA_AEAD: 'chacha' }).aegis256x2).toBeUndefined();
  });
});
