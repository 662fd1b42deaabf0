import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { isPeerName, parsePeerName, peerIdToName, peerNameToId, PeerNameError, randomPeerName } from './peer-name.js';

describe('peer names', () => {
  it('generates locally-administered unicast names', () => {
    for (let i = 0; i < 50; i++) {
      const name = randomPeerName();
      expect(isPeerName(name)).toBe(true);
      const first = parseInt(name.slice(0, 2), 16);
      expect(first & 0x02).toBe(0x02);
      expect(first & 0x01).toBe(0);
    }
  });

  it('round-trips names and 48-bit ids', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), (id) => {
        const name = peerIdToName(id);
        expect(name).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
        expect(peerNameToId(name)).toBe(id);
      }),
    );
    expect(peerIdToName(0x7a3b0122c49e)).toBe('7a:3b:01:22:c4:9e');
  });

  it('canonicalises upper case and refuses anything else with a typed error', () => {
    expect(parsePeerName('7A:3B:01:22:C4:9E')).toBe('7a:3b:01:22:c4:9e');
    for (const bad of ['', '7a:3b:01:22:c4', '7a-3b-01-22-c4-9e', '7a:3b:01:22:c4:9g', '7a:3b:01:22:c4:9e:00']) {
      expect(() => parsePeerName(bad)).toThrow(PeerNameError);
    }
    try {
      parsePeerName('nope');
    } catch (e) {
      expect((e as PeerNameError).code).toBe('ERR_PEER_NAME');
    }
  });

  it('orders names as strings the same as ids', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 1 }), fc.integer({ min: 0, max: 2 ** 48 - 1 }), (a, b) => {
        expect(peerIdToName(a) < peerIdToName(b)).toBe(a < b);
      }),
    );
  });
});
