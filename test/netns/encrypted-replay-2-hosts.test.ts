/**
 * Replays and forgeries on the wire, two real hosts with a password: encrypted datagrams captured on h2's underlay
 * interface are sent to h2 again from h1's address (fixtures/udp-replay.mjs), unchanged and with a flipped body byte;
 * h2 drops and counts each, a forgery never marks a seq as seen, and the containers keep talking.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, repoRoot, waitFor } from '../harness/weft.js';
import { startNetwork, weftNetwork } from '../harness/network.js';
import { isEncryptedDatagram, SLEEVE_PORT, sleeveDatagrams, startCapture } from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const replayScript = join(repoRoot, 'test/netns/fixtures/udp-replay.mjs');

const cip = (i: number) => `10.49.1.${i}`;
/** How many captured datagrams each step sends again. */
const REPLAYS = 40;

/** Sum of the data-path counters whose names match `re`. */
function sumCounters(counters: Record<string, number>, re: RegExp): number {
  return Object.entries(counters)
    .filter(([k]) => re.test(k))
    .reduce((s, [, v]) => s + v, 0);
}
/** Replay-window refusals (router/sleeve.ts): a seq seen before, or one too old for the window. */
const REPLAY_DROPS = /^drop_replay$/;
/** Authentication failures (router/sleeve.ts): forged or corrupted. */
const DECRYPT_DROPS = /^drop_decrypt$/;

function dropSummary(counters: Record<string, number>): string {
  return Object.entries(counters)
    .filter(([k, v]) => k.startsWith('drop') && v > 0)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

describe.skipIf(skip)('replayed and forged datagrams on 2 hosts', () => {
  const net = weftNetwork(2, { env: { WEFT_PASSWORD: 'replay-test-password' } });
  const c: TestContainer[] = [];
  let pcapFile: string;

  beforeAll(async () => {
    const { hosts, weft, runDir } = net;
    // One datagram per packet on the wire: with UDP GSO a run of datagrams h1 sends together can reach h2's eth0 (and
    // tcpdump) as one large packet, which replays as one datagram that fails authentication.
    await hosts.host(1).exec('ethtool', ['-K', 'eth0', 'tx-udp-segmentation', 'off']);
    c.push(...(await startNetwork(net, cip)));
    for (const w of weft) expect((await w.report()).router.connections.every((x) => x.state !== 'established' || x.isEncrypted)).toBe(true);
    expect(await waitFor('c1 -> c2', () => canPing(c[0]!, cip(2)), 15_000)).toBe(true);

    // Record what h1 sends h2 while c1 pings c2.
    pcapFile = join(runDir, 'h1-to-h2.pcap');
    const capture = await startCapture(hosts.host(2).ns, 'eth0', pcapFile, [
      'udp',
      'dst',
      'port',
      String(SLEEVE_PORT),
      'and',
      'src',
      'host',
      hosts.host(1).ip,
    ]);
    try {
      await c[0]!.exec('ping', ['-c', String(REPLAYS + 10), '-i', '0.02', '-W', '1', cip(2)], { timeoutMs: 30_000 });
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      const pcap = await capture.stop();
      const encrypted = sleeveDatagrams(pcap).filter(isEncryptedDatagram);
      console.log(`captured ${pcap.length} bytes, ${encrypted.length} encrypted datagrams h1 -> h2`);
    }
  });

  /** Run the replay fixture from h1's namespace at h2; resolves how many datagrams it sent. */
  async function replay(mode: 'replay' | 'flip' | 'flip-ahead', file = pcapFile): Promise<number> {
    const out = await net.hosts
      .host(1)
      .exec(
        process.execPath,
        [replayScript, file, net.hosts.host(1).ip, net.hosts.host(2).ip, String(SLEEVE_PORT), mode, String(REPLAYS)],
        { timeoutMs: 30_000 },
      );
    return (JSON.parse(out.trim()) as { sent: number }).sent;
  }

  it('drops each replayed datagram and counts it as a replay', async () => {
    const before = (await net.weft[1]!.report()).datapath.counters;
    const sent = await replay('replay');
    expect(sent).toBeGreaterThanOrEqual(REPLAYS / 2);
    const base = sumCounters(before, REPLAY_DROPS);
    const after = (await waitFor(
      'h2 to count the replays',
      async () => {
        const now = (await net.weft[1]!.report()).datapath.counters;
        return sumCounters(now, REPLAY_DROPS) - base >= sent ? now : undefined;
      },
      10_000,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; h2 drops now: ${dropSummary((await net.weft[1]!.report()).datapath.counters)}`);
    }))!;
    console.log(`replayed ${sent}; h2 drops before: ${dropSummary(before)}; after: ${dropSummary(after)}`);
    // Every replay is counted once; the real traffic meanwhile (heartbeats) adds no replays.
    expect(sumCounters(after, REPLAY_DROPS) - base).toBe(sent);
    expect(sumCounters(after, DECRYPT_DROPS) - sumCounters(before, DECRYPT_DROPS)).toBe(0);
    expect(await canPing(c[0]!, cip(2), 3)).toBe(true);
  });

  it('drops each datagram with a flipped byte and counts it as a decrypt failure, without moving the replay window', async () => {
    const before = (await net.weft[1]!.report()).datapath.counters;
    const sent = await replay('flip-ahead');
    expect(sent).toBeGreaterThanOrEqual(REPLAYS / 2);
    const base = sumCounters(before, DECRYPT_DROPS);
    const after = (await waitFor(
      'h2 to count the forgeries',
      async () => {
        const now = (await net.weft[1]!.report()).datapath.counters;
        return sumCounters(now, DECRYPT_DROPS) - base >= sent ? now : undefined;
      },
      10_000,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; h2 drops now: ${dropSummary((await net.weft[1]!.report()).datapath.counters)}`);
    }))!;
    console.log(`forged ${sent}; h2 drops before: ${dropSummary(before)}; after: ${dropSummary(after)}`);
    expect(sumCounters(after, DECRYPT_DROPS) - base).toBe(sent);
    // The forgeries claimed seqs 2^32 ahead: had any moved the window, c1's real datagrams would now be stale.
    expect(await canPing(c[0]!, cip(2), 3)).toBe(true);
    expect(await canPing(c[1]!, cip(1), 3)).toBe(true);
  });
  it('refuses a forged copy of a datagram it never received, then still accepts the genuine one once', async () => {
    // Withhold what h1 sends for a moment (dropped in h2's INPUT chain; tcpdump on eth0 still records it).
    const h2 = net.hosts.host(2);
    const rule = ['INPUT', '-s', net.hosts.host(1).ip, '-p', 'udp', '--dport', String(SLEEVE_PORT), '-j', 'DROP'];
    const withheldFile = join(net.runDir, 'withheld.pcap');
    await h2.exec('iptables', ['-w', '5', '-I', ...rule]);
    try {
      const capture = await startCapture(h2.ns, 'eth0', withheldFile, [
        'udp',
        'dst',
        'port',
        String(SLEEVE_PORT),
        'and',
        'src',
        'host',
        net.hosts.host(1).ip,
      ]);
      try {
        await c[0]!.exec('ping', ['-c', '20', '-i', '0.05', '-W', '1', cip(2)], { timeoutMs: 15_000 }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        await capture.stop();
      }
    } finally {
      await h2.exec('iptables', ['-w', '5', '-D', ...rule]);
    }
    expect(await waitFor('c1 -> c2 again', () => canPing(c[0]!, cip(2)), 15_000)).toBe(true);

    // Forged copies of seqs h2 never saw pass the window check and fail authentication.
    const before = (await net.weft[1]!.report()).datapath.counters;
    const forged = await replay('flip', withheldFile);
    expect(forged).toBeGreaterThanOrEqual(10);
    const afterForged = (await waitFor(
      'h2 to count the forgeries',
      async () => {
        const now = (await net.weft[1]!.report()).datapath.counters;
        return sumCounters(now, DECRYPT_DROPS) - sumCounters(before, DECRYPT_DROPS) >= forged ? now : undefined;
      },
      10_000,
    ))!;
    expect(sumCounters(afterForged, DECRYPT_DROPS) - sumCounters(before, DECRYPT_DROPS)).toBe(forged);
    expect(sumCounters(afterForged, REPLAY_DROPS) - sumCounters(before, REPLAY_DROPS)).toBe(0);

    // The forgeries did not mark those seqs as seen: the genuine datagrams are accepted, once.
    const genuine = await replay('replay', withheldFile);
    expect(genuine).toBe(forged);
    const afterGenuine = (await waitFor(
      'h2 to take the genuine datagrams',
      async () => {
        const now = (await net.weft[1]!.report()).datapath.counters;
        return (now['datagrams_in'] ?? 0) - (afterForged['datagrams_in'] ?? 0) >= genuine ? now : undefined;
      },
      10_000,
    ))!;
    console.log(`withheld ${genuine}: forged copies -> drop_decrypt +${forged}; genuine: ${dropSummary(afterGenuine)}`);
    expect(sumCounters(afterGenuine, DECRYPT_DROPS) - sumCounters(afterForged, DECRYPT_DROPS)).toBe(0);
    expect(sumCounters(afterGenuine, REPLAY_DROPS) - sumCounters(afterForged, REPLAY_DROPS)).toBe(0);
    expect((afterGenuine['frames_in'] ?? 0) - (afterForged['frames_in'] ?? 0)).toBeGreaterThan(0);

    await replay('replay', withheldFile);
    await waitFor(
      'the second copies to count as replays',
      async () => {
        const now = (await net.weft[1]!.report()).datapath.counters;
        return sumCounters(now, REPLAY_DROPS) - sumCounters(afterGenuine, REPLAY_DROPS) === genuine;
      },
      10_000,
    );
    expect(await canPing(c[0]!, cip(2), 3)).toBe(true);
  });
});
