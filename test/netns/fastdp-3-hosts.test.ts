/**
 * fastdp on three real hosts, no password: h1 and h2 carry each other's frames in the kernel's VXLAN; h3's UDP 6784
 * is blocked with iptables, so every path to it stays on the sleeve. Steps run in order and share the hosts. A
 * stranger's forged heartbeats (test/netns/fixtures/fastdp-forge.mjs) are counted and change nothing.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { netnsSkipReason, type TestContainer, type TestHost } from '../harness/hosts.js';
import { join } from 'node:path';
import { builtSkipReason, canPing, repoRoot, waitFor, type WeftHost } from '../harness/weft.js';
import { expectTcpTransfer, startNetwork, weftNetwork } from '../harness/network.js';
import { macOf } from './fixtures/underlay-capture.js';

const skip = netnsSkipReason() ?? builtSkipReason();

const cip = (i: number) => `10.98.1.${i}`;
const BROADCAST = '10.98.1.255';
const BLOCK_6784 = ['-p', 'udp', '--dport', '6784', '-j', 'DROP'];

/** What carries `to`'s frames at router `w` ('fastdp' | 'sleeve'), and why. */
async function carrierOf(w: WeftHost, nickname: string): Promise<{ carrier?: string; reason?: string }> {
  const r = await w.report();
  const conn = r.router.connections.find((c) => c.nickname === nickname && c.state === 'established');
  return { carrier: conn?.carrier, reason: conn?.carrierReason };
}

/** Bytes the host's VXLAN data device sent (`tx`) or received (`rx`) so far. */
async function vxlanBytes(host: TestHost, direction: 'tx' | 'rx' = 'tx'): Promise<number> {
  return Number((await host.exec('cat', [`/sys/class/net/weft-vx/statistics/${direction}_bytes`])).trim());
}

/** Broadcast 3 pings from `from`; return how many echo requests to the broadcast address each of `to` saw. */
async function broadcastCounts(from: TestContainer, to: TestContainer[]): Promise<number[]> {
  const dumps = to.map((ct) => {
    const child = ct.spawn('tcpdump', ['-n', '-l', '-i', 'ethwe0', `icmp[icmptype] = icmp-echo and dst host ${BROADCAST}`]);
    let out = '';
    let err = '';
    child.stdout?.on('data', (d) => (out += String(d)));
    child.stderr?.on('data', (d) => (err += String(d)));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    return { child, exited, out: () => out, isListening: () => err.includes('listening on') };
  });
  try {
    await waitFor('tcpdump to listen', () => dumps.every((d) => d.isListening()), 15_000, 100);
    await from.exec('ping', ['-b', '-c', '3', '-i', '0.3', '-W', '1', BROADCAST]).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    for (const d of dumps) d.child.kill('SIGINT');
    await Promise.all(dumps.map((d) => d.exited));
  }
  return dumps.map(
    (d) =>
      d
        .out()
        .split('\n')
        .filter((l) => l.includes('ICMP echo request')).length,
  );
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip)('fastdp on 3 hosts, h3 with UDP 6784 blocked', () => {
  const net = weftNetwork(3, { env: { WEFT_NO_FASTDP: '0' } });
  const c: TestContainer[] = [];
  const w = (i: number) => net.weft[i - 1]!;

  beforeAll(async () => {
    await net.hosts.host(3).exec('iptables', ['-w', '5', '-I', 'INPUT', ...BLOCK_6784]);
    c.push(...(await startNetwork(net, cip)));
    try {
      await waitFor(
        'h1 and h2 on fastdp to each other',
        async () => (await carrierOf(w(1), 'h2')).carrier === 'fastdp' && (await carrierOf(w(2), 'h1')).carrier === 'fastdp',
        20_000,
      );
    } catch (err) {
      for (const x of net.weft) console.log(`h${x.host.index}:\n${x.logTail(40)}\n${JSON.stringify((await x.report()).datapath.peers)}`);
      throw err;
    }
  });

  it('shows fastdp between h1 and h2, and the sleeve (with the reason) to and from h3', async () => {
    for (const [at, to] of [
      [1, 'h3'],
      [2, 'h3'],
      [3, 'h1'],
      [3, 'h2'],
    ] as const) {
      const k = await waitFor(`h${at} to give up on fastdp to ${to}`, async () => {
        const x = await carrierOf(w(at), to);
        return x.carrier === 'sleeve' && /no heartbeat answered/.test(x.reason ?? '') ? x : undefined;
      });
      expect(k!.reason).toMatch(/UDP 6784/);
    }
    const lines = await w(1).run(['status', 'connections']);
    expect(lines).toMatch(/established\s+unencrypted fastdp \S+\(h2\)/);
    expect(lines).toMatch(/established\s+unencrypted sleeve \(no heartbeat answered on UDP 6784.*\) \S+\(h3\)/);
    expect(await w(1).run(['status'])).toMatch(/FastDP: UDP 6784, 1 of 2 peers/);
  });

  it('every container pings every other', async () => {
    for (let i = 1; i <= 3; i++) {
      for (let j = 1; j <= 3; j++) {
        if (i !== j) expect(await waitFor(`c${i} -> c${j}`, () => canPing(c[i - 1]!, cip(j)), 15_000)).toBe(true);
      }
    }
  });

  it('delivers one broadcast exactly once to every other container, from a fastdp host and from the sleeve-only host', async () => {
    expect(await broadcastCounts(c[0]!, [c[1]!, c[2]!])).toEqual([3, 3]);
    expect(await broadcastCounts(c[2]!, [c[0]!, c[1]!])).toEqual([3, 3]);
  });

  it('carries a checksummed 100 MB TCP transfer from c1 to c2 in the kernel, not the sleeve', async () => {
    const before = await vxlanBytes(net.hosts.host(1));
    const sleeveBefore = (await w(1).report()).datapath.counters['bytes_out'] ?? 0;
    await expectTcpTransfer(c[0]!, c[1]!, cip(2), 100, 5201);
    const sent = (await vxlanBytes(net.hosts.host(1))) - before;
    const sleeveSent = ((await w(1).report()).datapath.counters['bytes_out'] ?? 0) - sleeveBefore;
    console.log(`100 MB c1 -> c2: VXLAN device sent ${sent} bytes, the sleeve ${sleeveSent}`);
    expect(sent).toBeGreaterThan(100 * 1024 * 1024);
    expect(sleeveSent).toBeLessThan(10 * 1024 * 1024);
  });

  it('moves h3 to fastdp by itself within a minute once UDP 6784 is unblocked', async () => {
    await net.hosts.host(3).exec('iptables', ['-w', '5', '-D', 'INPUT', ...BLOCK_6784]);
    for (const [at, to] of [
      [1, 'h3'],
      [3, 'h1'],
      [3, 'h2'],
      [2, 'h3'],
    ] as const) {
      await waitFor(`h${at} on fastdp to ${to}`, async () => (await carrierOf(w(at), to)).carrier === 'fastdp', 60_000, 500);
    }
    expect(await canPing(c[0]!, cip(3))).toBe(true);
    expect(await broadcastCounts(c[2]!, [c[0]!, c[1]!])).toEqual([3, 3]);
  });

  it('sends unicast to the one peer behind the MAC (learned from its heartbeats), not to every fastdp peer', async () => {
    const [h1, h2, h3] = [1, 2, 3].map((i) => net.hosts.host(i));
    const mac2 = await macOf(c[1]!);
    await waitFor(
      `h1 to point c2's MAC at h2`,
      async () => (await h1!.exec('bridge', ['fdb', 'show', 'dev', 'weft-vx'])).includes(`${mac2} dst ${h2!.ip} self permanent`),
      20_000,
    );
    const rx3 = await vxlanBytes(h3!, 'rx');
    await expectTcpTransfer(c[0]!, c[1]!, cip(2), 20, 5202);
    const seenByH3 = (await vxlanBytes(h3!, 'rx')) - rx3;
    console.log(`20 MB c1 -> c2 with h3 on fastdp too: h3's VXLAN device received ${seenByH3} bytes`);
    expect(seenByH3).toBeLessThan(2 * 1024 * 1024);
  });

  it('forged heartbeats from a stranger are counted and change nothing: carriers, MAC entries, pids, traffic', async () => {
    const [h1, h2, h3] = [1, 2, 3].map((i) => net.hosts.host(i)) as [TestHost, TestHost, TestHost];
    const mac3 = await macOf(c[2]!);
    const fdb = () => h1.exec('bridge', ['fdb', 'show', 'dev', 'weft-vx']);
    await waitFor(`h1 to point c3's MAC at h3`, async () => (await fdb()).includes(`${mac3} dst ${h3.ip} self permanent`), 20_000);
    const pid = w(1).pid();
    const before = (await w(1).report()).datapath.counters;
    // A stranger: an address no router has, on h3's underlay interface. Its heartbeats name h2 and list c3's MAC.
    const stranger = `${net.hosts.subnet.split('.').slice(0, 3).join('.')}.200`;
    await h3.exec('ip', ['addr', 'add', `${stranger}/24`, 'dev', 'eth0']);
    let sent: { garbage: number; bad: number; answers: number; asks: number };
    try {
      const [n1, n2] = [(await w(1).report()).router.name, (await w(2).report()).router.name];
      const args = [stranger, h1.ip, '6784', n1, n2, mac3, '20'];
      sent = JSON.parse((await h3.exec(process.execPath, [join(repoRoot, 'test/netns/fixtures/fastdp-forge.mjs'), ...args])).trim());
    } finally {
      await h3.exec('ip', ['addr', 'del', `${stranger}/24`, 'dev', 'eth0']);
    }
    expect(sent).toEqual({ garbage: 4, bad: 5, answers: 1000, asks: 20 });
    await new Promise((r) => setTimeout(r, 1500)); // a few real heartbeats after the forgeries
    const r = await w(1).report();
    const delta = (k: string) => (r.datapath.counters[k] ?? 0) - (before[k] ?? 0);
    // Not a heartbeat, or not to h1 (the kernel's own drops of the non-VXLAN garbage are not weft's to count).
    expect(delta('fastdp_heartbeats_bad')).toBe(5);
    // No forged answer echoed an ask of h1's; the forged asks were answered (to h2 itself) and changed nothing.
    expect(delta('fastdp_heartbeats_stale')).toBeGreaterThanOrEqual(1000);
    expect(delta('fastdp_heartbeat_asks')).toBeGreaterThanOrEqual(20);
    expect(delta('fastdp_fallbacks')).toBe(0);
    expect(w(1).pid()).toBe(pid);
    expect((await carrierOf(w(1), 'h2')).carrier).toBe('fastdp');
    // c3's MAC still points at h3 (never at h2), c2's at h2.
    const entries = await fdb();
    expect(entries).toContain(`${mac3} dst ${h3.ip} self permanent`);
    expect(entries).not.toContain(`${mac3} dst ${h2.ip}`);
    expect(entries).toContain(`${await macOf(c[1]!)} dst ${h2.ip} self permanent`);
    expect(await canPing(c[0]!, cip(3))).toBe(true);
    expect(await canPing(c[0]!, cip(2))).toBe(true);
  });

  it('falls back to the sleeve when heartbeats stop, and keeps carrying', async () => {
    await net.hosts.host(3).exec('iptables', ['-w', '5', '-I', 'INPUT', ...BLOCK_6784]);
    await waitFor('h1 back on the sleeve to h3', async () => {
      const x = await carrierOf(w(1), 'h3');
      return x.carrier === 'sleeve' && /heartbeats stopped/.test(x.reason ?? '');
    });
    expect((await w(1).report()).datapath.counters['fastdp_fallbacks']).toBeGreaterThanOrEqual(1);
    expect(await waitFor('c1 -> c3 over the sleeve', () => canPing(c[0]!, cip(3)), 15_000)).toBe(true);
  });

  it('weft stop and weft reset remove the VXLAN devices and their entries', async () => {
    const h1 = net.hosts.host(1);
    expect(await h1.exec('ip', ['-br', 'link', 'show', 'type', 'vxlan'])).toMatch(/weft-vx\b/);
    expect(await h1.exec('bridge', ['fdb', 'show', 'dev', 'weft-vx'])).toMatch(/00:00:00:00:00:00 dst /);
    await w(1).run(['stop'], 15_000);
    expect((await h1.exec('ip', ['-br', 'link', 'show', 'type', 'vxlan'])).trim()).toBe('');
    const h2 = net.hosts.host(2);
    expect(await h2.exec('ip', ['-br', 'link', 'show', 'type', 'vxlan'])).toMatch(/weft-vxh\b/);
    await w(2).run(['reset'], 15_000);
    await waitFor('h2 to stop after weft reset', () => w(2).pid() === undefined || !isAlive(w(2).pid()!), 15_000);
    expect((await h2.exec('ip', ['-br', 'link', 'show', 'type', 'vxlan'])).trim()).toBe('');
  });
});
