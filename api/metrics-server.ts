/**
 * Prometheus metrics on their own listener (`--metrics-addr`, default 127.0.0.1:6782, like Weave's status port),
 * apart from the API: it answers `GET /metrics`, the read-only mesh page `GET /` and its data `GET /mesh.json` (and HEAD) and nothing else, so opening it to a scraper on another
 * machine exposes counters, never a route that changes state. Any other path is 404, any other method on /metrics
 * 405; nothing a request carries reaches the daemon.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { meshView } from './mesh-view.js';
import type { Report } from './control.js';
import type { Logger } from '../runtime/logger.js';
import { createMetrics } from './metrics.js';
import { maxHeaderBytes } from './server.js';
import { WeftError } from '../runtime/errors.js';

/** The metrics listener could not bind its address. */
export class MetricsListenError extends WeftError {
  readonly code = 'ERR_METRICS_LISTEN';
  override readonly status = 500;
  constructor(
    readonly metricsAddr: string,
    readonly reason: string,
  ) {
    super(
      `cannot serve metrics on ${metricsAddr}: ${reason}; choose another --metrics-addr, or --metrics-addr '' to serve none` +
        (reason === 'EADDRINUSE' ? ' (another weft may be running: weft status)' : ''),
    );
  }
}

/** Build the metrics listener's request handler over `report` (read at scrape time). Never throws. */
export function createMetricsHandler(report: () => Report, log: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  const registry = createMetrics(report);
  return (req, res) => {
    // Nothing in a request body matters here; drain it so the socket is reusable.
    req.resume();
    const path = new URL(req.url ?? '/', 'http://weft').pathname;
    if ((path === '/' || path === '/mesh.json') && req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      res.setHeader('connection', 'close');
      sendText(res, 405, 'text/plain; charset=utf-8', `${req.method ?? ''} not allowed: ${path} takes GET\n`.slice(0, 200));
      return;
    }
    if ((path === '/' || path === '/mesh.json') && !isAddressHost(req.headers.host)) {
      // DNS rebinding: a web page of the attacker's name resolving to this address would read the mesh from the
      // visitor's browser. The page is served to an address (127.0.0.1:6782, an IP, localhost), never to a name.
      res.setHeader('connection', 'close');
      sendText(
        res,
        403,
        'text/plain; charset=utf-8',
        'forbidden: open the mesh page by address (http://127.0.0.1:6782/, or the IP the listener is bound to)\n',
      );
      return;
    }
    if (path === '/') {
      const page = meshPage();
      if (page === undefined) sendText(res, 404, 'text/plain; charset=utf-8', 'the mesh page is not installed (web/mesh.html)\n');
      else sendText(res, 200, 'text/html; charset=utf-8', page, pageHeaders);
      return;
    }
    if (path === '/mesh.json') {
      let body: string;
      try {
        body = JSON.stringify(meshView(report()));
      } catch (err) {
        log.error({ err }, 'mesh view failed');
        sendText(res, 500, 'text/plain; charset=utf-8', 'mesh view failed; see the daemon log\n');
        return;
      }
      sendText(res, 200, 'application/json', body, { 'cache-control': 'no-store' });
      return;
    }
    if (path !== '/metrics') {
      // The body may still be arriving; close rather than keep a socket half-read.
      res.setHeader('connection', 'close');
      sendText(
        res,
        404,
        'text/plain; charset=utf-8',
        'not found: this listener serves only GET /metrics, / (the mesh page) and /mesh.json\n',
      );
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

/** Whether a Host header names an address (IPv4, [IPv6], or localhost), with or without a port: not a DNS name. */
export function isAddressHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]+))(?::\d{1,5})?$/.exec(host);
  if (!m) return false;
  if (m[1] !== undefined) return true;
  const name = m[2]!.toLowerCase();
  return name === 'localhost' || /^\d{1,3}(?:\.\d{1,3}){3}$/.test(name);
}

/** The page may run its own inline script and fetch from this listener, nothing else; no other site may frame it. */
const pageHeaders = {
  'content-security-policy':
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

let pageText: string | undefined;
/** web/mesh.html, next to dist/ in the package or to api/ in the repository; read once. */
function meshPage(): string | undefined {
  if (pageText !== undefined) return pageText;
  for (const rel of ['../../web/mesh.html', '../web/mesh.html']) {
    const file = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(file)) return (pageText = readFileSync(file, 'utf8'));
  }
  return undefined;
}

function sendText(res: ServerResponse, status: number, contentType: string, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    ...headers,
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}
