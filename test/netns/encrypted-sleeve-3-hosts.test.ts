/**
 * Encryption on the wire, three real hosts: with a password, nothing a container sends (payload, inner IP header,
 * inner MACs) shows on the underlay; without one, the same marker is there in the clear, which proves the capture
 * would have caught a leak. Each describe has its own hosts. With a password, h3 offers ChaCha20-Poly1305 only
 * (WEFT_DATA_AEAD=chacha), so on a CPU with AES instructions c1 <-> c2 crosses under AEGIS-256X2 and the pairs with
 * c3 under ChaCha20-Poly1305: both ciphers are checked on the wire.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, netnsSkipReason, type TestContainer, type TestHosts } from '../harness/hosts.js';
import { loadNative } from '../../native/addon.js';
import { builtSkipReason, canPing, waitFor, weftOn, type WeftHost } from '../harness/weft.js';
import {
  ipPairBytes,
  isEncryptedDatagram,
  macBytes,
  macOf,
  newMarker,
  sendMarker,
  sleeveDatagrams,
  startCapture,
} from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason();
/** Whether routers here offer AEGIS-256X2 (x86-64 with AES instructions). */
const hasAes = skip === undefined && loadNative().aegis256x2Implementation() !== '';

/** Container i's overlay address (inside our namespaces only). */
const cip = (i: number) => `10.49.1.${i}`;
const PAIRS: Array<[number, number]> = [
  [1, 2],
  [2, 3],
  [3, 1],
];

interface Mesh {
  hosts: TestHosts;
  runDir: string;
  weft: WeftHost[];
  containers: TestContainer[];
}

/**
 * Three hosts in a mesh (h2, h3 given h1's address), a container c1 on each at 10.49.1.N/24. `hostEnv`: more
 * environment for host N.
 */
async function buildMesh(
  env: Record<string, string>,
  mesh: Partial<Mesh>,
  hostEnv: Record<number, Record<string, string>> = {},
): Promise<void> {
  const hosts = (mesh.hosts = await createHosts({ count: 3 }));
  const runDir = (mesh.runDir = mkdtempSync(join(tmpdir(), `${hosts.prefix}-`)));
  const weft = (mesh.weft = hosts.hosts.map((h) => weftOn(h, runDir, { ...env, ...hostEnv[h.index] })));
  mesh.containers = [];
  await weft[0]!.launch();
  await weft[1]!.launch([hosts.host(1).ip]);
  await weft[2]!.launch([hosts.host(1).ip]);
  for (let i = 1; i <= 3; i++) {
    const ct = await hosts.addContainer(i, 'c1');
    mesh.containers.push(ct);
    await weft[i - 1]!.run(['attach', '--netns', ct.ns, `${cip(i)}/24`]);
  }
  for (const w of weft) {
    await waitFor(
      `h${w.host.index} to have 2 established connections`,
      async () => {
        const r = await w.report();
        return r.router.connections.filter((x) => x.state === 'established').length === 2;
      },
      30_000,
    );
  }
  for (const [a, b] of PAIRS) {
    expect(await waitFor(`c${a} -> c${b}`, () => canPing(mesh.containers![a - 1]!, cip(b)), 15_000)).toBe(true);
  }
}

async function teardown(mesh: Partial<Mesh>): Promise<void> {
  for (const w of mesh.weft ?? []) await w.cleanup().catch(() => undefined);
  await mesh.hosts?.destroy();
  if (mesh.runDir) rmSync(mesh.runDir, { recursive: true, force: true });
}

/**
 * Capture the whole underlay (its bridge) while every container sends a fresh marker to the next one; resolves the
 * capture and the markers sent.
 */
async function captureMarkerTraffic(mesh: Mesh, tag: string): Promise<{ pcap: Buffer; markers: string[] }> {
  const file = join(mesh.runDir, `${tag}.pcap`);
  const capture = await startCapture(mesh.hosts.underlayNs, 'br0', file);
  const markers: string[] = [];
  try {
    for (const [a, b] of PAIRS) {
      const marker = newMarker(`${tag}${a}${b}`);
      markers.push(marker);
      await sendMarker(mesh.containers[a - 1]!, cip(b), marker);
    }
    // Let the last frames cross before tcpdump stops.
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    await capture.stop();
  }
  return { pcap: await capture.stop(), markers };
}

describe.skipIf(skip)('encrypted sleeve on 3 hosts (password on every router)', () => {
  const mesh: Partial<Mesh> = {};

  beforeAll(async () => {
    await buildMesh({ WEFT_PASSWORD: 'correct horse battery staple' }, mesh, { 3: { WEFT_DATA_AEAD: 'chacha' } });
  });
  afterAll(async () => {
    await teardown(mesh);
  });

  it('reports encryption enabled and every connection encrypted', async () => {
    const m = mesh as Mesh;
    for (const w of m.weft) {
      expect(await w.run(['status'])).toMatch(/Encryption:\s+enabled/);
      const r = await w.report();
      expect(r.router.encryption).toBe(true);
      const established = r.router.connections.filter((x) => x.state === 'established');
      expect(established).toHaveLength(2);
      for (const x of established) {
        expect(x.isEncrypted, `h${w.host.index} -> ${x.nickname}`).toBe(true);
        const isAegis = hasAes && w.host.index !== 3 && x.nickname !== 'h3';
        expect(x.dataCipher, `h${w.host.index} -> ${x.nickname}`).toBe(isAegis ? 'AEGIS-256X2' : 'ChaCha20-Poly1305');
      }
      const connections = await w.run(['status', 'connections']);
      expect(connections).toMatch(w.host.index === 3 || !hasAes ? /encrypted \(ChaCha20-Poly1305\)/ : /encrypted \(AEGIS-256X2\)/);
    }
  });

  it('shows no payload, inner IP header or inner MAC on the underlay', async () => {
    const m = mesh as Mesh;
    const macs = await Promise.all(m.containers.map((ct) => macOf(ct)));
    const { pcap, markers } = await captureMarkerTraffic(m, 'enc');

    const sleeve = sleeveDatagrams(pcap);
    const encrypted = sleeve.filter(isEncryptedDatagram);
    console.log(`encrypted capture: ${pcap.length} bytes, ${sleeve.length} sleeve datagrams, ${encrypted.length} encrypted`);
    // The capture saw the sleeve at work (a capture that sees nothing would pass every check below).
    expect(encrypted.length).toBeGreaterThanOrEqual(PAIRS.length * 3);

    for (const marker of markers) expect(pcap.includes(Buffer.from(marker)), `marker ${marker}`).toBe(false);
    expect(pcap.includes(Buffer.from('weftmark-')), 'any marker prefix (ping -p pattern too)').toBe(false);
    for (const [a, b] of PAIRS) {
      expect(pcap.includes(ipPairBytes(cip(a), cip(b))), `inner IP header c${a} -> c${b}`).toBe(false);
      expect(pcap.includes(ipPairBytes(cip(b), cip(a))), `inner IP header c${b} -> c${a}`).toBe(false);
    }
    for (const [i, mac] of macs.entries()) expect(pcap.includes(macBytes(mac)), `inner MAC of c${i + 1} (${mac})`).toBe(false);
  });
});

describe.skipIf(skip)('plain sleeve on 3 hosts (no password): the same capture shows the marker', () => {
  const mesh: Partial<Mesh> = {};

  beforeAll(async () => {
    await buildMesh({}, mesh);
  });
  afterAll(async () => {
    await teardown(mesh);
  });

  it('reports encryption disabled and no connection encrypted', async () => {
    const m = mesh as Mesh;
    for (const w of m.weft) {
      expect(await w.run(['status'])).toMatch(/Encryption:\s+disabled/);
      const r = await w.report();
      for (const x of r.router.connections) expect(x.isEncrypted).toBe(false);
    }
  });

  it('carries the payload, inner IP header and inner MACs in the clear', async () => {
    const m = mesh as Mesh;
    const macs = await Promise.all(m.containers.map((ct) => macOf(ct)));
    const { pcap, markers } = await captureMarkerTraffic(m, 'clr');

    const sleeve = sleeveDatagrams(pcap);
    console.log(`plain capture: ${pcap.length} bytes, ${sleeve.length} sleeve datagrams`);
    expect(sleeve.length).toBeGreaterThanOrEqual(PAIRS.length * 3);
    expect(sleeve.filter(isEncryptedDatagram)).toHaveLength(0);

    for (const marker of markers) expect(pcap.includes(Buffer.from(marker)), `marker ${marker}`).toBe(true);
    for (const [a, b] of PAIRS) expect(pcap.includes(ipPairBytes(cip(a), cip(b))), `inner IP header c${a} -> c${b}`).toBe(true);
    for (const [i, mac] of macs.entries()) expect(pcap.includes(macBytes(mac)), `inner MAC of c${i + 1} (${mac})`).toBe(true);
  });
});
