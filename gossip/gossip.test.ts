import { describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { createMemoryLogger } from '../runtime/logger.js';
import { SeededRandom } from '../runtime/random.js';
import type { Gossiper } from './channel.js';
import { FrameType } from './connection.js';
import { DecodeError } from './decode-error.js';
import { Gossip, MAX_GOSSIP_FRAME_BYTES, type GossipNetwork } from './gossip.js';
import { peerNameToId } from './peer-name.js';
import { emptyRoutes, type ControlRoutes } from './routes.js';

const LOCAL = '02:00:00:00:00:01';

function setup(neighbourCount: number, peerCount: number, routes: ControlRoutes = emptyRoutes) {
  const sent: Array<{ peer: string; frame: Uint8Array }> = [];
  const neighbours = Array.from({ length: neighbourCount }, (_, i) => `02:00:00:00:01:${(i + 1).toString(16).padStart(2, '0')}`);
  const network: GossipNetwork = {
    localName: LOCAL,
    neighbourNames: () => neighbours,
    sendTo: (peer, frame) => (sent.push({ peer, frame }), true),
    routes: () => routes,
    peerCount: () => peerCount,
  };
  const counts = new Map<string, number>();
  const { log, lines } = createMemoryLogger();
  const clock = new FakeClock();
  const gossip = new Gossip(
    { clock, random: new SeededRandom(5), log, network, count: (r) => counts.set(r, (counts.get(r) ?? 0) + 1) },
    { gossipIntervalMs: 30_000 },
  );
  return { gossip, sent, neighbours, counts, lines, clock };
}

const stateful = (state: string, onGossip: Gossiper['onGossip'] = () => null): Gossiper => ({
  gossip: () => Buffer.from(state),
  onGossip,
  onGossipBroadcast: () => {},
  onGossipUnicast: () => {},
});

describe('Gossip', () => {
  it('sends periodic complete state to ceil(log2(peers)) neighbours, not to all, on a jittered timer', () => {
    const { gossip, sent, clock } = setup(20, 100);
    gossip.channel('c', stateful('s'));
    gossip.start();
    clock.advance(33_000); // one round: 27..33 s
    expect(new Set(sent.map((s) => s.peer)).size).toBe(7);
    // Each frame: type, name length, 'c', 's'.
    expect(gossip.stats).toEqual({
      rounds: 1,
      lastRoundMessages: 7,
      channels: { c: { messagesIn: 0, bytesIn: 0, messagesOut: 7, bytesOut: 28, merges: 0 } },
    });
    gossip.stop();
    clock.advance(100_000);
    expect(gossip.stats.rounds).toBe(1);
  });

  it('passes a delta on to every neighbour except the sender', () => {
    const { gossip, sent, neighbours } = setup(3, 4);
    gossip.channel(
      'c',
      stateful('s', (u) => (Buffer.from(u).toString() === 'new' ? Buffer.from('delta') : null)),
    );
    const frame = Buffer.from([1, 0x63, ...Buffer.from('new')]);
    gossip.onFrame(neighbours[0]!, FrameType.Gossip, frame);
    expect(sent.map((s) => s.peer)).toEqual(neighbours.slice(1));
    expect(Buffer.from(sent[0]!.frame.subarray(3)).toString()).toBe('delta');
    gossip.onFrame(neighbours[0]!, FrameType.Gossip, Buffer.from([1, 0x63, ...Buffer.from('old')]));
    expect(sent).toHaveLength(2);
    // Two frames in (type byte + 5 bytes each), one merged and passed on to two neighbours (type, header, 'delta').
    expect(gossip.stats.channels['c']).toEqual({ messagesIn: 2, bytesIn: 12, messagesOut: 2, bytesOut: 16, merges: 1 });
  });

  it('closes on a broken frame header, drops (and counts) what a gossiper refuses or an unknown channel', () => {
    const { gossip, counts, lines, neighbours } = setup(1, 2);
    gossip.channel(
      'c',
      stateful('s', () => {
        throw new DecodeError('bad state');
      }),
    );
    expect(() => gossip.onFrame(neighbours[0]!, FrameType.Gossip, new Uint8Array(0))).toThrow(DecodeError);
    expect(() => gossip.onFrame(neighbours[0]!, FrameType.Unicast, Buffer.from([1, 0x63, 1, 2]))).toThrow(/truncated/);
    gossip.onFrame(neighbours[0]!, FrameType.Gossip, Buffer.from([1, 0x63, 9]));
    gossip.onFrame(neighbours[0]!, FrameType.Gossip, Buffer.from([1, 0x63, 9]));
    gossip.onFrame(neighbours[0]!, FrameType.Gossip, Buffer.from([1, 0x78, 9]));
    expect(counts.get('gossip_decode_error')).toBe(2);
    expect(counts.get('gossip_unknown_channel')).toBe(1);
    expect(lines().filter((l) => l.msg === 'dropped gossip that does not decode')).toHaveLength(1); // logged once
  });

  it('refuses duplicate and malformed channel names', () => {
    const { gossip } = setup(0, 1);
    gossip.channel('ipam', stateful(''));
    expect(() => gossip.channel('ipam', stateful(''))).toThrow(/already registered/);
    expect(() => gossip.channel('', stateful(''))).toThrow(RangeError);
  });

  it('delivers a unicast or broadcast only when it comes the way its named source reaches us, and counts the rest', () => {
    const S = '02:00:00:00:09:09';
    const n1 = '02:00:00:00:01:01'; // one hop closer to S than we are
    const n2 = '02:00:00:00:01:02'; // a neighbour that is not on S's way to us
    const routes: ControlRoutes = { unicast: new Map([[S, n1]]), broadcast: new Map([[S, []]]), upstream: new Map([[S, [n1]]]) };
    const { gossip, counts, lines } = setup(2, 4, routes);
    const got: string[] = [];
    gossip.channel('c', {
      gossip: () => null,
      onGossip: () => null,
      onGossipBroadcast: (src, u) => void got.push(`b ${src} ${Buffer.from(u)}`),
      onGossipUnicast: (src, u) => void got.push(`u ${src} ${Buffer.from(u)}`),
    });
    const id = (n: string) => Buffer.from(peerNameToId(n).toString(16).padStart(12, '0'), 'hex');
    const unicast = Buffer.concat([Buffer.from([1, 0x63]), id(S), id(LOCAL), Buffer.from('give me space')]);
    const broadcast = Buffer.concat([Buffer.from([1, 0x63]), id(S), Buffer.from('tombstone')]);
    gossip.onFrame(n2, FrameType.Unicast, unicast);
    gossip.onFrame(n2, FrameType.Broadcast, broadcast);
    gossip.onFrame(n2, FrameType.Unicast, unicast);
    expect(got).toEqual([]);
    expect(counts.get('gossip_bad_relay')).toBe(3);
    expect(lines().filter((l) => String(l.msg).startsWith('dropped gossip naming a source'))).toHaveLength(1);
    gossip.onFrame(n1, FrameType.Unicast, unicast);
    gossip.onFrame(n1, FrameType.Broadcast, broadcast);
    expect(got).toEqual([`u ${S} give me space`, `b ${S} tombstone`]);
  });

  it('never sends a frame over the cap; logs which cap once; sends a state given in chunks as several frames', () => {
    const { gossip, sent, counts, lines, neighbours } = setup(2, 3);
    gossip.channel('big', {
      gossip: () => new Uint8Array(MAX_GOSSIP_FRAME_BYTES),
      onGossip: () => null,
      onGossipBroadcast: () => {},
      onGossipUnicast: () => {},
    });
    gossip.channel('chunked', {
      gossip: () => [Buffer.from('one'), Buffer.from('two')],
      onGossip: () => null,
      onGossipBroadcast: () => {},
      onGossipUnicast: () => {},
    });
    gossip.onNewNeighbour(neighbours[0]!);
    gossip.onNewNeighbour(neighbours[1]!);
    expect(sent.map((s) => Buffer.from(s.frame.subarray(9)).toString())).toEqual(['one', 'two', 'one', 'two']);
    expect(counts.get('gossip_frame_over_cap')).toBe(2);
    const warn = lines().filter((l) => l.reason === 'gossip frame cap');
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatchObject({ channel: 'big', cap: MAX_GOSSIP_FRAME_BYTES });
  });
});
