/**
 * TAP offloads on two real hosts: h1 takes the kernel's offloads (the default), h2 runs `--no-offload`. TCP must
 * arrive intact both ways: h1 -> h2 as super-frames in pieces that h2 writes whole (its TAP still has the header),
 * h2 -> h1 as ordinary segments. The counters show which path each direction took, so a silent fallback would fail.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, netnsSkipReason, type TestContainer, type TestHosts } from '../harness/hosts.js';
import { builtSkipReason, dumpLogsOnFailure, repoRoot, waitFor, weftOn, type WeftHost } from '../harness/weft.js';
import { isTxChecksumOffloaded } from '../../netdev/offload.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const fixtures = join(repoRoot, 'test/netns/fixtures');
const cip = (i: number) => `10.99.3.${i}`;

describe.skipIf(skip)('offloads on 2 hosts (h2 with --no-offload)', () => {
  let hosts: TestHosts;
  let runDir: string;
  let weft: WeftHost[] = [];
  const c: TestContainer[] = [];

  beforeAll(async () => {
    hosts = await createHosts({ count: 2 });
    runDir = mkdtempSync(join(tmpdir(), `${hosts.prefix}-`));
    weft = hosts.hosts.map((h) => weftOn(h, runDir));
    await weft[0]!.launch();
    await weft[1]!.launch(['--no-offload', hosts.host(1).ip]);
    for (let i = 1; i <= 2; i++) {
      const ct = await hosts.addContainer(i, 'c1');
      c.push(ct);
      await weft[i - 1]!.run(['attach', '--netns', ct.ns, `${cip(i)}/24`]);
    }
    for (const w of weft) {
      await waitFor(`h${w.host.index} to have an established connection`, async () => {
        const r = await w.report();
        return r.router.connections.some((x) => x.state === 'established');
      }, 30_000);
    }
  });

  afterEach((ctx) => dumpLogsOnFailure(ctx, weft));

  afterAll(async () => {
    for (const w of weft) await w.cleanup().catch(() => undefined);
    await hosts?.destroy();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  });

  /** Send `megabytes` of TCP from container `from` to container `to`; both ends' sha256 must match. */
  async function transfer(from: number, to: number, megabytes: number, port: number): Promise<void> {
    const sink = c[to - 1]!.spawn(process.execPath, [join(fixtures, 'tcp-transfer.mjs'), 'sink', String(port)]);
    let sinkOut = '';
    sink.stdout?.on('data', (d) => (sinkOut += String(d)));
    await waitFor('sink to listen', () => sinkOut.includes('listening'), 10_000, 100);
    const sent = (
      await c[from - 1]!.exec(process.execPath, [join(fixtures, 'tcp-transfer.mjs'), 'source', cip(to), String(port), String(megabytes)], {
        timeoutMs: 120_000,
      })
    ).trim();
    await waitFor('sink to finish', () => sinkOut.trim().split('\n').length >= 2, 30_000, 100);
    expect(sent.startsWith(`${megabytes * 1024 * 1024} `)).toBe(true);
    expect(sinkOut.trim().split('\n')[1]!.trim()).toBe(sent);
  }

  it('leaves TX offloads on in h1 containers and turns them off in h2 containers', async () => {
    expect(await isTxChecksumOffloaded('ethwe0', { netns: c[0]!.ns })).toBe(true);
    expect(await isTxChecksumOffloaded('ethwe0', { netns: c[1]!.ns })).toBe(false);
    const [r1, r2] = await Promise.all(weft.map((w) => w.report()));
    expect(r1!.datapath.counters['tap_offloads']).toBeGreaterThan(0);
    expect(r2!.datapath.counters['tap_offloads']).toBe(0);
  });

  it('carries 50 MB h1 -> h2 as super-frames that h2 writes whole', async () => {
    await transfer(1, 2, 50, 5301);
    const [r1, r2] = await Promise.all(weft.map((w) => w.report()));
    const d1 = r1!.datapath.counters;
    const d2 = r2!.datapath.counters;
    console.log(`h1 offloaded_out ${d1['offloaded_out']} pieces_out ${d1['pieces_out']}; h2 offloaded_delivered ${d2['offloaded_delivered']}`);
    expect(d1['offloaded_out']).toBeGreaterThan(100);
    expect(d2['offloaded_delivered']).toBeGreaterThan(100);
    expect(d2['drop_offload_unsupported'] ?? 0).toBe(0);
    expect(d2['drop_bad_piece'] ?? 0).toBe(0);
  });

  it('carries 50 MB h2 -> h1 as ordinary segments', async () => {
    const before = (await weft[1]!.report()).datapath.counters;
    await transfer(2, 1, 50, 5302);
    const after = (await weft[1]!.report()).datapath.counters;
    expect(after['offloaded_out']).toBe(before['offloaded_out']);
    expect(after['frames_captured']! - before['frames_captured']!).toBeGreaterThan(30_000); // 50 MB / 1.4 KB
  });
});
