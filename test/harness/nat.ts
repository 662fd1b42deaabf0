/**
 * Two NATed sites and a public host, for the NAT tests in test/netns/nat-*.test.ts. Built on `createHosts` (so its
 * prefix, marker and `destroy()` cover everything here) with five hosts, then rewired:
 *
 *   public underlay 10.<x>.0.0/24 (bridge br0 in <prefix>-ul)
 *     h3 = C        10.<x>.0.3                         the public host
 *     h4 = NAT A    10.<x>.0.4 outside, 10.<x>.1.1 inside (lan0)  MASQUERADE on eth0
 *     h5 = NAT B    10.<x>.0.5 outside, 10.<x>.2.1 inside (lan0)  MASQUERADE on eth0 (--random-fully if asked)
 *   site A: h1 = A  10.<x>.1.2, default route via NAT A
 *   site B: h2 = B  10.<x>.2.2, default route via NAT B
 *
 * Each NAT router forwards what its site sends and only the replies to it (conntrack ESTABLISHED,RELATED); anything
 * unsolicited from outside is dropped (FORWARD and INPUT), as a home or cloud NAT gateway does. Linux keeps the
 * source port when it is free, which behaves like an endpoint-independent ("cone") mapping; `--random-fully` picks a
 * new port per connection, which behaves like a symmetric NAT.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHosts, type TestHost, type TestHosts } from './hosts.js';

const execFileP = promisify(execFile);

export interface NatSitesOptions {
  /** Make NAT B symmetric (`MASQUERADE --random-fully`). @default false */
  isSymmetricB?: boolean;
}

export interface NatSites {
  hosts: TestHosts;
  /** A behind NAT A, B behind NAT B, C public. Their `ip` is their own address (A's and B's are private). */
  a: TestHost;
  b: TestHost;
  c: TestHost;
  natA: TestHost;
  natB: TestHost;
  /** The NATs' public (outside) addresses. */
  natAPublicIp: string;
  natBPublicIp: string;
  /** Forget every NAT mapping of NAT `which` (conntrack -F): the next datagram out gets a new mapping. */
  flushNat(which: 'a' | 'b'): Promise<void>;
  /** Drop (or with `isCut` false, allow again) every datagram between the two NATs' public addresses. */
  cutDirect(isCut: boolean): Promise<void>;
}

export async function createNatSites(options: NatSitesOptions = {}): Promise<NatSites> {
  const hosts = await createHosts({ count: 5 });
  try {
    const x = hosts.subnet.split('.')[1]!;
    const ul = hosts.underlayNs;
    const sh = (ns: string, args: string[]) => hostsExec(hosts, ns, args);
    const site = async (inner: TestHost, nat: TestHost, n: number, isSymmetric: boolean): Promise<TestHost> => {
      const innerIp = `10.${x}.${n}.2`;
      const gw = `10.${x}.${n}.1`;
      // The site host's cable now ends in its NAT router instead of on the public bridge.
      await sh(ul, ['ip', 'link', 'set', `h${inner.index}`, 'nomaster']);
      await sh(ul, ['ip', 'link', 'set', `h${inner.index}`, 'netns', nat.ns]);
      await nat.exec('ip', ['link', 'set', `h${inner.index}`, 'name', 'lan0']);
      await nat.exec('ip', ['addr', 'add', `${gw}/24`, 'dev', 'lan0']);
      await nat.exec('ip', ['link', 'set', 'lan0', 'up']);
      await nat.exec('sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      const masquerade = ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'eth0', '-j', 'MASQUERADE'];
      await nat.exec('iptables', ['-w', '5', ...masquerade, ...(isSymmetric ? ['--random-fully'] : [])]);
      await nat.exec('iptables', ['-w', '5', '-A', 'FORWARD', '-i', 'lan0', '-o', 'eth0', '-j', 'ACCEPT']);
      await nat.exec('iptables', ['-w', '5', '-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT']);
      await nat.exec('iptables', ['-w', '5', '-P', 'FORWARD', 'DROP']);
      await nat.exec('iptables', [
        '-w',
        '5',
        '-A',
        'INPUT',
        '-i',
        'eth0',
        '-m',
        'conntrack',
        '--ctstate',
        'ESTABLISHED,RELATED',
        '-j',
        'ACCEPT',
      ]);
      await nat.exec('iptables', ['-w', '5', '-A', 'INPUT', '-i', 'eth0', '-j', 'DROP']);
      await inner.exec('ip', ['addr', 'flush', 'dev', inner.ifname]);
      await inner.exec('ip', ['addr', 'add', `${innerIp}/24`, 'dev', inner.ifname]);
      await inner.exec('ip', ['route', 'replace', 'default', 'via', gw, 'dev', inner.ifname]);
      return { ...inner, ip: innerIp };
    };
    const natA = hosts.host(4);
    const natB = hosts.host(5);
    const a = await site(hosts.host(1), natA, 1, false);
    const b = await site(hosts.host(2), natB, 2, options.isSymmetricB ?? false);
    let isDirectCut = false;
    return {
      hosts,
      a,
      b,
      c: hosts.host(3),
      natA,
      natB,
      natAPublicIp: natA.ip,
      natBPublicIp: natB.ip,
      flushNat: async (which) => {
        await (which === 'a' ? natA : natB).exec('conntrack', ['-F']).catch(() => undefined);
      },
      cutDirect: async (isCut) => {
        if (isCut === isDirectCut) return;
        isDirectCut = isCut;
        // Drop the other site's traffic both ways in FORWARD: leaving (to its public address) and arriving (from it).
        for (const [nat, other] of [
          [natA, natB],
          [natB, natA],
        ] as const) {
          for (const dir of ['-d', '-s'])
            await nat.exec('iptables', ['-w', '5', isCut ? '-I' : '-D', 'FORWARD', dir, other.ip, '-j', 'DROP']);
        }
      },
    };
  } catch (err) {
    await hosts.destroy();
    throw err;
  }
}

/** Run `args` in namespace `ns` (one of this run's, e.g. the underlay). */
async function hostsExec(_hosts: TestHosts, ns: string, args: string[]): Promise<string> {
  const { stdout } = await execFileP('ip', ['netns', 'exec', ns, ...args], { timeout: 30_000 });
  return stdout;
}
