/**
 * Healing on three real hosts with a password (issue 14): after h3 is isolated for 60 s (both its links cut), the
 * containers ping each other again within 5 s of the links coming back; and with the h1 <-> h3 link cut, so h2
 * relays, a restarted h2 carries traffic within 5 s of `weft launch` returning. The bounds are generous (the
 * benchmark holds the real figures); the measured times are printed. Before the fix the heal waited for a back-off
 * grown to 30-60 s.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor } from '../harness/weft.js';
import { startNetwork, weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();

const cip = (i: number) => `10.49.14.${i}`;
const HEAL_BOUND_MS = 5_000;

/** Milliseconds until `from` pings `toIp`, polling with 1 s pings (bounded by `limitMs`). */
async function msUntilPing(from: TestContainer, toIp: string, limitMs: number): Promise<number> {
  const start = Date.now();
  await waitFor(`${from.name} on h${from.host.index} to ping ${toIp}`, () => canPing(from, toIp), limitMs, 50);
  return Date.now() - start;
}

/** The daemon's log lines (pino JSON) on host `w`. */
function logLines(stateDir: string): Array<Record<string, unknown>> {
  return readFileSync(join(stateDir, 'weft.log'), 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe.skipIf(skip)('healing on 3 hosts', () => {
  const net = weftNetwork(3, { env: { WEFT_PASSWORD: 'heal-password' } });
  const c: TestContainer[] = [];

  beforeAll(async () => {
    c.push(...(await startNetwork(net, cip)));
    expect(await waitFor('c1 -> c3', () => canPing(c[0]!, cip(3)), 20_000)).toBe(true);
  });

  it('after a 60 s isolation of h3, pings cross again within 5 s of the links returning; the loss is a warning', async () => {
    const { hosts, weft } = net;
    await hosts.isolate(3);
    const isolatedAt = Date.now();
    await waitFor(
      'h1 to lose h3',
      async () => !(await weft[0]!.report()).router.connections.some((x) => x.nickname === 'h3' && x.state === 'established'),
      30_000,
    );
    const lostMs = Date.now() - isolatedAt;
    // Both sides keep dialling: h3 (which was given only h1) retries h2 too, every retrying row with its reason.
    // An idle router's data paths are found dead in up to 15 s (idle heartbeats), its control connections 10 s after.
    await waitFor(
      'h3 to retry both peers',
      async () => {
        const rows = (await weft[2]!.report()).router.connections;
        return rows.length === 2 && rows.every((r) => r.state === 'connecting' || (r.state === 'retrying' && r.info.length > 0));
      },
      40_000,
    );
    console.log(`isolated idle h3: h1 lost it after ${lostMs} ms, h3 retried both peers after ${Date.now() - isolatedAt} ms`);
    const text = await weft[2]!.run(['status', 'connections']);
    console.log(`h3 status connections while isolated:\n${text}`);
    await new Promise((r) => setTimeout(r, 60_000));
    await hosts.rejoin(3);
    const [to3, from3] = await Promise.all([msUntilPing(c[0]!, cip(3), 30_000), msUntilPing(c[2]!, cip(2), 30_000)]);
    console.log(`heal after a 60 s isolation: c1 -> c3 ping back ${to3} ms, c3 -> c2 ${from3} ms after the links returned`);
    expect(to3).toBeLessThanOrEqual(HEAL_BOUND_MS);
    expect(from3).toBeLessThanOrEqual(HEAL_BOUND_MS);

    const lost = logLines(weft[0]!.stateDir).filter(
      (l) => l.level === 40 && l.msg === 'lost connection to peer (retrying; logged once per peer per 30 s)',
    );
    expect(lost.some((l) => l.nickname === 'h3' && typeof l.reason === 'string' && typeof l.addr === 'string')).toBe(true);
    // The pings may cross through one peer before h3's other connection is back (ci17: h2 not yet, 39 ms after the
    // links returned): wait for both reconnections to be logged.
    const reconnected = () =>
      new Set(
        logLines(weft[2]!.stateDir)
          .filter((l) => l.level === 30 && l.msg === 'reconnected to peer')
          .map((l) => l.nickname),
      );
    await waitFor('h3 to log reconnecting to h1 and h2', async () => reconnected().has('h1') && reconnected().has('h2'), HEAL_BOUND_MS);
    expect([...reconnected()].sort()).toEqual(['h1', 'h2']);
  }, 180_000);

  it('a restarted relay carries traffic within 5 s of `weft launch` returning', async () => {
    const { hosts, weft } = net;
    await hosts.cut(1, 3);
    await waitFor(
      'h1 to lose its direct connection to h3',
      async () => {
        const r = await weft[0]!.report();
        return !r.router.connections.some((x) => x.nickname === 'h3' && x.state === 'established');
      },
      30_000, // an idle data path is found dead in up to 15 s
    );
    expect(await waitFor('c1 -> c3 via h2', () => canPing(c[0]!, cip(3)), 20_000)).toBe(true);
    await weft[1]!.run(['stop'], 30_000);
    expect(await canPing(c[0]!, cip(3))).toBe(false);
    await weft[1]!.launch([hosts.host(1).ip]);
    const ms = await msUntilPing(c[0]!, cip(3), 30_000);
    console.log(`relay restart: c1 -> c3 through h2 back ${ms} ms after weft launch returned`);
    expect(ms).toBeLessThanOrEqual(HEAL_BOUND_MS);
    await hosts.restore(1, 3);
  }, 120_000);
});
