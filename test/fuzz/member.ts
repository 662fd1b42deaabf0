/**
 * The fuzzer as a member of the network under test: an in-process weft router built from the library (gossip/'s
 * Mesh over the real WebSocket transport, crypto/'s PasswordSecurity with the network password), joining a real
 * router like any other. It holds the real per-direction data keys of each of its connections, so it can seal
 * mutated plaintexts that the target opens, and it answers heartbeats on its own UDP socket so the target counts
 * its data path as established (routes to it exist, the receive path runs in full).
 *
 * It has no bridge and no sleeve: datagrams are built by hand from router/sleeve-format.ts, one at a time.
 */
import { createSocket, type Socket } from 'node:dgram';
import { Mesh, type Neighbour } from '../../gossip/mesh.js';
import { WsTransport } from '../../gossip/ws-transport.js';
import { PasswordSecurity } from '../../crypto/password-security.js';
import { peerNameToId, randomPeerName } from '../../gossip/peer-name.js';
import { createLogger } from '../../runtime/logger.js';
import { systemClock } from '../../runtime/clock.js';
import { systemRandom } from '../../runtime/random.js';
import type { DataSession } from '../../crypto/data-session.js';
import {
  HEADER_BYTES,
  MessageType,
  checkHeader,
  flagsFor,
  isEncryptedFlags,
  keyPhaseOf,
  readSender,
  readSeq,
  writeHeader,
} from '../../router/sleeve-format.js';
import { TAG_BYTES } from './sleeve-cases.js';

export interface FuzzMemberOptions {
  /** The network password, or undefined for a network without one. */
  password: string | undefined;
  /** Control address of the router to join ("host:port"). */
  join: string;
  /** Our UDP (and control) port. @default 6783 */
  port?: number;
  /** Underlay hosts we exchange data with in clear (the target's --trusted-subnets covers us). @default none */
  clearHosts?: readonly string[];
  nickname: string;
}

/** A neighbour as the member sends to it. */
export interface MemberPeer {
  id: number;
  host: string;
  port: number;
  /** Null: clear datagrams. */
  data: DataSession | null;
}

export class FuzzMember {
  readonly name = randomPeerName();
  readonly id = peerNameToId(this.name);
  readonly uid = BigInt.asUintN(64, BigInt(Math.floor(Math.random() * 2 ** 52)) * 4099n + 7n).toString();
  private readonly mesh: Mesh;
  private readonly socket: Socket;
  private readonly security: PasswordSecurity | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly clearSeq = new Map<number, number>();
  readonly stats = { heartbeatsOut: 0, acksOut: 0, datagramsIn: 0, openFailures: 0, sendErrors: 0 };

  constructor(private readonly options: FuzzMemberOptions) {
    const log = createLogger({ level: 'warn', destination: process.stderr as never });
    this.security =
      options.password === undefined ? undefined : new PasswordSecurity({ clock: systemClock }, { password: options.password });
    this.mesh = new Mesh(
      { transport: new WsTransport(), clock: systemClock, random: systemRandom, log, ...(this.security && { security: this.security }) },
      {
        peerName: this.name,
        nickname: options.nickname,
        uid: this.uid,
        listenAddr: `0.0.0.0:${options.port ?? 6783}`,
        udpPort: options.port ?? 6783,
        isDiscoveryEnabled: false,
      },
    );
    this.socket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    this.socket.on('message', (m, rinfo) => this.receive(m, rinfo.address));
    this.socket.on('error', () => this.stats.sendErrors++);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(this.options.port ?? 6783, () => {
        this.socket.off('error', reject);
        resolve();
      });
    });
    await this.mesh.start();
    this.mesh.connect([this.options.join], false);
    this.heartbeat = setInterval(() => {
      for (const p of this.peers()) this.sendControl(p, MessageType.Heartbeat);
    }, 1000);
  }

  /** Wait until a ready connection to the peer at `host` exists; resolves it. */
  async until(host: string, timeoutMs: number): Promise<MemberPeer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const p = this.peers().find((x) => x.host === host);
      if (p) return p;
      if (Date.now() > deadline) throw new Error(`no connection to ${host} within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Our neighbours now, with the session to seal for each (null when the data to it is clear). */
  peers(): MemberPeer[] {
    return this.mesh.neighbours().map((n: Neighbour) => ({
      id: peerNameToId(n.name),
      host: n.remoteHost,
      port: n.udpPort,
      data: n.session && !(this.options.clearHosts ?? []).includes(n.remoteHost) ? n.session.data : null,
    }));
  }

  /** Look up the peer again (its session object changes when the connection is replaced). */
  peer(id: number): MemberPeer | undefined {
    return this.peers().find((p) => p.id === id);
  }

  /** Next clear seq toward `peer` (receivers ignore it; a counter like the sleeve's). */
  nextClearSeq(peer: number): number {
    const s = (this.clearSeq.get(peer) ?? 0) + 1;
    this.clearSeq.set(peer, s);
    return s;
  }

  /** Send `datagram` to `peer` as is; `done` runs when the kernel took it. */
  send(peer: MemberPeer, datagram: Buffer, done: () => void): void {
    this.socket.send(datagram, peer.port, peer.host, (err) => {
      if (err) this.stats.sendErrors++;
      done();
    });
  }

  /**
   * Build a datagram of `type` with `body` from us to `peer`: sealed with the pair's current data key, or clear.
   * Returns the datagram (a new buffer) and its seq.
   */
  build(peer: MemberPeer, type: MessageType, body: Buffer): { datagram: Buffer; seq: number; sealedBytes: number } {
    const data = peer.data;
    const out = Buffer.alloc(HEADER_BYTES + body.length + TAG_BYTES);
    body.copy(out, HEADER_BYTES);
    if (data === null) {
      const seq = this.nextClearSeq(peer.id);
      writeHeader(out, 0, flagsFor(type, false, 0), this.id, seq);
      return { datagram: out.subarray(0, HEADER_BYTES + body.length), seq, sealedBytes: body.length };
    }
    const phase = data.sendKeyPhase;
    const seq = data.nextSeq();
    writeHeader(out, 0, flagsFor(type, true, phase), this.id, seq);
    const sealed = data.seal(out, 0, HEADER_BYTES, body.length, seq);
    if (sealed < 0) throw new Error(`seal refused (${sealed}): the data session has no current key`);
    return { datagram: out.subarray(0, HEADER_BYTES + sealed), seq, sealedBytes: sealed };
  }

  private sendControl(peer: MemberPeer, type: MessageType): void {
    try {
      const { datagram } = this.build(peer, type, Buffer.alloc(0));
      this.send(peer, datagram, () => {});
      if (type === MessageType.Heartbeat) this.stats.heartbeatsOut++;
      else this.stats.acksOut++;
    } catch {
      this.stats.sendErrors++;
    }
  }

  /** Datagrams from neighbours: answer heartbeats (that is all the target needs from us). */
  private receive(m: Buffer, from: string): void {
    this.stats.datagramsIn++;
    const type = checkHeader(m, 0, m.length);
    if (type !== MessageType.Heartbeat) return;
    const sender = readSender(m, 0);
    const peer = this.peer(sender);
    if (!peer || peer.host !== from) return;
    if (isEncryptedFlags(m[1]!)) {
      if (!peer.data) return;
      const r = peer.data.open(m, 0, HEADER_BYTES, m.length - HEADER_BYTES, readSeq(m, 0), keyPhaseOf(m[1]!));
      if (r < 0) {
        this.stats.openFailures++;
        return;
      }
    } else if (peer.data) return;
    this.sendControl(peer, MessageType.HeartbeatAck);
  }

  async stop(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.mesh.stop();
    this.security?.destroy();
    await new Promise<void>((r) => this.socket.close(() => r()));
  }
}
