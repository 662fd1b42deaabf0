import { describe, expect, it } from 'vitest';
import { DecodeError } from '../gossip/decode-error.js';
import { NatMessageType, Punches, decodeNatMessage, encodeNatMessage } from './punch.js';

const A = '0a:00:00:00:00:01';
const B = '0b:00:00:00:00:02';
const C = '0c:00:00:00:00:03';
const epA = { address: '198.51.100.1', port: 6783 };
const epB = { address: '203.0.113.2', port: 6783 };

/** A (lower name) offers to B; B answers; both probe with a fake session. */
function pair(options = {}) {
  const disposed: string[] = [];
  const a = new Punches<string>(A, options, (s) => disposed.push(s));
  const b = new Punches<string>(B, options, (s) => disposed.push(s));
  return { a, b, disposed };
}

describe('Punches', () => {
  it('offers only from the lower name, and only once it knows its own endpoint', () => {
    const { a, b } = pair();
    expect(a.step(0, new Set([B])).offers).toEqual([]);
    a.setObserved(C, epA);
    b.setObserved(C, epB);
    expect(b.step(0, new Set([A])).offers).toEqual([]);
    expect(a.step(0, new Set([B])).offers).toEqual([B]);
    // Under way: not offered again.
    expect(a.step(1000, new Set([B])).offers).toEqual([]);
    expect(a.relayReason(B, 1000)).toMatch(/offered to punch/);
  });

  it('probes after offer and answer, punches on health, falls back when heartbeats stop, fails after the grace', () => {
    const { a, b, disposed } = pair({ attemptMs: 10_000, lostGraceMs: 20_000, retryMs: 30_000 });
    a.setObserved(C, epA);
    b.setObserved(C, epB);
    a.step(0, new Set([B]));
    const attempt = a.punch(B)!.attempt;
    const pb = b.acceptOffer(A, attempt, epA, 100)!;
    b.probe(pb, 'sB', 100);
    expect(b.paths()).toEqual([{ peer: A, endpoint: epA, session: 'sB', isPunched: false }]);
    expect(a.acceptAnswer(B, attempt + 1, epB)).toBeUndefined(); // stale attempt
    const pa = a.acceptAnswer(B, attempt, epB)!;
    a.probe(pa, 'sA', 200);
    expect(a.paths()[0]).toMatchObject({ peer: B, endpoint: epB, isPunched: false });
    expect(a.relayReason(B, 300)).toMatch(/punching to 203.0.113.2:6783/);
    expect(a.onHealth(B, true, 2000)).toBe(true);
    expect(a.paths()[0]!.isPunched).toBe(true);
    // Heartbeats stop: relayed again, still probed.
    expect(a.onHealth(B, false, 5000)).toBe(true);
    expect(a.paths()[0]).toMatchObject({ isPunched: false });
    expect(a.step(10_000, new Set([B])).isChanged).toBe(false);
    // And back.
    a.onHealth(B, true, 12_000);
    expect(a.paths()[0]!.isPunched).toBe(true);
    a.onHealth(B, false, 13_000);
    expect(a.step(33_000, new Set([B])).isChanged).toBe(true);
    expect(a.paths()).toEqual([]);
    expect(a.punch(B)!.phase).toBe('failed');
    expect(disposed).toContain('sA');
    expect(a.relayReason(B, 33_000)).toMatch(/punching failed 1 time\(s\): the punched path .* stopped answering; next try in 30 s/);
    // Retried after retryMs.
    expect(a.step(40_000, new Set([B])).offers).toEqual([]);
    expect(a.step(63_000, new Set([B])).offers).toEqual([B]);
    expect(a.punch(B)!.attempt).not.toBe(attempt);
  });

  it('fails an attempt whose probes are never answered (symmetric NAT), and says why', () => {
    const { a } = pair();
    a.setObserved(C, epA);
    a.step(0, new Set([B]));
    const p = a.acceptAnswer(B, a.punch(B)!.attempt, epB)!;
    a.probe(p, 's', 0);
    expect(a.step(9_999, new Set([B])).isChanged).toBe(false);
    expect(a.step(10_000, new Set([B]))).toMatchObject({ isChanged: true, failures: 1 });
    expect(a.relayReason(B, 10_000)).toMatch(/no answer from 203.0.113.2:6783 \(a symmetric NAT/);
  });

  it('gives up an offer nobody answers', () => {
    const { a } = pair({ offerTimeoutMs: 5_000 });
    a.setObserved(C, epA);
    a.step(0, new Set([B]));
    a.step(5_000, new Set([B]));
    expect(a.punch(B)!.phase).toBe('failed');
    // Offered again soon (the peer may not have known its endpoint yet), not after the long retry.
    expect(a.step(9_999, new Set([B])).offers).toEqual([]);
    expect(a.step(10_000, new Set([B])).offers).toEqual([B]);
  });

  it('drops a punch when the peer gets a direct connection (or is gone)', () => {
    const { a, disposed } = pair();
    a.setObserved(C, epA);
    a.step(0, new Set([B]));
    a.probe(a.acceptAnswer(B, a.punch(B)!.attempt, epB)!, 's', 0);
    a.onHealth(B, true, 1);
    expect(a.step(2, new Set()).isChanged).toBe(true);
    expect(a.punch(B)).toBeUndefined();
    expect(disposed).toEqual(['s']);
  });

  it('knows it is behind a symmetric NAT when neighbours see different ports, and then offers nothing', () => {
    const { a } = pair();
    a.setObserved(C, epA);
    a.setObserved('0d:00:00:00:00:04', { ...epA, port: 40000 });
    expect(a.ownEndpoint()).toBeUndefined();
    expect(a.isSymmetric()).toBe(true);
    expect(a.step(0, new Set([B])).offers).toEqual([]);
    expect(a.relayReason(B, 0)).toMatch(/symmetric NAT/);
    a.keepObservers(new Set([C]));
    expect(a.ownEndpoint()).toEqual(epA);
  });

  it('punches again at once when our own public endpoint moves (our NAT rebound)', () => {
    const { a, disposed } = pair();
    a.setObserved(C, epA);
    a.step(0, new Set([B]));
    a.probe(a.acceptAnswer(B, a.punch(B)!.attempt, epB)!, 's', 0);
    a.onHealth(B, true, 1000);
    expect(a.setObserved(C, epA, 2000)).toBe(false); // the same endpoint again
    expect(a.paths()[0]!.isPunched).toBe(true);
    expect(a.setObserved(C, { ...epA, port: 50000 }, 3000)).toBe(true);
    expect(a.paths()).toEqual([]);
    expect(disposed).toEqual(['s']);
    expect(a.relayReason(B, 3000)).toMatch(/our public endpoint moved from 198.51.100.1:6783 to 198.51.100.1:50000/);
    expect(a.step(3000, new Set([B])).offers).toEqual([B]);
  });

  it('answers no offer before it knows its own endpoint', () => {
    const { b } = pair();
    expect(b.acceptOffer(A, 1, epA, 0)).toBeUndefined();
  });
});

describe('nat messages', () => {
  it('round-trip', () => {
    const key = new Uint8Array(32).fill(7);
    for (const m of [
      { type: NatMessageType.Observed, endpoint: epA },
      { type: NatMessageType.Offer, attempt: 0xfffffffe, endpoint: epB, publicKey: key },
      { type: NatMessageType.Answer, attempt: 3, endpoint: epB, publicKey: null },
    ] as const) {
      expect(decodeNatMessage(encodeNatMessage(m))).toEqual(m);
    }
  });

  it('refuse garbage with a DecodeError', () => {
    const ok = Buffer.from(encodeNatMessage({ type: NatMessageType.Offer, attempt: 1, endpoint: epA, publicKey: new Uint8Array(32) }));
    const bad = [
      Buffer.alloc(3),
      Buffer.from([2, 1, 1, 2, 3, 4, 0, 1]),
      Buffer.from([1, 9, 1, 2, 3, 4, 0, 1]),
      Buffer.from([1, 1, 1, 2, 3, 4, 0, 0]),
      Buffer.from([1, 1, 1, 2, 3, 4, 0, 1, 0]),
      ok.subarray(0, ok.length - 1),
      Buffer.concat([ok.subarray(0, 12), Buffer.from([16]), Buffer.alloc(16)]),
    ];
    for (const b of bad) expect(() => decodeNatMessage(b)).toThrow(DecodeError);
  });
});
