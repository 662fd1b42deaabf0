/**
 * Strangers at the control port of a password network (issue 10, items 3, 7, 8): h1 and h2 are members with
 * containers; h3 runs test/netns/fixtures/control-attacker.mjs; h4 is a member that joins during a flood.
 * - A rogue that replays a member's hello (its name and uid, as any observer sees them) while the real connection
 *   is up does not replace it: the session keeps its age and the containers keep talking.
 * - A client that connects and sends a hello gets the router's hello and nothing else: no key confirmation to
 *   guess the password against offline; a guessed proof is refused with "password mismatch".
 * - A WebSocket upgrade with an Origin header (a browser) is refused with 403 and counted.
 * - A 64 KiB message before the hello closes that one connection with 1009; the mesh is untouched.
 * - A flood of connections from h3 does not stop h4 (another address) from joining.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, repoRoot, waitFor, type WeftHost } from '../harness/weft.js';
import { weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const attacker = join(repoRoot, 'test/netns/fixtures/control-attacker.mjs');
const cip = (i: number) => `10.52.1.${i}`;

describe.skipIf(skip)('control-port attacks on 4 hosts', () => {
  // h4 logs at debug level: its connection maker's 'connect failed' lines say whether h1 ever turned it away.
  const net = weftNetwork(4, {
    env: { WEFT_PASSWORD: 'control-attacks-password-0123' },
    routersOn: [1, 2, 4],
    hostEnv: { 4: { WEFT_LOG_LEVEL: 'debug' } },
  });
  const c: TestContainer[] = [];
  let h1: WeftHost;
  let h2: WeftHost;

  /** Run the attacker on h3 and parse its one JSON line. */
  async function attack(args: string[], timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const out = await net.hosts.host(3).exec(process.execPath, [attacker, ...args], { timeoutMs });
    return JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
  }
  const established = async (w: WeftHost) => (await w.report()).router.connections.filter((x) => x.state === 'established');
  const counters = async (w: WeftHost) => (await w.report()).router.counters as Record<string, number>;

  beforeAll(async () => {
    [h1, h2] = net.weft as [WeftHost, WeftHost];
    await h1.launch();
    await h2.launch();
    for (const i of [1, 2]) {
      const ct = await net.hosts.addContainer(i, 'c1');
      c.push(ct);
      await net.weft[i - 1]!.run(['attach', '--netns', ct.ns, `${cip(i)}/24`]);
    }
  });

  it('keeps a confirmed connection when a stranger replays the peer name and uid; traffic keeps flowing', async () => {
    const [n1, n2] = [(await h1.report()).router, (await h2.report()).router];
    // The router with the greater name dials the smaller: there, a connection "from" the smaller name wins the
    // duplicate tie-break, so a replayed hello would replace the real connection if that were decided before proof.
    const [small, big, smallHost, bigIndex] = n1.name < n2.name ? [n1, h2, 1, 2] : [n2, h1, 2, 1];
    await big.run(['connect', net.hosts.host(smallHost).ip]);
    await waitFor(
      'h1 and h2 to be connected',
      async () => (await established(h1)).length === 1 && (await established(h2)).length === 1,
      30_000,
    );
    expect(await waitFor('c1 -> c2', () => canPing(c[0]!, cip(2)), 15_000)).toBe(true);
    const before = (await established(big))[0]!;
    console.log(`h${bigIndex} dialled h${smallHost}; replaying h${smallHost}'s hello (${small.name}, uid ${small.uid}) at h${bigIndex}`);

    const pinger = c[bigIndex - 1]!.exec('ping', ['-c', '40', '-i', '0.25', '-W', '1', cip(smallHost)], { timeoutMs: 60_000 }).catch(
      (e: Error) => e.message,
    );
    const replay = await attack(['replay', `${net.hosts.host(bigIndex).ip}:6783`, small.name, small.uid, '12']);
    const pingOut = await pinger;
    console.log(`replay: ${JSON.stringify(replay)}\nping: ${String(pingOut).trim().split('\n').slice(-2).join(' | ')}`);

    const after = (await established(big))[0]!;
    expect(after.nickname).toBe(before.nickname);
    // The same session, not a new one: its age only grew (a replaced connection starts again at 0).
    expect(after.sessionAgeSeconds!).toBeGreaterThanOrEqual(before.sessionAgeSeconds! + 8);
    const received = Number(/(\d+) received/.exec(String(pingOut))?.[1] ?? 0);
    expect(received, 'pings answered during the replays').toBeGreaterThanOrEqual(36);
    expect(await canPing(c[bigIndex - 1]!, cip(smallHost))).toBe(true);
  });

  it('gives a client that sends a hello no key confirmation before it proved the password', async () => {
    const r = (await attack(['probe', `${net.hosts.host(1).ip}:6783`])) as {
      beforeProof: number;
      total: number;
      sizes: number[];
      close: { code: number; reason: string };
    };
    console.log(`probe: ${JSON.stringify(r)}`);
    expect(r.beforeProof, "h1's hello and nothing else").toBe(1);
    expect(r.total).toBe(1);
    expect(r.close.reason).toBe('password mismatch');
    expect((await counters(h1)).password_mismatch).toBeGreaterThanOrEqual(1);
  });

  it('refuses a WebSocket upgrade that carries an Origin header (a browser) with 403, and counts it', async () => {
    const r = await attack(['origin', `${net.hosts.host(1).ip}:6783`]);
    expect(r.status).toBe('HTTP/1.1 403 Forbidden');
    expect((await counters(h1)).browser_origin_refused).toBeGreaterThanOrEqual(1);
  });

  it('closes a connection whose first message is 64 KiB with 1009, and only that one', async () => {
    const r = (await attack(['big', `${net.hosts.host(1).ip}:6783`, String(64 * 1024)])) as { close: { code: number } };
    expect(r.close.code).toBe(1009);
    expect((await counters(h1)).handshake_message_too_big).toBeGreaterThanOrEqual(1);
    expect((await established(h1)).map((x) => x.nickname)).toEqual(['h2']);
  });

  it('lets h4 join while h3 floods h1 with connections', async () => {
    const h4 = net.weft[2]!;
    const flood = net.hosts.host(3).spawn(process.execPath, [attacker, 'flood', `${net.hosts.host(1).ip}:6783`, '45', '64']);
    let floodOut = '';
    let floodStarted = false;
    flood.stdout?.on('data', (d) => (floodOut += String(d)));
    flood.stderr?.on('data', (d) => (floodStarted ||= String(d).includes('flooding')));
    const floodDone = new Promise<void>((r) => flood.on('exit', () => r()));
    try {
      await waitFor('the flood to be under way', () => floodStarted, 20_000, 100);
      await new Promise((r) => setTimeout(r, 3000));
      await h4.launch([net.hosts.host(1).ip]);
      await waitFor('h4 to join h1 during the flood', async () => (await established(h4)).some((x) => x.nickname === 'h1'), 20_000, 500);
      const k = await counters(h1);
      console.log(`h1 counters during the flood: ${JSON.stringify(k)}`);
      // Not once turned away: the flood spent only its own address's allowance, never the one h4 needed.
      const turnedAway = readFileSync(join(h4.stateDir, 'weft.log'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('"connect failed"') && /too many|retry later/.test(l));
      expect(turnedAway, 'h4 refused by h1 while joining').toEqual([]);
      expect(k.inbound_rate_limited_address).toBeGreaterThan(20);
    } finally {
      if (flood.exitCode === null && flood.pid) process.kill(flood.pid, 'SIGTERM');
      await floodDone;
      console.log(`flood: ${floodOut.trim()}`);
    }
    expect((await established(h1)).map((x) => x.nickname).sort()).toEqual(['h2', 'h4']);
  });
});
