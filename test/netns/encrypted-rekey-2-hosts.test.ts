/**
 * Rekeying under load, two real hosts with a password and a short rekey interval: a 15-second iperf3 TCP transfer
 * between the containers runs across several data-key changes without an error, on the same connection; then a
 * checked transfer crosses rekeys while the underlay drops 1% of the sleeve datagrams into h2 (loss inside runs of
 * pieces: nothing may fail to open, every byte must arrive).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor } from '../harness/weft.js';
import { expectTcpTransfer, startNetwork, weftNetwork } from '../harness/network.js';
import type { ConnectionReport } from '../../api/control.js';

const skip = netnsSkipReason() ?? builtSkipReason();

const cip = (i: number) => `10.49.1.${i}`;
const REKEY_INTERVAL_MS = 3_000;
const IPERF_SECONDS = 15;

/** Data-path drops a broken key switch would cause (router/sleeve.ts counter names). */
function cryptoDrops(counters: Record<string, number>): number {
  return (counters['drop_no_key'] ?? 0) + (counters['drop_decrypt'] ?? 0) + (counters['drop_replay'] ?? 0);
}

interface IperfResult {
  error?: string;
  end?: { sum_sent?: { bytes: number; retransmits?: number }; sum_received?: { bytes: number } };
}

describe.skipIf(skip)('rekeying under an iperf3 transfer on 2 hosts', () => {
  const net = weftNetwork(2, { env: { WEFT_PASSWORD: 'rekey-test-password', WEFT_REKEY_INTERVAL: String(REKEY_INTERVAL_MS / 1000) } });
  const c: TestContainer[] = [];

  beforeAll(async () => {
    c.push(...(await startNetwork(net, cip)));
    for (const w of net.weft)
      expect((await w.report()).router.connections.every((x) => x.state !== 'established' || x.isEncrypted)).toBe(true);
    expect(await waitFor('c1 -> c2', () => canPing(c[0]!, cip(2)), 15_000)).toBe(true);
  });

  async function connectionToH2(): Promise<ConnectionReport> {
    const r = await net.weft[0]!.report();
    const x = r.router.connections.find((y) => y.nickname === 'h2' && y.state === 'established');
    if (!x) throw new Error(`h1 has no established connection to h2: ${JSON.stringify(r.router.connections)}`);
    return x;
  }

  it('keeps a TCP transfer going across rekeys, on one connection', async () => {
    c[1]!.spawn('iperf3', ['-s', '-1', '-p', '5201'], { stdio: 'ignore' });
    // Its "Server listening" line sits in a pipe buffer; the socket table tells sooner.
    await waitFor(
      'iperf3 server to listen',
      async () => (await c[1]!.exec('ss', ['-Hltn', 'sport = :5201'])).includes('5201'),
      10_000,
      100,
    );

    const before = await connectionToH2();
    const dropsBefore = await Promise.all(net.weft.map(async (w) => cryptoDrops((await w.report()).datapath.counters)));
    const out = await c[0]!.exec('iperf3', ['-c', cip(2), '-p', '5201', '-t', String(IPERF_SECONDS), '-J'], {
      timeoutMs: (IPERF_SECONDS + 30) * 1000,
    });
    const during = await connectionToH2();
    const dropsAfter = await Promise.all(net.weft.map(async (w) => cryptoDrops((await w.report()).datapath.counters)));
    const result = JSON.parse(out) as IperfResult;
    const sent = result.end?.sum_sent?.bytes ?? 0;
    const received = result.end?.sum_received?.bytes ?? 0;
    console.log(
      `iperf3 ${IPERF_SECONDS}s: sent ${sent} B, received ${received} B, retransmits ${result.end?.sum_sent?.retransmits ?? '?'}; ` +
        `rekeyCount ${before.rekeyCount} -> ${during.rekeyCount}, session age ${before.sessionAgeSeconds} -> ${during.sessionAgeSeconds} s`,
    );
    expect(result.error).toBeUndefined();
    expect(sent).toBeGreaterThan(0);
    expect(received).toBeGreaterThan(0);
    // Keys changed while the transfer ran, and the session was not replaced (a new one starts again at 0 rekeys).
    expect(during.rekeyCount ?? 0).toBeGreaterThan(before.rekeyCount ?? 0);
    // Each side installs its new receive key before the other can use it: no datagram finds its key missing.
    expect(dropsAfter, 'drop_no_key + drop_decrypt + drop_replay on h1, h2').toEqual(dropsBefore);

    // At least three rekeys on this connection. Each rekey keeps the previous receive key for its overlap period
    // before the next may start, so this may need a little longer than the transfer itself.
    const last = (await waitFor(
      'rekeyCount >= 3',
      async () => {
        const x = await connectionToH2();
        return (x.rekeyCount ?? 0) >= 3 ? x : undefined;
      },
      45_000,
      500,
    ))!;
    console.log(`rekeyCount ${last.rekeyCount} at session age ${last.sessionAgeSeconds} s`);
    expect(last.rekeyCount).toBeGreaterThanOrEqual(3);
    expect(last.rekeyCount!).toBeGreaterThanOrEqual(during.rekeyCount!);
    expect(await canPing(c[0]!, cip(2), 3)).toBe(true);
  });

  it('carries 40 MB intact across rekeys with 1% of the sleeve datagrams into h2 lost', async () => {
    const h2 = net.hosts.host(2);
    // Inside h2's namespace only, removed in `finally` (and with the namespace if the test dies).
    const rule = ['INPUT', '-p', 'udp', '--dport', '6783', '-m', 'statistic', '--mode', 'random', '--probability', '0.01', '-j', 'DROP'];
    const counters = async (i: number) => (await net.weft[i]!.report()).datapath.counters;
    const before = [await counters(0), await counters(1)];
    const rekeysBefore = (await connectionToH2()).rekeyCount ?? 0;
    await h2.exec('iptables', ['-w', '5', '-I', ...rule]);
    let dropped: number;
    try {
      await expectTcpTransfer(c[0]!, c[1]!, cip(2), 40, 5302);
      await new Promise((r) => setTimeout(r, REKEY_INTERVAL_MS + 500)); // one more key change under loss
      await expectTcpTransfer(c[0]!, c[1]!, cip(2), 10, 5303);
      const listed = await h2.exec('iptables', ['-w', '5', '-L', 'INPUT', '-v', '-n', '-x']);
      dropped = Number(/^\s*(\d+)\s+\d+\s+DROP\s+.*statistic/m.exec(listed)?.[1] ?? 0);
    } finally {
      await h2.exec('iptables', ['-w', '5', '-D', ...rule]).catch(() => undefined);
    }
    const after = [await counters(0), await counters(1)];
    const rekeysAfter = (await connectionToH2()).rekeyCount ?? 0;
    const delta = (i: number, k: string) => (after[i]![k] ?? 0) - (before[i]![k] ?? 0);
    console.log(
      `under 1% loss: iptables dropped ${dropped} packets (each up to a GRO batch of datagrams); h2 drop_piece_gap +${delta(1, 'drop_piece_gap')}, ` +
        `drop_decrypt +${delta(1, 'drop_decrypt')}, drop_replay +${delta(1, 'drop_replay')}, drop_no_key +${delta(1, 'drop_no_key')}; ` +
        `rekeys ${rekeysBefore} -> ${rekeysAfter}`,
    );
    expect(dropped, 'packets the loss rule dropped').toBeGreaterThan(10);
    expect(rekeysAfter).toBeGreaterThan(rekeysBefore);
    for (const i of [0, 1]) {
      expect(delta(i, 'drop_decrypt'), `h${i + 1} drop_decrypt`).toBe(0);
      expect(delta(i, 'drop_no_key'), `h${i + 1} drop_no_key`).toBe(0);
      expect(delta(i, 'drop_replay'), `h${i + 1} drop_replay`).toBe(0);
    }
  });
});
