import { describe, expect, it } from 'vitest';
import { InvalidNetdevInputError, InvalidTargetError, TargetNotFoundError } from './errors.js';
import { checkContainerId, endpointAlias, parseEndpointAlias, resolveTarget, targetPath } from './endpoint.js';

describe('endpoint targets', () => {
  it('maps the three target forms to a namespace file path', () => {
    expect(targetPath('w1a2b-h1-c1')).toBe('/run/netns/w1a2b-h1-c1');
    expect(targetPath('pid:1234')).toBe('/proc/1234/ns/net');
    expect(targetPath('/proc/77/ns/net')).toBe('/proc/77/ns/net');
  });
  it('refuses malformed targets with InvalidTargetError', () => {
    for (const bad of ['', 'pid:', 'pid:0', 'pid:-1', 'pid:12a', 'a/b', '.x', 'x'.repeat(241)]) {
      expect(() => targetPath(bad)).toThrow(InvalidTargetError);
    }
  });
  it('names the same namespace the same way however it is spelled, within 15 characters', async () => {
    const byPid = await resolveTarget(`pid:${process.pid}`);
    const byPath = await resolveTarget('/proc/self/ns/net');
    expect(byPid.hostIfname).toBe(byPath.hostIfname);
    expect(byPid.hostIfname).toMatch(/^vethwl[0-9a-f]{8}$/);
    expect(byPid.guestIfname).toMatch(/^vethwg[0-9a-f]{8}$/);
  });
  it('rejects a target whose namespace does not exist with TargetNotFoundError', async () => {
    await expect(resolveTarget('weft-no-such-namespace')).rejects.toBeInstanceOf(TargetNotFoundError);
  });
});

describe('endpoint aliases (the kernel keeps the registry)', () => {
  it('records a plain target, or a container id and interface before the target, and reads both back', () => {
    expect(endpointAlias('w1-h1-c1')).toBe('weft:w1-h1-c1');
    expect(parseEndpointAlias('weft:w1-h1-c1')).toEqual({ target: 'w1-h1-c1' });
    const alias = endpointAlias('/run/netns/cni-1234', { containerId: 'abc.def_1', ifname: 'eth0' });
    expect(alias).toBe('weft:container=abc.def_1/eth0 /run/netns/cni-1234');
    expect(parseEndpointAlias(alias)).toEqual({ target: '/run/netns/cni-1234', containerId: 'abc.def_1', ifname: 'eth0' });
    expect(parseEndpointAlias('weft:pid:42')).toEqual({ target: 'pid:42' });
  });
  it('reads nothing from aliases weft did not write', () => {
    for (const a of ['', 'weft:', 'other:x', 'weft:container=abc', 'weft:container=abc/eth0', 'weft:container=-bad/eth0 /x']) {
      expect(parseEndpointAlias(a), a).toBeUndefined();
    }
  });
  it('refuses a malformed container id, and an alias longer than the kernel keeps', () => {
    for (const id of ['', '-x', 'a b', 'a/b', 'x'.repeat(129)]) expect(() => checkContainerId(id)).toThrow(InvalidNetdevInputError);
    expect(() => endpointAlias(`/run/netns/${'n'.repeat(200)}`, { containerId: 'c'.repeat(64), ifname: 'eth0' })).toThrow(/255 bytes/);
  });
});
