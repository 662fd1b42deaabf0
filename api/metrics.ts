/**
 * Prometheus metrics (`GET /metrics` on the metrics listener, api/metrics-server.ts), read from the daemon's report at scrape time: the data path's counters (every
 * drop under its reason), the mesh's event counters, and gauges for connections and peers. Nothing is counted twice:
 * the counters live in their components as plain numbers; this only renders them.
 */
import { Registry, Counter, Gauge } from 'prom-client';
import type { Report } from './control.js';

/** Turn a counter key such as `drop_replay` or `tap_framesRead` into a metric-name suffix. */
function metricSuffix(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_');
}

/** Build a registry whose collectors read `report()` when scraped. */
export function createMetrics(report: () => Report): Registry {
  const registry = new Registry();
  let current: Report | undefined;
  const refresh = () => {
    current = report();
  };

  new Counter({
    name: 'weft_datapath_events_total',
    help: 'Data-path counters by name (frames, datagrams, bytes, and every drop reason as drop_<reason>).',
    labelNames: ['counter'],
    registers: [registry],
    collect() {
      refresh();
      this.reset();
      for (const [k, v] of Object.entries(current!.datapath.counters)) this.inc({ counter: metricSuffix(k) }, v);
    },
  });
  new Counter({
    name: 'weft_mesh_events_total',
    help: 'Control-plane event counters by reason (decode errors, refusals, timeouts, rate limiting).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [k, v] of Object.entries(current?.router.counters ?? {})) this.inc({ reason: metricSuffix(k) }, v);
    },
  });
  new Gauge({
    name: 'weft_connections',
    help: "Control connections by state, encryption and data cipher ('none' without encryption, 'clear' to a trusted subnet).",
    labelNames: ['state', 'encrypted', 'cipher'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of current?.router.connections ?? []) {
        const cipher = c.isDataClear ? 'clear' : (c.dataCipher ?? 'none');
        this.inc({ state: c.state, encrypted: String(c.isEncrypted), cipher });
      }
    },
  });
  new Counter({
    name: 'weft_api_requests_refused_total',
    help: 'Requests the local API refused, by reason (host, origin and fetch_site: a web page or DNS rebinding; content_type, method, not_found, too_large, bad_request).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [k, v] of Object.entries(current?.api?.refused ?? {})) this.inc({ reason: metricSuffix(k) }, v);
    },
  });
  new Gauge({
    name: 'weft_peers',
    help: 'Peers in the topology, including this one.',
    registers: [registry],
    collect() {
      this.set(current?.router.peers.length ?? 0);
    },
  });
  return registry;
}
