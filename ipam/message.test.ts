import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeMessage, encodeMessage } from './message.js';
import { Ring } from './ring.js';
import { Consensus } from './consensus.js';
import { parseCidr } from './address.js';
import { DecodeError } from './errors.js';

function ring(): Ring {
  const r = new Ring(parseCidr('10.32.0.0/12'));
  r.claimForPeers(['aa:00:00:00:00:01', 'aa:00:00:00:00:02']);
  return r;
}

describe('IPAM messages', () => {
  it('round-trips state, requests and replies', () => {
    const table = new Consensus('a', 2);
    table.join();
    table.propose();
    const state = decodeMessage(encodeMessage({ kind: 'state', ring: ring(), consensus: table }), 2);
    expect(state.kind === 'state' && state.ring!.equals(ring())).toBe(true);
    expect(state.kind === 'state' && state.consensus!.row('a')).toEqual(table.row('a'));
    const req = { kind: 'request' as const, id: 7, mode: 'subnet' as const, address: parseCidr('10.33.0.0/16').start, prefix: 16 };
    expect(decodeMessage(encodeMessage(req))).toEqual(req);
    const reply = decodeMessage(encodeMessage({ kind: 'reply', id: 9, result: 'held', holder: 'web-1', ring: ring() }));
    expect(reply).toMatchObject({ kind: 'reply', id: 9, result: 'held', holder: 'web-1' });
    expect(reply.kind === 'reply' && reply.ring!.equals(ring())).toBe(true);
  });

  it('random bytes and corrupted messages only ever fail with DecodeError', () => {
    const samples = [
      encodeMessage({ kind: 'state', ring: ring(), consensus: null }),
      encodeMessage({ kind: 'request', id: 1, mode: 'exact', address: 5, prefix: 32 }),
      encodeMessage({ kind: 'reply', id: 1, result: 'granted', holder: '', ring: ring() }),
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(2), fc.nat(200), fc.nat(255), (junk, which, at, v) => {
        const s = samples[which]!;
        const flipped = Uint8Array.from(s, (b, n) => (n === at % s.length ? v : b));
        for (const input of [junk, flipped, s.subarray(0, at % s.length)]) {
          try {
            decodeMessage(input);
          } catch (e) {
            expect(e).toBeInstanceOf(DecodeError);
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
