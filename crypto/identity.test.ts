import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sodium from 'sodium-native';
import {
  IdentityFileError,
  generateIdentity,
  identityFeature,
  identityFromSecret,
  identityOf,
  keyFromText,
  keyToText,
  loadOrCreateIdentity,
  parseAuthorizedPeers,
} from './identity.js';

describe('identity keys', () => {
  it('turn into 44 base64 characters and back; anything else is not a key', () => {
    const id = generateIdentity();
    const text = keyToText(id.publicKey);
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(keyFromText(text)!.equals(id.publicKey)).toBe(true);
    for (const bad of ['', text.slice(1), `${text}A`, text.replace(/.$/, 'A'), '!'.repeat(44)]) expect(keyFromText(bad)).toBeNull();
  });

  it('derive the public key from the private one (X25519 base point)', () => {
    const secret = Buffer.alloc(32, 0x42);
    const expected = Buffer.alloc(32);
    sodium.crypto_scalarmult_base(expected, secret);
    expect(identityFromSecret(secret).publicKey.equals(expected)).toBe(true);
  });

  it('are made once in the identity file (mode 0600) and read back the same', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-identity-'));
    try {
      const file = join(dir, 'sub', 'identity');
      const a = loadOrCreateIdentity(file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8')).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
      const b = loadOrCreateIdentity(file);
      expect(b.publicKey.equals(a.publicKey)).toBe(true);
      writeFileSync(file, 'not a key\n');
      expect(() => loadOrCreateIdentity(file)).toThrow(IdentityFileError);
      expect(() => loadOrCreateIdentity(file)).toThrow(/does not hold a key .* move it away/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('identity file safety', () => {
  it('refuses a key file that group or others can read, naming the file and the chmod that fixes it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-identity-'));
    try {
      const file = join(dir, 'identity');
      const made = loadOrCreateIdentity(file);
      for (const mode of [0o644, 0o640, 0o604]) {
        chmodSync(file, mode);
        expect(() => loadOrCreateIdentity(file)).toThrow(IdentityFileError);
        expect(() => loadOrCreateIdentity(file)).toThrow(`${file} can be read by other users (mode 0${mode.toString(8)})`);
        expect(() => loadOrCreateIdentity(file)).toThrow(`chmod 600 ${file}`);
      }
      chmodSync(file, 0o600);
      expect(loadOrCreateIdentity(file).publicKey.equals(made.publicKey)).toBe(true);
      chmodSync(file, 0o400);
      expect(loadOrCreateIdentity(file).publicKey.equals(made.publicKey)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('writes a new key whole through a temp file that it removes, in a directory made 0700', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-identity-'));
    try {
      const file = join(dir, 'state', 'identity');
      loadOrCreateIdentity(file);
      expect(statSync(join(dir, 'state')).mode & 0o777).toBe(0o700);
      expect(readdirSync(join(dir, 'state'))).toEqual(['identity']);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(statSync(file).nlink).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('authorized peers file', () => {
  const k1 = keyToText(generateIdentity().publicKey);
  const k2 = keyToText(generateIdentity().publicKey);

  it('takes one key per line with an optional name after it, skipping comments and blank lines', () => {
    const keys = parseAuthorizedPeers(`# our routers\n${k1} h1\n\n  ${k2}\th2 in rack 4\n${k1}\n`, 'peers.txt');
    expect([...keys].sort()).toEqual([k1, k2].sort());
  });

  it('names the file and line of anything that is not a key, and refuses a list with no key', () => {
    expect(() => parseAuthorizedPeers(`${k1}\nh2 ${k2}\n`, '--authorized-peers p.txt')).toThrow(
      /--authorized-peers p.txt line 2: "h2" is not a public key/,
    );
    expect(() => parseAuthorizedPeers('# nobody\n', 'p.txt')).toThrow(/lists no public key/);
  });
});

describe('identity in the hello', () => {
  const key = generateIdentity().publicKey;

  it('is one feature; none is null; a malformed one or two are undefined (refused)', () => {
    expect(identityOf([identityFeature(key)])!.equals(key)).toBe(true);
    expect(identityOf(['aead-aegis256x2', identityFeature(key)])!.equals(key)).toBe(true);
    expect(identityOf([])).toBeNull();
    expect(identityOf(undefined)).toBeNull();
    expect(identityOf(['id=short'])).toBeUndefined();
    expect(identityOf([identityFeature(key), identityFeature(key)])).toBeUndefined();
    expect(identityFeature(key).length).toBeLessThanOrEqual(64); // a hello feature is at most 64 characters
  });
});
