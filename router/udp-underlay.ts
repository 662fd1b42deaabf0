/**
 * `UdpUnderlay`: the simple `Underlay` on node:dgram, for hosts where the native addon is not built.
 *
 * Pipeline: socket 'message' events → each datagram copied into a slot of the receive batch (after `headroomBytes`)
 * → the batch is delivered when full or on `setImmediate`, i.e. once per event-loop turn, after libuv has read
 * everything that was ready. Sends go straight to dgram. node:dgram allocates per datagram on both paths (a Buffer
 * and an rinfo object in, a request object out), so this is the fallback; `NativeUdpUnderlay` is the data path.
 */
import { createSocket, type Socket } from 'node:dgram';
import type { DatagramBatch, Endpoint, Underlay } from './underlay.js';
import type { Logger } from '../runtime/logger.js';

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

export interface UdpUnderlayDeps {
  log: Logger;
}

export interface UdpUnderlayOptions {
  /** Local IPv4 address to bind. @default '0.0.0.0' */
  bindAddress?: string;
  /** Local port; 0 picks a free one (read `localPort` after `start`). @default 0 */
  port?: number;
  /** Datagrams per delivered batch. @default 64 */
  batchSlots?: number;
  /** Bytes free in front of every datagram delivered. @default 64 */
  headroomBytes?: number;
}

/** Counters read at scrape time. */
export interface UdpUnderlayCounters {
  datagramsReceived: number;
  receiveBatches: number;
  datagramsSent: number;
  /** Sends the kernel refused (reported asynchronously by dgram). */
  dropsSendError: number;
  /** `send()` with a length above 65507 bytes or a range outside the buffer. */
  dropsBadLength: number;
  /** `send()` before `start()` or after `stop()`. */
  dropsNotRunning: number;
}

export class UdpUnderlay implements Underlay {
  private readonly log: Logger;
  private readonly bindAddress: string;
  private readonly port: number;
  private readonly batchSlots: number;
  private readonly headroomBytes: number;
  private readonly slotBytes: number;
  private socket: Socket | undefined;
  private boundPort = 0;
  private isStarted = false;
  private readonly batch: DatagramBatch;
  private isDeliveryScheduled = false;
  private onDatagrams: (batch: DatagramBatch) => void = () => {};
  private readonly onSent = (err: Error | null): void => {
    if (err) this.dropsSendError++;
  };
  private datagramsReceived = 0;
  private receiveBatches = 0;
  private datagramsSent = 0;
  private dropsSendError = 0;
  private dropsBadLength = 0;
  private dropsNotRunning = 0;

  constructor(deps: UdpUnderlayDeps, options: UdpUnderlayOptions = {}) {
    this.log = deps.log;
    this.bindAddress = options.bindAddress ?? '0.0.0.0';
    this.port = options.port ?? 0;
    this.batchSlots = options.batchSlots ?? 64;
    this.headroomBytes = options.headroomBytes ?? 64;
    this.slotBytes = this.headroomBytes + MAX_UDP_PAYLOAD_BYTES;
    this.batch = {
      count: 0,
      buffer: Buffer.alloc(0),
      offsets: new Uint32Array(this.batchSlots),
      lengths: new Uint32Array(this.batchSlots),
      addresses: new Array<string>(this.batchSlots).fill(''),
      ports: new Uint16Array(this.batchSlots),
    };
  }

  get localPort(): number {
    return this.boundPort;
  }

  /** Bind and begin delivering. Throws `UdpBindError` when the bind fails; `start()` may then be tried again. */
  async start(onDatagrams: (batch: DatagramBatch) => boolean | void): Promise<void> {
    if (this.isStarted) throw new Error('UdpUnderlay.start called twice');
    const socket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(this.port, this.bindAddress, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      socket.close();
      const e = err as NodeJS.ErrnoException;
      throw new UdpBindError(this.bindAddress, this.port, e.code ?? 'EUNKNOWN', e.message);
    }
    this.isStarted = true;
    this.socket = socket;
    this.boundPort = socket.address().port;
    this.onDatagrams = onDatagrams;
    this.batch.buffer = Buffer.alloc(this.batchSlots * this.slotBytes);
    socket.on('message', (message, remote) => this.receive(message, remote.address, remote.port));
    socket.on('error', (err) => this.log.warn({ err, reason: 'socket-error' }, 'underlay socket error'));
  }

  private receive(message: Buffer, address: string, port: number): void {
    const batch = this.batch;
    const i = batch.count;
    const at = i * this.slotBytes + this.headroomBytes;
    message.copy(batch.buffer, at);
    batch.offsets[i] = at;
    batch.lengths[i] = message.length;
    batch.addresses[i] = address;
    batch.ports[i] = port;
    batch.count = i + 1;
    if (batch.count === this.batchSlots) this.deliver();
    else if (!this.isDeliveryScheduled) {
      this.isDeliveryScheduled = true;
      setImmediate(this.deliverScheduled);
    }
  }

  private readonly deliverScheduled = (): void => {
    this.isDeliveryScheduled = false;
    if (this.socket) this.deliver();
  };

  private deliver(): void {
    const batch = this.batch;
    if (batch.count === 0) return;
    this.datagramsReceived += batch.count;
    this.receiveBatches++;
    try {
      this.onDatagrams(batch);
    } finally {
      batch.count = 0;
    }
  }

  /** Sends at once (the bytes are copied first, since dgram sends after the caller's buffer may be reused). */
  send(buffer: Buffer, offset: number, length: number, to: Endpoint): void {
    const socket = this.socket;
    if (!socket) {
      this.dropsNotRunning++;
      return;
    }
    if (length > MAX_UDP_PAYLOAD_BYTES || offset < 0 || offset + length > buffer.length) {
      this.dropsBadLength++;
      return;
    }
    const copy = Buffer.allocUnsafe(length);
    buffer.copy(copy, 0, offset, offset + length);
    this.datagramsSent++;
    socket.send(copy, to.port, to.address, this.onSent);
  }

  /** Nothing is queued: `send()` hands each datagram to dgram at once. */
  flush(): void {}

  /** Close the socket; datagrams not yet delivered are discarded. Idempotent; safe after a failed start. */
  async stop(): Promise<void> {
    const socket = this.socket;
    if (!socket) return;
    this.socket = undefined;
    this.batch.count = 0;
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  counters(): UdpUnderlayCounters {
    return {
      datagramsReceived: this.datagramsReceived,
      receiveBatches: this.receiveBatches,
      datagramsSent: this.datagramsSent,
      dropsSendError: this.dropsSendError,
      dropsBadLength: this.dropsBadLength,
      dropsNotRunning: this.dropsNotRunning,
    };
  }
}
