import { describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { SeededRandom } from '../runtime/random.js';
import { MemoryUdpNetwork, MemoryUnderlay } from './memory-underlay.js';
import type { DatagramBatch } from './underlay.js';

function world(options: { latencyMs?: number; lossRate?: number } = {}) {
  const clock = new FakeClock();
  const network = new MemoryUdpNetwork({ clock, random: new SeededRandom(7) }, options);
  const got: Array<{ from: string; port: number; text: string }> = [];
  const sink = (b: DatagramBatch) => {
    for (let i = 0; i < b.count; i++) {
      got.push({ from: b.addresses[i]!, port: b.ports[i]!, text: b.buffer.toString('utf8', b.offsets[i]!, b.offsets[i]! + b.lengths[i]!) });
    }
  };
  return { clock, network, got, sink };
}

describe('MemoryUnderlay', () => {
  it('delivers after the latency, in send order, with the source address and port', async () => {
    const { clock, network, got, sink } = world({ latencyMs: 5 });
    const a = new MemoryUnderlay({ network }, { address: '10.0.0.1', port: 1111 });
    const b = new MemoryUnderlay({ network }, { address: '10.0.0.2' });
    await a.start(() => undefined);
    await b.start(sink);
    for (const t of ['one', 'two', 'three']) a.send(Buffer.from(`xx${t}`), 2, t.length, b.endpoint());
    clock.advance(4);
    expect(got).toEqual([]);
    clock.advance(1);
    expect(got).toEqual(['one', 'two', 'three'].map((text) => ({ from: '10.0.0.1', port: 1111, text })));
  });

  it('drops across a partition until healed, and counts unreachable endpoints', async () => {
    const { clock, network, got, sink } = world();
    const a = new MemoryUnderlay({ network }, { address: '10.0.0.1' });
    const b = new MemoryUnderlay({ network }, { address: '10.0.0.2' });
    await a.start(() => undefined);
    await b.start(sink);
    network.partition('10.0.0.1', '10.0.0.2');
    a.send(Buffer.from('cut'), 0, 3, b.endpoint());
    a.send(Buffer.from('nobody'), 0, 6, { address: '10.0.0.9', port: 6783 });
    clock.advance(1);
    expect(got).toEqual([]);
    expect(network.partitioned).toBe(1);
    expect(network.unreachable).toBe(1);
    network.heal('10.0.0.1', '10.0.0.2');
    a.send(Buffer.from('healed'), 0, 6, b.endpoint());
    clock.advance(1);
    expect(got.map((g) => g.text)).toEqual(['healed']);
  });

  it('loses about lossRate of datagrams, deterministically for a seed', async () => {
    const { clock, network, got, sink } = world({ lossRate: 0.3 });
    const a = new MemoryUnderlay({ network }, { address: '10.0.0.1' });
    const b = new MemoryUnderlay({ network }, { address: '10.0.0.2', queueSlots: 2000 });
    await a.start(() => undefined);
    await b.start(sink);
    for (let i = 0; i < 1000; i++) a.send(Buffer.from('x'), 0, 1, b.endpoint());
    clock.advance(1);
    expect(got.length + network.lost).toBe(1000);
    expect(network.lost).toBeGreaterThan(230);
    expect(network.lost).toBeLessThan(370);
  });

  it('counts datagrams beyond the receive queue instead of growing it', async () => {
    const { clock, network, got, sink } = world();
    const a = new MemoryUnderlay({ network }, { address: '10.0.0.1' });
    const b = new MemoryUnderlay({ network }, { address: '10.0.0.2', queueSlots: 4, batchSlots: 3 });
    await a.start(() => undefined);
    await b.start(sink);
    for (let i = 0; i < 6; i++) a.send(Buffer.from(String(i)), 0, 1, b.endpoint());
    clock.advance(1);
    expect(got.map((g) => g.text)).toEqual(['0', '1', '2', '3']);
    expect(b.dropsQueueFull).toBe(2);
  });
});
