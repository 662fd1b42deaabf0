/**
 * An in-memory `Transport` for simulations: many routers in one process, time from a `Clock` (a `FakeClock` in
 * tests), with knobs for latency, partitions and dead hosts.
 *
 * Each router gets its own view, `network.transport(host)`: listening on "0.0.0.0:6783" binds "<host>:6783", and a
 * connection it dials appears at the listener with remoteAddr "<host>:<ephemeral port>". Partitions are between
 * hosts (a partition cuts machines apart, not single ports), so `partition()` accepts "host" or "host:port".
 *
 * Delivery: every message, connection and close travels through `clock.setTimeout(latency)`, in order per direction
 * (a later message never overtakes an earlier one even when the latency knob returns less). Nothing is delivered
 * synchronously inside `send()`, so handlers never re-enter the sender.
 */
import type { Clock } from '../runtime/clock.js';
import { joinAddress, splitAddress } from '../runtime/address.js';
import {
  sanitizeRemoteText,
  truncateCloseReason,
  type DialOptions,
  type Transport,
  type TransportConnection,
  type TransportListener,
} from './transport.js';

export interface MemoryNetworkOptions {
  /**
   * One-way latency per message in ms: a number, or a function of (from host, to host) evaluated per message.
   * @default 1
   */
  latencyMs?: number | ((fromHost: string, toHost: string) => number);
  /** Messages above this size close the connection at the receiver, as `ws` does. @default 1 MiB */
  maxPayloadBytes?: number;
}

type CloseHandler = (reason: string) => void;
type MessageHandler = (message: Uint8Array) => void;

class MemoryConnection implements TransportConnection {
  peer!: MemoryConnection;
  private messageHandler: MessageHandler | null = null;
  private closeHandler: CloseHandler | null = null;
  private early: Uint8Array[] = [];
  private isClosed = false;
  private closeReason: string | null = null;
  /** `setMaxMessageBytes`: below the network's maximum while a handshake is under way. */
  private maxMessageBytes = Infinity;
  /** Time the last message toward `peer` is due, so later ones never overtake it. */
  private lastDueAt = 0;

  constructor(
    private readonly network: MemoryNetwork,
    readonly localHost: string,
    readonly remoteAddr: string,
    readonly remoteHost: string,
    readonly isOutbound: boolean,
  ) {}

  get isOpen(): boolean {
    return !this.isClosed;
  }

  send(message: Uint8Array): void {
    if (this.isClosed) return;
    this.network.sentMessages++;
    // Copy: the caller may reuse its buffer once send returns, as with a real socket.
    const copy = Uint8Array.from(message);
    const peer = this.peer;
    this.schedule(() => peer.receive(copy));
  }

  close(fullReason: string): void {
    if (this.isClosed) return;
    const reason = truncateCloseReason(fullReason);
    this.finish(reason);
    const peer = this.peer;
    this.schedule(() => peer.finish(sanitizeRemoteText(reason)));
  }

  setMaxMessageBytes(bytes: number): void {
    this.maxMessageBytes = bytes;
  }

  onMessage(handler: MessageHandler): void {
    this.messageHandler = handler;
    const early = this.early;
    this.early = [];
    for (const m of early) if (!this.isClosed) handler(m);
  }

  onClose(handler: CloseHandler): void {
    this.closeHandler = handler;
    if (this.closeReason !== null) handler(this.closeReason);
  }

  /** Close without telling the other side (the link died); the far end learns only from its own timeouts. */
  sever(reason: string): void {
    this.finish(reason);
  }

  private schedule(fn: () => void): void {
    const clock = this.network.clock;
    const due = Math.max(clock.now() + this.network.latency(this.localHost, this.peer.localHost), this.lastDueAt);
    this.lastDueAt = due;
    clock.setTimeout(fn, due - clock.now());
  }

  private receive(message: Uint8Array): void {
    if (this.isClosed) return;
    if (message.byteLength > Math.min(this.network.maxPayloadBytes, this.maxMessageBytes)) {
      this.close('message too big');
      return;
    }
    if (this.messageHandler) this.messageHandler(message);
    else this.early.push(message);
  }

  finish(reason: string): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason;
    this.early = [];
    this.network.forget(this);
    this.closeHandler?.(reason);
  }
}

class MemoryListener implements TransportListener {
  isClosed = false;
  constructor(
    private readonly network: MemoryNetwork,
    readonly address: string,
    readonly onConnection: (conn: TransportConnection) => void,
  ) {}
  async close(): Promise<void> {
    this.isClosed = true;
    this.network.unbind(this.address, this);
  }
}

/**
 * The simulated network. Create one per test, hand `network.transport(host)` to each router.
 */
export class MemoryNetwork {
  readonly maxPayloadBytes: number;
  private readonly latencyOption: NonNullable<MemoryNetworkOptions['latencyMs']>;
  private readonly listeners = new Map<string, MemoryListener>();
  private readonly connections = new Set<MemoryConnection>();
  private readonly cuts = new Set<string>();
  private nextPort = 40000;
  /** Messages handed to `send()` so far (simulations report counts per gossip round). */
  sentMessages = 0;

  constructor(
    readonly clock: Clock,
    options: MemoryNetworkOptions = {},
  ) {
    this.latencyOption = options.latencyMs ?? 1;
    this.maxPayloadBytes = options.maxPayloadBytes ?? 1024 * 1024;
  }

  /** The Transport as seen from `host`. */
  transport(host: string): Transport {
    return {
      listen: async (address, onConnection) => {
        const { port } = splitAddress(address);
        const bound = joinAddress(host, port === 0 ? this.nextPort++ : port);
        if (this.listeners.has(bound)) throw new Error(`listen ${bound}: address already in use`);
        const listener = new MemoryListener(this, bound, onConnection);
        this.listeners.set(bound, listener);
        return listener;
      },
      dial: (address, timeoutMs, options) => this.dial(host, address, timeoutMs, options),
    };
  }

  /** Cut the link between two hosts: open connections between them close, dials between them time out. */
  partition(a: string, b: string): void {
    const ha = hostOf(a);
    const hb = hostOf(b);
    this.cuts.add(cutKey(ha, hb));
    for (const c of [...this.connections]) {
      if ((c.localHost === ha && c.peer.localHost === hb) || (c.localHost === hb && c.peer.localHost === ha)) {
        c.close('connection reset (network partition)');
      }
    }
  }

  /** Undo `partition(a, b)`. */
  heal(a: string, b: string): void {
    this.cuts.delete(cutKey(hostOf(a), hostOf(b)));
  }

  /** Undo every partition. */
  healAll(): void {
    this.cuts.clear();
  }

  /** True if the two hosts are cut apart. */
  isPartitioned(a: string, b: string): boolean {
    return this.cuts.has(cutKey(hostOf(a), hostOf(b)));
  }

  /** Close the listener at `address` ("host:port") as if its process died: new dials are refused. */
  killListener(address: string): void {
    const l = this.listeners.get(address);
    if (l) void l.close();
  }

  /**
   * `host`'s process dies without a word (power loss): its listeners close and its connection ends vanish, but the
   * far ends are not told; they learn only from their own heartbeat timeouts.
   */
  crash(host: string): void {
    for (const [address, l] of this.listeners) if (hostOf(address) === host) void l.close();
    for (const c of [...this.connections]) if (c.localHost === host) c.sever('crashed');
  }

  /** Number of open connection ends (two per connection). */
  get openConnectionEnds(): number {
    return this.connections.size;
  }

  latency(from: string, to: string): number {
    const l = this.latencyOption;
    return Math.max(0, typeof l === 'number' ? l : l(from, to));
  }

  unbind(address: string, listener: MemoryListener): void {
    if (this.listeners.get(address) === listener) this.listeners.delete(address);
  }

  forget(conn: MemoryConnection): void {
    this.connections.delete(conn);
  }

  private dial(fromHost: string, address: string, timeoutMs: number, options: DialOptions = {}): Promise<TransportConnection> {
    const { host: toHost, port } = splitAddress(address);
    const target = joinAddress(toHost, port);
    return new Promise((resolve, reject) => {
      if (this.isPartitioned(fromHost, toHost)) {
        // A cut link swallows the SYN: the dialler only learns from its timeout.
        const waitMs = Math.min(timeoutMs, options.connectTimeoutMs ?? timeoutMs);
        this.clock.setTimeout(() => reject(new Error(`dial ${target}: timed out after ${waitMs}ms`)), waitMs);
        return;
      }
      const rtt = this.latency(fromHost, toHost) + this.latency(toHost, fromHost);
      this.clock.setTimeout(
        () => {
          const listener = this.listeners.get(target);
          if (!listener || listener.isClosed) {
            reject(new Error(`dial ${target}: connection refused`));
            return;
          }
          if (this.isPartitioned(fromHost, toHost)) {
            reject(new Error(`dial ${target}: connection reset (network partition)`));
            return;
          }
          const ephemeral = joinAddress(fromHost, this.nextPort++);
          const outbound = new MemoryConnection(this, fromHost, target, toHost, true);
          const inbound = new MemoryConnection(this, toHost, ephemeral, fromHost, false);
          outbound.peer = inbound;
          inbound.peer = outbound;
          this.connections.add(outbound);
          this.connections.add(inbound);
          listener.onConnection(inbound);
          resolve(outbound);
        },
        Math.min(rtt, timeoutMs),
      );
    });
  }
}

function hostOf(addressOrHost: string): string {
  try {
    return splitAddress(addressOrHost, 0).host;
  } catch {
    return addressOrHost;
  }
}

function cutKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
