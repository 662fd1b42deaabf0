import { describe, expect, it } from 'vitest';
import { canonicalHost, discoveryRefusal, systemLocalHosts } from './dial-policy.js';

describe('discoveryRefusal', () => {
  const own = new Set(['10.0.0.1', canonicalHost('fd00::1')]);
  it.each([
    ['127.0.0.1:6784', 'loopback'],
    ['127.8.9.10:6783', 'loopback'],
    ['[::1]:6783', 'loopback'],
    ['[0:0:0:0:0:0:0:1]:6783', 'loopback'],
    ['[::ffff:127.0.0.1]:6784', 'loopback'],
    ['localhost:6784', 'loopback'],
    ['api.LOCALHOST:6784', 'loopback'],
    ['0.0.0.0:6783', 'unspecified'],
    ['[::]:6783', 'unspecified'],
    ['10.0.0.9:0', 'unspecified'],
    ['224.0.0.1:6783', 'multicast'],
    ['239.255.255.250:6783', 'multicast'],
    ['[ff02::1]:6783', 'multicast'],
    ['255.255.255.255:6783', 'broadcast'],
    ['169.254.169.254:80', 'link_local'],
    ['[fe80::1%eth0]:6783', 'link_local'],
    ['10.0.0.1:6783', 'own_address'],
    ['10.0.0.1:6784', 'own_address'],
    ['[fd00:0::1]:6783', 'own_address'],
    ['[::ffff:10.0.0.1]:6783', 'own_address'],
    ['nonsense', 'unparsable'],
  ])('refuses %s as %s', (addr, why) => {
    expect(discoveryRefusal(addr, own)).toBe(why);
  });

  it.each(['10.0.0.2:6783', '192.168.1.5:6783', '[2001:db8::5]:6783', 'h3.example:6783', '8.8.8.8:6783'])('allows %s', (addr) => {
    expect(discoveryRefusal(addr, own)).toBeNull();
  });

  it("knows this host's own addresses", () => {
    expect(systemLocalHosts()).toContain('127.0.0.1');
  });
});
