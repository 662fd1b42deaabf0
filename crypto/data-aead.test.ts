import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BufferViews } from './buffer-views.js';
import { crossCheckDataAead, sodiumDataAead, type DataAead } from './data-aead.js';
import { RFC8439_VECTOR, aeadInputs, checkRfcVector } from '../test/harness/rfc8439.js';

describe('sodiumDataAead (ChaCha20-Poly1305, RFC 8439)', () => {
  const aead = sodiumDataAead();

  it('calls the addon directly (no exception per forged datagram)', () => {
    expect(aead.name).toBe('sodium-native');
  });

  it('reproduces the RFC 8439 test vector, at offsets inside a buffer', () => {
    checkRfcVector(aead);
  });

  it('refuses a flipped bit anywhere in AD, body or tag, and ranges outside the buffer', () => {
    const v = RFC8439_VECTOR;
    const length = v.ad.length + v.plaintext.length + 16;
    for (let at = 0; at < length; at += 7) {
      const buf = Buffer.concat([v.ad, v.ciphertext, v.tag]);
      buf[at]! ^= 0x40;
      expect(aead.open(buf, 0, v.ad.length, v.ad.length, v.plaintext.length + 16, v.nonce, v.key)).toBe(-1);
    }
    const buf = Buffer.alloc(64);
    expect(aead.seal(buf, 0, 0, 10, 50, v.nonce, v.key)).toBe(-1); // the tag would not fit
    expect(aead.open(buf, 0, 0, 10, 15, v.nonce, v.key)).toBe(-1); // shorter than a tag
    expect(aead.open(buf, 60, 8, 0, 16, v.nonce, v.key)).toBe(-1); // AD outside
  });

  it('allocates no views per datagram once warm (cached views)', () => {
    const views = new BufferViews();
    const cached = sodiumDataAead(views);
    const buf = Buffer.alloc(2048);
    const key = Buffer.alloc(32, 1);
    const nonce = Buffer.alloc(12, 2);
    for (let i = 0; i < 100; i++) cached.seal(buf, 0, 16, 16, 1400, nonce, key);
    expect(views.size).toBe(3); // AD, body, tag: made once
  });
});

describe('crossCheckDataAead', () => {
  const reference = sodiumDataAead();

  it('passes the reference against itself', () => {
    expect(crossCheckDataAead(sodiumDataAead(new BufferViews(0)), reference)).toBeUndefined();
  });

  it('names what a broken implementation got wrong', () => {
    const wrongTag: DataAead = {
      ...reference,
      name: 'wrong tag',
      seal: (b, ao, al, bo, bl, n, k) => {
        const r = reference.seal(b, ao, al, bo, bl, n, k);
        b[bo + bl]! ^= 1;
        return r;
      },
      open: reference.open,
    };
    expect(crossCheckDataAead(wrongTag, reference)).toMatch(/ciphertext or tag differs/);
    const acceptsAnything: DataAead = { ...reference, name: 'no check', open: (_b, _ao, _al, _bo, sl) => sl - 16 };
    expect(crossCheckDataAead(acceptsAnything, reference)).toMatch(/decrypts to other bytes|opens a forgery/);
    const throws: DataAead = {
      ...reference,
      name: 'throws',
      seal: () => {
        throw new Error('ENOTSUP');
      },
      open: reference.open,
    };
    expect(crossCheckDataAead(throws, reference)).toMatch(/threw ENOTSUP/);
  });

  it('seal then open is the identity for any key, nonce, AD and body (property)', () => {
    fc.assert(
      fc.property(aeadInputs, ({ key, nonce, ad, body, offset }) => {
        const buf = Buffer.concat([Buffer.alloc(offset), ad, body, Buffer.alloc(16)]);
        const at = offset + ad.length;
        expect(reference.seal(buf, offset, ad.length, at, body.length, nonce, key)).toBe(body.length + 16);
        expect(reference.open(buf, offset, ad.length, at, body.length + 16, nonce, key)).toBe(body.length);
        expect(buf.subarray(at, at + body.length)).toEqual(body);
      }),
      { numRuns: 200 },
    );
  });
});
