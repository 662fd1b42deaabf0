/**
 * `NativeUdpUnderlay`: the data-path `Underlay`, UDP over IPv4 and IPv6 through the native addon.
 *
 * One socket carries both families: bound to an IPv6 address (`::` for all) it is dual-stack, IPv4 peers appearing
 * as ::ffff:a.b.c.d inside the addon and as plain dotted addresses here; bound to an IPv4 address it reaches IPv4
 * peers only (an IPv6 endpoint is then a counted drop).
 *
 * Pipeline in: socket → (uv_poll wakes, recvmmsg fills up to `batchSlots` slots, each message `headroomBytes` into
 * its slot, with its source as four u32 words and a port; a message UDP GRO coalesced is split back into its
 * datagrams, back to back in the slot) → source addresses turned into strings through a cache (a string is built
 * only the first time an address is seen) → one `onDatagrams` call per batch.
 * Pipeline out: `send()` copies the datagram into a packed send batch and records its endpoint as four words (parsed
 * once per `Endpoint` object, remembered in a WeakMap) → `flush()`, or a full batch, sends it all with sendmmsg, runs of
 * equal-size datagrams to one endpoint as one UDP GSO message each (the kernel segments them late, or never on the
 * way through veth, and the receiver's GRO keeps them together): one pass through the socket layer for up to 64.
 * Nothing is allocated per datagram once the address caches are warm.
 */
import type { DatagramBatch, Endpoint, Underlay } from './underlay.js';
import type { Logger } from '../runtime/logger.js';
import { addressToWords, wordsToAddress } from './underlay-address.js';
import { u32ToIpv4, type ReaderHandle, type ReaderStats, type WeftNative } from '../native/addon.js';
import { WeftError } from '../runtime/errors.js';

/** Largest UDP payload over IPv4: 65535 minus the IPv4 (20) and UDP (8) headers. Sends are capped at this. */
export const MAX_UDP_PAYLOAD_BYTES = 65507;
/** Largest UDP payload over IPv6 without jumbograms: 65535 minus the UDP header (8). Receive slots hold this. */
const MAX_UDP6_PAYLOAD_BYTES = 65527;

/** The UDP socket could not be opened or bound. */
export class UdpBindError extends WeftError {
  readonly code = 'UDP_BIND_FAILED';
  override readonly status = 500;
  constructor(
    readonly bindAddress: string,
    readonly port: number,
    readonly errnoCode: string,
    detail: string,
  ) {
    super(`cannot bind UDP ${bindAddress}:${port}: ${detail}; ${bindAdvice(errnoCode)}`);
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
      return 'check the bind address (an IPv4 or IPv6 address) and port (0-65535)';
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
  /**
   * Local address to bind: IPv4 (that family only) or IPv6 (dual-stack; `::` takes every address of both).
   * @default '0.0.0.0'
   */
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
  /** `send()` to an endpoint that is not an IP address, or an IPv6 one on a socket bound to IPv4. */
  dropsBadAddress: number;
  /** `send()` before `start()` or after `stop()`. */
  dropsNotRunning: number;
}

/** An IPv6 source seen, with its string. */
interface Address6Name {
  w0: number;
  w1: number;
  w2: number;
  w3: number;
  name: string;
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
  /** Four words per entry (see the addon's `udpOpen`). */
  private readonly sourceAddrs: Uint32Array;
  /** IPv4 sources by their u32; IPv6 ones by a hash of their words (then checked word by word). */
  private readonly addressNames = new Map<number, string>();
  private readonly address6Names = new Map<number, Address6Name[]>();
  private address6Count = 0;
  /** 4 or 6, from the socket opened. */
  private family: 4 | 6 = 4;

  /** See `Underlay.beforeSend`. */
  beforeSend: (() => void) | null = null;
  /** The send batch: datagrams packed back to back in `sendBuffer`. */
  private sendBuffer: Buffer = Buffer.alloc(0);
  private readonly sendOffsets: Uint32Array;
  private readonly sendLengths: Uint32Array;
  /** Four words per datagram. */
  private readonly sendAddrs: Uint32Array;
  private readonly sendPorts: Uint16Array;
  private sendCount = 0;
  private sendUsedBytes = 0;
  /** [socket buffer full, send error], incremented by the addon. */
  private readonly sendDrops = new Float64Array(2);
  /** [state (0 untried, 1 works, -1 refused), GSO messages, datagrams in them, refused], kept by the addon. */
  private readonly gso = new Float64Array(4);
  /**
   * Endpoint → its address as four words (null: not one this socket can reach). Endpoints are reused from
   * snapshots, so this stays small.
   */
  private readonly endpointAddrs = new WeakMap<Endpoint, Uint32Array | null>();
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
    // Room for the largest UDP payload (IPv6's), so no datagram is ever truncated.
    this.slotBytes = this.headroomBytes + MAX_UDP6_PAYLOAD_BYTES;
    const entries = this.batchSlots * DATAGRAMS_PER_SLOT;
    this.sourceAddrs = new Uint32Array(entries * 4);
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
    this.sendAddrs = new Uint32Array(this.batchSlots * 4);
    this.sendPorts = new Uint16Array(this.batchSlots);
  }

  get localPort(): number {
    return this.boundPort;
  }

  /** The socket's family (known after `start`): 6 for a dual-stack IPv6 socket, 4 for an IPv4 one. */
  get localFamily(): 4 | 6 {
    return this.family;
  }

  /** Bind and begin delivering. Throws `UdpBindError` when the bind fails; `start()` may then be tried again. */
  async start(onDatagrams: (batch: DatagramBatch) => boolean | void): Promise<void> {
    if (this.isStarted) throw new Error('NativeUdpUnderlay.start called twice');
    let opened: ReturnType<WeftNative['udpOpen']>;
    try {
      opened = this.native.udpOpen(this.bindAddress, this.port);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      throw new UdpBindError(this.bindAddress, this.port, e.code ?? 'EUNKNOWN', e.message ?? String(err));
    }
    this.isStarted = true;
    this.fd = opened.fd;
    this.boundPort = opened.port;
    this.family = opened.family === 6 ? 6 : 4;
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
          let last0 = -1;
          let last1 = -1;
          let last2 = -1;
          let last3 = -1;
          let name = '';
          for (let i = 0; i < count; i++) {
            const w = 4 * i;
            const w0 = addrs[w]!;
            const w1 = addrs[w + 1]!;
            const w2 = addrs[w + 2]!;
            const w3 = addrs[w + 3]!;
            if (w3 !== last3 || w2 !== last2 || w1 !== last1 || w0 !== last0) {
              if (w0 === 0 && w1 === 0 && w2 === 0xffff) {
                let known = names.get(w3);
                if (known === undefined) {
                  known = u32ToIpv4(w3);
                  if (names.size >= ADDRESS_CACHE_LIMIT) names.clear();
                  names.set(w3, known);
                }
                name = known;
              } else {
                name = this.name6(addrs, w);
              }
              last0 = w0;
              last1 = w1;
              last2 = w2;
              last3 = w3;
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

  /** The string of the IPv6 source at `addrs[w .. w+4)`, built only the first time it is seen. */
  private name6(addrs: Uint32Array, w: number): string {
    const w0 = addrs[w]!;
    const w1 = addrs[w + 1]!;
    const w2 = addrs[w + 2]!;
    const w3 = addrs[w + 3]!;
    const key = (Math.imul(w0 ^ w2, 0x9e3779b1) ^ Math.imul(w1 ^ w3, 0x85ebca6b) ^ w3) >>> 0;
    let bucket = this.address6Names.get(key);
    if (bucket !== undefined) {
      for (let k = 0; k < bucket.length; k++) {
        const e = bucket[k]!;
        if (e.w3 === w3 && e.w2 === w2 && e.w1 === w1 && e.w0 === w0) return e.name;
      }
    }
    if (this.address6Count >= ADDRESS_CACHE_LIMIT) {
      this.address6Names.clear();
      this.address6Count = 0;
      bucket = undefined;
    }
    const name = wordsToAddress(addrs, w);
    if (bucket === undefined) this.address6Names.set(key, (bucket = []));
    bucket.push({ w0, w1, w2, w3, name });
    this.address6Count++;
    return name;
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
      addr = new Uint32Array(4);
      // An IPv4 socket reaches only IPv4 (mapped) addresses.
      if (!addressToWords(to.address, addr, 0) || (this.family === 4 && !(addr[0] === 0 && addr[1] === 0 && addr[2] === 0xffff))) {
        addr = null;
      }
      this.endpointAddrs.set(to, addr);
    }
    if (addr === null) {
      this.dropsBadAddress++;
      return -1;
    }
    if (this.sendCount === this.batchSlots || this.sendUsedBytes + length > this.sendBuffer.length) this.flush();
    const i = this.sendCount;
    const at = this.sendUsedBytes;
    this.sendOffsets[i] = at;
    this.sendLengths[i] = length;
    const a = this.sendAddrs;
    const w = 4 * i;
    a[w] = addr[0]!;
    a[w + 1] = addr[1]!;
    a[w + 2] = addr[2]!;
    a[w + 3] = addr[3]!;
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
      this.family,
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
