import { describe, expect, it } from 'vitest';
import { InvalidTargetError, TargetNotFoundError } from './errors.js';
import { resolveTarget, targetPath } from './endpoint.js';

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
