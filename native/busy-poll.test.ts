/**
 * Busy polling in the addon, on loopback (no root): a worker thread sends datagrams a few milliseconds apart while
 * the main thread reads them with a native UDP reader. With busy polling on, the reader catches them while spinning
 * (few wake-ups from epoll); off, every datagram is its own wake-up. The budget keeps a trickle from spinning for
 * more than its share of the time. Needs `npm run build:native` (skipped with a reason otherwise; fails under CI).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Worker } from 'node:worker_threads';
import { isNativeAddonBuilt, loadNative, nativeAddonPath, type ReaderHandle } from './addon.js';

const isBuilt = isNativeAddonBuilt();
if (!isBuilt) {
  const reason = `native addon not built at ${nativeAddonPath()}: run \`npm run build:native\``;
  if (process.env.CI) throw new Error(reason);
  console.warn(`SKIP busy-poll tests: ${reason}`);
}

/**
 * A worker that sends `count` one-byte datagrams to 127.0.0.1:`port`, `gapMs` apart (fractions allowed: the worker
 * blocks in Atomics.wait between sends), then exits.
 */
function sendTrickle(port: number, count: number, gapMs: number): Promise<void> {
  const source = `
    const { workerData } = require('node:worker_threads');
    const dgram = require('node:dgram');
    const s = dgram.createSocket('udp4');
    const gap = new Int32Array(new SharedArrayBuffer(4));
    let sent = 0;
    const next = () => {
      if (sent === workerData.count) { s.close(); return; }
      sent++;
      s.send(Buffer.of(sent & 255), workerData.port, '127.0.0.1', () => {
        Atomics.wait(gap, 0, 0, workerData.gapMs);
        next();
      });
    };
    next();
  `;
  const worker = new Worker(source, { eval: true, workerData: { port, count, gapMs } });
  return new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`sender exited with ${code}`))));
  });
}

describe.skipIf(!isBuilt)('busy polling', () => {
  const native = isBuilt ? loadNative() : (undefined as never);
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    native.busyPoll(0, 1);
    for (const c of cleanups.splice(0)) c();
  });

  /** A UDP reader on loopback counting what it receives; resolves `done` after `expected` datagrams. */
  function reader(
    expected: number,
    isWorthSpinning = true,
  ): { port: number; handle: ReaderHandle; received: () => number; done: Promise<void> } {
    const { fd, port } = native.udpOpen('127.0.0.1', 0);
    const slots = 4;
    const slotBytes = 65_600;
    let received = 0;
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const handle = native.udpReaderStart(
      fd,
      Buffer.alloc(slots * slotBytes),
      new Uint32Array(slots * 64),
      new Uint32Array(slots * 64),
      new Uint32Array(slots * 64 * 4), // four address words per entry
      new Uint16Array(slots * 64),
      slotBytes,
      0,
      (count) => {
        received += Math.max(count, 0);
        if (received >= expected) finish();
        return isWorthSpinning;
      },
    );
    cleanups.push(() => {
      native.readerStop(handle);
      native.fdClose(fd);
    });
    return { port, handle, received: () => received, done };
  }

  it('catches datagrams that arrive within the window without waking from epoll', async () => {
    native.busyPoll(50_000, 100);
    await new Promise((r) => setTimeout(r, 30)); // let the budget fill (10 ms at most)
    const before = native.busyPollStats();
    const r = reader(20);
    await sendTrickle(r.port, 20, 0.3);
    await r.done;
    const stats = native.readerStats(r.handle);
    const after = native.busyPollStats();
    expect(stats.packets).toBe(20);
    // Datagrams 0.3 ms apart against a 50 ms window: after a wake-up, the spin finds the next ones until it hands
    // the loop back (2 ms at most per spin), so a handful of wake-ups at most; without it, 20.
    expect(stats.wakes).toBeLessThan(10);
    expect(after.hits - before.hits).toBeGreaterThan(0);
    expect(after.spins - before.spins).toBeGreaterThan(0);
  });

  it('never spins when off', async () => {
    native.busyPoll(0, 1);
    const before = native.busyPollStats();
    const r = reader(10);
    await sendTrickle(r.port, 10, 0.3);
    await r.done;
    expect(native.readerStats(r.handle).packets).toBe(10);
    expect(native.busyPollStats().spins).toBe(before.spins);
  });

  it('does not spin after batches the callback calls not worth it (false: heartbeats, say)', async () => {
    native.busyPoll(50_000, 100);
    await new Promise((r) => setTimeout(r, 30));
    const before = native.busyPollStats();
    const r = reader(10, false);
    await sendTrickle(r.port, 10, 0.3);
    await r.done;
    expect(native.busyPollStats().spins).toBe(before.spins);
    expect(native.readerStats(r.handle).packets).toBe(10);
  });

  it('spends no more idle spinning than its share of the time', async () => {
    // A 20 ms window at 5%: each datagram 10 ms apart would start a spin wasting up to 2 ms (one spin's limit), but
    // the budget only refills 0.5 ms per 10 ms and starts empty, so spins are cut short.
    native.busyPoll(20_000, 5);
    const before = native.busyPollStats();
    const startedAt = process.hrtime.bigint();
    const r = reader(20);
    await sendTrickle(r.port, 20, 10);
    await r.done;
    const elapsedMicros = Number(process.hrtime.bigint() - startedAt) / 1000;
    const after = native.busyPollStats();
    const idleMicros = after.idleMicros - before.idleMicros;
    // Unbudgeted that would be ~20 x 2 ms = 40 ms idle in ~200 ms; the budget allows 5% (~10 ms) plus a few
    // microseconds of overshoot per spin.
    expect(after.spins - before.spins).toBeGreaterThan(0);
    expect(idleMicros).toBeGreaterThan(0);
    expect(idleMicros).toBeLessThan(elapsedMicros * 0.05 + 1_000);
  });

  it('refuses out-of-range settings with a message saying what fits', () => {
    expect(() => native.busyPoll(200_000, 10)).toThrow(/windowMicros must be 0\.\.100000/);
    expect(() => native.busyPoll(100, 0)).toThrow(/sharePercent 1\.\.100/);
  });
});
