/**
 * fastdp in a mixed mesh on three real hosts, all with a password: h1 and h2 trust each other's underlay addresses
 * (--trusted-subnets), so their data is clear and goes on fastdp; h3 is trusted by nobody, so every link to it stays
 * on the encrypted sleeve and no payload to or from it is readable on the underlay.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor, type WeftHost } from '../harness/weft.js';
import { startNetwork, weftNetwork } from '../harness/network.js';
import { readUdpDatagrams } from './fixtures/pcap.mjs';
import {
  captureMarkers,
  datagramsBetween,
  ipPairBytes,
  isEncryptedDatagram,
  newMarker,
  sleeveDatagrams,
} from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason();

const cip = (i: number) => `10.97.1.${i}`;

async function carrierOf(w: WeftHost, nickname: string): Promise<{ carrier?: string; reason?: string }> {
  const conn = (await w.report()).router.connections.find((c) => c.nickname === nickname && c.state === 'established');
  return { carrier: conn?.carrier, reason: conn?.carrierReason };
}

describe.skipIf(skip)('fastdp with trusted subnets and a password on 3 hosts', () => {
  const net = weftNetwork(3, { env: { WEFT_PASSWORD: 'fastdp-trusted-password', WEFT_NO_FASTDP: '0' } });
  const c: TestContainer[] = [];
  const w = (i: number) => net.weft[i - 1]!;

  beforeAll(async () => {
    const { hosts } = net;
    const trusted = [`${hosts.host(1).ip}/32`, `${hosts.host(2).ip}/32`].join(',');
    c.push(...(await startNetwork(net, cip, { launchArgs: (i) => (i <= 2 ? ['--trusted-subnets', trusted] : []) })));
    await waitFor('h1 and h2 on fastdp to each other', async () => {
      return (await carrierOf(w(1), 'h2')).carrier === 'fastdp' && (await carrierOf(w(2), 'h1')).carrier === 'fastdp';
    });
  });

  it('keeps every link to h3 on the sleeve because it is encrypted, and says so', async () => {
    for (const [at, to] of [
      [1, 'h3'],
      [2, 'h3'],
      [3, 'h1'],
      [3, 'h2'],
    ] as const) {
      expect(await carrierOf(w(at), to)).toEqual({ carrier: 'sleeve', reason: 'encrypted (a password, and not in --trusted-subnets)' });
    }
    const lines = await w(1).run(['status', 'connections']);
    expect(lines).toMatch(/clear data \(trusted subnet\) fastdp \S+\(h2\)/);
    expect(lines).toMatch(/sleeve \(encrypted \(a password, and not in --trusted-subnets\)\) \S+\(h3\)/);
  });

  it('carries h1 <-> h2 in clear VXLAN and h1/h2 <-> h3 sealed: no payload of the h3 links on the underlay', async () => {
    for (let i = 1; i <= 3; i++) {
      for (let j = 1; j <= 3; j++)
        if (i !== j) expect(await waitFor(`c${i} -> c${j}`, () => canPing(c[i - 1]!, cip(j)), 15_000)).toBe(true);
    }
    const clear = [newMarker('f12'), newMarker('f21')];
    const secret = [newMarker('f13'), newMarker('f31'), newMarker('f23'), newMarker('f32')];
    const pcap = await captureMarkers(net.hosts.underlayNs, 'br0', join(net.runDir, 'fastdp-trusted.pcap'), [
      [c[0]!, cip(2), clear[0]!],
      [c[1]!, cip(1), clear[1]!],
      [c[0]!, cip(3), secret[0]!],
      [c[2]!, cip(1), secret[1]!],
      [c[1]!, cip(3), secret[2]!],
      [c[2]!, cip(2), secret[3]!],
    ]);
    const ip = (i: number) => net.hosts.host(i).ip;
    const vxlan = readUdpDatagrams(pcap).filter((d) => d.dstPort === 6784);
    const sleeve = sleeveDatagrams(pcap);
    console.log(
      `capture ${pcap.length} bytes: VXLAN h1-h2 ${datagramsBetween(vxlan, ip(1), ip(2)).length}, ` +
        `sleeve h1-h3 ${datagramsBetween(sleeve, ip(1), ip(3)).length}, h2-h3 ${datagramsBetween(sleeve, ip(2), ip(3)).length}`,
    );
    // h1 <-> h2: the markers cross in the clear, inside VXLAN on 6784, not in the sleeve.
    for (const m of clear)
      expect(
        vxlan.some((d) => d.payload.includes(Buffer.from(m))),
        `marker ${m} in VXLAN`,
      ).toBe(true);
    expect(datagramsBetween(sleeve, ip(1), ip(2)).filter((d) => d.payload.length > 100)).toHaveLength(0);
    // Links to h3: never VXLAN, only sealed sleeve datagrams, and no marker or inner header anywhere.
    for (const k of [1, 2]) {
      expect(datagramsBetween(vxlan, ip(k), ip(3))).toHaveLength(0);
      expect(datagramsBetween(sleeve, ip(k), ip(3)).filter(isEncryptedDatagram).length).toBeGreaterThan(0);
    }
    for (const m of secret) expect(pcap.includes(Buffer.from(m)), `untrusted marker ${m}`).toBe(false);
    for (const [a, b] of [
      [1, 3],
      [3, 1],
      [2, 3],
      [3, 2],
    ] as const) {
      expect(pcap.includes(ipPairBytes(cip(a), cip(b))), `inner IP header c${a} -> c${b}`).toBe(false);
    }
  });
});
