/**
 * TapCapture against a fake addon (no root, no device): batching, headroom, copying on write, flushing, drops and
 * errors. The real device is exercised in test/netns/tap-capture.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { BatchCallback, ReaderHandle, WeftNative } from '../native/addon.js';
import { createMemoryLogger } from '../runtime/logger.js';
import { TapCapture, TapOpenError } from './tap-capture.js';
import type { FrameBatch } from './capture.js';

/** A fake addon: one TAP whose reads the test injects and whose writes it records (as copies). */
class FakeNative {
  openedNames: string[] = [];
  closedFds: number[] = [];
  writeBatches: Buffer[][] = [];
  openError: (Error & { code?: string }) | undefined;
  private reader:
    { buffer: Buffer; offsets: Uint32Array; lengths: Uint32Array; slotBytes: number; headroom: number; onBatch: BatchCallback } | undefined;

  vnetHeaderBytesAsked: number | undefined;
  tapOpen(name: string, vnetHeader?: boolean, offload?: boolean): { fd: number; name: string; vnetHeaderBytes: number; offloads: number } {
    if (this.openError) throw this.openError;
    this.openedNames.push(name);
    return { fd: 42, name: name || 'tap7', vnetHeaderBytes: vnetHeader ? 10 : 0, offloads: offload ? 0x17 : 0 };
  }
  tapReaderStart(
    fd: number,
    buffer: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    slotBytes: number,
    headroom: number,
    onBatch: BatchCallback,
    vnetHeaderBytes?: number,
  ): ReaderHandle {
    this.reader = { buffer, offsets, lengths, slotBytes, headroom, onBatch };
    this.vnetHeaderBytesAsked = vnetHeaderBytes;
    return {} as ReaderHandle;
  }
  tapWriteBatch(fd: number, buffer: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number, _drops: Float64Array): number {
    const frames: Buffer[] = [];
    for (let i = 0; i < count; i++) frames.push(Buffer.from(buffer.subarray(offsets[i]!, offsets[i]! + lengths[i]!)));
    this.writeBatches.push(frames);
    return count;
  }
  readerStop(): void {
    this.reader = undefined;
  }
  readerStats() {
    return { wakes: 0, batches: 0, packets: 0, truncatedDrops: 0, readErrors: 0, isStopped: !this.reader };
  }
  copyBytes(source: Buffer, sourceOffset: number, target: Buffer, targetOffset: number, length: number): number {
    return source.copy(target, targetOffset, sourceOffset, sourceOffset + length);
  }
  fdClose(fd: number): void {
    this.closedFds.push(fd);
  }
  /** What the addon does on readability: fill slots the way tap.c does, then call back once. */
  deliver(frames: Buffer[]): void {
    const r = this.reader!;
    frames.forEach((frame, i) => {
      const at = i * r.slotBytes + r.headroom;
      frame.copy(r.buffer, at);
      r.offsets[i] = at;
      r.lengths[i] = frame.length;
    });
    r.onBatch(frames.length);
  }
  fail(errno: number): void {
    this.reader!.onBatch(-errno);
  }
}

function frame(n: number, length = 60): Buffer {
  const b = Buffer.alloc(length, n);
  b.writeUIntBE(0x020000000000 + n, 0, 6);
  return b;
}

function setup(options: ConstructorParameters<typeof TapCapture>[1] = {}) {
  const fake = new FakeNative();
  const logger = createMemoryLogger();
  // No header unless a test asks: most tests look at plain frames.
  const capture = new TapCapture({ native: fake as unknown as WeftNative, log: logger.log }, { vnetHeader: false, ...options });
  return { fake, capture, logger };
}

describe('TapCapture', () => {
  it('opens the requested device and reports the name the kernel gave', async () => {
    const { fake, capture } = setup();
    expect(capture.name).toBe('');
    await capture.start(() => {});
    expect(fake.openedNames).toEqual(['']);
    expect(capture.name).toBe('tap7');
  });

  it('delivers each read batch once, with the headroom free in front of every frame', async () => {
    const { fake, capture } = setup({ name: 'weft-tap', headroomBytes: 48, batchSlots: 8 });
    const seen: Array<{ count: number; gaps: number[]; macs: number[] }> = [];
    await capture.start((batch: FrameBatch) => {
      const gaps: number[] = [];
      const macs: number[] = [];
      for (let i = 0; i < batch.count; i++) {
        gaps.push(batch.offsets[i]! - (i === 0 ? 0 : batch.offsets[i - 1]! + batch.lengths[i - 1]!));
        macs.push(batch.buffer.readUIntBE(batch.offsets[i]!, 6));
      }
      seen.push({ count: batch.count, gaps, macs });
    });
    expect(capture.headroomBytes).toBe(48);
    fake.deliver([frame(1), frame(2, 1514), frame(3)]);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.count).toBe(3);
    expect(seen[0]!.macs).toEqual([0x020000000001, 0x020000000002, 0x020000000003]);
    expect(Math.min(...seen[0]!.gaps)).toBeGreaterThanOrEqual(48);
  });

  it('copies frames on write, so the caller may reuse its buffer before flush', async () => {
    const { fake, capture } = setup();
    await capture.start(() => {});
    const scratch = Buffer.alloc(200);
    frame(1).copy(scratch, 10);
    expect(capture.write(scratch, 10, 60)).toBe(true);
    frame(2).copy(scratch, 10);
    expect(capture.write(scratch, 10, 60)).toBe(true);
    scratch.fill(0);
    expect(fake.writeBatches).toHaveLength(0); // nothing written before flush
    capture.flush();
    expect(fake.writeBatches).toEqual([[frame(1), frame(2)]]);
    capture.flush(); // an empty flush writes nothing
    expect(fake.writeBatches).toHaveLength(1);
    expect(capture.counters().framesWritten).toBe(2);
  });

  it('flushes by itself when the write batch is full', async () => {
    const { fake, capture } = setup({ batchSlots: 4 });
    await capture.start(() => {});
    for (let i = 0; i < 10; i++) capture.write(frame(i), 0, 60);
    expect(fake.writeBatches.map((b) => b.length)).toEqual([4, 4]);
    capture.flush();
    expect(fake.writeBatches.flat()).toEqual([...Array(10).keys()].map((i) => frame(i)));
  });

  it('drops and counts frames it cannot write, without throwing', async () => {
    const { capture } = setup({ maxFrameBytes: 1518 });
    expect(capture.write(frame(1), 0, 60)).toBe(false); // not started
    await capture.start(() => {});
    expect(capture.write(frame(1), 0, 13)).toBe(false); // shorter than an Ethernet header
    expect(capture.write(frame(1, 2000), 0, 1519)).toBe(false); // above maxFrameBytes
    expect(capture.write(frame(1), 50, 20)).toBe(false); // beyond the buffer
    expect(capture.counters()).toMatchObject({ dropsNotRunning: 1, dropsBadLength: 3, framesWritten: 0 });
  });

  it('turns an open failure into TapOpenError with advice, and can start again after', async () => {
    const { fake, capture } = setup({ name: 'weft-tap' });
    fake.openError = Object.assign(new Error("TUNSETIFF 'weft-tap': Operation not permitted"), { code: 'EPERM' });
    const err = await capture.start(() => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TapOpenError);
    expect(err).toMatchObject({ code: 'TAP_OPEN_FAILED', errnoCode: 'EPERM', deviceName: 'weft-tap' });
    expect((err as Error).message).toMatch(/weft-tap.*CAP_NET_ADMIN/);
    await capture.stop(); // safe after a failed start
    expect(fake.closedFds).toEqual([]);
    fake.openError = undefined;
    await capture.start(() => {});
    expect(capture.name).toBe('weft-tap');
  });

  it('logs a device failure once and keeps counting', async () => {
    const { fake, capture, logger } = setup();
    await capture.start(() => {});
    fake.fail(9);
    expect(logger.lines().filter((l) => l.reason === 'tap-error')).toHaveLength(1);
  });

  it('stops idempotently: closes the device once and refuses writes afterwards', async () => {
    const { fake, capture } = setup();
    await capture.start(() => {});
    capture.write(frame(1), 0, 60);
    await capture.stop();
    await capture.stop();
    expect(fake.closedFds).toEqual([42]);
    expect(capture.write(frame(1), 0, 60)).toBe(false);
    capture.flush();
    expect(fake.writeBatches).toHaveLength(0); // the queued frame was discarded with the device
  });

  it('with offloads, reads headers before frames and writes a zero header before plain frames and the given one before offloaded frames', async () => {
    const { fake, capture } = setup({ vnetHeader: true, batchSlots: 4 });
    await capture.start(() => {});
    expect(capture.vnetHeaderBytes).toBe(10);
    expect(fake.vnetHeaderBytesAsked).toBe(10);
    expect(capture.counters().offloads).toBe(0x17);
    const plain = frame(1);
    expect(capture.write(plain, 0, plain.length)).toBe(true);
    const small = Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0x22, 0, 0x10, 0]), frame(3, 1000)]);
    expect(capture.writeOffloaded(small, 0, 1000)).toBe(true); // queued with the plain one
    const big = Buffer.concat([Buffer.from([1, 1, 0x36, 0, 0x88, 5, 0x22, 0, 0x10, 0]), frame(2, 9000)]);
    expect(capture.writeOffloaded(big, 0, 9000)).toBe(true); // written at once, after what was queued
    expect(fake.writeBatches).toEqual([[Buffer.concat([Buffer.alloc(10), plain]), small], [big]]);
    capture.flush();
    expect(fake.writeBatches).toHaveLength(2);
    expect(capture.counters().framesWritten).toBe(3);
  });

  it('keeps the header but takes no offloads with offload off', async () => {
    const { capture } = setup({ vnetHeader: true, offload: false });
    await capture.start(() => {});
    expect(capture.vnetHeaderBytes).toBe(10);
    expect(capture.counters().offloads).toBe(0);
  });

  it('refuses offloaded writes when the device has no header', async () => {
    const { fake, capture } = setup({ vnetHeader: false });
    await capture.start(() => {});
    expect(capture.vnetHeaderBytes).toBe(0);
    expect(capture.writeOffloaded(Buffer.alloc(80), 0, 70)).toBe(false);
    capture.flush();
    expect(fake.writeBatches).toEqual([]);
    expect(capture.counters().dropsBadLength).toBe(1);
  });
});
