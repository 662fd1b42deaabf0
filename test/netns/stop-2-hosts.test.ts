/**
 * `weft stop` on a real router: the command returns once the daemon has exited (an unreaped zombie counts as exited),
 * its state (IPAM, saved targets) is on disk, and the peer it was connected to is told why ("router stopping") rather
 * than waiting for a heartbeat timeout. Timing is measured by scripts/bench-scale.sh, not here.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHosts, netnsSkipReason, type TestHosts } from '../harness/hosts.js';
import { builtSkipReason, dumpLogsOnFailure, waitFor, weftOn, type WeftHost } from '../harness/weft.js';
import { isProcessAlive } from '../../cli/launch.js';

const skip = netnsSkipReason() ?? builtSkipReason();

describe.skipIf(skip)('weft stop', () => {
  let hosts: TestHosts;
  let runDir: string;
  let weft: WeftHost[] = [];

  beforeAll(async () => {
    hosts = await createHosts({ count: 2 });
    runDir = mkdtempSync(join(tmpdir(), `${hosts.prefix}-`));
    weft = [
      weftOn(hosts.host(1), runDir, { WEFT_PASSWORD: `pw-${hosts.prefix}` }),
      weftOn(hosts.host(2), runDir, { WEFT_PASSWORD: `pw-${hosts.prefix}` }),
    ];
    await weft[0]!.launch(['--no-datapath', '--ipalloc-range', '10.40.0.0/16']);
    await weft[1]!.launch(['--no-datapath', '--ipalloc-range', '10.40.0.0/16', hosts.host(1).ip]);
    await waitFor(
      'h1 and h2 connected',
      async () => (await weft[0]!.report()).router.connections.some((c) => c.state === 'established'),
      30_000,
    );
  }, 120_000);

  afterEach((ctx) => dumpLogsOnFailure(ctx, weft));

  afterAll(async () => {
    for (const w of weft) await w.cleanup().catch(() => undefined);
    await hosts?.destroy();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
  });

  it('exits, keeps its state, and tells its peer why', async () => {
    const pid = weft[1]!.pid();
    expect(pid).toBeGreaterThan(0);
    await weft[1]!.run(['connect', hosts.host(1).ip]); // saved targets: what `connect` gave
    await weft[1]!.run(['stop']);
    expect(isProcessAlive(pid!)).toBe(false);
    expect(weft[1]!.pid()).toBeUndefined();
    expect(existsSync(join(weft[1]!.stateDir, 'ipam'))).toBe(true);
    expect(readFileSync(join(weft[1]!.stateDir, 'targets'), 'utf8')).toContain(hosts.host(1).ip);

    await waitFor(
      'h1 sees h2 gone',
      async () => !(await weft[0]!.report()).router.connections.some((c) => c.state === 'established'),
      30_000,
    );
    const log = readFileSync(join(weft[0]!.stateDir, 'weft.log'), 'utf8');
    expect(log).toMatch(/connection closed.*router stopping|router stopping.*connection closed/);
    expect(log).not.toMatch(/heartbeat timeout/);
  }, 120_000);
});
