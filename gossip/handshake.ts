/**
 * The hello: the first message each side sends on a control connection, both at once, without waiting for the
 * other. It says who we are and how we can talk; `checkHello` decides whether the connection may continue.
 *
 * Wire format (all integers big-endian; the message is exactly this long, trailing bytes are refused):
 *
 *     0       4   magic "weft" (77 65 66 74): a non-weft peer fails here, not on some later field
 *     4       1   minVersion   \ protocol versions we speak; the connection uses the highest
 *     5       1   maxVersion   / version both ranges contain (this build speaks 1..1)
 *     6       6   peer name (48 bits)
 *    12       8   uid (u64, random per launch; decimal string in JSON and logs)
 *    20       2   udpPort: the sender's data-plane UDP port
 *    22       1   flags: bit 0 hasPassword; other bits must be zero
 *    23       1   N = nickname length in bytes (0..64)
 *    24       N   nickname, UTF-8
 *  24+N       1   K = ephemeral public key length (0, or 32 when hasPassword)
 *                 (the nickname has no control or format characters: a hello with one is refused)
 *  25+N       K   X25519 public key (crypto/connection-security.ts)
 * 25+N+K      1   F = feature count (0..32)
 *   ...           F times: 1 byte length L (1..64), then L bytes of printable ASCII
 *
 * The largest valid hello is 2234 bytes; anything over `MAX_HELLO_BYTES` is refused before parsing.
 */
import { DecodeError } from './decode-error.js';
import { peerIdToName, peerNameToId, type PeerName } from './peer-name.js';
import { WeftError } from '../runtime/errors.js';

/** Protocol versions this build speaks. */
export const PROTOCOL_MIN_VERSION = 1;
export const PROTOCOL_MAX_VERSION = 1;

export const MAX_NICKNAME_BYTES = 64;
export const MAX_FEATURES = 32;
export const MAX_FEATURE_BYTES = 64;
export const PUBLIC_KEY_BYTES = 32;
export const MAX_HELLO_BYTES = 4096;
/**
 * Largest message accepted on a connection before its handshake is done (a hello, then a 32-byte confirmation):
 * the transport refuses anything bigger before buffering it, so an unauthenticated peer costs a few KiB at most.
 */
export const MAX_HANDSHAKE_MESSAGE_BYTES = MAX_HELLO_BYTES;
/** Control and format characters (terminal escapes, bidi overrides): never in a nickname. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\u2028\u2029]/u;

const MAGIC = [0x77, 0x65, 0x66, 0x74];
const FLAG_HAS_PASSWORD = 0x01;

export interface Hello {
  minVersion: number;
  maxVersion: number;
  name: PeerName;
  /** Human-friendly name (the host name by default), at most 64 UTF-8 bytes. */
  nickname: string;
  /** Random 64-bit number per launch, decimal. Tells a restarted router from its previous incarnation. */
  uid: string;
  features: string[];
  hasPassword: boolean;
  /** Ephemeral X25519 public key: 32 bytes when `hasPassword`, else empty. */
  publicKey: Uint8Array;
  udpPort: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Encode a hello. Throws `RangeError` for a hello we would refuse ourselves (a local bug or bad config). */
export function encodeHello(h: Hello): Uint8Array {
  const nick = Buffer.from(h.nickname, 'utf8');
  if (nick.length > MAX_NICKNAME_BYTES) throw new RangeError(`nickname ${JSON.stringify(h.nickname)} is over ${MAX_NICKNAME_BYTES} bytes`);
  if (UNPRINTABLE.test(h.nickname)) throw new RangeError(`nickname ${JSON.stringify(h.nickname)} has control characters`);
  if (h.publicKey.length !== 0 && h.publicKey.length !== PUBLIC_KEY_BYTES) throw new RangeError('public key must be 0 or 32 bytes');
  if (h.features.length > MAX_FEATURES) throw new RangeError(`more than ${MAX_FEATURES} features`);
  const feats = h.features.map((f) => {
    if (!/^[\x21-\x7e]{1,64}$/.test(f)) throw new RangeError(`feature ${JSON.stringify(f)} is not 1..64 printable ASCII characters`);
    return Buffer.from(f, 'ascii');
  });
  const uid = BigInt(h.uid);
  if (uid < 0n || uid >= 1n << 64n) throw new RangeError(`uid ${h.uid} is not a 64-bit unsigned number`);
  const size = 24 + nick.length + 1 + h.publicKey.length + 1 + feats.reduce((n, f) => n + 1 + f.length, 0);
  const b = Buffer.alloc(size);
  b.set(MAGIC, 0);
  b[4] = h.minVersion;
  b[5] = h.maxVersion;
  b.writeUIntBE(peerNameToId(h.name), 6, 6);
  b.writeBigUInt64BE(uid, 12);
  b.writeUInt16BE(h.udpPort, 20);
  b[22] = h.hasPassword ? FLAG_HAS_PASSWORD : 0;
  let o = 23;
  b[o++] = nick.length;
  b.set(nick, o);
  o += nick.length;
  b[o++] = h.publicKey.length;
  b.set(h.publicKey, o);
  o += h.publicKey.length;
  b[o++] = feats.length;
  for (const f of feats) {
    b[o++] = f.length;
    b.set(f, o);
    o += f.length;
  }
  return b;
}

/** Decode a hello from an untrusted peer. Any deviation from the format throws `DecodeError`. */
export function decodeHello(bytes: Uint8Array): Hello {
  if (bytes.length > MAX_HELLO_BYTES) throw new DecodeError(`hello is ${bytes.length} bytes, over the ${MAX_HELLO_BYTES}-byte limit`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let o = 0;
  const need = (n: number, what: string) => {
    if (o + n > b.length) throw new DecodeError(`hello truncated at byte ${o} reading ${what}`);
  };
  // Magic before length: a short non-weft message is better reported as "not weft" than as "truncated".
  for (let i = 0; i < Math.min(4, b.length); i++) {
    if (b[i] !== MAGIC[i]) throw new DecodeError('not a weft hello (bad magic): is the remote a weft router?');
  }
  need(24, 'fixed header');
  const minVersion = b[4]!;
  const maxVersion = b[5]!;
  if (minVersion > maxVersion) throw new DecodeError(`hello version range ${minVersion}..${maxVersion} is empty`);
  const name = peerIdToName(b.readUIntBE(6, 6));
  const uid = b.readBigUInt64BE(12).toString();
  const udpPort = b.readUInt16BE(20);
  const flags = b[22]!;
  if ((flags & ~FLAG_HAS_PASSWORD) !== 0) throw new DecodeError(`hello has unknown flags 0x${flags.toString(16)}`);
  o = 23;
  const nickLen = b[o++]!;
  if (nickLen > MAX_NICKNAME_BYTES) throw new DecodeError(`hello nickname is ${nickLen} bytes, over ${MAX_NICKNAME_BYTES}`);
  need(nickLen, 'nickname');
  let nickname: string;
  try {
    nickname = utf8.decode(b.subarray(o, o + nickLen));
  } catch {
    throw new DecodeError('hello nickname is not valid UTF-8');
  }
  // Nicknames end up in logs and on terminals (`weft status`): an escape sequence in one must not reach them.
  if (UNPRINTABLE.test(nickname)) throw new DecodeError('hello nickname has control characters');
  o += nickLen;
  need(1, 'public key length');
  const keyLen = b[o++]!;
  if (keyLen !== 0 && keyLen !== PUBLIC_KEY_BYTES) throw new DecodeError(`hello public key is ${keyLen} bytes, not 0 or 32`);
  need(keyLen, 'public key');
  const publicKey = Uint8Array.from(b.subarray(o, o + keyLen));
  o += keyLen;
  need(1, 'feature count');
  const featureCount = b[o++]!;
  if (featureCount > MAX_FEATURES) throw new DecodeError(`hello lists ${featureCount} features, over ${MAX_FEATURES}`);
  const features: string[] = [];
  for (let i = 0; i < featureCount; i++) {
    need(1, 'feature length');
    const len = b[o++]!;
    if (len < 1 || len > MAX_FEATURE_BYTES) throw new DecodeError(`hello feature ${i} length ${len} is outside 1..${MAX_FEATURE_BYTES}`);
    need(len, 'feature');
    const f = b.toString('latin1', o, o + len);
    if (!/^[\x21-\x7e]+$/.test(f)) throw new DecodeError(`hello feature ${i} is not printable ASCII`);
    features.push(f);
    o += len;
  }
  if (o !== b.length) throw new DecodeError(`hello has ${b.length - o} trailing bytes`);
  const hasPassword = (flags & FLAG_HAS_PASSWORD) !== 0;
  if (hasPassword !== (keyLen === PUBLIC_KEY_BYTES)) {
    throw new DecodeError(
      hasPassword ? 'hello claims a password but carries no public key' : 'hello carries a public key but claims no password',
    );
  }
  return { minVersion, maxVersion, name, nickname, uid, features, hasPassword, publicKey, udpPort };
}

/** Base of every handshake refusal; `code` is stable for the API, CLI and logs. */
export class HandshakeError extends WeftError {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The two version ranges do not overlap. */
export class IncompatibleVersionError extends HandshakeError {
  constructor(peer: string, remote: { minVersion: number; maxVersion: number }) {
    super(
      'ERR_INCOMPATIBLE_VERSION',
      `peer ${peer} speaks protocol ${remote.minVersion}..${remote.maxVersion}, this router ${PROTOCOL_MIN_VERSION}..${PROTOCOL_MAX_VERSION}; run the same weft release on both`,
    );
  }
}

/** We dialled ourselves (a target that is one of our own addresses). */
export class ConnectToSelfError extends HandshakeError {
  constructor(addr: string) {
    super('ERR_CONNECT_TO_SELF', `${addr} is this router itself; remove it from the peer list with 'weft forget ${addr}'`);
  }
}

/** A second connection to a peer we are already connected to. */
export class DuplicateConnectionError extends HandshakeError {
  constructor(peer: string) {
    super('ERR_DUPLICATE_CONNECTION', `already connected to peer ${peer}; keeping one connection`);
  }
}

/** Two live routers share one peer name (a copied state dir or cloned VM). */
export class PeerNameCollisionError extends HandshakeError {
  constructor(name: PeerName, localUid: string, remoteUid: string, addr: string) {
    super(
      'ERR_PEER_NAME_COLLISION',
      `peer name ${name} is used by two routers (uids ${localUid} and ${remoteUid}, the other at ${addr}): a copied state dir or cloned VM? remove <state-dir>/peer-name on one of them and restart it`,
    );
  }
}

/** One side has a password and the other none, or the passwords differ (key confirmation failed). */
export class PasswordMismatchError extends HandshakeError {
  constructor(message: string) {
    super('ERR_PASSWORD_MISMATCH', message);
  }
}

/** "h2 (10.0.0.2:6783)": how messages name a remote router. */
export function describePeer(hello: Pick<Hello, 'name' | 'nickname'>, addr: string): string {
  return `${hello.nickname || hello.name} (${addr})`;
}

/** The version both ranges contain (the highest), or null if none. */
export function negotiateVersion(
  local: Pick<Hello, 'minVersion' | 'maxVersion'>,
  remote: Pick<Hello, 'minVersion' | 'maxVersion'>,
): number | null {
  const v = Math.min(local.maxVersion, remote.maxVersion);
  return v >= Math.max(local.minVersion, remote.minVersion) ? v : null;
}

/**
 * Decide whether a connection may continue after the remote hello: returns the agreed protocol version or throws a
 * `HandshakeError`. Duplicate connections are decided by the mesh (it knows the other connections).
 */
export function checkHello(local: Hello, remote: Hello, remoteAddr: string): number {
  const peer = describePeer(remote, remoteAddr);
  const version = negotiateVersion(local, remote);
  if (version === null) throw new IncompatibleVersionError(peer, remote);
  if (remote.name === local.name) {
    if (remote.uid === local.uid) throw new ConnectToSelfError(remoteAddr);
    throw new PeerNameCollisionError(local.name, local.uid, remote.uid, remoteAddr);
  }
  if (remote.hasPassword !== local.hasPassword) {
    throw new PasswordMismatchError(
      remote.hasPassword
        ? `peer ${peer} has a password but this router has none; every router needs the same --password`
        : `peer ${peer} has no password but this router has one; every router needs the same --password`,
    );
  }
  return version;
}
