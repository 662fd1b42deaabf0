/**
 * Gossip channels over the mesh's connections: named channels, each backed by a subsystem's `Gossiper`.
 *
 * Spreading (as weaveworks/mesh gossip.go):
 * - A local change (`channel.gossip(update)`) goes to every direct neighbour at once.
 * - A received update is merged; the part that was new to us (the delta `onGossip` returns) goes on to every
 *   neighbour except the one it came from. Merges are idempotent, so a copy arriving twice costs a merge, no harm.
 *   A gossiper that `spreadsItself` (topology: topology-spread.ts) passes its deltas on itself, coalesced, with
 *   `gossipTo`.
 * - A new neighbour gets the complete state of every channel (full exchange, both sides).
 * - Every `gossipIntervalMs` (jittered ±10 %) each channel's complete state goes to ceil(log2(peers)) random
 *   neighbours, not to all: O(N log N) messages per round over the mesh, enough to repair anything lost.
 * - Broadcasts travel the broadcast tree of their source (routes.ts), unicasts hop along unicast routes.
 *
 * Frame bodies (after the FrameType byte, connection.ts):
 *
 *     Gossip:     [1: channel name length C][C: channel name][payload]
 *     Broadcast:  [1: C][C: channel name][6: source peer][payload]
 *     Unicast:    [1: C][C: channel name][6: source peer][6: destination peer][payload]
 *
 * A frame whose header does not decode throws `DecodeError` (the connection closes). A payload the gossiper refuses
 * (it throws) is counted and dropped, and the connection stays up: channel.ts promises that to subsystems, and one
 * subsystem's bad state must not cut the control connection every other channel uses.
 *
 * Attribution: what arrives is the connection's peer's word (`from`), never a name in the payload. A broadcast or
 * unicast naming source S is delivered (and relayed) only when it arrives from S itself or from a neighbour one hop
 * closer to S on a shortest path (`ControlRoutes.upstream`): a neighbour cannot make its words pass for S's unless it
 * sits on S's path to us. Others are dropped and counted (`gossip_bad_relay`).
 *
 * Size: no frame larger than `MAX_GOSSIP_FRAME_BYTES` is sent (counted `gossip_frame_over_cap` and logged with the
 * channel), because the receiver's transport would close the connection (1009) and the full exchange at every
 * reconnect would close it again. Gossipers split big states into several updates instead (topology does).
 */
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';
import type { Random } from '../runtime/random.js';
import type { GossipChannel, Gossiper } from './channel.js';
import { FrameType } from './connection.js';
import { DecodeError } from './decode-error.js';
import { peerIdToName, peerNameToId, type PeerName } from './peer-name.js';
import type { GossipChannelReport, GossipReport } from './report.js';
import type { ControlRoutes } from './routes.js';

/** What gossip needs from the mesh. */
export interface GossipNetwork {
  readonly localName: PeerName;
  /** Peers with a ready connection. */
  neighbourNames(): readonly PeerName[];
  /** Send a frame to a neighbour; false if not connected. */
  sendTo(peer: PeerName, frame: Uint8Array): boolean;
  routes(): ControlRoutes;
  /** Peers in our topology view, ourselves included (sizes the fan-out). */
  peerCount(): number;
}

export interface GossipDeps {
  clock: Clock;
  random: Random;
  log: Logger;
  network: GossipNetwork;
  count: (reason: string) => void;
}

export interface GossipOptions {
  /** Period of complete-state gossip. @default 30000 */
  gossipIntervalMs?: number;
}

const CHANNEL_NAME_RE = /^[\x21-\x7e]{1,64}$/;

/**
 * Largest frame we send: the transports' 1 MiB message limit, less room for sealing and the frame header. Every
 * router uses the same limit, so a frame we received can always be relayed.
 */
export const MAX_GOSSIP_FRAME_BYTES = 1024 * 1024 - 4096;

/** Distinct warnings kept for warn-once; past it, warnings are only counted (each key is chosen by a sender). */
const MAX_WARNED = 1024;

export class Gossip {
  private readonly channels = new Map<string, MeshChannel>();
  private readonly intervalMs: number;
  private timer: Timer | null = null;
  private readonly warned = new Set<string>();
  readonly stats: GossipReport = { rounds: 0, lastRoundMessages: 0, channels: {} };

  constructor(
    private readonly deps: GossipDeps,
    options: GossipOptions = {},
  ) {
    this.intervalMs = options.gossipIntervalMs ?? 30_000;
  }

  /** Register a channel; the name must be the same on every peer. Throws on a duplicate or invalid name. */
  channel(name: string, gossiper: Gossiper): GossipChannel {
    if (!CHANNEL_NAME_RE.test(name)) throw new RangeError(`channel name ${JSON.stringify(name)} must be 1..64 printable ASCII characters`);
    if (this.channels.has(name)) throw new Error(`gossip channel ${name} is already registered`);
    const c = new MeshChannel(name, gossiper, this);
    this.channels.set(name, c);
    this.stats.channels[name] = c.stats;
    return c;
  }

  start(): void {
    if (this.timer) return;
    this.scheduleRound();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** One periodic round now: each channel's complete state to a logarithmic fan-out of neighbours. */
  round(): void {
    const net = this.deps.network;
    const neighbours = net.neighbourNames();
    const fanout = Math.min(neighbours.length, Math.max(1, Math.ceil(Math.log2(Math.max(2, net.peerCount())))));
    let sent = 0;
    for (const c of this.channels.values()) {
      const frames = c.gossiper.gossipFor ? null : this.stateFrames(c);
      if (frames?.length === 0) continue;
      for (const peer of this.deps.random.sample(neighbours, fanout))
        for (const f of frames ?? this.stateFrames(c, peer, 'round')) if (this.send(c, peer, f)) sent++;
    }
    this.stats.rounds++;
    this.stats.lastRoundMessages = sent;
  }

  /** Full exchange with a new neighbour: the complete state of every channel. */
  onNewNeighbour(peer: PeerName): void {
    for (const c of this.channels.values()) for (const f of this.stateFrames(c, peer, 'exchange')) this.send(c, peer, f);
  }

  /** A channel's complete state (or what it sends `peer` instead) as frames (none when empty or when it threw). */
  private stateFrames(c: MeshChannel, peer?: PeerName, kind: 'exchange' | 'round' = 'round'): Uint8Array[] {
    const g = c.gossiper;
    const state = this.safely(c, () => (peer !== undefined && g.gossipFor ? g.gossipFor(peer, kind) : g.gossip()));
    if (!state) return [];
    return (state instanceof Uint8Array ? [state] : state).map((s) => gossipFrame(c.header, s));
  }

  /** Hand `frame` (type byte, then a channel's header) to neighbour `peer`, counted on its channel when sent. */
  private sendFrame(peer: PeerName, frame: Uint8Array): boolean {
    if (!this.deps.network.sendTo(peer, frame)) return false;
    const s = this.channelStatsOf(frame, 1);
    if (s) {
      s.messagesOut++;
      s.bytesOut += frame.length;
    }
    return true;
  }

  /** The stats of the channel whose [length][name] header is at `bytes[at]`, if it is one of ours. */
  private channelStatsOf(bytes: Uint8Array, at: number): GossipChannelReport | undefined {
    const nameLen = bytes[at];
    if (nameLen === undefined || bytes.length < at + 1 + nameLen) return undefined;
    return this.stats.channels[Buffer.from(bytes.buffer, bytes.byteOffset + at + 1, nameLen).toString('latin1')];
  }

  /** Send one frame to a neighbour unless it is over the frame cap. */
  send(c: MeshChannel, peer: PeerName, frame: Uint8Array): boolean {
    if (frame.length > MAX_GOSSIP_FRAME_BYTES) {
      this.refuseOversized(c, frame.length);
      return false;
    }
    return this.sendFrame(peer, frame);
  }

  refuseOversized(c: MeshChannel, bytes: number): void {
    this.deps.count('gossip_frame_over_cap');
    this.warnOnce(
      `cap|${c.name}`,
      { channel: c.name, bytes, cap: MAX_GOSSIP_FRAME_BYTES, reason: 'gossip frame cap' },
      'gossip message over the frame cap (MAX_GOSSIP_FRAME_BYTES) not sent; the state must shrink',
    );
  }

  /** Did a message naming `src` come the way `src`'s messages travel to us? */
  private isAttributable(src: PeerName, from: PeerName): boolean {
    if (src === from) return true;
    return this.deps.network.routes().upstream.get(src)?.includes(from) ?? false;
  }

  private refuseRelay(c: MeshChannel, src: PeerName, from: PeerName): void {
    this.deps.count('gossip_bad_relay');
    this.warnOnce(
      `relay|${from}|${src}`,
      { channel: c.name, peer: from, src, reason: 'not on a path from the source' },
      'dropped gossip naming a source it cannot have come from over this connection',
    );
  }

  private warnOnce(key: string, fields: Record<string, unknown>, msg: string): void {
    if (this.warned.has(key) || this.warned.size >= MAX_WARNED) return;
    this.warned.add(key);
    this.deps.log.warn(fields, msg);
  }

  /** A Gossip, Broadcast or Unicast frame body from neighbour `from`. Throws `DecodeError` on a bad header. */
  onFrame(from: PeerName, type: number, body: Uint8Array): void {
    if (body.length < 1) throw new DecodeError('gossip frame has no channel name');
    const nameLen = body[0]!;
    let o = 1 + nameLen;
    const fixed = type === FrameType.Broadcast ? 6 : type === FrameType.Unicast ? 12 : 0;
    if (nameLen === 0 || body.length < o + fixed) throw new DecodeError(`gossip frame truncated (${body.length} bytes)`);
    const name = Buffer.from(body.buffer, body.byteOffset + 1, nameLen).toString('latin1');
    if (!CHANNEL_NAME_RE.test(name)) throw new DecodeError('gossip frame has a malformed channel name');
    const c = this.channels.get(name);
    if (!c) {
      // A subsystem we do not run (IPAM off here, on there): not the sender's fault, not worth a connection.
      this.deps.count('gossip_unknown_channel');
      return;
    }
    const view = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    c.stats.messagesIn++;
    c.stats.bytesIn += 1 + body.length;
    if (type === FrameType.Gossip) {
      const payload = body.subarray(o);
      const delta = this.safely(c, () => c.gossiper.onGossip(payload, from), from);
      if (delta) {
        c.stats.merges++;
        if (c.gossiper.spreadsItself !== true) this.sendToNeighbours(gossipFrame(c.header, delta), from, c);
      }
    } else if (type === FrameType.Broadcast) {
      const src = peerIdToName(view.readUIntBE(o, 6));
      o += 6;
      if (src === this.deps.network.localName) return; // our own broadcast come back: routes are settling
      if (!this.isAttributable(src, from)) return this.refuseRelay(c, src, from);
      this.forwardBroadcast(src, body, from);
      const payload = body.subarray(o);
      this.safely(c, () => c.gossiper.onGossipBroadcast(src, payload), from);
    } else if (type === FrameType.Unicast) {
      const src = peerIdToName(view.readUIntBE(o, 6));
      const dst = peerIdToName(view.readUIntBE(o + 6, 6));
      o += 12;
      if (!this.isAttributable(src, from)) return this.refuseRelay(c, src, from);
      if (dst === this.deps.network.localName) {
        const payload = body.subarray(o);
        this.safely(c, () => c.gossiper.onGossipUnicast(src, payload), from);
      } else {
        this.relayUnicast(dst, frameWithType(FrameType.Unicast, body));
      }
    }
  }

  sendToNeighbours(frame: Uint8Array, except?: PeerName, c?: MeshChannel): void {
    if (frame.length > MAX_GOSSIP_FRAME_BYTES) {
      if (c) this.refuseOversized(c, frame.length);
      else this.deps.count('gossip_frame_over_cap');
      return;
    }
    for (const peer of this.deps.network.neighbourNames()) if (peer !== except) this.sendFrame(peer, frame);
  }

  broadcastFrom(c: MeshChannel, update: Uint8Array): void {
    const local = this.deps.network.localName;
    const body = new Uint8Array(c.header.length + 6 + update.length);
    body.set(c.header, 0);
    Buffer.from(body.buffer, body.byteOffset).writeUIntBE(peerNameToId(local), c.header.length, 6);
    body.set(update, c.header.length + 6);
    this.forwardBroadcast(local, body, null);
  }

  unicastFrom(c: MeshChannel, dst: PeerName, message: Uint8Array): boolean {
    const net = this.deps.network;
    const body = new Uint8Array(c.header.length + 12 + message.length);
    body.set(c.header, 0);
    const view = Buffer.from(body.buffer, body.byteOffset);
    view.writeUIntBE(peerNameToId(net.localName), c.header.length, 6);
    view.writeUIntBE(peerNameToId(dst), c.header.length + 6, 6);
    body.set(message, c.header.length + 12);
    return this.relayUnicast(dst, frameWithType(FrameType.Unicast, body));
  }

  private forwardBroadcast(src: PeerName, body: Uint8Array, from: PeerName | null): void {
    const hops = this.deps.network.routes().broadcast.get(src);
    if (!hops || hops.length === 0) return;
    if (1 + body.length > MAX_GOSSIP_FRAME_BYTES) {
      this.deps.count('gossip_frame_over_cap');
      return;
    }
    const frame = frameWithType(FrameType.Broadcast, body);
    for (const hop of hops) if (hop !== from && hop !== src) this.sendFrame(hop, frame);
  }

  private relayUnicast(dst: PeerName, frame: Uint8Array): boolean {
    if (frame.length > MAX_GOSSIP_FRAME_BYTES) {
      this.deps.count('gossip_frame_over_cap');
      return false;
    }
    const hop = this.deps.network.routes().unicast.get(dst);
    if (!hop || !this.sendFrame(hop, frame)) {
      this.deps.count('unicast_unreachable');
      return false;
    }
    return true;
  }

  /** Run a gossiper callback; a throw is counted, logged once per channel and sender, and dropped. */
  private safely<T>(c: MeshChannel, fn: () => T, from?: PeerName): T | null {
    try {
      return fn();
    } catch (err) {
      const isDecode = err instanceof DecodeError;
      this.deps.count(isDecode ? 'gossip_decode_error' : 'gossip_handler_error');
      this.warnOnce(
        `${c.name}|${from ?? ''}|${isDecode}`,
        { channel: c.name, peer: from, err },
        isDecode ? 'dropped gossip that does not decode' : 'gossip handler failed',
      );
      return null;
    }
  }

  private scheduleRound(): void {
    const delay = this.intervalMs * (0.9 + 0.2 * this.deps.random.next());
    this.timer = this.deps.clock.setTimeout(() => {
      this.round();
      if (this.timer) this.scheduleRound();
    }, delay);
  }
}

class MeshChannel implements GossipChannel {
  /** [length][name]: the start of every frame body on this channel. */
  readonly header: Uint8Array;
  readonly stats: GossipChannelReport = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, merges: 0 };

  constructor(
    readonly name: string,
    readonly gossiper: Gossiper,
    private readonly owner: Gossip,
  ) {
    this.header = Uint8Array.from([name.length, ...Buffer.from(name, 'latin1')]);
  }

  /** A local change: to every direct neighbour now. */
  gossip(update: Uint8Array): void {
    this.owner.sendToNeighbours(gossipFrame(this.header, update), undefined, this);
  }

  gossipTo(peer: string, update: Uint8Array): boolean {
    return this.owner.send(this, peer, gossipFrame(this.header, update));
  }

  gossipBroadcast(update: Uint8Array): void {
    this.owner.broadcastFrom(this, update);
  }

  gossipUnicast(dst: string, message: Uint8Array): boolean {
    return this.owner.unicastFrom(this, dst, message);
  }
}

function gossipFrame(header: Uint8Array, payload: Uint8Array): Uint8Array {
  const f = new Uint8Array(1 + header.length + payload.length);
  f[0] = FrameType.Gossip;
  f.set(header, 1);
  f.set(payload, 1 + header.length);
  return f;
}

function frameWithType(type: number, body: Uint8Array): Uint8Array {
  const f = new Uint8Array(1 + body.length);
  f[0] = type;
  f.set(body, 1);
  return f;
}
