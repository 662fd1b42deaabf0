/**
 * weftDNS on three real hosts: containers attached with --name resolve each other by short name and FQDN with a
 * real resolver (dig, and glibc through ping), one name on two containers answers both in turn, names go away on
 * every host after detach and after a partition heals, reverse lookups, an outside name through an upstream server
 * on a test host (the routers read it from the resolv.conf given by WEFT_DNS_RESOLV_CONF), and a large answer over
 * TCP after TC.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsSkipReason, type NamespaceHandle, type TestContainer } from '../harness/hosts.js';
import { builtSkipReason, canPing, repoRoot, waitFor } from '../harness/weft.js';
import { weftNetwork } from '../harness/network.js';
import { removeNetnsResolvConf } from '../../daemon/dns-wiring.js';

const skip = netnsSkipReason() ?? builtSkipReason();
const ipamArgs = ['--ipalloc-range', '10.41.0.0/16', '--ipalloc-init', 'consensus=3'];
const confDir = mkdtempSync(join(tmpdir(), 'weft-dns-netns-'));
const resolvConf = join(confDir, 'resolv.conf');

/** `dig +short ARGS` inside `ns`: the answer lines. */
async function dig(ns: NamespaceHandle, args: string[]): Promise<string[]> {
  const out = await ns.exec('dig', ['+short', '+time=2', '+tries=2', ...args], { timeoutMs: 20_000 });
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith(';'));
}

describe.skipIf(skip)('weftDNS on 3 hosts', () => {
  const net = weftNetwork(3, { env: { WEFT_DNS_RESOLV_CONF: resolvConf } });
  const c: TestContainer[] = [];
  const addr: string[] = [];
  let upstream: ChildProcess | undefined;

  beforeAll(async () => {
    const { hosts, weft } = net;
    // The routers' upstream: a test server on h2's underlay address.
    writeFileSync(resolvConf, `nameserver ${hosts.host(2).ip}\n`);
    upstream = hosts.host(2).spawn(process.execPath, [join(repoRoot, 'test/netns/fixtures/dns-upstream.mjs'), hosts.host(2).ip]);
    let upstreamOut = '';
    upstream.stdout?.on('data', (d) => (upstreamOut += String(d)));
    await waitFor('the upstream test server to listen', () => upstreamOut.includes('listening'), 10_000, 100);

    await weft[0]!.launch(ipamArgs);
    await weft[1]!.launch([...ipamArgs, hosts.host(1).ip]);
    await weft[2]!.launch([...ipamArgs, hosts.host(1).ip]);
    for (const w of weft) await w.run(['prime', '--timeout', '60'], 70_000);
    for (const w of weft) await waitFor(`weftDNS listening on h${w.host.index}`, async () => (await w.report()).dns?.listen, 30_000);
    const names = ['alpha', 'beta', 'gamma'];
    for (let i = 1; i <= 3; i++) {
      const ct = await hosts.addContainer(i, 'c1');
      c.push(ct);
      addr.push((await weft[i - 1]!.run(['attach', '--netns', ct.ns, '--name', names[i - 1]!])).trim().split('/')[0]!);
    }
    for (const w of weft) {
      await waitFor(`h${w.host.index} to know all three names`, async () => (await w.report()).dns?.records.length === 3, 30_000);
    }
  });

  afterAll(() => {
    upstream?.kill();
    rmSync(confDir, { recursive: true, force: true });
    // The routers wrote /etc/netns/NS/resolv.conf for each attached namespace; the harness deletes the namespaces
    // without a detach, so take the files away here.
    for (const ns of net.hosts && existsSync('/etc/netns')
      ? readdirSync('/etc/netns').filter((n) => n.startsWith(`${net.hosts.prefix}-`))
      : [])
      removeNetnsResolvConf(ns);
  });

  it('gives an attached container weftDNS as its resolver with the weft.local search domain', async () => {
    const listen = (await net.weft[0]!.report()).dns!.listen!.split(':')[0]!;
    const conf = await c[0]!.exec('cat', ['/etc/resolv.conf']);
    expect(conf).toContain(`nameserver ${listen}`);
    expect(conf).toContain('search weft.local');
    expect((await net.weft[0]!.run(['dns-args'])).trim()).toBe(`--dns ${listen} --dns-search weft.local`);
    // The address is a /32 on the bridge: the host itself is not exposed to the weft network by it.
    expect(await net.hosts.host(1).exec('ip', ['-4', '-o', 'addr', 'show', 'dev', 'weft'])).toContain(`${listen}/32`);
    expect(await canPing(net.hosts.host(1), addr[0]!, 1)).toBe(false);
  });

  it('resolves every container by short name and by FQDN from every host, and pings by name', async () => {
    const names = ['alpha', 'beta', 'gamma'];
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        expect(await dig(c[i]!, ['+search', names[j]!])).toEqual([addr[j]]);
        expect(await dig(c[i]!, [`${names[j]!.toUpperCase()}.weft.local`])).toEqual([addr[j]]);
      }
    }
    await c[0]!.exec('ping', ['-c', '1', '-W', '3', 'gamma'], { timeoutMs: 20_000 });
    await c[2]!.exec('ping', ['-c', '1', '-W', '3', 'alpha.weft.local'], { timeoutMs: 20_000 });
    expect((await net.weft[1]!.run(['dns-lookup', 'alpha'])).trim()).toBe(addr[0]);
    const status = await net.weft[1]!.run(['status', 'dns']);
    expect(status).toMatch(/alpha\.weft\.local\.\s+\S+\s+\S+ \(h1\)/);
    expect(status).toMatch(/gamma\.weft\.local\.\s+\S+\s+\S+ \(h3\)/);
  });

  it('answers NXDOMAIN for an unknown name (dns-lookup exits 1) and a reverse lookup with the name', async () => {
    const out = await c[1]!.exec('dig', ['+time=2', 'nobody.weft.local'], { timeoutMs: 20_000 });
    expect(out).toContain('status: NXDOMAIN');
    await expect(net.weft[0]!.run(['dns-lookup', 'nobody'])).rejects.toThrow(/no addresses for nobody/);
    expect(await dig(c[0]!, ['-x', addr[1]!])).toEqual(['beta.weft.local.']);
  });

  it('gives both addresses of a name two containers share, in turn; after detach the name is gone on every host', async () => {
    const extra = await net.hosts.addContainer(3, 'c2');
    const second = (await net.weft[2]!.run(['attach', '--netns', extra.ns, '--name', 'alpha'])).trim().split('/')[0]!;
    await waitFor('h2 to see both alphas', async () => (await dig(c[1]!, ['alpha.weft.local'])).length === 2, 15_000);
    const first = await dig(c[1]!, ['alpha.weft.local']);
    const next = await dig(c[1]!, ['alpha.weft.local']);
    expect([...first].sort()).toEqual([addr[0], second].sort());
    expect(next).toEqual([...first].reverse());
    await net.weft[2]!.run(['detach', '--netns', extra.ns]);
    for (let i = 0; i < 3; i++) {
      await waitFor(
        `h${i + 1} to forget the detached alpha`,
        async () => (await dig(c[i]!, ['alpha.weft.local'])).join() === addr[0],
        5_000,
        200,
      );
    }
  });

  it('after a partition heals, h3 forgets a name removed on h1 meanwhile', async () => {
    await net.weft[0]!.run(['dns-add', '10.41.200.1', 'temp']);
    await waitFor('h3 to learn temp', async () => (await net.weft[2]!.run(['dns-lookup', 'temp'])).trim() === '10.41.200.1', 10_000);
    await net.hosts.isolate(3);
    try {
      await net.weft[0]!.run(['dns-remove', 'temp']);
      await waitFor(
        'h2 to forget temp',
        () =>
          net.weft[1]!.run(['dns-lookup', 'temp']).then(
            () => false,
            () => true,
          ),
        10_000,
      );
      expect((await net.weft[2]!.run(['dns-lookup', 'temp'])).trim()).toBe('10.41.200.1');
    } finally {
      await net.hosts.rejoin(3);
    }
    await waitFor(
      'h3 to forget temp after the heal',
      () =>
        net.weft[2]!.run(['dns-lookup', 'temp']).then(
          () => false,
          () => true,
        ),
      120_000,
      1000,
    );
  });

  it('resolves an outside name through the upstream server in the resolv.conf weft runs with', async () => {
    expect(await dig(c[0]!, ['outside.example'])).toEqual(['198.51.100.7']);
    expect(await dig(c[2]!, ['+tcp', 'outside.example'])).toEqual(['198.51.100.7']);
  });

  it('a router killed and launched again publishes its names again and answers as before', async () => {
    net.weft[1]!.kill();
    await new Promise((r) => setTimeout(r, 500));
    await net.weft[1]!.launch([...ipamArgs, net.hosts.host(1).ip]);
    await waitFor('weftDNS listening on h2 again', async () => (await net.weft[1]!.report()).dns?.listen, 60_000);
    await waitFor(
      'h2 to hold beta again',
      async () => (await net.weft[1]!.report()).dns!.records.some((r) => r.name === 'beta.weft.local.'),
      30_000,
    );
    expect(await dig(c[1]!, ['+search', 'gamma'])).toEqual([addr[2]]);
    expect(await dig(c[0]!, ['+search', 'beta'])).toEqual([addr[1]]);
  });

  it('sets TC on a large answer over UDP, and the resolver gets all of it over TCP', async () => {
    const many = Array.from({ length: 60 }, (_, i) => `10.41.201.${i + 1}`);
    await net.weft[1]!.run(['dns-add', ...many, 'many']);
    await waitFor(
      'h1 to learn many',
      async () => (await net.weft[0]!.report()).dns!.records.filter((r) => r.name === 'many.weft.local.').length === 60,
      10_000,
    );
    const out = await c[0]!.exec('dig', ['+noedns', '+time=2', 'many.weft.local'], { timeoutMs: 20_000 });
    expect(out).toContain('Truncated, retrying in TCP mode');
    expect(out.split('\n').filter((l) => /^many\.weft\.local\.\s+\d+\s+IN\s+A\s/.test(l))).toHaveLength(60);
  });
});
