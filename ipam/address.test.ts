import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { cidrRange, formatAddress, formatCidr, parseAddress, parseCidr, usableRange } from './address.js';
import { InvalidAddressError } from './errors.js';

describe('address', () => {
  it('parses and formats every IPv4 address the same way back', () => {
    fc.assert(
      fc.property(fc.nat(0xffffffff), (a) => {
        expect(parseAddress(formatAddress(a))).toBe(a);
      }),
    );
    expect(parseAddress('255.255.255.255')).toBe(0xffffffff);
  });

  it('clears host bits of a CIDR unless strict', () => {
    expect(formatCidr(parseCidr('10.32.1.7/12'))).toBe('10.32.0.0/12');
    expect(() => parseCidr('10.32.1.7/12', true)).toThrow(/did you mean 10.32.0.0\/12/);
    expect(cidrRange(parseCidr('0.0.0.0/0'))).toEqual({ start: 0, end: 2 ** 32 });
  });

  it('refuses what is not an address or a CIDR with InvalidAddressError', () => {
    for (const bad of ['10.1.2', '10.1.2.256', '10.1.2.3/33', '10.1.2.3/', 'x/8', '10.1.2.3/-1', '']) {
      expect(() => (bad.includes('/') || bad === '' ? parseCidr(bad) : parseAddress(bad))).toThrow(InvalidAddressError);
    }
  });

  it('leaves out the network and broadcast addresses of a subnet, except /31 and /32', () => {
    expect(usableRange(parseCidr('10.0.0.0/24'))).toEqual({ start: parseAddress('10.0.0.1'), end: parseAddress('10.0.0.255') });
    expect(usableRange(parseCidr('10.0.0.0/31'))).toEqual({ start: parseAddress('10.0.0.0'), end: parseAddress('10.0.0.2') });
  });
});
