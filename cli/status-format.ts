/**
 * Text views of a `Report` for `weft status [peers|connections|targets|ipam]` and `weft ps`, laid out like Weave Net's
 * `weave status` so its users read them at a glance: right-aligned labels in service blocks, one line per connection,
 * peers as a tree. Pure functions: a report in, text (ending in a newline, or empty) out. The report's strings come
 * from other routers: the caller escapes them first (cli/terminal-text.ts `escapeStrings`).
 */
import type { ConnectionReport, Report } from '../api/control.js';

// "TrustedSubnets" is the longest label; Weave pads every label to it plus one space.
const labelWidth = 15;

function block(lines: Array<[string, string | number]>): string {
  return lines.map(([label, value]) => `${label.padStart(labelWidth)}: ${value}\n`).join('');
}

function enabled(flag: boolean): string {
  return flag ? 'enabled' : 'disabled';
}

function nameAndNickname(name: string | undefined, nickname: string | undefined): string {
  if (name === undefined) return '';
  return nickname ? `${name}(${nickname})` : name;
}

/** The port of "host:port" ("[::]:6783" -> "6783"). */
function portOf(address: string): string {
  return address.slice(address.lastIndexOf(':') + 1);
}

/** "3 (2 established, 1 retrying)": the count, then how many are in each state, established first. */
function connectionSummary(connections: readonly ConnectionReport[]): string {
  if (connections.length === 0) return '0';
  const byState = new Map<string, number>();
  for (const c of connections) byState.set(c.state, (byState.get(c.state) ?? 0) + 1);
  const order = ['established', 'pending', 'connecting', 'retrying', 'failed'];
  const parts = [...byState].sort(([a], [b]) => (order.indexOf(a) >>> 0) - (order.indexOf(b) >>> 0)).map(([state, n]) => `${n} ${state}`);
  return `${connections.length} (${parts.join(', ')})`;
}

/** `weft status`: the version, then one block per service (router, datapath, ipam). */
export function formatStatus(report: Report): string {
  const r = report.router;
  const establishedInMesh = r.peers.reduce((n, p) => n + p.connections.filter((c) => c.isEstablished).length, 0);
  let out = block([['Version', report.version]]);
  out += '\n';
  out += block([
    ['Service', 'router'],
    ['Protocol', r.protocol],
    ['Name', nameAndNickname(r.name, r.nickname)],
    [
      'Encryption',
      r.encryption
        ? r.dataCipher
          ? `enabled (${r.dataCipher})`
          : 'enabled'
        : `disabled — anyone who reaches port ${portOf(r.listenAddr)} can join and read traffic`,
    ],
    ...(r.identity !== undefined ? [['Identity', r.identity] as [string, string]] : []),
    ...(r.authorizedPeers !== undefined ? [['AuthorizedPeers', `${r.authorizedPeers}`] as [string, string]] : []),
    ['PeerDiscovery', enabled(r.peerDiscovery)],
    ['Targets', r.targets.length],
    ['Connections', connectionSummary(r.connections)],
    ['Peers', `${r.peers.length} (with ${establishedInMesh} established connections)`],
    ['TrustedSubnets', r.trustedSubnets.length === 0 ? 'none' : r.trustedSubnets.join(', ')],
    ...(report.api?.metricsAddr !== undefined ? [['Metrics', `http://${report.api.metricsAddr}/metrics`] as [string, string]] : []),
  ]);
  const d = report.datapath;
  const datapath: Array<[string, string | number]> = [
    ['Service', 'datapath'],
    ['Mode', d.mode],
  ];
  if (d.bridge !== undefined) datapath.push(['Bridge', d.bridge]);
  if (d.capture !== undefined) datapath.push(['Capture', d.captureMode !== undefined ? `${d.captureMode} on ${d.capture}` : d.capture]);
  if (d.offloads !== undefined) datapath.push(['Offloads', d.offloads.length === 0 ? 'none' : d.offloads.join(', ')]);
  if (d.busyPollMicros !== undefined) datapath.push(['BusyPoll', d.busyPollMicros === 0 ? 'off' : `${d.busyPollMicros}us`]);
  if (d.mtuBytes !== undefined) datapath.push(['MTU', d.mtuBytes]);
  if (d.udpPort !== undefined) datapath.push(['UDPPort', d.udpPort]);
  // One line per neighbour: the IP packet size its path carries (probed; "unconfirmed" while no probe came back).
  for (const p of d.peers ?? []) {
    if (p.pathMtuBytes === undefined) continue;
    const nickname = r.peers.find((x) => x.name === p.name)?.nickname;
    datapath.push(['PathMTU', `${nameAndNickname(p.name, nickname)} ${p.pathMtuBytes}${p.isPathMtuConfirmed ? '' : ' (unconfirmed)'}`]);
  }
  if (d.fastdp !== undefined) {
    const onFastdp = (d.peers ?? []).filter((p) => p.carrier === 'fastdp').length;
    datapath.push(['FastDP', d.fastdp.off ?? `UDP ${d.fastdp.port ?? '?'}, ${onFastdp} of ${(d.peers ?? []).length} peers`]);
  }
  datapath.push(['Endpoints', report.endpoints.length]);
  out += '\n' + block(datapath);
  if (report.ipam !== undefined) {
    const ipam: Array<[string, string | number]> = [
      ['Service', 'ipam'],
      ['Status', report.ipam.status],
    ];
    if (report.ipam.status !== 'off') {
      ipam.push(['Range', report.ipam.range], ['DefaultSubnet', report.ipam.defaultSubnet]);
    }
    out += '\n' + block(ipam);
  }
  if (report.dns !== undefined) {
    const dns: Array<[string, string | number]> = [
      ['Service', 'dns'],
      ['Domain', report.dns.domain],
      ['Listen', report.dns.listen ?? 'not listening'],
      ['Upstream', report.dns.upstream.join(', ') || 'none'],
      ['TTL', report.dns.ttlSeconds],
      ['Entries', report.dns.records.length],
    ];
    out += '\n' + block(dns);
  }
  if (report.docker !== undefined) {
    const dk = report.docker;
    const engine =
      dk.engine === ''
        ? 'off'
        : `${dk.engine} (${dk.isEngineReachable ? `reachable${dk.engineVersion ? `, ${dk.engineVersion}` : ''}` : 'unreachable'})`;
    const docker: Array<[string, string | number]> = [
      ['Service', 'docker'],
      ['Socket', dk.socket],
      ['Engine', engine],
      ['Networks', dk.networks.length],
      ['Endpoints', `${dk.endpoints.length} (${dk.endpoints.filter((e) => e.isJoined).length} joined)`],
    ];
    if (dk.lastError !== undefined) docker.push(['LastError', dk.lastError]);
    out += '\n' + block(docker);
  }
  return out;
}

/** `weft status connections`: one line per connection of this router, `->` outbound, `<-` inbound. */
export function formatConnections(report: Report): string {
  return report.router.connections
    .map((c) => {
      // The mesh's own info already says "encrypted"/"unencrypted" once the connection is established: say it once.
      const saysEncryption = /^(un)?encrypted\b/.test(c.info);
      // A retry always has a reason; an older daemon may have sent none: say so rather than print a bare row.
      const given = c.info === '' && (c.state === 'retrying' || c.state === 'failed') ? '(no reason recorded)' : c.info;
      const said = c.dataCipher ? given.replace(/^encrypted\b/, `encrypted (${c.dataCipher})`) : given;
      // What carries its frames: "fastdp", or "sleeve" and why (weft status connections shows both, like Weave's).
      const carrier =
        c.carrier === undefined ? '' : c.carrier === 'fastdp' ? 'fastdp' : `sleeve (${c.carrierReason ?? 'no reason recorded'})`;
      const info = [c.isEncrypted && !saysEncryption ? 'encrypted' : '', said, carrier, nameAndNickname(c.peer, c.nickname)]
        .filter((s) => s.length > 0)
        .join(' ');
      return `${c.direction} ${c.address.padEnd(21)} ${c.state.padEnd(15)} ${info}`.trimEnd() + '\n';
    })
    .join('');
}

/** `weft status peers`: each peer in the topology, then its connections indented under it. */
export function formatPeers(report: Report): string {
  let out = '';
  for (const p of report.router.peers) {
    out += `${nameAndNickname(p.name, p.nickname)}\n`;
    for (const c of p.connections) {
      const arrow = c.isOutbound ? '->' : '<-';
      out += `   ${arrow} ${nameAndNickname(c.name, c.nickname).padEnd(32)} ${c.address.padEnd(21)} ${c.isEstablished ? 'established' : 'unestablished'}\n`;
    }
  }
  const paths = report.router.paths ?? [];
  if (paths.length > 0) {
    out += '\nData paths:\n';
    for (const p of paths) {
      const how =
        p.path === 'relayed'
          ? `relayed via ${nameAndNickname(p.via ?? '', p.viaNickname)}: ${p.reason ?? ''}`
          : `${p.path}${p.endpoint !== undefined ? ` ${p.endpoint}` : ''}`;
      out += `   ${nameAndNickname(p.name, p.nickname).padEnd(32)} ${how}`.trimEnd() + '\n';
    }
  }
  return out;
}

/** `weft status targets`: the peers this router was told to connect to, and how that is going. */
export function formatTargets(report: Report): string {
  return report.router.targets
    .map((t) => {
      const details: string[] = [];
      if (t.lastError) details.push(t.lastError);
      if (t.nextAttemptInSeconds !== undefined) details.push(`next attempt in ${t.nextAttemptInSeconds}s`);
      return `${t.address.padEnd(21)} ${t.state.padEnd(11)} ${details.join(', ')}`.trimEnd() + '\n';
    })
    .join('');
}

/** `weft status ipam`: how the range is split between peers (`share` is a fraction of the range, 0..1). */
export function formatIpam(report: Report): string {
  const ipam = report.ipam;
  if (ipam === undefined || ipam.status === 'off') return "IPAM is off (launched with --ipalloc-range '')\n";
  let out = ipam.status === 'ready' ? '' : `IPAM is ${ipam.status} (range ${ipam.range})\n`;
  for (const p of ipam.peers) {
    const percent = (p.share * 100).toFixed(1);
    out += `${nameAndNickname(p.name, p.nickname).padEnd(32)} ${String(p.addresses).padStart(9)} IPs (${percent}% of total)${p.isReachable ? '' : ' - unreachable!'}\n`;
  }
  return out;
}

/** `weft ps`: one line per attached endpoint: target, interface, MAC, addresses. */
export function formatEndpoints(report: Report): string {
  // A runtime's container is shown by its container id (what `podman ps`/`crictl ps` print), not its netns path; a
  // Docker container attached by name by its short id and name.
  const lines = report.endpoints.map((e) => {
    const who = e.containerName !== undefined ? `${(e.containerId ?? '').slice(0, 12)} ${e.containerName}` : (e.containerId ?? e.target);
    return `${who} ${e.interface} ${e.mac} ${e.addresses.join(' ')}`.trimEnd() + '\n';
  });
  // Containers on weft's Docker networks (the plugin's endpoints), once joined.
  for (const e of report.docker?.endpoints ?? []) {
    if (!e.isJoined) continue;
    const who =
      e.containerId !== undefined ? `${e.containerId.slice(0, 12)} ${e.containerName ?? ''}` : `endpoint:${e.endpointId.slice(0, 12)}`;
    lines.push(`${who} ethwe0 ${e.mac} ${e.addresses.join(' ')}`.trimEnd() + '\n');
  }
  return lines.join('');
}
