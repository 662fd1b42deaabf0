/**
 * The Transport seam: control connections between routers. Framed binary messages, in order, reliable while open.
 *
 * Real: `WsTransport` (WebSocket over TCP port 6783, `ws`). Fake: `MemoryNetwork` (in-memory, with latency, loss of
 * whole links and partition knobs), so 100 routers run in one process. One contract test runs against both.
 */

/** One control connection, either direction. */
export interface TransportConnection {
  /** "host:port" of the remote end as seen by this side (the dialled address for outbound connections). */
  readonly remoteAddr: string;
  /** The remote IP address alone (used for the data plane's endpoint). */
  readonly remoteHost: string;
  /** True if this side dialled. */
  readonly isOutbound: boolean;
  /**
   * Send one message. Never blocks; messages are queued in order. A message sent after close is dropped silently.
   */
  send(message: Uint8Array): void;
  /**
   * Close with a reason (logged and, where the transport can, shown to the other side). Idempotent.
   */
  close(reason: string): void;
  /** Register the message handler (one; set before any message can arrive, i.e. synchronously after accept/dial). */
  onMessage(handler: (message: Uint8Array) => void): void;
  /**
   * Register the close handler; called once, with the reason (local or remote). A reason from the remote side is
   * untrusted text: transports hand it over cut to `MAX_CLOSE_REASON_BYTES` and without control characters
   * (`sanitizeRemoteText`), so it can be logged and shown as it is.
   */
  onClose(handler: (reason: string) => void): void;
  /**
   * Largest incoming message in bytes from now on; a bigger one closes the connection with the reason "message too
   * big" before it is buffered whole (where the transport can). `Infinity` restores the transport's own maximum,
   * which always applies. The control connection keeps this to a few KiB until the handshake is done, so an
   * unauthenticated peer cannot make the router hold a megabyte per connection.
   */
  setMaxMessageBytes(bytes: number): void;
}

/** A connection the transport refused before it became a `TransportConnection` (the caller counts and logs it). */
export interface TransportRefusal {
  /** Counter name, e.g. 'browser_origin_refused', 'upgrade_timeout'. */
  reason: string;
  /** The remote IP address. */
  remoteHost: string;
  /** What happened, for the log. */
  message: string;
}

export interface TransportListener {
  /** The address actually bound ("host:port"). */
  readonly address: string;
  close(): Promise<void>;
}

export interface DialOptions {
  /** Give up when the connection is not open within this many ms (no answer to the SYN). Default: `timeoutMs`. */
  connectTimeoutMs?: number;
}

export interface Transport {
  /**
   * Accept connections on `address` ("host:port"; host may be 0.0.0.0). `onRefused` hears of every connection the
   * transport refused by itself before `onConnection` (a browser's upgrade, an idle socket that never upgraded).
   */
  listen(
    address: string,
    onConnection: (conn: TransportConnection) => void,
    onRefused?: (refusal: TransportRefusal) => void,
  ): Promise<TransportListener>;
  /**
   * Open a connection to `address` ("host:port"). Rejects on failure or after `timeoutMs`, and after
   * `options.connectTimeoutMs` when the underlying connection (TCP) is not even open by then: a dial whose SYN was
   * lost waits in the kernel's retransmission (1 s, then 3 s more), and a caller redialling a peer that was just lost
   * would rather start a fresh dial than wait for it.
   */
  dial(address: string, timeoutMs: number, options?: DialOptions): Promise<TransportConnection>;
}

/**
 * Longest close reason in UTF-8 bytes: a WebSocket close frame holds 125 bytes, 2 of them the status code. Every
 * transport truncates to this so a reason reads the same whichever transport carried it.
 */
export const MAX_CLOSE_REASON_BYTES = 123;

/** `reason` cut to at most `MAX_CLOSE_REASON_BYTES` UTF-8 bytes without splitting a character. */
export function truncateCloseReason(reason: string): string {
  const bytes = Buffer.from(reason, 'utf8');
  if (bytes.length <= MAX_CLOSE_REASON_BYTES) return reason;
  let end = MAX_CLOSE_REASON_BYTES;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--; // back off continuation bytes
  return bytes.subarray(0, end).toString('utf8');
}

/**
 * Text from the remote side (a close reason) made safe to log and print: control and format characters (terminal
 * escapes, bidi overrides, NUL, newlines) become U+FFFD and the result is cut to `maxBytes` UTF-8 bytes.
 */
export function sanitizeRemoteText(text: string, maxBytes = MAX_CLOSE_REASON_BYTES): string {
  // \p{Cc}: C0, DEL, C1 (ESC and CSI among them); \p{Cf}: bidi overrides, zero-width joiners; lone surrogates too.
  const clean = text.replace(/[\p{Cc}\p{Cf}\p{Cs}\u2028\u2029]/gu, '\ufffd');
  const bytes = Buffer.from(clean, 'utf8');
  if (bytes.length <= maxBytes) return clean;
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString('utf8');
}
