/**
 * Router identities on three real hosts, all with the same password: `weft identity` makes and prints each router's
 * key before launch; h1 and h2 accept only each other (`--authorized-peers`), h3 accepts anyone. h1 and h2 form an
 * encrypted mesh and their containers talk; h3 dials both and is refused by each in the handshake, never appears in
 * anyone's topology, both refusing routers log its key, and h3's targets say it was refused. A router without a
 * password cannot be launched with an allow-list.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { netnsSkipReason, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, waitFor, weftOn, type WeftHost } from '../harness/weft.js';
import { weftNetwork } from '../harness/network.js';

const skip = netnsSkipReason() ?? builtSkipReason();

const cip = (i: number) => `10.51.1.${i}`;
const KEY_RE = /^[A-Za-z0-9+/]{43}=$/;

/** The JSON entries of `<stateDir>/weft.log` whose message is `msg`. */
function logEntries(w: WeftHost, msg: string): Array<Record<string, unknown>> {
  const path = join(w.stateDir, 'weft.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((e) => e['msg'] === msg);
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe.skipIf(skip)('authorized peers on 3 hosts', () => {
  const net = weftNetwork(3, { env: { WEFT_PASSWORD: 'authorized-peers-password' } });
  const c: TestContainer[] = [];
  /** `weft identity` on h1..h3 before launch: first and second run. */
  const keys: string[] = [];
  const keysAgain: string[] = [];
  let allowList: string;

  beforeAll(async () => {
    const { hosts, weft } = net;
    for (const w of weft) keys.push((await w.run(['identity'])).trimEnd());
    for (const w of weft) keysAgain.push((await w.run(['identity'])).trimEnd());

    allowList = join(net.runDir, 'authorized-peers');
    writeFileSync(
      allowList,
      ['# routers allowed into the h1/h2 mesh', `${keys[0]} h1`, '', `${keys[1]}   h2 (second router)`, ''].join('\n'),
    );
    const allow = ['--authorized-peers', allowList];
    await weft[0]!.launch(allow);
    await weft[1]!.launch([...allow, hosts.host(1).ip]);
    await weft[2]!.launch([hosts.host(1).ip, hosts.host(2).ip]);
    for (let i = 1; i <= 3; i++) {
      const ct = await hosts.addContainer(i, 'c1');
      c.push(ct);
      await weft[i - 1]!.run(['attach', '--netns', ct.ns, `${cip(i)}/24`]);
    }
    for (const w of weft.slice(0, 2)) {
      await waitFor(
        `h${w.host.index} to have 1 established connection`,
        async () => {
          const r = await w.report();
          return r.router.connections.filter((x) => x.state === 'established').length === 1;
        },
        30_000,
      );
    }
  });

  it('prints one stable 44-character base64 key per router, the one each daemon then uses', async () => {
    expect(keys).toHaveLength(3);
    for (const k of keys) expect(k).toMatch(KEY_RE);
    expect(new Set(keys).size).toBe(3);
    expect(keysAgain).toEqual(keys);
    for (const [i, w] of net.weft.slice(0, 3).entries()) {
      expect(existsSync(join(w.stateDir, 'identity')), `h${i + 1}'s identity file`).toBe(true);
      const r = await w.report();
      expect(r.router.identity, `h${i + 1}'s report`).toBe(keys[i]);
      expect((await w.run(['identity'])).trimEnd(), `h${i + 1}'s identity after launch`).toBe(keys[i]);
    }
  });

  it("lets h1 and h2 (listed in each other's allow-list) connect, encrypted, and their containers talk", async () => {
    const [r1, r2] = [await net.weft[0]!.report(), await net.weft[1]!.report()];
    for (const [r, other] of [
      [r1, 'h2'],
      [r2, 'h1'],
    ] as const) {
      const est = r.router.connections.filter((x) => x.state === 'established');
      expect(est.map((x) => x.nickname)).toEqual([other]);
      expect(est[0]!.isEncrypted).toBe(true);
      expect(est[0]!.identity, `the key ${other} showed`).toBe(keys[other === 'h1' ? 0 : 1]);
      expect(r.router.encryption).toBe(true);
      expect(r.router.authorizedPeers).toBe(2);
      expect(r.router.peers.map((p) => p.nickname).sort()).toEqual(['h1', 'h2']);
    }
    expect(await waitFor('c1 -> c2', () => canPing(c[0]!, cip(2)), 15_000)).toBe(true);
    expect(await waitFor('c2 -> c1', () => canPing(c[1]!, cip(1)), 15_000)).toBe(true);
  });

  it('refuses h3 (not listed) on h1 and h2: logged with its key, absent from every topology, reported on h3', async () => {
    const h3 = net.hosts.host(3);
    for (const w of net.weft.slice(0, 2)) {
      const why = new RegExp(
        `^peer h3 \\(${escape(h3.ip)}:\\d+\\) refused: its identity ${escape(keys[2]!)} is not in --authorized-peers$`,
      );
      const refusals = await waitFor(
        `h${w.host.index} to log refusing h3`,
        () => {
          const l = logEntries(w, 'handshake refused').filter((e) => why.test(String(e['reason'])));
          return l.length > 0 ? l : undefined;
        },
        30_000,
      );
      console.log(`h${w.host.index}: ${JSON.stringify(refusals![0]).slice(0, 400)}`);
      expect(refusals![0]).toMatchObject({ level: 50, code: 'ERR_UNAUTHORIZED_PEER', nickname: 'h3' });
    }

    // h3's side: its targets h1 and h2 say they refused it, and why.
    const r3 = await waitFor(
      'h3 to report both targets refused us',
      async () => {
        const r = await net.weft[2]!.report();
        const refused = r.router.targets.filter((t) => /refused us: our identity is not in its --authorized-peers/.test(t.lastError ?? ''));
        return refused.length === 2 ? r : undefined;
      },
      30_000,
    );
    for (const i of [1, 2]) {
      const t = r3!.router.targets.find((x) => x.address.startsWith(`${net.hosts.host(i).ip}:`));
      expect(t, `h3's target h${i}`).toBeDefined();
      expect(t!.state).not.toBe('connected');
      expect(t!.lastError).toMatch(
        new RegExp(`^peer h${i} \\(${escape(net.hosts.host(i).ip)}:\\d+\\) refused us: our identity is not in its --authorized-peers`),
      );
    }
    // And h3's own log says so, as an error (only the refusing side checks identities).
    const own = readFileSync(join(net.weft[2]!.stateDir, 'weft.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e['code'] === 'ERR_UNAUTHORIZED_PEER');
    expect(own.length, "h3's log lines for the refusal").toBeGreaterThan(0);
    expect(own[0]).toMatchObject({ level: 50 });
    expect(String(own[0]!['msg'])).toMatch(/refused us: our identity is not in its --authorized-peers/);
    const targets = await net.weft[2]!.run(['status', 'targets']);
    console.log(`h3 status targets:\n${targets.trimEnd()}`);
    expect(targets).toMatch(
      new RegExp(
        `^${escape(net.hosts.host(1).ip)}:\\S*\\s+\\S+\\s+peer h1 .*refused us: our identity is not in its --authorized-peers`,
        'm',
      ),
    );

    // Nobody has h3 in its topology, and h3 has nobody but itself.
    expect(r3!.router.connections.filter((x) => x.state === 'established')).toEqual([]);
    expect(r3!.router.peers.map((p) => p.name)).toEqual([r3!.router.name]);
    expect(r3!.router.authorizedPeers).toBeUndefined();
    for (const w of net.weft.slice(0, 2)) {
      const r = await w.report();
      expect(
        r.router.peers.map((p) => p.name),
        `h${w.host.index}'s peers`,
      ).not.toContain(r3!.router.name);
      expect(
        r.router.peers.map((p) => p.nickname),
        `h${w.host.index}'s peers`,
      ).not.toContain('h3');
      expect(r.router.connections.filter((x) => x.state === 'established').map((x) => x.nickname)).toEqual([
        w.host.index === 1 ? 'h2' : 'h1',
      ]);
    }
    // And no data gets through either way.
    expect(await canPing(c[2]!, cip(1))).toBe(false);
    expect(await canPing(c[0]!, cip(3))).toBe(false);
  });

  it('shows the identity and the allow-list size in weft status', async () => {
    const s1 = await net.weft[0]!.run(['status']);
    expect(s1).toMatch(new RegExp(`^\\s*Identity:\\s+${escape(keys[0]!)}$`, 'm'));
    expect(s1).toMatch(/^\s*AuthorizedPeers:\s+2$/m);
    const s3 = await net.weft[2]!.run(['status']);
    expect(s3).toMatch(new RegExp(`^\\s*Identity:\\s+${escape(keys[2]!)}$`, 'm'));
    expect(s3).not.toMatch(/AuthorizedPeers/);
  });

  it('admits h3 once its key is listed and `weft reload` runs, and drops it again when removed (reload on h1, SIGHUP on h2)', async () => {
    const [h1, h2, h3] = net.weft as [WeftHost, WeftHost, WeftHost];
    const established = async (w: WeftHost) =>
      (await w.report()).router.connections
        .filter((x) => x.state === 'established')
        .map((x) => x.nickname)
        .sort();
    writeFileSync(allowList, `${keys[0]} h1\n${keys[1]} h2\n${keys[2]} h3\n`);
    for (const w of [h1, h2]) expect(await w.run(['reload'])).toBe('3 authorized peers; no connection closed\n');
    await h3.run(['connect', net.hosts.host(1).ip, net.hosts.host(2).ip]); // retry now instead of after the backoff
    await waitFor('h3 to connect to h1 and h2', async () => (await established(h3)).join() === 'h1,h2', 30_000, 250);
    expect((await h1.report()).router.authorizedPeers).toBe(3);
    expect(await waitFor('c3 -> c1', () => canPing(c[2]!, cip(1)), 15_000)).toBe(true);

    writeFileSync(allowList, `${keys[0]} h1\n${keys[1]} h2\n`);
    const said = await h1.run(['reload']);
    // One connection to h3, or two when h1 and h3 dialled each other at once: the duplicate that lost stays open for
    // its grace period (3 s) and is closed too.
    const h3conn = `h3 \\(${escape(net.hosts.host(3).ip)}:\\d+\\)`;
    expect(said).toMatch(new RegExp(`^2 authorized peers; closed: ${h3conn}(, ${h3conn})?\\n$`));
    await waitFor('h1 to have dropped h3', async () => !(await established(h1)).includes('h3'), 10_000, 250);
    process.kill(h2.pid()!, 'SIGHUP');
    await waitFor('h2 to have dropped h3 on SIGHUP', async () => !(await established(h2)).includes('h3'), 10_000, 250);
    expect((await h2.report()).router.authorizedPeers).toBe(2);
    // h3 keeps trying and keeps being refused.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await established(h3)).toEqual([]);
    expect(await established(h1)).toEqual(['h2']);
    // A file that does not parse is refused and the list in use stays.
    writeFileSync(allowList, 'nonsense\n');
    await expect(h1.run(['reload'])).rejects.toThrow(/line 1: "nonsense" is not a public key.*the list in use stays/s);
    expect((await h1.report()).router.authorizedPeers).toBe(2);
    writeFileSync(allowList, `${keys[0]} h1\n${keys[1]} h2\n`);
  });

  it('refuses to launch with an allow-list but no password, from the flag or the environment', async () => {
    // Own state dirs and ports, no WEFT_PASSWORD: nothing these do can touch h3's router.
    const ports = { WEFT_HTTP_ADDR: '127.0.0.1:6794', WEFT_PORT: '6795' };
    const byFlag = net.track(weftOn(net.hosts.host(3), mkdtempSync(join(net.runDir, 'nopw-flag-')), ports));
    await expect(byFlag.run(['launch', '--nickname', 'nopw', '--authorized-peers', allowList])).rejects.toThrow(
      /--authorized-peers needs a password/,
    );
    const byEnv = net.track(
      weftOn(net.hosts.host(3), mkdtempSync(join(net.runDir, 'nopw-env-')), { ...ports, WEFT_AUTHORIZED_PEERS: allowList }),
    );
    await expect(byEnv.run(['launch', '--nickname', 'nopw'])).rejects.toThrow(/WEFT_AUTHORIZED_PEERS needs a password/);
    for (const w of [byFlag, byEnv]) {
      expect(w.pid(), 'no daemon started').toBeUndefined();
      expect(existsSync(join(w.stateDir, 'identity')), 'no identity made').toBe(false);
    }
    // h3's router did not notice.
    expect((await net.weft[2]!.report()).router.identity).toBe(keys[2]);
  });

  it('gives an unlisted router no password oracle: with a wrong password it hears "unauthorized", as with the right one', async () => {
    // Control plane only (the TAP name is h3's router's), own state dir and ports, a wrong password.
    const probe = net.track(
      weftOn(net.hosts.host(3), mkdtempSync(join(net.runDir, 'wrongpw-')), {
        WEFT_PASSWORD: 'not-the-password',
        WEFT_HTTP_ADDR: '127.0.0.1:6796',
        WEFT_PORT: '6797',
        WEFT_METRICS_ADDR: '127.0.0.1:6798',
        WEFT_NO_DATAPATH: '1',
      }),
    );
    await probe.run(['launch', '--nickname', 'probe', net.hosts.host(1).ip]);
    const said = await waitFor(
      'the probe to be refused by h1',
      async () => {
        const t = (await probe.report()).router.targets.find((x) => x.lastError !== undefined);
        return t?.lastError;
      },
      20_000,
      250,
    );
    // Refused for its identity before any key is compared: nothing says whether the password was right.
    expect(said).toMatch(/refused us: our identity is not in its --authorized-peers/);
    expect(said).not.toMatch(/password/);
    const onH1 = readFileSync(join(net.weft[0]!.stateDir, 'weft.log'), 'utf8');
    const aboutProbe = onH1.split('\n').filter((l) => l.includes('"nickname":"probe"'));
    expect(aboutProbe.some((l) => /is not in --authorized-peers/.test(l))).toBe(true);
    expect(aboutProbe.some((l) => /password mismatch/.test(l))).toBe(false);
  });
});
