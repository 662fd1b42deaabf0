/**
 * Prometheus metrics (`GET /metrics` on the metrics listener, api/metrics-server.ts), read from the daemon's report at
 * scrape time, never per packet: the data path's counters (every drop under its reason), the mesh's event counters,
 * connections and peers (label `peer`: a peer name, bounded by the topology), IPAM, gossip, rekeys, the process
 * metrics prom-client gives, and the build. Nothing is counted twice: the counters live in their components as plain
 * numbers; this only renders them. docs/metrics.md lists every family (a netns test parses it against this output).
 */
import { Registry, Counter, Gauge, collectDefaultMetrics } from 'prom-client';
import type { PeerTraffic, Report } from './control.js';
import { meshPaths } from './mesh-view.js';

/** Turn a counter key such as `drop_replay` or `tap_framesRead` into a metric-name suffix. */
function metricSuffix(key: string): string {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_');
}

/** The data path's drop counters by reason: the sleeve's `drop_<reason>`, the capture's and underlay's `<tap|udp>_drops<Reason>`. */
export function dropsByReason(counters: Record<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of Object.entries(counters)) {
    const sleeve = /^drop_(.+)$/.exec(k);
    const layer = /^(tap|pcap|udp)_drops?([A-Z].*)$/.exec(k);
    const reason = sleeve
      ? metricSuffix(sleeve[1]!)
      : layer
        ? `${layer[1]}_${metricSuffix(layer[2]!.replace(/^./, (c) => c.toLowerCase()))}`
        : undefined;
    if (reason !== undefined) out.set(reason, (out.get(reason) ?? 0) + v);
  }
  return out;
}

/** A connection's `peer` label: the peer name once the handshake told it, else its address (a dial target). */
function connectionPeer(c: { peer?: string; address: string }): string {
  return c.peer ?? c.address;
}

/** Size of an IPv4 CIDR range, 0 when it is not one. */
function cidrSize(cidr: string): number {
  const m = /^\d+\.\d+\.\d+\.\d+\/(\d+)$/.exec(cidr);
  return m ? 2 ** (32 - Number(m[1])) : 0;
}

/** Build a registry whose collectors read `report()` when scraped (once per scrape). */
export function createMetrics(report: () => Report): Registry {
  const registry = new Registry();
  // prom-client samples the event loop's delay with a timer; at its default 10 ms that wakes an idle router 100
  // times a second (0.4 % of a core measured, more than the rest of an idle router). Once a second still shows stalls
  // that matter (its own timer is not on the router's tick grid: one more wake-up a second, not four); the router's
  // own stall counters (own_stalls in weft report) see every one.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 });
  let current: Report | undefined;
  // The first collector of a scrape reads the report; the rest use it.
  const refresh = () => {
    current = report();
  };
  const r = () => current!;

  new Gauge({
    name: 'weft_build_info',
    help: 'Always 1; the labels say which weft and which Node.js run.',
    labelNames: ['version', 'node_version'],
    registers: [registry],
    collect() {
      refresh();
      this.reset();
      this.set({ version: r().version, node_version: process.versions.node }, 1);
    },
  });
  new Counter({
    name: 'weft_datapath_events_total',
    help: 'Data-path counters by name (frames, datagrams, bytes, and every drop reason as drop_<reason>).',
    labelNames: ['counter'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [k, v] of Object.entries(r().datapath.counters)) this.inc({ counter: metricSuffix(k) }, v);
    },
  });
  new Counter({
    name: 'weft_datapath_bytes_total',
    help: 'UDP payload bytes the data path sent (out) and received (in), to and from every peer.',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      this.reset();
      const c = r().datapath.counters;
      if (c['bytes_in'] === undefined) return;
      this.inc({ direction: 'in' }, c['bytes_in'] ?? 0);
      this.inc({ direction: 'out' }, c['bytes_out'] ?? 0);
    },
  });
  new Counter({
    name: 'weft_datapath_packets_total',
    help: 'UDP datagrams the data path sent (out) and received (in).',
    labelNames: ['direction'],
    registers: [registry],
    collect() {
      this.reset();
      const c = r().datapath.counters;
      if (c['datagrams_in'] === undefined) return;
      this.inc({ direction: 'in' }, c['datagrams_in'] ?? 0);
      this.inc({ direction: 'out' }, c['datagrams_out'] ?? 0);
    },
  });
  new Counter({
    name: 'weft_datapath_frames_total',
    help: 'Ethernet frames by stage: captured from the bridge, out to peers, in from peers, delivered to the bridge, forwarded (relayed).',
    labelNames: ['stage'],
    registers: [registry],
    collect() {
      this.reset();
      const c = r().datapath.counters;
      for (const stage of ['captured', 'out', 'in', 'delivered', 'forwarded']) {
        const v = c[`frames_${stage}`];
        if (v !== undefined) this.inc({ stage }, v);
      }
    },
  });
  new Counter({
    name: 'weft_datapath_drops_total',
    help: 'Frames and datagrams the data path dropped, by reason (sleeve reasons bare, capture ones as tap_* or pcap_*, underlay ones as udp_*).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, v] of dropsByReason(r().datapath.counters)) this.inc({ reason }, v);
    },
  });
  new Counter({
    name: 'weft_mesh_events_total',
    help: 'Control-plane event counters by reason (decode errors, refusals, timeouts, rate limiting).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [k, v] of Object.entries(r().router.counters ?? {})) this.inc({ reason: metricSuffix(k) }, v);
    },
  });
  new Gauge({
    name: 'weft_encryption_enabled',
    help: '1 when the network has a password (control and data encrypted), 0 when anyone reaching the port can join and read.',
    registers: [registry],
    collect() {
      this.set(r().router.encryption ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weft_connections',
    help: "Control connections by state, encryption and data cipher ('none' without encryption, 'clear' to a trusted subnet).",
    labelNames: ['state', 'encrypted', 'cipher'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of r().router.connections) {
        const cipher = c.isDataClear ? 'clear' : (c.dataCipher ?? 'none');
        this.inc({ state: c.state, encrypted: String(c.isEncrypted), cipher });
      }
    },
  });
  new Gauge({
    name: 'weft_connection_info',
    help: 'Always 1 per connection: its peer (name, or the address before the handshake), direction, state and data cipher.',
    labelNames: ['peer', 'direction', 'state', 'cipher'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of r().router.connections) {
        const cipher = c.isDataClear ? 'clear' : (c.dataCipher ?? 'none');
        this.set({ peer: connectionPeer(c), direction: c.direction === '->' ? 'out' : 'in', state: c.state, cipher }, 1);
      }
    },
  });
  new Gauge({
    name: 'weft_connection_session_age_seconds',
    help: 'Seconds since the crypto session of an encrypted connection started (it restarts on a rekey).',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of r().router.connections)
        if (c.sessionAgeSeconds !== undefined) this.set({ peer: connectionPeer(c) }, c.sessionAgeSeconds);
    },
  });
  new Counter({
    name: 'weft_rekeys_total',
    help: 'Rekeys the crypto session of an encrypted connection has done (starts again at 0 with a new connection).',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of r().router.connections) if (c.rekeyCount !== undefined) this.inc({ peer: connectionPeer(c) }, c.rekeyCount);
    },
  });
  new Gauge({
    name: 'weft_peers',
    help: 'Peers in the topology, including this one.',
    registers: [registry],
    collect() {
      this.set(r().router.peers.length);
    },
  });
  new Gauge({
    name: 'weft_peer_info',
    help: 'Always 1 per peer in the topology (this one included): its name and nickname.',
    labelNames: ['peer', 'nickname'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of r().router.peers) this.set({ peer: p.name, nickname: p.nickname }, 1);
    },
  });
  new Gauge({
    name: 'weft_peer_reachable',
    help: 'Per other peer in the topology: 1 when a path of established connections reaches it, 0 when none does.',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [peer, path] of meshPaths(r().router)) this.set({ peer }, path === 'unreachable' ? 0 : 1);
    },
  });
  new Gauge({
    name: 'weft_peer_path',
    help: "Always 1 per other peer: how it is reached ('direct' over our own established connection, 'relayed' through other peers, 'unreachable').",
    labelNames: ['peer', 'path'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [peer, path] of meshPaths(r().router)) this.set({ peer, path }, 1);
    },
  });
  new Gauge({
    name: 'weft_peer_datapath_established',
    help: "Per neighbour: 1 when the data path's heartbeats are answered both ways, 0 when not (the connection shows 'pending' then).",
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of r().datapath.peers ?? []) this.set({ peer: p.name }, p.isEstablished ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weft_peer_fastdp',
    help: "Per neighbour: 1 when the kernel's VXLAN (fastdp) carries its frames, 0 when the sleeve does (the reason is in weft status connections).",
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of r().datapath.peers ?? []) if (p.carrier !== undefined) this.set({ peer: p.name }, p.carrier === 'fastdp' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weft_peer_last_heard_seconds',
    help: 'Per neighbour: seconds since the data path last received a valid datagram from it.',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of r().datapath.peers ?? []) if (p.lastHeardSecondsAgo !== undefined) this.set({ peer: p.name }, p.lastHeardSecondsAgo);
    },
  });
  const inOutPerPeer = (name: string, help: string, count: (t: PeerTraffic) => { in: number; out: number }) =>
    new Counter({
      name,
      help,
      labelNames: ['peer', 'direction'],
      registers: [registry],
      collect() {
        this.reset();
        for (const p of r().datapath.peers ?? []) {
          if (!p.traffic) continue;
          const c = count(p.traffic);
          this.inc({ peer: p.name, direction: 'in' }, c.in);
          this.inc({ peer: p.name, direction: 'out' }, c.out);
        }
      },
    });
  inOutPerPeer(
    'weft_peer_bytes_total',
    'Per neighbour: UDP payload bytes the data path sent to it (out) and received from it, authentic only (in).',
    (t) => ({ in: t.bytesIn, out: t.bytesOut }),
  );
  inOutPerPeer(
    'weft_peer_packets_total',
    'Per neighbour: UDP datagrams the data path sent to it (out) and received from it, authentic only (in).',
    (t) => ({ in: t.datagramsIn, out: t.datagramsOut }),
  );
  new Counter({
    name: 'weft_peer_drops_total',
    help: 'Per neighbour: datagrams naming it dropped (in: source, auth, record) and frames or datagrams for it dropped (out: seal, too_big).',
    labelNames: ['peer', 'direction', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of r().datapath.peers ?? []) {
        if (!p.traffic) continue;
        for (const [reason, v] of Object.entries(p.traffic.dropsIn)) this.inc({ peer: p.name, direction: 'in', reason }, v);
        for (const [reason, v] of Object.entries(p.traffic.dropsOut)) this.inc({ peer: p.name, direction: 'out', reason }, v);
      }
    },
  });
  new Gauge({
    name: 'weft_peer_rtt_seconds',
    help: "Per neighbour: smoothed round trip of the data path's heartbeat and its ack (RFC 6298 SRTT), after the first ack.",
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of r().datapath.peers ?? []) if (p.rttSeconds !== undefined) this.set({ peer: p.name }, p.rttSeconds);
    },
  });
  new Gauge({
    name: 'weft_endpoints',
    help: 'Container interfaces (and namespaces) attached to the bridge on this host.',
    registers: [registry],
    collect() {
      this.set(r().endpoints.length);
    },
  });
  new Gauge({
    name: 'weft_ipam_range_addresses',
    help: 'Addresses in the IPAM range (--ipalloc-range); absent when IPAM is off.',
    registers: [registry],
    collect() {
      this.reset();
      const ipam = r().ipam;
      if (ipam && ipam.status !== 'off') this.set(cidrSize(ipam.range));
    },
  });
  new Gauge({
    name: 'weft_ipam_owned_addresses',
    help: 'Addresses of the range each peer owns (its share of the ring).',
    labelNames: ['peer'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of r().ipam?.peers ?? []) this.set({ peer: p.name }, p.addresses);
    },
  });
  new Gauge({
    name: 'weft_ipam_allocated_addresses',
    help: 'Addresses this peer has handed out (containers and the host).',
    registers: [registry],
    collect() {
      this.reset();
      const a = r().ipam?.allocated;
      if (a !== undefined) this.set(a);
    },
  });
  new Gauge({
    name: 'weft_ipam_free_addresses',
    help: 'Addresses this peer could hand out now without asking another peer for space.',
    registers: [registry],
    collect() {
      this.reset();
      const f = r().ipam?.free;
      if (f !== undefined) this.set(f);
    },
  });
  new Counter({
    name: 'weft_gossip_rounds_total',
    help: 'Periodic gossip rounds run (each sends every channel its complete state to some neighbours).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(r().router.gossip?.rounds ?? 0);
    },
  });
  new Counter({
    name: 'weft_gossip_messages_total',
    help: 'Gossip frames per channel received (in) and sent (out), relayed ones included.',
    labelNames: ['channel', 'direction'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [channel, c] of Object.entries(r().router.gossip?.channels ?? {})) {
        this.inc({ channel, direction: 'in' }, c.messagesIn);
        this.inc({ channel, direction: 'out' }, c.messagesOut);
      }
    },
  });
  new Counter({
    name: 'weft_gossip_bytes_total',
    help: 'Gossip frame bytes per channel received (in) and sent (out), relayed ones included.',
    labelNames: ['channel', 'direction'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [channel, c] of Object.entries(r().router.gossip?.channels ?? {})) {
        this.inc({ channel, direction: 'in' }, c.bytesIn);
        this.inc({ channel, direction: 'out' }, c.bytesOut);
      }
    },
  });
  new Counter({
    name: 'weft_gossip_merges_total',
    help: "Gossip messages per channel that changed this router's state (merged something new, passed on as a delta).",
    labelNames: ['channel'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [channel, c] of Object.entries(r().router.gossip?.channels ?? {})) this.inc({ channel }, c.merges);
    },
  });
  new Gauge({
    name: 'weft_gossip_last_round_messages',
    help: 'Gossip messages the last periodic round sent.',
    registers: [registry],
    collect() {
      this.set(r().router.gossip?.lastRoundMessages ?? 0);
    },
  });
  new Counter({
    name: 'weft_api_requests_total',
    help: 'Requests the local API served.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(r().api?.served ?? 0);
    },
  });
  new Counter({
    name: 'weft_api_requests_refused_total',
    help: 'Requests the local API refused, by reason (host, origin and fetch_site: a web page or DNS rebinding; content_type, method, not_found, too_large, bad_request).',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [k, v] of Object.entries(r().api?.refused ?? {})) this.inc({ reason: metricSuffix(k) }, v);
    },
  });
  return registry;
}
