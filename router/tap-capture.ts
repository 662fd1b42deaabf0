/**
 * `TapCapture`: the real `Capture`, a TAP device through the native addon.
 *
 * Pipeline: kernel bridge → TAP fd → (uv_poll wakes, read() per frame into fixed slots, up to `batchSlots`) → one
 * `onFrames` call per batch → the datapath. Each slot leaves `headroomBytes` free in front of its frame, so the
 * datapath can seal in place. Back: `write()` copies a frame into a packed send batch (no allocation), `flush()`
 * hands the whole batch to the addon, which write()s every frame in one N-API call; a full batch flushes itself.
 *
 * The TAP has a virtio_net_hdr in front of every frame (./offload.ts), so TCP super-frames of up to 64 KiB from peers
 * are written whole; with `offload` (the default) it also takes the kernel's offloads, partial checksums and
 * super-frames, on the way out, so one read or write moves up to 45 segments of a TCP stream. Plain `write()`s get
 * an all-zero header (an ordinary frame).
 *
 * The device is created on `start()` and vanishes on `stop()` (not persistent). Attaching it to the bridge and
 * setting its MTU (`ip link set <name> master <bridge> mtu <n> up`) is the caller's business.
 */
import type { Capture, FrameBatch } from './capture.js';
import type { Logger } from '../runtime/logger.js';
import type { ReaderHandle, ReaderStats, WeftNative } from '../native/addon.js';
import { VNET_HEADER_BYTES } from './offload.js';
import { WeftError } from '../runtime/errors.js';

/** Offloaded frames this large are written straight from the caller's buffer instead of copied into the batch. */
const DIRECT_WRITE_BYTES = 8192;
/** Smallest frame worth writing: an Ethernet header (two MACs and an EtherType). */
const ETHERNET_HEADER_BYTES = 14;

/** The TAP device could not be opened or created. */
export class TapOpenError extends WeftError {
  readonly code = 'TAP_OPEN_FAILED';
  override readonly status = 500;
  constructor(
    readonly deviceName: string,
    readonly errnoCode: string,
    detail: string,
  ) {
    super(`cannot open TAP device ${JSON.stringify(deviceName || '(kernel-chosen)')}: ${detail}; ${tapAdvice(errnoCode)}`);
  }
}

function tapAdvice(errnoCode: string): string {
  switch (errnoCode) {
    case 'EPERM':
    case 'EACCES':
      return 'run weft as root or give it CAP_NET_ADMIN';
    case 'ENOENT':
    case 'ENODEV':
      return '/dev/net/tun is missing: load the tun module (modprobe tun) or pass --device /dev/net/tun to the container';
    case 'EBUSY':
    case 'EINVAL':
      return 'a non-TAP device or another process already holds that name: choose another name or stop the other weft';
    default:
      return 'check that /dev/net/tun exists and that the name is a valid interface name (at most 15 bytes)';
  }
}

export interface TapCaptureDeps {
  /** The loaded addon (`loadNative()`), or a fake in tests. */
  native: WeftNative;
  log: Logger;
}

export interface TapCaptureOptions {
  /** TAP device name (at most 15 bytes); `''` lets the kernel choose (tapN). @default '' */
  name?: string;
  /**
   * Take the kernel's offloads (partial checksums, TCP super-frames) from the TAP. Either way the TAP has a
   * virtio_net_hdr, so super-frames from peers are written whole. @default true
   */
  offload?: boolean;
  /** Put the virtio_net_hdr on the TAP at all; false gives plain frames only (and no `offload`). @default true */
  vnetHeader?: boolean;
  /** Frames per read batch and per write batch. @default 64 */
  batchSlots?: number;
  /** Bytes left free in front of every frame read, for the datapath's header. @default 64 */
  headroomBytes?: number;
  /**
   * Largest frame accepted, in bytes, without FCS. Larger reads are dropped as truncated, larger writes refused.
   * @default 65553 (the largest TAP MTU, 65535, plus a 14-byte Ethernet header and a 4-byte VLAN tag)
   */
  maxFrameBytes?: number;
}

/** Counters read at scrape time; every drop counted under its reason. */
export interface TapCaptureCounters {
  framesRead: number;
  readBatches: number;
  framesWritten: number;
  /** Read frames larger than `maxFrameBytes`. */
  dropsTruncated: number;
  /** Frames written while the device's queue was full (EAGAIN). */
  dropsQueueFull: number;
  /** Frames the device refused (EIO when it is down, EINVAL). */
  dropsWriteError: number;
  /** Frames given to `write()` shorter than an Ethernet header, longer than `maxFrameBytes`, or out of range. */
  dropsBadLength: number;
  /** Frames given to `write()` before `start()` or after `stop()`. */
  dropsNotRunning: number;
  /** TUN_F_* offload bits the kernel accepted (0: none, or offload off). */
  offloads: number;
}

export class TapCapture implements Capture {
  readonly headroomBytes: number;
  vnetHeaderBytes = 0;
  private offloads = 0;
  private readonly isOffloadWanted: boolean;
  private readonly isVnetWanted: boolean;
  private deviceName: string;
  private readonly batchSlots: number;
  private readonly maxFrameBytes: number;
  private readonly native: WeftNative;
  private readonly log: Logger;

  private fd = -1;
  private reader: ReaderHandle | undefined;
  private isStarted = false;
  private lastReaderStats: ReaderStats | undefined;

  /** The read batch, reused for every callback. */
  private readonly batch: FrameBatch;
  private readonly slotBytes: number;

  /** The write batch: frames packed back to back in `sendBuffer`. */
  private sendBuffer: Buffer = Buffer.alloc(0);
  private readonly sendOffsets: Uint32Array;
  private readonly sendLengths: Uint32Array;
  private sendCount = 0;
  private sendUsedBytes = 0;
  /** [queue full, write error], incremented by the addon. */
  private readonly sendDrops = new Float64Array(2);
  /** The one-frame batch of a direct write. */
  private readonly oneOffset = new Uint32Array(1);
  private readonly oneLength = new Uint32Array(1);
  private framesWritten = 0;
  private dropsBadLength = 0;
  private dropsNotRunning = 0;

  constructor(deps: TapCaptureDeps, options: TapCaptureOptions = {}) {
    this.native = deps.native;
    this.log = deps.log;
    this.deviceName = options.name ?? '';
    this.isVnetWanted = options.vnetHeader ?? true;
    this.isOffloadWanted = this.isVnetWanted && (options.offload ?? true);
    this.batchSlots = options.batchSlots ?? 64;
    this.headroomBytes = options.headroomBytes ?? 64;
    this.maxFrameBytes = options.maxFrameBytes ?? 65535 + 14 + 4;
    const minHeadroom = this.isVnetWanted ? VNET_HEADER_BYTES : 0;
    if (!(this.batchSlots >= 1 && this.headroomBytes >= minHeadroom && this.maxFrameBytes >= ETHERNET_HEADER_BYTES)) {
      throw new RangeError(`TapCapture: batchSlots must be >= 1, headroomBytes >= ${minHeadroom}, maxFrameBytes >= 14`);
    }
    // One byte more than the largest frame: a read that fills the slot exactly is how a truncation shows.
    this.slotBytes = this.headroomBytes + this.maxFrameBytes + 1;
    this.batch = {
      count: 0,
      buffer: Buffer.alloc(0),
      offsets: new Uint32Array(this.batchSlots),
      lengths: new Uint32Array(this.batchSlots),
    };
    this.sendOffsets = new Uint32Array(this.batchSlots);
    this.sendLengths = new Uint32Array(this.batchSlots);
  }

  /** The device name: the requested one before `start()`, the kernel's after. */
  get name(): string {
    return this.deviceName;
  }

  /**
   * Create (or attach to) the TAP device and begin reading. Throws `TapOpenError` when the device cannot be
   * opened; the capture is then stopped and `start()` may be tried again.
   */
  async start(onFrames: (batch: FrameBatch) => void): Promise<void> {
    if (this.isStarted) throw new Error('TapCapture.start called twice');
    let opened: { fd: number; name: string; vnetHeaderBytes: number; offloads: number };
    try {
      // With the header even without offloads of our own: peers' TCP super-frames must be writable whole.
      opened = this.native.tapOpen(this.deviceName, this.isVnetWanted, this.isOffloadWanted);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      throw new TapOpenError(this.deviceName, e.code ?? 'EUNKNOWN', e.message ?? String(err));
    }
    this.isStarted = true;
    this.fd = opened.fd;
    this.deviceName = opened.name;
    this.vnetHeaderBytes = opened.vnetHeaderBytes;
    this.offloads = opened.offloads;
    this.batch.buffer = Buffer.alloc(this.batchSlots * this.slotBytes);
    this.sendBuffer = Buffer.alloc(this.batchSlots * (this.vnetHeaderBytes + this.maxFrameBytes));
    const batch = this.batch;
    try {
      this.reader = this.native.tapReaderStart(
        this.fd,
        batch.buffer,
        batch.offsets,
        batch.lengths,
        this.slotBytes,
        this.headroomBytes,
        (count) => {
          if (count < 0) {
            // The device went away under us (deleted by someone else); the addon has stopped reading.
            this.log.error({ reason: 'tap-error', errno: -count, device: this.deviceName }, 'capture device failed');
            return;
          }
          batch.count = count;
          onFrames(batch);
        },
        this.vnetHeaderBytes,
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.log.debug({ device: this.deviceName, offloads: this.offloads }, 'capture started');
  }

  write(buffer: Buffer, offset: number, length: number): boolean {
    return this.queue(buffer, offset, length, false);
  }

  writeOffloaded(buffer: Buffer, headerOffset: number, frameLength: number): boolean {
    if (this.vnetHeaderBytes === 0) {
      this.dropsBadLength++;
      return false;
    }
    const offset = headerOffset + this.vnetHeaderBytes;
    if (frameLength < DIRECT_WRITE_BYTES) return this.queue(buffer, offset, frameLength, true);
    // A super-frame: written at once from the caller's buffer (the kernel copies it), after what is queued, rather
    // than copied into the batch first.
    if (this.fd < 0) {
      this.dropsNotRunning++;
      return false;
    }
    if (frameLength > this.maxFrameBytes || headerOffset < 0 || offset + frameLength > buffer.length) {
      this.dropsBadLength++;
      return false;
    }
    this.flush();
    this.oneOffset[0] = headerOffset;
    this.oneLength[0] = this.vnetHeaderBytes + frameLength;
    const written = this.native.tapWriteBatch(this.fd, buffer, this.oneOffset, this.oneLength, 1, this.sendDrops);
    this.framesWritten += written;
    return written === 1;
  }

  /** Copy a frame (after its header when `hasHeader`, else after an all-zero one when the device wants one). */
  private queue(buffer: Buffer, offset: number, length: number, hasHeader: boolean): boolean {
    if (this.fd < 0) {
      this.dropsNotRunning++;
      return false;
    }
    const header = this.vnetHeaderBytes;
    if (
      length < ETHERNET_HEADER_BYTES ||
      length > this.maxFrameBytes ||
      offset - (hasHeader ? header : 0) < 0 ||
      offset + length > buffer.length
    ) {
      this.dropsBadLength++;
      return false;
    }
    const bytes = header + length;
    if (this.sendCount === this.batchSlots || this.sendUsedBytes + bytes > this.sendBuffer.length) this.flush();
    const at = this.sendUsedBytes;
    if (hasHeader) {
      this.native.copyBytes(buffer, offset - header, this.sendBuffer, at, bytes);
    } else {
      for (let i = 0; i < header; i++) this.sendBuffer[at + i] = 0;
      this.native.copyBytes(buffer, offset, this.sendBuffer, at + header, length);
    }
    this.sendOffsets[this.sendCount] = at;
    this.sendLengths[this.sendCount] = bytes;
    this.sendCount++;
    this.sendUsedBytes = at + bytes;
    return true;
  }

  flush(): void {
    if (this.sendCount === 0 || this.fd < 0) return;
    this.framesWritten += this.native.tapWriteBatch(
      this.fd,
      this.sendBuffer,
      this.sendOffsets,
      this.sendLengths,
      this.sendCount,
      this.sendDrops,
    );
    this.sendCount = 0;
    this.sendUsedBytes = 0;
  }

  /** Stop reading and close the device (frames still queued are discarded). Idempotent; safe after a failed start. */
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
      this.log.debug({ device: this.deviceName }, 'capture stopped');
    }
  }

  /** A snapshot of the counters, for metrics and `weft report`. */
  counters(): TapCaptureCounters {
    const stats = this.reader ? this.native.readerStats(this.reader) : this.lastReaderStats;
    return {
      framesRead: stats?.packets ?? 0,
      readBatches: stats?.batches ?? 0,
      framesWritten: this.framesWritten,
      dropsTruncated: stats?.truncatedDrops ?? 0,
      dropsQueueFull: this.sendDrops[0]!,
      dropsWriteError: this.sendDrops[1]!,
      dropsBadLength: this.dropsBadLength,
      dropsNotRunning: this.dropsNotRunning,
      offloads: this.offloads,
    };
  }
}
