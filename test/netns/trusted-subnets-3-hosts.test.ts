/**
 * Trusted subnets on three real hosts, all with a password: h1 and h2 trust each other's underlay addresses, h3 is
 * trusted by nobody. Frames between h1 and h2 cross the underlay in the clear; frames to and from h3 stay encrypted.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor } from '../harness/weft.js';
import { startNetwork, weftNetwork } from '../harness/network.js';
import {
  captureMarkers,
  datagramsBetween,
  ipPairBytes,
  isEncryptedDatagram,
  newMarker,
  sleeveDatagrams,
} from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason();

const cip = (i: number) => `10.49.1.${i}`;

describe.skipIf(skip)('trusted subnets on 3 hosts', () => {
  const net = weftNetwork(3, { env: { WEFT_PASSWORD: 'trusted-subnets-password' } });
  const c: TestContainer[] = [];
  let trusted: string[];

  beforeAll(async () => {
    const { hosts } = net;
    trusted = [`${hosts.host(1).ip}/32`, `${hosts.host(2).ip}/32`];
    c.push(...(await startNetwork(net, cip, { launchArgs: (i) => (i <= 2 ? ['--trusted-subnets', trusted.join(',')] : []) })));
    for (const [a, b] of [
      [1, 2],
      [1, 3],
      [2, 3],
    ] as const) {
      expect(await waitFor(`c${a} -> c${b}`, () => canPing(c[a - 1]!, cip(b)), 15_000)).toBe(true);
    }
  });

  it('reports the trusted subnets on h1 and h2, none on h3, and encryption on every router', async () => {
    for (const i of [1, 2]) {
      const r = await net.weft[i - 1]!.report();
      expect(r.router.encryption).toBe(true);
      expect([...r.router.trustedSubnets].sort()).toEqual([...trusted].sort());
    }
    // h1's connections: to h2 control encrypted, data clear; to h3 both encrypted, with the cipher named.
    const r1 = await net.weft[0]!.report();
    const to = (nick: string) => r1.router.connections.find((x) => x.nickname === nick && x.state === 'established')!;
    expect(to('h2')).toMatchObject({ isEncrypted: true, isDataClear: true });
    expect(to('h2').dataCipher).toBeUndefined();
    expect(to('h3').isDataClear).toBeUndefined();
    expect(to('h3').dataCipher).toMatch(/^(AEGIS-256X2|ChaCha20-Poly1305)$/);
    const lines = await net.weft[0]!.run(['status', 'connections']);
    expect(lines).toMatch(/established\s+encrypted control, clear data \(trusted subnet\) (sleeve \(.*\) )?\S+\(h2\)/);
    expect(lines).toMatch(/established\s+encrypted \((AEGIS-256X2|ChaCha20-Poly1305)\) (sleeve \(.*\) )?\S+\(h3\)/);
    const r3 = await net.weft[2]!.report();
    expect(r3.router.trustedSubnets).toEqual([]);
    for (const x of r3.router.connections.filter((y) => y.state === 'established')) expect(x.isEncrypted).toBe(true);
  });

  it('sends h1 <-> h2 in the clear and h1/h2 <-> h3 encrypted', async () => {
    const clear = [newMarker('t12'), newMarker('t21')];
    const secret = [newMarker('t13'), newMarker('t31'), newMarker('t23'), newMarker('t32')];
    const pcap = await captureMarkers(net.hosts.underlayNs, 'br0', join(net.runDir, 'trusted.pcap'), [
      [c[0]!, cip(2), clear[0]!],
      [c[1]!, cip(1), clear[1]!],
      [c[0]!, cip(3), secret[0]!],
      [c[2]!, cip(1), secret[1]!],
      [c[1]!, cip(3), secret[2]!],
      [c[2]!, cip(2), secret[3]!],
    ]);

    const sleeve = sleeveDatagrams(pcap);
    const between = (a: number, b: number) => datagramsBetween(sleeve, net.hosts.host(a).ip, net.hosts.host(b).ip);
    const [d12, d13, d23] = [between(1, 2), between(1, 3), between(2, 3)];
    console.log(
      `capture ${pcap.length} bytes; sleeve datagrams h1-h2 ${d12.length} (${d12.filter(isEncryptedDatagram).length} encrypted), ` +
        `h1-h3 ${d13.length} (${d13.filter(isEncryptedDatagram).length} encrypted), h2-h3 ${d23.length} (${d23.filter(isEncryptedDatagram).length} encrypted)`,
    );
    // The capture saw all three links at work.
    for (const d of [d12, d13, d23]) expect(d.length).toBeGreaterThan(0);

    for (const m of clear) expect(pcap.includes(Buffer.from(m)), `trusted marker ${m}`).toBe(true);
    expect(pcap.includes(ipPairBytes(cip(1), cip(2))), 'inner IP header c1 -> c2').toBe(true);
    for (const m of secret) expect(pcap.includes(Buffer.from(m)), `untrusted marker ${m}`).toBe(false);
    for (const [a, b] of [
      [1, 3],
      [3, 1],
      [2, 3],
      [3, 2],
    ] as const) {
      expect(pcap.includes(ipPairBytes(cip(a), cip(b))), `inner IP header c${a} -> c${b}`).toBe(false);
    }
    expect(d12.filter(isEncryptedDatagram), 'sealed datagrams between trusting h1 and h2').toHaveLength(0);
    expect(d13.filter(isEncryptedDatagram).length).toBeGreaterThan(0);
    expect(d23.filter(isEncryptedDatagram).length).toBeGreaterThan(0);
  });
});
