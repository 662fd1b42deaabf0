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
 * What a member says here is believed only as far as it can do no harm elsewhere: an endpoint that cannot be a
 * public one (loopback, unspecified, link-local, multicast, broadcast), that is this host's own, or that is another
 * neighbour's, is refused (`nat_bad_endpoint`), so gossip never makes this router send heartbeats at its own loopback,
 * its API or a third router; an offer from a peer that is not relayed is refused (`nat_unwanted_offer`); and each
 * peer's offers and `OBSERVED`s are taken at most once per `minMessageIntervalMs` (`nat_rate_limited`).
 *
 * Everything here runs on the control plane's event loop; nothing touches a packet.
 */
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { GossipChannel, Gossiper } from '../gossip/channel.js';
import type { AeadDataSession } from '../crypto/aead-data-session.js';
import type { PasswordSecurity } from '../crypto/password-security.js';
import { discoveryRefusal } from '../gossip/dial-policy.js';
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
  /** This host's own addresses, canonical (gossip/dial-policy.ts `systemLocalHosts`). @default none */
  localHosts?: () => Iterable<string>;
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
  /**
   * Take an offer or an `OBSERVED` from one peer at most this often; the rest are dropped and counted. An honest
   * router sends an `OBSERVED` every `stepMs` at most and an offer every `offerTimeoutMs`. @default 1000
   */
  minMessageIntervalMs?: number;
}

/**
 * Why `e` cannot be anyone's public endpoint, or undefined when it can: the discovery rules of dial-policy.ts
 * (loopback, unspecified, multicast, broadcast, link-local; with `localHosts`, this host's own addresses).
 */
export function unusableEndpointReason(e: ObservedEndpoint, localHosts: ReadonlySet<string> = new Set()): string | undefined {
  return discoveryRefusal(`${e.address}:${e.port}`, localHosts)?.replace('_', ' ');
}

/** At most this many distinct warnings (peer and reason) are logged; the counters count every one. */
const MAX_WARNED = 256;

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
    nat_bad_endpoint: 0,
    nat_unwanted_offer: 0,
    nat_rate_limited: 0,
  };
  private channel: GossipChannel | null = null;
  private timer: Timer | null = null;
  private readonly stepMs: number;
  private readonly observedRefreshMs: number;
  private readonly isPunchingEnabled: boolean;
  private readonly minMessageIntervalMs: number;
  /** When each peer's last offer or `OBSERVED` was taken, by "kind|peer" (pruned every step). */
  private readonly lastTakenAt = new Map<string, number>();
  private readonly warned = new Set<string>();
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
    this.minMessageIntervalMs = options.minMessageIntervalMs ?? 1_000;
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
    for (const [peer, at] of [...this.lastTakenAt]) if (now - at >= this.minMessageIntervalMs) this.lastTakenAt.delete(peer);
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
      const bad = unusableEndpointReason(m.endpoint);
      if (bad !== undefined) return this.refuseEndpoint(src, m.endpoint, bad);
      if (!this.take(`observed|${src}`, now)) return;
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
    const bad = this.badPeerEndpoint(m.endpoint);
    if (bad !== undefined) return this.refuseEndpoint(src, m.endpoint, bad);
    if (m.type === NatMessageType.Offer) {
      if (!this.deps.relayedPeers().has(src)) {
        // A neighbour (or a peer we cannot reach) has no use for a punch; step() would drop it anyway.
        this.counters.nat_unwanted_offer++;
        this.warnOnce(`unwanted|${src}`, { peer: src }, 'punch: refused an offer from a peer that is not relayed');
        return;
      }
      if (!this.take(`offer|${src}`, now)) return;
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

  /** Why a peer's endpoint in an offer or answer is refused: not public, ours, or another neighbour's. */
  private badPeerEndpoint(e: ObservedEndpoint): string | undefined {
    const unusable = unusableEndpointReason(e, new Set(this.deps.localHosts?.() ?? []));
    if (unusable !== undefined) return unusable;
    const own = this.punches.ownEndpoint();
    if (own !== undefined && own.address === e.address && own.port === e.port) return 'our own public endpoint';
    for (const n of this.deps.neighbourEndpoints().values()) {
      if (n.address === e.address && n.port === e.port) return "another neighbour's endpoint";
    }
    return undefined;
  }

  private refuseEndpoint(src: string, endpoint: ObservedEndpoint, reason: string): void {
    this.counters.nat_bad_endpoint++;
    this.warnOnce(
      `endpoint|${src}|${reason}`,
      { peer: src, endpoint: `${endpoint.address}:${endpoint.port}`, reason },
      "punch: refused an endpoint that cannot be a peer's public one",
    );
  }

  /** Whether a message (`kind|peer`) may be taken now (one per `minMessageIntervalMs`); counts the rest. */
  private take(key: string, now: number): boolean {
    const last = this.lastTakenAt.get(key);
    if (last !== undefined && now - last < this.minMessageIntervalMs) {
      this.counters.nat_rate_limited++;
      this.warnOnce(`rate|${key}`, { peer: key.split('|')[1] }, 'punch: messages from a peer faster than the per-peer limit; dropped');
      return false;
    }
    this.lastTakenAt.set(key, now);
    return true;
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(key) || this.warned.size >= MAX_WARNED) return;
    this.warned.add(key);
    this.deps.log.warn(fields, msg);
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
