import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Neighbour } from './sleeve-neighbour.js';
import { MAX_SEQ_GAP, SEGMENT_HOLD_MS, isSegmentingFor, noteRelayed, noteSeq, takeLossReport, writeLossReport } from './loss.js';

const neighbour = () => new Neighbour(1, 1, { address: '10.0.0.2', port: 6783 }, null, 1500);

describe('loss: gaps in a neighbour sequence numbers', () => {
  it('counts the datagrams never received below the highest one, whatever the loss and small reordering', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 400 }),
        fc.array(fc.nat(399)),
        fc.array(fc.nat(398)),
        fc.nat(1_000_000),
        (count, dropped, swaps, start) => {
          const order = Array.from({ length: count }, (_, i) => start + i);
          for (const s of swaps) {
            if (s + 1 < count) [order[s], order[s + 1]] = [order[s + 1]!, order[s]!];
          }
          const lost = new Set(dropped.filter((d) => d < count).map((d) => start + d));
          const received = order.filter((s) => !lost.has(s));
          const n = neighbour();
          for (const s of received) noteSeq(n, 0, s);
          const highest = Math.max(...received, -1);
          const first = order.find((s) => !lost.has(s));
          // Seqs before the first one received are not known to be missing (the count starts there).
          const expected = [...lost].filter((s) => s < highest && first !== undefined && s > first).length;
          expect(n.lostIn).toBe(received.length === 0 ? 0 : expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps key phases apart and starts afresh on a far jump (a new key, a restarted peer), counting nothing', () => {
    const n = neighbour();
    for (let s = 0; s < 10; s++) noteSeq(n, 0, s);
    for (let s = 0; s < 5; s++) noteSeq(n, 1, s); // a rekey: the other phase counts from 0
    for (let s = 10; s < 20; s++) noteSeq(n, 0, s); // old phase datagrams still in flight
    expect(n.lostIn).toBe(0);
    noteSeq(n, 0, 20 + MAX_SEQ_GAP + 1);
    noteSeq(n, 0, 3); // restarted: far below
    noteSeq(n, 0, 4);
    expect(n.lostIn).toBe(0);
    noteSeq(n, 0, 7);
    expect(n.lostIn).toBe(2);
    // A seq not known (a duplicate connection's grace: two sequences interleave) starts afresh, counting nothing.
    noteSeq(n, 0, -1);
    noteSeq(n, 0, 5000);
    noteSeq(n, 0, 5001);
    expect(n.lostIn).toBe(2);
  });

  it('reports the loss since the last ack, and a report makes the sender segment for the hold time', () => {
    const rx = neighbour();
    const tx = neighbour();
    const buf = Buffer.alloc(8);
    for (const s of [0, 1, 2, 5, 6]) noteSeq(rx, 0, s);
    expect(writeLossReport(rx, buf, 2)).toBe(5);
    expect(buf.readUInt32BE(2)).toBe(2);
    expect(isSegmentingFor('auto', tx, 1000)).toBe(false);
    expect(takeLossReport(tx, buf, 2, 4, 1000)).toBe(2);
    expect(isSegmentingFor('auto', tx, 1000 + SEGMENT_HOLD_MS - 1)).toBe(true);
    expect(isSegmentingFor('auto', tx, 1000 + SEGMENT_HOLD_MS)).toBe(false);
    expect(isSegmentingFor('always', tx, 0) && !isSegmentingFor('never', tx, 1500)).toBe(true);
    expect(tx.lostOut).toBe(2);
    // The next report starts afresh; an ack without a body (an older router) reports nothing.
    writeLossReport(rx, buf, 2);
    expect(buf.readUInt32BE(2)).toBe(0);
    expect(takeLossReport(tx, buf, 2, 0, 5000)).toBe(0);
    // A relay's report of loss beyond it, with no loss of its own.
    const relay = neighbour();
    const beyond = neighbour();
    noteRelayed(relay, beyond, 6000);
    expect(relay.isRelayingIntoLoss).toBe(false); // beyond reported nothing
    beyond.segmentUntilMs = 7000;
    noteRelayed(relay, beyond, 6000);
    writeLossReport(relay, buf, 2);
    expect([buf.readUInt32BE(2), buf[6]]).toEqual([0, 1]);
    const sender = neighbour();
    expect(takeLossReport(sender, buf, 2, 5, 6000)).toBe(1);
    expect(isSegmentingFor('auto', sender, 6001)).toBe(true);
    expect(sender.lostOut).toBe(0);
  });
});
