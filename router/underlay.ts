/**
 * The Underlay seam: batches of UDP datagrams to and from peer endpoints.
 *
 * Real: `NativeUdpUnderlay` (the native addon: recvmmsg/sendmmsg, UDP GSO/GRO). Fake: `MemoryUnderlay` (an
 * in-memory network with latency, loss and partition knobs).
 */

/** A UDP endpoint. Instances come from control-plane snapshots and are reused, never built per packet. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** Datagrams received in one batch. Owned by the underlay; valid only during the callback. */
export interface DatagramBatch {
  count: number;
  buffer: Buffer;
  offsets: Uint32Array;
  lengths: Uint32Array;
  /** Source address of datagram i. */
  addresses: string[];
  /** Source port of datagram i. */
  ports: Uint16Array;
}

/**
 * Batches both ways: received datagrams come in `DatagramBatch`es; sent ones are queued (`send` copies one in,
 * `claim` lends room to build one in place) and leave together at `flush()`. There is no unbatched path: a single
 * datagram is a batch of one.
 */
export interface Underlay {
  /** The local UDP port bound (known after `start`). */
  readonly localPort: number;
  /**
   * Bind and begin delivering datagrams to `onDatagrams`, synchronously per batch. `onDatagrams` returns false when
   * the batch carried nothing a reply could follow (only heartbeats, say): an underlay that busy-polls for replies
   * then goes back to sleep at once.
   */
  start(onDatagrams: (batch: DatagramBatch) => boolean | void): Promise<void>;
  /**
   * Queue one datagram for `to`. The bytes are copied (or handed to the kernel) before return, so the caller may
   * reuse its buffer at once. Queued datagrams go out at the next `flush()` or sooner.
   */
  send(buffer: Buffer, offset: number, length: number, to: Endpoint): void;
  /**
   * Reserve `length` bytes for one datagram to `to` in `claimBuffer` and return where they start: the caller writes
   * the datagram there (saving the copy `send` makes) before its next call on this underlay, and it goes out like a
   * `send`. -1 (counted) when it cannot be queued.
   */
  claim(length: number, to: Endpoint): number;
  /** Give back the datagram the last `claim` reserved, unsent (the caller could not build it). */
  unclaim(): void;
  /** Where `claim`ed datagrams are written (the same Buffer for the underlay's life, once started). */
  readonly claimBuffer: Buffer;
  /**
   * Called before queued datagrams leave (at `flush`, or when a `claim` or `send` needs room), so a caller that
   * finishes several claimed datagrams at once (seals them in one call) does it in time. It must not call this
   * underlay. Set by the user of the underlay (null: nothing to finish).
   */
  beforeSend: (() => void) | null;
  /** Send every queued datagram now. */
  flush(): void;
  /** Close the socket. Idempotent. */
  stop(): Promise<void>;
}
