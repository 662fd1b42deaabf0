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
  /** Register the close handler; called once, with the reason (local or remote). */
  onClose(handler: (reason: string) => void): void;
}

export interface TransportListener {
  /** The address actually bound ("host:port"). */
  readonly address: string;
  close(): Promise<void>;
}

export interface Transport {
  /** Accept connections on `address` ("host:port"; host may be 0.0.0.0). */
  listen(address: string, onConnection: (conn: TransportConnection) => void): Promise<TransportListener>;
  /** Open a connection to `address` ("host:port"). Rejects on failure or after `timeoutMs`. */
  dial(address: string, timeoutMs: number): Promise<TransportConnection>;
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
