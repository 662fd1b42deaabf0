/**
 * The seam between a control connection (gossip/) and its cryptography (crypto/).
 *
 * Protocol (see docs/security.md once written): each side puts `begin().publicKey` (a fresh X25519 key) and whether it
 * has a password in its hello. With both hellos in hand, each side calls `derive()`; the initiator sends its
 * `confirmation` first, the responder sends its own only after the initiator's verified (docs/control-protocol.md),
 * and neither accepts anything else until the remote confirmation verifies. After that every control message is `seal`ed/`open`ed, and
 * rekey messages (a new ephemeral exchange for the data keys) travel on the control connection.
 *
 * A router without a password uses no ConnectionSecurity at all; a mismatch in `hasPassword` between two routers is
 * refused by the handshake before `derive()`.
 */
import type { DataSession } from './data-session.js';

export interface ConnectionSecurity {
  /** True when this router has a password. */
  readonly hasPassword: boolean;
  /** Begin securing one connection attempt with a fresh ephemeral key pair. */
  begin(): SecurityHandshake;
}

export interface DeriveParams {
  /** True on the side that dialled. Decides which direction key is "ours". */
  isInitiator: boolean;
  localName: string;
  remoteName: string;
  remotePublicKey: Uint8Array;
  /** The protocol version both sides agreed on (bound into the transcript). */
  protocolVersion: number;
  /** The features of the remote's hello: which data ciphers it offers. @default none (ChaCha20-Poly1305 only) */
  remoteFeatures?: readonly string[];
}

export interface SecurityHandshake {
  /** Our ephemeral public key (32 bytes), sent in the hello. */
  readonly publicKey: Uint8Array;
  /** Hello features to add to ours: the data ciphers we offer beyond ChaCha20-Poly1305. */
  readonly features: readonly string[];
  /**
   * Derive the session from the remote's hello. Throws (a typed error with a `code`) if the remote key is invalid
   * (wrong length, low-order point). The ephemeral private key is wiped afterwards.
   */
  derive(params: DeriveParams): SecureSession;
  /** Wipe the private key without deriving (the connection failed first). Idempotent. */
  destroy(): void;
}

export interface SecureSession {
  /**
   * Key confirmation: proves we hold the same keys (i.e. the same password). The initiator sends it right after
   * derive; the responder only after `verifyConfirmation` returned true (an implementation may throw before).
   */
  readonly confirmation: Uint8Array;
  /** Check the remote's confirmation. False means a wrong password or a tampered handshake. */
  verifyConfirmation(remote: Uint8Array): boolean;
  /** Seal one control message (after confirmation). Nonces come from a per-direction counter. */
  seal(message: Uint8Array): Uint8Array;
  /** Open one control message; null if forged, replayed or out of order (the caller closes the connection). */
  open(sealed: Uint8Array): Uint8Array | null;
  /** The data-plane session for this pair of peers. Rekeying changes its keys in place. */
  readonly data: DataSession;
  /** The data cipher both hellos agreed on, e.g. 'AEGIS-256X2' (for `weft status connections`). */
  readonly dataCipherName: string;
  /**
   * Rekeying: the session calls `send` with messages for the remote's `onRekeyMessage` (sealed and carried by the
   * control connection). Timers for the rekey policy start here.
   */
  startRekeying(send: (message: Uint8Array) => void): void;
  onRekeyMessage(message: Uint8Array): void;
  /** For `weft report`. */
  stats(): { ageSeconds: number; rekeyCount: number };
  /** Wipe keys and stop timers. Idempotent. */
  destroy(): void;
}
