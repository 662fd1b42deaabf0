/**
 * The plugin socket: Docker's plugin protocol over HTTP on a unix socket (default /run/docker/plugins/weft.sock,
 * where dockerd looks for a plugin named "weft" when a network asks for that driver; no dockerd restart needed).
 *
 * `createPluginHandler` maps `POST /<Interface>.<Method>` to the drivers and never throws: a refusal is answered
 * with a non-200 status and `{"Err": "..."}` (what dockerd's plugin client reads and shows), counted by reason.
 * `createPluginServer` listens on the socket; it refuses to take over a socket another process still serves and
 * removes a stale one.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../runtime/logger.js';
import {
  IMPLEMENTS,
  PLUGIN_CONTENT_TYPE,
  PluginBadRequestError,
  PluginError,
  parseBody,
  parseCreateEndpoint,
  parseCreateNetwork,
  parseEndpointRequest,
  parseJoin,
  parseNetworkRequest,
  parseReleaseAddress,
  parseReleasePool,
  parseRequestAddress,
  parseRequestPool,
} from './docker-protocol.js';
import type { IpamDriver } from './ipam-driver.js';
import type { NetworkDriver } from './network-driver.js';
import { WeftError } from '../runtime/errors.js';

/** Largest request body accepted. dockerd's requests are a few KiB at most. */
export const MAX_PLUGIN_BODY_BYTES = 1024 * 1024;

type Call = (body: Record<string, unknown>) => unknown;

/** The method table: every call dockerd 20.10 makes on a remote network or IPAM driver. */
export function pluginMethods(network: NetworkDriver, ipam: IpamDriver | undefined): Map<string, Call> {
  const m = new Map<string, Call>([
    ['Plugin.Activate', () => ({ Implements: ipam ? [...IMPLEMENTS] : ['NetworkDriver'] })],
    ['NetworkDriver.GetCapabilities', () => network.getCapabilities()],
    ['NetworkDriver.CreateNetwork', (b) => (network.createNetwork(parseCreateNetwork(b)), {})],
    ['NetworkDriver.DeleteNetwork', (b) => (network.deleteNetwork(parseNetworkRequest('DeleteNetwork', b)), {})],
    // Swarm managers only: weft keeps nothing cluster-wide for a network, so the options pass through.
    ['NetworkDriver.AllocateNetwork', (b) => (parseNetworkRequest('AllocateNetwork', b), { Options: {} })],
    ['NetworkDriver.FreeNetwork', (b) => (parseNetworkRequest('FreeNetwork', b), {})],
    ['NetworkDriver.CreateEndpoint', (b) => network.createEndpoint(parseCreateEndpoint(b))],
    ['NetworkDriver.DeleteEndpoint', async (b) => (await network.deleteEndpoint(parseEndpointRequest('DeleteEndpoint', b)), {})],
    ['NetworkDriver.EndpointOperInfo', (b) => network.endpointOperInfo(parseEndpointRequest('EndpointOperInfo', b))],
    ['NetworkDriver.Join', (b) => network.join(parseJoin(b))],
    ['NetworkDriver.Leave', (b) => (network.leave(parseEndpointRequest('Leave', b)), {})],
    // Node discovery (swarm) and external connectivity (port publishing): weft's mesh finds its peers itself and
    // publishes no ports, so these are acknowledged and do nothing.
    ['NetworkDriver.DiscoverNew', () => ({})],
    ['NetworkDriver.DiscoverDelete', () => ({})],
    ['NetworkDriver.ProgramExternalConnectivity', (b) => (parseEndpointRequest('ProgramExternalConnectivity', b), {})],
    ['NetworkDriver.RevokeExternalConnectivity', (b) => (parseEndpointRequest('RevokeExternalConnectivity', b), {})],
  ]);
  if (ipam) {
    m.set('IpamDriver.GetCapabilities', () => ipam.getCapabilities());
    m.set('IpamDriver.GetDefaultAddressSpaces', () => ipam.getDefaultAddressSpaces());
    m.set('IpamDriver.RequestPool', (b) => ipam.requestPool(parseRequestPool(b)));
    m.set('IpamDriver.ReleasePool', (b) => (ipam.releasePool(parseReleasePool(b)), {}));
    m.set('IpamDriver.RequestAddress', (b) => ipam.requestAddress(parseRequestAddress(b)));
    m.set('IpamDriver.ReleaseAddress', (b) => (ipam.releaseAddress(parseReleaseAddress(b)), {}));
  }
  return m;
}

/** The answer to one call: status and JSON body. Exported for tests, which call it without a socket. */
export interface PluginAnswer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * Answer one call from its path and body text. Never throws: refusals become `{Err}` with the error's status (400 bad
 * input, 404 unknown method or endpoint, 500 anything the drivers refused), counted in `counters` by code.
 */
export async function answerPluginCall(
  methods: Map<string, Call>,
  path: string,
  text: string,
  counters: Record<string, number>,
  log: Logger,
): Promise<PluginAnswer> {
  const method = path.replace(/^\//, '');
  try {
    const call = methods.get(method);
    if (call === undefined) {
      throw new PluginError(
        'ERR_PLUGIN_UNKNOWN_METHOD',
        `weft plugin has no method ${JSON.stringify(method.slice(0, 80))}; it implements ${[...methods.keys()].join(', ')}`,
        404,
      );
    }
    const body = parseBody(method, text);
    const result = (await call(body)) as Record<string, unknown> | undefined;
    counters['calls'] = (counters['calls'] ?? 0) + 1;
    return { status: 200, body: result ?? {} };
  } catch (err) {
    const e = err instanceof PluginError ? err : undefined;
    const code = e?.code ?? 'ERR_PLUGIN_INTERNAL';
    counters[code] = (counters[code] ?? 0) + 1;
    const message = e
      ? e.message
      : `weft plugin failed on ${method}: ${err instanceof Error ? err.message : String(err)}; see the weft log`;
    if (e) log.info({ reason: code, method, err: message }, 'docker plugin call refused');
    else log.error({ err, method }, 'docker plugin call failed');
    return { status: e?.status ?? 500, body: { Err: message } };
  }
}

export class PluginSocketError extends WeftError {
  readonly code = 'ERR_PLUGIN_SOCKET';
  override readonly status = 500;
  constructor(socketPath: string, why: string) {
    super(`cannot serve the Docker plugin on ${socketPath}: ${why}`);
  }
}

export interface PluginServer {
  readonly socketPath: string;
  /** Stop listening and remove the socket file. Idempotent. */
  close(): Promise<void>;
}

/** Listen on `socketPath` (its directory is made if needed). */
export async function createPluginServer(
  methods: Map<string, Call>,
  deps: { log: Logger; counters: Record<string, number> },
  socketPath: string,
): Promise<PluginServer> {
  const { log, counters } = deps;
  mkdirSync(dirname(socketPath), { recursive: true });
  await removeStaleSocket(socketPath);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void handle(req, res);
  });
  server.requestTimeout = 60_000;
  server.headersTimeout = 10_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let answer: PluginAnswer;
    if (req.method !== 'POST') {
      req.resume();
      counters['ERR_PLUGIN_BAD_REQUEST'] = (counters['ERR_PLUGIN_BAD_REQUEST'] ?? 0) + 1;
      answer = { status: 405, body: { Err: `plugin calls are POST requests, not ${String(req.method).slice(0, 16)}` } };
    } else {
      const text = await readBody(req).catch((err: Error) => err);
      const path = new URL(req.url ?? '/', 'http://weft').pathname;
      if (text instanceof Error) {
        counters['ERR_PLUGIN_BAD_REQUEST'] = (counters['ERR_PLUGIN_BAD_REQUEST'] ?? 0) + 1;
        answer = { status: text instanceof PluginError ? text.status : 400, body: { Err: text.message } };
      } else {
        answer = await answerPluginCall(methods, path, text, counters, log);
      }
    }
    if (res.headersSent || res.destroyed) return;
    const out = `${JSON.stringify(answer.body)}\n`;
    res.writeHead(answer.status, { 'content-type': PLUGIN_CONTENT_TYPE, 'content-length': Buffer.byteLength(out) });
    res.end(out);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new PluginSocketError(socketPath, err.code ?? err.message)));
    server.listen(socketPath, () => resolve());
  });
  // dockerd runs as root; nobody else should call the plugin.
  chmodSync(socketPath, 0o600);
  log.info({ socket: socketPath }, 'docker plugin listening');
  let closing: Promise<void> | undefined;
  return {
    socketPath,
    close: () =>
      (closing ??= new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      }).then(() => rmSync(socketPath, { force: true }))),
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let isDone = false;
    req.on('data', (chunk: Buffer) => {
      if (isDone) return;
      size += chunk.length;
      if (size > MAX_PLUGIN_BODY_BYTES) {
        isDone = true;
        req.resume();
        reject(new PluginBadRequestError(req.url ?? '', `the body is over ${MAX_PLUGIN_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', (err) => {
      if (!isDone) {
        isDone = true;
        reject(new PluginBadRequestError(req.url ?? '', `the body could not be read: ${err.message}`));
      }
    });
    req.on('end', () => {
      if (!isDone) {
        isDone = true;
        resolve(Buffer.concat(chunks).toString('utf8'));
      }
    });
  });
}

/** Remove a socket file nobody serves; refuse when a process still answers on it (another weft). */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let st;
  try {
    st = lstatSync(socketPath);
  } catch {
    return;
  }
  if (!st.isSocket())
    throw new PluginSocketError(socketPath, 'the path exists and is not a socket; remove it or choose another --plugin-socket');
  const isServed = await new Promise<boolean>((resolve) => {
    const s = connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (isServed)
    throw new PluginSocketError(socketPath, 'another process serves it (another weft?); stop it or choose another --plugin-socket');
  rmSync(socketPath, { force: true });
}
