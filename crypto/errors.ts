/**
 * The expected failures of weft's cryptography, one class per kind, each with a stable `code` that the API and CLI
 * match on. Messages say what happened and what to do; they never contain key material.
 */
import { WeftError } from '../runtime/errors.js';

/** The handshake or the rekey exchange went wrong: a message out of turn, malformed, or a call in the wrong state. */
export class HandshakeError extends WeftError {
  readonly code = 'ERR_HANDSHAKE';
}

/** A public key from the remote is unusable: wrong length, or a low-order point (the shared secret would be zero). */
export class InvalidKeyError extends WeftError {
  readonly code = 'ERR_INVALID_KEY';
}

/** The configured password cannot be used (empty). */
export class InvalidPasswordError extends WeftError {
  readonly code = 'ERR_INVALID_PASSWORD';
}

/**
 * The remote's identity is not one this router accepts (`--authorized-peers`), or its hello shows none or a
 * malformed one. The connection is refused before any key is derived.
 */
export class UnauthorizedPeerError extends WeftError {
  readonly code = 'ERR_UNAUTHORIZED_PEER';
}
