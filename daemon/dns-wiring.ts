/**
 * How weftDNS meets the rest of the daemon: where it listens, and the resolver configuration of containers that
 * `weft attach` wires.
 *
 * Listen address (docs/dns.md says why): `--dns-listen-address` when given; otherwise an address IPAM allocates for
 * this router (ident `weft:dns`, the same one after a restart), put on the weft bridge as a /32. Every container on
 * the bridge in that subnet reaches it on-link, whoever attached it (weft attach, the Docker driver, CNI), without a
 * route or any configuration, and it is distinct per host, so no ARP answer for it comes from another host.
 *
 * The host is not exposed by it: a /32 brings no subnet route, so the host's own traffic still does not reach the
 * weft network. Only packets sent *from* the DNS address (its answers) are routed to the allocation range over the
 * bridge, by a policy rule (`ip rule from ADDR lookup DNS_ROUTE_TABLE`) and a table holding that one route.
 *
 * Resolver configuration: for a target that is an `ip netns` name, weft writes /etc/netns/NAME/resolv.conf (which
 * `ip netns exec NAME` bind-mounts over /etc/resolv.conf), marked as ours, and removes it at detach. A file the
 * user wrote there is left alone. Targets given as a pid or a path have their own mount namespace, which weft does
 * not touch: `weft dns-args` prints what to give the container instead.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ip } from '../netdev/command.js';

/** The routing table holding the route for weftDNS's answers (any free number; "53" twice). */
export const DNS_ROUTE_TABLE = 53053;
/** Before the main table (32766), after local (0). */
export const DNS_RULE_PRIORITY = 1053;

/**
 * Put `address`/32 on the bridge and route what is sent from it to `range` over the bridge (policy rule + table).
 * Idempotent (a restart after a crash finds them in place).
 */
export async function addDnsAddress(bridge: string, address: string, range: string): Promise<void> {
  const table = String(DNS_ROUTE_TABLE);
  await ip(bridge, ['addr', 'replace', `${address}/32`, 'dev', bridge]);
  await ip(bridge, ['route', 'replace', range, 'dev', bridge, 'src', address, 'table', table]);
  await ip(bridge, ['rule', 'del', 'from', `${address}/32`, 'lookup', table]).catch(() => undefined);
  await ip(bridge, ['rule', 'add', 'from', `${address}/32`, 'lookup', table, 'priority', String(DNS_RULE_PRIORITY)]);
}

/** Undo `addDnsAddress`; what is already gone is fine. */
export async function removeDnsAddress(bridge: string, address: string): Promise<void> {
  const table = String(DNS_ROUTE_TABLE);
  await ip(bridge, ['rule', 'del', 'from', `${address}/32`, 'lookup', table]).catch(() => undefined);
  await ip(bridge, ['route', 'flush', 'table', table]).catch(() => undefined);
  await ip(bridge, ['addr', 'del', `${address}/32`, 'dev', bridge]).catch(() => undefined);
}

/** The first line of every resolv.conf weft writes; only files starting with it are replaced or removed. */
export const RESOLV_MARKER = '# written by weft (weftDNS); removed at weft detach';

/** The IPAM identity of the address weftDNS listens on when weft picks it. */
export const DNS_IDENT = 'weft:dns';

/** resolv.conf text pointing at weftDNS with the domain as search domain. */
export function resolvConfText(listenHost: string, domain: string): string {
  return `${RESOLV_MARKER}\nnameserver ${listenHost}\nsearch ${domain.replace(/\.$/, '')}\noptions ndots:1 timeout:2 attempts:2\n`;
}

/** `docker run` flags that make a container's resolver (Docker's embedded DNS) forward to weftDNS. */
export function dnsArgs(listenHost: string, domain: string): string {
  return `--dns ${listenHost} --dns-search ${domain.replace(/\.$/, '')}`;
}

/** True for a target that names an `ip netns` namespace (not a pid or a path). */
export function isNetnsName(target: string): boolean {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(target) && target !== '.' && target !== '..';
}

/**
 * Write /etc/netns/TARGET/resolv.conf unless the user has one there. Returns true when written. `etcNetns` is for
 * tests.
 */
export function writeNetnsResolvConf(target: string, text: string, etcNetns = '/etc/netns'): boolean {
  if (!isNetnsName(target)) return false;
  const dir = join(etcNetns, target);
  const file = join(dir, 'resolv.conf');
  if (existsSync(file) && !readFileSync(file, 'utf8').startsWith(RESOLV_MARKER)) return false;
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, text);
  return true;
}

/** Remove the resolv.conf weft wrote for TARGET (and the directory, when then empty). */
export function removeNetnsResolvConf(target: string, etcNetns = '/etc/netns'): void {
  if (!isNetnsName(target)) return;
  const dir = join(etcNetns, target);
  const file = join(dir, 'resolv.conf');
  try {
    if (!readFileSync(file, 'utf8').startsWith(RESOLV_MARKER)) return;
    rmSync(file, { force: true });
    if (readdirSync(dir).length === 0) rmdirSync(dir);
  } catch {
    // not there: nothing to remove
  }
}
