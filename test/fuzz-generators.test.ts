/**
 * The fuzzers' generators (test/fuzz/) on their own, no root: they never throw, stay inside the sizes they promise,
 * and one seed gives one sequence (a printed seed replays a run).
 */
import { describe, expect, it } from 'vitest';
import { FuzzRandom } from './fuzz/rng.js';
import { SleeveCaseGenerator } from './fuzz/sleeve-cases.js';
import { controlFrame, mutatedHello } from './fuzz/control-fuzz.js';
import { buildRequest } from './fuzz/http-fuzz.js';
import { encodeHello } from '../gossip/handshake.js';

const parties = (isSealed: boolean) => ({
  self: 0x0a0000000001,
  target: 0x0a0000000002,
  other: 0x0a0000000003,
  isSealed,
  bodyCapacityBytes: 1440,
});

describe('sleeve case generator', () => {
  for (const isSealed of [true, false]) {
    it(`makes ${isSealed ? 'sealed' : 'clear'} cases that fit one datagram, with an expected outcome for each`, () => {
      for (const seed of [1, 2]) {
        const g = new SleeveCaseGenerator(new FuzzRandom(seed), parties(isSealed));
        for (let i = 0; i < 8_000; i++) {
          const c = g.next();
          expect((c.raw ?? c.body).length).toBeLessThanOrEqual(1440 + 16 + 16);
        }
        // Every case that is not accepted whole predicts a drop; accepted ones predict what they do.
        const total = [...g.expected.values()].reduce((a, b) => a + b, 0);
        expect(total).toBeGreaterThan(8_000 * 0.9);
        expect(g.expected.get('drop_bad_record')).toBeGreaterThan(0);
        expect(g.expected.get('drop_bad_piece')).toBeGreaterThan(0);
        expect(g.expected.get('auth')).toBeGreaterThan(0);
      }
    });
  }

  it('replays: the same seed gives the same datagrams', () => {
    const a = new SleeveCaseGenerator(new FuzzRandom(9), parties(true));
    const b = new SleeveCaseGenerator(new FuzzRandom(9), parties(true));
    for (let i = 0; i < 2000; i++) {
      const x = a.next();
      const y = b.next();
      expect(x.kind).toBe(y.kind);
      expect((x.raw ?? x.body).equals(y.raw ?? y.body)).toBe(true);
    }
  });
});

describe('control and HTTP generators', () => {
  it('bend hellos and make frames without throwing', () => {
    const rng = new FuzzRandom(5);
    const options = {
      password: 'x',
      target: 'h1:6783',
      realNames: ['02:00:00:00:00:01', '02:00:00:00:00:02'],
      subnetPrefix: '10.9.0.',
      frames: 1,
      seed: 5,
    };
    for (let i = 0; i < 2000; i++) {
      const { plan } = mutatedHello(rng, { name: '02:00:00:00:00:66', uid: '66', nickname: 'fz' }, options.realNames);
      const hello = {
        minVersion: 1,
        maxVersion: 1,
        name: plan.name,
        nickname: plan.nickname,
        uid: plan.uid,
        features: [],
        hasPassword: true,
        publicKey: new Uint8Array(32),
        udpPort: 6783,
      };
      const valid = Buffer.from(encodeHello(hello));
      plan.mutate?.(valid, hello);
      plan.mutateConfirmation?.(Buffer.alloc(32));
      const f = controlFrame(rng, new Map([['ipam', [Buffer.from('abcdef')]]]), ['02:00:00:00:00:77'], options);
      expect(f.kind).toBeTruthy();
    }
  });

  it('never sends JSON to a route that changes the host or the router', () => {
    const rng = new FuzzRandom(6);
    for (let i = 0; i < 8_000; i++) {
      const r = buildRequest(rng, '127.0.0.1', 6784);
      const text = r.bytes.toString('latin1');
      const line = text.slice(0, text.indexOf('\r\n'));
      const m = /^POST (\S+)/.exec(line);
      if (!m) continue;
      const path = new URL(m[1]!, 'http://weft').pathname;
      if (!['/stop', '/ipam/reset', '/attach', '/detach', '/expose', '/hide', '/connect'].includes(path)) continue;
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      expect(body.length).toBeGreaterThan(0);
      expect(body.charCodeAt(0)).toBe(0); // not JSON, never empty: refused before the route runs
    }
  });
});
