/**
 * The mesh as this host sees it, for the live page (`GET /mesh.json` on the metrics listener) and the per-peer path
 * metrics: only what `weft report` shows, without identity keys, and nothing that changes state.
 */
import type { Report, RouterReport } from './control.js';

export type PeerPath = 'direct' | 'relayed' | 'unreachable';

/** How each other peer in the topology is reached from this one: over our own established connection, through others, or not. */
export function meshPaths(router: RouterReport): Map<string, PeerPath> {
  const direct = new Set(router.connections.filter((c) => c.state === 'established' && c.peer !== undefined).map((c) => c.peer!));
  const edges = new Map<string, string[]>();
  for (const p of router.peers)
    edges.set(
      p.name,
      p.connections.filter((c) => c.isEstablished).map((c) => c.name),
    );
  edges.set(router.name, [...direct]);
  const seen = new Set([router.name]);
  const queue = [router.name];
  while (queue.length > 0) {
    for (const next of edges.get(queue.shift()!) ?? []) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  const out = new Map<string, PeerPath>();
  for (const p of router.peers) {
    if (p.name === router.name) continue;
    out.set(p.name, direct.has(p.name) ? 'direct' : seen.has(p.name) ? 'relayed' : 'unreachable');
  }
  return out;
}

export interface MeshView {
  version: string;
  self: { name: string; nickname: string };
  encryption: boolean;
  dataCipher?: string;
  peers: Array<{ name: string; nickname: string; path: PeerPath | 'self' }>;
  /** Links between two peers as gossip tells them (each end's claim), deduplicated; `established` when either end says so. */
  links: Array<{ a: string; b: string; isEstablished: boolean }>;
  /** This router's own connections. */
  connections: Array<{
    peer?: string;
    nickname?: string;
    address: string;
    direction: 'in' | 'out';
    state: string;
    info: string;
    isEncrypted: boolean;
    cipher: string;
  }>;
  targets: Array<{ address: string; state: string; lastError?: string }>;
  datapath: { mode: string; bytesIn: number; bytesOut: number; packetsIn: number; packetsOut: number; drops: number };
  /** The data path's own neighbours: traffic counters (the page takes throughput from their deltas) and round trip. */
  neighbours: Array<{ peer: string; isEstablished: boolean; bytesIn: number; bytesOut: number; drops: number; rttMs?: number }>;
  endpoints: Array<{ target: string; interface: string; mac: string; addresses: string[]; containerId?: string }>;
  ipam?: {
    status: string;
    range: string;
    allocated?: number;
    free?: number;
    peers: Array<{ name: string; nickname: string; addresses: number; share: number; isReachable: boolean }>;
  };
}

/** The page's JSON: a copy of parts of the report, strings as they are (the page sets them as text, never as HTML). */
export function meshView(report: Report): MeshView {
  const r = report.router;
  const paths = meshPaths(r);
  const links = new Map<string, { a: string; b: string; isEstablished: boolean }>();
  for (const p of r.peers) {
    for (const c of p.connections) {
      const [a, b] = p.name < c.name ? [p.name, c.name] : [c.name, p.name];
      const key = `${a} ${b}`;
      const link = links.get(key) ?? { a, b, isEstablished: false };
      link.isEstablished ||= c.isEstablished;
      links.set(key, link);
    }
  }
  const c = report.datapath.counters;
  let drops = 0;
  for (const [k, v] of Object.entries(c)) if (/^drop_|^(tap|udp)_drops?[A-Z]/.test(k)) drops += v;
  return {
    version: report.version,
    self: { name: r.name, nickname: r.nickname },
    encryption: r.encryption,
    ...(r.dataCipher !== undefined && { dataCipher: r.dataCipher }),
    peers: r.peers.map((p) => ({
      name: p.name,
      nickname: p.nickname,
      path: p.name === r.name ? 'self' : (paths.get(p.name) ?? 'unreachable'),
    })),
    links: [...links.values()],
    connections: r.connections.map((x) => ({
      ...(x.peer !== undefined && { peer: x.peer }),
      ...(x.nickname !== undefined && { nickname: x.nickname }),
      address: x.address,
      direction: x.direction === '->' ? 'out' : 'in',
      state: x.state,
      info: x.info,
      isEncrypted: x.isEncrypted,
      cipher: x.isDataClear ? 'clear' : (x.dataCipher ?? 'none'),
    })),
    targets: r.targets.map((t) => ({ address: t.address, state: t.state, ...(t.lastError !== undefined && { lastError: t.lastError }) })),
    datapath: {
      mode: report.datapath.mode,
      bytesIn: c['bytes_in'] ?? 0,
      bytesOut: c['bytes_out'] ?? 0,
      packetsIn: c['datagrams_in'] ?? 0,
      packetsOut: c['datagrams_out'] ?? 0,
      drops,
    },
    neighbours: (report.datapath.peers ?? []).map((p) => {
      const t = p.traffic;
      let peerDrops = 0;
      for (const v of [...Object.values(t?.dropsIn ?? {}), ...Object.values(t?.dropsOut ?? {})]) peerDrops += v;
      return {
        peer: p.name,
        isEstablished: p.isEstablished,
        bytesIn: t?.bytesIn ?? 0,
        bytesOut: t?.bytesOut ?? 0,
        drops: peerDrops,
        ...(p.rttSeconds !== undefined && { rttMs: p.rttSeconds * 1000 }),
      };
    }),
    endpoints: report.endpoints.map((e) => ({
      target: e.target,
      interface: e.interface,
      mac: e.mac,
      addresses: [...e.addresses],
      ...(e.containerId !== undefined && { containerId: e.containerId }),
    })),
    ...(report.ipam && {
      ipam: {
        status: report.ipam.status,
        range: report.ipam.range,
        ...(report.ipam.allocated !== undefined && { allocated: report.ipam.allocated }),
        ...(report.ipam.free !== undefined && { free: report.ipam.free }),
        peers: report.ipam.peers.map((p) => ({ ...p })),
      },
    }),
  };
}
