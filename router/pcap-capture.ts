/**
 * `PcapCapture`: a real `Capture` through libpcap (native addon), for hosts where a TAP cannot be put on the bridge
 * (no /dev/net/tun in the router's container, say). `weft launch --capture pcap`.
 *
 * Pipeline: kernel bridge → veth (bridge end) → veth (capture end) → kernel packet ring → (uv_poll wakes, frames
 * copied out of the ring into fixed slots, up to `batchSlots`) → one `onFrames` call per batch → the datapath. Each
 * slot leaves `headroomBytes` free in front of its frame, so the datapath can seal in place. Back: `write()` copies a
 * frame into a packed send batch (no allocation), `flush()` hands the batch to the addon, which injects every frame
 * (pcap_inject) in one N-API call; a full batch flushes itself.
 *
 * No offloads: there is no virtio_net_hdr (`vnetHeaderBytes` 0), so every frame is at most MTU-sized with complete
 * checksums both ways. The interface it captures on must not hand over partial checksums or super-frames (the
 * caller turns the offloads off on the veth pair, netdev/pcap-veth.ts); peers' TCP super-frames reach it as TCP
 * segments (peers send them cut, and the sleeve cuts any it joins from pieces: router/tcp-segments.ts).
 *
 * The interface is the caller's: this class opens and closes only the capture on it.
 */
import type { Capture, FrameBatch } from './capture.js';
import type { Logger } from '../runtime/logger.js';
import type { PcapHandle, ReaderHandle, ReaderStats, WeftNative } from '../native/addon.js';
import { WeftError } from '../runtime/errors.js';

/** Smallest frame worth writing: an Ethernet header (two MACs and an EtherType). */
const ETHERNET_HEADER_BYTES = 14;

/** The pcap capture could not be opened. */
export class PcapOpenError extends WeftError {
  readonly code = 'PCAP_OPEN_FAILED';
  override readonly status = 500;
  constructor(
    readonly interfaceName: string,
    readonly errnoCode: string,
    detail: string,
  ) {
    super(`cannot capture on ${JSON.stringify(interfaceName)} with libpcap: ${detail}; ${pcapAdvice(errnoCode)}`);
  }
}

function pcapAdvice(errnoCode: string): string {
  switch (errnoCode) {
    case 'EPERM':
    case 'EACCES':
      return 'run weft as root or give it CAP_NET_RAW and CAP_NET_ADMIN';
    case 'ENOTSUP':
      return "install libpcap-dev (Debian) and rebuild weft's native addon, or use the TAP (drop --capture pcap)";
    case 'ENODEV':
      return 'the interface is missing: it is made at launch, so another process may have removed it; restart weft';
    default:
      return 'check that the interface exists and is up';
  }
}

export interface PcapCaptureDeps {
  /** The loaded addon (`loadNative()`), or a fake in tests. */
  native: WeftNative;
  log: Logger;
}

export interface PcapCaptureOptions {
  /** Interface to capture on and inject into (the capture end of weft's veth pair). */
  name: string;
  /**
   * Largest frame in bytes, without FCS: the snapshot length. Larger frames read are dropped as truncated, larger
   * writes refused. The overlay MTU plus 18 (Ethernet header and a VLAN tag) is enough. @default 1518
   */
  maxFrameBytes?: number;
  /** Frames per read batch and per write batch. @default 64 */
  batchSlots?: number;
  /** Bytes left free in front of every frame read, for the datapath's header. @default 64 */
  headroomBytes?: number;
  /** Size of the kernel's packet ring in bytes: frames arriving while it is full are dropped by the kernel. @default 4194304 */
  ringBytes?: number;
}

/** Counters read at scrape time; every drop counted under its reason. */
export interface PcapCaptureCounters {
  framesRead: number;
  readBatches: number;
  framesWritten: number;
  /** Frames read longer than `maxFrameBytes` (cut by the snapshot length). */
  dropsTruncated: number;
  /** Frames injected while the socket's buffer was full. */
  dropsQueueFull: number;
  /** Frames the interface refused (down, gone). */
  dropsWriteError: number;
  /** Frames given to `write()` shorter than an Ethernet header, longer than `maxFrameBytes`, or out of range. */
  dropsBadLength: number;
  /** Frames given to `write()` before `start()` or after `stop()`. */
  dropsNotRunning: number;
  /** Frames the kernel dropped because the packet ring was full (the router did not read fast enough). */
  dropsRingFull: number;
}

export class PcapCapture implements Capture {
  readonly headroomBytes: number;
  /** Never a virtio_net_hdr: no offloads through libpcap. */
  readonly vnetHeaderBytes = 0;
  readonly name: string;
  private readonly batchSlots: number;
  private readonly maxFrameBytes: number;
  private readonly ringBytes: number;
  private readonly native: WeftNative;
  private readonly log: Logger;

  private handle: PcapHandle | undefined;
  private reader: ReaderHandle | undefined;
  private isStarted = false;
  private lastReaderStats: ReaderStats | undefined;
  private ringDrops = 0;

  /** The read batch, reused for every callback. */
  private readonly batch: FrameBatch;
  private readonly slotBytes: number;

  /** The write batch: frames packed back to back in `sendBuffer`. */
  private readonly sendBuffer: Buffer;
  private readonly sendOffsets: Uint32Array;
  private readonly sendLengths: Uint32Array;
  private sendCount = 0;
  private sendUsedBytes = 0;
  /** [queue full, write error], incremented by the addon. */
  private readonly sendDrops = new Float64Array(2);
  private framesWritten = 0;
  private dropsBadLength = 0;
  private dropsNotRunning = 0;

  constructor(deps: PcapCaptureDeps, options: PcapCaptureOptions) {
    this.native = deps.native;
    this.log = deps.log;
    this.name = options.name;
    this.batchSlots = options.batchSlots ?? 64;
    this.headroomBytes = options.headroomBytes ?? 64;
    this.maxFrameBytes = options.maxFrameBytes ?? 1518;
    this.ringBytes = options.ringBytes ?? 4 * 1024 * 1024;
    if (!(this.batchSlots >= 1 && this.headroomBytes >= 0 && this.maxFrameBytes >= 64 && this.maxFrameBytes <= 65535 + 18)) {
      throw new RangeError('PcapCapture: batchSlots must be >= 1, headroomBytes >= 0, maxFrameBytes 64..65553');
    }
    this.slotBytes = this.headroomBytes + this.maxFrameBytes;
    this.batch = {
      count: 0,
      buffer: Buffer.alloc(this.batchSlots * this.slotBytes),
      offsets: new Uint32Array(this.batchSlots),
      lengths: new Uint32Array(this.batchSlots),
    };
    this.sendBuffer = Buffer.alloc(this.batchSlots * this.maxFrameBytes);
    this.sendOffsets = new Uint32Array(this.batchSlots);
    this.sendLengths = new Uint32Array(this.batchSlots);
  }

  /** Open the capture and begin reading. Throws `PcapOpenError` when it cannot be opened; `start()` may be tried again. */
  async start(onFrames: (batch: FrameBatch) => void): Promise<void> {
    if (this.isStarted) throw new Error('PcapCapture.start called twice');
    let opened: { handle: PcapHandle; fd: number };
    try {
      opened = this.native.pcapOpen(this.name, this.maxFrameBytes, this.ringBytes);
    } catch (err) {
      const e = err as { code?: string; message?: string };
      throw new PcapOpenError(this.name, e.code ?? 'EUNKNOWN', e.message ?? String(err));
    }
    this.isStarted = true;
    this.handle = opened.handle;
    const batch = this.batch;
    try {
      this.reader = this.native.pcapReaderStart(
        opened.handle,
        batch.buffer,
        batch.offsets,
        batch.lengths,
        this.slotBytes,
        this.headroomBytes,
        (count) => {
          if (count < 0) {
            this.log.error({ reason: 'pcap-error', errno: -count, device: this.name }, 'capture device failed');
            return;
          }
          batch.count = count;
          onFrames(batch);
        },
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.log.debug({ device: this.name, libpcap: this.native.pcapVersion() }, 'capture started');
  }

  write(buffer: Buffer, offset: number, length: number): boolean {
    if (this.handle === undefined) {
      this.dropsNotRunning++;
      return false;
    }
    if (length < ETHERNET_HEADER_BYTES || length > this.maxFrameBytes || offset < 0 || offset + length > buffer.length) {
      this.dropsBadLength++;
      return false;
    }
    if (this.sendCount === this.batchSlots || this.sendUsedBytes + length > this.sendBuffer.length) this.flush();
    const at = this.sendUsedBytes;
    this.native.copyBytes(buffer, offset, this.sendBuffer, at, length);
    this.sendOffsets[this.sendCount] = at;
    this.sendLengths[this.sendCount] = length;
    this.sendCount++;
    this.sendUsedBytes = at + length;
    return true;
  }

  /** No virtio_net_hdr here: always false (counted as a bad length). The sleeve segments super-frames instead. */
  writeOffloaded(): boolean {
    this.dropsBadLength++;
    return false;
  }

  flush(): void {
    if (this.sendCount === 0 || this.handle === undefined) return;
    this.framesWritten += this.native.pcapInjectBatch(
      this.handle,
      this.sendBuffer,
      this.sendOffsets,
      this.sendLengths,
      this.sendCount,
      this.sendDrops,
    );
    this.sendCount = 0;
    this.sendUsedBytes = 0;
  }

  /** Stop reading and close the capture (frames still queued are discarded). Idempotent; safe after a failed start. */
  async stop(): Promise<void> {
    if (this.reader) {
      this.lastReaderStats = this.native.readerStats(this.reader);
      this.native.readerStop(this.reader);
      this.reader = undefined;
    }
    if (this.handle !== undefined) {
      const handle = this.handle;
      this.handle = undefined;
      this.ringDrops = this.native.pcapStats(handle).dropped;
      this.sendCount = 0;
      this.sendUsedBytes = 0;
      this.native.pcapClose(handle);
      this.log.debug({ device: this.name }, 'capture stopped');
    }
  }

  /** A snapshot of the counters, for metrics and `weft report`. */
  counters(): PcapCaptureCounters {
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
      dropsRingFull: this.handle !== undefined ? this.native.pcapStats(this.handle).dropped : this.ringDrops,
    };
  }
}
