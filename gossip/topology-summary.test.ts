import { describe, expect, it } from 'vitest';
import { DecodeError } from './decode-error.js';
import { encodeTopology, type PeerEntry } from './topology.js';
import { compareSummary, decodeSummary, encodeSummary, isSummary } from './topology-summary.js';

const name = (i: number) => `02:00:00:00:02:${i.toString(16).padStart(2, '0')}`;
const entry = (i: number, version: number, uid = '7'): PeerEntry => ({
  name: name(i),
  nickname: `p${i}`,
  uid,
  version,
  connections: [{ name: name(i + 1), address: `10.0.0.${i}:6783`, isOutbound: true, isEstablished: true }],
});
const view = (...es: PeerEntry[]) => new Map(es.map((e) => [e.name, e]));

describe('topology summaries', () => {
  it('round-trips, and is told apart from a list of entries', () => {
    const es = [entry(1, 3), entry(2, 9, '12345678901234567890')];
    const bytes = encodeSummary('round', es);
    expect(isSummary(bytes)).toBe(true);
    expect(isSummary(encodeTopology(es))).toBe(false);
    expect(decodeSummary(bytes)).toEqual({
      kind: 'round',
      rows: es.map((e) => ({ name: e.name, uid: e.uid, version: e.version })),
    });
    // ~50 bytes an entry, whatever its connections.
    expect(bytes.length).toBeLessThan(60 * es.length + 20);
  });

  it('refuses malformed summaries with a DecodeError', () => {
    const bad = [
      '{',
      '[]',
      '{"k":"gimme","s":[]}',
      '{"k":"round"}',
      '{"k":"round","s":{}}',
      `{"k":"round","s":[["${name(1)}","7"]]}`,
      `{"k":"round","s":[["NOT-A-NAME","7",1]]}`,
      `{"k":"round","s":[["${name(1)}","07",1]]}`,
      `{"k":"round","s":[["${name(1)}","7",0]]}`,
      `{"k":"round","s":[["${name(1)}","7",1.5]]}`,
      `{"k":"round","s":[["${name(1)}","7",1],["${name(1)}","7",2]]}`,
      `{"k":"round","s":[["${name(1)}","18446744073709551616",1]]}`,
    ];
    for (const b of bad) expect(() => decodeSummary(Buffer.from(b)), b).toThrow(DecodeError);
    expect(() => decodeSummary(Buffer.alloc(1024 * 1024 + 1, 0x20))).toThrow(DecodeError);
  });

  it('finds what the other side lacks or holds older, and whether it holds anything newer', () => {
    const ours = view(entry(1, 5), entry(2, 5), entry(3, 5));
    const rows = [
      { name: name(1), uid: '7', version: 5 }, // same
      { name: name(2), uid: '7', version: 4 }, // older: they lack ours
      // name(3) missing: they lack it
    ];
    expect(compareSummary(ours, rows)).toEqual({ theyLack: [name(2), name(3)], theyHaveNewer: false });
    expect(compareSummary(ours, [...rows, { name: name(9), uid: '1', version: 1 }]).theyHaveNewer).toBe(true);
    expect(compareSummary(ours, [{ name: name(1), uid: '7', version: 6 }]).theyHaveNewer).toBe(true);
    // Same version, another uid: the greater uid wins, as in a merge.
    expect(compareSummary(ours, [{ name: name(1), uid: '8', version: 5 }]).theyHaveNewer).toBe(true);
    expect(compareSummary(ours, [{ name: name(1), uid: '6', version: 5 }]).theyLack).toContain(name(1));
  });
});
