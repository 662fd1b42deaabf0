import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Allocator, type AllocatorOptions } from './allocator.js';
import { DecodeError, InvalidAddressError, IpamRangeChangedError } from './errors.js';
import { FakeClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryStore } from '../runtime/store.js';

const NAME = 'aa:00:00:00:00:01';

function make(store = new MemoryStore(), options: Partial<AllocatorOptions> = {}): Allocator {
  const a = new Allocator(
    { clock: new FakeClock(), random: new SeededRandom(1), log: silentLogger, store },
    { ourName: NAME, ourNickname: 'h1', range: '10.32.0.0/12', init: { mode: 'seed', peers: [NAME] }, ...options },
  );
  a.start();
  return a;
}

describe('Allocator', () => {
  it('allocates the lowest usable addresses of a subnet, idempotently per ident, and reuses released ones', async () => {
    const a = make();
    expect(await a.allocate('c1', '10.33.0.0/24')).toBe('10.33.0.1/24');
    expect(await a.allocate('c2', '10.33.0.0/24')).toBe('10.33.0.2/24');
    expect(await a.allocate('c1', '10.33.0.0/24')).toBe('10.33.0.1/24');
    expect(await a.allocate('c1')).toBe('10.32.0.1/12');
    expect(a.addressesOf('c1')).toEqual(['10.32.0.1/12', '10.33.0.1/24']);
    expect(a.release('c1')).toBe(2);
    expect(await a.allocate('c3', '10.33.0.0/24')).toBe('10.33.0.1/24');
    expect(a.releaseAddress('10.33.0.2/24')).toBe(true);
    expect(a.releaseAddress('10.33.0.2')).toBe(false);
  });

  it('refuses a subnet outside the range', async () => {
    await expect(make().allocate('c1', '192.168.0.0/24')).rejects.toThrow(InvalidAddressError);
  });

  it('a one-peer ring runs out with IpamExhaustedError naming the subnet', async () => {
    const a = make();
    for (let i = 0; i < 2; i++) await a.allocate(`c${i}`, '10.33.0.0/30');
    await expect(a.allocate('c9', '10.33.0.0/30')).rejects.toMatchObject({
      code: 'ERR_IPAM_EXHAUSTED',
      message: expect.stringContaining('10.33.0.0/30'),
    });
  });

  it('refuses stored state for another range, and corrupt stored state, rather than starting afresh', () => {
    const store = new MemoryStore();
    make(store).stop();
    expect(() => make(store, { range: '10.0.0.0/16' })).toThrow(IpamRangeChangedError);
    store.write('ipam', '{"format":1,"range":"10.32.0.0/12","ourName":"aa:00:00:00:00:01","ring":"AAAA","consensus":null,"held":[]}');
    expect(() => make(store)).toThrow(DecodeError);
    store.write('ipam', 'not json');
    expect(() => make(store)).toThrow(/weft reset/);
  });

  it('gossip that does not decode throws DecodeError (the mesh counts and drops it)', () => {
    const a = make();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (junk) => {
        for (const f of [
          () => a.onGossip(junk, 'aa:00:00:00:00:02'),
          () => a.onGossipUnicast('aa:00:00:00:00:02', junk),
          () => a.onGossipBroadcast('x', junk),
        ]) {
          try {
            f();
          } catch (e) {
            expect(e).toBeInstanceOf(DecodeError);
          }
        }
      }),
    );
  });

  it('reports its share of the range', () => {
    const r = make().status(new Set(), new Map());
    expect(r).toEqual({
      status: 'ready',
      range: '10.32.0.0/12',
      defaultSubnet: '10.32.0.0/12',
      peers: [{ name: NAME, nickname: 'h1', addresses: 1 << 20, share: 1, isReachable: true }],
      counters: {},
      allocated: 0,
      free: (1 << 20) - 2,
    });
  });
});
