import { describe, expect, it } from 'vitest';
import { socketHost } from './socket-host.js';

describe('socketHost', () => {
  it('turns the wildcard into :: (dual-stack) where the kernel has IPv6, and keeps it where not', () => {
    expect(socketHost('0.0.0.0', () => true)).toBe('::');
    expect(socketHost('0.0.0.0', () => false)).toBe('0.0.0.0');
  });

  it('binds any other address as given, without asking about IPv6', () => {
    const never = (): boolean => {
      throw new Error('asked');
    };
    for (const a of ['10.0.0.1', '::', 'fd00::2', '127.0.0.1']) expect(socketHost(a, never)).toBe(a);
  });
});
