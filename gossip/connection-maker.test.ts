import { describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import { backoffDelayMs, ConnectionMaker } from './connection-maker.js';

const seed = Number(process.env.WEFT_SEED ?? 42);
const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('back-off', () => {
  it('doubles from 1 s to the 60 s cap, each delay jittered down by at most 20 %', () => {
    const rnd = new SeededRandom(seed);
    const delays = Array.from({ length: 10 }, (_, i) => backoffDelayMs(i, rnd));
    const bases = [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000, 60000];
    delays.forEach((d, i) => {
      expect(d, `seed ${seed}`).toBeLessThanOrEqual(bases[i]!);
      expect(d, `seed ${seed}`).toBeGreaterThanOrEqual(bases[i]! * 0.8);
    });
    expect(new Set(delays.slice(6)).size).toBeGreaterThan(1); // jitter: capped retries do not line up
  });
});

describe('ConnectionMaker', () => {
  function setup(behaviour: (addr: string) => 'ok' | 'fail' | 'self', options = {}) {
    const clock = new FakeClock();
    const dials: Array<{ addr: string; at: number }> = [];
    const connected = new Set<string>();
    const discovered = new Set<string>();
    const maker = new ConnectionMaker(
      {
        clock,
        random: new SeededRandom(seed),
        log: silentLogger,
        connect: async (addr) => {
          dials.push({ addr, at: clock.now() });
          const b = behaviour(addr);
          if (b === 'ok') {
            connected.add(addr);
            return;
          }
          throw Object.assign(new Error(b === 'self' ? 'is this router itself' : 'connection refused'), { code: b === 'self' ? 'ERR_CONNECT_TO_SELF' : undefined });
        },
        isConnected: (addr) => connected.has(addr),
        discoveredAddresses: () => discovered,
      },
      options,
    );
    const run = async (ms: number) => {
      for (let t = 0; t < ms; t += 100) {
        clock.advance(100);
        await flush();
      }
    };
    return { clock, maker, dials, connected, discovered, run };
  }

  it('retries a failing target on the back-off schedule (FakeClock, SeededRandom)', async () => {
    const { maker, dials, run } = setup(() => 'fail');
    maker.start();
    maker.connect(['10.0.0.2:6783'], false);
    await flush();
    await run(130_000);
    const times = dials.map((d) => d.at);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    console.log(`back-off gaps (ms, seed ${seed}): ${gaps.join(' ')}`);
    const caps = [1000, 2000, 4000, 8000, 16000, 32000, 60000];
    gaps.forEach((g, i) => {
      const cap = caps[Math.min(i, caps.length - 1)]!;
      expect(g, `seed ${seed}`).toBeGreaterThanOrEqual(cap * 0.8 - 100);
      expect(g, `seed ${seed}`).toBeLessThanOrEqual(cap + 100);
    });
    expect(maker.report()[0]).toMatchObject({ address: '10.0.0.2:6783', state: 'retrying', lastError: 'connection refused' });
  });

  it('redials a dropped connection and resets the schedule after a stable spell', async () => {
    const { maker, dials, connected, run } = setup(() => 'ok');
    maker.start();
    maker.connect(['10.0.0.2:6783'], false);
    await run(20_000);
    expect(dials).toHaveLength(1);
    connected.delete('10.0.0.2:6783');
    maker.refresh();
    await run(1_100);
    expect(dials).toHaveLength(2);
    expect(dials[1]!.at - 20_000).toBeLessThanOrEqual(1_100);
  });

  it('gives up on our own address, forgets on request, replaces direct targets', async () => {
    const { maker, dials, run } = setup((a) => (a.startsWith('self') ? 'self' : 'fail'));
    maker.start();
    maker.connect(['self:6783', 'b:6783'], false);
    await run(5_000);
    expect(maker.report().find((t) => t.address === 'self:6783')?.state).toBe('failed');
    expect(dials.filter((d) => d.addr === 'self:6783')).toHaveLength(1);
    maker.forget(['b:6783']);
    maker.connect(['c:6783'], true);
    expect(maker.directTargets()).toEqual(['c:6783']);
  });

  it('dials discovered addresses only while discovery is on and the topology lists them', async () => {
    const { maker, dials, discovered, run } = setup(() => 'fail');
    discovered.add('d:6783');
    maker.start();
    await run(500);
    expect(dials.map((d) => d.addr)).toEqual(['d:6783']);
    discovered.clear();
    maker.refresh();
    await run(100);
    expect(maker.report()).toEqual([]);

    const off = setup(() => 'fail', { isDiscoveryEnabled: false });
    off.discovered.add('d:6783');
    off.maker.start();
    await off.run(500);
    expect(off.dials).toEqual([]);
  });

  it('runs at most maxConcurrentDials dials at once; the rest wait their turn', async () => {
    const clock = new FakeClock();
    const pending: Array<() => void> = [];
    const dialled: string[] = [];
    const discovered = new Set(Array.from({ length: 20 }, (_, i) => `10.0.1.${i}:6783`));
    const maker = new ConnectionMaker(
      {
        clock,
        random: new SeededRandom(seed),
        log: silentLogger,
        connect: (addr) => {
          dialled.push(addr);
          return new Promise<void>((_resolve, reject) => pending.push(() => reject(new Error('refused'))));
        },
        isConnected: () => false,
        discoveredAddresses: () => discovered,
      },
      { maxConcurrentDials: 3 },
    );
    maker.start();
    await flush();
    expect(dialled).toHaveLength(3);
    expect(maker.dialsRunning).toBe(3);
    pending.shift()!();
    await flush();
    expect(dialled).toHaveLength(4);
    expect(maker.dialsRunning).toBe(3);
    maker.stop();
  });

  it('keeps at most maxTargets targets: discovered ones fill what the direct ones leave', async () => {
    const { maker, discovered, run } = setup(() => 'fail', { maxTargets: 10 });
    for (let i = 0; i < 50; i++) discovered.add(`10.0.2.${i}:6783`);
    maker.start();
    maker.connect(['10.0.0.2:6783', '10.0.0.3:6783'], false);
    await run(200);
    const r = maker.report();
    expect(r).toHaveLength(10);
    expect(r.filter((t) => t.address.startsWith('10.0.0.'))).toHaveLength(2);
  });

  it('resumes the back-off of a discovered address that gossip drops and names again', async () => {
    const { maker, dials, discovered, run } = setup(() => 'fail', { initialBackoffMs: 1000 });
    discovered.add('d:6783');
    maker.start();
    await run(8000); // dialled at 0, ~1 s, ~3 s, ~7 s: the next wait is ~8 s
    const before = dials.length;
    expect(before).toBeGreaterThanOrEqual(3);
    for (let i = 0; i < 10; i++) {
      discovered.clear();
      maker.refresh();
      await run(100);
      discovered.add('d:6783');
      maker.refresh();
      await run(100);
    }
    expect(dials.length, 'no immediate dial per reappearance').toBeLessThanOrEqual(before + 1);
  });
});
