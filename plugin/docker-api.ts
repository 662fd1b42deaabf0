/**
 * A small client of the Docker Engine API (only what weft needs): ping, list and create networks, inspect a
 * network's containers and a container. Over a unix socket (`unix:///var/run/docker.sock`) or TCP
 * (`tcp://host:port`, `http://host:port`), API version 1.41 (dockerd 20.10).
 */
import { request } from 'node:http';
import { WeftError } from '../runtime/errors.js';

export const DEFAULT_DOCKER_API = 'unix:///var/run/docker.sock';
const API_VERSION = 'v1.41';
const MAX_RESPONSE_BYTES = 16 * 1024 * 1024;

/** The engine could not be reached, or answered with an error. */
export class DockerApiError extends WeftError {
  readonly code = 'ERR_DOCKER_API';
  override readonly status = 500;
  constructor(
    message: string,
    /** The Docker engine's HTTP status, when it answered. */
    readonly engineStatus?: number,
  ) {
    super(message);
  }
}

export interface DockerNetworkSummary {
  Id: string;
  Name: string;
  Driver: string;
  IPAM?: { Driver?: string; Config?: Array<{ Subnet?: string }> };
  Containers?: Record<string, { Name?: string; EndpointID?: string; IPv4Address?: string }>;
}

export interface DockerContainer {
  Id: string;
  Name: string;
  State?: { Running?: boolean; Pid?: number };
}

/** One engine event, as weft reads it: what happened to which object (a container's full id). */
export interface DockerEvent {
  Action: string;
  id: string;
}

/** Where the engine is: a unix socket path, or a TCP host and port. */
export type DockerEndpoint = { socketPath: string } | { host: string; port: number };

/** Parse `--docker-api` / $DOCKER_HOST. Throws `DockerApiError` with what to write instead. */
export function parseDockerApi(url: string): DockerEndpoint {
  if (url.startsWith('unix://')) {
    const path = url.slice('unix://'.length);
    if (!path.startsWith('/'))
      throw new DockerApiError(
        `--docker-api ${JSON.stringify(url)}: a unix socket needs an absolute path, e.g. unix:///var/run/docker.sock`,
      );
    return { socketPath: path };
  }
  const m = /^(?:tcp|http):\/\/([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})\/?$/.exec(url);
  if (m && Number(m[2]) >= 1 && Number(m[2]) <= 65535) return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  throw new DockerApiError(
    `--docker-api ${JSON.stringify(url)} is not a Docker address: write unix:///var/run/docker.sock or tcp://HOST:PORT ('' turns Docker off)`,
  );
}

export class DockerApi {
  private readonly endpoint: DockerEndpoint;

  constructor(
    readonly url: string,
    private readonly options: { timeoutMs?: number } = {},
  ) {
    this.endpoint = parseDockerApi(url);
  }

  async ping(): Promise<boolean> {
    try {
      await this.call('GET', '/_ping');
      return true;
    } catch {
      return false;
    }
  }

  async version(): Promise<{ Version: string; ApiVersion: string }> {
    return (await this.call('GET', '/version')) as { Version: string; ApiVersion: string };
  }

  async listNetworks(): Promise<DockerNetworkSummary[]> {
    return (await this.call('GET', '/networks')) as DockerNetworkSummary[];
  }

  async inspectNetwork(idOrName: string): Promise<DockerNetworkSummary> {
    return (await this.call('GET', `/networks/${encodeURIComponent(idOrName)}`)) as DockerNetworkSummary;
  }

  /** Create a network with weft as driver and IPAM driver; `subnet` undefined lets weft's IPAM pick. */
  async createNetwork(name: string, driver: string, subnet: string | undefined): Promise<string> {
    const body = {
      Name: name,
      Driver: driver,
      CheckDuplicate: true,
      IPAM: { Driver: driver, Config: subnet === undefined ? [] : [{ Subnet: subnet }] },
    };
    const r = (await this.call('POST', '/networks/create', body)) as { Id: string };
    return r.Id;
  }

  async inspectContainer(idOrName: string): Promise<DockerContainer> {
    return (await this.call('GET', `/containers/${encodeURIComponent(idOrName)}/json`)) as DockerContainer;
  }

  /**
   * Follow the engine's events matching `filters` (e.g. `{ type: ['container'], event: ['start'] }`): `onEvent` per
   * event, in order. `ended` resolves when the engine closes the stream and rejects when it cannot be opened or
   * breaks; `abort()` closes it (then `ended` resolves).
   */
  events(filters: Record<string, string[]>, onEvent: (event: DockerEvent) => void): { abort: () => void; ended: Promise<void> } {
    const where =
      'socketPath' in this.endpoint ? { socketPath: this.endpoint.socketPath } : { host: this.endpoint.host, port: this.endpoint.port };
    let isAborted = false;
    let req: ReturnType<typeof request> | undefined;
    const ended = new Promise<void>((resolve, reject) => {
      req = request(
        {
          ...where,
          method: 'GET',
          path: `/${API_VERSION}/events?filters=${encodeURIComponent(JSON.stringify(filters))}`,
          headers: { host: 'docker' },
        },
        (res) => {
          if ((res.statusCode ?? 0) !== 200) {
            res.resume();
            reject(new DockerApiError(`Docker engine (${this.url}): events answered ${res.statusCode}`, res.statusCode));
            return;
          }
          let buffered = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffered += chunk;
            if (buffered.length > MAX_RESPONSE_BYTES) {
              req?.destroy(new Error('event too large'));
              return;
            }
            let nl: number;
            while ((nl = buffered.indexOf('\n')) >= 0) {
              const line = buffered.slice(0, nl).trim();
              buffered = buffered.slice(nl + 1);
              if (line === '') continue;
              try {
                const e = JSON.parse(line) as { Action?: unknown; id?: unknown; Actor?: { ID?: unknown } };
                const id = typeof e.id === 'string' ? e.id : typeof e.Actor?.ID === 'string' ? e.Actor.ID : '';
                if (typeof e.Action === 'string' && id !== '') onEvent({ Action: e.Action, id });
              } catch {
                /* a line that is not JSON: skip it */
              }
            }
          });
          res.on('end', () => resolve());
          res.on('error', (err) => (isAborted ? resolve() : reject(err)));
          res.on('close', () => resolve());
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) =>
        isAborted ? resolve() : reject(new DockerApiError(`cannot reach the Docker engine at ${this.url}: ${err.code ?? err.message}`)),
      );
      req.end();
    });
    return {
      abort: () => {
        isAborted = true;
        req?.destroy();
      },
      ended,
    };
  }

  private call(method: string, path: string, body?: unknown): Promise<unknown> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const where =
      'socketPath' in this.endpoint ? { socketPath: this.endpoint.socketPath } : { host: this.endpoint.host, port: this.endpoint.port };
    return new Promise((resolve, reject) => {
      const req = request(
        {
          ...where,
          method,
          path: `/${API_VERSION}${path}`,
          headers: {
            host: 'docker',
            ...(payload !== undefined && { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          },
          timeout: this.options.timeoutMs ?? 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) req.destroy(new Error('response too large'));
            else chunks.push(c);
          });
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status < 200 || status >= 300) {
              let message = text.trim();
              try {
                message = (JSON.parse(text) as { message?: string }).message ?? message;
              } catch {
                /* plain text */
              }
              reject(
                new DockerApiError(`Docker engine (${this.url}): ${method} ${path} answered ${status}: ${message.slice(0, 500)}`, status),
              );
              return;
            }
            if (text.trim() === '' || text.trim() === 'OK') {
              resolve(text.trim());
              return;
            }
            try {
              resolve(JSON.parse(text));
            } catch {
              reject(new DockerApiError(`Docker engine (${this.url}): ${method} ${path} answered with something other than JSON`));
            }
          });
          res.on('error', (err) => reject(new DockerApiError(`Docker engine (${this.url}): ${err.message}`)));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          new DockerApiError(
            `cannot reach the Docker engine at ${this.url}: ${err.code ?? err.message}; is dockerd running? (--docker-api URL, '' to turn Docker off)`,
          ),
        ),
      );
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }
}
