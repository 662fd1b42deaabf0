/**
 * TCP through weft under packet loss, two real hosts with a password: 2 % of the sleeve datagrams arriving at h2
 * are dropped at random (iptables statistic), each on its own (UDP segmentation offload off on both underlays, so a
 * drop is one datagram, not a GSO batch of them). A 50 MB transfer between the containers must arrive intact
 * (sha256), and the counters must show the offloaded TCP super-frames travelling as TCP segments, one per datagram
 * (a drop loses one segment: `segment_gaps` on h2), once h2 has reported the loss in its heartbeat-acks (before it, in
 * the first second at most, as pieces). Without loss, h1 sends super-frames whole in pieces (the faster way).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor } from '../harness/weft.js';
import { expectTcpTransfer, startNetwork, weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();

const cip = (i: number) => `10.51.1.${i}`;
const LOSS = '0.02';

describe.skipIf(skip)('TCP through weft under 2 % datagram loss on 2 hosts', () => {
  const net = weftNetwork(2, { env: { WEFT_PASSWORD: 'loss-test-password' } });
  const c: TestContainer[] = [];

  beforeAll(async () => {
    for (const i of [1, 2]) {
      const h = net.hosts.host(i);
      await h.exec('ethtool', ['-K', h.ifname, 'tx-udp-segmentation', 'off']);
    }
    c.push(...(await startNetwork(net, cip)));
    expect(await waitFor('c1 -> c2', () => canPing(c[0]!, cip(2)), 15_000)).toBe(true);
  });

  it('without loss sends TCP super-frames whole, in pieces', async () => {
    const counters = async (i: number) => (await net.weft[i]!.report()).datapath.counters;
    const before = await counters(0);
    await expectTcpTransfer(c[0]!, c[1]!, cip(2), 10, 5400);
    const after = await counters(0);
    const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    console.log(`10 MB without loss: h1 offloaded_out +${delta('offloaded_out')}, segmented_out +${delta('segmented_out')}`);
    expect(delta('offloaded_out'), 'h1 super-frames sent in pieces').toBeGreaterThan(0);
  });

  it('carries 50 MB intact, TCP super-frames as segments once h2 reports loss, and a lost datagram loses one segment', async () => {
    const h2 = net.hosts.host(2);
    const rule = ['INPUT', '-p', 'udp', '--dport', '6783', '-m', 'statistic', '--mode', 'random', '--probability', LOSS, '-j', 'DROP'];
    const counters = async (i: number) => (await net.weft[i]!.report()).datapath.counters;
    const before = [await counters(0), await counters(1)];
    await h2.exec('iptables', ['-w', '5', '-I', ...rule]);
    let dropped: number;
    const started = Date.now();
    try {
      await expectTcpTransfer(c[0]!, c[1]!, cip(2), 50, 5401);
      const listed = await h2.exec('iptables', ['-w', '5', '-L', 'INPUT', '-v', '-n', '-x']);
      dropped = Number(/^\s*(\d+)\s+\d+\s+DROP\s+.*statistic/m.exec(listed)?.[1] ?? 0);
    } finally {
      await h2.exec('iptables', ['-w', '5', '-D', ...rule]).catch(() => undefined);
    }
    const seconds = (Date.now() - started) / 1000;
    const after = [await counters(0), await counters(1)];
    const delta = (i: number, k: string) => (after[i]![k] ?? 0) - (before[i]![k] ?? 0);
    const keys = ['segmented_out', 'segments_out', 'pieces_out', 'offloaded_out', 'loss_reports_in'];
    const rkeys = ['datagrams_missed', 'segment_gaps', 'segments_coalesced', 'coalesced_delivered', 'pieces_in', 'drop_piece_gap'];
    console.log(
      `50 MB under ${Number(LOSS) * 100} % loss in ${seconds.toFixed(1)} s; iptables dropped ${dropped} datagrams; ` +
        `h1 ${keys.map((k) => `${k} +${delta(0, k)}`).join(', ')}; h2 ${rkeys.map((k) => `${k} +${delta(1, k)}`).join(', ')}`,
    );
    expect(dropped, 'datagrams the loss rule dropped').toBeGreaterThan(50);
    expect(delta(0, 'segmented_out'), 'h1 super-frames cut into segments').toBeGreaterThan(0);
    expect(delta(0, 'segments_out'), 'h1 segments sent').toBeGreaterThan(10_000);
    // h2 saw the gaps and reported them; from then on segments carried the transfer (pieces only before the report).
    expect(delta(1, 'datagrams_missed'), 'h2 datagrams found missing').toBeGreaterThan(0);
    expect(delta(0, 'loss_reports_in'), 'h1 loss reports from h2').toBeGreaterThan(0);
    // Pieces carry the first second or so (until h2's first report), so allow some: ci at 64fc60d saw 862 against 90.
    expect(delta(0, 'segmented_out'), 'h1 super-frames as segments, against pieces').toBeGreaterThan(4 * delta(0, 'offloaded_out'));
    // Segments lost in transit show as gaps in the flow being coalesced, and the rest still coalesce.
    expect(delta(1, 'segment_gaps'), 'h2 segment gaps').toBeGreaterThan(0);
    expect(delta(1, 'coalesced_delivered'), 'h2 coalesced frames').toBeGreaterThan(0);
  });
});
