/**
 * The `weft` command's client for the daemon's HTTP API (api/server.ts): node:http, one request per call, no
 * keep-alive (a CLI run must not be held open by an idle socket), a timeout on every call.
 */
import { request } from 'node:http';
import type { AttachRequest, EndpointReport, Report } from '../api/control.js';
import { WeftError } from '../runtime/errors.js';

/** Nothing listens on the API address: the daemon is not running (or listens elsewhere). */
export class DaemonNotRunningError extends WeftError {
  readonly code = 'ERR_NOT_RUNNING';
  override readonly status = 503;
  constructor(readonly httpAddr: string) {
    super(`weft is not running on ${httpAddr}; start it with: weft launch [PEER...]`);
  }
}

/** The daemon accepted the connection but did not answer in time, or the connection broke. */
export class ApiUnreachableError extends WeftError {
  readonly code = 'ERR_API_UNREACHABLE';
  override readonly status = 503;
  constructor(
    readonly httpAddr: string,
    reason: string,
  ) {
    super(`weft on ${httpAddr} did not answer: ${reason}; check it with: weft status, or look at its log (weft.log in the state dir)`);
  }
}

/** The daemon answered with an error (`{ error: { code, message } }`), or something that is not weft answered. */
export class ApiRequestError extends WeftError {
  constructor(
    override readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface VersionAnswer {
  version: string;
  /** The daemon's process id. */
  pid: number;
}

/** The daemon's API, as the CLI uses it. Every method rejects with one of the three error classes above. */
export interface ApiClient {
  /** The "host:port" this client talks to (for messages). */
  readonly httpAddr: string;
  report(): Promise<Report>;
  /** `timeoutMs` overrides the client's default (launch polls with a short one). */
  version(timeoutMs?: number): Promise<VersionAnswer>;
  connect(peers: string[], replace: boolean): Promise<void>;
  forget(peers: string[]): Promise<void>;
  attach(request: AttachRequest): Promise<EndpointReport>;
  detach(target: string): Promise<void>;
  /** Detach a container runtime's endpoint (CNI DEL); resolves whether an interface was removed. */
  detachContainer(containerId: string, ifname: string): Promise<boolean>;
  expose(cidrs: string[]): Promise<string[]>;
  hide(cidrs: string[]): Promise<string[]>;
  /** Ask the daemon to stop; resolves when it has acknowledged (it exits shortly after). */
  stop(): Promise<void>;
  prime(timeoutSeconds: number): Promise<void>;
  rmpeer(name: string): Promise<number>;
  /** Re-read the daemon's --authorized-peers file. */
  reload(): Promise<{ keys: number; closed: string[] }>;
  reset(): Promise<void>;
  dnsAdd(name: string, addresses: string[]): Promise<string>;
  dnsRemove(name: string, addresses: string[]): Promise<number>;
  dnsLookup(name: string): Promise<string[]>;
  dnsArgs(): Promise<string>;
}

export interface ApiClientOptions {
  /** Per-request timeout. @default 30_000 (attach may wait on the kernel) */
  timeoutMs?: number;
}

// A report of a large mesh is a few MB at most; anything far larger is not weft talking.
const maxResponseBytes = 64 * 1024 * 1024;

/** A client for the API at `host:port`; `httpAddr` is how messages name it. */
export function createApiClient(
  address: { httpHost: string; httpPort: number; httpAddr: string },
  options: ApiClientOptions = {},
): ApiClient {
  const defaultTimeoutMs = options.timeoutMs ?? 30_000;
  const { httpAddr } = address;

  function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = defaultTimeoutMs): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          host: address.httpHost,
          port: address.httpPort,
          method,
          path,
          agent: false,
          headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxResponseBytes) {
              req.destroy(
                new ApiRequestError(
                  res.statusCode ?? 0,
                  'ERR_RESPONSE',
                  `the answer from ${httpAddr} is over ${maxResponseBytes} bytes; is that weft?`,
                ),
              );
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', (err) => reject(err instanceof ApiRequestError ? err : new ApiUnreachableError(httpAddr, err.message)));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              reject(
                new ApiRequestError(
                  status,
                  'ERR_RESPONSE',
                  `something on ${httpAddr} answered HTTP ${status} but not JSON; is it weft? (set WEFT_HTTP_ADDR)`,
                ),
              );
              return;
            }
            if (status >= 200 && status < 300) {
              resolve(parsed as T);
              return;
            }
            const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
            if (error && typeof error.code === 'string' && typeof error.message === 'string') {
              reject(new ApiRequestError(status, error.code, error.message));
            } else {
              reject(new ApiRequestError(status, 'ERR_RESPONSE', `weft on ${httpAddr} answered HTTP ${status} without an error message`));
            }
          });
        },
      );
      req.setTimeout(timeoutMs, () =>
        req.destroy(new ApiUnreachableError(httpAddr, `no answer within ${Math.round(timeoutMs / 100) / 10} s`)),
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err instanceof ApiUnreachableError || err instanceof ApiRequestError) reject(err);
        else if (err.code === 'ECONNREFUSED' || err.code === 'EADDRNOTAVAIL') reject(new DaemonNotRunningError(httpAddr));
        else reject(new ApiUnreachableError(httpAddr, err.code ?? err.message));
      });
      req.end(payload);
    });
  }

  return {
    httpAddr,
    report: () => call<Report>('GET', '/report'),
    version: (timeoutMs) => call<VersionAnswer>('GET', '/version', undefined, timeoutMs),
    connect: async (peers, replace) => {
      await call('POST', '/connect', { peers, replace });
    },
    forget: async (peers) => {
      await call('POST', '/forget', { peers });
    },
    attach: (attachRequest) => call<EndpointReport>('POST', '/attach', attachRequest),
    detach: async (target) => {
      await call('POST', '/detach', { target });
    },
    detachContainer: async (containerId, ifname) =>
      (await call<{ isRemoved: boolean }>('POST', '/detach', { containerId, ifname })).isRemoved === true,
    expose: async (cidrs) => (await call<{ addresses: string[] }>('POST', '/expose', { cidrs })).addresses,
    hide: async (cidrs) => (await call<{ addresses: string[] }>('POST', '/hide', { cidrs })).addresses,
    stop: async () => {
      await call('POST', '/stop', {});
    },
    prime: async (timeoutSeconds) => {
      await call('POST', '/ipam/prime', { timeoutSeconds }, (timeoutSeconds + 5) * 1000);
    },
    rmpeer: async (name) => (await call<{ addresses: number }>('POST', '/ipam/rmpeer', { name })).addresses,
    reload: () => call<{ keys: number; closed: string[] }>('POST', '/reload', {}),
    reset: async () => {
      await call('POST', '/ipam/reset', {});
    },
    dnsAdd: async (name, addresses) => (await call<{ name: string }>('POST', '/dns/add', { name, addresses })).name,
    dnsRemove: async (name, addresses) => (await call<{ removed: number }>('POST', '/dns/remove', { name, addresses })).removed,
    dnsLookup: async (name) => (await call<{ addresses: string[] }>('POST', '/dns/lookup', { name })).addresses,
    dnsArgs: async () => (await call<{ args: string }>('GET', '/dns/args')).args,
  };
}
