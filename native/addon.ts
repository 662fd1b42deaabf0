/**
 * The typed face of the `weft_native` C addon (native/src): TAP devices and batched UDP over IPv4 and IPv6,
 * mechanism only.
 *
 * Conventions shared by every function:
 * - Batches live in caller-owned memory: one Buffer cut into fixed slots of `slotBytes`, a packet starting
 *   `headroomBytes` into its slot, plus typed arrays of offsets, lengths (and for UDP, addresses as four host-order
 *   u32 words each, and ports). The addon keeps references to them while a reader runs; do not reallocate them, reuse them.
 * - Readers run on the main event loop (libuv `uv_poll`): `onBatch(count)` is called synchronously with `count > 0`
 *   packets now in slots `offsets[0..count)`, valid only until the callback returns. A negative `count` (a negated
 *   errno) means the fd reported an error (a TAP whose device was deleted); the reader has stopped itself.
 * - Send functions return how many packets the kernel took and add drops to `drops` (a Float64Array of length 2):
 *   `drops[0]` the queue/socket buffer was full (EAGAIN), `drops[1]` the packet was refused (bad range or an error).
 * - Failures of the kernel calls throw an Error whose `code` is the errno name (`EPERM`, `EADDRINUSE`) and whose
 *   `errno` is the number; argument mistakes throw a TypeError with code `ERR_INVALID_ARG`.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../runtime/errors.js';

/** Opaque handle of a running reader, from `tapReaderStart` or `udpReaderStart`. */
export type ReaderHandle = { readonly __brand: 'weft.ReaderHandle' };

/** Opaque handle of an open libpcap capture, from `pcapOpen`. */
export type PcapHandle = { readonly __brand: 'weft.PcapHandle' };

/** Counters of one reader; they survive `readerStop`. */
export interface ReaderStats {
  /** Times the fd became readable. */
  wakes: number;
  /** Callbacks made (batches delivered). */
  batches: number;
  /** Packets delivered. */
  packets: number;
  /** Packets larger than a slot, dropped. */
  truncatedDrops: number;
  /** Reads that failed with something other than EAGAIN. */
  readErrors: number;
  isStopped: boolean;
}

/** Busy-poll counters of one thread (see `busyPoll`). */
export interface BusyPollStats {
  /** Spins started (after a callback that delivered packets). */
  spins: number;
  /** Times a spin found something to read. */
  hits: number;
  /** CPU time spent spinning with nothing to read. */
  idleMicros: number;
  /** CPU time spent handling what spins found. */
  busyMicros: number;
  /** Spins not started because the budget was spent. */
  skipped: number;
}

/**
 * Called once per batch read; see the module comment for `count`. Must not throw (a throw is uncaught). Returning
 * `false` says the batch was nothing a reply could follow, so busy polling (see `busyPoll`) is not started for it.
 */
export type BatchCallback = (count: number) => boolean | void;

export interface WeftNative {
  /**
   * Finish a partial TCP/UDP checksum in place (a frame read with VIRTIO_NET_HDR_F_NEEDS_CSUM): sum
   * `[frameOffset + csumStart, frameOffset + frameLength)`, store the folded complement at `csumStart + csumOffset`.
   * False (nothing written) when the offsets do not fit.
   */
  checksumComplete(buffer: Buffer, frameOffset: number, frameLength: number, csumStart: number, csumOffset: number): boolean;
  /**
   * Open (creating if needed) the TAP device `name` with IFF_TAP|IFF_NO_PI, nonblocking; with `vnetHeader`, also
   * IFF_VNET_HDR (a 10-byte virtio_net_hdr before every frame, both ways: frames written may be TCP super-frames);
   * with `offload` as well, the kernel hands over partial checksums and super-frames too (`offloads`: the TUN_F_*
   * bits it took; 0 without `offload`). `''` lets the kernel pick
   * a name (tapN). The device is not persistent: it vanishes when the fd is closed. Needs CAP_NET_ADMIN.
   */
  tapOpen(name: string, vnetHeader?: boolean, offload?: boolean): { fd: number; name: string; vnetHeaderBytes: number; offloads: number };
  /**
   * Start reading frames (one per read()) from a TAP fd into slots. With `vnetHeaderBytes` (a TAP opened with
   * offload: 10), each frame's virtio_net_hdr lands in the bytes right before its offset (inside the headroom).
   */
  tapReaderStart(
    fd: number,
    buffer: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    slotBytes: number,
    headroomBytes: number,
    onBatch: BatchCallback,
    vnetHeaderBytes?: number,
  ): ReaderHandle;
  /** Write frames `[0, count)` to a TAP fd, one write() each, in one call. Returns frames written. */
  tapWriteBatch(fd: number, buffer: Buffer, offsets: Uint32Array, lengths: Uint32Array, count: number, drops: Float64Array): number;
  /**
   * Open a libpcap capture on interface `ifname`: promiscuous, immediate, incoming frames only (what is injected is
   * not read back), nonblocking, frames cut at `snapBytes` (the reader drops cut frames as truncated), a kernel ring
   * of `bufferBytes`. Plain Ethernet frames, no offloads. Throws with `code` EPERM (needs CAP_NET_RAW), ENODEV (no
   * such interface), ENETDOWN, EPCAP (another libpcap failure) or ENOTSUP (the addon was built without libpcap).
   */
  pcapOpen(ifname: string, snapBytes: number, bufferBytes: number): { handle: PcapHandle; fd: number };
  /** Start reading frames from a pcap handle into slots (one per `offsets` entry), like `tapReaderStart`. */
  pcapReaderStart(
    handle: PcapHandle,
    buffer: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    slotBytes: number,
    headroomBytes: number,
    onBatch: BatchCallback,
  ): ReaderHandle;
  /** Inject frames `[0, count)` through a pcap handle, one pcap_inject each, in one call. Returns frames injected. */
  pcapInjectBatch(
    handle: PcapHandle,
    buffer: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    count: number,
    drops: Float64Array,
  ): number;
  /** Close a pcap handle (stop its reader with `readerStop` first). Idempotent. */
  pcapClose(handle: PcapHandle): void;
  /** The kernel ring's counters: frames it received, dropped for want of room, dropped by the interface. */
  pcapStats(handle: PcapHandle): { received: number; dropped: number; interfaceDropped: number };
  /** libpcap's version string; '' when the addon was built without libpcap. */
  pcapVersion(): string;
  /**
   * Open a nonblocking UDP socket bound to `bindAddress:port` (port 0: any free port) with 4 MiB socket buffers
   * where the kernel allows (the sizes it granted are returned; Linux reports double what was set). An address with
   * a ':' gives an IPv6 socket with IPV6_V6ONLY off (`family` 6; bound to `::` it carries IPv4 too), a dotted one an
   * IPv4 socket (`family` 4). Addresses cross the boundary as four host-order u32 words per datagram: the 128-bit
   * IPv6 address, most significant word first, IPv4 as ::ffff:a.b.c.d (`[0, 0, 0xffff, u32]`).
   */
  udpOpen(
    bindAddress: string,
    port: number,
  ): { fd: number; port: number; family: 4 | 6; receiveBufferBytes: number; sendBufferBytes: number };
  /**
   * Start receiving datagrams with recvmmsg into slots; datagram i came from the address in words
   * `addrs[4i .. 4i+4)` (see `udpOpen`) and port `ports[i]`. There are `buffer.length / slotBytes` receive slots (at
   * most `offsets.length`); `offsets`, `lengths` and `ports` need as many entries each, at least one per slot, and
   * `addrs` four words per entry. UDP GRO is turned on where the kernel has it: a slot may then
   * hold several datagrams the kernel coalesced, delivered as separate entries lying back to back (the headroom is
   * in front of the first only), so `slotBytes` must be at least `headroomBytes + 65507`, and 64 entries per slot
   * keep a batch from splitting. Datagrams that did not fit the entries stay in their slots and come in the next
   * callback: write only inside the datagrams delivered, never past them.
   */
  udpReaderStart(
    fd: number,
    buffer: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint32Array,
    ports: Uint16Array,
    slotBytes: number,
    headroomBytes: number,
    onBatch: BatchCallback,
  ): ReaderHandle;
  /**
   * Send datagrams `[0, count)` to the address in words `addrs[4i .. 4i+4)` (see `udpOpen`) and port `ports[i]`
   * with sendmmsg. Returns datagrams sent (not messages). `family` is the socket's (from `udpOpen`; default 4): an
   * IPv4 socket refuses datagrams to IPv6 addresses (counted in `drops[1]`).
   *
   * With `gso` (a Float64Array of 4 kept per socket, zeroed at first) runs of datagrams to one endpoint, of one
   * length but the last (which may be shorter), packed back to back in `buffer`, go as one UDP GSO message (up to
   * 64 datagrams and 65000 bytes). `gso[0]` is the state: 0 untried, 1 works, -1 refused by the kernel (then never
   * tried again on that socket); `gso[1]` += GSO messages sent, `gso[2]` += datagrams in them, `gso[3]` += GSO
   * messages the kernel refused, whose datagrams were then sent one by one.
   */
  udpSendBatch(
    fd: number,
    buffer: Buffer,
    offsets: Uint32Array,
    lengths: Uint32Array,
    addrs: Uint32Array,
    ports: Uint16Array,
    count: number,
    drops: Float64Array,
    gso?: Float64Array | null,
    family?: 4 | 6,
  ): number;
  /** Stop a reader. Idempotent; also safe from inside its own callback. The fd stays open. */
  readerStop(reader: ReaderHandle): void;
  readerStats(reader: ReaderHandle): ReaderStats;
  /**
   * Busy polling for every reader of this thread: after a callback that delivered packets, keep polling all the
   * readers' fds (no sleeping) for `windowMicros` more, handling what arrives, and again after each packet found.
   * Spinning with nothing to read is paid from a budget that refills at `sharePercent` of wall time (up to 10 ms),
   * so a trickle of packets cannot keep a CPU busy; one spin never holds the event loop longer than 2 ms.
   * `windowMicros` 0 turns it off (the default).
   */
  busyPoll(windowMicros: number, sharePercent: number): void;
  /**
   * ChaCha20-Poly1305 (RFC 8439) in place with OpenSSL's code inside Node: encrypt `buffer[bodyOffset, +bodyLength)`,
   * write the 16-byte tag after it, authenticate `buffer[adOffset, +adLength)`. Returns `bodyLength + 16`, or -1 when
   * a range does not fit. `nonce` is 12 bytes, `key` 32. Throws ENOTSUP when this Node does not export the
   * primitives (then use libsodium). It may borrow the 64 bytes in front of the body for the duration of the call,
   * also memory in front of the Buffer view itself (put back before it returns): never pass a Buffer over memory
   * another thread reads (a SharedArrayBuffer).
   */
  aeadSeal: SealOne;
  /**
   * Verify the tag that ends `buffer[bodyOffset, +sealedLength)`, then decrypt the body in place. Returns the
   * plaintext length, or -1 when it is not authentic (the body is left as it came: verified before decrypting) or a
   * range does not fit.
   */
  aeadOpen: OpenOne;
  /**
   * AEGIS-256X2 (draft-irtf-cfrg-aegis-aead, "AEGIS-256X" of degree 2, 16-byte tag) in place with the CPU's AES
   * instructions: encrypt `buffer[bodyOffset, +bodyLength)`, write the tag after it, authenticate
   * `buffer[adOffset, +adLength)` (which must not overlap the body). Returns `bodyLength + 16`, or -1 when a range
   * does not fit. `nonce` and `key` are 32 bytes. Throws ENOTSUP when `aegis256x2Implementation()` is ''.
   */
  aegis256x2Seal: SealOne;
  /**
   * Decrypt `buffer[bodyOffset, +sealedLength - 16)` in place and check the tag after it. Returns the plaintext
   * length, or -1 when it is not authentic (the body is then zeroed) or a range does not fit.
   */
  aegis256x2Open: OpenOne;
  /** What computes AEGIS-256X2 on this CPU: 'vaes' (256-bit AES instructions), 'aes-ni', or '' (it cannot). */
  aegis256x2Implementation(): '' | 'aes-ni' | 'vaes';
  /** Tests only: run the 'aes-ni' code although the CPU has VAES (or back). Returns what runs now. */
  aegis256x2Use(implementation: 'aes-ni' | 'vaes'): '' | 'aes-ni' | 'vaes';
  /** See `SealRun` (ChaCha20-Poly1305, 12-byte nonce). */
  aeadSealRun: SealRun;
  /** See `OpenRun` (ChaCha20-Poly1305, 12-byte nonce). */
  aeadOpenRun: OpenRun;
  /** `SealRun` for AEGIS-256X2 (32-byte nonce). */
  aegis256x2SealRun: SealRun;
  /** `OpenRun` for AEGIS-256X2 (32-byte nonce; a body that fails is zeroed). */
  aegis256x2OpenRun: OpenRun;
  /** Busy-poll counters of this thread. */
  busyPollStats(): BusyPollStats;
  /**
   * Copy `length` bytes from `source[sourceOffset..]` to `target[targetOffset..]` (overlap allowed); returns
   * `length`. Exists because `Buffer#copy` of a partial range allocates a view per call in Node 20; this allocates
   * nothing. Throws RangeError (code ERR_OUT_OF_RANGE) for a range outside either buffer: check lengths first.
   */
  copyBytes(source: Buffer, sourceOffset: number, target: Buffer, targetOffset: number, length: number): number;
  /** Close an fd from `tapOpen`/`udpOpen`. Stop its reader first: libuv must not poll a closed fd. */
  fdClose(fd: number): void;
}

/** Seal one datagram in place (the ranges and sizes are each cipher's, in its comment on `WeftNative`). */
export type SealOne = (
  buffer: Buffer,
  adOffset: number,
  adLength: number,
  bodyOffset: number,
  bodyLength: number,
  nonce: Buffer,
  key: Buffer,
) => number;

/** Open one datagram in place: the plaintext length, or -1 (not authentic, or a range that does not fit). */
export type OpenOne = (
  buffer: Buffer,
  adOffset: number,
  adLength: number,
  bodyOffset: number,
  sealedLength: number,
  nonce: Buffer,
  key: Buffer,
) => number;

/**
 * Seal `count` datagrams under one key in one call (as `aeadSeal` one by one): datagram i has its AD at `offsets[i]`
 * (`adLength` bytes) and its body of `bodyLengths[i]` bytes right after it, with room for the tag after that. The
 * first uses `nonce`, each next one the nonce whose last 8 bytes, a big-endian counter, are one more. Returns `count`,
 * or -1 when a range does not fit (nothing written).
 */
export type SealRun = (
  buffer: Buffer,
  offsets: Uint32Array,
  bodyLengths: Uint32Array,
  count: number,
  adLength: number,
  nonce: Buffer,
  key: Buffer,
) => number;

/**
 * Open `count` datagrams under one key in one call (as `aeadOpen` one by one), datagram i with the last 8 bytes of
 * `nonce` set to `seqs[i]` (big-endian). `results[i]` gets the plaintext length, or -1 when it is not authentic.
 * Returns `count`, or -1 when a range does not fit or a seq is not a u53 (nothing opened).
 */
export type OpenRun = (
  buffer: Buffer,
  offsets: Uint32Array,
  sealedLengths: Uint32Array,
  seqs: Float64Array,
  count: number,
  adLength: number,
  nonce: Buffer,
  key: Buffer,
  results: Int32Array,
) => number;

/** The addon has not been compiled (or was compiled for another Node ABI). */
export class NativeAddonMissingError extends WeftError {
  readonly code = 'NATIVE_ADDON_MISSING';
  override readonly status = 500;
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`native addon not loadable at ${path}: ${(cause as Error)?.message ?? cause}; run \`npm run build:native\``);
  }
}

/**
 * The repository root: the nearest directory above this file holding package.json. This file runs both as
 * native/addon.ts (vitest) and as dist/native/addon.js (built), one level deeper, so a fixed `../` would break one.
 */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new NativeAddonMissingError(dir, new Error('no package.json above the addon loader'));
    dir = parent;
  }
}

/** Where the compiled addon is expected. */
export function nativeAddonPath(): string {
  return join(repoRoot(), 'native', 'build', 'Release', 'weft_native.node');
}

/** Whether the compiled addon exists (tests use this to skip with a reason). */
export function isNativeAddonBuilt(): boolean {
  return existsSync(nativeAddonPath());
}

/**
 * Load the addon. Node caches the module, so every call returns the same object. Throws
 * `NativeAddonMissingError` when it is not built.
 */
export function loadNative(): WeftNative {
  const path = nativeAddonPath();
  try {
    return createRequire(import.meta.url)(path) as WeftNative;
  } catch (err) {
    throw new NativeAddonMissingError(path, err);
  }
}

/** `a.b.c.d` to a host-order u32 (127.0.0.1 is 0x7f000001), or -1 when it is not a dotted IPv4 address. */
export function ipv4ToU32(address: string): number {
  const parts = address.split('.');
  if (parts.length !== 4) return -1;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return -1;
    const octet = Number(part);
    if (octet > 255) return -1;
    value = value * 256 + octet;
  }
  return value;
}

/** A host-order u32 to `a.b.c.d`. */
export function u32ToIpv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}
