/**
 * Relaying with a password, three real hosts, the h1 <-> h3 link cut so everything between them crosses h2, which
 * opens each datagram and seals it again for the next hop. h3 offers ChaCha20-Poly1305 only (WEFT_DATA_AEAD=chacha),
 * so where the CPU has AES instructions the first hop is AEGIS-256X2 and the second ChaCha20-Poly1305: h2 re-seals
 * across ciphers. TCP super-frames cross as TCP segments (one per datagram) that h2 relays in sealed runs; the bytes must arrive intact and
 * nothing readable may show on the underlay.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor } from '../harness/weft.js';
import { expectTcpTransfer, startNetwork, weftNetwork } from '../harness/network.js';
import { loadNative } from '../../native/addon.js';
import {
  captureMarkers,
  datagramsBetween,
  ipPairBytes,
  isEncryptedDatagram,
  newMarker,
  sleeveDatagrams,
} from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const hasAes = skip === undefined && loadNative().aegis256x2Implementation() !== '';

const cip = (i: number) => `10.49.3.${i}`;

describe.skipIf(skip)('encrypted relay on 3 hosts (h1 <-> h3 through h2)', () => {
  const net = weftNetwork(3, { env: { WEFT_PASSWORD: 'relay-password' }, hostEnv: { 3: { WEFT_DATA_AEAD: 'chacha' } } });
  const c: TestContainer[] = [];

  beforeAll(async () => {
    const { hosts, weft } = net;
    c.push(...(await startNetwork(net, cip)));
    await hosts.cut(1, 3);
    await waitFor(
      'h1 to lose its direct connection to h3',
      async () => {
        const r = await weft[0]!.report();
        return !r.router.connections.some((x) => x.nickname === 'h3' && x.state === 'established');
      },
      20_000,
    );
    expect(await waitFor('c1 -> c3 via h2', () => canPing(c[0]!, cip(3)), 20_000)).toBe(true);
  });

  it('agrees on a cipher per hop: AEGIS-256X2 between h1 and h2 (with AES), ChaCha20-Poly1305 with h3', async () => {
    const cipherTo = async (host: number, peer: string) =>
      (await net.weft[host - 1]!.report()).router.connections.find((x) => x.nickname === peer && x.state === 'established')?.dataCipher;
    expect(await cipherTo(1, 'h2')).toBe(hasAes ? 'AEGIS-256X2' : 'ChaCha20-Poly1305');
    expect(await cipherTo(2, 'h3')).toBe('ChaCha20-Poly1305');
    expect(await cipherTo(3, 'h2')).toBe('ChaCha20-Poly1305');
  });

  it('carries 30 MB of TCP both ways intact, the relay opening and re-sealing every segment', async () => {
    const counters = async (host: number) => (await net.weft[host - 1]!.report()).datapath.counters;
    // Drops are counted across the transfers only: at launch, two routers dialling each other at once keep one of the
    // two connections, and the few datagrams already sealed under the other's keys fail to open (drop_decrypt).
    const startOf = [await counters(1), await counters(2), await counters(3)];
    const before = startOf[1]!;
    await expectTcpTransfer(c[0]!, c[2]!, cip(3), 30, 5301);
    await expectTcpTransfer(c[2]!, c[0]!, cip(1), 30, 5302);
    const after = await counters(2);
    const relayed =
      (after['frames_forwarded'] ?? 0) -
      (before['frames_forwarded'] ?? 0) +
      (after['pieces_forwarded'] ?? 0) -
      (before['pieces_forwarded'] ?? 0);
    console.log(
      `h2 relayed ${relayed} segments and pieces; h2 drops: seal ${after['drop_seal'] ?? 0}, decrypt ${after['drop_decrypt'] ?? 0}`,
    );
    // 60 MB in segments of at most ~1.4 KB: tens of thousands, all through h2.
    expect(relayed).toBeGreaterThan(20_000);
    for (const host of [1, 2, 3]) {
      const k = await counters(host);
      const k0 = startOf[host - 1]!;
      expect((k['drop_seal'] ?? 0) - (k0['drop_seal'] ?? 0), `h${host} drop_seal`).toBe(0);
      expect((k['drop_decrypt'] ?? 0) - (k0['drop_decrypt'] ?? 0), `h${host} drop_decrypt`).toBe(0);
    }
  });

  it('shows nothing readable on either hop', async () => {
    const markers = [newMarker('r13'), newMarker('r31')];
    const pcap = await captureMarkers(net.hosts.underlayNs, 'br0', join(net.runDir, 'relay.pcap'), [
      [c[0]!, cip(3), markers[0]!],
      [c[2]!, cip(1), markers[1]!],
    ]);
    const sleeve = sleeveDatagrams(pcap);
    const hop = (a: number, b: number) => datagramsBetween(sleeve, net.hosts.host(a).ip, net.hosts.host(b).ip);
    console.log(
      `capture ${pcap.length} bytes; sleeve datagrams h1-h2 ${hop(1, 2).length}, h2-h3 ${hop(2, 3).length}, h1-h3 ${hop(1, 3).length}`,
    );
    // Both hops carried the markers' datagrams, sealed; the cut link carried nothing that reached the other side.
    expect(hop(1, 2).filter(isEncryptedDatagram).length).toBeGreaterThanOrEqual(4);
    expect(hop(2, 3).filter(isEncryptedDatagram).length).toBeGreaterThanOrEqual(4);
    expect(sleeve.filter((d) => !isEncryptedDatagram(d))).toHaveLength(0);
    for (const m of markers) expect(pcap.includes(Buffer.from(m)), `marker ${m}`).toBe(false);
    expect(pcap.includes(ipPairBytes(cip(1), cip(3))), 'inner IP header c1 -> c3').toBe(false);
    expect(pcap.includes(ipPairBytes(cip(3), cip(1))), 'inner IP header c3 -> c1').toBe(false);
  });
});
