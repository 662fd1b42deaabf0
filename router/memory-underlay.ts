/**
 * `MemoryUnderlay` on a `MemoryUdpNetwork`: the fake `Underlay` for simulations. Several underlays share one
 * network; each has an address and port like a UDP socket, and datagrams between them are copied into the
 * receiver's queue and delivered in batches from a `Clock` timer after the network's latency.
 *
 * Knobs on the network: `latencyMs` (one value for every link, so each receiver's queue stays in send order),
 * `lossRate` (decided by the seeded `Random`), `partition(a, b)` / `heal(a, b)` between two addresses. Sending and
 * delivering allocate nothing in steady state (queues are rings of preallocated slots; the byte copy is a loop
 * unless `copyBytes` is given), so allocation checks through these fakes measure the datapath.
 */
import type { DatagramBatch, Endpoint, Underlay } from './underlay.js';
import type { Clock, Timer } from '../runtime/clock.js';
import { SeededRandom, type Random } from '../runtime/random.js';

/** Copies `length` bytes between buffers and returns `length` (e.g. the native addon's `copyBytes`). */
export type CopyBytes = (source: Buffer, sourceOffset: number, target: Buffer, targetOffset: number, length: number) => number;

/** A byte loop: allocates nothing on any Node version (Buffer#copy of a range makes a view on Node 20). */
export const loopCopyBytes: CopyBytes = (source, sourceOffset, target, targetOffset, length) => {
  for (let i = 0; i < length; i++) target[targetOffset + i] = source[sourceOffset + i]!;
  return length;
};

export interface MemoryUdpNetworkDeps {
  clock: Clock;
  /** Decides losses. @default new SeededRandom(1) */
  random?: Random;
}

export interface MemoryUdpNetworkOptions {
  /** One-way delay of every datagram. @default 0 (delivered at the next timer turn) */
  latencyMs?: number;
  /** Fraction of datagrams lost, in [0, 1]. @default 0 */
  lossRate?: number;
  /** Copier for datagram bytes. @default loopCopyBytes */
  copyBytes?: CopyBytes;
}

/** The shared medium: routes datagrams by (address, port), applies latency, loss and partitions. */
export class MemoryUdpNetwork {
  latencyMs: number;
  lossRate: number;
  /** Datagrams dropped by `lossRate`. */
  lost = 0;
  /** Datagrams dropped by a partition. */
  partitioned = 0;
  /** Datagrams to an address and port nobody has. */
  unreachable = 0;
  readonly clock: Clock;
  readonly copyBytes: CopyBytes;
  /**
   * Sees every datagram before latency, loss and partitions apply (tests use it to capture what is on the wire).
   * The bytes are valid only during the call.
   */
  onCarry: ((from: MemoryUnderlay, buffer: Buffer, offset: number, length: number, to: Endpoint) => void) | null = null;
  private readonly random: Random;
  private readonly byAddress = new Map<string, Map<number, MemoryUnderlay>>();
  private readonly cuts = new Map<string, Set<string>>();
  /** Loss rates of single directions, by "from>to" address (`setLinkLoss`), on top of `lossRate`. */
  private readonly linkLoss = new Map<string, number>();

  constructor(deps: MemoryUdpNetworkDeps, options: MemoryUdpNetworkOptions = {}) {
    this.clock = deps.clock;
    this.random = deps.random ?? new SeededRandom(1);
    this.latencyMs = options.latencyMs ?? 0;
    this.lossRate = options.lossRate ?? 0;
    this.copyBytes = options.copyBytes ?? loopCopyBytes;
  }

  /** Drop every datagram between addresses `a` and `b`, both ways, until `heal(a, b)`. */
  partition(a: string, b: string): void {
    this.cutSet(a).add(b);
    this.cutSet(b).add(a);
  }

  /** Drop this share of the datagrams from address `from` to address `to` (one way; 0 ends it). */
  setLinkLoss(from: string, to: string, rate: number): void {
    if (rate > 0) this.linkLoss.set(`${from}>${to}`, rate);
    else this.linkLoss.delete(`${from}>${to}`);
  }

  /** Undo `partition(a, b)`. */
  heal(a: string, b: string): void {
    this.cuts.get(a)?.delete(b);
    this.cuts.get(b)?.delete(a);
  }

  /** True while `a` and `b` are partitioned. */
  isPartitioned(a: string, b: string): boolean {
    const s = this.cuts.get(a);
    return s !== undefined && s.has(b);
  }

  /** @internal Called by `MemoryUnderlay.start`. */
  bind(underlay: MemoryUnderlay): void {
    let ports = this.byAddress.get(underlay.address);
    if (!ports) this.byAddress.set(underlay.address, (ports = new Map()));
    if (ports.has(underlay.localPort)) throw new Error(`${underlay.address}:${underlay.localPort} is already bound`);
    ports.set(underlay.localPort, underlay);
  }

  /** @internal Called by `MemoryUnderlay.stop`. */
  unbind(underlay: MemoryUnderlay): void {
    const ports = this.byAddress.get(underlay.address);
    if (ports?.get(underlay.localPort) === underlay) ports.delete(underlay.localPort);
  }

  /** @internal Route one datagram; the bytes are copied before return. */
  carry(from: MemoryUnderlay, buffer: Buffer, offset: number, length: number, to: Endpoint): void {
    if (this.onCarry !== null) this.onCarry(from, buffer, offset, length, to);
    const target = this.byAddress.get(to.address)?.get(to.port);
    if (target === undefined) {
      this.unreachable++;
      return;
    }
    if (this.isPartitioned(from.address, to.address)) {
      this.partitioned++;
      return;
    }
    const linkRate = this.linkLoss.size === 0 ? 0 : (this.linkLoss.get(`${from.address}>${to.address}`) ?? 0);
    if ((this.lossRate > 0 && this.random.next() < this.lossRate) || (linkRate > 0 && this.random.next() < linkRate)) {
      this.lost++;
      return;
    }
    target.enqueue(from, buffer, offset, length, this.clock.now() + this.latencyMs);
  }

  private cutSet(a: string): Set<string> {
    let s = this.cuts.get(a);
    if (!s) this.cuts.set(a, (s = new Set()));
    return s;
  }
}

export interface MemoryUnderlayDeps {
  network: MemoryUdpNetwork;
}

export interface MemoryUnderlayOptions {
  /** This underlay's address on the network (any string; tests use 10.0.0.x). */
  address: string;
  /** UDP port. @default 6783 (weave's) */
  port?: number;
  /** Datagrams waiting for delivery; more are dropped and counted. @default 256 */
  queueSlots?: number;
  /** Largest datagram accepted. @default 9216 */
  maxDatagramBytes?: number;
  /** Most datagrams per delivered batch. @default 64 */
  batchSlots?: number;
}

/** Claimed datagrams a `MemoryUnderlay` holds before it carries them (a native send batch holds 64). */
const CLAIM_SLOTS = 16;

export class MemoryUnderlay implements Underlay {
  readonly address: string;
  readonly localPort: number;
  /** Datagrams sent (handed to the network). */
  sentCount = 0;
  /** Datagrams delivered to `onDatagrams`. */
  receivedCount = 0;
  /** Datagrams refused because the receive queue was full. */
  dropsQueueFull = 0;
  /** Datagrams larger than `maxDatagramBytes` or out of range. */
  dropsTooBig = 0;

  private readonly network: MemoryUdpNetwork;
  private readonly queueSlots: number;
  private readonly slotBytes: number;
  private readonly buffer: Buffer;
  private readonly queueLengths: Uint32Array;
  private readonly queueDue: Float64Array;
  private readonly queueFrom: Array<MemoryUnderlay | null>;
  private readonly batch: DatagramBatch;
  private head = 0;
  private queued = 0;
  private onDatagrams: ((batch: DatagramBatch) => void) | null = null;
  private isStopped = false;
  private timer: Timer | null = null;
  private readonly deliverLater = (): void => {
    this.timer = null;
    this.deliverDue();
  };

  constructor(deps: MemoryUnderlayDeps, options: MemoryUnderlayOptions) {
    this.network = deps.network;
    this.address = options.address;
    this.localPort = options.port ?? 6783;
    this.queueSlots = options.queueSlots ?? 256;
    this.slotBytes = options.maxDatagramBytes ?? 9216;
    const batchSlots = options.batchSlots ?? 64;
    this.buffer = Buffer.alloc(this.queueSlots * this.slotBytes);
    this.queueLengths = new Uint32Array(this.queueSlots);
    this.queueDue = new Float64Array(this.queueSlots);
    this.queueFrom = new Array<MemoryUnderlay | null>(this.queueSlots).fill(null);
    this.batch = {
      count: 0,
      buffer: this.buffer,
      offsets: new Uint32Array(batchSlots),
      lengths: new Uint32Array(batchSlots),
      addresses: new Array<string>(batchSlots).fill(''),
      ports: new Uint16Array(batchSlots),
    };
  }

  /** This underlay as an `Endpoint` for snapshots (a new object per call: keep the one you take). */
  endpoint(): Endpoint {
    return { address: this.address, port: this.localPort };
  }

  start(onDatagrams: (batch: DatagramBatch) => boolean | void): Promise<void> {
    if (this.onDatagrams) throw new Error('MemoryUnderlay.start called twice');
    this.network.bind(this);
    this.onDatagrams = onDatagrams;
    return Promise.resolve();
  }

  send(buffer: Buffer, offset: number, length: number, to: Endpoint): void {
    this.carryClaimed();
    if (this.isStopped || this.onDatagrams === null) return;
    this.sentCount++;
    this.network.carry(this, buffer, offset, length, to);
  }

  /** See `Underlay.beforeSend`. */
  beforeSend: (() => void) | null = null;
  /**
   * Claimed datagrams wait in `claimBuffer`, back to back like a native send batch, and are carried in order at the
   * next `send` or `flush`, or when the batch is full (each time after `beforeSend`).
   */
  readonly claimBuffer = Buffer.alloc(CLAIM_SLOTS * 2048 + 65_536);
  private readonly claimedOffsets = new Uint32Array(CLAIM_SLOTS);
  private readonly claimedLengths = new Uint32Array(CLAIM_SLOTS);
  private readonly claimedTo: Array<Endpoint | null> = new Array<Endpoint | null>(CLAIM_SLOTS).fill(null);
  private claimedCount = 0;
  private claimedBytes = 0;

  claim(length: number, to: Endpoint): number {
    if (this.isStopped || this.onDatagrams === null || length > 65_536) return -1;
    if (this.claimedCount === CLAIM_SLOTS || this.claimedBytes + length > this.claimBuffer.length) this.carryClaimed();
    const i = this.claimedCount++;
    const at = this.claimedBytes;
    this.claimedOffsets[i] = at;
    this.claimedLengths[i] = length;
    this.claimedTo[i] = to;
    this.claimedBytes = at + length;
    return at;
  }

  unclaim(): void {
    if (this.claimedCount === 0) return;
    const i = --this.claimedCount;
    this.claimedBytes = this.claimedOffsets[i]!;
    this.claimedTo[i] = null;
  }

  private carryClaimed(): void {
    const count = this.claimedCount;
    if (count === 0) return;
    this.beforeSend?.();
    this.claimedCount = 0;
    this.claimedBytes = 0;
    for (let i = 0; i < count; i++) {
      const to = this.claimedTo[i]!;
      this.claimedTo[i] = null;
      this.sentCount++;
      this.network.carry(this, this.claimBuffer, this.claimedOffsets[i]!, this.claimedLengths[i]!, to);
    }
  }

  flush(): void {
    // Datagrams are handed to the network in send(); only claimed ones wait for this.
    this.carryClaimed();
  }

  stop(): Promise<void> {
    if (!this.isStopped) {
      this.isStopped = true;
      this.timer?.cancel();
      this.timer = null;
      this.network.unbind(this);
    }
    return Promise.resolve();
  }

  /** @internal From the network: queue a copy for delivery at `dueMs`. */
  enqueue(from: MemoryUnderlay, buffer: Buffer, offset: number, length: number, dueMs: number): void {
    if (length > this.slotBytes || offset < 0 || offset + length > buffer.length) {
      this.dropsTooBig++;
      return;
    }
    if (this.queued >= this.queueSlots) {
      this.dropsQueueFull++;
      return;
    }
    const slot = (this.head + this.queued) % this.queueSlots;
    this.network.copyBytes(buffer, offset, this.buffer, slot * this.slotBytes, length);
    this.queueLengths[slot] = length;
    this.queueDue[slot] = dueMs;
    this.queueFrom[slot] = from;
    this.queued++;
    if (this.timer === null) this.timer = this.network.clock.setTimeout(this.deliverLater, dueMs - this.network.clock.now());
  }

  /** Deliver every queued datagram that is due, in batches; re-arm the timer for the rest. */
  private deliverDue(): void {
    const onDatagrams = this.onDatagrams;
    if (!onDatagrams || this.isStopped) return;
    const now = this.network.clock.now();
    const batch = this.batch;
    const max = batch.offsets.length;
    while (this.queued > 0 && this.queueDue[this.head]! <= now) {
      let n = 0;
      while (n < max && n < this.queued) {
        const slot = (this.head + n) % this.queueSlots;
        if (this.queueDue[slot]! > now) break;
        const from = this.queueFrom[slot]!;
        batch.offsets[n] = slot * this.slotBytes;
        batch.lengths[n] = this.queueLengths[slot]!;
        batch.addresses[n] = from.address;
        batch.ports[n] = from.localPort;
        this.queueFrom[slot] = null;
        n++;
      }
      batch.count = n;
      this.receivedCount += n;
      onDatagrams(batch);
      this.head = (this.head + n) % this.queueSlots;
      this.queued -= n;
    }
    if (this.queued > 0 && this.timer === null) {
      this.timer = this.network.clock.setTimeout(this.deliverLater, this.queueDue[this.head]! - now);
    }
  }
}
