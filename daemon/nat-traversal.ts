/**
 * NAT traversal wired to the mesh and the data path (the state and the messages are in ./punch.ts):
 *
 *   - every `stepMs`: tell each neighbour where its datagrams come from (`OBSERVED`, when it changed or every 20 s),
 *     time attempts out, and send offers to the peers reached only through a relay;
 *   - an offer or answer (a unicast on the 'nat' channel, relayed by the mesh) makes the pair's data session (with a
 *     password: X25519 over the mesh, bound to the password; without: none, datagrams in clear) and starts probing;
 *   - the data path's health says when a probed path works (`onHealth`) and the daemon rebuilds the forwarding
 *     snapshot with `paths()`: probed peers as neighbours, punched ones as their own unicast next hop.
 *
 * Everything here runs on the control plane's event loop; nothing touches a packet.
 */
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { GossipChannel, Gossiper } from '../gossip/channel.js';
import type { AeadDataSession } from '../crypto/aead-data-session.js';
import type { PasswordSecurity } from '../crypto/password-security.js';
import { generateEphemeral, punchTranscript, type EphemeralKeyPair } from '../crypto/kdf.js';
import {
  NatMessageType,
  Punches,
  decodeNatMessage,
  encodeNatMessage,
  type ObservedEndpoint,
  type ProbedPath,
  type PunchOptions,
} from './punch.js';

export interface NatTraversalDeps {
  clock: Clock;
  log: Logger;
  /** With a password: makes punched data sessions. Without: punched paths carry clear datagrams. */
  security: PasswordSecurity | undefined;
  /** Peers reached now only through a relay (unicast next hop is another peer). */
  relayedPeers(): ReadonlySet<string>;
  /** Each neighbour's data endpoint as the data path knows it now (learned from authenticated datagrams). */
  neighbourEndpoints(): ReadonlyMap<string, ObservedEndpoint>;
  /** The probed or punched paths changed: rebuild the forwarding snapshot. */
  onPathsChange(): void;
}

export interface NatTraversalOptions extends PunchOptions {
  /** How often to step. @default 2000 */
  stepMs?: number;
  /** Resend an unchanged `OBSERVED` this often. @default 20000 */
  observedRefreshMs?: number;
  /**
   * Offer and answer punches. Off when peer discovery is off (a punched path is a connection nobody configured) or
   * with `--authorized-peers` (a punch does not prove the peer's identity key). `OBSERVED` is sent either way.
   * @default true
   */
  isPunchingEnabled?: boolean;
}

export type PunchedSession = AeadDataSession;

export class NatTraversal implements Gossiper {
  readonly punches: Punches<PunchedSession>;
  /** Counters for `weft report` (by name). */
  readonly counters = {
    nat_observed_sent: 0,
    nat_observed_received: 0,
    nat_offers_sent: 0,
    nat_answers_sent: 0,
    nat_punched: 0,
    nat_punch_failed: 0,
    nat_bad_message: 0,
  };
  private channel: GossipChannel | null = null;
  private timer: Timer | null = null;
  private readonly stepMs: number;
  private readonly observedRefreshMs: number;
  private readonly isPunchingEnabled: boolean;
  /** What we last told each neighbour, and when. */
  private readonly told = new Map<string, { key: string; atMs: number }>();
  /** Our ephemeral key per offer we sent (peer -> attempt, keys). */
  private readonly offerKeys = new Map<string, { attempt: number; keys: EphemeralKeyPair }>();

  constructor(
    private readonly localName: string,
    private readonly deps: NatTraversalDeps,
    options: NatTraversalOptions = {},
  ) {
    this.stepMs = options.stepMs ?? 2_000;
    this.observedRefreshMs = options.observedRefreshMs ?? 20_000;
    this.isPunchingEnabled = options.isPunchingEnabled ?? true;
    this.punches = new Punches<PunchedSession>(localName, options, (s) => s.destroy());
  }

  attach(channel: GossipChannel): void {
    this.channel = channel;
  }

  start(): void {
    this.timer ??= this.deps.clock.setInterval(() => this.step(), this.stepMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
    this.punches.clear();
    for (const o of this.offerKeys.values()) o.keys.secretKey.fill(0);
    this.offerKeys.clear();
  }

  /** The paths the data plane should probe or use now. */
  paths(): ProbedPath<PunchedSession>[] {
    return this.punches.paths();
  }

  /** Why traffic to `peer` is relayed, for `weft status`. */
  relayReason(peer: string, nowMs: number): string {
    if (!this.isPunchingEnabled) return 'no direct connection (punching is off: peer discovery is off or --authorized-peers is set)';
    return this.punches.relayReason(peer, nowMs);
  }

  /** A data-path health change for `peer` (any neighbour; ignored unless it is a punch). */
  onHealth(peer: string, isEstablished: boolean): boolean {
    const p = this.punches.punch(peer);
    const wasPunched = p?.phase === 'punched';
    if (!this.punches.onHealth(peer, isEstablished, this.deps.clock.now())) return false;
    if (!wasPunched && isEstablished) {
      this.counters.nat_punched++;
      this.deps.log.info({ peer, endpoint: p?.remote }, 'punched a direct path through NAT');
    } else if (wasPunched) {
      this.deps.log.info({ peer }, 'punched path stopped answering; relaying until it answers again');
    }
    this.deps.onPathsChange();
    return true;
  }

  /** Whether `peer` is a punch (probing, punched or lost), not a mesh neighbour. */
  isPunch(peer: string): boolean {
    const p = this.punches.punch(peer);
    return p !== undefined && (p.phase === 'probing' || p.phase === 'punched' || p.phase === 'lost');
  }

  step(): void {
    const now = this.deps.clock.now();
    const endpoints = this.deps.neighbourEndpoints();
    this.punches.keepObservers(new Set(endpoints.keys()));
    for (const [peer, e] of endpoints) {
      if (this.isPunch(peer)) continue;
      const key = `${e.address}:${e.port}`;
      const last = this.told.get(peer);
      if (last?.key === key && now - last.atMs < this.observedRefreshMs) continue;
      if (this.channel?.gossipUnicast(peer, encodeNatMessage({ type: NatMessageType.Observed, endpoint: e }))) {
        this.told.set(peer, { key, atMs: now });
        this.counters.nat_observed_sent++;
      }
    }
    for (const peer of [...this.told.keys()]) if (!endpoints.has(peer)) this.told.delete(peer);
    const before = this.punches.paths().length;
    const actions = this.punches.step(now, this.isPunchingEnabled ? this.deps.relayedPeers() : new Set<string>());
    for (const peer of actions.offers) this.sendOffer(peer);
    const after = this.punches.paths().length;
    this.counters.nat_punch_failed += actions.failures;
    if (actions.isChanged || before !== after) this.deps.onPathsChange();
  }

  // ---- Gossiper: only unicasts are used ------------------------------------------------------------------------

  gossip(): null {
    return null;
  }

  onGossip(): null {
    return null;
  }

  onGossipBroadcast(): void {
    // not used
  }

  onGossipUnicast(src: string, message: Uint8Array): void {
    const m = decodeNatMessage(message); // a DecodeError is counted by the mesh
    const now = this.deps.clock.now();
    if (m.type === NatMessageType.Observed) {
      this.counters.nat_observed_received++;
      if (this.punches.setObserved(src, m.endpoint, now)) {
        this.deps.log.info({ endpoint: m.endpoint, by: src }, 'our public endpoint moved; punching again');
        this.deps.onPathsChange();
      }
      return;
    }
    const hasPassword = this.deps.security !== undefined;
    if (!this.isPunchingEnabled) return;
    if ((m.publicKey !== null) !== hasPassword) {
      this.counters.nat_bad_message++;
      return;
    }
    if (m.type === NatMessageType.Offer) {
      const own = this.punches.ownEndpoint();
      const p = this.punches.acceptOffer(src, m.attempt, m.endpoint, now);
      if (p === undefined || own === undefined) return;
      const keys = hasPassword ? generateEphemeral() : null;
      const session = keys
        ? this.session(false, src, m.attempt, keys, m.publicKey!, { offerer: src, answerer: this.localName }, m.publicKey!, keys.publicKey)
        : null;
      if (hasPassword && session === null) return;
      const answer = encodeNatMessage({
        type: NatMessageType.Answer,
        attempt: m.attempt,
        endpoint: own,
        publicKey: keys?.publicKey ?? null,
      });
      if (keys) keys.secretKey.fill(0);
      if (!this.channel?.gossipUnicast(src, answer)) return;
      this.counters.nat_answers_sent++;
      this.punches.probe(p, session, now);
      this.deps.onPathsChange();
      return;
    }
    const offer = this.offerKeys.get(src);
    const p = this.punches.acceptAnswer(src, m.attempt, m.endpoint);
    if (p === undefined || (hasPassword && offer?.attempt !== m.attempt)) return;
    let session: PunchedSession | null = null;
    if (hasPassword) {
      session = this.session(
        true,
        src,
        m.attempt,
        offer!.keys,
        m.publicKey!,
        { offerer: this.localName, answerer: src },
        offer!.keys.publicKey,
        m.publicKey!,
      );
      offer!.keys.secretKey.fill(0);
      this.offerKeys.delete(src);
      if (session === null) return;
    }
    this.punches.probe(p, session, now);
    this.deps.onPathsChange();
  }

  private sendOffer(peer: string): void {
    const p = this.punches.punch(peer);
    const own = this.punches.ownEndpoint();
    if (p === undefined || own === undefined) return;
    let publicKey: Uint8Array | null = null;
    if (this.deps.security !== undefined) {
      const old = this.offerKeys.get(peer);
      if (old) old.keys.secretKey.fill(0);
      const keys = generateEphemeral();
      this.offerKeys.set(peer, { attempt: p.attempt, keys });
      publicKey = keys.publicKey;
    }
    if (this.channel?.gossipUnicast(peer, encodeNatMessage({ type: NatMessageType.Offer, attempt: p.attempt, endpoint: own, publicKey }))) {
      this.counters.nat_offers_sent++;
    }
  }

  private session(
    isOfferer: boolean,
    peer: string,
    attempt: number,
    keys: EphemeralKeyPair,
    remotePublic: Uint8Array,
    names: { offerer: string; answerer: string },
    offererPublic: Uint8Array,
    answererPublic: Uint8Array,
  ): PunchedSession | null {
    try {
      const transcript = punchTranscript({ ...names, attempt, offererPublic, answererPublic });
      return this.deps.security!.punchedDataSession(isOfferer, keys.secretKey, remotePublic, transcript);
    } catch (err) {
      this.counters.nat_bad_message++;
      this.deps.log.warn({ peer, err: (err as Error).message }, 'punch: could not make a data session');
      return null;
    }
  }
}
