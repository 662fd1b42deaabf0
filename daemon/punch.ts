/**
 * NAT traversal, the control plane's half: what each router learns about where it is seen from, and the state of
 * each attempt to punch a direct UDP path to a peer it reaches only through a relay.
 *
 *   1. Observed endpoints. A router tells each neighbour the address and port its authenticated datagrams come from
 *      (`OBSERVED`, over the control connection): the data plane learned it from datagrams sealed under the pair's
 *      key (or from the neighbour's confirmed endpoint on a trusted subnet or clear network), never from a clear
 *      datagram alone. That is this router's public endpoint, as a STUN server would report it.
 *   2. Offer and answer. For a peer reached only through a relay, the router with the lower name sends an `OFFER`
 *      (its observed endpoint, an attempt number and, with a password, a fresh X25519 public key) along the mesh's
 *      unicast route; the other answers with an `ANSWER` (the same, its side). Both now know each other's public
 *      endpoint and, with a password, a pair data key nobody else on the path can compute without the password.
 *   3. Probing. Both add the other as a data-plane neighbour at that endpoint: the sleeve's heartbeats (one a second,
 *      both ways at once) are the probes that open the two NATs' mappings. When they are answered both ways the path
 *      is `punched` and the peer's unicast frames go direct; until then, and whenever its heartbeats stop (5 s), they
 *      go through the relay. An attempt that does not work within `attemptMs` fails (a symmetric NAT, UDP blocked)
 *      and is tried again after `retryMs`; a punched path that stops answering is probed for `lostGraceMs` more
 *      before it counts as failed.
 *
 * `Punches` is the pure state: time is passed in, no I/O; the daemon wires it to the mesh channel and the data path.
 * Wire format of the messages: docs/wire-format-nat.md.
 */
import { DecodeError } from '../gossip/decode-error.js';

/** Where a router's datagrams are seen from (IPv4). */
export interface ObservedEndpoint {
  readonly address: string;
  readonly port: number;
}

export type PunchPhase = 'offered' | 'probing' | 'punched' | 'lost' | 'failed';

export interface PunchOptions {
  /** How long one attempt probes before it counts as failed. @default 10000 */
  attemptMs?: number;
  /** Wait after a failed attempt before the next. @default 30000 */
  retryMs?: number;
  /** How long a punched path that stopped answering is still probed before it counts as failed. @default 60000 */
  lostGraceMs?: number;
  /** An offer without an answer is given up after this long, and sent again after as long (the peer may not know its endpoint yet). @default 5000 */
  offerTimeoutMs?: number;
}

/** One attempt's state, for one remote peer. `S` is the data session type (opaque here). */
export interface Punch<S> {
  readonly peer: string;
  phase: PunchPhase;
  /** When the current phase began. */
  sinceMs: number;
  /** When a failed attempt may be tried again. */
  retryAtMs: number;
  attempt: number;
  /** Attempts made so far (for the status). */
  tries: number;
  /** Whether we sent the offer (the lower name does). */
  isInitiator: boolean;
  remote?: ObservedEndpoint;
  session: S | null;
  /** Why the last attempt failed, for `weft status`. */
  failure?: string;
}

/** What the daemon should do after a step. */
export interface PunchActions {
  /** Peers to send an `OFFER` to now (their attempt number is in `punch(peer).attempt`). */
  offers: string[];
  /** Whether the set of probed/punched paths changed (rebuild the forwarding snapshot). */
  isChanged: boolean;
  /** Attempts that failed in this step (probing or a lost path timed out). */
  failures: number;
}

/** A punched or probing path the data plane should have as a neighbour. */
export interface ProbedPath<S> {
  peer: string;
  endpoint: ObservedEndpoint;
  session: S | null;
  /** Heartbeats answered both ways: unicast frames to `peer` go direct. */
  isPunched: boolean;
}

export class Punches<S> {
  private readonly attemptMs: number;
  private readonly retryMs: number;
  private readonly lostGraceMs: number;
  private readonly offerTimeoutMs: number;
  private readonly punches = new Map<string, Punch<S>>();
  /** Our endpoint as each neighbour sees it. */
  private readonly observed = new Map<string, ObservedEndpoint>();
  private nextAttempt = 1;

  constructor(
    private readonly localName: string,
    options: PunchOptions = {},
    private readonly dispose: (session: S) => void = () => undefined,
  ) {
    this.attemptMs = options.attemptMs ?? 10_000;
    this.retryMs = options.retryMs ?? 30_000;
    this.lostGraceMs = options.lostGraceMs ?? 60_000;
    this.offerTimeoutMs = options.offerTimeoutMs ?? 5_000;
  }

  /**
   * Neighbour `by` sees our datagrams come from `endpoint`. When that changes our own endpoint (our NAT rebound, we
   * moved), every punch we offered is stale: the peer probes our old mapping. They fail now and, as the lower name,
   * we offer again at the next step. Returns whether our endpoint changed.
   */
  setObserved(by: string, endpoint: ObservedEndpoint, nowMs = 0): boolean {
    const before = this.ownEndpoint();
    this.observed.set(by, endpoint);
    const after = this.ownEndpoint();
    if (before === undefined || after === undefined || (before.address === after.address && before.port === after.port)) return false;
    for (const p of this.punches.values()) {
      if (p.isInitiator && p.phase !== 'failed') {
        this.fail(p, nowMs, `our public endpoint moved from ${endpointText(before)} to ${endpointText(after)}`, 0);
        p.retryAtMs = nowMs;
      }
    }
    return true;
  }

  /** Forget what neighbours no longer connected told us. */
  keepObservers(neighbours: ReadonlySet<string>): void {
    for (const by of [...this.observed.keys()]) if (!neighbours.has(by)) this.observed.delete(by);
  }

  /**
   * Our public endpoint: what our neighbours see, when they agree. Undefined with no observer yet, or when two see
   * different ports (a symmetric NAT: every destination gets its own mapping, so no endpoint can be handed out).
   */
  ownEndpoint(): ObservedEndpoint | undefined {
    let first: ObservedEndpoint | undefined;
    for (const e of this.observed.values()) {
      if (first === undefined) first = e;
      else if (e.address !== first.address || e.port !== first.port) return undefined;
    }
    return first;
  }

  /** True when two neighbours see us from different ports or addresses. */
  isSymmetric(): boolean {
    return this.observed.size > 1 && this.ownEndpoint() === undefined;
  }

  punch(peer: string): Punch<S> | undefined {
    return this.punches.get(peer);
  }

  /**
   * One step: `relayed` are the peers reachable now only through a relay. Starts offers (we are the lower name,
   * have an endpoint, and no attempt is under way or waiting), times attempts out, forgets peers no longer relayed.
   */
  step(nowMs: number, relayed: ReadonlySet<string>): PunchActions {
    const actions: PunchActions = { offers: [], isChanged: false, failures: 0 };
    for (const [peer, p] of [...this.punches]) {
      if (!relayed.has(peer)) {
        // A direct control connection (or the peer is gone): the mesh's neighbour replaces any probe.
        if (p.phase === 'probing' || p.phase === 'punched' || p.phase === 'lost') actions.isChanged = true;
        this.drop(peer);
        continue;
      }
      if (p.phase === 'offered' && nowMs - p.sinceMs >= this.offerTimeoutMs)
        this.fail(p, nowMs, 'no answer to the offer', this.offerTimeoutMs);
      else if (p.phase === 'probing' && nowMs - p.sinceMs >= this.attemptMs) {
        this.fail(p, nowMs, `no answer from ${endpointText(p.remote)} (a symmetric NAT or a firewall on the way)`);
        actions.isChanged = true;
        actions.failures++;
      } else if (p.phase === 'lost' && nowMs - p.sinceMs >= this.lostGraceMs) {
        this.fail(p, nowMs, `the punched path to ${endpointText(p.remote)} stopped answering`);
        actions.isChanged = true;
        actions.failures++;
      }
    }
    const own = this.ownEndpoint();
    if (own === undefined) return actions;
    for (const peer of relayed) {
      if (peer === this.localName || !(this.localName < peer)) continue;
      const p = this.punches.get(peer);
      if (p !== undefined && (p.phase !== 'failed' || nowMs < p.retryAtMs)) continue;
      const fresh = this.start(peer, nowMs, true, this.nextAttempt++, p?.tries ?? 0);
      fresh.phase = 'offered';
      if (p?.failure !== undefined) fresh.failure = p.failure;
      actions.offers.push(peer);
    }
    return actions;
  }

  /**
   * An offer from `peer` (relayed by the mesh): answer it when we have an endpoint. Returns false when we cannot
   * (no endpoint of our own yet; the offerer retries later). The caller makes the session and calls `probe`.
   */
  acceptOffer(peer: string, attempt: number, remote: ObservedEndpoint, nowMs: number): Punch<S> | undefined {
    if (this.ownEndpoint() === undefined) return undefined;
    const old = this.punches.get(peer);
    const p = this.start(peer, nowMs, false, attempt, old?.tries ?? 0);
    p.remote = remote;
    return p;
  }

  /** The answer to our offer `attempt` came: returns the punch to probe, or undefined for a stale answer. */
  acceptAnswer(peer: string, attempt: number, remote: ObservedEndpoint): Punch<S> | undefined {
    const p = this.punches.get(peer);
    if (p === undefined || p.phase !== 'offered' || p.attempt !== attempt || !p.isInitiator) return undefined;
    p.remote = remote;
    return p;
  }

  /** Start probing `p` with `session` (null on a clear network). */
  probe(p: Punch<S>, session: S | null, nowMs: number): void {
    if (p.session !== null && p.session !== session) this.dispose(p.session);
    p.session = session;
    p.phase = 'probing';
    p.sinceMs = nowMs;
    p.tries++;
  }

  /** The data plane's heartbeats to `peer` are (or are no longer) answered both ways. Returns whether that changed the path. */
  onHealth(peer: string, isEstablished: boolean, nowMs: number): boolean {
    const p = this.punches.get(peer);
    if (p === undefined) return false;
    if (isEstablished && (p.phase === 'probing' || p.phase === 'lost')) {
      p.phase = 'punched';
      p.sinceMs = nowMs;
      delete p.failure;
      return true;
    }
    if (!isEstablished && p.phase === 'punched') {
      p.phase = 'lost';
      p.sinceMs = nowMs;
      return true;
    }
    return false;
  }

  /** The paths the data plane should probe or use: every punch probing, punched or lost (still probed). */
  paths(): ProbedPath<S>[] {
    const out: ProbedPath<S>[] = [];
    for (const p of this.punches.values()) {
      if ((p.phase === 'probing' || p.phase === 'punched' || p.phase === 'lost') && p.remote !== undefined) {
        out.push({ peer: p.peer, endpoint: p.remote, session: p.session, isPunched: p.phase === 'punched' });
      }
    }
    return out;
  }

  /** Why traffic to `peer` is relayed, in words for `weft status`. */
  relayReason(peer: string, nowMs: number): string {
    const p = this.punches.get(peer);
    if (this.isSymmetric()) return 'this router is behind a symmetric NAT (its neighbours see it from different ports)';
    if (p === undefined) {
      if (this.ownEndpoint() === undefined) return 'no direct connection; waiting for a neighbour to report our public endpoint';
      return this.localName < peer
        ? 'no direct connection; punching starts shortly'
        : 'no direct connection; waiting for its offer to punch';
    }
    switch (p.phase) {
      case 'offered':
        return 'no direct connection; offered to punch, waiting for the answer';
      case 'probing':
        return `punching to ${endpointText(p.remote)} (attempt ${p.tries})`;
      case 'lost':
        return `the punched path to ${endpointText(p.remote)} stopped answering; probing again`;
      case 'failed':
        return `punching failed ${p.tries} time(s): ${p.failure ?? 'no answer'}; next try in ${Math.max(0, Math.round((p.retryAtMs - nowMs) / 1000))} s`;
      default:
        return '';
    }
  }

  /** Forget everything (stop). */
  clear(): void {
    for (const peer of [...this.punches.keys()]) this.drop(peer);
    this.observed.clear();
  }

  private start(peer: string, nowMs: number, isInitiator: boolean, attempt: number, tries: number): Punch<S> {
    const old = this.punches.get(peer);
    if (old?.session != null) this.dispose(old.session);
    const p: Punch<S> = { peer, phase: 'offered', sinceMs: nowMs, retryAtMs: 0, attempt, tries, isInitiator, session: null };
    this.punches.set(peer, p);
    return p;
  }

  private fail(p: Punch<S>, nowMs: number, why: string, retryMs = this.retryMs): void {
    if (p.session !== null) this.dispose(p.session);
    p.session = null;
    p.phase = 'failed';
    p.sinceMs = nowMs;
    p.retryAtMs = nowMs + retryMs;
    p.failure = why;
  }

  private drop(peer: string): void {
    const p = this.punches.get(peer);
    if (p?.session != null) this.dispose(p.session);
    this.punches.delete(peer);
  }
}

function endpointText(e: ObservedEndpoint | undefined): string {
  return e === undefined ? 'its endpoint' : `${e.address}:${e.port}`;
}

// ---- messages on the 'nat' gossip channel (docs/wire-format-nat.md) -----------------------------------------------

export const NAT_MESSAGE_VERSION = 1;
export const NatMessageType = { Observed: 1, Offer: 2, Answer: 3 } as const;
/** X25519 public key bytes in an offer or answer (0 on a network without a password). */
export const PUNCH_KEY_BYTES = 32;

export type NatMessage =
  | { type: typeof NatMessageType.Observed; endpoint: ObservedEndpoint }
  | {
      type: typeof NatMessageType.Offer | typeof NatMessageType.Answer;
      attempt: number;
      endpoint: ObservedEndpoint;
      publicKey: Uint8Array | null;
    };

export function encodeNatMessage(m: NatMessage): Uint8Array {
  const hasKey = m.type !== NatMessageType.Observed && m.publicKey !== null;
  const out = Buffer.alloc(2 + 6 + (m.type === NatMessageType.Observed ? 0 : 4 + 1 + (hasKey ? PUNCH_KEY_BYTES : 0)));
  out[0] = NAT_MESSAGE_VERSION;
  out[1] = m.type;
  let off = 2;
  if (m.type !== NatMessageType.Observed) {
    out.writeUInt32BE(m.attempt >>> 0, off);
    off += 4;
  }
  const parts = m.endpoint.address.split('.').map(Number);
  for (let i = 0; i < 4; i++) out[off + i] = parts[i]! & 0xff;
  out.writeUInt16BE(m.endpoint.port, off + 4);
  off += 6;
  if (m.type !== NatMessageType.Observed) {
    out[off++] = hasKey ? PUNCH_KEY_BYTES : 0;
    if (hasKey) out.set(m.publicKey!, off);
  }
  return out;
}

/** Decode with limits; throws `DecodeError` on anything malformed. */
export function decodeNatMessage(bytes: Uint8Array): NatMessage {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 8) throw new DecodeError('nat message too short');
  if (b[0] !== NAT_MESSAGE_VERSION) throw new DecodeError(`nat message version ${b[0]} unknown`);
  const type = b[1]!;
  const endpointAt = (off: number): ObservedEndpoint => {
    const port = b.readUInt16BE(off + 4);
    if (port === 0) throw new DecodeError('nat message endpoint has port 0');
    return { address: `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`, port };
  };
  if (type === NatMessageType.Observed) {
    if (b.length !== 8) throw new DecodeError('nat observed message has the wrong length');
    return { type, endpoint: endpointAt(2) };
  }
  if (type !== NatMessageType.Offer && type !== NatMessageType.Answer) throw new DecodeError(`nat message type ${type} unknown`);
  if (b.length < 13) throw new DecodeError('nat offer/answer too short');
  const attempt = b.readUInt32BE(2);
  const endpoint = endpointAt(6);
  const keyBytes = b[12]!;
  if (keyBytes !== 0 && keyBytes !== PUNCH_KEY_BYTES) throw new DecodeError(`nat offer/answer key length ${keyBytes}`);
  if (b.length !== 13 + keyBytes) throw new DecodeError('nat offer/answer has the wrong length');
  return { type, attempt, endpoint, publicKey: keyBytes === 0 ? null : new Uint8Array(b.subarray(13, 13 + keyBytes)) };
}
