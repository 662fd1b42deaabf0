import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, resolveConfig } from '../config/launch.js';
import { dnsArgs, removeNetnsResolvConf, resolvConfText, writeNetnsResolvConf, RESOLV_MARKER } from './dns-wiring.js';

const sources = { readFile: () => '', hostname: () => 'box1' };
const resolve = (argv: string[], env: NodeJS.ProcessEnv = {}) => resolveConfig(argv, env, sources);

describe('weftDNS config', () => {
  it('defaults: on, weft.local., the bridge address on port 53, TTL 1 s, /etc/resolv.conf', () => {
    expect(resolve([]).dns).toEqual({
      isEnabled: true,
      domain: 'weft.local.',
      listenHost: undefined,
      listenPort: 53,
      ttlSeconds: 1,
      resolvConf: '/etc/resolv.conf',
    });
  });

  it('takes flags and WEFT_* variables, flags winning', () => {
    const c = resolve(['--dns-domain', 'Corp.Example', '--dns-listen-address', '127.0.0.1:5353', '--dns-ttl', '30'], {
      WEFT_DNS_TTL: '5',
      WEFT_DNS_RESOLV_CONF: '/tmp/r',
      WEFT_NO_DNS: '1',
    });
    expect(c.dns).toEqual({
      isEnabled: false,
      domain: 'corp.example.',
      listenHost: '127.0.0.1',
      listenPort: 5353,
      ttlSeconds: 30,
      resolvConf: '/tmp/r',
    });
    expect(resolve(['--dns-listen-address', '[fd00::1]:53']).dns.listenHost).toBe('fd00::1');
    expect(resolve(['--dns-listen-address', '10.32.0.1']).dns.listenPort).toBe(53);
  });

  it('refuses bad values with what to write instead', () => {
    for (const [argv, re] of [
      [['--dns-domain', 'bad domain'], /not a DNS domain; write it like weft.local./],
      [['--dns-listen-address', 'dns.example:53'], /not an address: write HOST or HOST:PORT/],
      [['--dns-listen-address', '10.0.0.1:99999'], /not an address/],
      [['--dns-ttl', '1.5'], /not a TTL/],
      [['--dns-ttl', '86401'], /not a TTL/],
      [['--dns-resolv-conf', ''], /is empty/],
    ] as const) {
      expect(() => resolve([...argv])).toThrow(ConfigError);
      expect(() => resolve([...argv])).toThrow(re);
    }
  });
});

describe('weftDNS wiring', () => {
  it('writes a marked resolv.conf for a named namespace, leaves a user-written one alone, removes only its own', () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-etc-netns-'));
    try {
      expect(writeNetnsResolvConf('c1', resolvConfText('10.32.0.1', 'weft.local.'), dir)).toBe(true);
      const text = readFileSync(join(dir, 'c1/resolv.conf'), 'utf8');
      expect(text.startsWith(RESOLV_MARKER)).toBe(true);
      expect(text).toContain('nameserver 10.32.0.1\nsearch weft.local\n');
      expect(writeNetnsResolvConf('pid:42', 'x', dir)).toBe(false);
      expect(writeNetnsResolvConf('/proc/42/ns/net', 'x', dir)).toBe(false);
      removeNetnsResolvConf('c1', dir);
      expect(existsSync(join(dir, 'c1'))).toBe(false);
      // A file the user put there is theirs: not replaced, not removed.
      expect(writeNetnsResolvConf('c2', resolvConfText('10.32.0.1', 'weft.local.'), dir)).toBe(true);
      writeFileSync(join(dir, 'c2/resolv.conf'), 'nameserver 9.9.9.9\n');
      expect(writeNetnsResolvConf('c2', resolvConfText('10.32.0.1', 'weft.local.'), dir)).toBe(false);
      removeNetnsResolvConf('c2', dir);
      expect(readFileSync(join(dir, 'c2/resolv.conf'), 'utf8')).toBe('nameserver 9.9.9.9\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('dns-args names the address and the search domain', () => {
    expect(dnsArgs('10.32.0.1', 'weft.local.')).toBe('--dns 10.32.0.1 --dns-search weft.local');
  });
});
