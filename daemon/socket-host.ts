/**
 * Which host the control (TCP) and data (UDP) sockets bind for `--listen-addr`.
 *
 * The default, 0.0.0.0, means "every address of this host": where the kernel has IPv6 it becomes `::`, whose sockets
 * are dual-stack (IPV6_V6ONLY off: IPv4 peers arrive as ::ffff:a.b.c.d, and weft reports them in dotted form), so a
 * router takes IPv4 and IPv6 peers on one port. Where IPv6 is off (no /proc/net/if_inet6: a kernel booted with
 * ipv6.disable=1) it stays 0.0.0.0. Any other address is bound as given: an IPv4 one reaches IPv4 peers only.
 */
import { existsSync } from 'node:fs';

/** The host to bind for `listenAddr`; `hasIpv6` is asked only for the wildcard. */
export function socketHost(listenAddr: string, hasIpv6: () => boolean = kernelHasIpv6): string {
  return listenAddr === '0.0.0.0' && hasIpv6() ? '::' : listenAddr;
}

/** Whether this kernel has IPv6 (the file exists exactly when it does). */
export function kernelHasIpv6(): boolean {
  return existsSync('/proc/net/if_inet6');
}
