/**
 * `weft status dns`: where weftDNS answers, its upstream servers, and every live record with the router owning it.
 */
import type { Report } from '../api/control.js';

export function formatDns(report: Report): string {
  const dns = report.dns;
  if (!dns) return 'weftDNS is off (--no-dns)\n';
  const lines = [
    `       Domain: ${dns.domain}`,
    `       Listen: ${dns.listen ?? 'not listening (waiting for IPAM, or see the log)'}`,
    `          TTL: ${dns.ttlSeconds} s`,
    `     Upstream: ${dns.upstream.join(', ') || '(none)'}`,
    `      Records: ${dns.records.length}`,
  ];
  if (dns.records.length > 0) {
    const rows = [...dns.records].sort((a, b) => (a.name === b.name ? (a.address < b.address ? -1 : 1) : a.name < b.name ? -1 : 1));
    const width = Math.max(4, ...rows.map((r) => r.name.length));
    const awidth = Math.max(7, ...rows.map((r) => r.address.length));
    lines.push('', `${'NAME'.padEnd(width)}  ${'ADDRESS'.padEnd(awidth)}  OWNER`);
    for (const r of rows)
      lines.push(`${r.name.padEnd(width)}  ${r.address.padEnd(awidth)}  ${r.owner}${r.nickname ? ` (${r.nickname})` : ''}`);
  }
  return `${lines.join('\n')}\n`;
}
