/**
 * The HTTP fuzzer: requests at the local API (api/server.ts) over raw TCP, so every byte is ours: methods, paths,
 * query strings, headers (Host, Origin, Content-Type, Content-Length, Transfer-Encoding, duplicates, CR/LF inside
 * values, sizes), bodies and JSON shapes. Runs inside the target host's namespace (the API listens on its loopback).
 *
 * Never sends a request that could do something for real: a POST to a route that changes the host or the router
 * (/stop, /ipam/reset, /attach, /detach, /expose, /hide, /connect) always carries a body that is not JSON, so it is
 * refused before it runs. Those routes are still reached with every method, header and size.
 */
import { connect } from 'node:net';
import { FuzzRandom } from './rng.js';

export interface HttpFuzzOptions {
  /** "host:port" of the API. */
  api: string;
  requests: number;
  seed: number;
  /** Requests in flight. @default 4 */
  concurrency?: number;
  /** @default 600_000 */
  timeLimitMs?: number;
  progress?: (line: string) => void;
}

export interface HttpFuzzSummary {
  seed: number;
  requests: number;
  /** Status code (or "no-answer", "reset") -> count. */
  statuses: Record<string, number>;
  /** Answers with a 5xx status: the handler failed on input it should have refused. */
  serverErrors: Array<{ request: string; status: number }>;
  /** Requests built to be incomplete (a declared body never sent); the API may leave those unanswered. */
  incompleteByDesign: number;
  seconds: number;
}

const SAFE_POSTS = ['/forget', '/ipam/prime', '/ipam/rmpeer', '/reload'];
const DANGEROUS_POSTS = new Set(['/stop', '/ipam/reset', '/attach', '/detach', '/expose', '/hide', '/connect']);
const GETS = ['/report', '/metrics', '/version'];

interface Built {
  bytes: Buffer;
  summary: string;
  isIncomplete: boolean;
}

export async function runHttpFuzz(o: HttpFuzzOptions): Promise<HttpFuzzSummary> {
  const rng = new FuzzRandom(o.seed);
  const [host, portText] = [o.api.slice(0, o.api.lastIndexOf(':')), o.api.slice(o.api.lastIndexOf(':') + 1)];
  const port = Number(portText);
  const statuses = new Map<string, number>();
  const serverErrors: HttpFuzzSummary['serverErrors'] = [];
  let incompleteByDesign = 0;
  const started = Date.now();
  const deadline = started + (o.timeLimitMs ?? 600_000);
  let next = 0;
  let done = 0;

  async function worker(): Promise<void> {
    while (next < o.requests && Date.now() < deadline) {
      next++;
      const req = buildRequest(rng, host, port);
      if (req.isIncomplete) incompleteByDesign++;
      const status = await exchange(host, port, req.bytes, req.isIncomplete ? 1_500 : 10_000);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
      const code = Number(status);
      if (code >= 500 && code !== 501 && code !== 503 && serverErrors.length < 50)
        serverErrors.push({ request: req.summary, status: code });
      if (++done % 2000 === 0) o.progress?.(`http: ${done}/${o.requests} requests`);
    }
  }
  await Promise.all(Array.from({ length: o.concurrency ?? 4 }, () => worker()));
  return {
    seed: o.seed,
    requests: done,
    statuses: Object.fromEntries([...statuses].sort()),
    serverErrors,
    incompleteByDesign,
    seconds: (Date.now() - started) / 1000,
  };
}

/** Send `bytes`, read until the server closes or `timeoutMs`; resolve the status code, "no-answer" or "reset". */
function exchange(host: string, port: number, bytes: Buffer, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    let head = '';
    let isDone = false;
    const finish = (r: string) => {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(head.startsWith('HTTP/') ? head.split(' ')[1]! : 'no-answer'), timeoutMs);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => {
      if (head.length < 64) head += d.toString('latin1');
      // One answer is all we need: close as soon as its status line is in (keep-alive would wait).
      if (/^HTTP\/1\.[01] \d{3}/.test(head)) finish(head.split(' ')[1]!);
    });
    sock.on('error', () => finish(head.startsWith('HTTP/') ? head.split(' ')[1]! : 'reset'));
    sock.on('close', () => finish(head.startsWith('HTTP/') ? head.split(' ')[1]! : 'reset'));
  });
}

export function buildRequest(rng: FuzzRandom, host: string, port: number): Built {
  const method = rng.weighted({
    GET: 30,
    POST: 40,
    HEAD: 4,
    PUT: 3,
    DELETE: 3,
    OPTIONS: 3,
    PATCH: 2,
    TRACE: 1,
    get: 1,
    'G ET': 0.5,
    X: 1,
    LONG: 0.5,
  });
  const m = method === 'LONG' ? 'A'.repeat(rng.pick([64, 5000])) : method;
  let path = pathFor(rng, m);
  const headers: string[] = [];
  const hostHeader = rng.weighted({ own: 6, localhost: 2, evil: 2, none: 1, dup: 1, long: 0.5, weird: 0.5 });
  if (hostHeader === 'own') headers.push(`Host: ${host}:${port}`);
  else if (hostHeader === 'localhost') headers.push(`Host: localhost:${port}`);
  else if (hostHeader === 'evil')
    headers.push(`Host: ${rng.pick(['evil.example', 'evil.example:6784', '127.0.0.1.nip.io:6784', '[::1]:6784'])}`);
  else if (hostHeader === 'dup') headers.push(`Host: ${host}:${port}`, 'Host: evil.example');
  else if (hostHeader === 'long') headers.push(`Host: ${'h'.repeat(rng.pick([300, 20_000]))}`);
  else if (hostHeader === 'weird') headers.push(rng.pick(['Host:', 'Host: \x01', 'Host: a b']));
  if (rng.chance(0.3))
    headers.push(`Origin: ${rng.pick(['http://evil.example', 'null', `http://${host}:${port}`, 'http://localhost', 'file://', ''])}`);
  if (rng.chance(0.5))
    headers.push(
      `Content-Type: ${rng.pick(['application/json', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '', 'application/json; charset=utf-16'])}`,
    );
  for (let i = rng.chance(0.1) ? rng.between(1, 120) : 0; i > 0; i--) headers.push(`X-F${i}: ${'v'.repeat(rng.int(200))}`);
  if (rng.chance(0.05))
    headers.push(
      rng.pick([
        'Bad Header: x',
        'X-Inject: a\rb',
        ': empty',
        'X-Nul: \x00',
        'Expect: 100-continue',
        'Upgrade: websocket',
        'Connection: upgrade',
      ]),
    );
  if (rng.chance(0.9)) headers.push('Connection: close');
  if (rng.chance(0.03)) path += rng.pick([' HTTP/1.1 extra', '\r\nX: y', ' ']);
  const route = normalized(path);
  const isDangerous = DANGEROUS_POSTS.has(route) && m === 'POST';
  let body = isDangerous ? Buffer.concat([Buffer.of(0), rng.bytes(rng.int(300))]) : bodyFor(rng, route);
  let isIncomplete = false;
  const framing = isDangerous
    ? 'exact'
    : rng.weighted({ exact: 16, none: 2, short: 1, long: 1, chunked: 2, 'bad-chunked': 1, both: 1, 'huge-declared': 1 });
  let bodyBytes = body;
  switch (framing) {
    case 'exact':
      headers.push(`Content-Length: ${body.length}`);
      break;
    case 'none':
      break;
    case 'short':
      headers.push(`Content-Length: ${Math.max(0, body.length - rng.between(1, 10))}`);
      break;
    case 'long':
      headers.push(`Content-Length: ${body.length + rng.between(1, 100)}`);
      isIncomplete = true;
      break;
    case 'chunked':
      headers.push('Transfer-Encoding: chunked');
      bodyBytes = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
      break;
    case 'bad-chunked':
      headers.push('Transfer-Encoding: chunked');
      bodyBytes = Buffer.concat([Buffer.from(rng.pick(['zz\r\n', 'fffffffffffffffff\r\n', '5\r\nabc', '-1\r\n'])), body]);
      isIncomplete = true;
      break;
    case 'both':
      headers.push('Transfer-Encoding: chunked', `Content-Length: ${body.length}`);
      bodyBytes = Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]);
      break;
    case 'huge-declared':
      headers.push(`Content-Length: ${rng.pick(['99999999999', '65537', '-1', 'abc', '1e3'])}`);
      isIncomplete = true;
      break;
  }
  if (body.length > 0 && bodyBytes === body && framing === 'none') body = Buffer.alloc(0);
  const version = rng.chance(0.97) ? 'HTTP/1.1' : rng.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTX/1.1', '']);
  const head = `${m} ${path} ${version}\r\n${headers.join('\r\n')}\r\n\r\n`;
  return {
    bytes: Buffer.concat([Buffer.from(head, 'latin1'), framing === 'none' ? Buffer.alloc(0) : bodyBytes]),
    summary: `${m} ${path.slice(0, 80)} ${framing} ${body.length}B`,
    isIncomplete,
  };
}

/** The pathname the API will route on (as `new URL` parses it). */
function normalized(path: string): string {
  try {
    return new URL(path.split(' ')[0]!.split('\r')[0]!, 'http://weft').pathname;
  } catch {
    return '';
  }
}

function pathFor(rng: FuzzRandom, method: string): string {
  const base = rng.weighted({ get: 4, safePost: 4, dangerous: 2, unknown: 2, mutated: 3 });
  const dangerous = [...DANGEROUS_POSTS];
  if (base === 'get')
    return rng.pick(GETS) + (rng.chance(0.2) ? rng.pick(['?x=1', '?format=json&x=%00', '#frag', '?' + 'a'.repeat(3000)]) : '');
  if (base === 'safePost') return rng.pick(SAFE_POSTS);
  if (base === 'dangerous') return rng.pick(dangerous);
  if (base === 'unknown')
    return rng.pick([
      '/',
      '/admin',
      '/report/x',
      '/metrics.json',
      '/ipam',
      '/%2e%2e/report',
      '/../../etc/passwd',
      '*',
      'http://evil.example/report',
      `/${'x'.repeat(rng.pick([100, 9000]))}`,
    ]);
  // Mutations of real routes: case, slashes, dot segments, encodings.
  const r = rng.pick([...GETS, ...SAFE_POSTS, ...dangerous]);
  void method;
  return rng.pick([
    r.toUpperCase(),
    `/${r}`,
    `${r}/`,
    `/x/..${r}`,
    r.replace('/', '/%2F'),
    `${r}%00`,
    `${r};x`,
    r.replace(/r/, '%72'),
    `${r}?${'&'.repeat(50)}`,
  ]);
}

/** A body for `route`: the right JSON shape with wrong values, wrong shapes, or not JSON at all. */
function bodyFor(rng: FuzzRandom, route: string): Buffer {
  const kind = rng.weighted({ fields: 5, shapes: 3, text: 1, empty: 2, big: 0.5, deep: 0.5 });
  if (kind === 'empty') return Buffer.alloc(0);
  if (kind === 'text')
    return rng.chance(0.5) ? rng.bytes(rng.int(500)) : Buffer.from(rng.pick(['{', '{"a":}', 'nul', '[1,', '"\\ud800"', '{"a":1}{"b":2}']));
  if (kind === 'big')
    return Buffer.from(JSON.stringify({ addresses: Array.from({ length: rng.pick([1000, 20_000]) }, (_, i) => `10.0.${i & 255}.1`) }));
  if (kind === 'deep') return Buffer.from('{"a":'.repeat(rng.pick([100, 10_000])) + '1' + '}'.repeat(rng.pick([0, 100])));
  if (kind === 'shapes')
    return Buffer.from(
      JSON.stringify(
        rng.pick([
          null,
          [],
          1,
          'x',
          true,
          { __proto__: { polluted: 1 } },
          JSON.parse('{"__proto__":{"polluted":1}}'),
          { constructor: { prototype: {} } },
        ]),
      ),
    );
  const value = () =>
    rng.pick<unknown>([
      '',
      'x',
      'x'.repeat(5000),
      0,
      -1,
      1e308,
      null,
      true,
      [],
      {},
      ['10.1.2.3:6783'],
      [''],
      [1, 2],
      'zz:zz:zz:zz:zz:zz',
      '02:00:00:00:00:09',
      '\u0000',
      '\x1b[31m',
    ]);
  const fields: Record<string, unknown> = {};
  if (route === '/forget')
    fields['addresses'] = rng.chance(0.5) ? [rng.pick(['10.250.0.77', '10.250.0.77:6783', '[::1]:1', 'x:y:z', ''])] : value();
  else if (route === '/ipam/prime') fields['timeoutMs'] = rng.pick([0, 1, 100, -5, 1e12, 'x', null]);
  else if (route === '/ipam/rmpeer') fields['name'] = rng.pick(['02:00:00:00:00:09', 'nobody', '', 'ZZ', 5, '0a:0b:0c:0d:0e:0f']);
  for (let i = rng.int(3); i > 0; i--) fields[rng.pick(['addresses', 'name', 'timeoutMs', 'replace', 'extra', '__proto__'])] = value();
  return Buffer.from(JSON.stringify(fields));
}
