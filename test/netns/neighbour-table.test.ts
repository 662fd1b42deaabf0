/**
 * Large test runs raise the kernel's shared neighbour table limits (gc_thresh1/2/3, v4 and v6) and the last raising
 * run to end puts them back: a full mesh of N hosts needs N(N-1) entries, more than the default 1,024 past ~32 hosts.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHosts, MARKER_DIR, netnsSkipReason } from '../harness/hosts.js';

const skip = netnsSkipReason();
const keys = [
  'ipv4/neigh/default/gc_thresh1',
  'ipv4/neigh/default/gc_thresh2',
  'ipv4/neigh/default/gc_thresh3',
  'ipv6/neigh/default/gc_thresh1',
  'ipv6/neigh/default/gc_thresh2',
  'ipv6/neigh/default/gc_thresh3',
];
const current = () => keys.map((k) => readFileSync(`/proc/sys/net/${k}`, 'utf8').trim()).join(' ');
const otherRaisers = (except: string) =>
  readdirSync(MARKER_DIR).filter(
    (m) => m !== except && !m.startsWith('.') && /^neigh_orig=/m.test(readFileSync(join(MARKER_DIR, m), 'utf8')),
  );

describe.skipIf(skip)('neighbour table limits for large runs', () => {
  it('raises them for 17 hosts, records the originals in the marker, and puts them back', async () => {
    const before = current();
    const hosts = await createHosts({ count: 17 });
    let marker: string;
    try {
      marker = readFileSync(join(MARKER_DIR, hosts.prefix), 'utf8');
      const thresh3 = Number(readFileSync('/proc/sys/net/ipv4/neigh/default/gc_thresh3', 'utf8'));
      expect(thresh3).toBeGreaterThanOrEqual(17 * 16 * 2);
      expect(Number(readFileSync('/proc/sys/net/ipv6/neigh/default/gc_thresh3', 'utf8'))).toBeGreaterThanOrEqual(17 * 16 * 2);
    } finally {
      await hosts.destroy();
    }
    const orig = /^neigh_orig=(.*)$/m.exec(marker)?.[1];
    // Raised by this run (or an earlier one still alive, whose originals it copied).
    if (orig !== undefined && otherRaisers(hosts.prefix).length === 0) expect(current()).toBe(orig);
    if (orig === undefined) expect(current()).toBe(before); // limits were already high enough: untouched
  }, 180_000);
});
