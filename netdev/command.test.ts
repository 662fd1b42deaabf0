import { describe, expect, it } from 'vitest';
import { commandLine, globalCidrs, runCommand } from './command.js';
import { MissingToolError, NetdevCommandError } from './errors.js';

describe('commandLine', () => {
  it('runs the program as-is without a namespace', () => {
    expect(commandLine('ip', ['link', 'show'])).toEqual(['ip', ['link', 'show']]);
  });
  it('wraps a namespace name in ip netns exec', () => {
    expect(commandLine('ethtool', ['-k', 'eth0'], 'w1a2b-h1')).toEqual(['ip', ['netns', 'exec', 'w1a2b-h1', 'ethtool', '-k', 'eth0']]);
  });
  it('wraps a namespace file path in nsenter --net', () => {
    expect(commandLine('ip', ['addr'], '/proc/42/ns/net')).toEqual(['nsenter', ['--net=/proc/42/ns/net', 'ip', 'addr']]);
  });
});

describe('runCommand', () => {
  it('rejects with MissingToolError naming a program that is not installed', async () => {
    await expect(runCommand({ device: 'x', file: 'weft-no-such-program', args: [] })).rejects.toBeInstanceOf(MissingToolError);
  });
  it('rejects with NetdevCommandError carrying the device, command line and stderr', async () => {
    const err = await runCommand({ device: 'dev0', file: 'sh', args: ['-c', 'echo broken >&2; exit 3'] }).catch((e) => e);
    expect(err).toBeInstanceOf(NetdevCommandError);
    expect(err.code).toBe('NETDEV_COMMAND_FAILED');
    expect(err.device).toBe('dev0');
    expect(err.stderr).toBe('broken');
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain('dev0');
    expect(err.message).toContain('sh -c');
  });
});

describe('globalCidrs', () => {
  it('keeps global addresses and drops link-local ones', () => {
    const link = {
      ifindex: 2,
      ifname: 'ethwe0',
      mtu: 1412,
      addr_info: [
        { family: 'inet', local: '10.2.1.1', prefixlen: 24, scope: 'global' },
        { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      ],
    };
    expect(globalCidrs(link)).toEqual(['10.2.1.1/24']);
  });
});
