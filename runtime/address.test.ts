import { expect, it } from 'vitest';
import { AddressError, joinAddress, splitAddress } from './address.js';

it('splits IPv4, names and bracketed IPv6 and joins them back', () => {
  expect(splitAddress('10.0.0.2:6783')).toEqual({ host: '10.0.0.2', port: 6783 });
  expect(splitAddress('h1', 6783)).toEqual({ host: 'h1', port: 6783 });
  expect(splitAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
  expect(splitAddress('::1', 6783)).toEqual({ host: '::1', port: 6783 });
  expect(joinAddress('::1', 80)).toBe('[::1]:80');
  expect(joinAddress('10.0.0.2', 6783)).toBe('10.0.0.2:6783');
});

it('refuses bad ports and empty hosts with a typed error', () => {
  for (const bad of ['10.0.0.2:99999', ':6783', '10.0.0.2:x', 'h1']) {
    expect(() => splitAddress(bad)).toThrow(AddressError);
  }
});
