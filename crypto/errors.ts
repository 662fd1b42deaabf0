/**
 * The expected failures of weft's cryptography, one class per kind, each with a stable `code` that the API and CLI
 * match on. Messages say what happened and what to do; they never contain key material.
 */

/**
 * The remote proved it derived different keys: its key confirmation did not verify. Almost always a different
 * `--password` (a tampered handshake looks the same). Thrown by the connection layer after
 * `SecureSession.verifyConfirmation` returns false; crypto/ only exports it so every folder uses one class.
 */
export class PasswordMismatchError extends Error {
  readonly code = 'ERR_PASSWORD_MISMATCH';
  /** @param peer how the user knows the peer, e.g. "h3 (10.0.0.3:6783)" */
  constructor(readonly peer: string) {
    super(`peer ${peer} refused: password mismatch; every router needs the same --password`);
    this.name = 'PasswordMismatchError';
  }
}

/** The handshake or the rekey exchange went wrong: a message out of turn, malformed, or a call in the wrong state. */
export class HandshakeError extends Error {
  readonly code = 'ERR_HANDSHAKE';
  constructor(message: string) {
    super(message);
    this.name = 'HandshakeError';
  }
}

/** A public key from the remote is unusable: wrong length, or a low-order point (the shared secret would be zero). */
export class InvalidKeyError extends Error {
  readonly code = 'ERR_INVALID_KEY';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidKeyError';
  }
}

/** The configured password cannot be used (empty). */
export class InvalidPasswordError extends Error {
  readonly code = 'ERR_INVALID_PASSWORD';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidPasswordError';
  }
}

/**
 * The remote's identity is not one this router accepts (`--authorized-peers`), or its hello shows none or a
 * malformed one. The connection is refused before any key is derived.
 */
export class UnauthorizedPeerError extends Error {
  readonly code = 'ERR_UNAUTHORIZED_PEER';
  constructor(message: string) {
    super(message);
    this.name = 'UnauthorizedPeerError';
  }
}
