/**
 * The HTTP API over a running daemon: JSON in, JSON out, node:http only. `createApiHandler` builds the request
 * handler from a `WeftControl`, so tests call it without a port; `createApiServer` listens on the config's address.
 *
 * Routes (the `weft` command is the main client; see cli/client.ts):
 *
 *   GET  /report                              -> Report
 *   GET  /version                             -> { version, pid }
 *   POST /connect  { peers: string[], replace?: boolean }   -> { ok: true }
 *   POST /forget   { peers: string[] }                      -> { ok: true }
 *   POST /attach   AttachRequest                            -> EndpointReport
 *   POST /detach   { target: string }                       -> { ok: true }
 *   POST /detach   { containerId: string, ifname: string }  -> { ok: true, isRemoved: boolean }  (CNI DEL)
 *   POST /expose   { cidrs: string[] }                      -> { addresses: string[] }
 *   POST /hide     { cidrs: string[] }                      -> { addresses: string[] }
 *   POST /stop                                              -> { isStopping: true }, then the daemon stops
 *   POST /ipam/prime  { timeoutSeconds? }                   -> { ok: true } once IPAM is ready
 *   POST /ipam/rmpeer { name }                              -> { addresses: number moved }
 *   POST /reload                                            -> { keys, closed }: --authorized-peers re-read
 *   POST /ipam/reset                                        -> { isStopping: true }, then the daemon stops
 *   POST /dns/add     { name, addresses: string[] }         -> { name: qualified name }
 *   POST /dns/remove  { name, addresses?: string[] }        -> { removed: number }
 *   POST /dns/lookup  { name }                              -> { addresses: string[] }
 *   GET  /dns/args                                          -> { args: '--dns ADDR --dns-search DOMAIN' }
 *
 * Errors are `{ error: { code, message } }`: a weft error answers with its class's status and code (400 bad input,
 * 404 not found, 409 conflict, 503 not now, 500 a failure; runtime/errors.ts), 403 for a
 * caller the API does not serve (a web page; see api/request-guard.ts), 404 for an unknown route, 405 for a wrong
 * method, 413 for a body over 64 KiB, 415 for a body that is not JSON, 500 for anything else. The handler never throws.
 *
 * Prometheus metrics are not served here but on their own listener (api/metrics-server.ts, --metrics-addr), so
 * scraping them never means exposing /stop.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AttachRequest, WeftControl } from './control.js';
import type { Logger } from '../runtime/logger.js';
import { WeftError } from '../runtime/errors.js';
import { weftVersion } from './version.js';
import { parseHttpAddr } from '../config/launch.js';
import { ApiCounters, callerRefusal, contentTypeRefusal, hostPolicy, type HostPolicy, type RefusalReason } from './request-guard.js';

/** Largest request body accepted, in bytes. Every request we define is a few hundred bytes; 64 KiB is generous. */
export const maxBodyBytes = 64 * 1024;

/** A refusal the API answers with its own status and code (bad JSON, unknown route, body too large, ...). */
export class ApiError extends WeftError {
  constructor(
    override readonly status: number,
    readonly code: string,
    message: string,
    /** The API's own refusals are counted under this reason (ApiCounters). */
    readonly reason?: RefusalReason,
  ) {
    super(message);
  }
}

/** The API could not listen on its address (in use, not local, no permission). */
export class ApiListenError extends WeftError {
  readonly code = 'ERR_API_LISTEN';
  override readonly status = 500;
  constructor(
    readonly httpAddr: string,
    readonly reason: string,
  ) {
    super(
      `cannot serve the API on ${httpAddr}: ${reason}` +
        (reason === 'EADDRINUSE' ? '; another weft may be running (weft status), or choose another --http-addr' : '; check --http-addr'),
    );
  }
}

/** The shape of every error body. */
export interface ApiErrorBody {
  error: { code: string; message: string };
}

type Body = Record<string, unknown>;

interface Route {
  method: 'GET' | 'POST';
  /** Compute the response body. Throws typed errors for bad input. */
  run(body: Body): unknown;
  /** Runs after the response has been sent (used by /stop, so the client hears back before the daemon goes). */
  after?: () => void;
}

// Limits on lists and strings in request bodies: far above real use, low enough that a bad client cannot make the
// daemon do much work.
const maxListLength = 1024;
const maxStringLength = 4096;

/** What the handler needs besides the daemon. */
export interface ApiHandlerOptions {
  /**
   * The `Host` values the API answers to (api/request-guard.ts): a policy, or a function read per request (the
   * server's port is known only once it listens).
   */
  hosts: HostPolicy | (() => HostPolicy);
  /** Where refusals and served requests are counted. @default a new ApiCounters */
  counters?: ApiCounters;
  /** Milliseconds, for spacing refusal warnings. @default Date.now */
  now?: () => number;
}

/** A refused request is logged at warn at most this often per reason (the rest at debug; all are counted). */
const refusalWarnIntervalMs = 60_000;

/**
 * Build the API's request handler. `control` is the daemon; `log` gets one line per failed request (debug for
 * every request; refusals of callers at warn, at most once a minute per reason). The handler answers every request
 * exactly once and never throws.
 */
export function createApiHandler(
  control: WeftControl,
  log: Logger,
  options: ApiHandlerOptions,
): (req: IncomingMessage, res: ServerResponse) => void {
  const counters = options.counters ?? new ApiCounters();
  const hosts = options.hosts;
  const policy = typeof hosts === 'function' ? hosts : () => hosts;
  const now = options.now ?? Date.now;
  const lastWarnMs = new Map<RefusalReason, number>();
  const suppressed = new Map<RefusalReason, number>();
  const routes = new Map<string, Route>([
    ['/report', { method: 'GET', run: () => control.report() }],
    ['/version', { method: 'GET', run: () => ({ version: weftVersion(), pid: process.pid }) }],
    [
      '/connect',
      {
        method: 'POST',
        run: (b) => {
          control.connect(stringList(b, 'peers'), optionalBoolean(b, 'replace') ?? false);
          return { ok: true };
        },
      },
    ],
    [
      '/forget',
      {
        method: 'POST',
        run: (b) => {
          control.forget(stringList(b, 'peers'));
          return { ok: true };
        },
      },
    ],
    ['/attach', { method: 'POST', run: (b) => control.attach(attachRequest(b)) }],
    [
      '/detach',
      {
        method: 'POST',
        run: async (b) => {
          if (b['containerId'] !== undefined) {
            return { ok: true, isRemoved: await control.detachContainer(requiredString(b, 'containerId'), requiredString(b, 'ifname')) };
          }
          await control.detach(requiredString(b, 'target'));
          return { ok: true };
        },
      },
    ],
    [
      '/ipam/prime',
      {
        method: 'POST',
        run: async (b) => {
          const seconds = b['timeoutSeconds'];
          await control.prime(typeof seconds === 'number' && seconds > 0 ? Math.min(seconds, 3600) * 1000 : 60_000);
          return { ok: true };
        },
      },
    ],
    ['/ipam/rmpeer', { method: 'POST', run: async (b) => ({ addresses: await control.rmpeer(requiredString(b, 'name')) }) }],
    ['/reload', { method: 'POST', run: () => control.reloadAuthorizedPeers() }],
    [
      '/ipam/reset',
      {
        method: 'POST',
        run: async () => {
          await control.reset();
          return { isStopping: true };
        },
        after: () => {
          control.stop().catch((err: unknown) => log.error({ err }, 'stop failed'));
        },
      },
    ],
    ['/dns/add', { method: 'POST', run: (b) => ({ name: control.dnsAdd(requiredString(b, 'name'), stringList(b, 'addresses', 64)) }) }],
    [
      '/dns/remove',
      {
        method: 'POST',
        run: (b) => ({
          removed: control.dnsRemove(requiredString(b, 'name'), b['addresses'] === undefined ? [] : stringList(b, 'addresses', 64)),
        }),
      },
    ],
    ['/dns/lookup', { method: 'POST', run: (b) => ({ addresses: control.dnsLookup(requiredString(b, 'name')) }) }],
    ['/dns/args', { method: 'GET', run: () => ({ args: control.dnsArgs() }) }],
    ['/expose', { method: 'POST', run: async (b) => ({ addresses: await control.expose(stringList(b, 'cidrs')) }) }],
    ['/hide', { method: 'POST', run: async (b) => ({ addresses: await control.hide(stringList(b, 'cidrs')) }) }],
    [
      '/stop',
      {
        method: 'POST',
        run: () => ({ isStopping: true }),
        after: () => {
          control.stop().catch((err: unknown) => log.error({ err }, 'stop failed'));
        },
      },
    ],
  ]);
  const routeList = [...routes].map(([path, r]) => `${r.method} ${path}`).join(', ');

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Who is asking comes first: a web page learns nothing, not even which routes exist.
    const refusal = callerRefusal(req.headers, policy());
    if (refusal !== undefined) {
      req.resume();
      throw new ApiError(403, refusal.code, refusal.message, refusal.reason);
    }
    const path = new URL(req.url ?? '/', 'http://weft').pathname;
    const route = routes.get(path);
    if (route === undefined) {
      req.resume();
      throw new ApiError(404, 'ERR_NOT_FOUND', `no route ${req.method} ${path}; the API has: ${routeList}`, 'not_found');
    }
    if (req.method !== route.method && !(route.method === 'GET' && req.method === 'HEAD')) {
      req.resume();
      res.setHeader('allow', route.method);
      throw new ApiError(405, 'ERR_METHOD_NOT_ALLOWED', `${path} takes ${route.method}, not ${req.method}`, 'method');
    }
    if (route.method === 'POST') {
      const badType = contentTypeRefusal(req.headers);
      if (badType !== undefined) {
        req.resume();
        throw new ApiError(415, badType.code, badType.message, badType.reason);
      }
    }
    const body = route.method === 'POST' ? await readJsonBody(req) : {};
    const result = await route.run(body);
    if (route.after) res.once('finish', route.after);
    counters.served++;
    send(res, 200, result ?? { ok: true });
  }

  /** Warn about the first refusal of a kind, then at most once a minute with how many were not logged. */
  function logRefusal(apiError: ApiError, req: IncomingMessage): void {
    const reason = apiError.reason!;
    const fields = { reason: apiError.code, method: req.method, url: req.url?.slice(0, 200), err: apiError.message };
    const last = lastWarnMs.get(reason);
    const t = now();
    if (last !== undefined && t - last < refusalWarnIntervalMs) {
      suppressed.set(reason, (suppressed.get(reason) ?? 0) + 1);
      if (log.isLevelEnabled('debug')) log.debug(fields, 'api request refused');
      return;
    }
    lastWarnMs.set(reason, t);
    const notLogged = suppressed.get(reason) ?? 0;
    suppressed.delete(reason);
    const level = reason === 'host' || reason === 'origin' || reason === 'fetch_site' ? 'warn' : 'info';
    log[level]({ ...fields, ...(notLogged > 0 && { notLogged }) }, 'api request refused');
  }

  return (req, res) => {
    if (log.isLevelEnabled('debug')) log.debug({ method: req.method, url: req.url }, 'api request');
    handle(req, res).catch((err: unknown) => {
      const apiError = toApiError(err);
      if (apiError.reason !== undefined) {
        counters.refused[apiError.reason]++;
        logRefusal(apiError, req);
      } else if (apiError.status >= 500 && apiError.status !== 501)
        log.error({ err, method: req.method, url: req.url }, 'api request failed');
      else log.info({ reason: apiError.code, method: req.method, url: req.url, err: apiError.message }, 'api request refused');
      // A refused request's body may still be arriving: close rather than keep a half-read socket.
      if (apiError.reason !== undefined) res.setHeader('connection', 'close');
      const body: ApiErrorBody = { error: { code: apiError.code, message: apiError.message } };
      send(res, apiError.status, body);
    });
  };
}

/** A running API server. */
export interface ApiServer {
  /** The address actually bound, "host:port" (differs from the asked one when the port was 0). */
  readonly httpAddr: string;
  /** Stop listening and drop open connections. Idempotent. */
  close(): Promise<void>;
}

/** What `createApiServer` takes besides the daemon and the address. */
export interface ApiServerOptions {
  /** Shared with the daemon's report. @default a new ApiCounters */
  counters?: ApiCounters;
}

/** Largest request head (request line and headers) accepted, in bytes; weft's own are a few hundred. */
export const maxHeaderBytes = 8 * 1024;

/**
 * Serve the API on `httpAddr` ("host:port"; port 0 picks a free one). Resolves once listening; rejects with
 * `ApiListenError` when the address cannot be bound. The handler answers only to `Host` values naming the bound
 * address (api/request-guard.ts).
 */
export function createApiServer(control: WeftControl, log: Logger, httpAddr: string, options: ApiServerOptions = {}): Promise<ApiServer> {
  const { host, port } = parseHttpAddr(httpAddr);
  let policy = hostPolicy(host, port);
  const handler = createApiHandler(control, log, { hosts: () => policy, ...(options.counters && { counters: options.counters }) });
  const server = createServer({ maxHeaderSize: maxHeaderBytes }, handler);
  // A client that sends its headers or body slowly must not hold a socket forever (the answer may take long:
  // /ipam/prime waits up to an hour, so there is no timeout on an idle socket while a request runs).
  server.requestTimeout = 15_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  server.maxConnections = 256;
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new ApiListenError(httpAddr, err.code ?? err.message)));
    server.listen(port, host, () => {
      const address = server.address();
      const boundPort = typeof address === 'object' && address !== null ? address.port : port;
      policy = hostPolicy(host, boundPort);
      const bound = host.includes(':') ? `[${host}]:${boundPort}` : `${host}:${boundPort}`;
      log.info({ addr: bound }, 'api listening');
      let closing: Promise<void> | undefined;
      resolve({
        httpAddr: bound,
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

function send(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent || res.destroyed) return;
  const text = `${JSON.stringify(body)}\n`;
  // nosniff: a browser that somehow gets an answer must not run it as a script or a page.
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'x-content-type-options': 'nosniff',
  });
  res.end(text);
}

/**
 * Map anything thrown to a status and code: one of weft's errors answers with its class's status and code
 * (runtime/errors.ts); anything else is the daemon's fault, 500, and its message stays in the log.
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof WeftError) return new ApiError(err.status, err.code, err.message);
  const message = err instanceof Error ? err.message : String(err);
  return new ApiError(500, 'ERR_INTERNAL', `the daemon failed: ${message}; see its log`);
}

/** Read at most `maxBodyBytes` and parse it as a JSON object; an empty body is `{}`. */
function readJsonBody(req: IncomingMessage): Promise<Body> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBodyBytes) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let isDone = false;
    req.on('data', (chunk: Buffer) => {
      if (isDone) return;
      size += chunk.length;
      if (size > maxBodyBytes) {
        isDone = true;
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', (err) => {
      if (!isDone) {
        isDone = true;
        reject(new ApiError(400, 'ERR_BAD_REQUEST', `the request body could not be read: ${err.message}`, 'bad_request'));
      }
    });
    req.on('end', () => {
      if (isDone) return;
      isDone = true;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim().length === 0) {
        resolve({});
        return;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        reject(new ApiError(400, 'ERR_BAD_REQUEST', 'the request body is not JSON', 'bad_request'));
        return;
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        reject(new ApiError(400, 'ERR_BAD_REQUEST', 'the request body must be a JSON object', 'bad_request'));
        return;
      }
      resolve(parsed as Body);
    });
  });
}

function tooLarge(): ApiError {
  return new ApiError(413, 'ERR_TOO_LARGE', `the request body is over ${maxBodyBytes} bytes`, 'too_large');
}

function badField(field: string, what: string): ApiError {
  return new ApiError(400, 'ERR_BAD_REQUEST', `"${field}" must be ${what}`, 'bad_request');
}

function stringList(body: Body, field: string, maxLength = maxListLength): string[] {
  const value = body[field];
  if (
    !Array.isArray(value) ||
    value.length > maxLength ||
    !value.every((s) => typeof s === 'string' && s.length > 0 && s.length <= maxStringLength)
  ) {
    throw badField(field, `a list of at most ${maxLength} non-empty strings`);
  }
  return value as string[];
}

function requiredString(body: Body, field: string): string {
  const value = body[field];
  if (typeof value !== 'string' || value.length === 0 || value.length > maxStringLength) throw badField(field, 'a non-empty string');
  return value;
}

function optionalString(body: Body, field: string): string | undefined {
  return body[field] === undefined ? undefined : requiredString(body, field);
}

function optionalBoolean(body: Body, field: string): boolean | undefined {
  const value = body[field];
  if (value !== undefined && typeof value !== 'boolean') throw badField(field, 'true or false');
  return value;
}

/** RFC 1123 host name: labels of 1-63 letters, digits and inner hyphens, 253 characters in all. */
function isDnsName(name: string): boolean {
  return name.length <= 253 && name.split('.').every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

function attachRequest(body: Body): AttachRequest {
  const request: AttachRequest = { target: requiredString(body, 'target'), addresses: stringList(body, 'addresses', 64) };
  const mac = optionalString(body, 'mac');
  if (mac !== undefined) request.mac = mac;
  const ifname = optionalString(body, 'ifname');
  if (ifname !== undefined) request.ifname = ifname;
  const containerId = optionalString(body, 'containerId');
  if (containerId !== undefined) request.containerId = containerId;
  const dnsName = optionalString(body, 'dnsName');
  if (dnsName !== undefined) {
    if (!isDnsName(dnsName))
      throw badField('dnsName', 'a DNS name: dot-separated labels of letters, digits and inner hyphens, at most 253 characters');
    request.dnsName = dnsName.toLowerCase();
  }
  const name = optionalString(body, 'name');
  if (name !== undefined) request.name = name;
  return request;
}
