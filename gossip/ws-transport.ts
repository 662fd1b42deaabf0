/**
 * The real `Transport`: WebSocket over TCP (`ws`), one binary WebSocket message per control message.
 *
 * - Close reasons travel in the close frame (RFC 6455 allows 123 bytes; longer reasons are cut on a UTF-8 boundary).
 * - `maxPayloadBytes` bounds one incoming message; `ws` closes a connection that exceeds it (code 1009), which we
 *   report as "message too big".
 * - TCP_NODELAY: control messages are small and latency-sensitive (heartbeats, handshakes); Nagle would hold them.
 * - A `ws` 'error' event never escapes: every socket has an error handler that turns the error into a close reason.
 * - Text frames are refused: the protocol is binary, a text frame means a confused or hostile peer.
 * - Browsers are refused at the upgrade: every request with an `Origin` header gets 403 (routers never send one; a
 *   web page open on some host always does), so no page can open a control connection, let alone run a handshake.
 * - Before the upgrade a socket is bounded: `upgradeTimeoutMs` to finish it, at most `maxUpgradingConnections` such
 *   sockets in all and `maxUpgradingPerAddress` from one address. Each refusal goes to the listener's `onRefused`.
 * - `setMaxMessageBytes` lowers `ws`'s own per-message limit on that one connection (the receiver checks it per
 *   frame header, so a too-big message is refused before it is buffered), with a check on each message behind it.
 */
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { createServer, type IncomingMessage } from 'node:http';
import { connect as netConnect, type NetConnectOpts } from 'node:net';
import type { Duplex } from 'node:stream';
import { joinAddress, splitAddress } from '../runtime/address.js';
import {
  sanitizeRemoteText,
  truncateCloseReason,
  type Transport,
  type DialOptions,
  type TransportConnection,
  type TransportListener,
  type TransportRefusal,
} from './transport.js';

export { truncateCloseReason } from './transport.js';

export interface WsTransportOptions {
  /** Largest incoming message in bytes. @default 1 MiB */
  maxPayloadBytes?: number;
  /**
   * A connection whose unsent data exceeds this is closed rather than letting memory grow without bound (the peer
   * stopped reading). @default 16 MiB
   */
  maxBufferedBytes?: number;
  /** An accepted TCP connection must finish its WebSocket upgrade within this. @default 10000 */
  upgradeTimeoutMs?: number;
  /** Accepted sockets not yet upgraded, in all; more are closed at once. @default 256 */
  maxUpgradingConnections?: number;
  /** Accepted sockets not yet upgraded from one address; more are closed at once. @default 16 */
  maxUpgradingPerAddress?: number;
  /** Source address for dials (must be one of this host's). @default chosen by the kernel */
  localAddress?: string;
}

class WsConnection implements TransportConnection {
  private messageHandler: ((m: Uint8Array) => void) | null = null;
  private closeHandler: ((reason: string) => void) | null = null;
  private early: Uint8Array[] = [];
  private closeReason: string | null = null;
  /** Set when we decided why the connection ends, so the close event reports our reason, not a code. */
  private localReason: string | null = null;
  private maxMessageBytes: number;

  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddr: string,
    readonly remoteHost: string,
    readonly isOutbound: boolean,
    private readonly maxBufferedBytes: number,
    private readonly maxPayloadBytes: number,
  ) {
    this.maxMessageBytes = maxPayloadBytes;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (this.closeReason !== null) return;
      if (!isBinary) {
        this.close('text frame refused: the weft control protocol is binary');
        return;
      }
      const message = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (message.length > this.maxMessageBytes) {
        // Only when ws's receiver did not take the limit (see setMaxMessageBytes).
        this.close('message too big');
        return;
      }
      if (this.messageHandler) this.messageHandler(message);
      else this.early.push(message);
    });
    ws.on('error', (err: Error & { code?: string }) => {
      this.localReason ??= err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'message too big' : err.message;
    });
    ws.on('close', (code: number, reason: Buffer) => {
      const remote =
        reason.length > 0
          ? sanitizeRemoteText(reason.toString('utf8'))
          : code === 1009
            ? 'message too big'
            : code === 1006
              ? 'connection lost'
              : `closed (code ${code})`;
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

  setMaxMessageBytes(bytes: number): void {
    this.maxMessageBytes = Math.min(bytes, this.maxPayloadBytes);
    // ws has no public way to change one connection's limit; its receiver reads `_maxPayload` at every frame header
    // (ws 8), so setting it refuses a too-big message with 1009 before buffering it. If a later ws renames it, the
    // check in the message handler still holds (after buffering); transport.contract.test.ts shows which applies.
    const receiver = (this.ws as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver;
    if (receiver && typeof receiver._maxPayload === 'number') {
      receiver._maxPayload = Number.isFinite(this.maxMessageBytes) ? this.maxMessageBytes : 0;
    }
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
  private readonly upgradeTimeoutMs: number;
  private readonly maxUpgradingConnections: number;
  private readonly maxUpgradingPerAddress: number;
  private readonly localAddress: string | undefined;

  constructor(options: WsTransportOptions = {}) {
    this.maxPayloadBytes = options.maxPayloadBytes ?? 1024 * 1024;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 16 * 1024 * 1024;
    this.upgradeTimeoutMs = options.upgradeTimeoutMs ?? 10_000;
    this.maxUpgradingConnections = options.maxUpgradingConnections ?? 256;
    this.maxUpgradingPerAddress = options.maxUpgradingPerAddress ?? 16;
    this.localAddress = options.localAddress;
  }

  listen(
    address: string,
    onConnection: (conn: TransportConnection) => void,
    onRefused?: (refusal: TransportRefusal) => void,
  ): Promise<TransportListener> {
    const { host, port } = splitAddress(address);
    const refuse = (reason: string, remoteHost: string, message: string) => {
      try {
        onRefused?.({ reason, remoteHost, message });
      } catch {
        // the caller's bookkeeping must not break the listener
      }
    };
    return new Promise((resolve, reject) => {
      const wss = new WebSocketServer({ noServer: true, maxPayload: this.maxPayloadBytes, perMessageDeflate: false });
      const server = createServer();
      /** Sockets accepted but not yet upgraded, per remote host, and what ends their tracking. */
      const upgrading = new Map<string, number>();
      let upgradingTotal = 0;
      const release = new WeakMap<Duplex, () => void>();
      server.on('connection', (socket) => {
        const rhost = remoteHostOf(socket.remoteAddress);
        if (upgradingTotal >= this.maxUpgradingConnections) {
          refuse('upgrade_cap', rhost, `${upgradingTotal} connections are already waiting for their upgrade`);
          socket.destroy();
          return;
        }
        const fromHost = upgrading.get(rhost) ?? 0;
        if (fromHost >= this.maxUpgradingPerAddress) {
          refuse('upgrade_cap_address', rhost, `${fromHost} connections from this address are already waiting for their upgrade`);
          socket.destroy();
          return;
        }
        upgradingTotal++;
        upgrading.set(rhost, fromHost + 1);
        let isTracked = true;
        const timer = setTimeout(() => {
          refuse('upgrade_timeout', rhost, `no WebSocket upgrade within ${this.upgradeTimeoutMs}ms`);
          socket.destroy();
        }, this.upgradeTimeoutMs);
        timer.unref();
        const untrack = () => {
          if (!isTracked) return;
          isTracked = false;
          clearTimeout(timer);
          upgradingTotal--;
          const n = (upgrading.get(rhost) ?? 1) - 1;
          if (n > 0) upgrading.set(rhost, n);
          else upgrading.delete(rhost);
        };
        release.set(socket, untrack);
        socket.once('close', untrack);
      });
      // A plain HTTP request: this port speaks only WebSocket.
      server.on('request', (req: IncomingMessage, res) => {
        refuse(
          'http_request_refused',
          remoteHostOf(req.socket.remoteAddress),
          `plain HTTP ${String(req.method).slice(0, 16)} request refused`,
        );
        res.writeHead(426, { Connection: 'close', Upgrade: 'websocket', 'Content-Type': 'text/plain' });
        res.end('weft control port: WebSocket only\n');
      });
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        release.get(socket)?.();
        const rhost = remoteHostOf(req.socket.remoteAddress);
        socket.on('error', () => socket.destroy());
        if (req.headers.origin !== undefined) {
          // Routers never send Origin; browsers always do (and cannot leave it out): a web page is refused here.
          refuse('browser_origin_refused', rhost, 'WebSocket upgrade with an Origin header refused (a browser?)');
          socket.end(
            'HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 35\r\n\r\nbrowsers may not use the weft port\n',
          );
          socket.once('finish', () => socket.destroy());
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => {
          const tcp = req.socket;
          tcp.setNoDelay(true);
          const conn = new WsConnection(
            ws,
            joinAddress(rhost, tcp.remotePort ?? 0),
            rhost,
            false,
            this.maxBufferedBytes,
            this.maxPayloadBytes,
          );
          onConnection(conn);
        });
      });
      server.on('clientError', (_err, socket: Duplex) => socket.destroy());
      wss.on('wsClientError', (_err, socket: Duplex) => socket.destroy());
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
              for (const c of wss.clients) c.terminate();
              server.closeAllConnections();
              server.close(() => done());
            }),
        });
      });
      server.listen(port, host);
    });
  }

  dial(address: string, timeoutMs: number, options: DialOptions = {}): Promise<TransportConnection> {
    let host: string;
    let port: number;
    try {
      ({ host, port } = splitAddress(address));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise((resolve, reject) => {
      const url = `ws://${joinAddress(host, port)}/`;
      const ws = new WebSocket(url, {
        maxPayload: this.maxPayloadBytes,
        perMessageDeflate: false,
        handshakeTimeout: timeoutMs,
        ...(this.localAddress !== undefined && { localAddress: this.localAddress }),
        // Our own connect, to see when TCP is open (the connect timeout below).
        // (ws calls it with options only; the cast is for @types/ws, which asks for net.connect's every overload).
        createConnection: ((o: NetConnectOpts) => {
          const socket = netConnect(o);
          socket.once('connect', () => clearTimeout(connectTimer));
          return socket;
        }) as typeof netConnect,
      });
      let isSettled = false;
      const fail = (message: string) => {
        if (isSettled) return;
        isSettled = true;
        clearTimeout(timer);
        clearTimeout(connectTimer);
        ws.terminate();
        reject(new Error(`dial ${address}: ${message}`));
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs}ms`), timeoutMs);
      timer.unref();
      // No TCP connection by then: the SYN (or its answer) was lost. Checked once more after the next I/O poll
      // (setImmediate), so a connect that completed during a stall of ours is read before we give up on it.
      const connectTimeoutMs = options.connectTimeoutMs ?? timeoutMs;
      const connectTimer = setTimeout(
        () => setImmediate(() => fail(`no answer to the TCP connect within ${connectTimeoutMs}ms`)),
        connectTimeoutMs,
      );
      connectTimer.unref();
      ws.on('error', (err) => fail(err.message));
      ws.on('upgrade', (res) => res.socket.setNoDelay(true));
      ws.once('open', () => {
        if (isSettled) return;
        isSettled = true;
        clearTimeout(timer);
        clearTimeout(connectTimer);
        ws.removeAllListeners('error');
        resolve(new WsConnection(ws, joinAddress(host, port), host, true, this.maxBufferedBytes, this.maxPayloadBytes));
      });
    });
  }
}

/** The remote IP of a socket, IPv4-mapped IPv6 written as IPv4. */
function remoteHostOf(addr: string | undefined): string {
  return (addr ?? '').replace(/^::ffff:/, '');
}
