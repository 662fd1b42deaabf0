/**
 * `MemoryCapture`: the fake `Capture` for simulations and tests. Frames "from the bridge" are queued with `inject`
 * and delivered in batches from a `Clock` timer (or at once with `deliver()`); frames the datapath writes are kept
 * in `written` (copies) and counted.
 *
 * Like the TAP capture, a batch's frames sit in fixed slots with `headroomBytes` free in front of each, and the
 * batch is valid only during the callback. Injecting and delivering allocate nothing (the queue is a ring of
 * preallocated slots), so an allocation check through this fake measures the datapath, not the fake; set
 * `isRecording: false` there so `write` does not keep copies.
 */
import type { Capture, FrameBatch } from './capture.js';
import type { Clock, Timer } from '../runtime/clock.js';

export interface MemoryCaptureDeps {
  /** Schedules delivery of injected frames (a zero-delay timer per burst). */
  clock: Clock;
}

export interface MemoryCaptureOptions {
  /** Interface name for logs. @default 'mem0' */
  name?: string;
  /** Bytes free in front of each delivered frame. @default 64 (as TapCapture) */
  headroomBytes?: number;
  /** Most frames per delivered batch. @default 64 (as TapCapture) */
  batchSlots?: number;
  /** Frames queued and not yet delivered; `inject` refuses more. @default 256 */
  queueSlots?: number;
  /** Largest frame accepted by `inject` and `write`. @default 9216 (a jumbo frame) */
  maxFrameBytes?: number;
  /** Keep a copy of every frame written in `written`. @default true */
  isRecording?: boolean;
  /**
   * Act as a TAP with offloads: a virtio_net_hdr of this many bytes in front of every delivered frame (all zero
   * unless `inject` got one), and `writeOffloaded` accepted. 0 or 10. @default 0
   */
  vnetHeaderBytes?: number;
}

const ETHERNET_HEADER_BYTES = 14;

export class MemoryCapture implements Capture {
  readonly name: string;
  readonly headroomBytes: number;
  readonly maxFrameBytes: number;
  readonly vnetHeaderBytes: number;
  /** Copies of the frames the datapath wrote, in order (when `isRecording`). Tests may clear it. */
  readonly written: Buffer[] = [];
  /** With `vnetHeaderBytes`: the header each frame in `written` went with (all zero for a plain `write`). */
  readonly writtenHeaders: Buffer[] = [];
  /** Frames written (recorded or not). */
  writtenCount = 0;
  /** `write` refusals (bad length). */
  dropsBadLength = 0;
  /** `inject` refusals (queue full or bad length). */
  dropsInject = 0;
  /** `flush()` calls. */
  flushCount = 0;

  private readonly isRecording: boolean;
  private readonly slotBytes: number;
  private readonly queueSlots: number;
  private readonly buffer: Buffer;
  private readonly queueLengths: Uint32Array;
  private readonly batch: FrameBatch;
  private head = 0;
  private queued = 0;
  private onFrames: ((batch: FrameBatch) => void) | null = null;
  private isStopped = false;
  private timer: Timer | null = null;
  private readonly deliverLater = (): void => {
    this.timer = null;
    this.deliver();
  };

  constructor(
    private readonly deps: MemoryCaptureDeps,
    options: MemoryCaptureOptions = {},
  ) {
    this.name = options.name ?? 'mem0';
    this.headroomBytes = options.headroomBytes ?? 64;
    this.maxFrameBytes = options.maxFrameBytes ?? 9216;
    this.vnetHeaderBytes = options.vnetHeaderBytes ?? 0;
    if (this.vnetHeaderBytes > this.headroomBytes) throw new RangeError('MemoryCapture: vnetHeaderBytes must fit in headroomBytes');
    this.queueSlots = options.queueSlots ?? 256;
    this.isRecording = options.isRecording ?? true;
    const batchSlots = options.batchSlots ?? 64;
    this.slotBytes = this.headroomBytes + this.maxFrameBytes;
    this.buffer = Buffer.alloc(this.queueSlots * this.slotBytes);
    this.queueLengths = new Uint32Array(this.queueSlots);
    this.batch = { count: 0, buffer: this.buffer, offsets: new Uint32Array(batchSlots), lengths: new Uint32Array(batchSlots) };
  }

  /** Frames injected and not yet delivered. */
  get queuedCount(): number {
    return this.queued;
  }

  start(onFrames: (batch: FrameBatch) => void): Promise<void> {
    if (this.onFrames) throw new Error('MemoryCapture.start called twice');
    this.onFrames = onFrames;
    if (this.queued > 0) this.schedule();
    return Promise.resolve();
  }

  /**
   * Queue a copy of `frame` as if the bridge sent it, with `vnetHeader` in front when the capture has offloads (all
   * zero when not given). Returns false (and counts) if the queue is full.
   */
  inject(frame: Buffer, vnetHeader?: Buffer): boolean {
    const ok = this.injectFrom(frame, 0, frame.length);
    if (ok && this.vnetHeaderBytes > 0) {
      const slot = (this.head + this.queued - 1) % this.queueSlots;
      const at = slot * this.slotBytes + this.headroomBytes - this.vnetHeaderBytes;
      this.buffer.fill(0, at, at + this.vnetHeaderBytes);
      vnetHeader?.copy(this.buffer, at, 0, this.vnetHeaderBytes);
    }
    return ok;
  }

  /** `inject` of `buffer[offset, offset+length)`, without making a view (for allocation checks). */
  injectFrom(buffer: Buffer, offset: number, length: number): boolean {
    if (this.isStopped || this.queued >= this.queueSlots || length > this.maxFrameBytes) {
      this.dropsInject++;
      return false;
    }
    const slot = (this.head + this.queued) % this.queueSlots;
    const at = slot * this.slotBytes + this.headroomBytes;
    for (let i = 0; i < length; i++) this.buffer[at + i] = buffer[offset + i]!;
    this.queueLengths[slot] = length;
    this.queued++;
    this.schedule();
    return true;
  }

  /** Deliver every queued frame now, in batches of up to `batchSlots`. No-op before `start` or after `stop`. */
  deliver(): void {
    const onFrames = this.onFrames;
    if (!onFrames || this.isStopped) return;
    const batch = this.batch;
    const max = batch.offsets.length;
    while (this.queued > 0) {
      let n = 0;
      while (n < max && n < this.queued) {
        const slot = (this.head + n) % this.queueSlots;
        batch.offsets[n] = slot * this.slotBytes + this.headroomBytes;
        batch.lengths[n] = this.queueLengths[slot]!;
        n++;
      }
      batch.count = n;
      onFrames(batch);
      // The callback may have injected more; those sit after the ones just delivered.
      this.head = (this.head + n) % this.queueSlots;
      this.queued -= n;
    }
  }

  write(buffer: Buffer, offset: number, length: number): boolean {
    if (length < ETHERNET_HEADER_BYTES || length > this.maxFrameBytes || offset < 0 || offset + length > buffer.length) {
      this.dropsBadLength++;
      return false;
    }
    this.writtenCount++;
    if (this.isRecording) {
      this.written.push(Buffer.from(buffer.subarray(offset, offset + length)));
      if (this.vnetHeaderBytes > 0) this.writtenHeaders.push(Buffer.alloc(this.vnetHeaderBytes));
    }
    return true;
  }

  writeOffloaded(buffer: Buffer, headerOffset: number, frameLength: number): boolean {
    const offset = headerOffset + this.vnetHeaderBytes;
    if (this.vnetHeaderBytes === 0 || headerOffset < 0 || !this.write(buffer, offset, frameLength)) {
      if (this.vnetHeaderBytes === 0) this.dropsBadLength++;
      return false;
    }
    if (this.isRecording) this.writtenHeaders[this.writtenHeaders.length - 1] = Buffer.from(buffer.subarray(headerOffset, offset));
    return true;
  }

  flush(): void {
    this.flushCount++;
  }

  stop(): Promise<void> {
    this.isStopped = true;
    this.timer?.cancel();
    this.timer = null;
    return Promise.resolve();
  }

  private schedule(): void {
    if (this.timer === null && this.onFrames !== null) this.timer = this.deps.clock.setTimeout(this.deliverLater, 0);
  }
}
