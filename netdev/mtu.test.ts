import { describe, expect, it } from 'vitest';
import { overlayMtu, sleeveOverheadBytes } from './mtu.js';

describe('sleeve overhead and overlay MTU', () => {
  it('adds IP 20 + UDP 8 + header 16 + tag 16 + inner Ethernet 14 + frame record 14 by default', () => {
    expect(sleeveOverheadBytes()).toBe(88);
  });
  it('lets the router override any term (an IPv6 underlay adds 20)', () => {
    expect(sleeveOverheadBytes({ ipHeaderBytes: 40 })).toBe(108);
    expect(sleeveOverheadBytes({ frameRecordBytes: 0, sleeveHeaderBytes: 24 })).toBe(82);
  });
  it('subtracts the overhead from the underlay MTU', () => {
    expect(overlayMtu(1500)).toBe(1412);
    expect(overlayMtu(9000, 50)).toBe(8950);
  });
  it('refuses an underlay too small to leave an IPv4 MTU', () => {
    expect(() => overlayMtu(150)).toThrow(RangeError);
    expect(() => overlayMtu(1500, -1)).toThrow(RangeError);
    expect(() => sleeveOverheadBytes({ authTagBytes: 1.5 })).toThrow(RangeError);
  });
});
