/**
 * ConnectionSecurity for a network with a shared password (docs/security.md describes it for outsiders).
 *
 * Handshake, per connection:
 *   1. each side: `begin()` -> a fresh X25519 key pair; the public key goes in its hello.
 *   2. each side: `derive()` with the remote's hello -> session keys from the shared secret, the stretched password and
 *      the transcript (names, roles, keys, version).
 *   3. the initiator sends its `confirmation`; the responder `verifyConfirmation`s it and only then can read (and
 *      send) its own: reading it earlier throws, so no code path can hand a tag to a party that proved nothing.
 *   4. the initiator verifies the responder's. False means a different password (or tampering). Only after true do
 *      `seal`/`open` work.
 *
 * Rekey, on the established control channel (messages in rekey-message.ts, sealed by the caller):
 *   A (wants new data keys)              B
 *   OFFER(e, pkA)          ------------>  derive epoch-e keys; install receive key (phase e&1) and the idle send key
 *                          <------------  ANSWER(e, pkB)
 *   derive; install receive key; switch send to phase e&1
 *   DONE(e)                ------------>  switch send to phase e&1
 * Each side installs its new receive key before the other side can switch, so no datagram finds its key missing; the
 * old receive key is kept `overlapMs` after the local switch for datagrams still in flight, then wiped.
 * If both sides OFFER the same epoch at once, the connection initiator's offer wins: the initiator ignores the
 * responder's offer, the responder abandons its own and answers. The channel is ordered, so this always resolves.
 */
import sodium from 'sodium-native';
import type { Clock, Timer } from '../runtime/clock.js';
import type { ConnectionSecurity, DeriveParams, SecureSession, SecurityHandshake } from './connection-security.js';
import { AeadDataSession } from './aead-data-session.js';
import { BufferViews } from './buffer-views.js';
import { DATA_CIPHER_NAMES, sodiumDataAead, type DataAead } from './data-aead.js';
import { AEGIS256X2_FEATURE } from './aegis256x2.js';
import { ControlCipher } from './control-cipher.js';
import { HandshakeError, UnauthorizedPeerError } from './errors.js';
import { identityFeature, identityOf, keyToText, type Identity } from './identity.js';
import {
  KEY_BYTES,
  confirmationTag,
  deriveRekeyKeys,
  deriveSessionKeys,
  generateEphemeral,
  identitySecrets,
  sharedSecret,
  stretchPassword,
  transcriptHash,
  wipeKeys,
  type EphemeralKeyPair,
} from './kdf.js';
import { DEFAULT_REPLAY_WINDOW } from './replay-window.js';
import { RekeyType, decodeRekeyMessage, encodeRekeyMessage } from './rekey-message.js';

export interface PasswordSecurityDeps {
  clock: Clock;
}

export interface PasswordSecurityOptions {
  /** The network password; every router of the network needs the same one. Must not be empty. */
  password: Uint8Array | string;
  /** Start a rekey when the data keys are this old. @default 120000 (2 minutes) */
  rekeyIntervalMs?: number;
  /**
   * Start a rekey after this many datagrams sealed with one key. The 64-bit sequence in the nonce does not wear out; this
   * bounds how much traffic one key protects (72 minutes at 10^6 datagrams/s, so the timer usually comes first).
   * @default 2**32
   */
  rekeyAfterMessages?: number;
  /** How long the previous receive key still opens datagrams after a rekey. @default 10000 */
  overlapMs?: number;
  /** How often the rekey policy looks at key age and message count. @default 1000 */
  rekeyCheckMs?: number;
  /** Argon2id passes for the password. @default crypto_pwhash_OPSLIMIT_INTERACTIVE */
  passwordOpsLimit?: number;
  /** Argon2id memory for the password. @default crypto_pwhash_MEMLIMIT_INTERACTIVE (64 MiB) */
  passwordMemLimitBytes?: number;
  /** Replay window per data receive key, in sequence numbers. @default 2^20 */
  replayWindow?: number;
  /**
   * Buffer views for seal/open, shared by every data session made here (they all see the datapath's slots). `null`
   * makes views per datagram instead. @default one `BufferViews` for this instance
   */
  views?: BufferViews | null;
  /** The data plane's ChaCha20-Poly1305 for every data session made here. @default `sodiumDataAead(views)` */
  dataAead?: DataAead;
  /**
   * AEGIS-256X2 (a `DataAead` computing 'aegis-256x2' that passed `checkAegis256x2`): offered in every hello, and
   * used on connections whose remote offers it too. @default none: ChaCha20-Poly1305 only
   */
  aegis256x2?: DataAead;
  /**
   * This router's identity (crypto/identity.ts): shown in every hello and, when the remote has one too, proven by
   * the key schedule. @default none
   */
  identity?: Identity;
  /**
   * Identity public keys (base64) this router accepts; a remote whose hello shows another key, or none, is refused
   * with `UnauthorizedPeerError`. Needs `identity`. @default any router with the password
   */
  authorizedPeers?: ReadonlySet<string>;
}

interface ResolvedOptions {
  rekeyIntervalMs: number;
  rekeyAfterMessages: number;
  overlapMs: number;
  rekeyCheckMs: number;
  replayWindow: number;
  dataAead: DataAead;
  aegis256x2: DataAead | undefined;
  identity: Identity | undefined;
  /** Read by every handshake when it derives, so `setAuthorizedPeers` applies to the next one. */
  authorizedPeers: ReadonlySet<string> | undefined;
}

/**
 * Password-based ConnectionSecurity. The constructor stretches the password with Argon2id, which blocks for about
 * 0.1-0.3 s with the defaults: make one instance per process (the daemon does) and keep it.
 * Throws `InvalidPasswordError` for an empty password.
 */
export class PasswordSecurity implements ConnectionSecurity {
  readonly hasPassword = true;
  private readonly passwordKey: Buffer;
  private readonly options: ResolvedOptions;
  private isDestroyed = false;

  constructor(
    private readonly deps: PasswordSecurityDeps,
    options: PasswordSecurityOptions,
  ) {
    this.options = {
      rekeyIntervalMs: options.rekeyIntervalMs ?? 120_000,
      rekeyAfterMessages: options.rekeyAfterMessages ?? 2 ** 32,
      overlapMs: options.overlapMs ?? 10_000,
      rekeyCheckMs: options.rekeyCheckMs ?? 1_000,
      replayWindow: options.replayWindow ?? DEFAULT_REPLAY_WINDOW,
      // `views: null` (comparison mode) is a cache that keeps nothing: every view is a fresh subarray().
      dataAead: options.dataAead ?? sodiumDataAead(options.views === undefined ? new BufferViews() : (options.views ?? new BufferViews(0))),
      aegis256x2: options.aegis256x2,
      identity: options.identity,
      authorizedPeers: options.authorizedPeers,
    };
    if (options.authorizedPeers !== undefined && options.identity === undefined) {
      throw new RangeError('authorizedPeers needs an identity: the peers must be able to prove theirs to one');
    }
    if (this.options.dataAead.cipher !== 'chacha20-poly1305')
      throw new RangeError(`dataAead must compute ChaCha20-Poly1305, not ${this.options.dataAead.cipher}`);
    if (options.aegis256x2 !== undefined && options.aegis256x2.cipher !== 'aegis-256x2')
      throw new RangeError(`aegis256x2 computes ${options.aegis256x2.cipher}`);
    const stretched = stretchPassword(options.password, {
      ...(options.passwordOpsLimit !== undefined && { opsLimit: options.passwordOpsLimit }),
      ...(options.passwordMemLimitBytes !== undefined && { memLimitBytes: options.passwordMemLimitBytes }),
    });
    this.passwordKey = sodium.sodium_malloc(KEY_BYTES);
    this.passwordKey.set(stretched);
    sodium.sodium_memzero(stretched);
  }

  /** Begin one connection attempt. Throws `HandshakeError` after `destroy`. */
  begin(): SecurityHandshake {
    if (this.isDestroyed) throw new HandshakeError('connection security was shut down; no new handshakes');
    return new PasswordHandshake(this.deps.clock, this.passwordKey, this.options);
  }

  /**
   * Replace the allow-list (`authorizedPeers`; undefined: any router with the password) for handshakes from now on.
   * Connections already made are the caller's to close. Throws `RangeError` without an identity.
   */
  setAuthorizedPeers(keys: ReadonlySet<string> | undefined): void {
    if (keys !== undefined && this.options.identity === undefined) {
      throw new RangeError('authorizedPeers needs an identity: the peers must be able to prove theirs to one');
    }
    this.options.authorizedPeers = keys;
  }

  /**
   * A data session for two routers with no control connection between them (a punched NAT path, daemon/punch.ts):
   * keys from our ephemeral X25519 secret and the remote's public key, exchanged over the mesh, bound to the password
   * and to `transcript` (`punchTranscript`: names, attempt, both keys). The offerer is the initiator. ChaCha20-Poly1305;
   * never rekeyed (a new punch makes a new session). Throws `InvalidKeyError` for a bad remote key, `HandshakeError`
   * after `destroy`.
   */
  punchedDataSession(isOfferer: boolean, ownSecret: Buffer, remotePublic: Uint8Array, transcript: Buffer): AeadDataSession {
    if (this.isDestroyed) throw new HandshakeError('connection security was shut down; no new sessions');
    const shared = sharedSecret(ownSecret, remotePublic);
    const keys = deriveSessionKeys(shared, this.passwordKey, transcript);
    sodium.sodium_memzero(shared);
    try {
      const data = new AeadDataSession({ isInitiator: isOfferer, replayWindow: this.options.replayWindow, aead: this.options.dataAead });
      data.installSendKey(0, isOfferer ? keys.dataIR : keys.dataRI);
      data.switchSendKey(0);
      data.installReceiveKey(0, isOfferer ? keys.dataRI : keys.dataIR);
      return data;
    } finally {
      wipeKeys(keys);
    }
  }

  /** Wipe the stretched password. Sessions already derived keep their own copy until they are destroyed. Idempotent. */
  destroy(): void {
    sodium.sodium_memzero(this.passwordKey);
    this.isDestroyed = true;
  }
}

class PasswordHandshake implements SecurityHandshake {
  readonly publicKey: Uint8Array;
  readonly features: readonly string[];
  private readonly ephemeral: EphemeralKeyPair;
  private isUsed = false;

  constructor(
    private readonly clock: Clock,
    private readonly passwordKey: Buffer,
    private readonly options: ResolvedOptions,
  ) {
    this.ephemeral = generateEphemeral();
    this.publicKey = new Uint8Array(this.ephemeral.publicKey);
    this.features = [
      ...(options.aegis256x2 ? [AEGIS256X2_FEATURE] : []),
      ...(options.identity ? [identityFeature(options.identity.publicKey)] : []),
    ];
  }

  derive(params: DeriveParams): SecureSession {
    if (this.isUsed) throw new HandshakeError('derive() called twice or after destroy(); begin a new handshake');
    this.isUsed = true;
    let shared: Buffer | undefined;
    let proofs: [Buffer, Buffer] | undefined;
    try {
      const identity = this.options.identity;
      const remoteIdentity = identityOf(params.remoteFeatures);
      if (remoteIdentity === undefined) throw new UnauthorizedPeerError('its hello carries a malformed identity');
      const authorized = this.options.authorizedPeers;
      if (authorized !== undefined) {
        if (remoteIdentity === null) {
          throw new UnauthorizedPeerError('it shows no identity (an older weft?) and --authorized-peers is set');
        }
        const key = keyToText(remoteIdentity);
        if (!authorized.has(key)) throw new UnauthorizedPeerError(`its identity ${key} is not in --authorized-peers`);
      }
      shared = sharedSecret(this.ephemeral.secretKey, params.remotePublicKey);
      const local = this.ephemeral.publicKey;
      const remote = Buffer.from(params.remotePublicKey);
      const bothIdentities = identity !== undefined && remoteIdentity !== null;
      if (bothIdentities) {
        proofs = identitySecrets({
          isInitiator: params.isInitiator,
          localStaticSecret: identity.secretKey,
          localEphemeralSecret: this.ephemeral.secretKey,
          remoteStaticPublic: remoteIdentity,
          remoteEphemeralPublic: remote,
        });
      }
      // AEGIS-256X2 when both hellos offer it, else ChaCha20-Poly1305: the same answer on both sides.
      const aegis = this.options.aegis256x2;
      const aead = aegis && params.remoteFeatures?.includes(AEGIS256X2_FEATURE) ? aegis : this.options.dataAead;
      const transcript = transcriptHash({
        dataCipher: aead.cipher,
        protocolVersion: params.protocolVersion,
        initiatorName: params.isInitiator ? params.localName : params.remoteName,
        responderName: params.isInitiator ? params.remoteName : params.localName,
        initiatorPublicKey: params.isInitiator ? local : remote,
        responderPublicKey: params.isInitiator ? remote : local,
        ...(bothIdentities && {
          initiatorIdentity: params.isInitiator ? identity.publicKey : remoteIdentity,
          responderIdentity: params.isInitiator ? remoteIdentity : identity.publicKey,
        }),
      });
      return new PasswordSession(this.clock, this.passwordKey, this.options, aead, params.isInitiator, shared, transcript, proofs);
    } finally {
      if (shared) sodium.sodium_memzero(shared);
      if (proofs) for (const p of proofs) sodium.sodium_memzero(p);
      sodium.sodium_memzero(this.ephemeral.secretKey);
    }
  }

  destroy(): void {
    this.isUsed = true;
    sodium.sodium_memzero(this.ephemeral.secretKey);
  }
}

/** Our side of a rekey in progress. */
type PendingRekey = { kind: 'offered'; epoch: number; ephemeral: EphemeralKeyPair } | { kind: 'answered'; epoch: number; chain: Buffer };

class PasswordSession implements SecureSession {
  private readonly ownConfirmation: Uint8Array;
  readonly data: AeadDataSession;
  readonly dataCipherName: string;
  private readonly expectedConfirmation: Buffer;
  private readonly control: ControlCipher;
  /** This session's own copy, so rekeys keep working if the PasswordSecurity is destroyed first. */
  private readonly passwordKey: Buffer;
  private chain: Buffer;
  private readonly createdAtMs: number;
  private epochStartedAtMs: number;
  private epoch = 0;
  private rekeyCount = 0;
  private pending: PendingRekey | null = null;
  private overlapTimer: Timer | null = null;
  private checkTimer: Timer | null = null;
  private send: ((message: Uint8Array) => void) | null = null;
  private isConfirmed = false;
  private isFailed = false;
  private isDestroyed = false;

  constructor(
    private readonly clock: Clock,
    passwordKey: Buffer,
    private readonly options: ResolvedOptions,
    aead: DataAead,
    private readonly isInitiator: boolean,
    shared: Buffer,
    transcript: Buffer,
    proofs: [Buffer, Buffer] | undefined,
  ) {
    this.passwordKey = sodium.sodium_malloc(KEY_BYTES);
    this.passwordKey.set(passwordKey);
    const keys = deriveSessionKeys(shared, passwordKey, transcript, proofs);
    try {
      this.ownConfirmation = new Uint8Array(confirmationTag(isInitiator ? keys.confirmIR : keys.confirmRI, transcript));
      this.expectedConfirmation = confirmationTag(isInitiator ? keys.confirmRI : keys.confirmIR, transcript);
      this.control = new ControlCipher(
        isInitiator ? keys.controlIR : keys.controlRI,
        isInitiator ? keys.controlRI : keys.controlIR,
        isInitiator,
      );
      this.data = new AeadDataSession({
        isInitiator,
        replayWindow: options.replayWindow,
        aead,
      });
      this.dataCipherName = DATA_CIPHER_NAMES[aead.cipher];
      this.data.installSendKey(0, isInitiator ? keys.dataIR : keys.dataRI);
      this.data.switchSendKey(0);
      this.data.installReceiveKey(0, isInitiator ? keys.dataRI : keys.dataIR);
      this.chain = sodium.sodium_malloc(KEY_BYTES);
      this.chain.set(keys.chain);
    } finally {
      wipeKeys(keys);
    }
    this.createdAtMs = this.epochStartedAtMs = clock.now();
  }

  /**
   * Our key confirmation (the proof that we hold the password). The responder's is available only after the
   * initiator's verified: a responder that sent its tag to anyone who connects would be an offline-guessing oracle.
   * Throws `HandshakeError` when read too early.
   */
  get confirmation(): Uint8Array {
    if (!this.isInitiator && !this.isConfirmed) {
      throw new HandshakeError("the responder's key confirmation is sent only after the initiator's verified");
    }
    return this.ownConfirmation;
  }

  verifyConfirmation(remote: Uint8Array): boolean {
    if (this.isDestroyed || this.isFailed) return false;
    if (!(remote instanceof Uint8Array) || remote.length !== this.expectedConfirmation.length) {
      this.isFailed = true;
      return false;
    }
    if (!sodium.sodium_memcmp(Buffer.from(remote), this.expectedConfirmation)) {
      this.isFailed = true;
      return false;
    }
    this.isConfirmed = true;
    return true;
  }

  /** Throws `HandshakeError` before the remote confirmation verified, or after `destroy`. */
  seal(message: Uint8Array): Uint8Array {
    if (this.isDestroyed) throw new HandshakeError('seal() after destroy(); the connection is closed');
    if (!this.isConfirmed) throw new HandshakeError('seal() before the remote key confirmation verified');
    return this.control.seal(message);
  }

  open(sealed: Uint8Array): Uint8Array | null {
    if (this.isDestroyed || !this.isConfirmed) return null;
    return this.control.open(sealed);
  }

  /**
   * Start the rekey policy. `send` must carry each message to the remote's `onRekeyMessage`, sealed with `seal()` on
   * this connection, in order, and must not throw. Throws `HandshakeError` before confirmation or if called twice.
   */
  startRekeying(send: (message: Uint8Array) => void): void {
    if (this.isDestroyed || !this.isConfirmed) {
      throw new HandshakeError('startRekeying() before the remote key confirmation verified');
    }
    if (this.send) throw new HandshakeError('startRekeying() called twice');
    this.send = send;
    this.checkTimer = this.clock.setInterval(() => this.considerRekey(), this.options.rekeyCheckMs);
  }

  /**
   * Handle a rekey message from the remote (already opened). Throws `HandshakeError` for a malformed or out-of-turn
   * message and `InvalidKeyError` for a bad public key; the caller closes the connection.
   */
  onRekeyMessage(message: Uint8Array): void {
    if (this.isDestroyed) return;
    if (!this.send) throw new HandshakeError('rekey message before startRekeying(); the peer is out of step');
    const m = decodeRekeyMessage(message);
    const next = this.epoch + 1;
    switch (m.type) {
      case RekeyType.Offer: {
        if (m.epoch !== next) throw new HandshakeError(`rekey offer for epoch ${m.epoch}, expected ${next}`);
        const pending = this.pending;
        if (pending?.kind === 'offered') {
          // Both offered at once: the connection initiator's offer wins.
          if (this.isInitiator) return;
          sodium.sodium_memzero(pending.ephemeral.secretKey);
          this.pending = null;
        } else if (pending) {
          throw new HandshakeError(`rekey offer for epoch ${m.epoch} while answering it`);
        }
        this.answer(m.epoch, m.publicKey);
        return;
      }
      case RekeyType.Answer: {
        const pending = this.pending;
        if (pending?.kind !== 'offered' || pending.epoch !== m.epoch) {
          throw new HandshakeError(`unexpected rekey answer for epoch ${m.epoch}`);
        }
        this.completeAsOfferer(pending.epoch, pending.ephemeral, m.publicKey);
        return;
      }
      case RekeyType.Done: {
        const pending = this.pending;
        if (pending?.kind !== 'answered' || pending.epoch !== m.epoch) {
          throw new HandshakeError(`unexpected rekey done for epoch ${m.epoch}`);
        }
        this.pending = null;
        this.data.switchSendKey(m.epoch & 1);
        this.commitEpoch(m.epoch, pending.chain);
        return;
      }
    }
  }

  /**
   * `ageSeconds`: seconds since this session was derived; `rekeyCount`: completed rekeys (key epochs after the
   * first).
   */
  stats(): { ageSeconds: number; rekeyCount: number } {
    return { ageSeconds: (this.clock.now() - this.createdAtMs) / 1000, rekeyCount: this.rekeyCount };
  }

  destroy(): void {
    if (this.isDestroyed) return;
    this.isDestroyed = true;
    this.checkTimer?.cancel();
    this.overlapTimer?.cancel();
    this.checkTimer = this.overlapTimer = null;
    this.abandonPending();
    this.control.destroy();
    this.data.destroy();
    sodium.sodium_memzero(this.chain);
    sodium.sodium_memzero(this.passwordKey);
    sodium.sodium_memzero(this.expectedConfirmation);
    this.ownConfirmation.fill(0);
    this.send = null;
  }

  /** The policy: rekey when the keys are old or have sealed many datagrams, unless one is in progress. */
  private considerRekey(): void {
    if (this.isDestroyed || this.pending || this.overlapTimer || !this.send) return;
    const age = this.clock.now() - this.epochStartedAtMs;
    if (age < this.options.rekeyIntervalMs && this.data.sentWithCurrentKey < this.options.rekeyAfterMessages) return;
    const ephemeral = generateEphemeral();
    const epoch = this.epoch + 1;
    this.pending = { kind: 'offered', epoch, ephemeral };
    this.send(encodeRekeyMessage({ type: RekeyType.Offer, epoch, publicKey: ephemeral.publicKey }));
  }

  /** Responder of a rekey: derive, install the receive key (and the idle send key), answer. */
  private answer(epoch: number, offerPublicKey: Buffer): void {
    const phase = epoch & 1;
    // The slot still holding the previous-but-one key (if the peer's overlap ended before ours) is needed now.
    if (this.overlapTimer) this.endOverlap();
    const ephemeral = generateEphemeral();
    let shared: Buffer | undefined;
    try {
      shared = sharedSecret(ephemeral.secretKey, offerPublicKey);
      const keys = deriveRekeyKeys(this.chain, this.passwordKey, shared, {
        epoch,
        isOfferFromInitiator: !this.isInitiator,
        offerPublicKey,
        answerPublicKey: ephemeral.publicKey,
      });
      try {
        this.data.installReceiveKey(phase, this.isInitiator ? keys.dataRI : keys.dataIR);
        this.data.installSendKey(phase, this.isInitiator ? keys.dataIR : keys.dataRI);
        const chain = sodium.sodium_malloc(KEY_BYTES);
        chain.set(keys.chain);
        this.pending = { kind: 'answered', epoch, chain };
      } finally {
        wipeKeys(keys);
      }
    } finally {
      if (shared) sodium.sodium_memzero(shared);
      sodium.sodium_memzero(ephemeral.secretKey);
    }
    this.send!(encodeRekeyMessage({ type: RekeyType.Answer, epoch, publicKey: ephemeral.publicKey }));
  }

  /** Offerer of a rekey, on the answer: derive, install the receive key, switch sending, tell the peer. */
  private completeAsOfferer(epoch: number, ephemeral: EphemeralKeyPair, answerPublicKey: Buffer): void {
    const phase = epoch & 1;
    this.pending = null;
    let shared: Buffer | undefined;
    let chain: Buffer;
    try {
      shared = sharedSecret(ephemeral.secretKey, answerPublicKey);
      const keys = deriveRekeyKeys(this.chain, this.passwordKey, shared, {
        epoch,
        isOfferFromInitiator: this.isInitiator,
        offerPublicKey: ephemeral.publicKey,
        answerPublicKey,
      });
      try {
        this.data.installReceiveKey(phase, this.isInitiator ? keys.dataRI : keys.dataIR);
        this.data.installSendKey(phase, this.isInitiator ? keys.dataIR : keys.dataRI);
        this.data.switchSendKey(phase);
        chain = sodium.sodium_malloc(KEY_BYTES);
        chain.set(keys.chain);
      } finally {
        wipeKeys(keys);
      }
    } finally {
      if (shared) sodium.sodium_memzero(shared);
      sodium.sodium_memzero(ephemeral.secretKey);
    }
    this.commitEpoch(epoch, chain);
    this.send!(encodeRekeyMessage({ type: RekeyType.Done, epoch }));
  }

  /** Both sides, after switching the send key: the new epoch is current; the old receive key lives `overlapMs`. */
  private commitEpoch(epoch: number, chain: Buffer): void {
    sodium.sodium_memzero(this.chain);
    this.chain = chain;
    this.epoch = epoch;
    this.rekeyCount++;
    this.epochStartedAtMs = this.clock.now();
    const oldPhase = (epoch - 1) & 1;
    this.overlapTimer?.cancel();
    this.overlapTimer = this.clock.setTimeout(() => this.endOverlap(oldPhase), this.options.overlapMs);
  }

  private endOverlap(phase = (this.epoch - 1) & 1): void {
    this.overlapTimer?.cancel();
    this.overlapTimer = null;
    this.data.dropReceiveKey(phase);
  }

  private abandonPending(): void {
    const p = this.pending;
    if (!p) return;
    if (p.kind === 'offered') sodium.sodium_memzero(p.ephemeral.secretKey);
    else sodium.sodium_memzero(p.chain);
    this.pending = null;
  }
}
