/**
 * `NativeUdpUnderlay`: the data-path `Underlay`, IPv4 UDP through the native addon.
 *
 * Pipeline in: socket → (uv_poll wakes, recvmmsg fills up to `batchSlots` slots, each message `headroomBytes` into
 * its slot, with its source as a u32 address and a port; a message UDP GRO coalesced is split back into its
 * datagrams, back to back in the slot) → source addresses turned into strings through a cache (a string is built
 * only the first time an address is seen) → one `onDatagrams` call per batch.
 * Pipeline out: `send()` copies the datagram into a packed send batch and records its endpoint as a u32 (parsed once
 * per `Endpoint` object, remembered in a WeakMap) → `flush()`, or a full batch, sends it all with sendmmsg, runs of
 * equal-size datagrams to one endpoint as one UDP GSO message each (the kernel segments them late, or never on the
 * way through veth, and the receiver's GRO keeps them together): one pass through the socket layer for up to 64.
 * Nothing is allocated per datagram once the address caches are warm.
 */
import type { DatagramBatch, Endpoint, Underlay } from './underlay.js';
import type { Logger } from '../runtime/logger.js';
import { ipv4ToU32, u32ToIpv4, type ReaderHandle, type ReaderStats, type WeftNative } from '../native/addon.js';

/** Largest UDP payload over IPv4: 65535 minus the IPv4 (20) and UDP (8) headers. */
export const MAX_UDP_PAYLOAD_BYTES = 65507;

/** The UDP socket could not be opened or bound. */
export class UdpBindError extends Error {
  readonly code = 'UDP_BIND_FAILED';
  constructor(
    readonly bindAddress: string,
    readonly port: number,
    readonly errnoCode: string,
    detail: string,
  ) {
    super(`cannot bind UDP ${bindAddress}:${port}: ${detail}; ${bindAdvice(errnoCode)}`);
    this.name = 'UdpBindError';
  }
}

function bindAdvice(errnoCode: string): string {
  switch (errnoCode) {
    case 'EADDRINUSE':
      return 'another process (perhaps another weft) holds that port: stop it or choose another port';
    case 'EADDRNOTAVAIL':
      return 'that address is not on this host: bind 0.0.0.0 or one of its own addresses';
    case 'EACCES':
    case 'EPERM':
      return 'ports below 1024 need root or CAP_NET_BIND_SERVICE';
    default:
      return 'check the bind address (a dotted IPv4 address) and port (0-65535)';
  }
}

/**
 * Source addresses remembered as strings. Peers are few; the bound stops spoofed sources from growing the cache
 * without limit (when full it starts over, so a flood costs a string per datagram but no memory).
 */
const ADDRESS_CACHE_LIMIT = 4096;

/** Receive entries per slot: a GRO message holds at most 64 datagrams, so a batch never has to split. */
const DATAGRAMS_PER_SLOT = 64;

export interface NativeUdpUnderlayDeps {
  /** The loaded addon (`loadNative()`). */
  native: WeftNative;
  log: Logger;
}

export interface NativeUdpUnderlayOptions {
  /** Local IPv4 address to bind. @default '0.0.0.0' */
  bindAddress?: string;
  /** Local port; 0 picks a free one (read `localPort` after `start`). @default 0 */
  port?: number;
  /**
   * Messages per receive batch (one recvmmsg; each may hold up to 64 datagrams with GRO) and datagrams per send
   * batch (one sendmmsg). @default 64
   */
  batchSlots?: number;
  /**
   * Bytes free in front of every message received: in front of every datagram, except those the kernel coalesced
   * with GRO, which follow the first of their message back to back. @default 64
   */
  headroomBytes?: number;
}

/** Counters read at scrape time; every drop counted under its reason. */
export interface NativeUdpUnderlayCounters {
  datagramsReceived: number;
  receiveBatches: number;
  /** Datagrams the kernel took, counted one by one also when they went as one GSO message. */
  datagramsSent: number;
  /** Messages sent with UDP GSO (each several datagrams). */
  gsoMessagesSent: number;
  /** Datagrams sent inside those messages. */
  gsoDatagramsSent: number;
  /** GSO messages the kernel refused, whose datagrams were then sent one by one. */
  gsoRefused: number;
  /** 1 once the kernel refused GSO on this socket for good (everything goes one datagram per message), else 0. */
  gsoDisabled: number;
  /** Received datagrams larger than a slot (cannot happen with the default slot size). */
  dropsTruncated: number;
  /** Sends dropped because the socket buffer was full (EAGAIN). */
  dropsSendBufferFull: number;
  /** Sends the kernel refused (EMSGSIZE, EHOSTUNREACH, EPERM from a firewall). */
  dropsSendError: number;
  /** `send()` with a length above 65507 bytes or a range outside the buffer. */
  dropsBadLength: number;
  /** `send()` to an endpoint that is not a dotted IPv4 address (IPv6 is not supported yet). */
  dropsBadAddress: number;
  /** `send()` before `start()` or after `stop()`. */
  dropsNotRunning: number;
}

export class NativeUdpUnderlay implements Underlay {
  private readonly native: WeftNative;
  private readonly log: Logger;
  private readonly bindAddress: string;
  private readonly port: number;
  private readonly batchSlots: number;
  private readonly headroomBytes: number;
  private readonly slotBytes: number;

  private fd = -1;
  private boundPort = 0;
  private reader: ReaderHandle | undefined;
  private isStarted = false;
  private lastReaderStats: ReaderStats | undefined;

  /** The receive batch, reused for every callback. */
  private readonly batch: DatagramBatch;
  private readonly sourceAddrs: Uint32Array;
  private readonly addressNames = new Map<number, string>();

  /** See `Underlay.beforeSend`. */
  beforeSend: (() => void) | null = null;
  /** The send batch: datagrams packed back to back in `sendBuffer`. */
  private sendBuffer: Buffer = Buffer.alloc(0);
  private readonly sendOffsets: Uint32Array;
  private readonly sendLengths: Uint32Array;
  private readonly sendAddrs: Uint32Array;
  private readonly sendPorts: Uint16Array;
  private sendCount = 0;
  private sendUsedBytes = 0;
  /** [socket buffer full, send error], incremented by the addon. */
  private readonly sendDrops = new Float64Array(2);
  /** [state (0 untried, 1 works, -1 refused), GSO messages, datagrams in them, refused], kept by the addon. */
  private readonly gso = new Float64Array(4);
  /** Endpoint → its address as a u32 (-1: not IPv4). Endpoints are reused from snapshots, so this stays small. */
  private readonly endpointAddrs = new WeakMap<Endpoint, number>();
  private datagramsSent = 0;
  private dropsBadLength = 0;
  private dropsBadAddress = 0;
  private dropsNotRunning = 0;

  constructor(deps: NativeUdpUnderlayDeps, options: NativeUdpUnderlayOptions = {}) {
    this.native = deps.native;
    this.log = deps.log;
    this.bindAddress = options.bindAddress ?? '0.0.0.0';
    this.port = options.port ?? 0;
    this.batchSlots = options.batchSlots ?? 64;
    this.headroomBytes = options.headroomBytes ?? 64;
    if (!(this.batchSlots >= 1 && this.headroomBytes >= 0)) {
      throw new RangeError('NativeUdpUnderlay: batchSlots must be >= 1 and headroomBytes >= 0');
    }
    // Room for the largest IPv4 UDP payload, so no datagram is ever truncated.
    this.slotBytes = this.headroomBytes + MAX_UDP_PAYLOAD_BYTES;
    const entries = this.batchSlots * DATAGRAMS_PER_SLOT;
    this.sourceAddrs = new Uint32Array(entries);
    this.batch = {
      count: 0,
      buffer: Buffer.alloc(0),
      offsets: new Uint32Array(entries),
      lengths: new Uint32Array(entries),
      addresses: new Array<string>(entries).fill(''),
      ports: new Uint16Array(entries),
    };
    this.sendOffsets = new Uint32Array(this.batchSlots);
    this.sendLengths = new Uint32Array(this.batchSlots);
    this.sendAddrs = new Uint32Array(this.batchSlots);
    this.sendPorts = new Uint16Array(this.batchSlots);
  }

  get localPort(): number {
    return this.boundPort;
  }

  /** Bind and begin delivering. Throws `UdpBindError` when the bind fails; `start()` may then be tried again. */
  async start(onDatagrams: (batch: DatagramBatch) => boolean | void): Promise<void> {
    if (this.isStarted) throw new Error('NativeUdpUnderlay.start called twice');
    let opened: { fd: number; port: number; receiveBufferBytes: number; sendBufferBytes: number };
    try {
      opened = this.native.udpOpen(this.bindAddress, this.port);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      throw new UdpBindError(this.bindAddress, this.port, e.code ?? 'EUNKNOWN', e.message ?? String(err));
    }
    this.isStarted = true;
    this.fd = opened.fd;
    this.boundPort = opened.port;
    const batch = this.batch;
    batch.buffer = Buffer.alloc(this.batchSlots * this.slotBytes);
    this.sendBuffer = Buffer.alloc(this.batchSlots * MAX_UDP_PAYLOAD_BYTES);
    const addrs = this.sourceAddrs;
    const names = this.addressNames;
    try {
      this.reader = this.native.udpReaderStart(
        this.fd,
        batch.buffer,
        batch.offsets,
        batch.lengths,
        addrs,
        batch.ports,
        this.slotBytes,
        this.headroomBytes,
        (count) => {
          if (count < 0) {
            this.log.error({ reason: 'socket-error', errno: -count }, 'underlay socket failed');
            return false;
          }
          // Datagrams split from one GRO message share their source: look it up once per run.
          let lastAddr = -1;
          let name = '';
          for (let i = 0; i < count; i++) {
            const addr = addrs[i]!;
            if (addr !== lastAddr) {
              let known = names.get(addr);
              if (known === undefined) {
                known = u32ToIpv4(addr);
                if (names.size >= ADDRESS_CACHE_LIMIT) names.clear();
                names.set(addr, known);
              }
              name = known;
              lastAddr = addr;
            }
            batch.addresses[i] = name;
          }
          batch.count = count;
          // false: nothing a reply could follow, so the addon does not busy-poll after this batch.
          return onDatagrams(batch) !== false;
        },
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.log.debug(
      { port: this.boundPort, receiveBufferBytes: opened.receiveBufferBytes, sendBufferBytes: opened.sendBufferBytes },
      'underlay started',
    );
  }

  send(buffer: Buffer, offset: number, length: number, to: Endpoint): void {
    if (offset < 0 || offset + length > buffer.length) {
      this.dropsBadLength++;
      return;
    }
    const at = this.claim(length, to);
    if (at >= 0) this.native.copyBytes(buffer, offset, this.sendBuffer, at, length);
  }

  get claimBuffer(): Buffer {
    return this.sendBuffer;
  }

  claim(length: number, to: Endpoint): number {
    if (this.fd < 0) {
      this.dropsNotRunning++;
      return -1;
    }
    if (!(length >= 0 && length <= MAX_UDP_PAYLOAD_BYTES)) {
      this.dropsBadLength++;
      return -1;
    }
    let addr = this.endpointAddrs.get(to);
    if (addr === undefined) {
      addr = ipv4ToU32(to.address);
      this.endpointAddrs.set(to, addr);
    }
    if (addr < 0) {
      this.dropsBadAddress++;
      return -1;
    }
    if (this.sendCount === this.batchSlots || this.sendUsedBytes + length > this.sendBuffer.length) this.flush();
    const i = this.sendCount;
    const at = this.sendUsedBytes;
    this.sendOffsets[i] = at;
    this.sendLengths[i] = length;
    this.sendAddrs[i] = addr;
    this.sendPorts[i] = to.port;
    this.sendCount = i + 1;
    this.sendUsedBytes = at + length;
    return at;
  }

  unclaim(): void {
    if (this.sendCount === 0) return;
    this.sendCount--;
    this.sendUsedBytes = this.sendOffsets[this.sendCount]!;
  }

  flush(): void {
    if (this.sendCount === 0 || this.fd < 0) return;
    this.beforeSend?.();
    this.datagramsSent += this.native.udpSendBatch(
      this.fd,
      this.sendBuffer,
      this.sendOffsets,
      this.sendLengths,
      this.sendAddrs,
      this.sendPorts,
      this.sendCount,
      this.sendDrops,
      this.gso,
    );
    this.sendCount = 0;
    this.sendUsedBytes = 0;
  }

  /** Close the socket; queued datagrams are discarded. Idempotent; safe after a failed start. */
  async stop(): Promise<void> {
    if (this.reader) {
      this.lastReaderStats = this.native.readerStats(this.reader);
      this.native.readerStop(this.reader);
      this.reader = undefined;
    }
    if (this.fd >= 0) {
      const fd = this.fd;
      this.fd = -1;
      this.sendCount = 0;
      this.sendUsedBytes = 0;
      this.native.fdClose(fd);
    }
  }

  counters(): NativeUdpUnderlayCounters {
    const stats = this.reader ? this.native.readerStats(this.reader) : this.lastReaderStats;
    return {
      datagramsReceived: stats?.packets ?? 0,
      receiveBatches: stats?.batches ?? 0,
      datagramsSent: this.datagramsSent,
      gsoMessagesSent: this.gso[1]!,
      gsoDatagramsSent: this.gso[2]!,
      gsoRefused: this.gso[3]!,
      gsoDisabled: this.gso[0]! < 0 ? 1 : 0,
      dropsTruncated: stats?.truncatedDrops ?? 0,
      dropsSendBufferFull: this.sendDrops[0]!,
      dropsSendError: this.sendDrops[1]!,
      dropsBadLength: this.dropsBadLength,
      dropsBadAddress: this.dropsBadAddress,
      dropsNotRunning: this.dropsNotRunning,
    };
  }
}
