/**
 * A real router on h1 gets bad control messages from h2 over real WebSocket connections: garbage, a truncated hello,
 * an oversized message, a wrong protocol version, a hello that claims h3's name while h3 is connected, garbage after a
 * good hello. Each connection is refused or closed with a log line; the router keeps serving `weft status` and its
 * real peer.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, netnsSkipReason, type TestHosts } from '../harness/hosts.js';
import { builtSkipReason, dumpLogsOnFailure, repoRoot, waitFor, weftOn, type WeftHost } from '../harness/weft.js';

const skip = netnsSkipReason() ?? builtSkipReason();

describe.skipIf(skip)('bad control input against a real router', () => {
  let hosts: TestHosts;
  let runDir: string;
  let weft: WeftHost[] = [];

  beforeAll(async () => {
    hosts = await createHosts({ count: 3 });
    runDir = mkdtempSync(join(tmpdir(), `${hosts.prefix}-`));
    weft = [weftOn(hosts.host(1), runDir), weftOn(hosts.host(3), runDir)];
    await weft[0]!.launch(['--no-datapath']);
    await weft[1]!.launch(['--no-datapath', hosts.host(1).ip]);
    await waitFor(
      'h1 and h3 connected',
      async () => (await weft[0]!.report()).router.connections.some((c) => c.state === 'established'),
      20_000,
    );
  });

  afterEach((ctx) => dumpLogsOnFailure(ctx, weft));

  afterAll(async () => {
    for (const w of weft) await w.cleanup().catch(() => undefined);
    await hosts?.destroy();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  });

  it('closes every bad connection, logs why, and keeps serving', async () => {
    const h3name = (await weft[1]!.report()).router.name;
    const out = await hosts
      .host(2)
      .exec(process.execPath, [join(repoRoot, 'test/netns/fixtures/ws-garbage.mjs'), `${hosts.host(1).ip}:6783`, h3name], {
        timeoutMs: 90_000,
      });
    const results = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { case: string; closeCode: number | null; closeReason: string });
    expect(results.map((r) => r.case)).toEqual([
      'garbage',
      'truncated',
      'oversized',
      'wrong-version',
      'stolen-name',
      'garbage-after-hello',
    ]);
    for (const r of results) expect(r.closeCode, `${r.case}: ${r.closeReason}`).not.toBeNull();
    expect(results.find((r) => r.case === 'oversized')!.closeCode).toBe(1009);

    const log = readFileSync(join(weft[0]!.stateDir, 'weft.log'), 'utf8');
    expect(log).toMatch(/version/i);
    expect(log).toMatch(new RegExp(`${h3name}.*(used by two|collision)|(used by two|collision).*${h3name}`));
    expect(log).toMatch(/decode|garbage|malformed|truncated/i);

    // Still serving, and the real peer is still connected.
    const status = await weft[0]!.run(['status']);
    expect(status).toContain('Service: router');
    const r = await weft[0]!.report();
    expect(r.router.connections.filter((c) => c.state === 'established').map((c) => c.nickname)).toEqual(['h3']);
    expect(r.router.peers.map((p) => p.nickname).sort()).toEqual(['h1', 'h3']);
  });
});
