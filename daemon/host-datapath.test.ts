import { describe, expect, it } from 'vitest';
import { gatewayFor } from './host-datapath.js';

describe("gatewayFor: the host address a runtime's container routes through", () => {
  it('is the exposed address in the same subnet (network and prefix length)', () => {
    expect(gatewayFor(['10.32.0.5/12'], ['10.32.0.1/12'])).toBe('10.32.0.1');
    expect(gatewayFor(['10.32.8.5/24'], ['10.32.0.1/12', '10.32.8.1/24'])).toBe('10.32.8.1');
  });
  it('is none when the host is not exposed there, the prefix differs, or the only match is the address itself', () => {
    expect(gatewayFor(['10.32.0.5/12'], [])).toBeUndefined();
    expect(gatewayFor(['10.32.8.5/24'], ['10.32.0.1/12'])).toBeUndefined();
    expect(gatewayFor(['10.64.0.5/12'], ['10.32.0.1/12'])).toBeUndefined();
    expect(gatewayFor(['10.32.0.1/12'], ['10.32.0.1/12'])).toBeUndefined();
    expect(gatewayFor(['fd00::5/64', 'junk'], ['fd00::1/64'])).toBeUndefined();
  });
});
