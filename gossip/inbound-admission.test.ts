import { describe, expect, it } from 'vitest';
import { InboundAdmission } from './inbound-admission.js';

describe('InboundAdmission', () => {
  it('limits each address by its own bucket, spending nothing shared on what it refuses', () => {
    const a = new InboundAdmission(0, {
      perAddressBurst: 3,
      perAddressPerSecond: 1,
      totalBurst: 5,
      totalPerSecond: 1,
      maxPendingPerAddress: 100,
    });
    const flood = Array.from({ length: 50 }, () => a.admit('10.0.0.66', 0)?.reason ?? 'ok');
    expect(flood.filter((r) => r === 'ok')).toHaveLength(3);
    expect(flood.filter((r) => r === 'inbound_rate_limited_address')).toHaveLength(47);
    expect(a.admit('10.0.0.2', 0)).toBeNull();
    expect(a.admit('10.0.0.3', 0)).toBeNull();
    expect(a.admit('10.0.0.4', 0)?.reason).toBe('inbound_rate_limited'); // 5 shared tokens: 3 + 2
    expect(a.admit('10.0.0.66', 1000)).toBeNull(); // refilled
  });

  it('caps pending connections per address and in all until released', () => {
    const a = new InboundAdmission(0, { maxPendingPerAddress: 2, maxPending: 3, perAddressBurst: 100, totalBurst: 100 });
    expect(a.admit('x', 0)).toBeNull();
    expect(a.admit('x', 0)).toBeNull();
    expect(a.admit('x', 0)?.reason).toBe('inbound_pending_cap_address');
    expect(a.admit('y', 0)).toBeNull();
    expect(a.admit('z', 0)?.reason).toBe('inbound_pending_cap');
    a.release('x');
    expect(a.pending).toBe(2);
    expect(a.admit('z', 0)).toBeNull();
    a.release('nobody'); // unknown: no effect
    expect(a.pending).toBe(3);
  });

  it('remembers at most maxTrackedAddresses buckets', () => {
    const a = new InboundAdmission(0, { maxTrackedAddresses: 100, maxPending: 1e9, maxPendingPerAddress: 1e9, totalBurst: 1e9 });
    for (let i = 0; i < 10_000; i++) a.admit(`10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, 0);
    expect(a.trackedAddresses).toBe(100);
  });
});
