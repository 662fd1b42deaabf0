import { describe, expect, it } from 'vitest';
import { FakeClock } from '../runtime/clock.js';
import { decodeTopology, type PeerEntry } from './topology.js';
import { TOPOLOGY_SPREAD_WINDOW_MS, TopologySpread } from './topology-spread.js';

function setup(neighbours = ['n1', 'n2', 'n3']) {
  const clock = new FakeClock();
  const entries = new Map<string, PeerEntry>();
  const sent: Array<{ peer: string; names: string[]; versions: number[]; at: number }> = [];
  const live = new Set(neighbours);
  const spread = new TopologySpread({
    clock,
    localName: 'me',
    neighbours: () => live,
    entry: (n) => entries.get(n),
    send: (peer, update) => {
      if (!live.has(peer)) return false;
      const es = decodeTopology(update);
      sent.push({ peer, names: es.map((e) => e.name), versions: es.map((e) => e.version), at: clock.now() });
      return true;
    },
  });
  const put = (name: string, version: number) => {
    const e: PeerEntry = { name, nickname: name, uid: '1', version, connections: [] };
    entries.set(name, e);
    return e;
  };
  const tick = () => new Promise<void>((r) => queueMicrotask(r));
  return { clock, entries, sent, live, spread, put, tick };
}

const names = (i: number) => `02:00:00:00:01:${i.toString(16).padStart(2, '0')}`;

describe('TopologySpread', () => {
  it('sends the first change at once, and coalesces the rest of a burst into one message per neighbour per window', async () => {
    const { clock, sent, spread, put, tick } = setup();
    put(names(1), 1);
    spread.queue([names(1)]);
    await tick();
    expect(sent.map((s) => s.peer)).toEqual(['n1', 'n2', 'n3']);
    expect(sent.every((s) => s.at === 0)).toBe(true);
    sent.length = 0;
    // A burst: 100 changes to 10 entries within the window.
    for (let v = 2; v < 102; v++) {
      const n = names(v % 10);
      put(n, v);
      spread.queue([n]);
      clock.advance(TOPOLOGY_SPREAD_WINDOW_MS / 200);
      await tick();
    }
    expect(sent, 'nothing before the window ends').toEqual([]);
    clock.advance(TOPOLOGY_SPREAD_WINDOW_MS);
    await tick();
    expect(sent.map((s) => s.peer)).toEqual(['n1', 'n2', 'n3']);
    // Each entry once, at the version it holds when the message goes out.
    for (const s of sent) {
      expect(s.names.length).toBe(10);
      expect(Math.min(...s.versions)).toBeGreaterThanOrEqual(92);
    }
  });

  it('widens the window with the neighbours: one step of 50 ms per 16 of them', async () => {
    const many = Array.from({ length: 40 }, (_, i) => `n${i}`);
    const { clock, sent, spread, put, tick } = setup(many);
    put(names(1), 1);
    spread.queue([names(1)]);
    await tick();
    expect(sent).toHaveLength(40); // the first at once
    sent.length = 0;
    put(names(1), 2);
    spread.queue([names(1)]);
    clock.advance(3 * TOPOLOGY_SPREAD_WINDOW_MS - 1);
    await tick();
    expect(sent, '40 neighbours: 3 steps').toEqual([]);
    clock.advance(1);
    await tick();
    expect(sent).toHaveLength(40);
  });

  it('skips the neighbour a change came from, and drops what a neighbour sent us at the version we hold', async () => {
    const { sent, spread, put, tick } = setup();
    const a = put(names(1), 5);
    spread.queue([names(1)], 'n2');
    // n3 sent us the same entry meanwhile: it has it. n1 sent an older one: it still needs ours.
    spread.heard('n3', [a]);
    spread.heard('n1', [{ ...a, version: 4 }]);
    await tick();
    expect(sent.map((s) => s.peer)).toEqual(['n1']);
  });

  it('relays no entry to a neighbour its owner lists (the owner sends it), unless that neighbour asked for it', async () => {
    const [n1, n2] = [names(0x21), names(0x22)];
    const { clock, sent, spread, entries, tick } = setup([n1, n2]);
    const owned: PeerEntry = {
      name: names(7),
      nickname: 'p7',
      uid: '1',
      version: 3,
      connections: [{ name: n1, address: '10.0.0.1:6783', isOutbound: true, isEstablished: true }],
    };
    entries.set(owned.name, owned);
    spread.queue([owned.name]);
    await tick();
    expect(sent.map((s) => s.peer)).toEqual([n2]);
    sent.length = 0;
    // n1's summary said it lacks the entry (its owner's own send was lost): it gets it.
    spread.queueTo(n1, [owned.name]);
    clock.advance(TOPOLOGY_SPREAD_WINDOW_MS);
    await tick();
    expect(sent).toEqual([{ peer: n1, names: [owned.name], versions: [3], at: TOPOLOGY_SPREAD_WINDOW_MS }]);
  });

  it('sends nothing to a neighbour forgotten (gone, or sent the complete state), and nothing after stop', async () => {
    const { clock, sent, spread, put, tick, live } = setup();
    put(names(1), 1);
    spread.queue([names(1)]);
    spread.forget('n1');
    live.delete('n3');
    await tick();
    expect(sent.map((s) => s.peer)).toEqual(['n2']);
    sent.length = 0;
    put(names(1), 2);
    spread.queue([names(1)]);
    spread.stop();
    clock.advance(10 * TOPOLOGY_SPREAD_WINDOW_MS);
    await tick();
    expect(sent).toEqual([]);
  });

  it('skips an entry the topology dropped before the message went out', async () => {
    const { sent, spread, put, tick, entries } = setup(['n1']);
    put(names(1), 1);
    put(names(2), 1);
    spread.queue([names(1), names(2)]);
    entries.delete(names(2));
    await tick();
    expect(sent).toEqual([{ peer: 'n1', names: [names(1)], versions: [1], at: 0 }]);
  });
});
