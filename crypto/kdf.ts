/**
 * The session key schedule (described for outsiders in docs/security.md).
 *
 *   passwordKey = Argon2id(password, salt = BLAKE2b-128("weft-v1 password salt"))      once per process
 *   th          = BLAKE2b-256(transcript: label, version, initiator name, responder name, both ephemeral keys)
 *   shared      = X25519(our ephemeral secret, their ephemeral public)                  all-zero is refused
 *   prk         = BLAKE2b-256(key = passwordKey, "weft-v1 session" || shared || th)
 *                 with identities on both sides (crypto/identity.ts), th also binds both static public keys and
 *   prk         = BLAKE2b-256(key = passwordKey, "weft-v1 session" || shared || th || "identity" || es || se)
 *                 es = X25519(initiator ephemeral, responder static), se = X25519(initiator static, responder ephemeral)
 *   subkey(id)  = crypto_kdf_derive_from_key(prk, id, context "weftv1sk")               one key per purpose
 *
 * A rekey (a fresh ephemeral exchange on the established control channel) chains from the previous epoch:
 *
 *   rth         = BLAKE2b-256("weft-v1 rekey transcript" || epoch || offerer role || offer pk || answer pk)
 *   prk'        = BLAKE2b-256(key = chain, "weft-v1 rekey" || passwordKey || shared' || rth)
 *   subkey'(id) = crypto_kdf_derive_from_key(prk', id, context "weftv1rk")
 *
 * Everything here runs on the control plane, once per handshake or rekey, so it favours plain code over speed.
 */
import sodium from 'sodium-native';
import { HandshakeError, InvalidKeyError, InvalidPasswordError } from './errors.js';

/** Bytes of every symmetric key, ephemeral public key and hash this module produces. */
export const KEY_BYTES = 32;

/** The protocol label bound into every transcript and derivation. */
export const PROTOCOL_LABEL = 'weft-v1';

/**
 * The subkeys of a session, by purpose and direction ("IR" = initiator to responder, "RI" = responder to initiator).
 * The connection initiator sends with the IR keys and receives with the RI keys; the responder the other way round.
 */
export const SubkeyId = {
  ControlIR: 1,
  ControlRI: 2,
  DataIR: 3,
  DataRI: 4,
  ConfirmIR: 5,
  ConfirmRI: 6,
  /** The secret the next rekey chains from; never used as a cipher key. */
  Chain: 7,
} as const;

const SESSION_CONTEXT = Buffer.from('weftv1sk');
const REKEY_CONTEXT = Buffer.from('weftv1rk');

/**
 * Argon2id cost for stretching the password. "Interactive" limits: ~0.1-0.3 s and 64 MiB once per process, which an
 * offline guesser must pay per guess; online guessing is already limited by the handshake round trip.
 */
export const PASSWORD_OPS_LIMIT = sodium.crypto_pwhash_OPSLIMIT_INTERACTIVE;
/** @see PASSWORD_OPS_LIMIT */
export const PASSWORD_MEM_LIMIT_BYTES = sodium.crypto_pwhash_MEMLIMIT_INTERACTIVE;

export interface PasswordStretchOptions {
  /** Argon2id passes. @default PASSWORD_OPS_LIMIT (crypto_pwhash_OPSLIMIT_INTERACTIVE) */
  opsLimit?: number;
  /** Argon2id memory in bytes. @default PASSWORD_MEM_LIMIT_BYTES (crypto_pwhash_MEMLIMIT_INTERACTIVE, 64 MiB) */
  memLimitBytes?: number;
}

function utf8(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

/** BLAKE2b over the concatenation of `parts` (hashed as a batch, so secrets are never copied into a temporary). */
function blake2b(outBytes: number, parts: Buffer[], key?: Buffer): Buffer {
  const out = Buffer.alloc(outBytes);
  if (key) sodium.crypto_generichash_batch(out, parts, key);
  else sodium.crypto_generichash_batch(out, parts);
  return out;
}

/**
 * The fixed Argon2id salt. Fixed because two routers must derive the same key from the password alone, before they
 * exchange anything; the cost is that one precomputed dictionary serves every weft network (see docs/security.md).
 */
function passwordSalt(): Buffer {
  return blake2b(sodium.crypto_pwhash_SALTBYTES, [utf8(`${PROTOCOL_LABEL} password salt`)]);
}

/**
 * Stretch the network password into the 32-byte `passwordKey` with Argon2id. Blocks the calling thread for the
 * configured cost (about 0.1-0.3 s with the defaults), so call it once per process and keep the result.
 * The caller owns the returned buffer and should `sodium_memzero` it when done.
 * Throws `InvalidPasswordError` for an empty password.
 */
export function stretchPassword(password: Uint8Array | string, options: PasswordStretchOptions = {}): Buffer {
  const bytes = typeof password === 'string' ? utf8(password) : Buffer.from(password);
  if (bytes.length === 0) throw new InvalidPasswordError('the password is empty; give --password a non-empty value');
  const out = Buffer.alloc(KEY_BYTES);
  sodium.crypto_pwhash(
    out,
    bytes,
    passwordSalt(),
    options.opsLimit ?? PASSWORD_OPS_LIMIT,
    options.memLimitBytes ?? PASSWORD_MEM_LIMIT_BYTES,
    sodium.crypto_pwhash_ALG_ARGON2ID13,
  );
  sodium.sodium_memzero(bytes);
  return out;
}

/** A fresh X25519 key pair from libsodium's CSPRNG. The caller wipes `secretKey` when done. */
export interface EphemeralKeyPair {
  publicKey: Buffer;
  secretKey: Buffer;
}

/** Make a fresh ephemeral X25519 key pair. */
export function generateEphemeral(): EphemeralKeyPair {
  const publicKey = Buffer.alloc(sodium.crypto_box_PUBLICKEYBYTES);
  const secretKey = Buffer.alloc(sodium.crypto_box_SECRETKEYBYTES);
  sodium.crypto_box_keypair(publicKey, secretKey);
  return { publicKey, secretKey };
}

/**
 * X25519 between our secret and the remote's public key. Throws `InvalidKeyError` if the remote key is not 32 bytes or
 * is a low-order point (libsodium then returns an all-zero secret, which would make the session key depend on the
 * password alone).
 */
export function sharedSecret(secretKey: Buffer, remotePublicKey: Uint8Array): Buffer {
  if (!(remotePublicKey instanceof Uint8Array) || remotePublicKey.length !== sodium.crypto_scalarmult_BYTES) {
    throw new InvalidKeyError(
      `remote public key has ${remotePublicKey?.length ?? 'no'} bytes, expected ${sodium.crypto_scalarmult_BYTES}; the peer runs an incompatible weft`,
    );
  }
  const out = Buffer.alloc(sodium.crypto_scalarmult_BYTES);
  try {
    sodium.crypto_scalarmult(out, secretKey, Buffer.from(remotePublicKey));
  } catch {
    throw new InvalidKeyError('remote public key is a low-order point; refusing it (a broken or hostile peer)');
  }
  // libsodium already refuses an all-zero result; check again so a binding change cannot silently weaken this.
  if (sodium.sodium_is_zero(out, out.length)) {
    throw new InvalidKeyError('remote public key is a low-order point; refusing it (a broken or hostile peer)');
  }
  return out;
}

/** What both sides bind their session to. Names are the peers' canonical names. */
export interface TranscriptParams {
  protocolVersion: number;
  initiatorName: string;
  responderName: string;
  initiatorPublicKey: Uint8Array;
  responderPublicKey: Uint8Array;
  /**
   * The data cipher the two hellos agreed on. ChaCha20-Poly1305 (every router's, and the only one before AEGIS-256
   * was offered) leaves the transcript as it was; any other adds a field, so a hello whose offer was changed in
   * transit makes the two sides' keys differ and the handshake fail. @default 'chacha20-poly1305'
   */
  dataCipher?: string;
  /**
   * Both routers' identity public keys (crypto/identity.ts), when both have one: a field is added, so the keys in
   * the hellos are bound to the session. Give both or neither.
   */
  initiatorIdentity?: Uint8Array;
  responderIdentity?: Uint8Array;
}

function lengthPrefixed(bytes: Buffer, prefixBytes: 1 | 2): Buffer {
  if (bytes.length >= 2 ** (8 * prefixBytes)) {
    throw new HandshakeError(`transcript field of ${bytes.length} bytes is too long; the peer sent an oversized hello`);
  }
  const prefix = Buffer.alloc(prefixBytes);
  prefix.writeUIntBE(bytes.length, 0, prefixBytes);
  return Buffer.concat([prefix, bytes]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/**
 * The transcript hash: BLAKE2b-256 over
 *
 *   u8 len | "weft-v1" | u32 version | u16 len | initiator name | u16 len | responder name | 32 init pk | 32 resp pk
 *   [ | u8 len | "data-cipher" | u8 len | cipher ]      only when the agreed data cipher is not ChaCha20-Poly1305
 *   [ | u8 len | "identity" | 32 init static pk | 32 resp static pk ]          only when both have identities
 *
 * Variable fields are length-prefixed so no two different transcripts encode to the same bytes. Throws
 * `HandshakeError` for a name over 65535 UTF-8 bytes or a version that is not a u32, `InvalidKeyError` for keys
 * that are not 32 bytes.
 */
export function transcriptHash(p: TranscriptParams): Buffer {
  if (p.initiatorPublicKey.length !== KEY_BYTES || p.responderPublicKey.length !== KEY_BYTES) {
    throw new InvalidKeyError(`ephemeral public keys must be ${KEY_BYTES} bytes`);
  }
  if (!Number.isInteger(p.protocolVersion) || p.protocolVersion < 0 || p.protocolVersion >= 2 ** 32) {
    throw new HandshakeError(`protocol version ${p.protocolVersion} is not a u32`);
  }
  const fields = [
    lengthPrefixed(utf8(PROTOCOL_LABEL), 1),
    u32(p.protocolVersion),
    lengthPrefixed(utf8(p.initiatorName), 2),
    lengthPrefixed(utf8(p.responderName), 2),
    Buffer.from(p.initiatorPublicKey),
    Buffer.from(p.responderPublicKey),
  ];
  if (p.dataCipher !== undefined && p.dataCipher !== 'chacha20-poly1305') {
    fields.push(lengthPrefixed(utf8('data-cipher'), 1), lengthPrefixed(utf8(p.dataCipher), 1));
  }
  if ((p.initiatorIdentity === undefined) !== (p.responderIdentity === undefined)) {
    throw new InvalidKeyError('give both identity keys or neither');
  }
  if (p.initiatorIdentity !== undefined && p.responderIdentity !== undefined) {
    if (p.initiatorIdentity.length !== KEY_BYTES || p.responderIdentity.length !== KEY_BYTES) {
      throw new InvalidKeyError(`identity public keys must be ${KEY_BYTES} bytes`);
    }
    fields.push(lengthPrefixed(utf8('identity'), 1), Buffer.from(p.initiatorIdentity), Buffer.from(p.responderIdentity));
  }
  return blake2b(KEY_BYTES, fields);
}

/**
 * The two X25519 results that prove both identities, as each side computes them: es = X25519(initiator ephemeral,
 * responder static) and se = X25519(initiator static, responder ephemeral). Only the holder of a static private key
 * (or of the ephemeral one it is paired with) gets them. Throws `InvalidKeyError` for a low-order remote key.
 * The caller wipes both.
 */
export function identitySecrets(p: {
  isInitiator: boolean;
  localStaticSecret: Buffer;
  localEphemeralSecret: Buffer;
  remoteStaticPublic: Uint8Array;
  remoteEphemeralPublic: Uint8Array;
}): [Buffer, Buffer] {
  if (p.isInitiator) {
    const es = sharedSecret(p.localEphemeralSecret, p.remoteStaticPublic);
    return [es, sharedSecret(p.localStaticSecret, p.remoteEphemeralPublic)];
  }
  const es = sharedSecret(p.localStaticSecret, p.remoteEphemeralPublic);
  return [es, sharedSecret(p.localEphemeralSecret, p.remoteStaticPublic)];
}

/** All keys of one session (epoch 0). Every buffer is `KEY_BYTES` long and owned by the caller, who wipes them. */
export interface SessionKeys {
  controlIR: Buffer;
  controlRI: Buffer;
  dataIR: Buffer;
  dataRI: Buffer;
  confirmIR: Buffer;
  confirmRI: Buffer;
  chain: Buffer;
}

function subkey(prk: Buffer, id: number, context: Buffer): Buffer {
  const out = Buffer.alloc(KEY_BYTES);
  sodium.crypto_kdf_derive_from_key(out, id, context, prk);
  return out;
}

/**
 * Derive the session keys from the X25519 shared secret, the stretched password and the transcript hash, and with
 * identities on both sides their two X25519 results `identity` = [es, se] (`identitySecrets`). A different
 * password, transcript (names, their order, keys, version) or shared secret gives unrelated keys.
 */
export function deriveSessionKeys(
  shared: Buffer,
  passwordKey: Buffer,
  transcript: Buffer,
  identity?: readonly [Buffer, Buffer],
): SessionKeys {
  const parts = [utf8(`${PROTOCOL_LABEL} session`), shared, transcript];
  if (identity) parts.push(utf8('identity'), identity[0], identity[1]);
  const prk = blake2b(KEY_BYTES, parts, passwordKey);
  const keys: SessionKeys = {
    controlIR: subkey(prk, SubkeyId.ControlIR, SESSION_CONTEXT),
    controlRI: subkey(prk, SubkeyId.ControlRI, SESSION_CONTEXT),
    dataIR: subkey(prk, SubkeyId.DataIR, SESSION_CONTEXT),
    dataRI: subkey(prk, SubkeyId.DataRI, SESSION_CONTEXT),
    confirmIR: subkey(prk, SubkeyId.ConfirmIR, SESSION_CONTEXT),
    confirmRI: subkey(prk, SubkeyId.ConfirmRI, SESSION_CONTEXT),
    chain: subkey(prk, SubkeyId.Chain, SESSION_CONTEXT),
  };
  sodium.sodium_memzero(prk);
  return keys;
}

/**
 * The transcript of a punch (a data session between two routers with no control connection, keyed over the mesh):
 * BLAKE2b-256 of "weft-v1 punch", both names (offerer first), the attempt number and both X25519 public keys.
 */
export function punchTranscript(p: {
  offerer: string;
  answerer: string;
  attempt: number;
  offererPublic: Uint8Array;
  answererPublic: Uint8Array;
}): Buffer {
  const attempt = Buffer.alloc(4);
  attempt.writeUInt32BE(p.attempt >>> 0);
  const lp = (b: Buffer) => {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(b.length);
    return Buffer.concat([len, b]);
  };
  return blake2b(KEY_BYTES, [
    utf8(`${PROTOCOL_LABEL} punch`),
    lp(utf8(p.offerer)),
    lp(utf8(p.answerer)),
    attempt,
    Buffer.from(p.offererPublic),
    Buffer.from(p.answererPublic),
  ]);
}

/**
 * Key confirmation: BLAKE2b-256(key = confirm key of the sender's direction, "weft-v1 confirm" || th). Proves the
 * sender derived the same keys (hence holds the same password) without revealing anything about them.
 */
export function confirmationTag(confirmKey: Buffer, transcript: Buffer): Buffer {
  return blake2b(KEY_BYTES, [utf8(`${PROTOCOL_LABEL} confirm`), transcript], confirmKey);
}

/** What a rekey binds: the new epoch, which side offered, and both fresh public keys. */
export interface RekeyTranscriptParams {
  epoch: number;
  /** True when the connection initiator sent the offer. */
  isOfferFromInitiator: boolean;
  offerPublicKey: Uint8Array;
  answerPublicKey: Uint8Array;
}

/** The data keys of one rekey epoch and the chain secret for the next. Owned and wiped by the caller. */
export interface RekeyKeys {
  dataIR: Buffer;
  dataRI: Buffer;
  chain: Buffer;
}

/**
 * Derive epoch `p.epoch`'s data keys from the previous epoch's chain secret, the stretched password and a fresh
 * X25519 shared secret. Mixing in the chain means an attacker who injects rekey messages learns nothing without the
 * session; the fresh exchange gives forward secrecy per epoch once the old chain is wiped.
 */
export function deriveRekeyKeys(chain: Buffer, passwordKey: Buffer, shared: Buffer, p: RekeyTranscriptParams): RekeyKeys {
  if (p.offerPublicKey.length !== KEY_BYTES || p.answerPublicKey.length !== KEY_BYTES) {
    throw new InvalidKeyError(`ephemeral public keys must be ${KEY_BYTES} bytes`);
  }
  const rth = blake2b(KEY_BYTES, [
    utf8(`${PROTOCOL_LABEL} rekey transcript`),
    u32(p.epoch),
    Buffer.from([p.isOfferFromInitiator ? 1 : 0]),
    Buffer.from(p.offerPublicKey),
    Buffer.from(p.answerPublicKey),
  ]);
  const prk = blake2b(KEY_BYTES, [utf8(`${PROTOCOL_LABEL} rekey`), passwordKey, shared, rth], chain);
  const keys: RekeyKeys = {
    dataIR: subkey(prk, SubkeyId.DataIR, REKEY_CONTEXT),
    dataRI: subkey(prk, SubkeyId.DataRI, REKEY_CONTEXT),
    chain: subkey(prk, SubkeyId.Chain, REKEY_CONTEXT),
  };
  sodium.sodium_memzero(prk);
  return keys;
}

/** Zero every buffer of a key set. Idempotent. */
export function wipeKeys(keys: object): void {
  for (const v of Object.values(keys)) if (Buffer.isBuffer(v)) sodium.sodium_memzero(v);
}
