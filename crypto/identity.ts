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
import { closeSync, fstatSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import sodium from 'sodium-native';
import { InvalidKeyError } from './errors.js';
import { IDENTITY_KEY_BYTES, IdentityFileError, keyFromText, keyToText } from './key-text.js';

export { IDENTITY_KEY_BYTES, IdentityFileError, keyFromText, keyToText, parseAuthorizedPeers } from './key-text.js';

/** Hello feature carrying the router's identity public key: `id=` and the key in base64 (47 characters). */
export const IDENTITY_FEATURE_PREFIX = 'id=';

export interface Identity {
  /** 32 bytes. */
  readonly publicKey: Buffer;
  /** 32 bytes in guarded memory; never logged or sent. */
  readonly secretKey: Buffer;
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

/**
 * Read the identity in `path`, or make one and write it there (mode 0600, directories created 0700) when the file
 * does not exist. Throws `IdentityFileError` naming the file for anything else, and for a key file that group or
 * others may read (with the `chmod 600` that fixes it): a private key anyone can read is no identity.
 *
 * The file is written atomically: a temp file beside it (0600, written, fsynced), then hard-linked to `path`, which
 * fails if `path` appeared meanwhile (then that one is read instead), and the directory fsynced. So a crash leaves
 * no file or a whole one, and two processes making the identity at once (`weft identity` and the daemon) end up
 * with the same key.
 */
export function loadOrCreateIdentity(path: string): Identity {
  const made = createIdentityFile(path);
  if (made !== undefined) return made;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new IdentityFileError(`cannot read the identity file ${path}: ${(err as Error).message}`);
  }
  let text: string;
  try {
    const mode = fstatSync(fd).mode;
    if ((mode & 0o077) !== 0) {
      throw new IdentityFileError(
        `the identity file ${path} can be read by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): its private key must stay private; restrict it with: chmod 600 ${path}`,
      );
    }
    text = readFileSync(fd, 'utf8');
  } catch (err) {
    if (err instanceof IdentityFileError) throw err;
    throw new IdentityFileError(`cannot read the identity file ${path}: ${(err as Error).message}`);
  } finally {
    closeSync(fd);
  }
  const secret = keyFromText(text.trim());
  if (secret === null) {
    throw new IdentityFileError(
      `the identity file ${path} does not hold a key (one line of 44 base64 characters); move it away to make a new one`,
    );
  }
  const identity = identityFromSecret(secret);
  sodium.sodium_memzero(secret);
  return identity;
}

/** Make a new identity in `path` if there is none; undefined when the file exists (read it then). */
function createIdentityFile(path: string): Identity | undefined {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  let identity: Identity | undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    try {
      // Cheap check first: most launches find the file there.
      closeSync(openSync(path, 'r'));
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    identity = generateIdentity();
    const text = Buffer.from(`${keyToText(identity.secretKey)}\n`);
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
      sodium.sodium_memzero(text);
    }
    try {
      linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // Someone else made it first: theirs is the identity.
      sodium.sodium_memzero(identity.secretKey);
      return undefined;
    }
    syncDir(dir);
    return identity;
  } catch (err) {
    throw new IdentityFileError(`cannot write the identity file ${path}: ${(err as Error).message}`);
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** fsync a directory, so a new link in it survives a crash. */
function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
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

/**
 * The identity public key in `file` as text (`weft identity`), making the identity first when the file does not
 * exist. Throws `IdentityFileError` naming the file otherwise. (`weft identity`
 * loads this module lazily: the CLI process loads sodium for that command only.)
 */
export function identityPublicKeyText(file: string): string {
  const identity = loadOrCreateIdentity(file);
  sodium.sodium_memzero(identity.secretKey);
  return keyToText(identity.publicKey);
}
