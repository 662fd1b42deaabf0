import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { InvalidNetdevInputError } from './errors.js';
import { checkAddress, checkCidr, checkIfname, checkMac, checkMtu, checkNetnsName } from './validation.js';

describe('validation', () => {
  it('accepts interface names up to 15 characters and refuses longer or odd ones', () => {
    expect(checkIfname('vethwl0123abcd')).toBe('vethwl0123abcd');
    for (const bad of ['', 'a'.repeat(16), 'eth 0', 'eth/0', 'eth:0', '..']) {
      expect(() => checkIfname(bad)).toThrow(InvalidNetdevInputError);
    }
  });
  it('normalises CIDRs and refuses addresses without a prefix length', () => {
    expect(checkCidr('10.2.1.1/24')).toBe('10.2.1.1/24');
    expect(checkCidr('FD00::1/64')).toBe('fd00::1/64');
    for (const bad of ['10.2.1.1', '10.2.1.300/24', '10.2.1.1/33', 'net:default', '']) {
      const err = (() => {
        try {
          checkCidr(bad);
        } catch (e) {
          return e;
        }
      })() as InvalidNetdevInputError;
      expect(err).toBeInstanceOf(InvalidNetdevInputError);
      expect(err.code).toBe('INVALID_NETDEV_INPUT');
    }
  });
  it('accepts plain addresses only as addresses', () => {
    expect(checkAddress('10.0.0.1')).toBe('10.0.0.1');
    expect(() => checkAddress('10.0.0.1/24')).toThrow(InvalidNetdevInputError);
  });
  it('accepts unicast MACs and refuses multicast, zero and malformed ones', () => {
    expect(checkMac('02:42:0A:02:01:01')).toBe('02:42:0a:02:01:01');
    for (const bad of ['01:00:5e:00:00:01', '00:00:00:00:00:00', '02:42:0a:02:01', 'zz:42:0a:02:01:01']) {
      expect(() => checkMac(bad)).toThrow(InvalidNetdevInputError);
    }
  });
  it('bounds MTUs to what Linux accepts', () => {
    expect(checkMtu(1412)).toBe(1412);
    for (const bad of [67, 65536, 1500.5, NaN]) expect(() => checkMtu(bad)).toThrow(InvalidNetdevInputError);
  });
  it('refuses namespace names with a slash', () => {
    expect(checkNetnsName('w1a2b-h1-c1')).toBe('w1a2b-h1-c1');
    expect(() => checkNetnsName('a/b')).toThrow(InvalidNetdevInputError);
    expect(() => checkNetnsName('.hidden')).toThrow(InvalidNetdevInputError);
  });
  it('only ever fails with InvalidNetdevInputError on arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        for (const check of [checkIfname, checkCidr, checkMac, checkNetnsName, checkAddress]) {
          try {
            check(s);
          } catch (e) {
            if (!(e instanceof InvalidNetdevInputError)) throw e;
          }
        }
      }),
    );
  });
});
