/**
 * A cache of `Buffer` views for the data plane, so sealing in place allocates nothing in steady state.
 *
 * libsodium's Node binding takes whole typed arrays (it reads `byteOffset` and `byteLength`), so encrypting
 * `buffer[offset, offset+length)` needs a view of exactly that range, and `subarray()` makes a new object every
 * time. The data plane reuses a fixed set of slot buffers and sees few distinct (offset, length) pairs per slot (the
 * header, MTU-sized bodies, a handful of small ones), so each view is made once and looked up afterwards.
 *
 * Memory is bounded by `maxViews` (each view is ~100 bytes of heap); past it, views are made per call and not kept,
 * which is correct, just not allocation-free. Buffers are held weakly: a dropped slot buffer takes its views with
 * it (but still counts against `maxViews`, so feed this long-lived buffers, not per-packet ones).
 *
 * One instance can serve every session of a datapath (they read the same slots). Single-threaded; not for workers
 * that share buffers.
 */
export class BufferViews {
  private readonly byBuffer = new WeakMap<Buffer, Map<number, Map<number, Buffer>>>();
  private cached = 0;

  /** @param maxViews most views kept. @default 8192 (under 1 MiB) */
  constructor(readonly maxViews = 8192) {}

  /** Number of views kept. */
  get size(): number {
    return this.cached;
  }

  /** A view of `buffer[offset, offset+length)`. The caller must keep the range inside `buffer`. */
  view(buffer: Buffer, offset: number, length: number): Buffer {
    const byOffset = this.byBuffer.get(buffer);
    const byLength = byOffset?.get(offset);
    const cachedView = byLength?.get(length);
    if (cachedView !== undefined) return cachedView;
    const v = buffer.subarray(offset, offset + length);
    if (this.cached >= this.maxViews) return v;
    if (byOffset === undefined) {
      this.byBuffer.set(buffer, new Map([[offset, new Map([[length, v]])]]));
    } else if (byLength === undefined) {
      byOffset.set(offset, new Map([[length, v]]));
    } else {
      byLength.set(length, v);
    }
    this.cached++;
    return v;
  }
}
