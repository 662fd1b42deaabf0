/**
 * Prometheus metrics on their own listener (`--metrics-addr`, default 127.0.0.1:6782, like Weave's status port),
 * apart from the API: it answers `GET /metrics` (and HEAD) and nothing else, so opening it to a scraper on another
 * machine exposes counters, never a route that changes state. Any other path is 404, any other method on /metrics
 * 405; nothing a request carries reaches the daemon.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Report } from './control.js';
import type { Logger } from '../runtime/logger.js';
import { createMetrics } from './metrics.js';
import { maxHeaderBytes } from './server.js';

/** The metrics listener could not bind its address. */
export class MetricsListenError extends Error {
  readonly code = 'ERR_METRICS_LISTEN';
  constructor(
    readonly metricsAddr: string,
    readonly reason: string,
  ) {
    super(
      `cannot serve metrics on ${metricsAddr}: ${reason}; choose another --metrics-addr, or --metrics-addr '' to serve none` +
        (reason === 'EADDRINUSE' ? ' (another weft may be running: weft status)' : ''),
    );
    this.name = 'MetricsListenError';
  }
}

/** Build the metrics listener's request handler over `report` (read at scrape time). Never throws. */
export function createMetricsHandler(report: () => Report, log: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  const registry = createMetrics(report);
  return (req, res) => {
    // Nothing in a request body matters here; drain it so the socket is reusable.
    req.resume();
    const path = new URL(req.url ?? '/', 'http://weft').pathname;
    if (path !== '/metrics') {
      // The body may still be arriving; close rather than keep a socket half-read.
      res.setHeader('connection', 'close');
      sendText(res, 404, 'text/plain; charset=utf-8', 'not found: this listener serves only GET /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      res.setHeader('connection', 'close');
      sendText(res, 405, 'text/plain; charset=utf-8', `${req.method ?? ''} not allowed: /metrics takes GET\n`.slice(0, 200));
      return;
    }
    registry.metrics().then(
      (text) => sendText(res, 200, registry.contentType, text),
      (err: unknown) => {
        log.error({ err }, 'metrics failed');
        sendText(res, 500, 'text/plain; charset=utf-8', 'metrics failed; see the daemon log\n');
      },
    );
  };
}

/** A running metrics listener. */
export interface MetricsServer {
  /** The address bound, "host:port". */
  readonly metricsAddr: string;
  /** Stop listening and drop open connections. Idempotent. */
  close(): Promise<void>;
}

/**
 * Serve metrics on `address` (validated by the caller, e.g. the config's --metrics-addr; IPv6 without brackets; port
 * 0 picks a free one). Rejects with `MetricsListenError`.
 */
export function createMetricsServer(report: () => Report, log: Logger, address: { host: string; port: number }): Promise<MetricsServer> {
  const { host, port } = address;
  const metricsAddr = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  const server = createServer({ maxHeaderSize: maxHeaderBytes }, createMetricsHandler(report, log));
  server.requestTimeout = 15_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = 64;
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new MetricsListenError(metricsAddr, err.code ?? err.message)));
    server.listen(port, host, () => {
      const address = server.address();
      const boundPort = typeof address === 'object' && address !== null ? address.port : port;
      const bound = host.includes(':') ? `[${host}]:${boundPort}` : `${host}:${boundPort}`;
      log.info({ addr: bound }, 'metrics listening');
      let closing: Promise<void> | undefined;
      resolve({
        metricsAddr: bound,
        close: () => {
          closing ??= new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          });
          return closing;
        },
      });
    });
  });
}

function sendText(res: ServerResponse, status: number, contentType: string, text: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), 'x-content-type-options': 'nosniff' });
  res.end(text);
}
