import { describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { request } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createApiHandler, createApiServer, maxBodyBytes, ApiListenError } from './server.js';
import { ApiCounters, hostPolicy } from './request-guard.js';
import { FakeControl, sampleReport } from './fake-control.js';
import { weftVersion } from './version.js';
import { createMemoryLogger } from '../runtime/logger.js';
import { WeftError } from '../runtime/errors.js';
import { EndpointExistsError, InvalidTargetError, NetdevCommandError, TargetNotFoundError } from '../netdev/errors.js';
import { InvalidAddressError, IpamConflictError, IpamExhaustedError, IpamNotReadyError } from '../ipam/errors.js';
import { AddressError } from '../runtime/address.js';
import { ContainerNotFoundError } from '../plugin/docker-containers.js';
import { IpamOffError } from '../daemon/daemon.js';
import { ConfigError } from '../config/launch.js';

interface Injected {
  status: number;
  headers: Record<string, unknown>;
  body: any;
}

/** What the weft CLI sends: Host naming the API's address, JSON bodies. */
const cliHeaders = { host: '127.0.0.1:6784', 'content-type': 'application/json' };

/** Call the handler with an in-memory request and response, like fastify's inject: no port. */
function inject(
  control: FakeControl,
  method: string,
  url: string,
  body?: unknown | string | Buffer,
  headers: Record<string, string> = cliHeaders,
  handler = createApiHandler(control, createMemoryLogger().log, { hosts: hostPolicy('127.0.0.1', 6784) }),
): Promise<Injected> {
  const payload =
    body === undefined ? [] : [Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))];
  const req = Object.assign(Readable.from(payload), { method, url, headers }) as unknown as IncomingMessage;
  return new Promise((resolve) => {
    const headers: Record<string, unknown> = {};
    let status = 0;
    const res = Object.assign(new EventEmitter(), {
      headersSent: false,
      destroyed: false,
      setHeader: (k: string, v: unknown) => void (headers[k.toLowerCase()] = v),
      writeHead(s: number, h: Record<string, unknown>) {
        status = s;
        for (const [k, v] of Object.entries(h)) headers[k.toLowerCase()] = v;
        this.headersSent = true;
      },
      end(text: string) {
        setImmediate(() => {
          res.emit('finish');
          resolve({ status, headers, body: String(headers['content-type']).includes('json') ? JSON.parse(text) : text });
        });
      },
    });
    handler(req, res as unknown as ServerResponse);
  });
}

describe('createApiHandler', () => {
  it('GET /report answers the daemon report as JSON', async () => {
    const control = new FakeControl();
    const r = await inject(control, 'GET', '/report');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toContain('application/json');
    expect(r.body).toEqual(sampleReport());
  });

  it('POST /ipam/prime, /ipam/rmpeer, /ipam/reset reach the daemon; reset then stops it', async () => {
    const control = new FakeControl();
    expect((await inject(control, 'POST', '/ipam/prime', { timeoutSeconds: 5 })).status).toBe(200);
    expect((await inject(control, 'POST', '/ipam/rmpeer', { name: 'aa:bb:cc:dd:ee:ff' })).body).toEqual({ addresses: 0 });
    expect((await inject(control, 'POST', '/ipam/rmpeer', {})).status).toBe(400);
    expect((await inject(control, 'POST', '/ipam/reset', {})).body).toEqual({ isStopping: true });
    await new Promise((r) => setImmediate(r));
    expect(control.calls.map((c) => c.method)).toEqual(['prime', 'rmpeer', 'reset', 'stop']);
    expect(control.calls[0]!.args).toEqual([5000]);
  });

  it('POST /reload re-reads the allow-list and answers what it closed; a bad file is a 400 naming it', async () => {
    const control = new FakeControl();
    const r = await inject(control, 'POST', '/reload', {});
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ keys: 2, closed: ['h3 (10.1.0.3:6783)'] });
    control.failWith.reloadAuthorizedPeers = new ConfigError('/etc/weft/peers line 2: "x" is not a public key');
    const bad = await inject(control, 'POST', '/reload', {});
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({ error: { code: 'ERR_CONFIG', message: '/etc/weft/peers line 2: "x" is not a public key' } });
  });

  it('GET /version answers the package version and the pid', async () => {
    const r = await inject(new FakeControl(), 'GET', '/version');
    expect(r.body).toEqual({ version: weftVersion(), pid: process.pid });
    expect(weftVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('POST /connect passes peers and replace through', async () => {
    const control = new FakeControl();
    const r = await inject(control, 'POST', '/connect', { peers: ['10.0.0.2', '10.0.0.3:7000'], replace: true });
    expect(r.status).toBe(200);
    expect(control.calls).toEqual([{ method: 'connect', args: [['10.0.0.2', '10.0.0.3:7000'], true] }]);
    await inject(control, 'POST', '/connect', { peers: [] });
    expect(control.calls[1]).toEqual({ method: 'connect', args: [[], false] });
  });

  it('POST /forget, /detach, /expose, /hide call the daemon with the body fields', async () => {
    const control = new FakeControl();
    await inject(control, 'POST', '/forget', { peers: ['h2'] });
    await inject(control, 'POST', '/detach', { target: 'c1' });
    const exposed = await inject(control, 'POST', '/expose', { cidrs: ['10.32.0.1/12'] });
    const hidden = await inject(control, 'POST', '/hide', { cidrs: ['10.32.0.1/12'] });
    expect(exposed.body).toEqual({ addresses: ['10.32.0.1/12'] });
    expect(hidden.body).toEqual({ addresses: ['10.32.0.1/12'] });
    expect(control.calls.map((c) => [c.method, ...c.args])).toEqual([
      ['forget', ['h2']],
      ['detach', 'c1'],
      ['expose', ['10.32.0.1/12']],
      ['hide', ['10.32.0.1/12']],
    ]);
  });

  it('POST /attach passes an AttachRequest and answers the endpoint', async () => {
    const control = new FakeControl();
    const r = await inject(control, 'POST', '/attach', {
      target: 'pid:42',
      addresses: ['10.2.1.1/24'],
      mac: '02:00:00:00:00:09',
      extra: 1,
    });
    expect(r.status).toBe(200);
    expect(control.calls[0]!.args[0]).toEqual({ target: 'pid:42', addresses: ['10.2.1.1/24'], mac: '02:00:00:00:00:09' });
    expect(r.body).toEqual({ target: 'pid:42', interface: 'ethwe0', mac: '02:00:00:00:00:09', addresses: ['10.2.1.1/24'] });
  });

  it('POST /stop answers first, then stops the daemon', async () => {
    const control = new FakeControl();
    const r = await inject(control, 'POST', '/stop');
    expect(r.body).toEqual({ isStopping: true });
    expect(control.calls.map((c) => c.method)).toEqual(['stop']);
  });

  it('refuses bad bodies with 400 and a code, without calling the daemon', async () => {
    const control = new FakeControl();
    const cases: Array<[string, unknown]> = [
      ['/connect', { peers: 'h2' }],
      ['/connect', { peers: ['h2'], replace: 'yes' }],
      ['/connect', { peers: [''] }],
      ['/forget', {}],
      ['/attach', { addresses: [] }],
      ['/attach', { target: 'c1', addresses: ['a'], mac: 5 }],
      ['/detach', { target: '' }],
      ['/expose', { cidrs: [1] }],
      ['/connect', '{not json'],
      ['/connect', '[1,2]'],
    ];
    for (const [path, body] of cases) {
      const r = await inject(control, 'POST', path, body);
      expect(r.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(r.body.error.code).toBe('ERR_BAD_REQUEST');
      expect(r.body.error.message.length).toBeGreaterThan(0);
    }
    expect(control.calls).toEqual([]);
  });

  it('refuses a body over 64 KiB with 413', async () => {
    const r = await inject(new FakeControl(), 'POST', '/connect', Buffer.alloc(maxBodyBytes + 1, 0x20));
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('ERR_TOO_LARGE');
  });

  it('no longer serves /metrics (they have their own listener)', async () => {
    const r = await inject(new FakeControl(), 'GET', '/metrics');
    expect(r.status).toBe(404);
  });

  it('answers 404 for an unknown route, 405 for a wrong method', async () => {
    const notFound = await inject(new FakeControl(), 'GET', '/nope');
    expect(notFound.status).toBe(404);
    expect(notFound.body.error.message).toContain('GET /report');
    const wrongMethod = await inject(new FakeControl(), 'GET', '/connect');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers['allow']).toBe('POST');
  });

  it('answers a weft error with the status its class declares, and anything else with 500', async () => {
    const control = new FakeControl();
    const cases: Array<[WeftError, number]> = [
      [new InvalidTargetError('a b'), 400],
      [new InvalidAddressError('10.0.0.300 is not an address'), 400],
      [new AddressError('nope'), 400],
      [new TargetNotFoundError('c9', '/run/netns/c9'), 404],
      [new ContainerNotFoundError('web', 'no such container'), 404],
      [new EndpointExistsError('c9', 'eth0', 'abc'), 409],
      [new IpamConflictError('10.32.0.5', 'c1', 'h2'), 409],
      [new IpamOffError('an address', 'c9'), 409],
      [new IpamNotReadyError('allocate', 'awaiting consensus', 1000), 503],
      [new IpamExhaustedError('10.32.0.0/12', []), 503],
      [new NetdevCommandError('weft', 'ip link add', 'RTNETLINK answers: File exists', 2), 500],
    ];
    for (const [err, status] of cases) {
      control.failWith.detach = err;
      const answer = await inject(control, 'POST', '/detach', { target: 'c9' });
      expect([err.name, answer.status]).toEqual([err.name, status]);
      expect(answer.body.error).toEqual({ code: err.code, message: err.message });
    }
    expect(new TargetNotFoundError('c9', '/run/netns/c9').code).toBe('TARGET_NOT_FOUND');

    // A string code on a plain error is no longer taken for bad input: only weft's classes say their status.
    control.failWith.detach = Object.assign(new Error('gone'), { code: 'TARGET_GONE' });
    expect((await inject(control, 'POST', '/detach', { target: 'c9' })).status).toBe(500);

    control.failWith.report = new TypeError('cannot read properties of undefined');
    const bug = await inject(control, 'GET', '/report');
    expect(bug.status).toBe(500);
    expect(bug.body.error.code).toBe('ERR_INTERNAL');

    control.failWith.attach = Object.assign(new Error('EPERM: operation not permitted'), { code: 'EPERM', errno: -1, syscall: 'open' });
    const system = await inject(control, 'POST', '/attach', { target: 'c1', addresses: [] });
    expect(system.status).toBe(500);

    control.failWith.report = 'a string';
    expect((await inject(control, 'GET', '/report')).status).toBe(500);
  });
});

describe('createApiHandler: callers it does not serve', () => {
  const setup = () => {
    const control = new FakeControl();
    const counters = new ApiCounters();
    const memory = createMemoryLogger();
    let t = 0;
    const handler = createApiHandler(control, memory.log, { hosts: hostPolicy('127.0.0.1', 6784), counters, now: () => t });
    const call = (method: string, url: string, headers: Record<string, string>, body?: string) =>
      inject(control, method, url, body, headers, handler);
    return { control, counters, memory, call, advance: (ms: number) => (t += ms) };
  };

  it("refuses the issue's curl attack (POST /stop with a foreign Origin and Host, text/plain) with 403 and does not stop", async () => {
    const { control, counters, call } = setup();
    const r = await call('POST', '/stop', { origin: 'http://evil.example', host: 'evil.example:6784', 'content-type': 'text/plain' }, '');
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('ERR_FORBIDDEN_HOST');
    await new Promise((done) => setImmediate(done));
    expect(control.calls).toEqual([]);
    expect(counters.refused.host).toBe(1);
  });

  it('refuses any request with an Origin header, even with the right Host: a page on any site, or a sandboxed one (null)', async () => {
    const { control, counters, call } = setup();
    for (const origin of ['http://evil.example', 'http://127.0.0.1:8080', 'null', 'http://127.0.0.1:6784']) {
      for (const [method, url] of [
        ['POST', '/stop'],
        ['POST', '/ipam/reset'],
        ['POST', '/connect'],
        ['POST', '/attach'],
        ['GET', '/report'],
      ] as const) {
        const r = await call(
          method,
          url,
          { host: '127.0.0.1:6784', origin, 'content-type': 'application/json' },
          method === 'POST' ? '{"peers":["10.9.9.9"]}' : undefined,
        );
        expect(r.status, `${method} ${url} from ${origin}`).toBe(403);
        expect(r.body.error.code).toBe('ERR_FORBIDDEN_ORIGIN');
        expect(r.body.error.message).toMatch(/web page/);
      }
    }
    await new Promise((done) => setImmediate(done));
    expect(control.calls).toEqual([]);
    expect(counters.refused.origin).toBe(20);
  });

  it('refuses a DNS-rebinding Host (a name that is not the API) on reads too, and a wrong port', async () => {
    const { control, counters, call } = setup();
    for (const host of [
      'evil.example:6784',
      'evil.example',
      '127.0.0.1.nip.io:6784',
      'localhost.evil.example:6784',
      '127.0.0.1:80',
      '127.0.0.1',
      '127.0.0.1:6785',
      '',
      '[::1]:80',
      '10.0.0.5:6784',
    ]) {
      const r = await call('GET', '/report', { host });
      expect(r.status, host).toBe(403);
      expect(r.body.error.code).toBe('ERR_FORBIDDEN_HOST');
    }
    expect((await call('GET', '/report', {})).status).toBe(403);
    expect(control.calls).toEqual([]);
    expect(counters.refused.host).toBe(11);
  });

  it('serves the Host values a local client uses: 127.0.0.1, localhost and [::1] with the API port', async () => {
    const { counters, call } = setup();
    for (const host of ['127.0.0.1:6784', 'localhost:6784', 'LOCALHOST:6784', '[::1]:6784', '[0:0::1]:6784']) {
      expect((await call('GET', '/report', { host })).status, host).toBe(200);
    }
    expect(counters.served).toBe(5);
  });

  it('refuses Sec-Fetch-Site from a browser (no-cors GETs carry no Origin), but not a URL typed by the user (none)', async () => {
    const { counters, call } = setup();
    for (const site of ['cross-site', 'same-site', 'same-origin']) {
      const r = await call('GET', '/report', { host: '127.0.0.1:6784', 'sec-fetch-site': site, 'sec-fetch-mode': 'no-cors' });
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('ERR_FORBIDDEN_ORIGIN');
    }
    expect((await call('GET', '/report', { host: '127.0.0.1:6784', 'sec-fetch-site': 'none' })).status).toBe(200);
    expect(counters.refused.fetch_site).toBe(3);
  });

  it('takes state changes by POST only: GET /stop and GET /ipam/reset are 405 and change nothing', async () => {
    const { control, counters, call } = setup();
    for (const url of [
      '/stop',
      '/ipam/reset',
      '/connect',
      '/attach',
      '/detach',
      '/reload',
      '/expose',
      '/hide',
      '/forget',
      '/ipam/rmpeer',
      '/ipam/prime',
    ]) {
      const r = await call('GET', url, { host: '127.0.0.1:6784' });
      expect(r.status, url).toBe(405);
      expect(r.headers['allow']).toBe('POST');
    }
    await new Promise((done) => setImmediate(done));
    expect(control.calls).toEqual([]);
    expect(counters.refused.method).toBe(11);
  });

  it('refuses POST bodies a page could send without a preflight (text/plain, forms) with 415; no body or JSON is fine', async () => {
    const { control, counters, call } = setup();
    for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      const r = await call('POST', '/connect', { host: '127.0.0.1:6784', 'content-type': type }, '{"peers":["10.9.9.9"]}');
      expect(r.status, type).toBe(415);
      expect(r.body.error.code).toBe('ERR_UNSUPPORTED_MEDIA_TYPE');
    }
    expect(control.calls).toEqual([]);
    expect(counters.refused.content_type).toBe(4);
    // `curl -XPOST 127.0.0.1:6784/stop`: no body, no type.
    expect((await call('POST', '/connect', { host: '127.0.0.1:6784' }, '{"peers":["10.0.0.2"]}')).status).toBe(200);
    expect(
      (
        await call(
          'POST',
          '/connect',
          { host: '127.0.0.1:6784', 'content-type': 'Application/JSON; charset=utf-8' },
          '{"peers":["10.0.0.2"]}',
        )
      ).status,
    ).toBe(200);
  });

  it('warns about the first refusal of a kind, then at most once a minute with how many were not logged', async () => {
    const { memory, call, advance, counters } = setup();
    for (let i = 0; i < 5; i++) await call('POST', '/stop', { host: '127.0.0.1:6784', origin: 'http://evil.example' });
    advance(61_000);
    await call('POST', '/stop', { host: '127.0.0.1:6784', origin: 'http://evil.example' });
    const warns = memory.lines().filter((l) => l['msg'] === 'api request refused' && l['level'] === 40);
    expect(warns).toHaveLength(2);
    expect(warns[1]!['notLogged']).toBe(4);
    expect(counters.refused.origin).toBe(6);
  });

  it('answers a wildcard listener on any IP literal, never on a name but localhost', async () => {
    const control = new FakeControl();
    const handler = createApiHandler(control, createMemoryLogger().log, { hosts: hostPolicy('0.0.0.0', 6784) });
    const status = async (host: string) => (await inject(control, 'GET', '/version', undefined, { host }, handler)).status;
    expect(await status('10.0.0.5:6784')).toBe(200);
    expect(await status('[fd00::5]:6784')).toBe(200);
    expect(await status('localhost:6784')).toBe(200);
    expect(await status('evil.example:6784')).toBe(403);
    expect(await status('10.0.0.5:6785')).toBe(403);
  });
});

describe('createApiServer', () => {
  it('serves the handler on a real port on 127.0.0.1 and closes', async () => {
    const { log } = createMemoryLogger();
    const control = new FakeControl();
    const server = await createApiServer(control, log, '127.0.0.1:0');
    try {
      const port = Number(server.httpAddr.split(':')[1]);
      expect(port).toBeGreaterThan(0);
      const version = await httpJson(port, 'GET', '/version');
      expect(version).toEqual({ status: 200, body: { version: weftVersion(), pid: process.pid } });
      const connected = await httpJson(port, 'POST', '/connect', JSON.stringify({ peers: ['10.0.0.2'] }));
      expect(connected.status).toBe(200);
      expect(control.calls.at(-1)).toEqual({ method: 'connect', args: [['10.0.0.2'], false] });
      const tooBig = await httpJson(port, 'POST', '/connect', 'x'.repeat(maxBodyBytes + 10));
      expect(tooBig.status).toBe(413);
      // Still serving after a refused request.
      expect((await httpJson(port, 'GET', '/report')).status).toBe(200);
    } finally {
      await server.close();
      await server.close();
    }
  });

  it('checks Host against the port it bound (port 0 asked), and caps request heads at 8 KiB', async () => {
    const { log } = createMemoryLogger();
    const counters = new ApiCounters();
    const server = await createApiServer(new FakeControl(), log, '127.0.0.1:0', { counters });
    try {
      const port = Number(server.httpAddr.split(':')[1]);
      expect((await rawStatus(port, { host: `localhost:${port}` })).status).toBe(200);
      expect((await rawStatus(port, { host: 'evil.example' + `:${port}` })).status).toBe(403);
      expect((await rawStatus(port, { host: '127.0.0.1:6784' })).status).toBe(port === 6784 ? 200 : 403);
      expect((await rawStatus(port, { host: `127.0.0.1:${port}`, 'x-big': 'a'.repeat(9 * 1024) })).status).toBe(431);
      expect(counters.refused.host).toBe(port === 6784 ? 1 : 2);
    } finally {
      await server.close();
    }
  });

  it('rejects with ApiListenError when the address is taken', async () => {
    const { log } = createMemoryLogger();
    const first = await createApiServer(new FakeControl(), log, '127.0.0.1:0');
    try {
      await expect(createApiServer(new FakeControl(), log, first.httpAddr)).rejects.toBeInstanceOf(ApiListenError);
    } finally {
      await first.close();
    }
  });
});

function httpJson(port: number, method: string, path: string, body?: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function rawStatus(port: number, headers: Record<string, string>): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'GET', path: '/version', headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
    req.end();
  });
}
