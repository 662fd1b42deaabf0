import { describe, expect, it } from 'vitest';
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import { request } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createApiHandler, createApiServer, maxBodyBytes, ApiListenError } from './server.js';
import { FakeControl, sampleReport } from './fake-control.js';
import { weftVersion } from './version.js';
import { createMemoryLogger } from '../runtime/logger.js';

interface Injected {
  status: number;
  headers: Record<string, unknown>;
  body: any;
}

/** Call the handler with an in-memory request and response, like fastify's inject: no port. */
function inject(control: FakeControl, method: string, url: string, body?: unknown | string | Buffer): Promise<Injected> {
  const { log } = createMemoryLogger();
  const handler = createApiHandler(control, log);
  const payload = body === undefined ? [] : [Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body))];
  const req = Object.assign(Readable.from(payload), { method, url, headers: {} as Record<string, string> }) as unknown as IncomingMessage;
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

  it('GET /metrics renders the report counters as Prometheus text', async () => {
    const control = new FakeControl();
    control.reportValue.datapath.counters = { drop_replay: 7, framesIn: 3 };
    const r = await inject(control, 'GET', '/metrics');
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toContain('text/plain');
    expect(r.body).toContain('weft_datapath_events_total{counter="drop_replay"} 7');
    expect(r.body).toContain('weft_datapath_events_total{counter="frames_in"} 3');
    expect(r.body).toMatch(/weft_peers \d+/);
    // Connections by data cipher: none without encryption, the agreed one, clear to a trusted subnet.
    expect(r.body).toMatch(/weft_connections\{state="established",encrypted="false",cipher="none"\} \d+/);
    const [first, second] = control.reportValue.router.connections;
    Object.assign(first!, { isEncrypted: true, dataCipher: 'AEGIS-256X2' });
    Object.assign(second!, { isEncrypted: true, isDataClear: true });
    const again = (await inject(control, 'GET', '/metrics')).body as string;
    expect(again).toContain('weft_connections{state="established",encrypted="true",cipher="AEGIS-256X2"} 1');
    expect(again).toContain('weft_connections{state="established",encrypted="true",cipher="clear"} 1');
  });

  it('POST /reload re-reads the allow-list and answers what it closed; a bad file is a 400 naming it', async () => {
    const control = new FakeControl();
    const r = await inject(control, 'POST', '/reload', {});
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ keys: 2, closed: ['h3 (10.1.0.3:6783)'] });
    control.failWith.reloadAuthorizedPeers = Object.assign(new Error('/etc/weft/peers line 2: "x" is not a public key'), { code: 'ERR_CONFIG' });
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
    const r = await inject(control, 'POST', '/attach', { target: 'pid:42', addresses: ['10.2.1.1/24'], mac: '02:00:00:00:00:09', extra: 1 });
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

  it('answers 404 for an unknown route, 405 for a wrong method', async () => {
    const notFound = await inject(new FakeControl(), 'GET', '/nope');
    expect(notFound.status).toBe(404);
    expect(notFound.body.error.message).toContain('GET /report');
    const wrongMethod = await inject(new FakeControl(), 'GET', '/connect');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers['allow']).toBe('POST');
  });

  it("passes a typed error's code through with 400 (or its own httpStatus), and hides nothing else as 500", async () => {
    class TargetNotFoundError extends Error {
      readonly code = 'TARGET_NOT_FOUND';
    }
    const control = new FakeControl();
    control.failWith.detach = new TargetNotFoundError('no namespace c9; list them with ip netns');
    const typed = await inject(control, 'POST', '/detach', { target: 'c9' });
    expect(typed.status).toBe(400);
    expect(typed.body.error).toEqual({ code: 'TARGET_NOT_FOUND', message: 'no namespace c9; list them with ip netns' });

    control.failWith.detach = Object.assign(new Error('gone'), { code: 'TARGET_GONE', httpStatus: 404 });
    expect((await inject(control, 'POST', '/detach', { target: 'c9' })).status).toBe(404);

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
