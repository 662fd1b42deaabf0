import { describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { createMetricsServer, MetricsListenError } from './metrics-server.js';
import { FakeControl } from './fake-control.js';
import { createMemoryLogger } from '../runtime/logger.js';

function http(port: number, method: string, path: string, body?: string): Promise<{ status: number; text: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('createMetricsServer', () => {
  it('renders the report counters as Prometheus text on GET /metrics, API refusals included', async () => {
    const control = new FakeControl();
    control.reportValue.datapath.counters = { drop_replay: 7, framesIn: 3 };
    control.reportValue.api = { served: 2, refused: { host: 4, origin: 5, fetch_site: 0 } };
    const server = await createMetricsServer(() => control.report(), createMemoryLogger().log, { host: '127.0.0.1', port: 0 });
    try {
      const port = Number(server.metricsAddr.split(':')[1]);
      const r = await http(port, 'GET', '/metrics');
      expect(r.status).toBe(200);
      expect(r.type).toContain('text/plain');
      expect(r.text).toContain('weft_datapath_events_total{counter="drop_replay"} 7');
      expect(r.text).toContain('weft_datapath_events_total{counter="frames_in"} 3');
      expect(r.text).toContain('weft_api_requests_refused_total{reason="host"} 4');
      expect(r.text).toContain('weft_api_requests_refused_total{reason="origin"} 5');
      expect(r.text).toMatch(/weft_peers \d+/);
      expect(r.text).toMatch(/weft_connections\{state="established",encrypted="false",cipher="none"\} \d+/);
      const [first, second] = control.reportValue.router.connections;
      Object.assign(first!, { isEncrypted: true, dataCipher: 'AEGIS-256X2' });
      Object.assign(second!, { isEncrypted: true, isDataClear: true });
      const again = (await http(port, 'GET', '/metrics')).text;
      expect(again).toContain('weft_connections{state="established",encrypted="true",cipher="AEGIS-256X2"} 1');
      expect(again).toContain('weft_connections{state="established",encrypted="true",cipher="clear"} 1');
    } finally {
      await server.close();
      await server.close();
    }
  });

  it('serves nothing else: other paths are 404, other methods 405, and no request reaches the daemon but a read', async () => {
    const control = new FakeControl();
    const server = await createMetricsServer(() => control.report(), createMemoryLogger().log, { host: '127.0.0.1', port: 0 });
    try {
      const port = Number(server.metricsAddr.split(':')[1]);
      for (const [method, path] of [['POST', '/stop'], ['GET', '/stop'], ['GET', '/report'], ['POST', '/ipam/reset'], ['POST', '/connect'], ['GET', '/']]) {
        expect((await http(port, method!, path!, '{}')).status, `${method} ${path}`).toBe(404);
      }
      for (const method of ['POST', 'PUT', 'DELETE']) expect((await http(port, method, '/metrics', '{}')).status, method).toBe(405);
      expect(control.calls.filter((c) => c.method !== 'report')).toEqual([]);
      expect(control.calls).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('rejects with MetricsListenError naming --metrics-addr when the address is taken', async () => {
    const first = await createMetricsServer(() => new FakeControl().report(), createMemoryLogger().log, { host: '127.0.0.1', port: 0 });
    try {
      const err = await createMetricsServer(() => new FakeControl().report(), createMemoryLogger().log, { host: '127.0.0.1', port: Number(first.metricsAddr.split(':')[1]) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MetricsListenError);
      expect((err as Error).message).toMatch(/--metrics-addr/);
    } finally {
      await first.close();
    }
  });
});
