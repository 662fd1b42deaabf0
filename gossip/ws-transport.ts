/**
 * The real `Transport`: WebSocket over TCP (`ws`), one binary WebSocket message per control message.
 *
 * - Close reasons travel in the close frame (RFC 6455 allows 123 bytes; longer reasons are cut on a UTF-8 boundary).
 * - `maxPayloadBytes` bounds one incoming message; `ws` closes a connection that exceeds it (code 1009), which we
 *   report as "message too big".
 * - TCP_NODELAY: control messages are small and latency-sensitive (heartbeats, handshakes); Nagle would hold them.
 * - A `ws` 'error' event never escapes: every socket has an error handler that turns the error into a close reason.
 * - Text frames are refused: the protocol is binary, a text frame means a confused or hostile peer.
 */
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import type { IncomingMessage } from 'node:http';
import { joinAddress, splitAddress } from './address.js';
import { truncateCloseReason, type Transport, type TransportConnection, type TransportListener } from './transport.js';

export { truncateCloseReason } from './transport.js';

export interface WsTransportOptions {
  /** Largest incoming message in bytes. @default 1 MiB */
  maxPayloadBytes?: number;
  /**
   * A connection whose unsent data exceeds this is closed rather than letting memory grow without bound (the peer
   * stopped reading). @default 16 MiB
   */
  maxBufferedBytes?: number;
}

class WsConnection implements TransportConnection {
  private messageHandler: ((m: Uint8Array) => void) | null = null;
  private closeHandler: ((reason: string) => void) | null = null;
  private early: Uint8Array[] = [];
  private closeReason: string | null = null;
  /** Set when we decided why the connection ends, so the close event reports our reason, not a code. */
  private localReason: string | null = null;

  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddr: string,
    readonly remoteHost: string,
    readonly isOutbound: boolean,
    private readonly maxBufferedBytes: number,
  ) {
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (this.closeReason !== null) return;
      if (!isBinary) {
        this.close('text frame refused: the weft control protocol is binary');
        return;
      }
      const message = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (this.messageHandler) this.messageHandler(message);
      else this.early.push(message);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      this.localReason ??= err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'message too big' : err.message;
    });
    ws.on('close', (code: number, reason: Buffer) => {
      const remote = reason.length > 0 ? reason.toString('utf8') : code === 1009 ? 'message too big' : code === 1006 ? 'connection lost' : `closed (code ${code})`;
      this.finish(this.localReason ?? remote);
    });
  }

  send(message: Uint8Array): void {
    if (this.closeReason !== null || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount > this.maxBufferedBytes) {
      this.close(`send queue over ${this.maxBufferedBytes} bytes: peer not reading`);
      return;
    }
    this.ws.send(message, { binary: true });
  }

  close(reason: string): void {
    if (this.closeReason !== null) return;
    const cut = truncateCloseReason(reason);
    this.localReason ??= cut;
    try {
      if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, cut);
    } catch {
      this.ws.terminate();
    }
    // Report the close now: callers expect close() to end the connection, not to wait for the peer's close frame.
    this.finish(this.localReason);
    // A peer that never answers the close frame must not keep the socket open for ws's 30 s default.
    const t = setTimeout(() => this.ws.terminate(), 2000);
    t.unref();
    this.ws.once('close', () => clearTimeout(t));
  }

  onMessage(handler: (m: Uint8Array) => void): void {
    this.messageHandler = handler;
    const early = this.early;
    this.early = [];
    for (const m of early) if (this.closeReason === null) handler(m);
  }

  onClose(handler: (reason: string) => void): void {
    this.closeHandler = handler;
    if (this.closeReason !== null) handler(this.closeReason);
  }

  private finish(reason: string): void {
    if (this.closeReason !== null) return;
    this.closeReason = reason;
    this.early = [];
    this.closeHandler?.(reason);
  }
}

/** WebSocket transport; one instance may listen once and dial many times. */
export class WsTransport implements Transport {
  private readonly maxPayloadBytes: number;
  private readonly maxBufferedBytes: number;

  constructor(options: WsTransportOptions = {}) {
    this.maxPayloadBytes = options.maxPayloadBytes ?? 1024 * 1024;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
  }

  listen(address: string, onConnection: (conn: TransportConnection) => void): Promise<TransportListener> {
    const { host, port } = splitAddress(address);
    return new Promise((resolve, reject) => {
      const server = new WebSocketServer({ host, port, maxPayload: this.maxPayloadBytes, perMessageDeflate: false });
      const onListenError = (err: Error) => reject(new Error(`listen ${address}: ${err.message}`));
      server.once('error', onListenError);
      server.on('listening', () => {
        server.off('error', onListenError);
        // Later server errors (none expected once bound) must not crash the process.
        server.on('error', () => {});
        const bound = server.address();
        const actual = typeof bound === 'object' && bound ? joinAddress(bound.address, bound.port) : address;
        resolve({
          address: actual,
          close: () =>
            new Promise<void>((done) => {
              for (const c of server.clients) c.terminate();
              server.close(() => done());
            }),
        });
      });
      server.on('connection', (ws: WebSocket, req: IncomingMessage) => {
        const socket = req.socket;
        socket.setNoDelay(true);
        const rhost = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
        const conn = new WsConnection(ws, joinAddress(rhost, socket.remotePort ?? 0), rhost, false, this.maxBufferedBytes);
        onConnection(conn);
      });
      server.on('wsClientError', (_err, socket) => socket.destroy());
    });
  }

  dial(address: string, timeoutMs: number): Promise<TransportConnection> {
    let host: string;
    let port: number;
    try {
      ({ host, port } = splitAddress(address));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const url = `ws://${joinAddress(host, port)}/`;
      const ws = new WebSocket(url, { maxPayload: this.maxPayloadBytes, perMessageDeflate: false, handshakeTimeout: timeoutMs });
      let isSettled = false;
      const fail = (message: string) => {
        if (isSettled) return;
        isSettled = true;
        clearTimeout(timer);
        ws.terminate();
        reject(new Error(`dial ${address}: ${message}`));
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs}ms`), timeoutMs);
      timer.unref();
      ws.on('error', (err) => fail(err.message));
      ws.on('upgrade', (res) => res.socket.setNoDelay(true));
      ws.once('open', () => {
        if (isSettled) return;
        isSettled = true;
        clearTimeout(timer);
        ws.removeAllListeners('error');
        resolve(new WsConnection(ws, joinAddress(host, port), host, true, this.maxBufferedBytes));
      });
    });
  }
}
