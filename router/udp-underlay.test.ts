/** UdpUnderlay (node:dgram) over loopback, no root. */
import { afterEach, describe, expect, it } from 'vitest';
import { createMemoryLogger } from '../runtime/logger.js';
import { UdpBindError, UdpUnderlay } from './udp-underlay.js';
import type { DatagramBatch } from './underlay.js';

describe('UdpUnderlay on loopback', () => {
  const open: UdpUnderlay[] = [];
  const make = (options: ConstructorParameters<typeof UdpUnderlay>[1] = {}): UdpUnderlay => {
    const u = new UdpUnderlay({ log: createMemoryLogger().log }, { bindAddress: '127.0.0.1', ...options });
    open.push(u);
    return u;
  };
  afterEach(async () => {
    await Promise.all(open.splice(0).map((u) => u.stop()));
  });

  it('delivers datagrams in batches with headroom before each, and their source', async () => {
    const a = make();
    const b = make({ batchSlots: 4, headroomBytes: 32 });
    const seen: Array<{ text: string; port: number; address: string; gap: number }> = [];
    let batches = 0;
    let done!: () => void;
    const isDone = new Promise<void>((resolve) => (done = resolve));
    await a.start(() => {});
    await b.start((batch: DatagramBatch) => {
      batches++;
      expect(batch.count).toBeLessThanOrEqual(4);
      for (let i = 0; i < batch.count; i++) {
        const start = batch.offsets[i]!;
        const previousEnd = i === 0 ? 0 : batch.offsets[i - 1]! + batch.lengths[i - 1]!;
        seen.push({
          text: batch.buffer.toString('utf8', start, start + batch.lengths[i]!),
          port: batch.ports[i]!,
          address: batch.addresses[i]!,
          gap: start - previousEnd,
        });
      }
      if (seen.length === 10) done();
    });
    const scratch = Buffer.alloc(64);
    for (let i = 0; i < 10; i++) {
      const length = scratch.write(`datagram ${i}`, 3);
      a.send(scratch, 3, length, { address: '127.0.0.1', port: b.localPort });
      scratch.fill(0); // copied on send
    }
    a.flush();
    await isDone;
    expect(seen.map((s) => s.text).sort()).toEqual([...Array(10).keys()].map((i) => `datagram ${i}`).sort());
    expect(seen.every((s) => s.port === a.localPort && s.address === '127.0.0.1' && s.gap >= 32)).toBe(true);
    expect(batches).toBeGreaterThanOrEqual(3); // 10 datagrams through 4 slots
    expect(b.counters().datagramsReceived).toBe(10);
  });

  it('refuses a port already bound with UdpBindError, and may start again after', async () => {
    const a = make();
    await a.start(() => {});
    const b = make({ port: a.localPort });
    const err = await b.start(() => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UdpBindError);
    expect(err).toMatchObject({ code: 'UDP_BIND_FAILED', errnoCode: 'EADDRINUSE' });
    await b.stop();
  });

  it('drops and counts sends before start, after stop, and out of range', async () => {
    const a = make();
    a.send(Buffer.alloc(10), 0, 10, { address: '127.0.0.1', port: 9 });
    await a.start(() => {});
    a.send(Buffer.alloc(10), 5, 10, { address: '127.0.0.1', port: 9 });
    await a.stop();
    await a.stop();
    a.send(Buffer.alloc(10), 0, 10, { address: '127.0.0.1', port: 9 });
    expect(a.counters()).toMatchObject({ dropsNotRunning: 2, dropsBadLength: 1, datagramsSent: 0 });
  });
});
