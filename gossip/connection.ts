/**
 * One control connection to a peer, from the first byte to close: hello exchange, optional key confirmation,
 * framed (and, with a password, sealed) messages, heartbeats, and rekey messages for the data-plane session.
 *
 * Sequence (I: the side that dialled, R: the side that accepted):
 *
 *     I: send hello ──────────────►        ◄────────────── R: send hello          (both at once, no secret in them)
 *     checkHello (version, self, name collision, password on one side only) + mesh check (duplicate of a confirmed one)
 *     with passwords:
 *       I: derive(), send proof ──────────►  R: derive(); verify I's proof (false: close "password mismatch", R's
 *                                               proof never sent)
 *       I: verify R's proof  ◄────────────── R: mesh claims the connection, send proof, ready
 *       I: mesh claims the connection, ready
 *     without: mesh claims the connection, ready
 *     ready: typed frames, sealed when a session exists; heartbeats every heartbeatMs
 *
 * The responder proves the password only to a dialler that proved it first, so connecting to a router yields
 * nothing to guess the password against offline (docs/security.md says what still does). Older routers send their
 * proof right after the hello on both sides; they still interoperate (an older responder is an oracle, a newer one
 * is not). Until the handshake is done the transport refuses messages over `MAX_HANDSHAKE_MESSAGE_BYTES`.
 *
 * Frame after the handshake (the plaintext when sealed):
 *
 *     0      1   type (FrameType)
 *     1      …   body (per type; gossip bodies are decoded in gossip.ts)
 *
 * Network input is untrusted: a hello, confirmation or frame that does not decode closes this connection with a
 * reason, logged once and counted; nothing thrown here escapes to the transport or the event loop.
 */
import { IDENTITY_FEATURE_PREFIX } from '../crypto/identity.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { StallWatch } from '../runtime/stall-watch.js';
import type { ConnectionSecurity, SecureSession, SecurityHandshake } from '../crypto/connection-security.js';
import type { TransportConnection } from './transport.js';
import { DecodeError } from './decode-error.js';
import {
  checkHello,
  decodeHello,
  describePeer,
  encodeHello,
  HandshakeError,
  MAX_HANDSHAKE_MESSAGE_BYTES,
  PasswordMismatchError,
  type Hello,
} from './handshake.js';

/** The first byte of every frame after the handshake. */
export const FrameType = {
  Heartbeat: 1,
  /** Neighbour gossip for a channel (gossip.ts). */
  Gossip: 2,
  /** A broadcast travelling along the broadcast routes of its source. */
  Broadcast: 3,
  /** A unicast travelling along unicast routes. */
  Unicast: 4,
  /** Data-plane rekeying (crypto/ owns the content). */
  Rekey: 5,
} as const;

export type ConnectionPhase = 'handshaking' | 'confirming' | 'ready' | 'closed';

export interface PeerConnectionDeps {
  clock: Clock;
  /** Already bound to the mesh; the connection adds `conn` and `addr`, then `peer` and `nickname`. */
  log: Logger;
  /** Present when this router has a password. */
  security?: ConnectionSecurity;
  /** Count an event under a reason name (decode failures, auth failures, timeouts). */
  count: (reason: string) => void;
  /**
   * Our own event-loop stalls, shared by the mesh's connections: silence that was our stall extends the heartbeat
   * and handshake deadlines, and no connection is closed for silence right after a stall (its frames may be unread).
   * @default none (fixed deadlines)
   */
  stalls?: StallWatch;
}

export interface PeerConnectionOptions {
  /** Our hello, without the public key (filled in here from `security`). */
  local: Hello;
  /** Small number naming this connection in logs. */
  connId: number;
  /** @default 1000 */
  heartbeatMs?: number;
  /** Close after this long without any message, and bound the handshake by it too. @default 5000 */
  heartbeatTimeoutMs?: number;
}

export interface PeerConnectionEvents {
  /**
   * After the built-in hello checks, before anything is proven: throw a `HandshakeError` to refuse. Must not touch
   * other connections (the remote is not authenticated yet); the mesh refuses only what `onConfirmed` would refuse.
   */
  onHello(conn: PeerConnection): void;
  /**
   * The remote proved the password (without one: its hello was accepted), just before this side proves it (as
   * responder) and becomes ready. Throw a `HandshakeError` to refuse; the mesh resolves duplicates here, and only
   * here may a connection replace another.
   */
  onConfirmed(conn: PeerConnection): void;
  /** The handshake is complete: frames may flow. */
  onReady(conn: PeerConnection): void;
  /** The first message after ready arrived (the remote is done with the handshake too). @default nothing */
  onHeard?(conn: PeerConnection): void;
  /**
   * The remote is shown alive outside this connection (its data path answers both ways) and takes quiet heartbeats
   * (its hello lists `QUIET_HEARTBEATS_FEATURE`): heartbeats then go out every `QUIET_HEARTBEAT_MS` and silence is
   * tolerated up to `QUIET_TIMEOUT_MS`. Asked at every tick. @default never
   */
  isPeerAlive?(conn: PeerConnection): boolean;
  /** A frame other than heartbeat and rekey. May throw `DecodeError`: the connection is then closed. */
  onFrame(conn: PeerConnection, type: number, body: Uint8Array): void;
  /** Called once. `err` is the typed error when the handshake was refused (ours or, by reason, theirs). */
  onClose(conn: PeerConnection, reason: string, err: Error | null): void;
}

/** Hello feature of routers that take quiet heartbeats (see `PeerConnectionEvents.isPeerAlive`). */
export const QUIET_HEARTBEATS_FEATURE = 'quiet-heartbeats';
/**
 * While the remote is shown alive by the data path, a heartbeat (or any frame) goes out at least this often: its
 * only job then is to find a control connection that died on its own (a middlebox dropping an idle TCP flow), and
 * an idle router's cost is what it does per neighbour per second.
 */
export const QUIET_HEARTBEAT_MS = 10_000;
/** Silence tolerated while the remote is shown alive elsewhere: three quiet heartbeats. */
export const QUIET_TIMEOUT_MS = 30_000;

export class PeerConnection {
  phase: ConnectionPhase = 'handshaking';
  /** The remote hello, once received and accepted. */
  remote: Hello | null = null;
  /** The agreed protocol version. */
  version = 0;
  /** The crypto session (passwords on both sides), after confirmation. */
  session: SecureSession | null = null;
  /** Clock time the handshake completed. */
  readyAt = 0;
  /** A message came after the handshake completed here (so the remote completed it too). */
  isHeardSinceReady = false;
  log: Logger;

  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly local: Hello;
  private handshake: SecurityHandshake | null = null;
  private pendingSession: SecureSession | null = null;
  private timer: Timer | null = null;
  private lastReceivedAt: number;
  /** When we last sent a frame after ready, and the last tick at which heartbeats were quiet (-Infinity: never). */
  private lastSentAt = -Infinity;
  private lastQuietAt = -Infinity;
  /** When the next heartbeat tick is due (its lateness is a stall of ours). */
  private tickDueMs = 0;

  /** Milliseconds since anything arrived on this connection (heartbeats arrive every `heartbeatMs`). */
  get silentMs(): number {
    return this.deps.clock.now() - this.lastReceivedAt;
  }
  private closeReason: string | null = null;

  constructor(
    private readonly deps: PeerConnectionDeps,
    readonly transport: TransportConnection,
    options: PeerConnectionOptions,
    private readonly events: PeerConnectionEvents,
  ) {
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 5000;
    this.log = deps.log.child({ conn: options.connId, addr: transport.remoteAddr });
    const usesPassword = deps.security?.hasPassword === true;
    if (usesPassword) this.handshake = deps.security!.begin();
    this.local = {
      ...options.local,
      hasPassword: usesPassword,
      publicKey: this.handshake?.publicKey ?? new Uint8Array(0),
      features: [...options.local.features, ...(this.handshake?.features ?? [])],
    };
    this.lastReceivedAt = deps.clock.now();
  }

  get remoteAddr(): string {
    return this.transport.remoteAddr;
  }
  get remoteHost(): string {
    return this.transport.remoteHost;
  }
  get isOutbound(): boolean {
    return this.transport.isOutbound;
  }
  get isClosed(): boolean {
    return this.phase === 'closed';
  }

  /** Send our hello and start listening. Call once, synchronously after the transport connection appeared. */
  start(): void {
    // Hello first: registering the handler may deliver the remote hello at once, and from then on we may send
    // frames, which must not overtake our hello.
    this.transport.send(encodeHello(this.local));
    this.transport.setMaxMessageBytes(MAX_HANDSHAKE_MESSAGE_BYTES);
    // The handshake is bounded like silence later on: a peer that says nothing is gone. Armed before the handler
    // is registered: a hello delivered at once completes the handshake, and its heartbeat timer replaces this one.
    this.armHandshakeTimeout(this.deps.clock.now(), this.heartbeatTimeoutMs);
    this.transport.onMessage((m) => this.receive(m));
    this.transport.onClose((reason) => {
      if (reason === 'message too big' && (this.phase === 'handshaking' || this.phase === 'confirming')) {
        this.deps.count('handshake_message_too_big');
        this.log.warn(
          { reason: `a message over ${MAX_HANDSHAKE_MESSAGE_BYTES} bytes before the handshake was done` },
          'closing connection: bad message',
        );
      }
      const refusal = this.remoteRefusal(reason);
      // Only the refusing side checks an identity, and only the responder checks the first proof: say it here too,
      // or this router's log would not tell why.
      if (refusal instanceof HandshakeError && this.phase !== 'closed') {
        if (refusal.code === 'ERR_UNAUTHORIZED_PEER') this.log.error({ reason, code: refusal.code }, refusal.message);
        if (refusal.code === 'ERR_PASSWORD_MISMATCH') {
          this.deps.count('password_mismatch');
          this.log.error({ reason, code: refusal.code }, refusal.message);
        }
      }
      this.finish(reason, refusal);
    });
  }

  /** Send one frame (first byte a FrameType). Dropped before ready and after close. */
  send(frame: Uint8Array): void {
    if (this.phase !== 'ready') return;
    this.lastSentAt = this.deps.clock.now();
    this.transport.send(this.session ? this.session.seal(frame) : frame);
  }

  /** Close with a reason (sent to the peer where the transport can). Idempotent. */
  close(reason: string, err: Error | null = null): void {
    if (this.phase === 'closed') return;
    // Finish first: the transport may report its own close synchronously, and that report has no typed error.
    this.finish(reason, err);
    this.transport.close(reason);
  }

  private receive(message: Uint8Array): void {
    if (this.phase === 'closed') return;
    this.lastReceivedAt = this.deps.clock.now();
    if (this.phase !== 'ready' && message.length > MAX_HANDSHAKE_MESSAGE_BYTES) {
      // The transport refuses these before buffering them; this holds for one that cannot.
      this.deps.count('handshake_message_too_big');
      this.log.warn({ reason: `a ${message.length}-byte message before the handshake was done` }, 'closing connection: bad message');
      this.close('message too big');
      return;
    }
    try {
      switch (this.phase) {
        case 'handshaking':
          return this.receiveHello(message);
        case 'confirming':
          return this.receiveConfirmation(message);
        case 'ready':
          return this.receiveFrame(message);
      }
    } catch (err) {
      this.refuse(err);
    }
  }

  private receiveHello(message: Uint8Array): void {
    const remote = decodeHello(message);
    this.log = this.log.child({ peer: remote.name, nickname: remote.nickname });
    this.version = checkHello(this.local, remote, this.remoteAddr);
    this.remote = remote;
    this.events.onHello(this);
    if (this.phase === 'closed') return;
    if (!this.handshake) return this.confirmed();
    try {
      this.pendingSession = this.handshake.derive({
        isInitiator: this.isOutbound,
        localName: this.local.name,
        remoteName: remote.name,
        remotePublicKey: remote.publicKey,
        protocolVersion: this.version,
        remoteFeatures: remote.features,
      });
    } catch (err) {
      // The remote's keys or identity are refused (crypto/errors.ts): say so with its name and address.
      const code = (err as { code?: unknown }).code;
      if (code === 'ERR_UNAUTHORIZED_PEER' || code === 'ERR_INVALID_KEY') {
        throw new HandshakeError(code, `peer ${describePeer(remote, this.remoteAddr)} refused: ${(err as Error).message}`);
      }
      throw err;
    }
    this.handshake = null;
    this.phase = 'confirming';
    // Only the dialler proves first; the responder waits for that proof (receiveConfirmation), so a stranger who
    // connects gets no tag to test password guesses against.
    if (this.isOutbound) this.transport.send(this.pendingSession.confirmation);
  }

  private receiveConfirmation(message: Uint8Array): void {
    const session = this.pendingSession!;
    if (!session.verifyConfirmation(message)) {
      this.deps.count('password_mismatch');
      // With identities on both sides a key shown without its private key fails the same check.
      const identities = hasIdentity(this.local.features) && hasIdentity(this.remote!.features);
      const err = new PasswordMismatchError(
        `peer ${describePeer(this.remote!, this.remoteAddr)} refused: password mismatch; every router needs the same --password` +
          (identities ? ' (or its identity key does not belong to its identity file: regenerated, or copied by hand?)' : ''),
      );
      this.log.error({ reason: 'password mismatch' }, err.message);
      this.close('password mismatch', err);
      return;
    }
    this.pendingSession = null;
    this.session = session;
    this.confirmed();
    if (this.phase === 'ready') session.startRekeying((m) => this.send(withType(FrameType.Rekey, m)));
  }

  /** The remote is authenticated (or needs not be): let the mesh claim it, prove ours as responder, be ready. */
  private confirmed(): void {
    this.events.onConfirmed(this);
    if (this.phase === 'closed') return;
    if (this.session && !this.isOutbound) this.transport.send(this.session.confirmation);
    this.becomeReady();
  }

  private receiveFrame(sealed: Uint8Array): void {
    if (!this.isHeardSinceReady) {
      this.isHeardSinceReady = true;
      this.events.onHeard?.(this);
    }
    let frame = sealed;
    if (this.session) {
      const opened = this.session.open(sealed);
      if (opened === null) {
        this.deps.count('auth_failed');
        this.log.warn({ reason: 'message failed authentication' }, 'closing connection');
        this.close('message failed authentication');
        return;
      }
      frame = opened;
    }
    if (frame.length < 1) throw new DecodeError('empty frame');
    const type = frame[0]!;
    const body = frame.subarray(1);
    switch (type) {
      case FrameType.Heartbeat:
        return;
      case FrameType.Rekey:
        if (!this.session) throw new DecodeError('rekey message on a connection without encryption');
        this.session.onRekeyMessage(body);
        return;
      case FrameType.Gossip:
      case FrameType.Broadcast:
      case FrameType.Unicast:
        this.events.onFrame(this, type, body);
        return;
      default:
        throw new DecodeError(`unknown frame type ${type}`);
    }
  }

  private becomeReady(): void {
    this.phase = 'ready';
    this.transport.setMaxMessageBytes(Infinity);
    this.readyAt = this.deps.clock.now();
    this.timer?.cancel();
    this.tickDueMs = this.readyAt + this.heartbeatMs;
    this.timer = this.deps.clock.setInterval(() => this.tick(), this.heartbeatMs);
    this.log.info('connection ready');
    this.events.onReady(this);
  }

  /**
   * Close the handshake after `heartbeatTimeoutMs`, extended by our own stalls since it began (at most to three
   * times the timeout: an Argon2id derivation on a loaded machine is slow, but a handshake does not last forever).
   */
  private armHandshakeTimeout(startedMs: number, delayMs: number): void {
    const dueMs = this.deps.clock.now() + delayMs;
    this.timer = this.deps.clock.setTimeout(() => {
      const now = this.deps.clock.now();
      const stalls = this.deps.stalls;
      stalls?.fired(now, dueMs);
      const deadlineMs = Math.min(
        startedMs + 3 * this.heartbeatTimeoutMs,
        startedMs + this.heartbeatTimeoutMs + (stalls?.stalledSince(startedMs) ?? 0),
      );
      if (now < deadlineMs || (stalls?.isInGrace(now) === true && now < startedMs + 3 * this.heartbeatTimeoutMs)) {
        this.deps.count('handshake_timeout_extended');
        this.armHandshakeTimeout(startedMs, Math.max(100, deadlineMs - now));
        return;
      }
      this.deps.count('handshake_timeout');
      this.close(
        `handshake timeout: no ${this.phase === 'confirming' ? 'key confirmation' : 'hello'} within ${Math.round(now - startedMs)}ms`,
      );
    }, delayMs);
  }

  private tick(): void {
    const now = this.deps.clock.now();
    const stalls = this.deps.stalls;
    stalls?.fired(now, this.tickDueMs);
    this.tickDueMs = now + this.heartbeatMs;
    const isQuiet = this.events.isPeerAlive?.(this) === true;
    if (isQuiet) this.lastQuietAt = now;
    const silentMs = now - this.lastReceivedAt;
    // Once heartbeats are loud again, the remote may still be quiet for up to one quiet period (its view of the data
    // path lags ours): silence counts from no earlier than that.
    const since = isQuiet
      ? this.lastReceivedAt
      : Math.max(this.lastReceivedAt, this.lastQuietAt + QUIET_HEARTBEAT_MS - this.heartbeatTimeoutMs);
    // Silence while our own loop stalled is not the peer's: the deadline moves by it.
    const ownMs = stalls?.stalledSince(since) ?? 0;
    if (now - since - ownMs >= (isQuiet ? QUIET_TIMEOUT_MS : this.heartbeatTimeoutMs)) {
      if (stalls?.isInGrace(now) === true) {
        // Right after a stall of ours its frames may be waiting unread: look again next tick.
        this.deps.count('heartbeat_timeout_deferred');
      } else {
        this.deps.count('heartbeat_timeout');
        const own = ownMs > 0 ? ` (${Math.round(ownMs)}ms of it our own stall)` : '';
        this.close(`heartbeat timeout: nothing received for ${Math.round(silentMs)}ms${own}`);
        return;
      }
    }
    if (!isQuiet || now - this.lastSentAt >= QUIET_HEARTBEAT_MS - this.heartbeatMs / 2) this.send(HEARTBEAT);
  }

  /** Close after a failure while handling input: typed refusals and decode errors are expected, anything else a bug. */
  private refuse(err: unknown): void {
    if (this.phase === 'closed') return;
    if (err instanceof DecodeError) {
      this.deps.count('decode_error');
      this.log.warn({ reason: err.message }, 'closing connection: bad message');
      this.close(`bad message: ${err.message}`, err);
    } else if (err instanceof HandshakeError) {
      this.deps.count(err.code === 'ERR_DUPLICATE_CONNECTION' ? 'duplicate_connection' : 'handshake_refused');
      // A duplicate or a dial to ourselves is routine; a name collision is the mesh's to report (once per name, by
      // the mesh) and repeats with every retry of the connection maker; anything else is a setup error.
      const level =
        err.code === 'ERR_DUPLICATE_CONNECTION' || err.code === 'ERR_CONNECT_TO_SELF'
          ? 'info'
          : err.code === 'ERR_PEER_NAME_COLLISION'
            ? 'warn'
            : 'error';
      this.log[level]({ reason: err.message, code: err.code }, 'handshake refused');
      this.close(closeReasonOf(err), err);
    } else if (isCryptoRefusal(err)) {
      // crypto/ refuses a message it cannot use (a malformed rekey: crypto/rekey-message.ts): the peer's input is
      // bad, not our code. Found by the fuzzer (test/fuzz-findings.test.ts).
      this.deps.count('decode_error');
      this.log.warn({ reason: err.message, code: err.code }, 'closing connection: bad message');
      this.close(`bad message: ${err.message}`, err);
    } else {
      this.deps.count('internal_error');
      this.log.error({ err }, 'closing connection: internal error');
      this.close('internal error', err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** A refusal the remote told us about in its close reason, typed for the connection maker and the report. */
  private remoteRefusal(reason: string): Error | null {
    if (reason === 'password mismatch' && this.remote) {
      return new PasswordMismatchError(
        `peer ${describePeer(this.remote, this.remoteAddr)} refused: password mismatch; every router needs the same --password`,
      );
    }
    if (reason.startsWith('duplicate connection')) return new HandshakeError('ERR_DUPLICATE_CONNECTION', reason);
    if (reason === 'unauthorized peer' && this.remote) {
      return new HandshakeError(
        'ERR_UNAUTHORIZED_PEER',
        `peer ${describePeer(this.remote, this.remoteAddr)} refused us: our identity is not in its --authorized-peers (\`weft identity\` prints it)`,
      );
    }
    return null;
  }

  private finish(reason: string, err: Error | null): void {
    if (this.phase === 'closed') return;
    const wasReady = this.phase === 'ready';
    this.phase = 'closed';
    this.closeReason = reason;
    this.timer?.cancel();
    this.timer = null;
    this.handshake?.destroy();
    this.pendingSession?.destroy();
    this.session?.destroy();
    if (wasReady) this.log.info({ reason }, 'connection closed');
    else this.log.debug({ reason }, 'connection closed during handshake');
    this.events.onClose(this, reason, err);
  }

  /** Why the connection closed, once closed. */
  get reason(): string | null {
    return this.closeReason;
  }
}

const HEARTBEAT = Uint8Array.of(FrameType.Heartbeat);

/** `type` followed by `body`, in a new buffer. */
export function withType(type: number, body: Uint8Array): Uint8Array {
  const b = new Uint8Array(1 + body.length);
  b[0] = type;
  b.set(body, 1);
  return b;
}

/** Short close reasons the other side can match ("duplicate connection", "password mismatch"). */
function closeReasonOf(err: HandshakeError): string {
  switch (err.code) {
    case 'ERR_DUPLICATE_CONNECTION':
      return 'duplicate connection';
    case 'ERR_PASSWORD_MISMATCH':
      return 'password mismatch: one side has no --password';
    case 'ERR_CONNECT_TO_SELF':
      return 'connected to self';
    case 'ERR_PEER_NAME_COLLISION':
      return 'peer name collision';
    case 'ERR_INCOMPATIBLE_VERSION':
      return 'incompatible protocol version';
    case 'ERR_UNAUTHORIZED_PEER':
      return 'unauthorized peer';
    case 'ERR_INVALID_KEY':
      return 'invalid key';
    default:
      return err.message;
  }
}

/** Whether a hello's features show an identity key (crypto/identity.ts). */
function hasIdentity(features: readonly string[]): boolean {
  return features.some((f) => f.startsWith(IDENTITY_FEATURE_PREFIX));
}

/** crypto/errors.ts's refusals of input, recognised by their stable code as the handshake's refusals are above. */
function isCryptoRefusal(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && (code === 'ERR_HANDSHAKE' || code === 'ERR_INVALID_KEY');
}
