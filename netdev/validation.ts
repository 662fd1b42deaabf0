/**
 * Checks on user-given values before any command runs, so a typo fails with `InvalidNetdevInputError` naming the
 * field instead of a half-made device and an `ip` usage message.
 */
import ipaddr from 'ipaddr.js';
import { InvalidNetdevInputError } from './errors.js';

/** Linux IFNAMSIZ is 16 including the NUL; '/', ':' and whitespace are refused by the kernel or confuse `ip`. */
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

/** `ip netns` names become file names under /run/netns: no '/', no leading dot. */
const NETNS_NAME_RE = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/;

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Throw unless `name` is a valid interface name (<= 15 chars, no '/', ':' or spaces, not '.' or '..'). */
export function checkIfname(name: string, field = 'ifname'): string {
  if (typeof name !== 'string' || !IFNAME_RE.test(name) || name === '.' || name === '..') {
    throw new InvalidNetdevInputError(field, name, 'an interface name of 1-15 letters, digits, _ . -');
  }
  return name;
}

/** Throw unless `name` is a valid `ip netns` name. */
export function checkNetnsName(name: string, field = 'netns'): string {
  if (typeof name !== 'string' || !NETNS_NAME_RE.test(name)) {
    throw new InvalidNetdevInputError(field, name, 'a namespace name of letters, digits, _ . - (no /)');
  }
  return name;
}

/** Check the `netns` option: a name, or an absolute path to a namespace file. */
export function checkNetnsOption(netns: string | undefined): void {
  if (netns === undefined) return;
  if (netns.startsWith('/')) return;
  checkNetnsName(netns);
}

/**
 * Parse a CIDR with an address ("10.2.1.1/24", "fd00::1/64") and return it normalised (ipaddr.js form, lower case).
 * The host part is kept: for an interface address it is the address itself.
 */
export function checkCidr(cidr: string, field = 'cidr'): string {
  try {
    if (typeof cidr !== 'string' || !cidr.includes('/')) throw new Error('no prefix length');
    const [addr, bits] = ipaddr.parseCIDR(cidr);
    return `${addr.toString()}/${bits}`;
  } catch {
    throw new InvalidNetdevInputError(field, cidr, 'an address with a prefix length, e.g. 10.2.1.1/24');
  }
}

/** Throw unless `address` is a plain IPv4 or IPv6 address; returns it normalised. */
export function checkAddress(address: string, field = 'address'): string {
  if (typeof address !== 'string' || !ipaddr.isValid(address)) {
    throw new InvalidNetdevInputError(field, address, 'an IPv4 or IPv6 address');
  }
  return ipaddr.parse(address).toString();
}

/**
 * Throw unless `mac` is a unicast Ethernet address in colon form; returns it lower case. A multicast MAC (low bit of
 * the first octet set) on an interface makes the bridge flood its traffic and the kernel refuses it anyway.
 */
export function checkMac(mac: string, field = 'mac'): string {
  const m = typeof mac === 'string' ? mac.toLowerCase() : '';
  if (!MAC_RE.test(m) || (parseInt(m.slice(0, 2), 16) & 1) === 1 || m === '00:00:00:00:00:00') {
    throw new InvalidNetdevInputError(field, mac, 'a unicast MAC such as 02:42:0a:02:01:01');
  }
  return m;
}

/** Throw unless `mtuBytes` is an integer MTU Linux accepts on Ethernet-like devices (68..65535). */
export function checkMtu(mtuBytes: number, field = 'mtuBytes'): number {
  if (!Number.isInteger(mtuBytes) || mtuBytes < 68 || mtuBytes > 65535) {
    throw new InvalidNetdevInputError(field, mtuBytes, 'an integer from 68 to 65535');
  }
  return mtuBytes;
}
