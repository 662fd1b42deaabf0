import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import sodium from 'sodium-native';
import {
  confirmationTag,
  deriveRekeyKeys,
  deriveSessionKeys,
  generateEphemeral,
  sharedSecret,
  stretchPassword,
  transcriptHash,
  identitySecrets,
  type TranscriptParams,
} from './kdf.js';
import { InvalidKeyError, InvalidPasswordError } from './errors.js';

/** Cheap Argon2 limits so property tests can stretch many passwords; the vectors below pin the real defaults too. */
const CHEAP = { opsLimit: sodium.crypto_pwhash_OPSLIMIT_MIN, memLimitBytes: sodium.crypto_pwhash_MEMLIMIT_MIN };

function fixedKeyPair(fill: number): { publicKey: Buffer; secretKey: Buffer } {
  const secretKey = Buffer.alloc(32, fill);
  const publicKey = Buffer.alloc(32);
  sodium.crypto_scalarmult_base(publicKey, secretKey);
  return { publicKey, secretKey };
}

const hex = (b: Buffer): string => b.toString('hex');

describe('kdf test vectors (fixed inputs, outputs computed once and pinned)', () => {
  const initiator = fixedKeyPair(0x11);
  const responder = fixedKeyPair(0x22);
  const params: TranscriptParams = {
    protocolVersion: 1,
    initiatorName: '02:00:00:00:00:01',
    responderName: '02:00:00:00:00:02',
    initiatorPublicKey: initiator.publicKey,
    responderPublicKey: responder.publicKey,
  };

  it('stretches the password with the production Argon2id limits to a fixed key', () => {
    expect(hex(stretchPassword('correct horse battery staple'))).toBe(VECTORS.passwordKey);
  });

  it('derives fixed transcript hash, session keys, confirmations and rekey keys', () => {
    const passwordKey = stretchPassword('correct horse battery staple', CHEAP);
    expect(hex(passwordKey)).toBe(VECTORS.cheapPasswordKey);
    const shared = sharedSecret(initiator.secretKey, responder.publicKey);
    expect(hex(shared)).toBe(VECTORS.shared);
    const th = transcriptHash(params);
    expect(hex(th)).toBe(VECTORS.transcript);
    // ChaCha20-Poly1305 leaves the transcript as it was before ciphers were negotiated; AEGIS-256X2 adds a field.
    expect(hex(transcriptHash({ ...params, dataCipher: 'chacha20-poly1305' }))).toBe(VECTORS.transcript);
    expect(hex(transcriptHash({ ...params, dataCipher: 'aegis-256x2' }))).toBe(VECTORS.transcriptAegis256x2);
    // Identities on both sides add their static public keys (here the fixed pairs 0x33.. and 0x44..).
    const staticI = fixedKeyPair(0x33);
    const staticR = fixedKeyPair(0x44);
    expect(hex(transcriptHash({ ...params, initiatorIdentity: staticI.publicKey, responderIdentity: staticR.publicKey }))).toBe(
      VECTORS.transcriptIdentity,
    );
    expect(() => transcriptHash({ ...params, initiatorIdentity: staticI.publicKey })).toThrow(/both identity keys or neither/);
    const keys = deriveSessionKeys(shared, passwordKey, th);
    expect(Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, hex(v)]))).toEqual(VECTORS.session);
    expect(hex(confirmationTag(keys.confirmIR, th))).toBe(VECTORS.confirmIR);
    const rekey = deriveRekeyKeys(keys.chain, passwordKey, shared, {
      epoch: 1,
      isOfferFromInitiator: true,
      offerPublicKey: initiator.publicKey,
      answerPublicKey: responder.publicKey,
    });
    expect(Object.fromEntries(Object.entries(rekey).map(([k, v]) => [k, hex(v)]))).toEqual(VECTORS.rekey);
  });
});

describe('kdf properties', () => {
  const pwA = stretchPassword('alpha', CHEAP);
  const pwB = stretchPassword('bravo', CHEAP);

  it('both sides compute the same shared secret and keys, so each send key is the other side receive key', () => {
    const i = generateEphemeral();
    const r = generateEphemeral();
    const t = transcriptHash({
      protocolVersion: 1,
      initiatorName: 'a',
      responderName: 'b',
      initiatorPublicKey: i.publicKey,
      responderPublicKey: r.publicKey,
    });
    const atInitiator = deriveSessionKeys(sharedSecret(i.secretKey, r.publicKey), pwA, t);
    const atResponder = deriveSessionKeys(sharedSecret(r.secretKey, i.publicKey), pwA, t);
    expect(atInitiator).toEqual(atResponder);
    // Directions are distinct keys, so no message can be reflected back to its sender.
    const all = Object.values(atInitiator).map(hex);
    expect(new Set(all).size).toBe(all.length);
  });

  it('identity proofs: both sides compute the same es and se, and they change the keys', () => {
    const [ei, er, si, sr] = [generateEphemeral(), generateEphemeral(), generateEphemeral(), generateEphemeral()];
    const atI = identitySecrets({
      isInitiator: true,
      localStaticSecret: si.secretKey,
      localEphemeralSecret: ei.secretKey,
      remoteStaticPublic: sr.publicKey,
      remoteEphemeralPublic: er.publicKey,
    });
    const atR = identitySecrets({
      isInitiator: false,
      localStaticSecret: sr.secretKey,
      localEphemeralSecret: er.secretKey,
      remoteStaticPublic: si.publicKey,
      remoteEphemeralPublic: ei.publicKey,
    });
    expect(atI.map(hex)).toEqual(atR.map(hex));
    expect(hex(atI[0])).not.toBe(hex(atI[1]));
    const t = transcriptHash({
      protocolVersion: 1,
      initiatorName: 'a',
      responderName: 'b',
      initiatorPublicKey: ei.publicKey,
      responderPublicKey: er.publicKey,
    });
    const shared = sharedSecret(ei.secretKey, er.publicKey);
    expect(hex(deriveSessionKeys(shared, pwA, t, atI).dataIR)).not.toBe(hex(deriveSessionKeys(shared, pwA, t).dataIR));
    // Someone with the responder's public key but another private key gets other proofs.
    const fake = generateEphemeral();
    const atFake = identitySecrets({
      isInitiator: false,
      localStaticSecret: fake.secretKey,
      localEphemeralSecret: er.secretKey,
      remoteStaticPublic: si.publicKey,
      remoteEphemeralPublic: ei.publicKey,
    });
    expect(hex(atFake[0])).not.toBe(hex(atI[0]));
  });

  it('a different password, transcript field or name order gives unrelated keys', () => {
    fc.assert(
      fc.property(fc.string(), fc.string(), fc.integer({ min: 0, max: 2 ** 32 - 1 }), (nameA, nameB, version) => {
        fc.pre(nameA !== nameB);
        const i = generateEphemeral();
        const r = generateEphemeral();
        const shared = sharedSecret(i.secretKey, r.publicKey);
        const base: TranscriptParams = {
          protocolVersion: version,
          initiatorName: nameA,
          responderName: nameB,
          initiatorPublicKey: i.publicKey,
          responderPublicKey: r.publicKey,
        };
        const variants: TranscriptParams[] = [
          base,
          { ...base, initiatorName: nameB, responderName: nameA },
          { ...base, protocolVersion: (version + 1) % 2 ** 32 },
          { ...base, initiatorPublicKey: r.publicKey, responderPublicKey: i.publicKey },
          // Moves the boundary between the names: an encoding without length prefixes would collide here.
          { ...base, initiatorName: nameA + nameB.slice(0, 1), responderName: nameB.slice(1) },
          { ...base, dataCipher: 'aegis-256x2' },
        ];
        const distinct = new Set(
          variants.map((v) =>
            JSON.stringify([
              v.protocolVersion,
              v.initiatorName,
              v.responderName,
              hex(Buffer.from(v.initiatorPublicKey)),
              v.dataCipher ?? 'chacha20-poly1305',
            ]),
          ),
        );
        const seen = new Set<string>();
        for (const v of variants) {
          for (const pw of [pwA, pwB]) {
            const k = deriveSessionKeys(shared, pw, transcriptHash(v));
            seen.add(hex(k.dataIR));
            seen.add(hex(k.controlIR));
          }
        }
        // Distinct transcripts x two passwords x two keys: all different.
        expect(seen.size).toBe(distinct.size * 2 * 2);
      }),
      { numRuns: 50 },
    );
  });

  it('refuses low-order and wrong-length public keys with InvalidKeyError', () => {
    const { secretKey } = generateEphemeral();
    expect(() => sharedSecret(secretKey, Buffer.alloc(32))).toThrow(InvalidKeyError);
    const order8 = Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex');
    expect(() => sharedSecret(secretKey, order8)).toThrow(InvalidKeyError);
    expect(() => sharedSecret(secretKey, Buffer.alloc(31, 9))).toThrow(InvalidKeyError);
  });

  it('refuses an empty password with InvalidPasswordError', () => {
    expect(() => stretchPassword('', CHEAP)).toThrow(InvalidPasswordError);
  });

  it('a rekey depends on the chain, the password and the offer direction', () => {
    const i = generateEphemeral();
    const r = generateEphemeral();
    const shared = sharedSecret(i.secretKey, r.publicKey);
    const chainA = Buffer.alloc(32, 1);
    const chainB = Buffer.alloc(32, 2);
    const p = { epoch: 3, isOfferFromInitiator: true, offerPublicKey: i.publicKey, answerPublicKey: r.publicKey };
    const keys = [
      deriveRekeyKeys(chainA, pwA, shared, p),
      deriveRekeyKeys(chainB, pwA, shared, p),
      deriveRekeyKeys(chainA, pwB, shared, p),
      deriveRekeyKeys(chainA, pwA, shared, { ...p, isOfferFromInitiator: false }),
      deriveRekeyKeys(chainA, pwA, shared, { ...p, epoch: 4 }),
    ].map((k) => hex(k.dataIR));
    expect(new Set(keys).size).toBe(keys.length);
  });
});

const VECTORS = {
  passwordKey: 'e6db85fd3a91d70781df342037275e06471e4828af03669c1156688d74aab04c',
  cheapPasswordKey: '518cdb4dc39d60f785c96bec86dbfbd8293b9e8d7b674b45a679e5b5c29e1352',
  shared: '9e004098efc091d4ec2663b4e9f5cfd4d7064571690b4bea97ab146ab9f35056',
  transcript: '7ec9a58d07fa3adf4c3a1fabcbb368281fca539555d6916abde9b9ce26444aa7',
  // Checked independently: Python's hashlib.blake2b(digest_size=32) over the same bytes gives both transcripts.
  transcriptAegis256x2: '5205019c913627cbeb95ae18f609fc5d16b47179aa347e8d5ef9de087bfbd3b3',
  transcriptIdentity: 'f9b4d1e0b51bfdbd76bf833b302a90128187fa467d252c4eb1b3b83377d2f51e', // also checked with Python's hashlib
  session: {
    controlIR: '9c292db0e982f426f118b1fd541a292a3125a08f67449f416fae82583dac553c',
    controlRI: 'b6e02e022ce6774894fd141caf593124dfd2c347af34d9e940ca1b44c1008298',
    dataIR: '13de932facbd69563712721651fa53b3b89cd671c11b7752227fead4c36365ce',
    dataRI: '25784b78ac186c72c85e4dfac51f0676e787b4fed5af6ad68c26c49f71adf9be',
    confirmIR: '1dd6f034d8b43b46230fb0ef4dbb9fb6842c380d6f108c565fdb96e662bb1454',
    confirmRI: '432abb3745986372be76241a2893bec953a42940b1e84380cd18c1ad57bc1331',
    chain: 'ba3d9a307cd2de9226c5adad44a2bd3f28b40afefb2a70eb6ec3736165784d5b',
  },
  confirmIR: 'e36c8a35b7b5895e10d8410c1bf9a87adc7978bcaff148d3bc5d5f33a1e952e7',
  rekey: {
    dataIR: 'f54f28f67e4f2ccc01589305f89c3d64f432bbd3eadfa53ca4fd73afc252f1fd',
    dataRI: 'c94af2bd821c6a5a92ae6b3a7a628ff8bcc3babd4bc7afed6f43f349418a3c15',
    chain: '35c030a7addd8c219edea4c8446b70b485f4aef28347d959d8f0d81eba93e2b0',
  },
};
