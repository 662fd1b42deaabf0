import { describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { createMetricsServer, isAddressHost, MetricsListenError } from './metrics-server.js';
import { FakeControl } from './fake-control.js';
import { createMemoryLogger } from '../runtime/logger.js';

function http(port: number, method: string, path: string, body?: string): Promise<{ status: number; text: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), type: String(res.headers['content-type']) }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('createMetricsServer', () => {
  it('renders every family with Prometheus names: per-peer paths, drops by reason, IPAM, build info, process metrics', async () => {
    const control = new FakeControl();
    control.reportValue.datapath.counters = {
      bytes_in: 10,
      bytes_out: 20,
      datagrams_in: 1,
      datagrams_out: 2,
      frames_in: 3,
      drop_no_route: 4,
      udp_dropsSendError: 5,
    };
    control.reportValue.ipam!.allocated = 3;
    control.reportValue.ipam!.free = 100;
    control.reportValue.router.connections[0]!.rekeyCount = 2;
    control.reportValue.datapath.peers = [
      {
        name: '00:00:00:00:00:02',
        isEstablished: true,
        lastHeardSecondsAgo: 0.5,
        traffic: { datagramsIn: 7, bytesIn: 700, datagramsOut: 9, bytesOut: 900, dropsIn: { auth: 3 }, dropsOut: { too_big: 1 } },
      },
      { name: '00:00:00:00:00:03', isEstablished: false },
    ];
    const server = await createMetricsServer(() => control.report(), createMemoryLogger().log, { host: '127.0.0.1', port: 0 });
    try {
      const port = Number(server.metricsAddr.split(':')[1]);
      const text = (await http(port, 'GET', '/metrics')).text;
      expect(text).toContain('weft_build_info{version="0.1.0",node_version="' + process.versions.node + '"} 1');
      expect(text).toContain('weft_datapath_bytes_total{direction="in"} 10');
      expect(text).toContain('weft_datapath_packets_total{direction="out"} 2');
      expect(text).toContain('weft_datapath_drops_total{reason="no_route"} 4');
      expect(text).toContain('weft_datapath_drops_total{reason="udp_send_error"} 5');
      expect(text).toContain('weft_peer_path{peer="00:00:00:00:00:02",path="direct"} 1');
      expect(text).toContain('weft_peer_reachable{peer="00:00:00:00:00:03"} 1');
      expect(text).toContain('weft_connection_info{peer="10.1.0.9:6783",direction="out",state="retrying",cipher="none"} 1');
      expect(text).toContain('weft_rekeys_total{peer="00:00:00:00:00:02"} 2');
      expect(text).toContain('weft_ipam_owned_addresses{peer="00:00:00:00:00:01"} 524288');
      expect(text).toContain('weft_ipam_range_addresses 1048576');
      expect(text).toContain('weft_ipam_free_addresses 100');
      expect(text).toContain('weft_encryption_enabled 0');
      expect(text).toContain('weft_peer_datapath_established{peer="00:00:00:00:00:02"} 1');
      expect(text).toContain('weft_peer_datapath_established{peer="00:00:00:00:00:03"} 0');
      expect(text).toContain('weft_peer_last_heard_seconds{peer="00:00:00:00:00:02"} 0.5');
      expect(text).not.toContain('weft_peer_last_heard_seconds{peer="00:00:00:00:00:03"}');
      expect(text).toContain('weft_peer_bytes_total{peer="00:00:00:00:00:02",direction="in"} 700');
      expect(text).toContain('weft_peer_bytes_total{peer="00:00:00:00:00:02",direction="out"} 900');
      expect(text).toContain('weft_peer_packets_total{peer="00:00:00:00:00:02",direction="in"} 7');
      expect(text).toContain('weft_peer_packets_total{peer="00:00:00:00:00:02",direction="out"} 9');
      expect(text).toContain('weft_peer_drops_total{peer="00:00:00:00:00:02",direction="in",reason="auth"} 3');
      expect(text).toContain('weft_peer_drops_total{peer="00:00:00:00:00:02",direction="out",reason="too_big"} 1');
      expect(text).not.toContain('weft_peer_bytes_total{peer="00:00:00:00:00:03"');
      expect(text).toMatch(/^process_resident_memory_bytes \d+/m);
      expect(text).toMatch(/^nodejs_heap_size_used_bytes \d+/m);
      // One report per scrape.
      expect(control.calls.filter((c) => c.method === 'report')).toHaveLength(1);
    } finally {
      await server.close();
    }
  });

  it('serves the mesh page only to an address in Host (no DNS rebinding)', () => {
    for (const ok of ['127.0.0.1:6782', '127.0.0.1', 'localhost:6782', '[::1]:6782', '10.0.0.5:6782'])
      expect(isAddressHost(ok), ok).toBe(true);
    for (const bad of [
      undefined,
      '',
      'evil.example:6782',
      'evil.example',
      '127.0.0.1.nip.io:6782',
      'localhost.evil.example',
      '1.2.3:6782',
      'a@b',
    ]) {
      expect(isAddressHost(bad), String(bad)).toBe(false);
    }
  });

  it('serves the mesh page with a strict policy and its read-only JSON', async () => {
    const control = new FakeControl();
    const server = await createMetricsServer(() => control.report(), createMemoryLogger().log, { host: '127.0.0.1', port: 0 });
    try {
      const port = Number(server.metricsAddr.split(':')[1]);
      const page = await http(port, 'GET', '/');
      expect(page.status).toBe(200);
      expect(page.type).toContain('text/html');
      expect(page.text).toContain('mesh.json');
      const rebound = await new Promise<number>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/mesh.json', headers: { host: `evil.example:${port}` } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      expect(rebound).toBe(403);
      const json = await http(port, 'GET', '/mesh.json');
      expect(json.status).toBe(200);
      expect((JSON.parse(json.text) as { self: { nickname: string } }).self.nickname).toBe('h1');
      expect(control.calls.every((c) => c.method === 'report')).toBe(true);
    } finally {
      await server.close();
    }
  });

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
      for (const [method, path] of [
        ['POST', '/stop'],
        ['GET', '/stop'],
        ['GET', '/report'],
        ['POST', '/ipam/reset'],
        ['POST', '/connect'],
        ['GET', '/index.html'],
      ]) {
        expect((await http(port, method!, path!, '{}')).status, `${method} ${path}`).toBe(404);
      }
      for (const method of ['POST', 'PUT', 'DELETE']) expect((await http(port, method, '/metrics', '{}')).status, method).toBe(405);
      for (const path of ['/', '/mesh.json'])
        for (const method of ['POST', 'PUT', 'DELETE'])
          expect((await http(port, method, path, '{}')).status, `${method} ${path}`).toBe(405);
      expect(control.calls.filter((c) => c.method !== 'report')).toEqual([]);
      expect(control.calls).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('rejects with MetricsListenError naming --metrics-addr when the address is taken', async () => {
    const first = await createMetricsServer(() => new FakeControl().report(), createMemoryLogger().log, { host: '127.0.0.1', port: 0 });
    try {
      const err = await createMetricsServer(() => new FakeControl().report(), createMemoryLogger().log, {
        host: '127.0.0.1',
        port: Number(first.metricsAddr.split(':')[1]),
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(MetricsListenError);
      expect((err as Error).message).toMatch(/--metrics-addr/);
    } finally {
      await first.close();
    }
  });
});
