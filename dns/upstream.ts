/**
 * Forwarding to the host's resolvers: the `nameserver` lines of the resolv.conf weft runs with (re-read when it
 * changes), tried in order; one that does not answer within `attemptTimeoutMs` is skipped for the next. A query
 * that came over TCP goes over TCP, a UDP one over UDP (a truncated upstream answer goes back truncated, and the
 * client retries over TCP, which we forward over TCP).
 *
 * Each forwarded query gets a fresh random id on one shared UDP socket; an answer counts only when it comes from the
 * server we asked with the id we gave it. At most `maxPending` queries are in flight; more are refused (the server
 * answers SERVFAIL) and counted.
 */
import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { randomInt } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import ipaddr from 'ipaddr.js';
import type { Clock, Timer } from '../runtime/clock.js';
import type { Logger } from '../runtime/logger.js';

export interface UpstreamDeps {
  clock: Clock;
  log: Logger;
}

export interface UpstreamOptions {
  /** The resolver configuration to read. @default '/etc/resolv.conf' */
  resolvConf?: string;
  /** Addresses never forwarded to (our own listen address: a resolv.conf naming weftDNS must not loop). */
  excluded?: readonly string[];
  /** How long one server gets before the next is tried. @default 2000 */
  attemptTimeoutMs?: number;
  /** Queries in flight at most. @default 512 */
  maxPending?: number;
  /** Port upstream servers listen on. @default 53 */
  port?: number;
}

/** The `nameserver` addresses of a resolv.conf text, in order (at most 8, scope ids dropped). */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const addr = m[1]!.replace(/%.*$/, '');
    if (!ipaddr.isValid(addr)) continue;
    const canon = ipaddr.parse(addr).toString();
    if (!out.includes(canon)) out.push(canon);
    if (out.length === 8) break;
  }
  return out;
}

interface Pending {
  server: string;
  resolve(answer: Buffer | null): void;
  timer: Timer;
}

export class Upstream {
  private servers: string[] = [];
  private mtimeMs = -1;
  private socket4: Socket | undefined;
  private socket6: Socket | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly resolvConf: string;
  private readonly excluded: Set<string>;
  private readonly attemptTimeoutMs: number;
  private readonly maxPending: number;
  private readonly port: number;
  private lastCheckMs = -Infinity;
  readonly counters = {
    dns_upstream_forwarded: 0,
    dns_upstream_timeouts: 0,
    dns_upstream_failed: 0,
    dns_upstream_busy: 0,
    dns_upstream_stray: 0,
  };

  constructor(
    private readonly deps: UpstreamDeps,
    options: UpstreamOptions = {},
  ) {
    this.resolvConf = options.resolvConf ?? '/etc/resolv.conf';
    this.excluded = new Set(options.excluded ?? []);
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 2000;
    this.maxPending = options.maxPending ?? 512;
    this.port = options.port ?? 53;
  }

  async start(): Promise<void> {
    await this.refresh(true);
  }

  stop(): void {
    for (const [id, p] of this.pending) {
      p.timer.cancel();
      p.resolve(null);
      this.pending.delete(id);
    }
    this.socket4?.close();
    this.socket6?.close();
    this.socket4 = this.socket6 = undefined;
  }

  /** The servers in use now. */
  list(): readonly string[] {
    return this.servers;
  }

  /**
   * Forward one query (wire bytes) and resolve the upstream's answer with the query's own id, or null when no
   * server answered (the caller answers SERVFAIL). Never rejects.
   */
  async forward(query: Buffer, isTcp: boolean): Promise<Buffer | null> {
    if (query.length < 12) return null;
    await this.refresh(false);
    if (this.servers.length === 0) return null;
    if (this.pending.size >= this.maxPending) {
      this.counters.dns_upstream_busy++;
      return null;
    }
    this.counters.dns_upstream_forwarded++;
    const id = query.readUInt16BE(0);
    for (const server of this.servers) {
      const answer = isTcp ? await this.askTcp(server, query) : await this.askUdp(server, query);
      if (answer && answer.length >= 12) {
        const out = Buffer.from(answer);
        out.writeUInt16BE(id, 0);
        return out;
      }
    }
    this.counters.dns_upstream_failed++;
    return null;
  }

  private askUdp(server: string, query: Buffer): Promise<Buffer | null> {
    const socket = this.socketFor(server);
    let id = randomInt(0, 65536);
    for (let i = 0; this.pending.has(id) && i < 100; i++) id = randomInt(0, 65536);
    if (this.pending.has(id)) return Promise.resolve(null);
    const copy = Buffer.from(query);
    copy.writeUInt16BE(id, 0);
    return new Promise((resolve) => {
      const timer = this.deps.clock.setTimeout(() => {
        this.pending.delete(id);
        this.counters.dns_upstream_timeouts++;
        resolve(null);
      }, this.attemptTimeoutMs);
      this.pending.set(id, { server, resolve, timer });
      socket.send(copy, this.port, server, (err) => {
        if (err && this.pending.get(id)?.server === server) {
          timer.cancel();
          this.pending.delete(id);
          resolve(null);
        }
      });
    });
  }

  private askTcp(server: string, query: Buffer): Promise<Buffer | null> {
    return new Promise((resolve) => {
      const s = connect({ host: server, port: this.port });
      let buf = Buffer.alloc(0);
      let isDone = false;
      const finish = (answer: Buffer | null) => {
        if (isDone) return;
        isDone = true;
        timer.cancel();
        s.destroy();
        resolve(answer);
      };
      const timer = this.deps.clock.setTimeout(() => {
        this.counters.dns_upstream_timeouts++;
        finish(null);
      }, this.attemptTimeoutMs);
      s.on('error', () => finish(null));
      s.on('close', () => finish(null));
      s.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(query.length, 0);
        s.write(Buffer.concat([len, query]));
      });
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length > 65537) finish(null);
        else if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      });
    });
  }

  private socketFor(server: string): Socket {
    const is6 = server.includes(':');
    let s = is6 ? this.socket6 : this.socket4;
    if (s) return s;
    s = createSocket(is6 ? 'udp6' : 'udp4');
    s.on('message', (msg, rinfo) => this.onAnswer(msg, rinfo.address));
    s.on('error', (err) => this.deps.log.warn({ err }, 'dns: upstream socket error'));
    s.unref();
    if (is6) this.socket6 = s;
    else this.socket4 = s;
    return s;
  }

  private onAnswer(msg: Buffer, from: string): void {
    if (msg.length < 12 || (msg[2]! & 0x80) === 0) {
      this.counters.dns_upstream_stray++;
      return;
    }
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    let canon = from;
    try {
      canon = ipaddr.process(from).toString();
    } catch {
      /* keep as is */
    }
    if (!p || p.server !== canon) {
      this.counters.dns_upstream_stray++;
      return;
    }
    this.pending.delete(id);
    p.timer.cancel();
    p.resolve(msg);
  }

  /** Re-read the resolv.conf when it changed (checked at most once a second). */
  private async refresh(isForced: boolean): Promise<void> {
    const now = this.deps.clock.now();
    if (!isForced && now - this.lastCheckMs < 1000) return;
    this.lastCheckMs = now;
    try {
      const st = await stat(this.resolvConf);
      if (!isForced && st.mtimeMs === this.mtimeMs) return;
      this.mtimeMs = st.mtimeMs;
      const servers = parseResolvConf(await readFile(this.resolvConf, 'utf8')).filter((s) => !this.excluded.has(s));
      if (servers.join() !== this.servers.join())
        this.deps.log.info({ servers, file: this.resolvConf }, `dns: upstream servers ${servers.join(', ') || '(none)'}`);
      this.servers = servers;
    } catch (err) {
      if (this.mtimeMs !== -2)
        this.deps.log.warn({ err, file: this.resolvConf }, `dns: cannot read ${this.resolvConf}: no upstream servers`);
      this.mtimeMs = -2;
      this.servers = [];
    }
  }
}
