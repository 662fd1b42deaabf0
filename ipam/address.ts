/**
 * IPv4 addresses as plain numbers (0 .. 2^32-1) and address ranges as half-open `[start, end)` spans, where `end` may
 * be 2^32. Numbers instead of strings keep the ring and the free lists cheap to compare and split; strings appear only
 * at the edges (parse on the way in, format on the way out).
 */
import ipaddr from 'ipaddr.js';
import { InvalidAddressError } from './errors.js';

/** An IPv4 address as an unsigned 32-bit integer. */
export type Address = number;

/** A half-open span of addresses `[start, end)`; `end` may be 2^32. Empty when `end <= start`. */
export interface AddressRange {
  readonly start: Address;
  readonly end: number;
}

/** A CIDR block: `start` is the network address (host bits cleared), `prefix` 0..32. */
export interface Cidr {
  readonly start: Address;
  readonly prefix: number;
}

/** 2^32, one past the last IPv4 address. */
export const ADDRESS_SPACE_END = 2 ** 32;

/** Parse dotted-quad "10.32.0.1". Throws `InvalidAddressError`. */
export function parseAddress(text: string): Address {
  if (!ipaddr.IPv4.isValidFourPartDecimal(text))
    throw new InvalidAddressError(`${JSON.stringify(text)} is not an IPv4 address (like 10.32.0.1)`);
  const b = ipaddr.IPv4.parse(text).toByteArray();
  return ((b[0]! << 24) >>> 0) + (b[1]! << 16) + (b[2]! << 8) + b[3]!;
}

/** Format as dotted quad. */
export function formatAddress(a: Address): string {
  return `${(a >>> 24) & 255}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

/**
 * Parse "10.32.0.0/12". Host bits are cleared ("10.32.1.7/12" is 10.32.0.0/12) unless `isStrict`, which refuses them.
 * Throws `InvalidAddressError`.
 */
export function parseCidr(text: string, isStrict = false): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new InvalidAddressError(`${JSON.stringify(text)} is not a CIDR (like 10.32.0.0/12)`);
  const addr = parseAddress(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,2}$/.test(prefixText) || Number(prefixText) > 32) {
    throw new InvalidAddressError(`${JSON.stringify(text)} has an invalid prefix length (0..32)`);
  }
  const prefix = Number(prefixText);
  const start = networkOf(addr, prefix);
  if (isStrict && start !== addr)
    throw new InvalidAddressError(`${text} has host bits set; did you mean ${formatCidr({ start, prefix })}?`);
  return { start, prefix };
}

/** Format as "a.b.c.d/p". */
export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.start)}/${c.prefix}`;
}

/** Number of addresses in a block of this prefix length. */
export function blockSize(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** `addr` with the host bits of a /prefix cleared. */
export function networkOf(addr: Address, prefix: number): Address {
  const size = blockSize(prefix);
  return addr - (addr % size);
}

/** The span a CIDR covers. */
export function cidrRange(c: Cidr): AddressRange {
  return { start: c.start, end: c.start + blockSize(c.prefix) };
}

/** Number of addresses in `r` (0 when empty). */
export function rangeSize(r: AddressRange): number {
  return Math.max(0, r.end - r.start);
}

/** Whether `a` lies in `r`. */
export function rangeContains(r: AddressRange, a: Address): boolean {
  return a >= r.start && a < r.end;
}

/** Whether `inner` lies wholly inside `outer` (an empty `inner` always does). */
export function rangeCovers(outer: AddressRange, inner: AddressRange): boolean {
  return inner.end <= inner.start || (inner.start >= outer.start && inner.end <= outer.end);
}

/** The overlap of two spans (possibly empty: check with `rangeSize`). */
export function rangeIntersect(a: AddressRange, b: AddressRange): AddressRange {
  return { start: Math.max(a.start, b.start), end: Math.min(a.end, b.end) };
}

/** "10.32.0.0-10.32.0.255" (inclusive last address), for logs and errors. */
export function formatRange(r: AddressRange): string {
  return r.end <= r.start ? '(empty)' : `${formatAddress(r.start)}-${formatAddress(r.end - 1)}`;
}

/**
 * The addresses `allocate` may hand out in a subnet: all but the network and broadcast addresses, which hosts on
 * that subnet cannot use (for /31 and /32 every address is usable, as RFC 3021 allows).
 */
export function usableRange(c: Cidr): AddressRange {
  const r = cidrRange(c);
  return c.prefix >= 31 ? r : { start: r.start + 1, end: r.end - 1 };
}
