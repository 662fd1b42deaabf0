/**
 * Identity keys as text, without sodium: the form of a key (32 bytes in standard base64, 44 characters, like
 * WireGuard's) and the authorized-peers file (one public key per line, optionally followed by a comment; `#` starts a
 * comment line). The launch configuration reads the file with this; crypto/identity.ts makes and uses the keys.
 */
import { WeftError } from '../runtime/errors.js';

export const IDENTITY_KEY_BYTES = 32;

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

/** Thrown for an identity file that exists but does not hold a key, or cannot be written. */
export class IdentityFileError extends WeftError {
  readonly code = 'ERR_IDENTITY_FILE';
  override readonly status = 500;
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
      throw new IdentityFileError(
        `${from} line ${i + 1}: ${JSON.stringify(word.slice(0, 60))} is not a public key (44 base64 characters, as \`weft identity\` prints)`,
      );
    }
    keys.add(keyToText(key));
  }
  if (keys.size === 0) throw new IdentityFileError(`${from} lists no public key: it would refuse every peer`);
  return keys;
}
