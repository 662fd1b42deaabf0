/**
 * Control-plane addresses are "host:port" strings (IPv6 hosts in brackets: "[::1]:6783"). This is the one place that
 * splits and joins them, and tells addresses and host names apart, so every folder (the CLI, the launch config, the
 * mesh) agrees on the form. Depends on nothing of weft but the error base.
 */
import ipaddr from 'ipaddr.js';
import { WeftError } from './errors.js';

/** An address that does not parse as host:port. */
export class AddressError extends WeftError {
  readonly code = 'ERR_ADDRESS';
  constructor(readonly input: string) {
    super(`${JSON.stringify(input.slice(0, 80))} is not a host:port address; write it like 10.0.0.2:6783`);
  }
}

/** Split "host:port"; a bare host gets `defaultPort`. Throws `AddressError` on a bad port or empty host. */
export function splitAddress(address: string, defaultPort?: number): { host: string; port: number } {
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(address);
  if (bracket) {
    host = bracket[1]!;
    portText = bracket[2];
  } else {
    const i = address.lastIndexOf(':');
    if (i >= 0 && address.indexOf(':') === i) {
      host = address.slice(0, i);
      portText = address.slice(i + 1);
    } else if (i < 0) {
      host = address;
    } else {
      host = address; // a bare IPv6 address without brackets: no port
    }
  }
  const port = portText === undefined ? defaultPort : /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (host.length === 0 || port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new AddressError(address);
  }
  return { host, port };
}

/** Join host and port, bracketing IPv6 hosts. */
export function joinAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

// RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens, at most 253 characters.
const hostnamePattern = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** True when `host` (a listen address from the config) is a loopback address (127.0.0.0/8, ::1) or `localhost`. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  if (!isIpAddress(h)) return false;
  return ipaddr.process(h).range() === 'loopback';
}

/** True for an IPv4 address in four-part decimal or an IPv6 address. */
export function isIpAddress(text: string): boolean {
  return ipaddr.IPv4.isValidFourPartDecimal(text) || (text.includes(':') && ipaddr.IPv6.isValid(text));
}

/** True for an IPv4 address in four-part decimal, an IPv6 address, or a host name. */
export function isValidHost(host: string): boolean {
  if (ipaddr.IPv4.isValidFourPartDecimal(host)) return true;
  if (host.includes(':')) return ipaddr.IPv6.isValid(host);
  // All-digit-and-dot strings that are not four-part IPv4 ("10.1", "999.1.1.1") are typos, not host names.
  if (/^[\d.]+$/.test(host)) return false;
  return hostnamePattern.test(host);
}
