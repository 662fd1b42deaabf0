/**
 * Control-plane addresses are "host:port" strings (IPv6 hosts in brackets: "[::1]:6783"). This is the one place that
 * splits and joins them, so every folder agrees on the form.
 */
import { WeftError } from '../runtime/errors.js';

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
