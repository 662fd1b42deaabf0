/**
 * The weftDNS server: UDP and TCP on one address and port (53 by default), dns-packet for the wire format.
 *
 *   datagram / TCP frame -> length and header checks -> dns-packet decode -> AnswerBuilder -> encode -> send
 *                                                                        \-> Upstream.forward (outside our zone)
 *
 * Bad input never throws out of here: a packet shorter than a header, or a response sent to us, is dropped and
 * counted; one that does not decode gets FORMERR (with its id) and is counted. An answer larger than the client's
 * UDP limit (512 bytes, or its EDNS size) goes back with TC set and no records, and the client asks again over TCP,
 * where answers up to 65535 bytes are served. TCP connections are limited in number, idle time and bytes buffered.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import dnsPacket, { type Packet } from 'dns-packet';
import type { Logger } from '../runtime/logger.js';
import { Flags, Rcode, responseTo, udpLimitOf, type AnswerBuilder } from './answer.js';
import type { Upstream } from './upstream.js';
import { WeftError } from '../runtime/errors.js';

export interface DnsServerDeps {
  log: Logger;
  answers: AnswerBuilder;
  upstream: Upstream;
}

export interface DnsServerOptions {
  host: string;
  /** @default 53 */
  port?: number;
  /** TCP connections at once. @default 128 */
  maxTcpConnections?: number;
  /** A TCP connection idle this long is closed. @default 10000 */
  tcpIdleMs?: number;
}

/** The server could not bind its address. */
export class DnsListenError extends WeftError {
  readonly code = 'ERR_DNS_LISTEN';
  override readonly status = 500;
  constructor(addr: string, reason: string) {
    super(`weftDNS cannot listen on ${addr}: ${reason}; choose another --dns-listen-address or turn DNS off with --no-dns`);
  }
}

export class DnsServer {
  private udp: Socket | undefined;
  private tcp: Server | undefined;
  private readonly tcpSockets = new Set<TcpSocket>();
  private readonly port: number;
  private readonly maxTcp: number;
  private readonly tcpIdleMs: number;
  readonly counters = {
    dns_queries_udp: 0,
    dns_queries_tcp: 0,
    dns_dropped_short: 0,
    dns_dropped_response: 0,
    dns_formerr: 0,
    dns_truncated: 0,
    dns_servfail: 0,
    dns_tcp_refused: 0,
    dns_tcp_bad_frame: 0,
  };

  constructor(
    private readonly deps: DnsServerDeps,
    private readonly options: DnsServerOptions,
  ) {
    this.port = options.port ?? 53;
    this.maxTcp = options.maxTcpConnections ?? 128;
    this.tcpIdleMs = options.tcpIdleMs ?? 10_000;
  }

  /** "host:port" as bound (the port differs from the option when it was 0). */
  get address(): string {
    const a = this.udp?.address();
    const port = a ? a.port : this.port;
    return this.options.host.includes(':') ? `[${this.options.host}]:${port}` : `${this.options.host}:${port}`;
  }

  async start(): Promise<void> {
    const { host } = this.options;
    const udp = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    udp.on('error', (err) => this.deps.log.warn({ err }, 'dns: udp socket error'));
    await new Promise<void>((resolve, reject) => {
      udp.once('error', (err: NodeJS.ErrnoException) => reject(new DnsListenError(`${host}:${this.port}`, err.code ?? err.message)));
      udp.bind(this.port, host, () => resolve());
    });
    this.udp = udp;
    const boundPort = udp.address().port;
    const tcp = createServer((s) => this.onTcp(s));
    tcp.maxConnections = this.maxTcp;
    tcp.on('drop', () => this.counters.dns_tcp_refused++);
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', (err: NodeJS.ErrnoException) => reject(new DnsListenError(`${host}:${boundPort} (tcp)`, err.code ?? err.message)));
      tcp.listen(boundPort, host, () => resolve());
    }).catch((err: unknown) => {
      udp.close();
      this.udp = undefined;
      throw err;
    });
    this.tcp = tcp;
    this.deps.log.info({ addr: this.address }, `weftDNS listening on ${this.address} (udp, tcp)`);
  }

  async stop(): Promise<void> {
    this.udp?.close();
    this.udp = undefined;
    for (const s of this.tcpSockets) s.destroy();
    const tcp = this.tcp;
    this.tcp = undefined;
    if (tcp) await new Promise<void>((r) => tcp.close(() => r()));
  }

  /**
   * Answer one query's bytes: the response bytes (not yet truncated), or null to drop. Exported for the fuzz test
   * and the TCP path; never throws.
   */
  async respond(msg: Buffer, isTcp: boolean): Promise<{ bytes: Buffer; query: Packet | undefined } | null> {
    if (msg.length < 12) {
      this.counters.dns_dropped_short++;
      return null;
    }
    if ((msg[2]! & 0x80) !== 0) {
      this.counters.dns_dropped_response++;
      return null;
    }
    let query: Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      this.counters.dns_formerr++;
      return { bytes: formErr(msg), query: undefined };
    }
    try {
      const result = this.deps.answers.answer(query);
      if (result.kind === 'answer') return { bytes: dnsPacket.encode(result.response), query };
      const forwarded = await this.deps.upstream.forward(msg, isTcp);
      if (forwarded) return { bytes: forwarded, query };
      this.counters.dns_servfail++;
      return { bytes: dnsPacket.encode(responseTo(query, Rcode.SERVFAIL)), query };
    } catch {
      // dns-packet decodes some things it cannot encode again (odd record data echoed in the question): FORMERR.
      this.counters.dns_formerr++;
      return { bytes: formErr(msg), query: undefined };
    }
  }

  private onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    this.counters.dns_queries_udp++;
    void this.respond(msg, false).then((r) => {
      if (!r || !this.udp) return;
      let bytes = r.bytes;
      const limit = r.query ? udpLimitOf(r.query) : 512;
      if (bytes.length > limit) {
        this.counters.dns_truncated++;
        bytes = r.query ? truncated(r.query, r.bytes) : truncateRaw(bytes);
      }
      this.udp.send(bytes, rinfo.port, rinfo.address);
    });
  }

  private onTcp(s: TcpSocket): void {
    this.tcpSockets.add(s);
    s.setTimeout(this.tcpIdleMs, () => s.destroy());
    s.on('close', () => this.tcpSockets.delete(s));
    s.on('error', () => s.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    s.on('data', (d: Buffer) => {
      buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len < 12) {
          this.counters.dns_tcp_bad_frame++;
          s.destroy();
          return;
        }
        if (buf.length < 2 + len) break;
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        if (++inFlight > 16) {
          this.counters.dns_tcp_bad_frame++;
          s.destroy();
          return;
        }
        this.counters.dns_queries_tcp++;
        void this.respond(msg, true).then((r) => {
          inFlight--;
          if (!r || s.destroyed) return;
          const len2 = Buffer.alloc(2);
          len2.writeUInt16BE(Math.min(r.bytes.length, 65535), 0);
          s.write(Buffer.concat([len2, r.bytes.subarray(0, 65535)]));
        });
      }
    });
  }
}

/** FORMERR for a query that does not decode: its id and opcode, no sections. */
function formErr(msg: Buffer): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(msg.readUInt16BE(0), 0);
  const opcodeAndRd = msg.readUInt16BE(2) & (0x7800 | Flags.RD);
  b.writeUInt16BE(0x8000 | opcodeAndRd | Flags.RA | Rcode.FORMERR, 2);
  return b;
}

/** The response with TC set and no records (question and OPT kept), from the full response's flags. */
function truncated(query: Packet, full: Buffer): Buffer {
  const flags = (full.readUInt16BE(2) & 0x7fff) | Flags.TC;
  const r = responseTo(query, 0);
  r.flags = flags;
  return dnsPacket.encode(r);
}

/** A forwarded answer too big for the client: header only, TC set. */
function truncateRaw(bytes: Buffer): Buffer {
  const b = Buffer.from(bytes.subarray(0, 12));
  b.writeUInt16BE(b.readUInt16BE(2) | Flags.TC, 2);
  b.writeUInt16BE(0, 4);
  b.writeUInt16BE(0, 6);
  b.writeUInt16BE(0, 8);
  b.writeUInt16BE(0, 10);
  return b;
}
