/**
 * The Capture seam: batches of Ethernet frames to and from the local bridge.
 *
 * Real: `TapCapture` (native TAP addon). Fake: `MemoryCapture` (in-memory frame queues).
 *
 * Frames are delivered in batches that the capture owns and reuses: a receiver must finish with a batch (or copy out
 * what it keeps) before its callback returns. Every frame in a batch starts at least `headroomBytes` after the
 * previous frame's end (and after the buffer's start), so a receiver may write its own header in front of a frame in
 * place without copying.
 *
 * Offloads: a capture may run with a `vnetHeaderBytes`-byte virtio_net_hdr (see ./offload.ts) in front of every
 * frame, in the headroom. It then hands over, and takes, frames whose TCP/UDP checksum is only partly computed and
 * TCP "super-frames" of up to 64 KiB that the kernel has not cut into segments; the header says which.
 */

/** A batch of frames in one buffer. Owned by the capture; valid only during the callback. */
export interface FrameBatch {
  /** Number of frames in this batch. */
  count: number;
  /** The buffer holding every frame. */
  buffer: Buffer;
  /** Start of frame i (a destination MAC) in `buffer`. */
  offsets: Uint32Array;
  /** Length in bytes of frame i (no FCS). */
  lengths: Uint32Array;
}

export interface Capture {
  /** Interface name on the host (e.g. the TAP device), for logs and status. */
  readonly name: string;
  /** Bytes free in front of every frame delivered in a batch. */
  readonly headroomBytes: number;
  /**
   * Bytes of virtio_net_hdr in front of every frame delivered (the last bytes of its headroom), and expected in
   * front of frames given to `writeOffloaded`; 0 when the capture has no offloads. Known once `start` resolved.
   */
  readonly vnetHeaderBytes: number;
  /**
   * Begin delivering frames; `onFrames` runs synchronously for each batch read. Must not be called twice.
   * Resolves once the capture is open.
   */
  start(onFrames: (batch: FrameBatch) => void): Promise<void>;
  /**
   * Queue one frame to be written to the bridge. The bytes are copied before return, so the caller keeps its
   * buffer. Frames queued are written at the next `flush()` (or sooner when the queue is full).
   * Returns false (and counts a drop) when the frame cannot be queued.
   */
  write(buffer: Buffer, offset: number, length: number): boolean;
  /**
   * Queue one frame together with its virtio_net_hdr: `buffer[headerOffset, +vnetHeaderBytes)` is the header and
   * the frame of `frameLength` bytes follows it. Only for a capture with `vnetHeaderBytes > 0`; false (counted)
   * otherwise, or when the frame cannot be queued.
   */
  writeOffloaded(buffer: Buffer, headerOffset: number, frameLength: number): boolean;
  /** Write every queued frame now (one batched syscall where the device allows). */
  flush(): void;
  /** Stop reading and close the device. Idempotent. */
  stop(): Promise<void>;
}
