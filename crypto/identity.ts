/**
 * Router identities: a static X25519 key pair per router, on top of the network password.
 *
 * With a password every router of a network can join it. An identity lets a router also say which routers it
 * talks to: `--authorized-peers FILE` lists the public keys it accepts, and a remote whose hello shows another key,
 * or none, is refused. The key in a hello is proven, not just claimed: when both routers have identities, the
 * session keys also mix X25519(initiator ephemeral, responder static) and X25519(initiator static, responder
 * ephemeral) (crypto/kdf.ts), so key confirmation fails for anyone without the private key behind the public key
 * it showed (and a stolen key of one router does not let the thief pose as another to it).
 *
 * Formats (like WireGuard's): a key is 32 bytes in standard base64 (44 characters). The identity file holds the
 * private key and a newline, mode 0600, created on first use. The authorized-peers file holds one public key per
 * line, optionally followed by a comment (a name); `#` starts a comment line.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import sodium from 'sodium-native';
import { InvalidKeyError } from './errors.js';

export const IDENTITY_KEY_BYTES = 32;
/** Hello feature carrying the router's identity public key: `id=` and the key in base64 (47 characters). */
export const IDENTITY_FEATURE_PREFIX = 'id=';

export interface Identity {
  /** 32 bytes. */
  readonly publicKey: Buffer;
  /** 32 bytes in guarded memory; never logged or sent. */
  readonly secretKey: Buffer;
}

/** A key as text: standard base64, 44 characters. */
export function keyToText(key: Uint8Array): string {
  return Buffer.from(key).toString('base64');
}

/** A key from text (base64, 32 bytes), or null when it is not one. */
export function keyFromText(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) return null;
  const key = Buffer.from(text, 'base64');
  return key.length === IDENTITY_KEY_BYTES ? key : null;
}

/** The identity whose private key is `secretKey` (32 bytes, copied into guarded memory). */
export function identityFromSecret(secretKey: Uint8Array): Identity {
  if (secretKey.length !== IDENTITY_KEY_BYTES) throw new InvalidKeyError(`an identity private key is ${IDENTITY_KEY_BYTES} bytes`);
  const secret = sodium.sodium_malloc(IDENTITY_KEY_BYTES);
  secret.set(secretKey);
  const publicKey = Buffer.alloc(IDENTITY_KEY_BYTES);
  sodium.crypto_scalarmult_base(publicKey, secret);
  return { publicKey, secretKey: secret };
}

/** A fresh identity. */
export function generateIdentity(): Identity {
  const secret = sodium.sodium_malloc(IDENTITY_KEY_BYTES);
  sodium.randombytes_buf(secret);
  const identity = identityFromSecret(secret);
  sodium.sodium_memzero(secret);
  return identity;
}

/** Thrown for an identity file that exists but does not hold a key, or cannot be written. */
export class IdentityFileError extends Error {
  readonly code = 'ERR_IDENTITY_FILE';
  constructor(message: string) {
    super(message);
    this.name = 'IdentityFileError';
  }
}

/**
 * Read the identity in `path`, or make one and write it there (mode 0600, directories created) when the file does
 * not exist. Throws `IdentityFileError` naming the file for anything else.
 */
export function loadOrCreateIdentity(path: string): Identity {
  if (!existsSync(path)) {
    const identity = generateIdentity();
    try {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, `${keyToText(identity.secretKey)}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(path, 0o600);
    } catch (err) {
      throw new IdentityFileError(`cannot write the identity file ${path}: ${(err as Error).message}`);
    }
    return identity;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new IdentityFileError(`cannot read the identity file ${path}: ${(err as Error).message}`);
  }
  const secret = keyFromText(text.trim());
  if (secret === null) {
    throw new IdentityFileError(`the identity file ${path} does not hold a key (one line of 44 base64 characters); move it away to make a new one`);
  }
  const identity = identityFromSecret(secret);
  sodium.sodium_memzero(secret);
  return identity;
}

/**
 * Parse an authorized-peers file: one base64 public key per line, optionally followed by whitespace and a comment;
 * blank lines and lines starting with `#` are skipped. Returns the keys as text. Throws `IdentityFileError` naming
 * `from` and the line for anything else, or when it lists no key.
 */
export function parseAuthorizedPeers(text: string, from: string): Set<string> {
  const keys = new Set<string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '' || line.startsWith('#')) continue;
    const word = line.split(/\s+/)[0]!;
    const key = keyFromText(word);
    if (key === null) {
      throw new IdentityFileError(`${from} line ${i + 1}: ${JSON.stringify(word.slice(0, 60))} is not a public key (44 base64 characters, as \`weft identity\` prints)`);
    }
    keys.add(keyToText(key));
  }
  if (keys.size === 0) throw new IdentityFileError(`${from} lists no public key: it would refuse every peer`);
  return keys;
}

/** The hello feature for `publicKey`. */
export function identityFeature(publicKey: Uint8Array): string {
  return `${IDENTITY_FEATURE_PREFIX}${keyToText(publicKey)}`;
}

/**
 * The identity public key in a hello's features: the key, null when there is none, or undefined when there is one
 * that is not a key (or more than one): the caller refuses such a hello.
 */
export function identityOf(features: readonly string[] | undefined): Buffer | null | undefined {
  let found: Buffer | null = null;
  for (const f of features ?? []) {
    if (!f.startsWith(IDENTITY_FEATURE_PREFIX)) continue;
    const key = keyFromText(f.slice(IDENTITY_FEATURE_PREFIX.length));
    if (key === null || found !== null) return undefined;
    found = key;
  }
  return found;
}
