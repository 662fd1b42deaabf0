import { afterEach, describe, expect, it } from 'vitest';
import sodium from 'sodium-native';
import { FakeClock } from '../runtime/clock.js';
import { silentLogger } from '../runtime/logger.js';
import { PasswordSecurity } from '../crypto/password-security.js';
import type { GossipChannel } from '../gossip/channel.js';
import { NatTraversal } from './nat-traversal.js';
import { NatMessageType, encodeNatMessage } from './punch.js';

const A = '0a:00:00:00:00:01';
const B = '0b:00:00:00:00:02';
const C = '0c:00:00:00:00:03';
const CHEAP = { passwordOpsLimit: sodium.crypto_pwhash_OPSLIMIT_MIN, passwordMemLimitBytes: sodium.crypto_pwhash_MEMLIMIT_MIN };

/** Two routers A and B that reach each other only through C: unicasts between them go through `relay` (a fake mesh). */
function twoBehindNat(password: string | undefined, options = {}) {
  const clock = new FakeClock();
  const routers = new Map<string, NatTraversal>();
  const changes = { A: 0, B: 0 };
  const securities: PasswordSecurity[] = [];
  let tamper: ((m: Uint8Array) => Uint8Array) | undefined;
  const make = (name: string, key: 'A' | 'B') => {
    const security = password === undefined ? undefined : new PasswordSecurity({ clock }, { password, ...CHEAP });
    if (security) securities.push(security);
    const nat = new NatTraversal(
      name,
      {
        clock,
        log: silentLogger,
        security,
        relayedPeers: () => new Set([name === A ? B : A]),
        // C is the one neighbour of each (where C's datagrams come from does not matter here).
        neighbourEndpoints: () => new Map([[C, { address: '192.0.2.3', port: 6783 }]]),
        onPathsChange: () => changes[key]++,
      },
      options,
    );
    const channel: GossipChannel = {
      name: 'nat',
      gossip: () => undefined,
      gossipTo: () => false,
      gossipBroadcast: () => undefined,
      gossipUnicast: (dst, message) => {
        const to = routers.get(dst);
        if (!to) return false;
        to.onGossipUnicast(name, tamper ? tamper(message) : message);
        return true;
      },
    };
    nat.attach(channel);
    routers.set(name, nat);
    return nat;
  };
  const a = make(A, 'A');
  const b = make(B, 'B');
  // C reports where it sees each of them.
  a.onGossipUnicast(C, encodeNatMessage({ type: NatMessageType.Observed, endpoint: { address: '198.51.100.1', port: 6783 } }));
  b.onGossipUnicast(C, encodeNatMessage({ type: NatMessageType.Observed, endpoint: { address: '203.0.113.2', port: 40001 } }));
  return {
    clock,
    a,
    b,
    changes,
    setTamper: (t: (m: Uint8Array) => Uint8Array) => (tamper = t),
    destroy: () => {
      a.stop();
      b.stop();
      for (const s of securities) s.destroy();
    },
  };
}

describe('NatTraversal', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => cleanup?.());

  it('exchanges endpoints and keys over the mesh: each side probes the other at its public endpoint, and their sessions interoperate', () => {
    const t = twoBehindNat('pw');
    cleanup = t.destroy;
    t.a.step();
    expect(t.a.counters.nat_offers_sent).toBe(1);
    expect(t.b.counters.nat_answers_sent).toBe(1);
    const [pa] = t.a.paths();
    const [pb] = t.b.paths();
    expect(pa).toMatchObject({ peer: B, endpoint: { address: '203.0.113.2', port: 40001 }, isPunched: false });
    expect(pb).toMatchObject({ peer: A, endpoint: { address: '198.51.100.1', port: 6783 }, isPunched: false });
    expect(t.changes.A).toBeGreaterThanOrEqual(1);
    expect(t.changes.B).toBeGreaterThanOrEqual(1);
    // A datagram sealed by A opens at B, and back.
    for (const [from, to] of [
      [pa!.session!, pb!.session!],
      [pb!.session!, pa!.session!],
    ] as const) {
      const buf = Buffer.alloc(16 + 5 + from.overheadBytes);
      buf.write('hello', 16);
      const seq = from.nextSeq();
      const sealed = from.seal(buf, 0, 16, 5, seq);
      expect(sealed).toBe(5 + from.overheadBytes);
      expect(to.open(buf, 0, 16, sealed, seq, from.sendKeyPhase)).toBe(5);
      expect(buf.toString('utf8', 16, 21)).toBe('hello');
    }
    // Health decides the direct path; a timeout with no health fails it.
    expect(t.a.onHealth(B, true)).toBe(true);
    expect(t.a.paths()[0]!.isPunched).toBe(true);
    expect(t.a.counters.nat_punched).toBe(1);
    t.clock.advance(11_000);
    t.b.step();
    expect(t.b.paths()).toEqual([]);
    expect(t.b.counters.nat_punch_failed).toBe(1);
    expect(t.b.relayReason(A, t.clock.now())).toMatch(/punching failed 1 time\(s\): no answer from 198.51.100.1:6783/);
  });

  it('makes no usable session when the relay swaps the key (the two ends derive different keys)', () => {
    const t = twoBehindNat('pw');
    cleanup = t.destroy;
    t.setTamper((m) => {
      const b = Buffer.from(m);
      if (b.length === 45) b[20] = b[20]! ^ 1; // flip a bit of the public key
      return b;
    });
    t.a.step();
    const [pa] = t.a.paths();
    const [pb] = t.b.paths();
    if (pa?.session && pb?.session) {
      const buf = Buffer.alloc(16 + 5 + 16);
      const seq = pa.session.nextSeq();
      const sealed = pa.session.seal(buf, 0, 16, 5, seq);
      expect(pb.session.open(buf, 0, 16, sealed, seq, 0)).toBeLessThan(0);
    }
  });

  it('punches in clear without a password, and refuses a key from a router that has one', () => {
    const t = twoBehindNat(undefined);
    cleanup = t.destroy;
    t.a.step();
    expect(t.a.paths()[0]).toMatchObject({ peer: B, session: null });
    expect(t.b.paths()[0]).toMatchObject({ peer: A, session: null });
    t.b.onGossipUnicast(
      A,
      encodeNatMessage({
        type: NatMessageType.Offer,
        attempt: 9,
        endpoint: { address: '1.2.3.4', port: 1 },
        publicKey: new Uint8Array(32),
      }),
    );
    expect(t.b.counters.nat_bad_message).toBe(1);
  });

  it('refuses endpoints that cannot be public, offers from peers that are not relayed, and floods; probes nothing for them', () => {
    const t = twoBehindNat(undefined);
    cleanup = t.destroy;
    const offer = (address: string, port = 6783, attempt = 1) =>
      encodeNatMessage({ type: NatMessageType.Offer, attempt, endpoint: { address, port }, publicKey: null });
    // Loopback (the API's), unspecified, multicast, broadcast, link-local, C's endpoint, B's own public endpoint.
    for (const a of ['127.0.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '169.254.1.1']) t.b.onGossipUnicast(A, offer(a, 6784));
    t.b.onGossipUnicast(A, offer('192.0.2.3', 6783));
    t.b.onGossipUnicast(A, offer('203.0.113.2', 40001));
    expect(t.b.counters.nat_bad_endpoint).toBe(7);
    // An OBSERVED that names loopback does not become our endpoint.
    t.b.onGossipUnicast(C, encodeNatMessage({ type: NatMessageType.Observed, endpoint: { address: '127.0.0.1', port: 6783 } }));
    expect(t.b.counters.nat_bad_endpoint).toBe(8);
    expect(t.b.punches.ownEndpoint()).toEqual({ address: '203.0.113.2', port: 40001 });
    // C is a neighbour, not relayed: its offer is refused.
    t.b.onGossipUnicast(C, offer('198.51.100.9'));
    expect(t.b.counters.nat_unwanted_offer).toBe(1);
    expect(t.b.paths()).toEqual([]);
    expect(t.b.counters.nat_answers_sent).toBe(0);
    // A flood of good offers from A: one taken per second.
    for (let i = 0; i < 100; i++) t.b.onGossipUnicast(A, offer('198.51.100.1', 6783, 10 + i));
    expect(t.b.counters.nat_answers_sent).toBe(1);
    expect(t.b.counters.nat_rate_limited).toBe(99);
    t.clock.advance(1_000);
    t.b.onGossipUnicast(A, offer('198.51.100.1', 6783, 200));
    expect(t.b.counters.nat_answers_sent).toBe(2);
    expect(t.b.paths()).toEqual([expect.objectContaining({ peer: A, endpoint: { address: '198.51.100.1', port: 6783 } })]);
  });

  it("refuses an offer naming one of this host's own addresses", () => {
    const clock = new FakeClock();
    const nat = new NatTraversal(B, {
      clock,
      log: silentLogger,
      security: undefined,
      relayedPeers: () => new Set([A]),
      neighbourEndpoints: () => new Map(),
      onPathsChange: () => undefined,
      localHosts: () => ['10.9.0.2'],
    });
    nat.onGossipUnicast(C, encodeNatMessage({ type: NatMessageType.Observed, endpoint: { address: '203.0.113.2', port: 40001 } }));
    nat.onGossipUnicast(
      A,
      encodeNatMessage({ type: NatMessageType.Offer, attempt: 1, endpoint: { address: '10.9.0.2', port: 6784 }, publicKey: null }),
    );
    expect(nat.counters.nat_bad_endpoint).toBe(1);
    expect(nat.paths()).toEqual([]);
    nat.stop();
  });

  it('offers and answers nothing with punching off, and says so', () => {
    const t = twoBehindNat('pw', { isPunchingEnabled: false });
    cleanup = t.destroy;
    t.a.step();
    expect(t.a.counters.nat_offers_sent).toBe(0);
    expect(t.a.paths()).toEqual([]);
    expect(t.a.relayReason(B, 0)).toMatch(/punching is off/);
  });
});
