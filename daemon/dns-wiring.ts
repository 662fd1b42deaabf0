/**
 * How weftDNS meets the rest of the daemon: where it listens, and the resolver configuration of containers that
 * `weft attach` wires.
 *
 * Listen address (docs/dns.md says why): `--dns-listen-address` when given; otherwise an address of this router on
 * the weft bridge — the first the bridge already has (`weft expose`), else one IPAM allocates for the router
 * itself (ident `weft:dns`) and puts on the bridge. Every container on the bridge in that subnet reaches it on-link,
 * whoever attached it (weft attach, the Docker driver, CNI), without a route or any configuration, and it is
 * distinct per host, so no ARP answer for it comes from another host.
 *
 * Resolver configuration: for a target that is an `ip netns` name, weft writes /etc/netns/NAME/resolv.conf (which
 * `ip netns exec NAME` bind-mounts over /etc/resolv.conf), marked as ours, and removes it at detach. A file the
 * user wrote there is left alone. Targets given as a pid or a path have their own mount namespace, which weft does
 * not touch: `weft dns-args` prints what to give the container instead.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

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
