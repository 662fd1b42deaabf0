/**
 * Which addresses learned from gossip (discovery) this router may dial. Gossip comes from other routers, and a
 * router that lies (or, without a password, anyone) must not be able to point us at ourselves or at this host's
 * other services: the API (127.0.0.1:6784 by default), metrics, anything bound to loopback. Addresses the user gave
 * (`weft launch PEER`, `weft connect`) are not checked here: the user may mean anything.
 *
 * Refused: loopback (127/8, ::1, "localhost"), unspecified (0/8, ::, port 0), multicast (224/4, ff00::/8), limited
 * broadcast, link-local (169.254/16, fe80::/10), and any address of this host. Other host names are dialled as
 * given: they came from a router that dialled them itself.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { splitAddress } from '../runtime/address.js';

/** Why a discovered address is not dialled (the counter is `discovery_refused_<reason>`). */
export type DiscoveryRefusal = 'loopback' | 'unspecified' | 'multicast' | 'broadcast' | 'link_local' | 'own_address' | 'unparsable';

/**
 * Null when gossip may make us dial `address` ("host:port"), else why not. `localHosts` holds this host's own
 * addresses, written as `canonicalHost` writes them.
 */
export function discoveryRefusal(address: string, localHosts: ReadonlySet<string>): DiscoveryRefusal | null {
  let host: string;
  let port: number;
  try {
    ({ host, port } = splitAddress(address));
  } catch {
    return 'unparsable';
  }
  if (port === 0) return 'unspecified';
  const canonical = canonicalHost(host);
  const v4 = ipv4Octets(canonical);
  if (v4) {
    const [a, b] = v4;
    if (a === 127) return 'loopback';
    if (a === 0) return 'unspecified';
    if (a >= 224 && a <= 239) return 'multicast';
    if (canonical === '255.255.255.255') return 'broadcast';
    if (a === 169 && b === 254) return 'link_local';
  } else if (isIPv6(canonical)) {
    const h = ipv6Hextets(canonical)!;
    if (h.every((x) => x === 0)) return 'unspecified';
    if (h.slice(0, 7).every((x) => x === 0) && h[7] === 1) return 'loopback';
    if ((h[0]! & 0xff00) === 0xff00) return 'multicast';
    if ((h[0]! & 0xffc0) === 0xfe80) return 'link_local';
  } else if (canonical === 'localhost' || canonical.endsWith('.localhost')) {
    return 'loopback';
  }
  if (localHosts.has(canonical)) return 'own_address';
  return null;
}

/**
 * One spelling per host: lower case, IPv6 fully expanded ("0000:...:0001"), an IPv4-mapped IPv6 address as IPv4, a
 * zone index dropped.
 */
export function canonicalHost(host: string): string {
  const h = host.toLowerCase().replace(/%.*$/, '');
  if (!isIPv6(h)) return h;
  const x = ipv6Hextets(h)!;
  if (x.slice(0, 5).every((v) => v === 0) && x[5] === 0xffff) return `${x[6]! >> 8}.${x[6]! & 0xff}.${x[7]! >> 8}.${x[7]! & 0xff}`;
  return x.map((v) => v.toString(16).padStart(4, '0')).join(':');
}

/** This host's addresses on every interface, canonical. The daemon's `localHosts` for the mesh. */
export function systemLocalHosts(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.push(canonicalHost(a.address));
  return out;
}

function ipv4Octets(host: string): number[] | null {
  return isIPv4(host) ? host.split('.').map(Number) : null;
}

/** The eight 16-bit groups of a valid IPv6 address (with "::" and a dotted IPv4 tail expanded). */
function ipv6Hextets(host: string): number[] | null {
  if (!isIPv6(host)) return null;
  let text = host;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const o = dotted[1]!.split('.').map(Number);
    text = `${text.slice(0, -dotted[1]!.length)}${((o[0]! << 8) | o[1]!).toString(16)}:${((o[2]! << 8) | o[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const a = parse(head);
  const b = parse(tail);
  const fill = tail === undefined ? [] : new Array<number>(8 - a.length - b.length).fill(0);
  return [...a, ...fill, ...b];
}
