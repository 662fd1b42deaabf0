/**
 * IPAM gossip from a hostile member, in simulation: three honest peers a, b, c seeded together, and m, a member who
 * forges rings and requests with the library's own codecs and hands them straight to a gossiper, as a neighbour
 * would (the mesh attributes a frame to the neighbour it came from, so m's words arrive as m's).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Allocator } from '../../ipam/allocator.js';
import { encodeMessage } from '../../ipam/message.js';
import { Ring } from '../../ipam/ring.js';
import { FakeClock } from '../../runtime/clock.js';
import { createMemoryLogger } from '../../runtime/logger.js';
import { SeededRandom } from '../../runtime/random.js';
import { MemoryStore } from '../../runtime/store.js';
import { IpamFabric, advance } from './ipam-fabric.js';

const seed = Number(process.env.WEFT_SIM_SEED ?? 11);
const A = 'a0:00:00:00:00:01';
const B = 'a0:00:00:00:00:02';
const C = 'a0:00:00:00:00:03';
const M = 'a0:00:00:00:00:0d';
const NOW_MS = 1_800_000_000_000;

function world() {
  const clock = new FakeClock();
  const random = new SeededRandom(seed);
  const fabric = new IpamFabric(clock, random, { gossipIntervalMs: 100 });
  const peers = new Map<string, { alloc: Allocator; store: MemoryStore; lines: () => Array<Record<string, unknown>> }>();
  for (const name of [A, B, C]) {
    const { log, lines } = createMemoryLogger('info');
    const store = new MemoryStore();
    const alloc = new Allocator(
      { clock, random, log, store, wallClockMs: () => NOW_MS + clock.now() },
      {
        ourName: name,
        ourNickname: name.slice(-2),
        range: '10.32.0.0/12',
        init: { mode: 'seed', peers: [A, B, C] },
        requestTimeoutMs: 200,
      },
    );
    alloc.start();
    alloc.attach(fabric.add(name, alloc));
    peers.set(name, { alloc, store, lines });
  }
  for (const p of peers.values()) p.alloc.setReachablePeers([A, B, C]);
  return { clock, fabric, peers, get: (n: string) => peers.get(n)!.alloc };
}

const state = (ring: Ring) => encodeMessage({ kind: 'state', ring, consensus: null });
const owned = (a: Allocator, who: string) => JSON.stringify(a.ringSnapshot().ownedBy(who));

let cleanup: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanup) c();
  cleanup = [];
});

describe('IPAM gossip from a hostile member (simulation)', () => {
  it('a forged tombstone does not stop a router allocating; the named taker denies it and the victim re-publishes', async () => {
    const w = world();
    cleanup.push(() => w.fabric.close());
    const a = w.get(A);
    const ownedBefore = owned(a, A);
    // m forges "b ran rmpeer a": a's space moved to b with bumped versions, and the tombstone a -> b.
    const forged = w.get(C).ringSnapshot();
    forged.transfer(A, B);
    a.onGossip(state(forged), M);
    w.get(C).onGossip(state(forged), M);
    expect(a.counters.ring_unattributed_removal).toBe(1);
    expect(a.isReady).toBe(true);
    expect(await a.allocate('web')).toMatch(/^10\.3/);
    expect(owned(a, A)).toBe(ownedBefore);
    // b was asked, answered with its own ring (no tombstone): a outbids what the forgery changed, everywhere.
    await advance(w.clock, 500, 5);
    expect(a.counters.ring_removal_denied).toBe(1);
    expect(a.counters.ring_outbids).toBeGreaterThanOrEqual(1);
    for (const n of [A, B, C]) expect(owned(w.get(n), A), `${n}'s view of a`).toBe(ownedBefore);
    // b never took the forged gift or the tombstone naming it as taker.
    expect(w.get(B).ringSnapshot().removedBy(A)).toBeUndefined();
    expect(await a.allocate('db')).toMatch(/^10\.3/);
  });

  it('space given to us by someone who does not own it is not used; the owner is asked', async () => {
    const w = world();
    cleanup.push(() => w.fabric.close());
    const a = w.get(A);
    const freeBefore = a.freeIn();
    const forged = a.ringSnapshot();
    const cSpan = forged.ownedBy(C)[0]!;
    // m "grants" a the first 256 addresses of c's space, as if c had donated them.
    const ringOfC = w.get(C).ringSnapshot();
    ringOfC.grantTo(C, A, { start: cSpan.start, end: cSpan.start + 256 });
    a.onGossip(state(ringOfC), M);
    expect(a.counters.ring_unattributed_gain).toBe(1);
    expect(a.freeIn()).toBe(freeBefore);
    expect(a.ringSnapshot().ownerOf(cSpan.start)).toBe(C);
    await advance(w.clock, 500, 5);
    expect(a.ringSnapshot().ownerOf(cSpan.start)).toBe(C); // c, asked, did not give it
  });

  it('a burst of space requests from one peer gets a few answers and a few donations, and the rest nothing', async () => {
    const w = world();
    cleanup.push(() => w.fabric.close());
    const a = w.get(A);
    const store = w.peers.get(A)!.store;
    let writes = 0;
    const write = store.write.bind(store);
    store.write = (k, v) => {
      writes++;
      write(k, v);
    };
    const freeBefore = a.freeIn();
    for (let i = 0; i < 200; i++)
      a.onGossipUnicast(M, encodeMessage({ kind: 'request', id: i, mode: 'subnet', address: 0x0a200000, prefix: 12 }));
    expect(a.counters.space_request_rate_limited).toBe(192);
    expect(a.counters.space_donated).toBe(4);
    expect(a.counters.space_donation_limited).toBe(4);
    expect(writes).toBeLessThanOrEqual(8);
    // Four halvings of the largest free span at most: a keeps at least 1/16 of what it had.
    expect(a.freeIn()).toBeGreaterThanOrEqual(Math.floor(freeBefore / 16));
    expect(await a.allocate('web')).toMatch(/^10\.3/);
  });

  it('an entry at the highest u32 version for another peer is dropped; one at the highest plausible version is outbid', async () => {
    const w = world();
    cleanup.push(() => w.fabric.close());
    const a = w.get(A);
    const forged = Ring.decode(w.get(B).ringSnapshot().encode());
    const bToken = forged.ownedBy(B)[0]!.start;
    const encoded = Buffer.from(forged.encode());
    // Patch b's first entry's version in place (token u32, owner u16, version u32, free u32 from the entries' start).
    const entriesAt = encoded.length - 2 - 14 * forged.entryCount;
    const k = forged.segments().findIndex((s) => s.range.start === bToken);
    encoded.writeUInt32BE(0xffffffff, entriesAt + 14 * k + 6);
    a.onGossip(state(Ring.decode(encoded)), M);
    expect(a.counters.ring_implausible_version).toBe(1);
    expect(a.ringSnapshot().segments()[k]!.version).toBe(0);
    // At the bound itself: accepted by a (it cannot tell), then b outbids it and a follows.
    const ceiling = Math.floor((NOW_MS + w.clock.now()) / 1000) + 3600;
    encoded.writeUInt32BE(ceiling, entriesAt + 14 * k + 6);
    const plausible = Ring.decode(encoded);
    a.onGossip(state(plausible), M);
    w.get(B).onGossip(state(plausible), M);
    expect(w.get(B).counters.ring_foreign_change).toBe(1);
    await advance(w.clock, 2_000, 10);
    expect(a.ringSnapshot().segments()[k]!.version).toBe(ceiling + 1);
    expect(a.ringSnapshot().ownerOf(bToken)).toBe(B);
  });
});
