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
  it('doubles from 1 s to the 15 s cap, each delay jittered down by at most 20 %', () => {
    const rnd = new SeededRandom(seed);
    const delays = Array.from({ length: 10 }, (_, i) => backoffDelayMs(i, rnd));
    const bases = [1000, 2000, 4000, 8000, 15000, 15000, 15000, 15000, 15000, 15000];
    delays.forEach((d, i) => {
      expect(d, `seed ${seed}`).toBeLessThanOrEqual(bases[i]!);
      expect(d, `seed ${seed}`).toBeGreaterThanOrEqual(bases[i]! * 0.8);
    });
    expect(new Set(delays.slice(4)).size).toBeGreaterThan(1); // jitter: capped retries do not line up
  });
});

describe('ConnectionMaker', () => {
  function setup(behaviour: (addr: string) => 'ok' | 'fail' | 'self' | 'hang', options = {}) {
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
          if (b === 'hang') return new Promise<void>(() => {});
          if (b === 'ok') {
            connected.add(addr);
            return;
          }
          throw Object.assign(new Error(b === 'self' ? 'is this router itself' : 'connection refused'), {
            code: b === 'self' ? 'ERR_CONNECT_TO_SELF' : undefined,
          });
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
    const caps = [1000, 2000, 4000, 8000, 15000];
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

  describe('healing', () => {
    it('retries a lost peer every 2 s at most, for the window after the loss, then on the long schedule', async () => {
      let up = true;
      const { maker, dials, connected, run } = setup(() => (up ? 'ok' : 'fail'), { lostPeerWindowMs: 60_000 });
      maker.start();
      maker.connect(['10.0.0.2:6783'], false);
      await run(20_000);
      expect(dials).toHaveLength(1);
      up = false;
      connected.delete('10.0.0.2:6783');
      maker.peerLost('10.0.0.2:6783', 'heartbeat timeout', 20_000);
      const lostAt = dials.length;
      await run(50_000);
      const inWindow = dials.slice(lostAt).map((d) => d.at);
      const gaps = inWindow.slice(1).map((t, i) => t - inWindow[i]!);
      console.log(`lost-peer gaps (ms, seed ${seed}): ${gaps.join(' ')}`);
      expect(gaps.length).toBeGreaterThan(20);
      for (const g of gaps) expect(g, `seed ${seed}`).toBeLessThanOrEqual(2100);
      expect(maker.report()[0]).toMatchObject({ state: 'retrying', lastError: 'connection refused' });
      // Past the window (60 s after the loss) the delays grow to the 15 s cap again.
      const before = dials.length;
      await run(60_000);
      const later = dials.slice(before).map((d) => d.at);
      const laterGaps = later.slice(1).map((t, i) => t - later[i]!);
      expect(Math.max(...laterGaps), `seed ${seed}: ${laterGaps.join(' ')}`).toBeGreaterThan(8_000);
    });

    it('a connection that lived 10 s resets the back-off when it drops; a shorter one keeps growing it', async () => {
      const opts = { lostPeerMaxBackoffMs: 60_000 }; // show the growth itself, not the lost-peer cap
      const flap = setup(() => 'ok', opts);
      flap.maker.start();
      flap.maker.connect(['a:6783'], false);
      await flap.run(100);
      for (let i = 0; i < 5; i++) {
        // each connection lives 0.5 s, then drops
        await flap.run(500);
        flap.connected.delete('a:6783');
        flap.maker.peerLost('a:6783', 'closed', 500);
        const n = flap.dials.length;
        for (let t = 0; t < 40_000 && flap.dials.length === n; t += 100) await flap.run(100);
      }
      const at = flap.dials.map((d) => d.at);
      const gaps = at.slice(1).map((t, i) => t - at[i]! - 500);
      console.log(`flapping gaps (ms, seed ${seed}): ${gaps.join(' ')}`);
      expect(gaps[4]!, `seed ${seed}: ${gaps.join(' ')}`).toBeGreaterThanOrEqual(gaps[0]! * 4);

      const stable = setup(() => 'ok', opts);
      stable.maker.start();
      stable.maker.connect(['a:6783'], false);
      for (let i = 0; i < 4; i++) {
        await stable.run(11_000);
        stable.connected.delete('a:6783');
        stable.maker.peerLost('a:6783', 'closed', 11_000);
      }
      await stable.run(1_100);
      const sat = stable.dials.map((d) => d.at);
      const sgaps = sat.slice(1).map((t, i) => t - sat[i]! - 11_000);
      for (const g of sgaps) expect(g, `seed ${seed}: ${sgaps.join(' ')}`).toBeLessThanOrEqual(1_100);
    });

    it('a sign of life dials at once, forgets the back-off, and is spaced 500 ms per address', async () => {
      let up = false;
      const { maker, dials, run } = setup(() => (up ? 'ok' : 'fail'));
      maker.start();
      maker.connect(['b:6783'], false);
      await run(40_000); // the back-off has reached the 15 s cap
      const gapBefore = (() => {
        const r = maker.report()[0]!;
        return r.nextAttemptInSeconds!;
      })();
      const n = dials.length;
      expect(maker.wake('b:6783')).toBe(true);
      await run(100);
      expect(dials.length, `next attempt was ${gapBefore}s away`).toBe(n + 1);
      // A storm of wakes: at most one dial per 500 ms.
      for (let i = 0; i < 20; i++) {
        maker.wake('b:6783');
        await run(100);
      }
      expect(dials.length - (n + 1)).toBeLessThanOrEqual(5);
      expect(dials.length - (n + 1)).toBeGreaterThanOrEqual(3);
      const wakeAt = dials.slice(n).map((d) => d.at);
      for (let i = 1; i < wakeAt.length; i++) expect(wakeAt[i]! - wakeAt[i - 1]!).toBeGreaterThanOrEqual(500);
      // The back-off was forgotten: the retry after a woken failure is ~1 s, not 15 s.
      expect(maker.report()[0]!.nextAttemptInSeconds).toBeLessThanOrEqual(1);
      up = true;
      maker.wake('b:6783');
      await run(600);
      expect(maker.report()[0]!.state).toBe('connected');
      expect(maker.wake('b:6783'), 'connected: nothing to wake').toBe(false);
      expect(maker.wake('unknown:6783'), 'not a target: never dialled').toBe(false);
    });

    it('wakes over all targets are rate-limited (4 a second, a burst of 16)', async () => {
      const { maker, discovered, dials, run } = setup(() => 'fail');
      for (let i = 0; i < 50; i++) discovered.add(`10.0.4.${i}:6783`);
      maker.start();
      await run(40_000); // every target on the long back-off
      const n = dials.length;
      let woken = 0;
      for (let s = 0; s < 5; s++) {
        for (let i = 0; i < 50; i++) if (maker.wake(`10.0.4.${i}:6783`)) woken++;
        await run(1000);
      }
      expect(woken).toBeGreaterThanOrEqual(16 + 4 * 3);
      expect(woken).toBeLessThanOrEqual(16 + 4 * 5);
      expect(dials.length - n).toBeLessThan(50 * 5);
    });

    it('wakes never exceed the concurrent-dial cap', async () => {
      const { maker, discovered, run } = setup((a) => (a.startsWith('h') ? 'hang' : 'fail'), { maxConcurrentDials: 3 });
      const addrs = Array.from({ length: 20 }, (_, i) => `10.0.3.${i}:6783`);
      for (const a of addrs) discovered.add(a);
      maker.start();
      await run(3000);
      expect(maker.dialsRunning).toBe(0); // all failed, retrying
      const hanging = Array.from({ length: 20 }, (_, i) => `h${i}:6783`);
      for (const a of hanging) discovered.add(a);
      let most = 0;
      for (let i = 0; i < 20; i++) {
        for (const a of [...addrs, ...hanging]) maker.wake(a);
        await run(100);
        most = Math.max(most, maker.dialsRunning);
      }
      expect(most).toBe(3);
      expect(maker.dialsRunning, 'the hanging dials hold every slot').toBe(3);
    });

    it('a lost inbound peer becomes a target with the reason; connections report it', async () => {
      const { maker, discovered, run } = setup(() => 'fail');
      maker.start();
      maker.peerLost('x:6783', 'heartbeat timeout', 30_000);
      await run(0);
      expect(maker.report(), 'not named by discovery: not kept').toEqual([]);
      discovered.add('x:6783');
      maker.peerLost('x:6783', 'heartbeat timeout', 30_000);
      const r = maker.report();
      expect(r).toHaveLength(1);
      expect(r[0]).toMatchObject({ address: 'x:6783', state: 'retrying', lastError: 'connection lost: heartbeat timeout' });
      await run(2_200);
      expect(maker.report()[0]).toMatchObject({ state: 'retrying', lastError: 'connection refused' });
    });
  });
});
